//! The UAS core of one SIP endpoint: it owns every transaction and dialog of the endpoint.
//!
//! Input: datagrams (or framed TCP messages) with their source, timeouts, and commands for
//! a call from the engine ([`CallCommand`]), each stamped with `now`.
//! Output: datagrams to send ([`Output::Transmit`]) and call events ([`Event`]).
//! [`Endpoint::poll_timeout`] is the earliest deadline over all transactions and dialogs.
//!
//! API CONTRACT: the engine codes against the public items of this file; keep them
//! (extend freely).
//!
//! What it does (the request handling lives in `sip::uas`): INVITEs pass the trusted-source
//! list, a per-source token bucket, `max_calls` (503 + Retry-After) and the configured
//! numbers (404) before [`Event::IncomingCall`]; retransmissions are answered by their
//! transaction (never processed twice); CANCEL, BYE, re-INVITE (hold/resume), UPDATE,
//! INFO, OPTIONS are handled per RFC 3261/3311/6086; REGISTER gets 405 (not a registrar);
//! our 2xx is retransmitted until the ACK (13.3.1.4) and a BYE ends the call when none
//! comes in 64*T1. Completed transactions and ended dialogs are dropped after their timers.
//!
//! ```
//! use std::time::Instant;
//! use guichet::sip::endpoint::{Endpoint, EndpointConfig, Input, Output, Peer, Transport};
//! let mut ep = Endpoint::new(EndpointConfig::default());
//! let now = Instant::now(); // the engine's clock; tests use a fixed start
//! let from = Peer { transport: Transport::Udp, addr: "192.0.2.1:5060".parse().unwrap(), conn: None };
//! let options = "OPTIONS sip:guichet@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
//!     From: <sip:probe@192.0.2.1>;tag=a\r\nTo: <sip:guichet@192.0.2.10>\r\nCall-ID: o1\r\n\
//!     CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
//! ep.handle_input(Input::Message { now, from, bytes: options.as_bytes() });
//! let Some(Output::Transmit { to, bytes }) = ep.poll_output() else { panic!() };
//! assert_eq!(to, from);
//! assert!(bytes.starts_with(b"SIP/2.0 200"));
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::ids::{CallId, CallKey};
use crate::sdp::{LocalMedia, Session};
use crate::sip::dialog::DialogId;
use crate::sip::ratelimit::RateLimiter;
use crate::sip::registrar::{Registrar, RegistrarConfig};
use crate::sip::transaction::{ClientKey, TsxKey};
use crate::sip::uas::{Call, ClientEntry, Deadlines, ServerEntry};

/// Transport a message came on / goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// An engine-assigned id for one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// Who sent a message, or where to send one. Over TCP, `conn` names the connection the
/// request came on: responses go back on it (RFC 3261 section 18.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
}

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// The values with T1 in 1 ms..=60 s, T2 in T1..=10 min, T4 up to 10 min, so that
    /// every deadline (at most 64*T1 ahead) is far from overflowing an `Instant`.
    pub fn clamped(self) -> Timers {
        let t1 = self
            .t1
            .clamp(Duration::from_millis(1), Duration::from_secs(60));
        Timers {
            t1,
            t2: self.t2.clamp(t1, Duration::from_secs(600)),
            t4: self.t4.min(Duration::from_secs(600)),
        }
    }
}

/// The longest `max_call_duration` honoured (longer values are cut to this).
pub const MAX_CALL_DURATION_CAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Static settings of an endpoint. Every limit has a default.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our SIP address, written in Via (for requests we send) and Contact.
    pub local: SocketAddr,
    /// `Server`/`User-Agent` header value.
    pub user_agent: String,
    /// Request-URI users answered; empty means any.
    pub numbers: Vec<String>,
    /// Concurrent calls past which INVITEs get 503 + Retry-After.
    pub max_calls: usize,
    /// Retry-After seconds on 503.
    pub retry_after_secs: u32,
    /// Per-source token bucket for new INVITE/REGISTER/OPTIONS: sustained rate per second.
    pub rate_per_source: f64,
    /// Per-source token bucket size.
    pub rate_burst: u32,
    /// Sources allowed to send requests: (network, prefix length). Others are dropped.
    /// Empty means any source.
    pub trusted: Vec<(IpAddr, u8)>,
    /// A call longer than this is ended with BYE.
    pub max_call_duration: Duration,
    pub timers: Timers,
    /// Seed for tags, branches and Call-IDs we generate (deterministic tests).
    pub seed: u64,
    /// The registrar for agents' phones; `None` answers REGISTER with 405. With no users
    /// configured every REGISTER is challenged (401) and none can succeed.
    pub registrar: Option<RegistrarConfig>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            local: SocketAddr::from(([127, 0, 0, 1], 5060)),
            user_agent: "Guichet".to_owned(),
            numbers: Vec::new(),
            max_calls: 200,
            retry_after_secs: 30,
            rate_per_source: 20.0,
            rate_burst: 40,
            trusted: Vec::new(),
            max_call_duration: Duration::from_secs(4 * 3600),
            timers: Timers::default(),
            seed: 0x5eed,
            registrar: Some(RegistrarConfig::new("guichet", Vec::new())),
        }
    }
}

