//! RFC 3261 section 17 transactions (with RFC 6026's Accepted state), sans-IO.
//!
//! Four machines, each owning the retransmission of one request/response exchange:
//! - [`ServerInvite`]: 100 Trying at once; a non-2xx final response is retransmitted over
//!   UDP on Timer G (T1 doubling to T2) until the ACK (then Timer I) or Timer H (64*T1);
//!   a 2xx moves it to Accepted (Timer L), where retransmitted INVITEs are absorbed and
//!   2xx retransmission is the dialog's job.
//! - [`ServerNonInvite`]: retransmitted requests answered from the last response; Timer J.
//! - [`ClientInvite`]: Timers A (doubling), B, D, M; builds the ACK for a non-2xx response.
//! - [`ClientNonInvite`]: Timers E (doubling to T2), F, K.
//!
//! Over a reliable transport (TCP) the retransmission timers (G, A, E) are off and the
//! absorption timers (I, J, K, D) are zero; H, B, F, L, M still apply.
//!
//! Timer values are clamped ([`Timers::clamped`]) so deadline arithmetic cannot overflow.
//! Every input carries `now`; outputs ([`TsxOutput`]) are drained with `poll_output`;
//! `poll_timeout` is the next deadline. Timers are deadlines in the state, never spawned.
//! [`TsxKey`] implements the matching rules of section 17.2.3 (and 17.1.3 for responses).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use guichet::sip::endpoint::{Peer, Timers, Transport};
//! use guichet::sip::transaction::{ServerInvite, ServerInviteInput, TsxOutput};
//! let t0 = Instant::now(); // tests use a fixed start; the engine passes its clock
//! let peer = Peer { transport: Transport::Udp, addr: "10.0.0.9:5060".parse().unwrap(), conn: None };
//! let mut tsx = ServerInvite::new(t0, peer, Bytes::from_static(b"100"), Timers::default());
//! assert!(matches!(tsx.poll_output(), Some(TsxOutput::Transmit { .. }))); // 100 Trying
//! tsx.handle_input(ServerInviteInput::Respond { now: t0, code: 486, bytes: Bytes::from_static(b"486") });
//! assert!(tsx.poll_output().is_some()); // the 486
//! assert_eq!(tsx.poll_timeout(), Some(t0 + Duration::from_millis(500))); // Timer G
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::endpoint::{Peer, Timers, Transport};
use crate::sip::headers::{self, BRANCH_COOKIE};
use crate::sip::message::{Header, Request, Response};

/// Why a transaction could not be created from a message.
#[derive(Debug, thiserror::Error)]
pub enum TsxError {
    /// The message lacks a header the matching rules need.
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
}

/// What identifies a transaction (RFC 3261 section 17.2.3). ACK is keyed as the INVITE it
/// acknowledges; CANCEL has its own key, and [`TsxKey::with_method`] finds what it cancels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TsxKey {
    /// A branch with the `z9hG4bK` cookie: branch + sent-by + method.
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// Pre-RFC 3261 peers: Request-URI, From tag, Call-ID, CSeq number, top Via, method.
    Rfc2543 {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

impl TsxKey {
    /// The server transaction key of a request.
    pub fn of_request(req: &Request) -> Result<TsxKey, TsxError> {
        let method = match req.method.to_string().as_str() {
            "ACK" => "INVITE".to_owned(),
            m => m.to_owned(),
        };
        let raw_via = headers::top_via_raw(&req.headers).ok_or(TsxError::MissingHeader("Via"))?;
        let via = headers::ViaParts::parse(&raw_via).ok_or(TsxError::MissingHeader("Via"))?;
        match via.branch() {
            Some(b) if b.starts_with(BRANCH_COOKIE) => Ok(TsxKey::Rfc3261 {
                branch: b.to_owned(),
                sent_by: via.sent_by().to_ascii_lowercase(),
                method,
            }),
            _ => {
                let from =
                    headers::first(&req.headers, "From").ok_or(TsxError::MissingHeader("From"))?;
                let (cseq, _) =
                    headers::cseq(&req.headers).ok_or(TsxError::MissingHeader("CSeq"))?;
                Ok(TsxKey::Rfc2543 {
                    request_uri: req.uri.to_string(),
                    from_tag: headers::tag_param(from).unwrap_or("").to_owned(),
                    call_id: headers::call_id(&req.headers)
                        .ok_or(TsxError::MissingHeader("Call-ID"))?
                        .to_owned(),
                    cseq,
                    top_via: raw_via.to_ascii_lowercase(),
                    method,
                })
            }
        }
    }

    /// The same key for another method (CANCEL -> the INVITE it cancels, section 9.2).
    pub fn with_method(&self, new_method: &str) -> TsxKey {
        let mut k = self.clone();
        match &mut k {
            TsxKey::Rfc3261 { method, .. } | TsxKey::Rfc2543 { method, .. } => {
                *method = new_method.to_owned()
            }
        }
        k
    }

    /// The method this key is for.
    pub fn method(&self) -> &str {
        match self {
            TsxKey::Rfc3261 { method, .. } | TsxKey::Rfc2543 { method, .. } => method,
        }
    }
}

/// The key of a client transaction: our branch and the CSeq method (section 17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub branch: String,
    pub method: String,
}

