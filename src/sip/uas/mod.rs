//! The UAS core behind [`crate::sip::endpoint::Endpoint`]: message dispatch (trust, rate
//! limit, transaction matching, retransmission absorption), new INVITEs and their checks,
//! CANCEL, ACK, out-of-dialog OPTIONS/REGISTER, responses (Via `received`/`rport`), and the
//! transaction timers. `call` holds the in-dialog side, the engine's commands and the
//! per-call timers. Split from `endpoint.rs` so that file keeps the public contract readable.
//!
//! Input: parsed messages with their source, commands, timeouts (all with `now`).
//! Output: pushed onto the endpoint's output queue.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

mod call;

use crate::ids::CallKey;
use crate::sdp::{self, LocalMedia, SdpError, Session};
use crate::sip::dialog::{Dialog, fmt_addr, record_route_headers};
use crate::sip::endpoint::{
    CallCommand, EARLY_CALL_TIMEOUT, EndReason, Endpoint, Event, MAX_SERVER_TRANSACTIONS, Output,
    Peer, Transport,
};
use crate::sip::headers::{self, ViaParts};
use crate::sip::message::{self, Header, Incoming, Method, Request, Response};
use crate::sip::transaction::{
    ClientInput, ClientKey, ClientNonInvite, Retransmit, ServerInvite, ServerInviteInput,
    ServerNonInvite, ServerNonInviteInput, TsxEvent, TsxKey, TsxOutput,
};

/// Methods we handle, for Allow.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";

/// A server transaction of either kind.
#[derive(Debug)]
pub(crate) enum ServerTsx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

/// A server transaction and the call it belongs to.
#[derive(Debug)]
pub(crate) struct ServerEntry {
    tsx: ServerTsx,
    call: Option<CallKey>,
}

impl ServerEntry {
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match &self.tsx {
            ServerTsx::Invite(t) => t.poll_timeout(),
            ServerTsx::NonInvite(t) => t.poll_timeout(),
        }
    }

    fn is_terminated(&self) -> bool {
        match &self.tsx {
            ServerTsx::Invite(t) => t.is_terminated(),
            ServerTsx::NonInvite(t) => t.is_terminated(),
        }
    }

    fn poll_output(&mut self) -> Option<TsxOutput> {
        match &mut self.tsx {
            ServerTsx::Invite(t) => t.poll_output(),
            ServerTsx::NonInvite(t) => t.poll_output(),
        }
    }
}

/// A client transaction (BYE) and the call it was for.
#[derive(Debug)]
pub(crate) struct ClientEntry {
    pub(crate) tsx: ClientNonInvite,
    call: Option<CallKey>,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent, waiting for the ACK.
    Answered,
    /// ACK received.
    Confirmed,
}

/// A 2xx we retransmit until its ACK (13.3.1.4).
#[derive(Debug, Clone)]
struct Pending2xx {
    cseq: u32,
    bytes: Bytes,
    to: Peer,
    timer: Retransmit,
    give_up: Instant,
    /// The 2xx carried our offer: the answer comes in the ACK.
    answer_in_ack: bool,
}

/// One call: its dialog, its INVITE, and its media negotiation state.
#[derive(Debug)]
pub(crate) struct Call {
    state: CallState,
    /// Where the INVITE came from (responses stamp Via against it).
    source: Peer,
    invite: Request,
    /// This call's entry in [`Endpoint::merge_index`].
    merge_key: MergeKey,
    invite_key: TsxKey,
    dialog: Dialog,
    local: Option<LocalMedia>,
    /// Our last SDP body (answer or offer).
    local_sdp: Option<Vec<u8>>,
    session: Option<Session>,
    pending_2xx: Option<Pending2xx>,
    ends_at: Option<Instant>,
    hangup_on_ack: bool,
}

impl Call {
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let p = self.pending_2xx.as_ref().map(|p| p.timer.at.min(p.give_up));
        match (p, self.ends_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn local_tag(&self) -> String {
        self.dialog.id().local_tag.clone()
    }
}

/// Transaction deadlines in a min-heap, cleaned lazily: `set` records the current
/// deadline of a key (pushing only when it changed); entries whose key has since moved or
/// gone are skipped when popped. [`Deadlines::next`] may therefore be early (a stale entry
/// on top), which only costs the owner a harmless early wake-up.
#[derive(Debug)]
pub(crate) struct Deadlines<K: Ord + Hash + Clone> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    current: HashMap<K, Instant>,
}