/// Sources tracked by the per-source rate limit (oldest evicted past this).
pub const RATE_LIMIT_SOURCES: usize = 10_000;

/// Server transactions kept at most; past this, requests are answered statelessly.
pub const MAX_SERVER_TRANSACTIONS: usize = 50_000;

/// An INVITE the engine neither answers nor rejects in this long gets 480 and
/// `Ended { Timeout }` (the RFC 3261 Timer C of a proxy is 3 minutes too).
pub const EARLY_CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// What the engine asks of a call.
#[derive(Debug, Clone)]
pub enum CallCommand {
    /// Send 180 Ringing.
    Ringing,
    /// Answer with 200 OK: an SDP answer built from the caller's offer for `local`, or our
    /// offer when the INVITE had no SDP (the answer then comes in the ACK).
    Answer { local: LocalMedia },
    /// Refuse the INVITE with a final response (4xx-6xx).
    Reject { code: u16 },
    /// End the call: BYE when established.
    Hangup,
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteBye,
    /// We sent BYE (engine `Hangup`), whatever its outcome (2xx, 481 or timeout): the
    /// event comes when the BYE is sent; its client transaction finishes on its own.
    LocalBye,
    /// CANCEL before the answer.
    Cancelled,
    /// Our 2xx was never ACKed (64*T1): BYE sent.
    AckTimeout,
    /// The offer had no codec we accept: 488 sent (or, for an answer in the ACK that we
    /// cannot use, BYE sent).
    NoCommonCodec,
    /// We refused the INVITE with this code (`Reject`, or 480 for `Hangup` before the
    /// answer).
    Rejected(u16),
    /// `max_call_duration` elapsed: BYE sent.
    MaxDuration,
    /// A request we sent got no response in time, or the engine left an INVITE
    /// unanswered for [`EARLY_CALL_TIMEOUT`] (480 sent).
    Timeout,
}

/// What happened, for the engine.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new INVITE passed every check: the engine decides (Ringing/Answer/Reject).
    IncomingCall {
        call: CallKey,
        call_id: CallId,
        /// The From URI (for logs: redact the user part).
        from: String,
        /// The Request-URI user (the number dialled).
        to_user: String,
        source: Peer,
    },
    /// 200 OK sent; `session` is what was negotiated (None when we sent the offer).
    Answered {
        call: CallKey,
        session: Option<Session>,
    },
    /// The ACK arrived: media can flow both ways.
    Confirmed { call: CallKey },
    /// The media session changed (re-INVITE hold/resume, answer in ACK, UPDATE).
    MediaUpdated { call: CallKey, session: Session },
    /// An in-dialog INFO (for DTMF relay): the engine parses the body.
    Info {
        call: CallKey,
        content_type: String,
        body: Bytes,
    },
    /// The call is over (its transactions may still absorb retransmissions for a while).
    /// Exactly one per call; commands for the call are ignored afterwards.
    Ended { call: CallKey, reason: EndReason },
}

/// A message to send, or an event.
#[derive(Debug, Clone)]
pub enum Output {
    Transmit { to: Peer, bytes: Bytes },
    Event(Event),
}

/// An input, stamped with the time it happened.
#[derive(Debug)]
pub enum Input<'a> {
    /// One SIP message's bytes from `from`.
    Message {
        now: Instant,
        from: Peer,
        bytes: &'a [u8],
    },
    /// Time passed (the engine slept until [`Endpoint::poll_timeout`]).
    Timeout { now: Instant },
    /// The engine's decision for a call.
    Command {
        now: Instant,
        call: CallKey,
        command: CallCommand,
    },
}

/// Counters of what was refused or dropped (for metrics and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes that were not a SIP message and could not be answered.
    pub dropped_malformed: u64,
    /// Requests answered 4xx/5xx by the message checks (400, 416, 420, 415, 505...).
    pub refused: u64,
    /// Requests dropped by the per-source rate limit.
    pub rate_limited: u64,
    /// Requests dropped because the source is not trusted.
    pub untrusted: u64,
    /// INVITEs answered 503 because `max_calls` was reached.
    pub over_capacity: u64,
    /// Retransmitted requests absorbed by a transaction.
    pub retransmissions_absorbed: u64,
    /// Responses that matched no client transaction.
    pub stray_responses: u64,
}