impl ClientKey {
    /// The key a response matches: its top Via branch and CSeq method.
    pub fn of_response(resp: &Response) -> Option<ClientKey> {
        let via = headers::top_via(&resp.headers)?;
        let (_, method) = headers::cseq(&resp.headers)?;
        Some(ClientKey {
            branch: via.branch()?.to_owned(),
            method: method.to_ascii_uppercase(),
        })
    }
}

/// What a transaction produces.
#[derive(Debug, Clone)]
pub enum TsxOutput {
    /// Bytes to send to `to`.
    Transmit { to: Peer, bytes: Bytes },
    /// Something for the transaction user.
    Event(TsxEvent),
}

/// What a transaction tells its user.
#[derive(Debug, Clone)]
pub enum TsxEvent {
    /// A response to our request (client transactions; the first of each, and every 2xx
    /// passing through an INVITE client transaction's Accepted state).
    Response(Box<Response>),
    /// Client: Timer B/F fired with no final response. Server INVITE: Timer H fired
    /// without an ACK for our non-2xx final response.
    TimedOut,
}

fn reliable(peer: &Peer) -> bool {
    peer.transport == Transport::Tcp
}

fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A retransmission timer: next deadline and the interval that led to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    pub at: Instant,
    pub interval: Duration,
}

// ---------------------------------------------------------------------------------------
// INVITE server transaction (17.2.1, RFC 6026 section 7.1)

/// State of an INVITE server transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerInviteState {
    /// No final response yet; retransmitted INVITEs get the last provisional response.
    Proceeding,
    /// A 300-699 was sent: Timer G retransmits it (UDP), Timer H gives up.
    Completed {
        timer_g: Option<Retransmit>,
        timer_h: Instant,
    },
    /// The ACK arrived: absorb ACK retransmissions until Timer I.
    Confirmed {
        timer_i: Instant,
    },
    /// RFC 6026: a 2xx was sent; absorb INVITE retransmissions until Timer L.
    Accepted {
        timer_l: Instant,
    },
    Terminated,
}

/// An input to [`ServerInvite`].
#[derive(Debug, Clone)]
pub enum ServerInviteInput {
    /// A retransmission of the INVITE.
    Retransmission {
        now: Instant,
    },
    /// An ACK matching this transaction.
    Ack {
        now: Instant,
    },
    /// The transaction user sends a response (1xx-6xx); a 2xx in Accepted is the
    /// dialog's retransmission and is passed through.
    Respond {
        now: Instant,
        code: u16,
        bytes: Bytes,
    },
    Timeout {
        now: Instant,
    },
}

/// An INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    peer: Peer,
    timers: Timers,
    state: ServerInviteState,
    last_response: Bytes,
    out: VecDeque<TsxOutput>,
}

impl ServerInvite {
    /// A transaction for a new INVITE from `peer`: `trying` (a 100) is sent at once.
    pub fn new(now: Instant, peer: Peer, trying: Bytes, timers: Timers) -> Self {
        let _ = now;
        let timers = timers.clamped();
        let mut tsx = ServerInvite {
            peer,
            timers,
            state: ServerInviteState::Proceeding,
            last_response: trying.clone(),
            out: VecDeque::new(),
        };
        tsx.transmit(trying);
        tsx
    }

    /// A transaction created directly in Completed with a final response already built
    /// (an INVITE refused before any processing): the response is sent at once.
    pub fn refused(now: Instant, peer: Peer, code: u16, response: Bytes, timers: Timers) -> Self {
        let timers = timers.clamped();
        let mut tsx = ServerInvite {
            peer,
            timers,
            state: ServerInviteState::Proceeding,
            last_response: Bytes::new(),
            out: VecDeque::new(),
        };
        tsx.handle_input(ServerInviteInput::Respond {
            now,
            code,
            bytes: response,
        });
        tsx
    }

    fn transmit(&mut self, bytes: Bytes) {
        self.out.push_back(TsxOutput::Transmit {
            to: self.peer,
            bytes,
        });
    }

    pub fn handle_input(&mut self, input: ServerInviteInput) {
        let t = self.timers;
        match (input, &self.state) {
            (ServerInviteInput::Retransmission { .. }, ServerInviteState::Proceeding)
            | (ServerInviteInput::Retransmission { .. }, ServerInviteState::Completed { .. }) => {
                self.transmit(self.last_response.clone());
            }
            (ServerInviteInput::Retransmission { .. }, _) => {} // Accepted/Confirmed: absorb
            (ServerInviteInput::Ack { now }, ServerInviteState::Completed { .. }) => {
                let wait = if reliable(&self.peer) {
                    Duration::ZERO
                } else {
                    t.t4
                };
                self.state = ServerInviteState::Confirmed {
                    timer_i: now + wait,
                };
            }
            (ServerInviteInput::Ack { .. }, _) => {}
            (ServerInviteInput::Respond { now, code, bytes }, ServerInviteState::Proceeding) => {
                self.transmit(bytes.clone());
                self.last_response = bytes;
                if (200..300).contains(&code) {
                    self.state = ServerInviteState::Accepted {
                        timer_l: now + t.t1 * 64,
                    };
                } else if code >= 300 {
                    let timer_g = (!reliable(&self.peer)).then_some(Retransmit {
                        at: now + t.t1,
                        interval: t.t1,
                    });
                    self.state = ServerInviteState::Completed {
                        timer_g,
                        timer_h: now + t.t1 * 64,
                    };
                }
            }
            (
                ServerInviteInput::Respond { code, bytes, .. },
                ServerInviteState::Accepted { .. },
            ) if (200..300).contains(&code) => self.transmit(bytes),
            (ServerInviteInput::Respond { .. }, _) => {} // too late for this transaction
            (
                ServerInviteInput::Timeout { now },
                &ServerInviteState::Completed { timer_g, timer_h },
            ) => {
                if now >= timer_h {
                    self.state = ServerInviteState::Terminated;
                    self.out.push_back(TsxOutput::Event(TsxEvent::TimedOut));
                } else if let Some(g) = timer_g
                    && now >= g.at
                {
                    let interval = (g.interval * 2).min(t.t2); // Timer G backs off to T2
                    self.state = ServerInviteState::Completed {
                        timer_g: Some(Retransmit {
                            at: now + interval,
                            interval,
                        }),
                        timer_h,
                    };
                    self.transmit(self.last_response.clone());
                }
            }
            (ServerInviteInput::Timeout { now }, &ServerInviteState::Confirmed { timer_i })
                if now >= timer_i =>
            {
                self.state = ServerInviteState::Terminated
            }
            (ServerInviteInput::Timeout { now }, &ServerInviteState::Accepted { timer_l })
                if now >= timer_l =>
            {
                self.state = ServerInviteState::Terminated
            }
            (ServerInviteInput::Timeout { .. }, _) => {}
        }
    }

