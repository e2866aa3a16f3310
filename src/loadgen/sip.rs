//! The SIP task of the load tool: one UDP socket, every call's state in one table keyed by
//! Call-ID, one deadline heap. Places INVITEs on a schedule (`rate` per second), ACKs 2xx,
//! hands answered calls to the RTP tasks, sends BYE after the hold time, answers the
//! engine's own BYE, and counts outcomes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::LoadConfig;
use super::histogram::Histogram;
use super::media::MediaCommand;
use crate::sdp::{self, LocalMedia};
use crate::sip::endpoint::{Peer, Timers, Transport};
use crate::sip::headers;
use crate::sip::message::{self, Incoming, Method, Request, Response};
use crate::sip::transaction::{ClientInput, ClientInvite, ClientNonInvite, TsxEvent, TsxOutput};

/// Code counted for a call whose INVITE got no final response (Timer B).
pub const TIMEOUT_CODE: u16 = 408;

/// Outcome counters of the SIP task.
#[derive(Debug, Clone, Default)]
pub struct SipTotals {
    pub attempted: u64,
    pub answered: u64,
    /// Final responses >= 300 (and 408 for Timer B), by code.
    pub failed_by_code: BTreeMap<u16, u64>,
    /// Answered but the SDP answer was unusable.
    pub bad_sdp: u64,
    pub bye_sent: u64,
    pub bye_ok: u64,
    pub bye_failed: u64,
    /// Calls the engine hung up before our BYE.
    pub remote_hangups: u64,
    pub setup_us: Histogram,
    pub peak_concurrent: u64,
    pub unparsable: u64,
}

impl SipTotals {
    pub fn failed(&self) -> u64 {
        self.failed_by_code.values().sum::<u64>() + self.bad_sdp
    }
}

enum Phase {
    Calling,
    Up {
        to: String,
        target: String,
        hangup_at: Instant,
    },
    Closing,
    Ended,
}

struct Call {
    call_id: String,
    from_tag: String,
    sent_at: Instant,
    invite: Option<ClientInvite>,
    bye: Option<ClientNonInvite>,
    phase: Phase,
    scheduled: Option<Instant>,
}

struct Uac<'a> {
    cfg: &'a LoadConfig,
    sock: &'a UdpSocket,
    local: SocketAddr,
    peer: Peer,
    run_id: u64,
    calls: Vec<Call>,
    by_call_id: HashMap<String, u32>,
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
    media: &'a [std::sync::mpsc::Sender<MediaCommand>],
    media_local: &'a [SocketAddr],
    active: Arc<AtomicUsize>,
    totals: SipTotals,
    branch_counter: u64,
}