impl<K: Ord + Hash + Clone> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            current: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Deadlines<K> {
    /// Record `key`'s deadline (`None`: it has none, or is gone).
    pub(crate) fn set(&mut self, key: &K, at: Option<Instant>) {
        match at {
            Some(at) if self.current.get(key) != Some(&at) => {
                self.current.insert(key.clone(), at);
                self.heap.push(Reverse((at, key.clone())));
            }
            Some(_) => {}
            None => {
                self.current.remove(key);
            }
        }
        self.clean();
    }

    /// Drop stale entries from the top (so `next` is exact in the usual case) and rebuild
    /// the heap when stale entries outnumber live ones (a key's old deadline can be hours
    /// away: a call's maximum duration), so memory follows the live keys.
    fn clean(&mut self) {
        while let Some(Reverse((at, key))) = self.heap.peek() {
            if self.current.get(key) == Some(at) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * self.current.len() + 64 {
            self.heap = self
                .current
                .iter()
                .map(|(k, at)| Reverse((*at, k.clone())))
                .collect();
        }
    }

    /// The earliest deadline (possibly a stale, earlier one).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Keys whose current deadline is at or before `now`, each once; they are forgotten
    /// until `set` again.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.heap.pop() else {
                break; // peeked just above
            };
            if self.current.get(&key) == Some(&at) {
                self.current.remove(&key);
                due.push(key);
            }
        }
        self.clean();
        due
    }

    /// Entries in the heap, stale ones included (for bounds checks).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// Where responses to `req` go (RFC 3261 18.2.2, RFC 3581): over TCP the connection it came
/// on; over UDP the source IP, with the source port when `rport` was asked for, else the
/// Via port (5060 by default).
fn reply_to(req: &Request, source: Peer) -> Peer {
    if source.transport == Transport::Tcp {
        return source;
    }
    let via = headers::top_via(&req.headers);
    let port = match &via {
        Some(v) if v.param("rport").is_some() => source.addr.port(),
        Some(v) => v.port.unwrap_or(5060),
        None => source.addr.port(),
    };
    Peer {
        addr: SocketAddr::new(source.addr.ip(), port),
        ..source
    }
}

/// The top Via with `received` (sent-by differs from the source) and `rport` filled in.
fn stamped_via(req: &Request, source: Peer) -> Option<String> {
    let raw = headers::top_via_raw(&req.headers)?;
    let mut via = ViaParts::parse(&raw)?;
    let ip = source.addr.ip().to_string();
    let asked_rport = via.param("rport").is_some();
    if via.host != ip || asked_rport {
        via.set_param("received", Some(ip));
    }
    if asked_rport {
        via.set_param("rport", Some(source.addr.port().to_string()));
    }
    Some(via.print())
}

/// What makes two INVITEs "the same request" (section 8.2.2.2): Call-ID, From tag and
/// CSeq. Calls are indexed by it ([`Endpoint::merge_index`]) so a new INVITE is checked in
/// O(1), not against every call up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MergeKey {
    call_id: Option<String>,
    from_tag: Option<String>,
    cseq: Option<(u32, String)>,
}

impl MergeKey {
    fn of(req: &Request) -> MergeKey {
        MergeKey {
            call_id: headers::call_id(&req.headers).map(str::to_owned),
            from_tag: headers::first(&req.headers, "From")
                .and_then(headers::tag_param)
                .map(str::to_owned),
            cseq: headers::cseq(&req.headers).map(|(n, m)| (n, m.to_owned())),
        }
    }
}

fn hdr(name: &str, value: impl Into<String>) -> Header {
    Header::Other(name.to_owned(), value.into())
}

impl Endpoint {
    // -------------------------------------------------------------------------------
    // Building and sending responses