    pub fn poll_output(&mut self) -> Option<TsxOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ServerInviteState::Proceeding | ServerInviteState::Terminated => None,
            ServerInviteState::Completed { timer_g, timer_h } => {
                min_deadline(timer_g.map(|g| g.at), Some(*timer_h))
            }
            ServerInviteState::Confirmed { timer_i } => Some(*timer_i),
            ServerInviteState::Accepted { timer_l } => Some(*timer_l),
        }
    }

    pub fn state(&self) -> &ServerInviteState {
        &self.state
    }

    /// No final response sent yet.
    pub fn is_proceeding(&self) -> bool {
        self.state == ServerInviteState::Proceeding
    }

    /// RFC 6026 Accepted: an ACK matching this transaction belongs to the dialog.
    pub fn is_accepted(&self) -> bool {
        matches!(self.state, ServerInviteState::Accepted { .. })
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }
}

// ---------------------------------------------------------------------------------------
// Non-INVITE server transaction (17.2.2)

/// State of a non-INVITE server transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding,
    /// Final response sent: retransmitted requests get it again until Timer J.
    Completed {
        timer_j: Instant,
    },
    Terminated,
}

/// An input to [`ServerNonInvite`].
#[derive(Debug, Clone)]
pub enum ServerNonInviteInput {
    Retransmission {
        now: Instant,
    },
    Respond {
        now: Instant,
        code: u16,
        bytes: Bytes,
    },
    Timeout {
        now: Instant,
    },
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    peer: Peer,
    timers: Timers,
    state: ServerNonInviteState,
    last_response: Bytes,
    out: VecDeque<TsxOutput>,
}

impl ServerNonInvite {
    pub fn new(peer: Peer, timers: Timers) -> Self {
        let timers = timers.clamped();
        ServerNonInvite {
            peer,
            timers,
            state: ServerNonInviteState::Trying,
            last_response: Bytes::new(),
            out: VecDeque::new(),
        }
    }

    pub fn handle_input(&mut self, input: ServerNonInviteInput) {
        match (input, &self.state) {
            (ServerNonInviteInput::Retransmission { .. }, ServerNonInviteState::Proceeding)
            | (
                ServerNonInviteInput::Retransmission { .. },
                ServerNonInviteState::Completed { .. },
            ) => {
                self.out.push_back(TsxOutput::Transmit {
                    to: self.peer,
                    bytes: self.last_response.clone(),
                });
            }
            (ServerNonInviteInput::Retransmission { .. }, _) => {}
            (
                ServerNonInviteInput::Respond { now, code, bytes },
                ServerNonInviteState::Trying | ServerNonInviteState::Proceeding,
            ) => {
                self.out.push_back(TsxOutput::Transmit {
                    to: self.peer,
                    bytes: bytes.clone(),
                });
                self.last_response = bytes;
                self.state = if code < 200 {
                    ServerNonInviteState::Proceeding
                } else {
                    let wait = if reliable(&self.peer) {
                        Duration::ZERO
                    } else {
                        self.timers.t1 * 64
                    };
                    ServerNonInviteState::Completed {
                        timer_j: now + wait,
                    }
                };
            }
            (ServerNonInviteInput::Respond { .. }, _) => {}
            (
                ServerNonInviteInput::Timeout { now },
                &ServerNonInviteState::Completed { timer_j },
            ) if now >= timer_j => self.state = ServerNonInviteState::Terminated,
            (ServerNonInviteInput::Timeout { .. }, _) => {}
        }
    }

    pub fn poll_output(&mut self) -> Option<TsxOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ServerNonInviteState::Completed { timer_j } => Some(timer_j),
            _ => None,
        }
    }

    pub fn state(&self) -> &ServerNonInviteState {
        &self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }
}

// ---------------------------------------------------------------------------------------
// Non-INVITE client transaction (17.1.2)

/// State of a non-INVITE client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying {
        timer_e: Option<Retransmit>,
    },
    Proceeding {
        timer_e: Option<Retransmit>,
    },
    /// Absorb response retransmissions until Timer K.
    Completed {
        timer_k: Instant,
    },
    Terminated,
}