/// Run the SIP side of the load until every call has ended (or the safety deadline).
pub async fn run_sip(
    cfg: &LoadConfig,
    sock: &UdpSocket,
    media: &[std::sync::mpsc::Sender<MediaCommand>],
    media_local: &[SocketAddr],
    active: Arc<AtomicUsize>,
) -> SipTotals {
    let local = sock
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(cfg.local_ip, 0));
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut uac = Uac {
        cfg,
        sock,
        local,
        peer: Peer {
            transport: Transport::Udp,
            addr: cfg.target,
            conn: None,
        },
        run_id,
        calls: Vec::with_capacity(cfg.calls as usize),
        by_call_id: HashMap::with_capacity(cfg.calls as usize),
        heap: BinaryHeap::new(),
        media,
        media_local,
        active,
        totals: SipTotals::default(),
        branch_counter: 0,
    };
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / cfg.rate.max(0.001));
    let last_start = start + interval.mul_f64(f64::from(cfg.calls.saturating_sub(1)));
    // Timer B + hold + BYE's Timer F (64 * T1 each) + slack bounds the run.
    let give_up = last_start + cfg.hold + cfg.timers.clamped().t1 * 128 + Duration::from_secs(5);
    let mut buf = vec![0u8; 65536];
    let mut placed: u32 = 0;

    loop {
        let now = Instant::now();
        // Place every call due by now.
        while placed < cfg.calls && start + interval.mul_f64(f64::from(placed)) <= now {
            uac.place(placed, now);
            placed += 1;
        }
        // Service due timers.
        while let Some(&Reverse((at, id))) = uac.heap.peek() {
            if at > now {
                break;
            }
            uac.heap.pop();
            if uac.calls.get(id as usize).and_then(|c| c.scheduled) == Some(at) {
                if let Some(c) = uac.calls.get_mut(id as usize) {
                    c.scheduled = None;
                }
                uac.service(id, now);
            }
        }
        let all_placed = placed >= cfg.calls;
        if all_placed && uac.calls.iter().all(|c| matches!(c.phase, Phase::Ended)) {
            break;
        }
        if now >= give_up {
            break;
        }
        let mut wake = give_up;
        if !all_placed {
            wake = wake.min(start + interval.mul_f64(f64::from(placed)));
        }
        if let Some(&Reverse((at, _))) = uac.heap.peek() {
            wake = wake.min(at);
        }
        tokio::select! {
            res = sock.recv_from(&mut buf) => {
                let mut res = res;
                loop {
                    if let Ok((n, from)) = res {
                        let now = Instant::now();
                        uac.datagram(buf.get(..n).unwrap_or(&[]), from, now);
                    }
                    res = sock.try_recv_from(&mut buf);
                    if matches!(&res, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    // Calls still up at the safety deadline: stop their media so the RTP tasks can end.
    for id in 0..uac.calls.len() as u32 {
        if matches!(
            uac.calls.get(id as usize).map(|c| &c.phase),
            Some(Phase::Up { .. })
        ) {
            uac.stop_media(id);
        }
    }
    uac.totals
}

impl Uac<'_> {
    fn branch(&mut self) -> String {
        self.branch_counter += 1;
        format!(
            "{}{:x}-{:x}",
            headers::BRANCH_COOKIE,
            self.run_id & 0xffff_ffff,
            self.branch_counter
        )
    }

    fn media_task(&self, id: u32) -> usize {
        id as usize % self.media.len().max(1)
    }

    fn place(&mut self, id: u32, now: Instant) {
        let call_id = format!("load-{:x}-{id}", self.run_id);
        let from_tag = format!("l{id:x}");
        let rtp = self
            .media_local
            .get(self.media_task(id))
            .copied()
            .unwrap_or(self.local);
        let body = sdp::offer(&LocalMedia {
            addr: rtp.ip(),
            port: rtp.port(),
            session_id: u64::from(id),
            version: 1,
        });
        let branch = self.branch();
        let target = self.cfg.target;
        let local = self.local;
        let user = &self.cfg.user;
        let text = format!(
            "INVITE sip:{user}@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:load@{local}>;tag={from_tag}\r\n\
             To: <sip:{user}@{target}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:load@{local}>\r\n\
             User-Agent: guichet-load\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        self.totals.attempted += 1;
        let invite = match message::parse(&bytes) {
            Ok(message::SipMessage::Request(r)) => Some(r),
            _ => None,
        };
        let Some(invite) = invite else {
            // Our own text failed to parse: a bug; count it as a failed call.
            *self.totals.failed_by_code.entry(0).or_default() += 1;
            self.push_ended(id, call_id, from_tag, now);
            return;
        };
        let tsx = ClientInvite::new(now, self.peer, invite, self.timers());
        self.by_call_id.insert(call_id.clone(), id);
        self.calls.push(Call {
            call_id,
            from_tag,
            sent_at: now,
            invite: Some(tsx),
            bye: None,
            phase: Phase::Calling,
            scheduled: None,
        });
        self.drain(id, now);
    }

    fn timers(&self) -> Timers {
        self.cfg.timers
    }

    fn push_ended(&mut self, _id: u32, call_id: String, from_tag: String, now: Instant) {
        self.calls.push(Call {
            call_id,
            from_tag,
            sent_at: now,
            invite: None,
            bye: None,
            phase: Phase::Ended,
            scheduled: None,
        });
    }

    fn send(&self, bytes: &[u8], to: SocketAddr) {
        // A full socket buffer drops the datagram; the transaction retransmits.
        let _ = self.sock.try_send_to(bytes, to);
    }

    /// Feed a timeout to the call's transactions and act on its hang-up time.
    fn service(&mut self, id: u32, now: Instant) {
        let Some(c) = self.calls.get_mut(id as usize) else {
            return;
        };
        if let Some(t) = c.invite.as_mut() {
            t.handle_input(ClientInput::Timeout { now });
        }
        if let Some(t) = c.bye.as_mut() {
            t.handle_input(ClientInput::Timeout { now });
        }
        if let Phase::Up { hangup_at, .. } = &c.phase
            && now >= *hangup_at
        {
            self.hang_up(id, now);
        }
        self.drain(id, now);
    }

    fn hang_up(&mut self, id: u32, now: Instant) {
        let branch = self.branch();
        let local = self.local;
        let Some(c) = self.calls.get_mut(id as usize) else {
            return;
        };
        let Phase::Up { to, target, .. } = std::mem::replace(&mut c.phase, Phase::Closing) else {
            return;
        };
        let text = format!(
            "BYE {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:load@{local}>;tag={}\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            c.from_tag, c.call_id
        );
        c.bye = Some(ClientNonInvite::new(
            now,
            self.peer,
            Bytes::from(text.into_bytes()),
            self.cfg.timers,
        ));
        self.totals.bye_sent += 1;
        self.stop_media(id);
    }

    fn stop_media(&mut self, id: u32) {
        if let Some(tx) = self.media.get(self.media_task(id)) {
            let _ = tx.send(MediaCommand::Stop { call: id });
        }
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Drain the call's transaction outputs, act on events, reschedule.
    fn drain(&mut self, id: u32, now: Instant) {
        let mut events: Vec<(bool, TsxEvent)> = Vec::new();
        if let Some(c) = self.calls.get_mut(id as usize) {
            for (is_invite, out) in c
                .invite
                .iter_mut()
                .flat_map(|t| std::iter::from_fn(|| t.poll_output()).map(|o| (true, o)))
                .collect::<Vec<_>>()
                .into_iter()
                .chain(
                    c.bye
                        .iter_mut()
                        .flat_map(|t| std::iter::from_fn(|| t.poll_output()).map(|o| (false, o)))
                        .collect::<Vec<_>>(),
                )
            {
                match out {
                    TsxOutput::Transmit { to, bytes } => {
                        let _ = self.sock.try_send_to(&bytes, to.addr);
                    }
                    TsxOutput::Event(e) => events.push((is_invite, e)),
                }
            }
        }
        for (is_invite, e) in events {
            match (is_invite, e) {
                (true, TsxEvent::Response(r)) => self.invite_response(id, &r, now),
                (true, TsxEvent::TimedOut) => {
                    if let Some(c) = self.calls.get_mut(id as usize)
                        && matches!(c.phase, Phase::Calling)
                    {
                        c.phase = Phase::Ended;
                        *self.totals.failed_by_code.entry(TIMEOUT_CODE).or_default() += 1;
                    }
                }
                (false, TsxEvent::Response(r)) => {
                    if r.status_code.code() >= 200 {
                        if r.status_code.code() < 300 {
                            self.totals.bye_ok += 1;
                        } else {
                            self.totals.bye_failed += 1;
                        }
                        if let Some(c) = self.calls.get_mut(id as usize) {
                            c.phase = Phase::Ended;
                        }
                    }
                }
                (false, TsxEvent::TimedOut) => {
                    self.totals.bye_failed += 1;
                    if let Some(c) = self.calls.get_mut(id as usize) {
                        c.phase = Phase::Ended;
                    }
                }
            }
        }
        let Some(c) = self.calls.get_mut(id as usize) else {
            return;
        };
        if c.invite.as_ref().is_some_and(|t| t.is_terminated()) {
            c.invite = None;
        }
        if c.bye.as_ref().is_some_and(|t| t.is_terminated()) {
            c.bye = None;
        }
        // Once a call has ended, its transactions are only absorbing retransmissions:
        // drop them so the run can finish.
        if matches!(c.phase, Phase::Ended) {
            c.invite = None;
            c.bye = None;
        }
        let mut next = None::<Instant>;
        for d in [
            c.invite.as_ref().and_then(|t| t.poll_timeout()),
            c.bye.as_ref().and_then(|t| t.poll_timeout()),
            match &c.phase {
                Phase::Up { hangup_at, .. } => Some(*hangup_at),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(d, |n: Instant| n.min(d)));
        }
        if let Some(d) = next
            && c.scheduled.is_none_or(|s| d < s)
        {
            c.scheduled = Some(d);
            self.heap.push(Reverse((d, id)));
        }
    }

    fn invite_response(&mut self, id: u32, r: &Response, now: Instant) {
        let code = r.status_code.code();
        if code < 200 {
            return;
        }
        let Some(c) = self.calls.get_mut(id as usize) else {
            return;
        };
        if code >= 300 {
            if matches!(c.phase, Phase::Calling) {
                c.phase = Phase::Ended;
                *self.totals.failed_by_code.entry(code).or_default() += 1;
            }
            return;
        }
        // A 2xx (first or retransmitted): ACK it (RFC 3261 section 13.2.2.4).
        let to = headers::first(&r.headers, "To")
            .unwrap_or_default()
            .to_owned();
        let target = headers::first(&r.headers, "Contact")
            .map(|v| headers::uri_of(v).to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("sip:{}@{}", self.cfg.user, self.cfg.target));
        let ack = format!(
            "ACK {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch={}{:x}-ack{id};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:load@{}>;tag={}\r\n\
             To: {to}\r\n\
             Call-ID: {}\r\n\
             CSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            self.local,
            headers::BRANCH_COOKIE,
            self.run_id & 0xffff_ffff,
            self.local,
            c.from_tag,
            c.call_id
        );
        let first = matches!(c.phase, Phase::Calling);
        let setup = now.saturating_duration_since(c.sent_at);
        self.send(ack.as_bytes(), self.cfg.target);
        if !first {
            return;
        }
        let Some(c) = self.calls.get_mut(id as usize) else {
            return;
        };
        self.totals.setup_us.record(setup.as_micros() as u64);
        let session = match sdp::accept_answer(&r.body) {
            Ok(s) => s,
            Err(_) => {
                self.totals.bad_sdp += 1;
                c.phase = Phase::Up {
                    to,
                    target,
                    hangup_at: now,
                };
                self.active.fetch_add(1, Ordering::Relaxed);
                self.hang_up(id, now);
                return;
            }
        };
        self.totals.answered += 1;
        c.phase = Phase::Up {
            to,
            target,
            hangup_at: now + self.cfg.hold,
        };
        let up = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.totals.peak_concurrent = self.totals.peak_concurrent.max(up as u64);
        if let (Some(remote), Some(tx)) = (session.remote, self.media.get(self.media_task(id))) {
            let _ = tx.send(MediaCommand::Start {
                call: id,
                remote,
                payload_type: session.payload_type,
                event_payload_type: session.telephone_event,
                seed: self.run_id ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                keys: self.cfg.keys.clone(),
            });
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        match message::read_datagram(bytes) {
            Incoming::Response(r) => self.response(r, now),
            Incoming::Request(req) => self.request(req, from, now),
            Incoming::Refuse { .. } | Incoming::Drop(_) => self.totals.unparsable += 1,
        }
    }

    fn response(&mut self, r: Response, now: Instant) {
        let Some(id) = headers::call_id(&r.headers).and_then(|c| self.by_call_id.get(c).copied())
        else {
            return;
        };
        let is_invite =
            headers::cseq(&r.headers).is_some_and(|(_, m)| m.eq_ignore_ascii_case("INVITE"));
        let Some(c) = self.calls.get_mut(id as usize) else {
            return;
        };
        let response = Box::new(r);
        if is_invite {
            match c.invite.as_mut() {
                Some(t) => t.handle_input(ClientInput::Response { now, response }),
                None => {
                    // Transaction gone (Timer M passed): a late 2xx retransmission still
                    // wants its ACK.
                    if (200..300).contains(&response.status_code.code()) {
                        self.invite_response(id, &response, now);
                    }
                    return;
                }
            }
        } else if let Some(t) = c.bye.as_mut() {
            t.handle_input(ClientInput::Response { now, response });
        }
        self.drain(id, now);
    }

    fn request(&mut self, req: Request, from: SocketAddr, now: Instant) {
        if req.method == Method::Ack {
            return;
        }
        let code = match req.method {
            Method::Bye => 200,
            Method::Options => 200,
            _ => 501,
        };
        let response = message::build_response(&req, code, None, Vec::new(), None);
        self.send(&response.to_bytes(), from);
        if req.method != Method::Bye {
            return;
        }
        let Some(id) = headers::call_id(&req.headers).and_then(|c| self.by_call_id.get(c).copied())
        else {
            return;
        };
        if matches!(
            self.calls.get(id as usize).map(|c| &c.phase),
            Some(Phase::Up { .. })
        ) {
            self.totals.remote_hangups += 1;
            self.stop_media(id);
            if let Some(c) = self.calls.get_mut(id as usize) {
                c.phase = Phase::Ended;
            }
            self.drain(id, now);
        }
    }
}