    /// A response to `req` as bytes: Via stamped for `source`, Server header added.
    fn response_bytes(
        &self,
        req: &Request,
        source: Peer,
        code: u16,
        to_tag: Option<&str>,
        mut extra: Vec<Header>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Bytes {
        extra.push(hdr("Server", self.config.user_agent.clone()));
        let mut resp: Response = message::build_response(req, code, to_tag, extra, body);
        if let Some(stamped) = stamped_via(req, source) {
            let mut done = false;
            for h in resp.headers.iter_mut() {
                if !done && h.name().eq_ignore_ascii_case("Via") {
                    done = true;
                    let mut parts = headers::split_list(h.value());
                    if let Some(top) = parts.first_mut() {
                        top.clone_from(&stamped);
                    }
                    *h = hdr("Via", parts.join(", "));
                }
            }
        }
        Bytes::from(resp.to_bytes())
    }

    /// Our Contact, with `transport=tcp` for dialogs over TCP.
    fn contact(&self, transport: Transport) -> Header {
        let param = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        hdr(
            "Contact",
            format!("<sip:guichet@{}{param}>", fmt_addr(self.config.local)),
        )
    }

    fn options_headers(&self) -> Vec<Header> {
        vec![
            hdr("Allow", ALLOW),
            hdr("Accept", "application/sdp"),
            hdr("Supported", ""),
        ]
    }

    fn push_transmit(out: &mut VecDeque<Output>, o: TsxOutput) {
        if let TsxOutput::Transmit { to, bytes } = o {
            out.push_back(Output::Transmit { to, bytes });
        }
    }

    /// Drain a server transaction's output; drop it once terminated.
    fn pump_server(&mut self, key: &TsxKey) {
        if let Some(entry) = self.servers.get_mut(key) {
            while let Some(o) = entry.poll_output() {
                Self::push_transmit(&mut self.out, o); // TimedOut (Timer H): nothing to do
            }
            if entry.is_terminated() {
                self.servers.remove(key);
                self.server_timers.set(key, None);
            } else {
                self.server_timers.set(key, entry.poll_timeout());
            }
        }
    }

    /// Drain a client transaction's output; drop it once terminated. The call already
    /// ended when the BYE was sent, so its final response or timeout only ends the
    /// transaction.
    fn pump_client(&mut self, key: &ClientKey) {
        if let Some(entry) = self.clients.get_mut(key) {
            while let Some(o) = entry.tsx.poll_output() {
                match o {
                    TsxOutput::Transmit { .. } => Self::push_transmit(&mut self.out, o),
                    TsxOutput::Event(TsxEvent::Response(r)) => {
                        tracing::debug!(code = r.status_code.code(), call = ?entry.call, "BYE answered")
                    }
                    TsxOutput::Event(TsxEvent::TimedOut) => {
                        tracing::debug!(call = ?entry.call, "BYE timed out")
                    }
                }
            }
            if entry.tsx.is_terminated() {
                self.clients.remove(key);
                self.client_timers.set(key, None);
            } else {
                self.client_timers.set(key, entry.tsx.poll_timeout());
            }
        }
    }

    /// Answer a non-INVITE request through a new server transaction (statelessly when
    /// the transaction table is full).
    #[allow(clippy::too_many_arguments)]
    fn respond_non_invite(
        &mut self,
        now: Instant,
        source: Peer,
        req: &Request,
        key: TsxKey,
        call: Option<CallKey>,
        code: u16,
        to_tag: Option<&str>,
        extra: Vec<Header>,
        body: Option<(&str, Vec<u8>)>,
    ) {
        let fresh_tag;
        let to_tag = match to_tag {
            Some(t) => Some(t),
            None if code > 100 => {
                fresh_tag = self.rng.tag();
                Some(fresh_tag.as_str())
            }
            None => None,
        };
        let bytes = self.response_bytes(req, source, code, to_tag, extra, body);
        let peer = reply_to(req, source);
        if self.servers.len() >= MAX_SERVER_TRANSACTIONS {
            self.out.push_back(Output::Transmit { to: peer, bytes });
            return;
        }
        let mut tsx = ServerNonInvite::new(peer, self.config.timers);
        tsx.handle_input(ServerNonInviteInput::Respond { now, code, bytes });
        self.servers.insert(
            key.clone(),
            ServerEntry {
                tsx: ServerTsx::NonInvite(tsx),
                call,
            },
        );
        self.pump_server(&key);
    }

    /// Refuse an INVITE at once with a final response, keeping an INVITE server
    /// transaction so its ACK is absorbed and retransmissions answered.
    fn refuse_invite(&mut self, now: Instant, peer: Peer, key: TsxKey, bytes: Bytes, code: u16) {
        if self.servers.len() >= MAX_SERVER_TRANSACTIONS {
            self.out.push_back(Output::Transmit { to: peer, bytes });
            return;
        }
        let tsx = ServerInvite::refused(now, peer, code, bytes, self.config.timers);
        self.servers.insert(
            key.clone(),
            ServerEntry {
                tsx: ServerTsx::Invite(tsx),
                call: None,
            },
        );
        self.pump_server(&key);
    }

    /// Send a response on the call's INVITE server transaction.
    fn respond_invite(&mut self, now: Instant, key: &TsxKey, code: u16, bytes: Bytes) {
        if let Some(ServerEntry {
            tsx: ServerTsx::Invite(t),
            ..
        }) = self.servers.get_mut(key)
        {
            t.handle_input(ServerInviteInput::Respond { now, code, bytes });
        }
        self.pump_server(key);
    }

    // -------------------------------------------------------------------------------
    // Messages in

    pub(super) fn on_message(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        if !self.is_trusted(from.addr.ip()) {
            self.stats.untrusted += 1;
            return;
        }
        match message::read_datagram(bytes) {
            Incoming::Drop(e) => {
                tracing::debug!(error = %e, source = %from.addr, "dropped malformed message");
                self.stats.dropped_malformed += 1;
            }
            Incoming::Response(r) => self.on_response(now, r),
            Incoming::Request(r) => self.on_request(now, from, r),
            Incoming::Refuse {
                request,
                code,
                response,
            } => self.on_refuse(now, from, request, code, response),
        }
    }

    fn on_refuse(
        &mut self,
        now: Instant,
        from: Peer,
        request: Option<Box<Request>>,
        code: u16,
        response: Vec<u8>,
    ) {
        let Some(req) = request else {
            self.stats.refused += 1;
            self.out.push_back(Output::Transmit {
                to: from,
                bytes: Bytes::from(response),
            });
            return;
        };
        if req.method == Method::Ack {
            self.stats.refused += 1;
            return; // an ACK is never answered
        }
        let Ok(key) = TsxKey::of_request(&req) else {
            self.stats.refused += 1;
            self.out.push_back(Output::Transmit {
                to: reply_to(&req, from),
                bytes: Bytes::from(response),
            });
            return;
        };
        if self.servers.contains_key(&key) {
            self.absorb_retransmission(now, &key);
            return;
        }
        if !self.admit(from, now) {
            return;
        }
        self.stats.refused += 1;
        let peer = reply_to(&req, from);
        if req.method == Method::Invite {
            self.refuse_invite(now, peer, key, Bytes::from(response), code);
        } else {
            let mut tsx = ServerNonInvite::new(peer, self.config.timers);
            tsx.handle_input(ServerNonInviteInput::Respond {
                now,
                code,
                bytes: Bytes::from(response),
            });
            if self.servers.len() < MAX_SERVER_TRANSACTIONS {
                self.servers.insert(
                    key.clone(),
                    ServerEntry {
                        tsx: ServerTsx::NonInvite(tsx),
                        call: None,
                    },
                );
                self.pump_server(&key);
            } else {
                while let Some(o) = tsx.poll_output() {
                    Self::push_transmit(&mut self.out, o);
                }
            }
        }
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let Some(key) = ClientKey::of_response(&resp) else {
            self.stats.stray_responses += 1;
            return;
        };
        match self.clients.get_mut(&key) {
            Some(entry) => {
                entry.tsx.handle_input(ClientInput::Response {
                    now,
                    response: Box::new(resp),
                });
                self.pump_client(&key);
            }
            None => self.stats.stray_responses += 1,
        }
    }

    /// The per-source rate limit on requests that would create state without belonging to
    /// a call (new INVITE/OPTIONS/REGISTER, and the 481/405/refusals a flood would cause).
    fn admit(&mut self, from: Peer, now: Instant) -> bool {
        let allowed = self.limiter.allow(from.addr.ip(), now);
        if !allowed {
            self.stats.rate_limited += 1;
        }
        allowed
    }

    fn absorb_retransmission(&mut self, now: Instant, key: &TsxKey) {
        self.stats.retransmissions_absorbed += 1;
        if let Some(entry) = self.servers.get_mut(key) {
            match &mut entry.tsx {
                ServerTsx::Invite(t) => t.handle_input(ServerInviteInput::Retransmission { now }),
                ServerTsx::NonInvite(t) => {
                    t.handle_input(ServerNonInviteInput::Retransmission { now })
                }
            }
        }
        self.pump_server(key);
    }

    fn on_request(&mut self, now: Instant, from: Peer, req: Request) {
        let Ok(key) = TsxKey::of_request(&req) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if req.method == Method::Ack {
            self.on_ack(now, &req, &key);
            return;
        }
        if self.servers.contains_key(&key) {
            self.absorb_retransmission(now, &key);
            return;
        }
        if req.method == Method::Cancel {
            self.on_cancel(now, from, &req, key);
            return;
        }
        if let Some(id) = Dialog::id_of_request(&req) {
            match self.dialogs.get(&id).copied() {
                Some(call) => self.on_in_dialog(now, from, req, key, call),
                None if !self.admit(from, now) => {}
                None if req.method == Method::Invite => {
                    let tag = self.rng.tag();
                    let bytes = self.response_bytes(&req, from, 481, Some(&tag), vec![], None);
                    self.refuse_invite(now, reply_to(&req, from), key, bytes, 481);
                }
                None => {
                    self.respond_non_invite(now, from, &req, key, None, 481, None, vec![], None)
                }
            }
            return;
        }
        if !self.admit(from, now) {
            return;
        }
        match req.method {
            Method::Invite => self.on_new_invite(now, from, req, key),
            Method::Options => {
                let extra = self.options_headers();
                self.respond_non_invite(now, from, &req, key, None, 200, None, extra, None)
            }
            Method::Register if self.registrar.is_some() => {
                if let Some(reg) = self.registrar.as_mut() {
                    let outcome = reg.handle_register(now, &req, from.addr);
                    if let Some(error) = &outcome.error {
                        tracing::debug!(%error, status = outcome.status(), "REGISTER refused");
                    }
                    let status = outcome.status();
                    self.respond_non_invite(
                        now,
                        from,
                        &req,
                        key,
                        None,
                        status,
                        Some(&outcome.to_tag),
                        outcome.headers,
                        None,
                    );
                }
            }
            // Registrar disabled: 405 with what we do allow.
            Method::Register => self.respond_non_invite(
                now,
                from,
                &req,
                key,
                None,
                405,
                None,
                vec![hdr("Allow", ALLOW)],
                None,
            ),
            Method::Bye | Method::Info | Method::Update | Method::PRack => {
                self.respond_non_invite(now, from, &req, key, None, 481, None, vec![], None)
            }
            _ => self.respond_non_invite(
                now,
                from,
                &req,
                key,
                None,
                405,
                None,
                vec![hdr("Allow", ALLOW)],
                None,
            ),
        }
    }

    fn on_new_invite(&mut self, now: Instant, from: Peer, req: Request, key: TsxKey) {
        let tag = self.rng.tag();
        if self.calls.len() >= self.config.max_calls {
            self.stats.over_capacity += 1;
            let extra = vec![hdr("Retry-After", self.config.retry_after_secs.to_string())];
            let bytes = self.response_bytes(&req, from, 503, Some(&tag), extra, None);
            self.refuse_invite(now, reply_to(&req, from), key, bytes, 503);
            return;
        }
        // 8.2.2.2: the same request (Call-ID, From tag, CSeq) on another branch is a merged
        // request (forked back to us): 482, not a second call.
        let merge_key = MergeKey::of(&req);
        if self.merge_index.contains_key(&merge_key) {
            let bytes = self.response_bytes(&req, from, 482, Some(&tag), vec![], None);
            self.refuse_invite(now, reply_to(&req, from), key, bytes, 482);
            return;
        }
        let ruri = req.uri.to_string();
        let to_user = headers::uri_user(&ruri).to_owned();
        if !self.config.numbers.is_empty() && !self.config.numbers.contains(&to_user) {
            let bytes = self.response_bytes(&req, from, 404, Some(&tag), vec![], None);
            self.refuse_invite(now, reply_to(&req, from), key, bytes, 404);
            return;
        }
        let peer = reply_to(&req, from);
        let dialog = match Dialog::uas(&req, &tag, peer) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "INVITE cannot create a dialog");
                let bytes = self.response_bytes(&req, from, 400, Some(&tag), vec![], None);
                self.refuse_invite(now, peer, key, bytes, 400);
                return;
            }
        };
        let call = CallKey(self.next_call);
        self.next_call = self.next_call.saturating_add(1);
        let trying = self.response_bytes(&req, from, 100, None, vec![], None);
        let tsx = ServerInvite::new(now, peer, trying, self.config.timers);
        self.servers.insert(
            key.clone(),
            ServerEntry {
                tsx: ServerTsx::Invite(tsx),
                call: Some(call),
            },
        );
        self.pump_server(&key);
        let call_id = dialog.id().call_id.clone();
        let from_uri = headers::first(&req.headers, "From")
            .map(|f| headers::uri_of(f).to_owned())
            .unwrap_or_default();
        self.dialogs.insert(dialog.id().clone(), call);
        self.merge_index.insert(merge_key.clone(), call);
        self.calls.insert(
            call,
            Call {
                merge_key,
                state: CallState::Early,
                source: from,
                invite: req,
                invite_key: key,
                dialog,
                local: None,
                local_sdp: None,
                session: None,
                pending_2xx: None,
                // An unanswered call cannot wait forever (a vanished engine task or UAC).
                ends_at: Some(now + EARLY_CALL_TIMEOUT),
                hangup_on_ack: false,
            },
        );
        self.refresh_call_timer(call);
        self.out.push_back(Output::Event(Event::IncomingCall {
            call,
            call_id,
            from: from_uri,
            to_user,
            source: from,
        }));
    }

    fn on_cancel(&mut self, now: Instant, from: Peer, req: &Request, key: TsxKey) {
        let invite_key = key.with_method("INVITE");
        let (proceeding, call) = match self.servers.get(&invite_key) {
            Some(ServerEntry {
                tsx: ServerTsx::Invite(t),
                call,
            }) => (t.is_proceeding(), *call),
            _ => {
                if self.admit(from, now) {
                    self.respond_non_invite(now, from, req, key, None, 481, None, vec![], None);
                }
                return;
            }
        };
        let tag = call.and_then(|c| self.calls.get(&c)).map(Call::local_tag);
        self.respond_non_invite(now, from, req, key, call, 200, tag.as_deref(), vec![], None);
        if !proceeding {
            return; // the INVITE already has its final response: CANCEL has no effect
        }
        if let Some(c) = call
            && let Some(callst) = self.calls.get(&c)
            && callst.state == CallState::Early
        {
            let bytes = self.response_bytes(
                &callst.invite,
                from,
                487,
                Some(&callst.local_tag()),
                vec![],
                None,
            );
            self.respond_invite(now, &invite_key, 487, bytes);
            self.end_call(c, EndReason::Cancelled);
        }
    }

    fn on_ack(&mut self, now: Instant, req: &Request, key: &TsxKey) {
        if let Some(ServerEntry {
            tsx: ServerTsx::Invite(t),
            ..
        }) = self.servers.get_mut(key)
            && !t.is_accepted()
        {
            t.handle_input(ServerInviteInput::Ack { now });
            self.pump_server(key);
            return;
        }
        let Some(call) = Dialog::id_of_request(req).and_then(|id| self.dialogs.get(&id).copied())
        else {
            return; // an ACK for nothing we know: never answered
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let cseq = headers::cseq(&req.headers).map(|(n, _)| n);
        let Some(p) = c.pending_2xx.take_if(|p| Some(p.cseq) == cseq) else {
            return; // a retransmitted ACK
        };
        if c.state == CallState::Answered {
            c.state = CallState::Confirmed;
            c.ends_at = Some(now + self.config.max_call_duration);
            self.out.push_back(Output::Event(Event::Confirmed { call }));
        }
        self.call_timers.set(&call, c.poll_timeout());
        if p.answer_in_ack {
            match sdp::accept_answer(&req.body) {
                Ok(session) => {
                    c.session = Some(session.clone());
                    self.out
                        .push_back(Output::Event(Event::MediaUpdated { call, session }));
                }
                Err(e) => {
                    tracing::debug!(error = %e, %call, "no usable SDP answer in the ACK");
                    self.send_bye(now, call, EndReason::NoCommonCodec);
                    return;
                }
            }
        }
        let hangup = self.calls.get(&call).is_some_and(|c| c.hangup_on_ack);
        if hangup {
            self.send_bye(now, call, EndReason::LocalBye);
        }
    }

    // -------------------------------------------------------------------------------
    // Timers

    pub(super) fn on_timeout(&mut self, now: Instant) {
        if let Some(reg) = self.registrar.as_mut()
            && reg.poll_timeout().is_some_and(|at| at <= now)
        {
            reg.expire(now);
        }
        for key in self.server_timers.pop_due(now) {
            if let Some(entry) = self.servers.get_mut(&key) {
                match &mut entry.tsx {
                    ServerTsx::Invite(t) => t.handle_input(ServerInviteInput::Timeout { now }),
                    ServerTsx::NonInvite(t) => {
                        t.handle_input(ServerNonInviteInput::Timeout { now })
                    }
                }
            }
            self.pump_server(&key);
        }
        for key in self.client_timers.pop_due(now) {
            if let Some(entry) = self.clients.get_mut(&key) {
                entry.tsx.handle_input(ClientInput::Timeout { now });
            }
            self.pump_client(&key);
        }
        let mut due = self.call_timers.pop_due(now);
        due.sort(); // deterministic output order whatever the heap's order
        for call in due {
            self.call_timeout(now, call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::endpoint::EndpointConfig;
    use crate::sip::message::SipMessage;
    use std::time::Duration;

    const INVITE: &str = "INVITE sip:0800@192.0.2.10 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKrefused\r\n\
        From: <sip:a@192.0.2.1>;tag=f\r\nTo: <sip:0800@192.0.2.10>\r\nCall-ID: r1\r\n\
        CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    fn request(text: &str) -> Request {
        match message::parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("bad test request: {other:?}"),
        }
    }

    fn transmits(ep: &mut Endpoint) -> usize {
        std::iter::from_fn(|| ep.poll_output())
            .filter(|o| matches!(o, Output::Transmit { .. }))
            .count()
    }

    #[test]
    fn refused_invite_keeps_a_transaction_for_its_ack_and_retransmissions() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer {
            transport: Transport::Udp,
            addr: "192.0.2.1:5060".parse().unwrap(),
            conn: None,
        };
        let req = request(INVITE);
        let resp = message::build_response(&req, 420, Some("x"), vec![], None).to_bytes();
        ep.on_refuse(t0, from, Some(Box::new(req.clone())), 420, resp.clone());
        assert_eq!(transmits(&mut ep), 1);
        assert_eq!(ep.stats().refused, 1);
        // The retransmitted INVITE is refused again by the transaction, not re-checked.
        ep.on_refuse(
            t0 + Duration::from_millis(100),
            from,
            Some(Box::new(req)),
            420,
            resp,
        );
        assert_eq!(transmits(&mut ep), 1);
        assert_eq!(ep.stats().refused, 1);
        assert_eq!(ep.stats().retransmissions_absorbed, 1);
        // Timer G, then the ACK stops it.
        ep.on_timeout(t0 + Duration::from_millis(500));
        assert_eq!(transmits(&mut ep), 1);
        let ack = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK")
            .replace("0800@192.0.2.10>", "0800@192.0.2.10>;tag=x");
        ep.on_message(t0 + Duration::from_millis(600), from, ack.as_bytes());
        ep.on_timeout(t0 + Duration::from_secs(2));
        assert_eq!(transmits(&mut ep), 0);
        ep.on_timeout(t0 + Duration::from_secs(10));
        assert_eq!(ep.transactions(), 0);
    }

    #[test]
    fn deadlines_skip_stale_entries_and_pop_each_key_once() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d: Deadlines<u32> = Deadlines::default();
        d.set(&1, Some(at(100)));
        d.set(&1, Some(at(100))); // unchanged: not pushed again
        d.set(&2, Some(at(50)));
        d.set(&2, Some(at(300))); // moved later: the 50 ms entry is stale
        d.set(&3, Some(at(10)));
        d.set(&3, None); // gone
        // Stale entries on top (3 at 10 ms, 2 at 50 ms) are dropped at once.
        assert_eq!(d.len(), 2);
        assert_eq!(d.next(), Some(at(100)));
        assert_eq!(d.pop_due(at(200)), vec![1]);
        assert_eq!(d.next(), Some(at(300)));
        assert!(d.pop_due(at(299)).is_empty());
        assert_eq!(d.pop_due(at(300)), vec![2]);
        assert_eq!(d.next(), None);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn deadlines_stay_bounded_when_far_deadlines_go_stale() {
        // Calls end long before their maximum-duration deadline: the stale entries must
        // not pile up (1,000 new calls/s for 2 h would be 7.2 million of them).
        let t0 = Instant::now();
        let mut d: Deadlines<u32> = Deadlines::default();
        d.set(&0, Some(t0 + Duration::from_secs(1))); // one live key, earliest
        for k in 1..10_000u32 {
            d.set(&k, Some(t0 + Duration::from_secs(7200)));
            d.set(&k, None);
        }
        assert!(d.len() <= 2 + 64, "{} heap entries for 1 live key", d.len());
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(7200)), vec![0]);
        assert_eq!(d.len(), 0);
    }
}