/// An input to a client transaction.
#[derive(Debug, Clone)]
pub enum ClientInput {
    Response {
        now: Instant,
        response: Box<Response>,
    },
    Timeout {
        now: Instant,
    },
}

/// A non-INVITE client transaction (BYE, and later OPTIONS keep-alives...).
#[derive(Debug)]
pub struct ClientNonInvite {
    peer: Peer,
    timers: Timers,
    request: Bytes,
    timer_f: Instant,
    state: ClientNonInviteState,
    out: VecDeque<TsxOutput>,
}

impl ClientNonInvite {
    /// Send `request` to `peer` now and start Timers E and F.
    pub fn new(now: Instant, peer: Peer, request: Bytes, timers: Timers) -> Self {
        let timers = timers.clamped();
        let timer_e = (!reliable(&peer)).then_some(Retransmit {
            at: now + timers.t1,
            interval: timers.t1,
        });
        let mut tsx = ClientNonInvite {
            peer,
            timers,
            request: request.clone(),
            timer_f: now + timers.t1 * 64,
            state: ClientNonInviteState::Trying { timer_e },
            out: VecDeque::new(),
        };
        tsx.out.push_back(TsxOutput::Transmit {
            to: peer,
            bytes: request,
        });
        tsx
    }

    pub fn handle_input(&mut self, input: ClientInput) {
        let t = self.timers;
        match (input, &self.state) {
            (
                ClientInput::Response { now, response },
                ClientNonInviteState::Trying { timer_e }
                | ClientNonInviteState::Proceeding { timer_e },
            ) => {
                let code = response.status_code.code();
                if code < 200 {
                    self.state = ClientNonInviteState::Proceeding { timer_e: *timer_e };
                } else {
                    let wait = if reliable(&self.peer) {
                        Duration::ZERO
                    } else {
                        t.t4
                    };
                    self.state = ClientNonInviteState::Completed {
                        timer_k: now + wait,
                    };
                }
                self.out
                    .push_back(TsxOutput::Event(TsxEvent::Response(response)));
            }
            (ClientInput::Response { .. }, _) => {} // Completed: absorbed
            (
                ClientInput::Timeout { now },
                ClientNonInviteState::Trying { timer_e }
                | ClientNonInviteState::Proceeding { timer_e },
            ) => {
                let proceeding = matches!(self.state, ClientNonInviteState::Proceeding { .. });
                if now >= self.timer_f {
                    self.state = ClientNonInviteState::Terminated;
                    self.out.push_back(TsxOutput::Event(TsxEvent::TimedOut));
                } else if let Some(e) = *timer_e
                    && now >= e.at
                {
                    // Timer E doubles to T2 while Trying, stays at T2 once Proceeding.
                    let interval = if proceeding {
                        t.t2
                    } else {
                        (e.interval * 2).min(t.t2)
                    };
                    let timer_e = Some(Retransmit {
                        at: now + interval,
                        interval,
                    });
                    self.state = if proceeding {
                        ClientNonInviteState::Proceeding { timer_e }
                    } else {
                        ClientNonInviteState::Trying { timer_e }
                    };
                    self.out.push_back(TsxOutput::Transmit {
                        to: self.peer,
                        bytes: self.request.clone(),
                    });
                }
            }
            (ClientInput::Timeout { now }, &ClientNonInviteState::Completed { timer_k })
                if now >= timer_k =>
            {
                self.state = ClientNonInviteState::Terminated
            }
            (ClientInput::Timeout { .. }, _) => {}
        }
    }

    pub fn poll_output(&mut self) -> Option<TsxOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ClientNonInviteState::Trying { timer_e }
            | ClientNonInviteState::Proceeding { timer_e } => {
                min_deadline(timer_e.map(|e| e.at), Some(self.timer_f))
            }
            ClientNonInviteState::Completed { timer_k } => Some(*timer_k),
            ClientNonInviteState::Terminated => None,
        }
    }

    pub fn state(&self) -> &ClientNonInviteState {
        &self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }
}

// ---------------------------------------------------------------------------------------
// INVITE client transaction (17.1.1, RFC 6026 section 7.2)

/// State of an INVITE client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling {
        timer_a: Option<Retransmit>,
    },
    Proceeding,
    /// A 300-699 arrived and was ACKed; retransmissions get the ACK again until Timer D.
    Completed {
        timer_d: Instant,
        ack: Bytes,
    },
    /// RFC 6026: a 2xx arrived; further 2xx (forks, retransmissions) go to the TU until
    /// Timer M.
    Accepted {
        timer_m: Instant,
    },
    Terminated,
}

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    peer: Peer,
    timers: Timers,
    request: Request,
    bytes: Bytes,
    timer_b: Instant,
    state: ClientInviteState,
    out: VecDeque<TsxOutput>,
}

impl ClientInvite {
    /// Send `request` to `peer` now and start Timers A and B.
    pub fn new(now: Instant, peer: Peer, request: Request, timers: Timers) -> Self {
        let timers = timers.clamped();
        let bytes = Bytes::from(request.to_bytes());
        let timer_a = (!reliable(&peer)).then_some(Retransmit {
            at: now + timers.t1,
            interval: timers.t1,
        });
        let mut tsx = ClientInvite {
            peer,
            timers,
            request,
            bytes: bytes.clone(),
            timer_b: now + timers.t1 * 64,
            state: ClientInviteState::Calling { timer_a },
            out: VecDeque::new(),
        };
        tsx.out.push_back(TsxOutput::Transmit { to: peer, bytes });
        tsx
    }