/// One SIP endpoint's transactions and dialogs.
#[derive(Debug)]
pub struct Endpoint {
    pub(super) config: EndpointConfig,
    pub(super) stats: Stats,
    pub(super) out: VecDeque<Output>,
    pub(super) rng: SplitMix64,
    pub(super) limiter: RateLimiter,
    pub(super) next_call: u64,
    pub(super) servers: HashMap<TsxKey, ServerEntry>,
    pub(super) server_timers: Deadlines<TsxKey>,
    pub(super) clients: HashMap<ClientKey, ClientEntry>,
    pub(super) client_timers: Deadlines<ClientKey>,
    pub(super) calls: HashMap<CallKey, Call>,
    pub(super) dialogs: HashMap<DialogId, CallKey>,
    /// Calls by the INVITE's (Call-ID, From tag, CSeq), to spot merged requests (482).
    pub(super) merge_index: HashMap<super::uas::MergeKey, CallKey>,
    /// Each call's earliest deadline (2xx retransmission, give-up, early timeout, maximum
    /// duration), kept by `refresh_call_timer` wherever one changes.
    pub(super) call_timers: Deadlines<CallKey>,
    pub(super) registrar: Option<Registrar>,
}

impl Endpoint {
    /// A new endpoint with no calls.
    pub fn new(mut config: EndpointConfig) -> Self {
        // Operator-controlled durations are bounded so deadline arithmetic cannot overflow.
        config.timers = config.timers.clamped();
        config.max_call_duration = config.max_call_duration.min(MAX_CALL_DURATION_CAP);
        // A registrar config that does not hold together (empty realm...) disables it; the
        // engine validates it at startup with `Registrar::new` to report the reason.
        let registrar = config.registrar.clone().and_then(|mut r| {
            r.seed ^= config.seed.rotate_left(17);
            Registrar::new(r).ok()
        });
        Endpoint {
            registrar,
            rng: SplitMix64(config.seed),
            limiter: RateLimiter::new(
                config.rate_per_source,
                config.rate_burst,
                RATE_LIMIT_SOURCES,
            ),
            config,
            stats: Stats::default(),
            out: VecDeque::new(),
            next_call: 1,
            servers: HashMap::new(),
            server_timers: Deadlines::default(),
            clients: HashMap::new(),
            client_timers: Deadlines::default(),
            calls: HashMap::new(),
            merge_index: HashMap::new(),
            call_timers: Deadlines::default(),
            dialogs: HashMap::new(),
        }
    }

    /// Feed one input. Then drain [`Endpoint::poll_output`] and re-read the deadline.
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Message { now, from, bytes } => self.on_message(now, from, bytes),
            Input::Timeout { now } => self.on_timeout(now),
            Input::Command { now, call, command } => self.on_command(now, call, command),
        }
    }

    /// The next message to send or event, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest deadline over all transactions and dialogs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Transactions and calls through their deadline heaps (a heap may be early, never
        // late: checked against a scan of every call in debug builds, so every test run
        // verifies that no change of a call's deadline was missed).
        let registrar = self.registrar.as_ref().and_then(Registrar::poll_timeout);
        let next = [
            self.server_timers.next(),
            self.client_timers.next(),
            self.call_timers.next(),
            registrar,
        ]
        .into_iter()
        .flatten()
        .min();
        #[cfg(debug_assertions)]
        if let Some(scanned) = self.calls.values().filter_map(Call::poll_timeout).min() {
            debug_assert!(
                next.is_some_and(|n| n <= scanned),
                "a call deadline was not refreshed: heap {next:?}, scan {scanned:?}"
            );
        }
        next
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls that count against `max_calls` (from INVITE until ended).
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions alive (server + client), for memory checks and metrics.
    pub fn transactions(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// Whether `ip` may send us requests.
    pub(super) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.config.trusted.is_empty()
            || self
                .config
                .trusted
                .iter()
                .any(|(net, len)| in_network(ip, *net, *len))
    }
}

/// `ip` is inside `net/len` (IPv4-mapped IPv6 compared as IPv4).
fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A small seeded generator for tags and branches (deterministic under a fixed seed).
#[derive(Debug, Clone)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A To/From tag.
    pub(super) fn tag(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// An RFC 3261 branch.
    pub(super) fn branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_networks_match_by_prefix() {
        let net: IpAddr = "10.1.0.0".parse().unwrap();
        assert!(in_network("10.1.200.3".parse().unwrap(), net, 16));
        assert!(!in_network("10.2.0.1".parse().unwrap(), net, 16));
        assert!(in_network("::ffff:10.1.0.9".parse().unwrap(), net, 16));
        assert!(in_network("8.8.8.8".parse().unwrap(), net, 0));
        let v6: IpAddr = "2001:db8::".parse().unwrap();
        assert!(in_network("2001:db8::1".parse().unwrap(), v6, 32));
        assert!(!in_network("2001:db9::1".parse().unwrap(), v6, 32));
    }
}
