//! The UAS core of one SIP endpoint: it owns every transaction and dialog of the endpoint.
//!
//! Input: datagrams (or framed TCP messages) with their source, timeouts, and commands for
//! a call from the engine ([`CallCommand`]), each stamped with `now`.
//! Output: datagrams to send ([`Output::Transmit`]) and call events ([`Event`]).
//! [`Endpoint::poll_timeout`] is the earliest deadline over all transactions and dialogs.
//!
//! API CONTRACT: the engine codes against the public items of this file; keep them
//! (extend freely).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::ids::{CallId, CallKey};
use crate::sdp::{LocalMedia, Session};

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
    pub trusted: Vec<(IpAddr, u8)>,
    /// A call longer than this is ended with BYE.
    pub max_call_duration: Duration,
    pub timers: Timers,
    /// Seed for tags, branches and Call-IDs we generate (deterministic tests).
    pub seed: u64,
}

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
    /// We sent BYE (engine `Hangup`).
    LocalBye,
    /// CANCEL before the answer.
    Cancelled,
    /// Our 2xx was never ACKed (64*T1): BYE sent.
    AckTimeout,
    /// The offer had no codec we accept: 488 sent.
    NoCommonCodec,
    /// We refused the INVITE with this code.
    Rejected(u16),
    /// `max_call_duration` elapsed: BYE sent.
    MaxDuration,
    /// A request we sent got no response in time.
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
    /// The call is over (the dialog may still absorb retransmissions for a while).
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
    config: EndpointConfig,
    stats: Stats,
}

impl Endpoint {
    /// A new endpoint with no calls.
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            config,
            stats: Stats::default(),
        }
    }

    /// Feed one input. Then drain [`Endpoint::poll_output`] and re-read the deadline.
    pub fn handle_input(&mut self, input: Input<'_>) {
        let _ = (&self.config, input);
    }

    /// The next message to send or event, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        None
    }

    /// The earliest deadline over all transactions and dialogs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls that count against `max_calls` (from INVITE until ended).
    pub fn active_calls(&self) -> usize {
        0
    }
}