    /// The ACK for a non-2xx final response (section 17.1.1.3): same Request-URI, Call-ID,
    /// From, CSeq number, top Via and Route as the INVITE; To from the response.
    pub fn ack_for(request: &Request, response: &Response) -> Request {
        let mut hs = crate::sip::message::Headers::default();
        let cseq_n = headers::cseq(&request.headers).map(|(n, _)| n).unwrap_or(1);
        let mut via_done = false;
        for h in request.headers.iter() {
            match h {
                Header::Via(_) if !via_done => {
                    via_done = true;
                    hs.push(h.clone());
                }
                Header::Route(_) | Header::From(_) | Header::CallId(_) | Header::MaxForwards(_) => {
                    hs.push(h.clone())
                }
                Header::To(to) => {
                    let resp_to = response
                        .headers
                        .iter()
                        .find(|h| matches!(h, Header::To(_)))
                        .cloned();
                    hs.push(resp_to.unwrap_or(Header::To(to.clone())));
                }
                Header::CSeq(_) => hs.push(Header::Other("CSeq".into(), format!("{cseq_n} ACK"))),
                _ => {}
            }
        }
        hs.push(Header::Other("Content-Length".into(), "0".into()));
        Request {
            method: crate::sip::message::Method::Ack,
            uri: request.uri.clone(),
            version: request.version,
            headers: hs,
            body: Vec::new(),
        }
    }

    pub fn handle_input(&mut self, input: ClientInput) {
        let t = self.timers;
        match (input, &self.state) {
            (
                ClientInput::Response { now, response },
                ClientInviteState::Calling { .. } | ClientInviteState::Proceeding,
            ) => {
                let code = response.status_code.code();
                if code < 200 {
                    self.state = ClientInviteState::Proceeding;
                } else if code < 300 {
                    self.state = ClientInviteState::Accepted {
                        timer_m: now + t.t1 * 64,
                    };
                } else {
                    let ack = Bytes::from(Self::ack_for(&self.request, &response).to_bytes());
                    self.out.push_back(TsxOutput::Transmit {
                        to: self.peer,
                        bytes: ack.clone(),
                    });
                    let wait = if reliable(&self.peer) {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32) // Timer D: at least 32 s over UDP
                    };
                    self.state = ClientInviteState::Completed {
                        timer_d: now + wait,
                        ack,
                    };
                }
                self.out
                    .push_back(TsxOutput::Event(TsxEvent::Response(response)));
            }
            (ClientInput::Response { response, .. }, ClientInviteState::Completed { ack, .. }) => {
                if response.status_code.code() >= 300 {
                    self.out.push_back(TsxOutput::Transmit {
                        to: self.peer,
                        bytes: ack.clone(),
                    });
                }
            }
            (ClientInput::Response { response, .. }, ClientInviteState::Accepted { .. }) => {
                if (200..300).contains(&response.status_code.code()) {
                    self.out
                        .push_back(TsxOutput::Event(TsxEvent::Response(response)));
                }
            }
            (ClientInput::Response { .. }, ClientInviteState::Terminated) => {}
            (ClientInput::Timeout { now }, &ClientInviteState::Calling { timer_a }) => {
                if now >= self.timer_b {
                    self.state = ClientInviteState::Terminated;
                    self.out.push_back(TsxOutput::Event(TsxEvent::TimedOut));
                } else if let Some(a) = timer_a
                    && now >= a.at
                {
                    let interval = a.interval * 2; // Timer A doubles without a cap
                    self.state = ClientInviteState::Calling {
                        timer_a: Some(Retransmit {
                            at: now + interval,
                            interval,
                        }),
                    };
                    self.out.push_back(TsxOutput::Transmit {
                        to: self.peer,
                        bytes: self.bytes.clone(),
                    });
                }
            }
            (ClientInput::Timeout { now }, ClientInviteState::Proceeding) => {
                // RFC 3261 leaves Proceeding to the TU (CANCEL); Timer B still bounds us so
                // a silent peer cannot hold the transaction forever.
                let _ = now;
            }
            (ClientInput::Timeout { now }, ClientInviteState::Completed { timer_d, .. })
                if now >= *timer_d =>
            {
                self.state = ClientInviteState::Terminated
            }
            (ClientInput::Timeout { now }, &ClientInviteState::Accepted { timer_m })
                if now >= timer_m =>
            {
                self.state = ClientInviteState::Terminated
            }
            (ClientInput::Timeout { .. }, _) => {}
        }
    }

    pub fn poll_output(&mut self) -> Option<TsxOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            ClientInviteState::Calling { timer_a } => {
                min_deadline(timer_a.map(|a| a.at), Some(self.timer_b))
            }
            ClientInviteState::Proceeding | ClientInviteState::Terminated => None,
            ClientInviteState::Completed { timer_d, .. } => Some(*timer_d),
            ClientInviteState::Accepted { timer_m } => Some(*timer_m),
        }
    }

    pub fn state(&self) -> &ClientInviteState {
        &self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message;

    const MS: Duration = Duration::from_millis(1);

    fn udp() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "192.0.2.10:5060".parse().unwrap(),
            conn: None,
        }
    }

    fn tcp() -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr: "192.0.2.10:5060".parse().unwrap(),
            conn: Some(crate::sip::endpoint::ConnId(7)),
        }
    }

    fn transmits<F: FnMut() -> Option<TsxOutput>>(mut poll: F) -> Vec<Bytes> {
        let mut v = Vec::new();
        while let Some(o) = poll() {
            if let TsxOutput::Transmit { bytes, .. } = o {
                v.push(bytes);
            }
        }
        v
    }

    fn events<F: FnMut() -> Option<TsxOutput>>(mut poll: F) -> Vec<TsxEvent> {
        let mut v = Vec::new();
        while let Some(o) = poll() {
            if let TsxOutput::Event(e) = o {
                v.push(e);
            }
        }
        v
    }

    /// Step a server INVITE transaction through its deadlines until `end`, recording the
    /// offsets (ms from t0) at which it transmitted.
    fn run_server_invite(tsx: &mut ServerInvite, t0: Instant, end: Instant) -> Vec<u128> {
        let mut at = Vec::new();
        while let Some(d) = tsx.poll_timeout() {
            if d > end {
                break;
            }
            tsx.handle_input(ServerInviteInput::Timeout { now: d });
            for _ in transmits(|| tsx.poll_output()) {
                at.push((d - t0).as_millis());
            }
        }
        at
    }

    fn rejected(t0: Instant, peer: Peer) -> ServerInvite {
        let mut tsx = ServerInvite::new(t0, peer, Bytes::from_static(b"100"), Timers::default());
        assert_eq!(
            transmits(|| tsx.poll_output()),
            vec![Bytes::from_static(b"100")]
        );
        tsx.handle_input(ServerInviteInput::Respond {
            now: t0,
            code: 486,
            bytes: Bytes::from_static(b"486"),
        });
        assert_eq!(
            transmits(|| tsx.poll_output()),
            vec![Bytes::from_static(b"486")]
        );
        tsx
    }

    #[test]
    fn lost_final_response_is_retransmitted_on_timer_g_capped_at_t2() {
        let t0 = Instant::now();
        let mut tsx = rejected(t0, udp());
        let at = run_server_invite(&mut tsx, t0, t0 + Duration::from_secs(20));
        // T1, +2T1, +4T1, +8T1 (=T2), then every T2.
        assert_eq!(at, vec![500, 1500, 3500, 7500, 11500, 15500, 19500]);
    }

    #[test]
    fn timer_h_gives_up_after_64_t1_without_ack() {
        let t0 = Instant::now();
        let mut tsx = rejected(t0, udp());
        let mut last = t0;
        while let Some(d) = tsx.poll_timeout() {
            tsx.handle_input(ServerInviteInput::Timeout { now: d });
            let ev = events(|| tsx.poll_output());
            last = d;
            if !ev.is_empty() {
                assert!(matches!(ev[..], [TsxEvent::TimedOut]));
            }
        }
        assert!(tsx.is_terminated());
        assert_eq!(last - t0, Duration::from_secs(32));
    }

    #[test]
    fn ack_stops_retransmissions_and_timer_i_terminates() {
        let t0 = Instant::now();
        let mut tsx = rejected(t0, udp());
        tsx.handle_input(ServerInviteInput::Ack { now: t0 + 10 * MS });
        assert_eq!(
            tsx.state(),
            &ServerInviteState::Confirmed {
                timer_i: t0 + 10 * MS + Duration::from_secs(5)
            }
        );
        // ACK retransmissions and INVITE retransmissions are absorbed silently.
        tsx.handle_input(ServerInviteInput::Ack { now: t0 + 20 * MS });
        tsx.handle_input(ServerInviteInput::Retransmission { now: t0 + 30 * MS });
        assert!(tsx.poll_output().is_none());
        let at = run_server_invite(&mut tsx, t0, t0 + Duration::from_secs(60));
        assert!(at.is_empty());
        assert!(tsx.is_terminated());
    }

    #[test]
    fn late_ack_after_retransmissions_confirms() {
        let t0 = Instant::now();
        let mut tsx = rejected(t0, udp());
        let at = run_server_invite(&mut tsx, t0, t0 + Duration::from_secs(4));
        assert_eq!(at, vec![500, 1500, 3500]);
        tsx.handle_input(ServerInviteInput::Ack {
            now: t0 + Duration::from_secs(5),
        });
        assert!(matches!(tsx.state(), ServerInviteState::Confirmed { .. }));
        assert!(run_server_invite(&mut tsx, t0, t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn late_invite_retransmission_gets_the_final_response_again() {
        let t0 = Instant::now();
        let mut tsx = rejected(t0, udp());
        tsx.handle_input(ServerInviteInput::Retransmission { now: t0 + 100 * MS });
        assert_eq!(
            transmits(|| tsx.poll_output()),
            vec![Bytes::from_static(b"486")]
        );
    }

    #[test]
    fn invite_retransmission_in_proceeding_gets_the_last_provisional() {
        let t0 = Instant::now();
        let mut tsx = ServerInvite::new(t0, udp(), Bytes::from_static(b"100"), Timers::default());
        let _ = transmits(|| tsx.poll_output());
        tsx.handle_input(ServerInviteInput::Respond {
            now: t0,
            code: 180,
            bytes: Bytes::from_static(b"180"),
        });
        let _ = transmits(|| tsx.poll_output());
        tsx.handle_input(ServerInviteInput::Retransmission { now: t0 + MS });
        assert_eq!(
            transmits(|| tsx.poll_output()),
            vec![Bytes::from_static(b"180")]
        );
        assert_eq!(tsx.poll_timeout(), None);
    }

    #[test]
    fn accepted_state_absorbs_invite_retransmissions_until_timer_l() {
        let t0 = Instant::now();
        let mut tsx = ServerInvite::new(t0, udp(), Bytes::from_static(b"100"), Timers::default());
        let _ = transmits(|| tsx.poll_output());
        tsx.handle_input(ServerInviteInput::Respond {
            now: t0,
            code: 200,
            bytes: Bytes::from_static(b"200"),
        });
        assert_eq!(
            transmits(|| tsx.poll_output()),
            vec![Bytes::from_static(b"200")]
        );
        assert!(tsx.is_accepted());
        tsx.handle_input(ServerInviteInput::Retransmission { now: t0 + MS });
        assert!(tsx.poll_output().is_none());
        // The TU's 2xx retransmission passes through.
        tsx.handle_input(ServerInviteInput::Respond {
            now: t0 + 500 * MS,
            code: 200,
            bytes: Bytes::from_static(b"200"),
        });
        assert_eq!(transmits(|| tsx.poll_output()).len(), 1);
        assert_eq!(tsx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tsx.handle_input(ServerInviteInput::Timeout {
            now: t0 + Duration::from_secs(32),
        });
        assert!(tsx.is_terminated());
    }

    #[test]
    fn over_tcp_no_timer_g_but_timer_h() {
        let t0 = Instant::now();
        let mut tsx = rejected(t0, tcp());
        assert_eq!(tsx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tsx.handle_input(ServerInviteInput::Ack { now: t0 + MS });
        assert_eq!(tsx.poll_timeout(), Some(t0 + MS)); // Timer I = 0
    }

    #[test]
    fn non_invite_server_answers_retransmissions_until_timer_j() {
        let t0 = Instant::now();
        let mut tsx = ServerNonInvite::new(udp(), Timers::default());
        tsx.handle_input(ServerNonInviteInput::Retransmission { now: t0 });
        assert!(tsx.poll_output().is_none()); // Trying: nothing to resend yet
        tsx.handle_input(ServerNonInviteInput::Respond {
            now: t0,
            code: 200,
            bytes: Bytes::from_static(b"200"),
        });
        assert_eq!(transmits(|| tsx.poll_output()).len(), 1);
        tsx.handle_input(ServerNonInviteInput::Retransmission {
            now: t0 + Duration::from_secs(3),
        });
        assert_eq!(
            transmits(|| tsx.poll_output()),
            vec![Bytes::from_static(b"200")]
        );
        assert_eq!(tsx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tsx.handle_input(ServerNonInviteInput::Timeout {
            now: t0 + Duration::from_secs(31),
        });
        assert!(!tsx.is_terminated()); // early wake-up is harmless
        tsx.handle_input(ServerNonInviteInput::Timeout {
            now: t0 + Duration::from_secs(32),
        });
        assert!(tsx.is_terminated());

        let mut tcp_tsx = ServerNonInvite::new(tcp(), Timers::default());
        tcp_tsx.handle_input(ServerNonInviteInput::Respond {
            now: t0,
            code: 200,
            bytes: Bytes::from_static(b"200"),
        });
        assert_eq!(tcp_tsx.poll_timeout(), Some(t0)); // Timer J = 0 over TCP
    }

    fn response(code: u16) -> Box<Response> {
        let req = invite_request();
        Box::new(message::build_response(
            &req,
            code,
            Some("tt"),
            vec![],
            None,
        ))
    }

    fn invite_request() -> Request {
        let text = "INVITE sip:0100@192.0.2.10 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1\r\n\
            Max-Forwards: 70\r\n\
            From: <sip:guichet@192.0.2.1>;tag=f1\r\n\
            To: <sip:0100@192.0.2.10>\r\n\
            Call-ID: out-1\r\n\
            CSeq: 1 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        match message::parse(text.as_bytes()) {
            Ok(crate::sip::message::SipMessage::Request(r)) => r,
            other => panic!("test request does not parse: {other:?}"),
        }
    }

    fn run_client<T>(
        tsx: &mut T,
        t0: Instant,
        end: Instant,
        timeout: fn(&T) -> Option<Instant>,
        input: fn(&mut T, ClientInput),
        poll: fn(&mut T) -> Option<TsxOutput>,
    ) -> (Vec<u128>, bool) {
        let mut at = Vec::new();
        let mut timed_out = false;
        while let Some(d) = timeout(tsx) {
            if d > end {
                break;
            }
            input(tsx, ClientInput::Timeout { now: d });
            while let Some(o) = poll(tsx) {
                match o {
                    TsxOutput::Transmit { .. } => at.push((d - t0).as_millis()),
                    TsxOutput::Event(TsxEvent::TimedOut) => timed_out = true,
                    TsxOutput::Event(_) => {}
                }
            }
        }
        (at, timed_out)
    }

    #[test]
    fn non_invite_client_timer_e_backs_off_and_timer_f_times_out() {
        let t0 = Instant::now();
        let mut tsx =
            ClientNonInvite::new(t0, udp(), Bytes::from_static(b"BYE"), Timers::default());
        assert_eq!(transmits(|| tsx.poll_output()).len(), 1);
        let (at, timed_out) = run_client(
            &mut tsx,
            t0,
            t0 + Duration::from_secs(40),
            ClientNonInvite::poll_timeout,
            ClientNonInvite::handle_input,
            ClientNonInvite::poll_output,
        );
        assert_eq!(&at[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(at.iter().all(|&ms| ms < 32_000));
        assert!(timed_out);
        assert!(tsx.is_terminated());
    }

    #[test]
    fn non_invite_client_final_response_completes_then_timer_k() {
        let t0 = Instant::now();
        let mut tsx =
            ClientNonInvite::new(t0, udp(), Bytes::from_static(b"BYE"), Timers::default());
        let _ = transmits(|| tsx.poll_output());
        tsx.handle_input(ClientInput::Response {
            now: t0 + 100 * MS,
            response: response(200),
        });
        let ev = events(|| tsx.poll_output());
        assert!(matches!(&ev[..], [TsxEvent::Response(r)] if r.status_code.code() == 200));
        // A retransmitted 200 is absorbed.
        tsx.handle_input(ClientInput::Response {
            now: t0 + 200 * MS,
            response: response(200),
        });
        assert!(tsx.poll_output().is_none());
        assert_eq!(
            tsx.poll_timeout(),
            Some(t0 + 100 * MS + Duration::from_secs(5))
        );
        tsx.handle_input(ClientInput::Timeout {
            now: t0 + Duration::from_secs(6),
        });
        assert!(tsx.is_terminated());
    }

    #[test]
    fn invite_client_timer_a_doubles_and_timer_b_times_out() {
        let t0 = Instant::now();
        let mut tsx = ClientInvite::new(t0, udp(), invite_request(), Timers::default());
        assert_eq!(transmits(|| tsx.poll_output()).len(), 1);
        let (at, timed_out) = run_client(
            &mut tsx,
            t0,
            t0 + Duration::from_secs(40),
            ClientInvite::poll_timeout,
            ClientInvite::handle_input,
            ClientInvite::poll_output,
        );
        assert_eq!(at, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert!(timed_out);
    }

    #[test]
    fn invite_client_acks_non_2xx_and_again_for_retransmissions() {
        let t0 = Instant::now();
        let mut tsx = ClientInvite::new(t0, udp(), invite_request(), Timers::default());
        let _ = transmits(|| tsx.poll_output());
        tsx.handle_input(ClientInput::Response {
            now: t0 + MS,
            response: response(486),
        });
        let sent = transmits(|| tsx.poll_output());
        assert_eq!(sent.len(), 1);
        let ack = String::from_utf8_lossy(&sent[0]).to_string();
        assert!(ack.starts_with("ACK sip:0100@192.0.2.10 SIP/2.0"), "{ack}");
        assert!(ack.contains("CSeq: 1 ACK"), "{ack}");
        assert!(ack.contains("tag=tt"), "{ack}");
        assert!(ack.contains("branch=z9hG4bKc1"), "{ack}");
        tsx.handle_input(ClientInput::Response {
            now: t0 + 600 * MS,
            response: response(486),
        });
        assert_eq!(transmits(|| tsx.poll_output()), sent);
        assert_eq!(tsx.poll_timeout(), Some(t0 + MS + Duration::from_secs(32)));
    }

    #[test]
    fn invite_client_2xx_goes_to_accepted() {
        let t0 = Instant::now();
        let mut tsx = ClientInvite::new(t0, udp(), invite_request(), Timers::default());
        let _ = transmits(|| tsx.poll_output());
        tsx.handle_input(ClientInput::Response {
            now: t0,
            response: response(180),
        });
        assert_eq!(tsx.state(), &ClientInviteState::Proceeding);
        tsx.handle_input(ClientInput::Response {
            now: t0,
            response: response(200),
        });
        tsx.handle_input(ClientInput::Response {
            now: t0 + MS,
            response: response(200),
        });
        assert_eq!(events(|| tsx.poll_output()).len(), 3);
        assert!(matches!(tsx.state(), ClientInviteState::Accepted { .. }));
    }

    #[test]
    fn keys_follow_17_2_3() {
        let req = invite_request();
        let k = TsxKey::of_request(&req).unwrap();
        assert!(
            matches!(&k, TsxKey::Rfc3261 { branch, method, .. } if branch == "z9hG4bKc1" && method == "INVITE")
        );
        let mut ack = ClientInvite::ack_for(&req, &response(486));
        assert_eq!(TsxKey::of_request(&ack).unwrap(), k);
        // A pre-3261 branch falls back to the older rules.
        let old = String::from_utf8(req.to_bytes())
            .unwrap()
            .replace("branch=z9hG4bKc1", "branch=1");
        let old_req = match message::parse(old.as_bytes()).unwrap() {
            crate::sip::message::SipMessage::Request(r) => r,
            _ => unreachable!("a request"),
        };
        let ok = TsxKey::of_request(&old_req).unwrap();
        assert!(matches!(&ok, TsxKey::Rfc2543 { cseq: 1, from_tag, .. } if from_tag == "f1"));
        ack.headers.retain(|h| !matches!(h, Header::Via(_)));
        ack.headers.push(Header::Other(
            "Via".into(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=1".into(),
        ));
        assert_eq!(TsxKey::of_request(&ack).unwrap(), ok);
        assert_eq!(k.with_method("CANCEL").method(), "CANCEL");
    }
}
