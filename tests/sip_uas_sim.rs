//! Simulations of the UAS core in virtual time: a scripted UAC writes requests as text,
//! the endpoint is stepped from deadline to deadline, and what it transmits is parsed back.
//! No sockets, no sleeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use guichet::ids::CallKey;
use guichet::sdp::{Direction, LocalMedia};
use guichet::sip::endpoint::{
    CallCommand, ConnId, EndReason, Endpoint, EndpointConfig, Event, Input, Output, Peer, Transport,
};
use guichet::sip::headers;
use guichet::sip::message::{SipMessage, parse};

const MS: Duration = Duration::from_millis(1);
const SECS: fn(u64) -> Duration = Duration::from_secs;

const OFFER: &str = "v=0\r\no=caller 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

fn offer_with(direction: &str, version: u32) -> String {
    OFFER
        .replace("a=sendrecv", &format!("a={direction}"))
        .replace("o=caller 1 1", &format!("o=caller 1 {version}"))
}

const G729_OFFER: &str = "v=0\r\no=caller 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        conn: None,
    }
}

fn local_media() -> LocalMedia {
    LocalMedia {
        addr: "192.0.2.10".parse().unwrap(),
        port: 30000,
        session_id: 77,
        version: 1,
    }
}

/// A scripted UAC: one dialog's worth of headers, requests as text with CRLF.
struct Uac {
    peer: Peer,
    call_id: String,
    from_tag: String,
    /// Our To tag once the UAS gave one.
    to_tag: Option<String>,
    cseq: u32,
    branches: u32,
}

impl Uac {
    fn new(addr: &str, call_id: &str) -> Uac {
        Uac {
            peer: udp(addr),
            call_id: call_id.to_owned(),
            from_tag: format!("ft-{call_id}"),
            to_tag: None,
            cseq: 1,
            branches: 0,
        }
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK-{}-{}", self.call_id, self.branches)
    }

    /// A request with an explicit branch and CSeq.
    fn request(
        &self,
        method: &str,
        branch: &str,
        cseq: u32,
        cseq_method: &str,
        body: Option<&str>,
    ) -> String {
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let body = body.unwrap_or("");
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} sip:0800@192.0.2.10 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {addr};branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: \"Caller\" <sip:0612345678@192.0.2.1>;tag={from_tag}\r\n\
             To: <sip:0800@192.0.2.10>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {cseq_method}\r\n\
             Contact: <sip:caller@{addr}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            addr = self.peer.addr,
            from_tag = self.from_tag,
            call_id = self.call_id,
            len = body.len(),
        )
    }

    /// A new request in a new transaction (CSeq incremented unless ACK/CANCEL).
    fn next(&mut self, method: &str, body: Option<&str>) -> (String, String) {
        let branch = self.branch();
        self.cseq += 1;
        (
            self.request(method, &branch, self.cseq, method, body),
            branch,
        )
    }
}

/// One parsed message the endpoint sent.
#[derive(Debug, Clone)]
struct Sent {
    at: Duration,
    to: Peer,
    msg: SipMessage,
}

impl Sent {
    fn code(&self) -> u16 {
        match &self.msg {
            SipMessage::Response(r) => r.status_code.code(),
            SipMessage::Request(_) => 0,
        }
    }
    fn method(&self) -> String {
        match &self.msg {
            SipMessage::Request(r) => r.method.to_string(),
            SipMessage::Response(_) => String::new(),
        }
    }
    fn header(&self, name: &str) -> Option<String> {
        let hs = match &self.msg {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        };
        headers::first(hs, name).map(str::to_owned)
    }
    fn body(&self) -> String {
        match &self.msg {
            SipMessage::Request(r) => String::from_utf8_lossy(&r.body).to_string(),
            SipMessage::Response(r) => String::from_utf8_lossy(&r.body).to_string(),
        }
    }
    fn to_tag(&self) -> Option<String> {
        self.header("To")
            .and_then(|t| headers::tag_param(&t).map(str::to_owned))
    }
    fn cseq(&self) -> String {
        self.header("CSeq").unwrap_or_default()
    }
}

/// The endpoint in virtual time.
struct Sim {
    ep: Endpoint,
    t0: Instant,
    now: Instant,
    sent: Vec<Sent>,
    events: Vec<Event>,
}

impl Sim {
    fn new(config: EndpointConfig) -> Sim {
        let t0 = Instant::now();
        Sim {
            ep: Endpoint::new(config),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn default() -> Sim {
        Sim::new(EndpointConfig {
            local: "192.0.2.10:5060".parse().unwrap(),
            ..EndpointConfig::default()
        })
    }

    fn drain(&mut self) {
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit { to, bytes } => {
                    let msg = parse(&bytes).unwrap_or_else(|e| {
                        panic!(
                            "endpoint sent unparseable bytes ({e}): {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    self.sent.push(Sent {
                        at: self.now - self.t0,
                        to,
                        msg,
                    });
                }
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn send(&mut self, from: Peer, text: &str) {
        self.ep.handle_input(Input::Message {
            now: self.now,
            from,
            bytes: text.as_bytes(),
        });
        self.drain();
    }

    fn command(&mut self, call: CallKey, command: CallCommand) {
        self.ep.handle_input(Input::Command {
            now: self.now,
            call,
            command,
        });
        self.drain();
    }

    /// Step through every deadline up to `t0 + at`, then set the clock there.
    fn run_until(&mut self, at: Duration) {
        let end = self.t0 + at;
        while let Some(d) = self.ep.poll_timeout() {
            if d > end {
                break;
            }
            self.now = d.max(self.now);
            self.ep.handle_input(Input::Timeout { now: self.now });
            self.drain();
        }
        self.now = end.max(self.now);
    }

    fn take_sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// INVITE from `uac`, returns the new call's key (and checks the 100 Trying).
    fn incoming_call(&mut self, uac: &mut Uac, body: Option<&str>) -> CallKey {
        let branch = uac.branch();
        let invite = uac.request("INVITE", &branch, uac.cseq, "INVITE", body);
        self.send(uac.peer, &invite);
        let sent = self.take_sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].code(), 100);
        assert_eq!(sent[0].to, uac.peer);
        let events = self.take_events();
        match &events[..] {
            [
                Event::IncomingCall {
                    call,
                    to_user,
                    from,
                    ..
                },
            ] => {
                assert_eq!(to_user, "0800");
                assert_eq!(from, "sip:0612345678@192.0.2.1");
                *call
            }
            other => panic!("expected IncomingCall, got {other:?}"),
        }
    }

    /// Answer `call` and return the 200 OK sent (the UAC learns its To tag).
    fn answer(&mut self, uac: &mut Uac, call: CallKey) -> Sent {
        self.command(
            call,
            CallCommand::Answer {
                local: local_media(),
            },
        );
        let sent = self.take_sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].code(), 200);
        uac.to_tag = sent[0].to_tag();
        assert!(uac.to_tag.is_some());
        sent[0].clone()
    }

    fn ack(&mut self, uac: &mut Uac, cseq: u32, body: Option<&str>) {
        let branch = uac.branch();
        let ack = uac.request("ACK", &branch, cseq, "ACK", body);
        self.send(uac.peer, &ack);
    }

    /// A confirmed call: INVITE with SDP, answered, ACKed.
    fn established(&mut self, uac: &mut Uac) -> CallKey {
        let call = self.incoming_call(uac, Some(OFFER));
        self.answer(uac, call);
        self.ack(uac, 1, None);
        self.take_events();
        self.take_sent();
        call
    }
}

fn ended(events: &[Event]) -> Vec<(CallKey, EndReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ended { call, reason } => Some((*call, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn basic_call_invite_trying_ringing_ok_ack_bye() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "basic");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    assert_eq!(sim.ep.active_calls(), 1);

    sim.command(call, CallCommand::Ringing);
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 180);
    let ringing_tag = sent[0].to_tag().expect("180 has a To tag");
    assert!(sent[0].header("Contact").is_some());

    let ok = sim.answer(&mut uac, call);
    assert_eq!(ok.to_tag().as_deref(), Some(ringing_tag.as_str()));
    assert!(
        ok.body().contains("m=audio 30000 RTP/AVP 0"),
        "{}",
        ok.body()
    );
    assert_eq!(
        ok.header("Content-Type").as_deref(),
        Some("application/sdp")
    );
    match &sim.take_events()[..] {
        [
            Event::Answered {
                call: c,
                session: Some(s),
            },
        ] => {
            assert_eq!(*c, call);
            assert_eq!(s.remote, Some("192.0.2.1:40000".parse().unwrap()));
            assert_eq!(s.local_direction, Direction::SendRecv);
        }
        other => panic!("{other:?}"),
    }

    sim.run_until(200 * MS);
    sim.ack(&mut uac, 1, None);
    assert!(matches!(&sim.take_events()[..], [Event::Confirmed { call: c }] if *c == call));
    // Only the initial 200 was sent, no retransmission once ACKed.
    sim.run_until(SECS(10));
    assert!(sim.take_sent().is_empty());

    let (bye, _) = uac.next("BYE", None);
    sim.send(uac.peer, &bye);
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].code(), 200);
    assert_eq!(sent[0].cseq(), "2 BYE");
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::RemoteBye)]
    );
    assert_eq!(sim.ep.active_calls(), 0);

    // Every transaction is gone after its timers: memory returns to zero.
    sim.run_until(SECS(120));
    assert_eq!(sim.ep.transactions(), 0);
    assert_eq!(sim.ep.poll_timeout(), None);
}

#[test]
fn lost_ack_2xx_retransmitted_then_bye_after_32s() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "lostack");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.answer(&mut uac, call);
    sim.take_events();
    sim.run_until(SECS(40));
    let sent = sim.take_sent();
    let oks: Vec<u128> = sent
        .iter()
        .filter(|s| s.code() == 200)
        .map(|s| s.at.as_millis())
        .collect();
    // 13.3.1.4: T1, doubling, capped at T2, until 64*T1.
    assert_eq!(&oks[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
    assert!(oks.iter().all(|&t| t < 32_000));
    let byes: Vec<&Sent> = sent.iter().filter(|s| s.method() == "BYE").collect();
    assert!(!byes.is_empty());
    assert_eq!(byes[0].at, SECS(32));
    assert_eq!(byes[0].to, uac.peer); // the Contact of the INVITE
    assert!(byes[0].header("To").unwrap().contains("tag=ft-lostack"));
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::AckTimeout)]
    );
    assert_eq!(sim.ep.active_calls(), 0);
}

#[test]
fn ack_lost_twice_then_arrives() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "twice");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    let ok = sim.answer(&mut uac, call);
    sim.take_events();
    sim.run_until(1600 * MS);
    let again = sim.take_sent();
    assert_eq!(again.len(), 2); // retransmissions at 0.5 s and 1.5 s
    assert!(
        again
            .iter()
            .all(|s| s.code() == 200 && s.body() == ok.body())
    );
    // Each retransmission is ACKed by the UAC; the first two ACKs were lost.
    sim.ack(&mut uac, 1, None);
    assert!(matches!(&sim.take_events()[..], [Event::Confirmed { .. }]));
    sim.ack(&mut uac, 1, None); // a late duplicate changes nothing
    assert!(sim.take_events().is_empty());
    sim.run_until(SECS(60));
    assert!(sim.take_sent().is_empty());
    assert_eq!(sim.ep.active_calls(), 1);
}

#[test]
fn cancel_before_answer_gives_200_and_487() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "cancel");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.command(call, CallCommand::Ringing);
    sim.take_sent();
    // CANCEL: same branch and CSeq number as the INVITE.
    let cancel = uac.request("CANCEL", "z9hG4bK-cancel-1", 1, "CANCEL", None);
    sim.send(uac.peer, &cancel);
    let sent = sim.take_sent();
    let codes: Vec<(u16, String)> = sent.iter().map(|s| (s.code(), s.cseq())).collect();
    assert_eq!(
        codes,
        vec![(200, "1 CANCEL".to_owned()), (487, "1 INVITE".to_owned())]
    );
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::Cancelled)]
    );
    // The ACK for the 487 is absorbed by the transaction: no more 487s.
    uac.to_tag = sent[1].to_tag();
    let ack = uac.request("ACK", "z9hG4bK-cancel-1", 1, "ACK", None);
    sim.send(uac.peer, &ack);
    sim.run_until(SECS(40));
    assert!(sim.take_sent().is_empty());
    // A later command for the call is ignored.
    sim.command(call, CallCommand::Ringing);
    assert!(sim.take_sent().is_empty());
}

#[test]
fn cancel_matching_nothing_gets_481() {
    let mut sim = Sim::default();
    let uac = Uac::new("192.0.2.1:5060", "nocancel");
    let cancel = uac.request("CANCEL", "z9hG4bK-none", 1, "CANCEL", None);
    sim.send(uac.peer, &cancel);
    assert_eq!(sim.take_sent()[0].code(), 481);
}

#[test]
fn reinvite_to_hold_and_back() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "hold");
    let call = sim.established(&mut uac);

    let (hold, _) = uac.next("INVITE", Some(&offer_with("sendonly", 2)));
    sim.send(uac.peer, &hold);
    let sent = sim.take_sent();
    let codes: Vec<u16> = sent.iter().map(Sent::code).collect();
    assert_eq!(codes, vec![100, 200]);
    let hold_answer = sent[1].body();
    assert!(hold_answer.contains("a=recvonly"), "{hold_answer}");
    assert!(hold_answer.contains("o=guichet 77 2 "), "{hold_answer}");
    match &sim.take_events()[..] {
        [Event::MediaUpdated { call: c, session }] => {
            assert_eq!(*c, call);
            assert_eq!(session.local_direction, Direction::RecvOnly);
        }
        other => panic!("{other:?}"),
    }
    let cseq = uac.cseq;
    sim.ack(&mut uac, cseq, None);

    // Session refresh with the same SDP: same answer, o= version unchanged, no event.
    let (refresh, _) = uac.next("INVITE", Some(&offer_with("sendonly", 2)));
    sim.send(uac.peer, &refresh);
    let sent = sim.take_sent();
    assert_eq!(sent[1].body(), hold_answer);
    assert!(sim.take_events().is_empty());
    let cseq = uac.cseq;
    sim.ack(&mut uac, cseq, None);

    // Inactive hold, then back to sendrecv.
    let (inactive, _) = uac.next("INVITE", Some(&offer_with("inactive", 3)));
    sim.send(uac.peer, &inactive);
    assert!(sim.take_sent()[1].body().contains("a=inactive"));
    assert!(matches!(&sim.take_events()[..],
        [Event::MediaUpdated { session, .. }] if session.local_direction == Direction::Inactive));
    let cseq = uac.cseq;
    sim.ack(&mut uac, cseq, None);

    let (resume, _) = uac.next("INVITE", Some(&offer_with("sendrecv", 4)));
    sim.send(uac.peer, &resume);
    let answer = sim.take_sent()[1].body();
    assert!(answer.contains("a=sendrecv"), "{answer}");
    assert!(answer.contains("o=guichet 77 4 "), "{answer}");
    assert!(matches!(&sim.take_events()[..],
        [Event::MediaUpdated { session, .. }] if session.local_direction == Direction::SendRecv));
    let cseq = uac.cseq;
    sim.ack(&mut uac, cseq, None);
    sim.run_until(SECS(40));
    assert!(sim.take_sent().is_empty()); // every 2xx was ACKed
    assert_eq!(sim.ep.active_calls(), 1);
}

#[test]
fn bye_from_our_side_retransmitted_when_200_lost() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "localbye");
    let call = sim.established(&mut uac);
    sim.run_until(SECS(1));
    sim.command(call, CallCommand::Hangup);
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    let bye = &sent[0];
    assert_eq!(bye.method(), "BYE");
    assert_eq!(bye.to, uac.peer);
    assert_eq!(bye.cseq(), "2 BYE");
    let SipMessage::Request(bye_req) = &bye.msg else {
        unreachable!("a BYE is a request")
    };
    assert_eq!(bye_req.uri.to_string(), "sip:caller@192.0.2.1:5060");
    assert_eq!(ended(&sim.take_events()), vec![(call, EndReason::LocalBye)]);

    // Our BYE's 200 is lost: Timer E retransmits the BYE at T1.
    sim.run_until(SECS(1) + 500 * MS);
    let again = sim.take_sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].method(), "BYE");
    assert_eq!(again[0].header("Via"), bye.header("Via"));
    // The UAC answers the retransmission.
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: localbye\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        bye.header("Via").unwrap(),
        bye.header("From").unwrap(),
        bye.header("To").unwrap()
    );
    sim.send(uac.peer, &ok);
    sim.run_until(SECS(60));
    assert!(sim.take_sent().is_empty());
    assert_eq!(sim.ep.stats().stray_responses, 0);
    assert_eq!(sim.ep.transactions(), 0);
}

#[test]
fn invite_retransmission_absorbed_not_a_second_call() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "retrans");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    let invite = uac.request("INVITE", "z9hG4bK-retrans-1", 1, "INVITE", Some(OFFER));
    sim.send(uac.peer, &invite);
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].code(), 100); // answered from the transaction
    assert!(sim.take_events().is_empty());
    sim.answer(&mut uac, call);
    sim.take_events();
    // After the 2xx (RFC 6026 Accepted) a retransmitted INVITE is absorbed silently.
    sim.send(uac.peer, &invite);
    assert!(sim.take_sent().is_empty());
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.ep.stats().retransmissions_absorbed, 2);
    assert_eq!(sim.ep.active_calls(), 1);
}

#[test]
fn request_in_unknown_dialog_gets_481() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "ghost");
    uac.to_tag = Some("not-ours".into());
    let (bye, _) = uac.next("BYE", None);
    sim.send(uac.peer, &bye);
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 481);
    // A retransmission is answered from the transaction, not processed twice.
    sim.send(uac.peer, &bye);
    assert_eq!(sim.take_sent()[0].code(), 481);
    assert_eq!(sim.ep.stats().retransmissions_absorbed, 1);
}

#[test]
fn register_is_challenged_by_the_registrar_then_405_when_disabled() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "reg");
    let (req, _) = uac.next("REGISTER", None);
    sim.send(uac.peer, &req);
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 401);
    let challenge = sent[0]
        .header("WWW-Authenticate")
        .expect("401 carries a challenge");
    assert!(challenge.contains("realm=\"guichet\"") && challenge.contains("nonce="));

    let mut sim = Sim::new(EndpointConfig {
        local: "192.0.2.10:5060".parse().unwrap(),
        registrar: None,
        ..EndpointConfig::default()
    });
    let (req, _) = uac.next("REGISTER", None);
    sim.send(uac.peer, &req);
    assert_eq!(sim.take_sent()[0].code(), 405);
}

#[test]
fn unsupported_methods_get_405_with_allow() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "m405");
    for method in ["MESSAGE", "SUBSCRIBE"] {
        let (req, _) = uac.next(method, None);
        sim.send(uac.peer, &req);
        let sent = sim.take_sent();
        assert_eq!(sent[0].code(), 405, "{method}");
        let allow = sent[0].header("Allow").expect("405 carries Allow");
        assert!(allow.contains("INVITE") && allow.contains("BYE"));
    }
}

#[test]
fn offer_without_common_codec_gets_488_with_warning() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "g729");
    let call = sim.incoming_call(&mut uac, Some(G729_OFFER));
    sim.command(
        call,
        CallCommand::Answer {
            local: local_media(),
        },
    );
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 488);
    let warning = sent[0].header("Warning").expect("488 carries a Warning");
    assert!(warning.starts_with("305 "), "{warning}");
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::NoCommonCodec)]
    );
    // Timer G retransmits the 488 until the ACK.
    sim.run_until(600 * MS);
    assert_eq!(sim.take_sent()[0].code(), 488);
}

#[test]
fn over_capacity_gets_503_with_retry_after() {
    let mut sim = Sim::new(EndpointConfig {
        max_calls: 1,
        retry_after_secs: 17,
        ..EndpointConfig::default()
    });
    let mut first = Uac::new("192.0.2.1:5060", "cap1");
    sim.incoming_call(&mut first, Some(OFFER));
    let second = Uac::new("192.0.2.2:5060", "cap2");
    let invite = second.request("INVITE", "z9hG4bK-cap2", 1, "INVITE", Some(OFFER));
    sim.send(second.peer, &invite);
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].code(), 503);
    assert_eq!(sent[0].header("Retry-After").as_deref(), Some("17"));
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.ep.stats().over_capacity, 1);
}

#[test]
fn unknown_number_gets_404() {
    let mut sim = Sim::new(EndpointConfig {
        numbers: vec!["3939".into()],
        ..EndpointConfig::default()
    });
    let uac = Uac::new("192.0.2.1:5060", "n404");
    let invite = uac.request("INVITE", "z9hG4bK-n404", 1, "INVITE", Some(OFFER));
    sim.send(uac.peer, &invite);
    assert_eq!(sim.take_sent()[0].code(), 404);
    assert_eq!(sim.ep.active_calls(), 0);
}

#[test]
fn rate_limited_flood_from_one_source_spares_a_call_from_another() {
    let mut sim = Sim::new(EndpointConfig {
        rate_per_source: 5.0,
        rate_burst: 10,
        ..EndpointConfig::default()
    });
    let mut caller = Uac::new("192.0.2.1:5060", "victim");
    let call = sim.established(&mut caller);
    let mut flooder = Uac::new("198.51.100.66:5060", "flood");
    for _ in 0..1000 {
        let (opt, _) = flooder.next("OPTIONS", None);
        sim.send(flooder.peer, &opt);
        let branch = flooder.branch();
        let invite = flooder.request("INVITE", &branch, 1, "INVITE", Some(OFFER));
        sim.send(flooder.peer, &invite);
    }
    let answered = sim.take_sent().iter().filter(|s| s.code() >= 100).count();
    assert!(answered <= 20, "{answered} flood requests answered");
    assert!(sim.ep.stats().rate_limited >= 1980);
    sim.take_events();
    // The call in progress is unaffected: its INFO and BYE are answered.
    let (info, _) = caller.next("INFO", None);
    sim.send(caller.peer, &info);
    assert_eq!(sim.take_sent()[0].code(), 200);
    let (bye, _) = caller.next("BYE", None);
    sim.send(caller.peer, &bye);
    assert_eq!(sim.take_sent()[0].code(), 200);
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::RemoteBye)]
    );
    // And a new call from the well-behaved source is still accepted.
    let mut again = Uac::new("192.0.2.1:5060", "victim2");
    sim.incoming_call(&mut again, Some(OFFER));
}

#[test]
fn options_out_of_dialog_even_with_max_forwards_zero() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "opt");
    let (opt, _) = uac.next("OPTIONS", None);
    let opt = opt.replace("Max-Forwards: 70", "Max-Forwards: 0");
    sim.send(uac.peer, &opt);
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].code(), 200);
    assert!(sent[0].header("Allow").unwrap().contains("OPTIONS"));
    assert_eq!(sent[0].header("Accept").as_deref(), Some("application/sdp"));
    assert!(sent[0].header("Supported").is_some());
    assert!(sent[0].to_tag().is_some());
}

#[test]
fn in_dialog_options_info_update_and_lower_cseq() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "indialog");
    let call = sim.established(&mut uac);
    let (opt, _) = uac.next("OPTIONS", None);
    sim.send(uac.peer, &opt);
    assert_eq!(sim.take_sent()[0].code(), 200);

    let branch = uac.branch();
    uac.cseq += 1;
    let info = uac
        .request(
            "INFO",
            &branch,
            uac.cseq,
            "INFO",
            Some("Signal=5\r\nDuration=160\r\n"),
        )
        .replace("application/sdp", "application/dtmf-relay");
    sim.send(uac.peer, &info);
    assert_eq!(sim.take_sent()[0].code(), 200);
    match &sim.take_events()[..] {
        [
            Event::Info {
                call: c,
                content_type,
                body,
            },
        ] => {
            assert_eq!(*c, call);
            assert_eq!(content_type, "application/dtmf-relay");
            assert_eq!(body, &Bytes::from_static(b"Signal=5\r\nDuration=160\r\n"));
        }
        other => panic!("{other:?}"),
    }

    let (update, _) = uac.next("UPDATE", Some(&offer_with("sendonly", 2)));
    sim.send(uac.peer, &update);
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 200);
    assert!(sent[0].body().contains("a=recvonly"));
    assert!(matches!(
        &sim.take_events()[..],
        [Event::MediaUpdated { .. }]
    ));

    // A CSeq lower than the last one: 500.
    let branch = uac.branch();
    let old = uac.request("INFO", &branch, 1, "INFO", None);
    sim.send(uac.peer, &old);
    assert_eq!(sim.take_sent()[0].code(), 500);
}

#[test]
fn invite_without_sdp_gets_our_offer_and_the_answer_in_the_ack() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "late");
    let call = sim.incoming_call(&mut uac, None);
    let ok = sim.answer(&mut uac, call);
    assert!(
        ok.body().contains("m=audio 30000 RTP/AVP 0 8 101"),
        "{}",
        ok.body()
    );
    assert!(matches!(
        &sim.take_events()[..],
        [Event::Answered { session: None, .. }]
    ));
    let answer = OFFER.replace(
        "m=audio 40000 RTP/AVP 0 8 101",
        "m=audio 40002 RTP/AVP 8 101",
    );
    sim.ack(&mut uac, 1, Some(&answer));
    match &sim.take_events()[..] {
        [Event::Confirmed { .. }, Event::MediaUpdated { session, .. }] => {
            assert_eq!(session.remote, Some("192.0.2.1:40002".parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn max_call_duration_ends_with_bye() {
    let mut sim = Sim::new(EndpointConfig {
        max_call_duration: SECS(60),
        ..EndpointConfig::default()
    });
    let mut uac = Uac::new("192.0.2.1:5060", "long");
    let call = sim.established(&mut uac);
    sim.run_until(SECS(59));
    assert!(sim.take_sent().is_empty());
    sim.run_until(SECS(61));
    let sent = sim.take_sent();
    assert_eq!(sent[0].method(), "BYE");
    assert_eq!(sent[0].at, SECS(60));
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::MaxDuration)]
    );
}

#[test]
fn hangup_before_answer_sends_480() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "early");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.command(call, CallCommand::Hangup);
    assert_eq!(sim.take_sent()[0].code(), 480);
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::Rejected(480))]
    );
    sim.command(call, CallCommand::Hangup);
    assert!(sim.take_sent().is_empty());
}

#[test]
fn reject_sends_the_code_and_absorbs_the_ack() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "busy");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.command(call, CallCommand::Reject { code: 486 });
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 486);
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::Rejected(486))]
    );
    sim.run_until(SECS(1));
    assert_eq!(sim.take_sent().len(), 1); // Timer G at 0.5 s
    uac.to_tag = sent[0].to_tag();
    let ack = uac.request("ACK", "z9hG4bK-busy-1", 1, "ACK", None);
    sim.send(uac.peer, &ack);
    sim.run_until(SECS(40));
    assert!(sim.take_sent().is_empty());
    assert_eq!(sim.ep.transactions(), 0);
}

#[test]
fn responses_follow_via_rport_and_received() {
    let mut sim = Sim::default();
    // Behind a NAT: Via says 10.0.0.5:5060 with rport, the packet comes from 203.0.113.7:40123.
    let uac = Uac::new("10.0.0.5:5060", "nat");
    let nat = udp("203.0.113.7:40123");
    let opt = uac
        .request("OPTIONS", "z9hG4bK-nat", 1, "OPTIONS", None)
        .replace("branch=z9hG4bK-nat", "branch=z9hG4bK-nat;rport");
    sim.send(nat, &opt);
    let sent = sim.take_sent();
    assert_eq!(sent[0].to, nat);
    let via = sent[0].header("Via").unwrap();
    assert!(via.contains("rport=40123"), "{via}");
    assert!(via.contains("received=203.0.113.7"), "{via}");
    // Without rport: the source IP with the Via port.
    let opt = uac.request("OPTIONS", "z9hG4bK-nat2", 2, "OPTIONS", None);
    sim.send(nat, &opt);
    let sent = sim.take_sent();
    assert_eq!(sent[0].to, udp("203.0.113.7:5060"));
}

#[test]
fn tcp_responses_go_back_on_the_same_connection() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "tcp");
    uac.peer = Peer {
        transport: Transport::Tcp,
        addr: "192.0.2.1:50123".parse().unwrap(),
        conn: Some(ConnId(9)),
    };
    let invite = uac
        .request("INVITE", "z9hG4bK-tcp", 1, "INVITE", Some(OFFER))
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    sim.send(uac.peer, &invite);
    let sent = sim.take_sent();
    assert_eq!(sent[0].to, uac.peer);
    let Some(Event::IncomingCall { call, .. }) = sim.take_events().pop() else {
        panic!("no call")
    };
    sim.command(call, CallCommand::Reject { code: 603 });
    assert_eq!(sim.take_sent()[0].to, uac.peer);
    // No Timer G over TCP: nothing more until Timer H.
    sim.run_until(SECS(31));
    assert!(sim.take_sent().is_empty());
}

#[test]
fn garbage_is_dropped_and_counted_and_untrusted_sources_ignored() {
    let mut sim = Sim::new(EndpointConfig {
        trusted: vec![("192.0.2.0".parse().unwrap(), 24)],
        ..EndpointConfig::default()
    });
    sim.send(udp("192.0.2.1:5060"), "\x00\x01garbage");
    assert_eq!(sim.ep.stats().dropped_malformed, 1);
    let uac = Uac::new("198.51.100.1:5060", "untrusted");
    let invite = uac.request("INVITE", "z9hG4bK-u", 1, "INVITE", Some(OFFER));
    sim.send(uac.peer, &invite);
    assert!(sim.take_sent().is_empty());
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.ep.stats().untrusted, 1);
}

#[test]
fn many_calls_leave_no_state_behind() {
    let mut sim = Sim::default();
    for i in 0..50u64 {
        sim.run_until(SECS(i)); // one new call a second, within the rate limit
        sim.take_sent(); // our unanswered BYEs being retransmitted
        let mut uac = Uac::new("192.0.2.1:5060", &format!("many{i}"));
        let call = sim.established(&mut uac);
        if i % 2 == 0 {
            let (bye, _) = uac.next("BYE", None);
            sim.send(uac.peer, &bye);
        } else {
            sim.command(call, CallCommand::Hangup);
        }
        sim.take_sent();
        sim.take_events();
    }
    assert_eq!(sim.ep.active_calls(), 0);
    sim.run_until(SECS(300));
    assert_eq!(sim.ep.transactions(), 0);
    assert_eq!(sim.ep.poll_timeout(), None);
}

#[test]
fn flood_of_requests_in_unknown_dialogs_keeps_state_bounded() {
    let mut sim = Sim::new(EndpointConfig {
        rate_per_source: 10.0,
        rate_burst: 20,
        ..EndpointConfig::default()
    });
    let mut uac = Uac::new("198.51.100.9:5060", "ghosts");
    for i in 0..5000 {
        uac.to_tag = Some(format!("t{i}"));
        let (bye, _) = uac.next("BYE", None);
        sim.send(uac.peer, &bye);
    }
    assert!(sim.ep.transactions() <= 20, "{}", sim.ep.transactions());
    assert!(sim.ep.stats().rate_limited >= 4980);
    assert!(sim.take_sent().len() <= 20);
}

#[test]
fn unanswered_call_times_out_with_480() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "forgotten");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.run_until(SECS(179));
    assert!(sim.take_sent().is_empty());
    sim.run_until(SECS(181));
    let sent = sim.take_sent();
    assert_eq!(sent[0].code(), 480);
    assert_eq!(sent[0].at, SECS(180));
    assert_eq!(ended(&sim.take_events()), vec![(call, EndReason::Timeout)]);
    assert_eq!(sim.ep.active_calls(), 0);
}

#[test]
fn merged_invite_on_another_branch_gets_482() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "merged");
    sim.incoming_call(&mut uac, Some(OFFER));
    let again = uac.request("INVITE", "z9hG4bK-other-path", 1, "INVITE", Some(OFFER));
    sim.send(uac.peer, &again);
    assert_eq!(sim.take_sent()[0].code(), 482);
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.ep.active_calls(), 1);
}

#[test]
fn contact_says_tcp_for_calls_over_tcp() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "tcpcontact");
    uac.peer = Peer {
        transport: Transport::Tcp,
        addr: "192.0.2.1:50124".parse().unwrap(),
        conn: Some(ConnId(3)),
    };
    let call = {
        let invite = uac
            .request("INVITE", "z9hG4bK-tc", 1, "INVITE", Some(OFFER))
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        sim.send(uac.peer, &invite);
        sim.take_sent();
        match sim.take_events().pop() {
            Some(Event::IncomingCall { call, .. }) => call,
            other => panic!("{other:?}"),
        }
    };
    let ok = sim.answer(&mut uac, call);
    assert!(ok.header("Contact").unwrap().contains(";transport=tcp"));
    assert_eq!(ok.to, uac.peer);
}

#[test]
fn reinvite_without_sdp_gets_our_offer_and_the_answer_in_the_ack() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "reoffer");
    let call = sim.established(&mut uac);
    let (reinvite, _) = uac.next("INVITE", None);
    sim.send(uac.peer, &reinvite);
    let sent = sim.take_sent();
    assert_eq!(
        sent.iter().map(Sent::code).collect::<Vec<_>>(),
        vec![100, 200]
    );
    let offer = sent[1].body();
    assert!(offer.contains("m=audio 30000 RTP/AVP 0 8 101"), "{offer}");
    // Our offer differs from our first answer, so its o= version moved on.
    assert!(offer.contains("o=guichet 77 2 "), "{offer}");
    let answer = offer_with("sendonly", 2);
    let cseq = uac.cseq;
    sim.ack(&mut uac, cseq, Some(&answer));
    match &sim.take_events()[..] {
        [Event::MediaUpdated { call: c, session }] => {
            assert_eq!(*c, call);
            assert_eq!(session.local_direction, Direction::RecvOnly);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hangup_before_the_ack_waits_for_it_then_sends_bye() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "impatient");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.answer(&mut uac, call);
    sim.take_events();
    sim.command(call, CallCommand::Hangup);
    assert!(sim.take_sent().is_empty()); // no BYE before the ACK (RFC 3261 section 15)
    assert!(sim.take_events().is_empty());
    sim.run_until(200 * MS);
    sim.ack(&mut uac, 1, None);
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method(), "BYE");
    let events = sim.take_events();
    assert!(matches!(events[0], Event::Confirmed { .. }));
    assert_eq!(ended(&events), vec![(call, EndReason::LocalBye)]);
}

mod random_traffic {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// UAC `uac` sends `method` (with our To tag when `in_dialog`), maybe with an offer.
        Send {
            uac: usize,
            method: usize,
            in_dialog: bool,
            sdp: bool,
            retransmit: bool,
        },
        Advance(u64),
        Command {
            call: u64,
            command: usize,
        },
        Garbage(Vec<u8>),
    }

    const METHODS: [&str; 9] = [
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "REGISTER", "MESSAGE",
    ];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4usize, 0..METHODS.len(), any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(uac, method, in_dialog, sdp, retransmit)| Op::Send { uac, method, in_dialog, sdp, retransmit }),
            2 => (0..40_000u64).prop_map(Op::Advance),
            2 => (1..8u64, 0..5usize).prop_map(|(call, command)| Op::Command { call, command }),
            1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Garbage),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_traffic_never_panics_and_leaves_no_state(ops in proptest::collection::vec(op(), 1..60)) {
            let mut sim = Sim::new(EndpointConfig { max_calls: 3, ..EndpointConfig::default() });
            let mut uacs: Vec<Uac> = (0..4)
                .map(|i| Uac::new(&format!("192.0.2.{}:5060", i + 1), &format!("r{i}")))
                .collect();
            let mut last: Vec<Option<String>> = vec![None; 4];
            for op in ops {
                match op {
                    Op::Send { uac, method, in_dialog, sdp, retransmit } => {
                        let u = &mut uacs[uac];
                        if retransmit && let Some(text) = &last[uac] {
                            let text = text.clone();
                            sim.send(u.peer, &text);
                            continue;
                        }
                        // Learn the To tag from what was sent to this UAC.
                        if let Some(tag) = sim.sent.iter().rev().find(|s| s.to == u.peer).and_then(Sent::to_tag) {
                            u.to_tag = Some(tag);
                        }
                        let saved = u.to_tag.clone();
                        if !in_dialog {
                            u.to_tag = None;
                        }
                        let m = METHODS[method];
                        let body = sdp.then_some(OFFER);
                        let text = if m == "ACK" || m == "CANCEL" {
                            let b = u.branch();
                            u.request(m, &b, u.cseq, m, body)
                        } else {
                            u.next(m, body).0
                        };
                        u.to_tag = saved;
                        sim.send(u.peer, &text);
                        last[uac] = Some(text);
                    }
                    Op::Advance(ms) => {
                        let at = sim.now - sim.t0 + Duration::from_millis(ms);
                        sim.run_until(at);
                    }
                    Op::Command { call, command } => {
                        let command = match command {
                            0 => CallCommand::Ringing,
                            1 => CallCommand::Answer { local: local_media() },
                            2 => CallCommand::Reject { code: 486 },
                            3 => CallCommand::Reject { code: 42 },
                            _ => CallCommand::Hangup,
                        };
                        sim.command(CallKey(call), command);
                    }
                    Op::Garbage(bytes) => {
                        sim.ep.handle_input(Input::Message { now: sim.now, from: uacs[0].peer, bytes: &bytes });
                        sim.drain();
                    }
                }
                prop_assert!(sim.ep.active_calls() <= 3);
            }
            // Hang up whatever is left, then let every timer run out.
            for call in 1..200u64 {
                sim.command(CallKey(call), CallCommand::Hangup);
            }
            let at = sim.now - sim.t0 + SECS(300);
            sim.run_until(at);
            prop_assert_eq!(sim.ep.active_calls(), 0);
            prop_assert_eq!(sim.ep.transactions(), 0);
            // Every call that started ended exactly once.
            let mut started: Vec<CallKey> = sim.events.iter().filter_map(|e| match e {
                Event::IncomingCall { call, .. } => Some(*call),
                _ => None,
            }).collect();
            let mut ends: Vec<CallKey> = ended(&sim.events).into_iter().map(|(c, _)| c).collect();
            started.sort();
            ends.sort();
            prop_assert_eq!(started, ends);
            prop_assert_eq!(sim.ep.poll_timeout(), None);
        }
    }
}

#[test]
fn retransmitted_bye_and_info_are_answered_from_the_transaction_not_processed_twice() {
    let mut sim = Sim::default();
    let mut uac = Uac::new("192.0.2.1:5060", "dup");
    let call = sim.established(&mut uac);
    let (info, _) = uac.next("INFO", None);
    sim.send(uac.peer, &info);
    sim.run_until(SECS(1));
    sim.send(uac.peer, &info); // our 200 was lost
    let sent = sim.take_sent();
    assert_eq!(
        sent.iter().map(Sent::code).collect::<Vec<_>>(),
        vec![200, 200]
    );
    assert_eq!(sent[0].to_tag(), sent[1].to_tag());
    let infos = sim
        .take_events()
        .iter()
        .filter(|e| matches!(e, Event::Info { .. }))
        .count();
    assert_eq!(infos, 1);

    let (bye, _) = uac.next("BYE", None);
    sim.send(uac.peer, &bye);
    sim.run_until(SECS(2));
    sim.send(uac.peer, &bye); // our 200 was lost again
    let sent = sim.take_sent();
    assert_eq!(
        sent.iter().map(Sent::code).collect::<Vec<_>>(),
        vec![200, 200]
    );
    assert_eq!(
        ended(&sim.take_events()),
        vec![(call, EndReason::RemoteBye)]
    );
    assert_eq!(sim.ep.stats().retransmissions_absorbed, 2);
    // After Timer J the BYE transaction is gone: a very late copy gets 481.
    sim.run_until(SECS(40));
    sim.send(uac.peer, &bye);
    assert_eq!(sim.take_sent()[0].code(), 481);
}

/// A whole call over a lossy network: the UAC side runs Guichet's own client transactions
/// (Timer A/E retransmissions), ACKs every 2xx it gets, and hangs up after 5 s.
mod lossy_network {
    use super::*;
    use guichet::sip::endpoint::Timers;
    use guichet::sip::message::{Request, build_response};
    use guichet::sip::transaction::{
        ClientInput, ClientInvite, ClientKey, ClientNonInvite, TsxEvent, TsxOutput,
    };
    use proptest::prelude::*;

    struct Lossy {
        state: u64,
        percent: u64,
    }

    impl Lossy {
        fn lost(&mut self) -> bool {
            self.state = self
                .state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.state >> 33) % 100 < self.percent
        }
    }

    fn request(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[derive(Default)]
    struct Outcome {
        incoming: usize,
        ended: Vec<EndReason>,
        bye_final: Option<u16>,
    }

    fn run(seed: u64, percent: u64) -> Outcome {
        let mut sim = Sim::default();
        let mut net = Lossy {
            state: seed,
            percent,
        };
        let mut uac = Uac::new("192.0.2.1:5060", "lossy");
        let server = udp("192.0.2.10:5060");
        let invite_text = uac.request("INVITE", "z9hG4bK-lossy-inv", 1, "INVITE", Some(OFFER));
        let mut invite =
            ClientInvite::new(sim.now, server, request(&invite_text), Timers::default());
        let mut bye: Option<ClientNonInvite> = None;
        let mut outcome = Outcome::default();
        let end = sim.t0 + SECS(120);
        loop {
            // Settle: move messages both ways until nothing is in flight.
            loop {
                let mut moved = false;
                let mut uac_out: Vec<TsxOutput> =
                    std::iter::from_fn(|| invite.poll_output()).collect();
                if let Some(b) = bye.as_mut() {
                    uac_out.extend(std::iter::from_fn(|| b.poll_output()));
                }
                for o in uac_out {
                    moved = true;
                    match o {
                        TsxOutput::Transmit { bytes, .. } => {
                            if !net.lost() {
                                sim.ep.handle_input(Input::Message {
                                    now: sim.now,
                                    from: uac.peer,
                                    bytes: &bytes,
                                });
                            }
                        }
                        TsxOutput::Event(TsxEvent::Response(r)) => {
                            let code = r.status_code.code();
                            let is_bye = headers::cseq(&r.headers).is_some_and(|(_, m)| m == "BYE");
                            if is_bye && code >= 200 {
                                outcome.bye_final = Some(code);
                            } else if (200..300).contains(&code) {
                                // 13.2.2.4: ACK every 2xx, retransmissions included.
                                uac.to_tag = headers::first(&r.headers, "To")
                                    .and_then(headers::tag_param)
                                    .map(str::to_owned);
                                let branch = uac.branch();
                                let ack = uac.request("ACK", &branch, 1, "ACK", None);
                                if !net.lost() {
                                    sim.ep.handle_input(Input::Message {
                                        now: sim.now,
                                        from: uac.peer,
                                        bytes: ack.as_bytes(),
                                    });
                                }
                            }
                        }
                        TsxOutput::Event(TsxEvent::TimedOut) => {}
                    }
                }
                while let Some(o) = sim.ep.poll_output() {
                    moved = true;
                    match o {
                        Output::Transmit { bytes, .. } => {
                            if net.lost() {
                                continue;
                            }
                            match parse(&bytes) {
                                Ok(SipMessage::Response(r)) => {
                                    let key = ClientKey::of_response(&r);
                                    let input = ClientInput::Response {
                                        now: sim.now,
                                        response: Box::new(r),
                                    };
                                    match (key, bye.as_mut()) {
                                        (Some(k), Some(b)) if k.method == "BYE" => {
                                            b.handle_input(input)
                                        }
                                        _ => invite.handle_input(input),
                                    }
                                }
                                Ok(SipMessage::Request(r)) => {
                                    // Our endpoint's BYE (ACK timeout): the UAC says 200.
                                    let ok = build_response(&r, 200, None, vec![], None).to_bytes();
                                    if !net.lost() {
                                        sim.ep.handle_input(Input::Message {
                                            now: sim.now,
                                            from: uac.peer,
                                            bytes: &ok,
                                        });
                                    }
                                }
                                Err(e) => panic!("unparseable output: {e}"),
                            }
                        }
                        Output::Event(Event::IncomingCall { call, .. }) => {
                            outcome.incoming += 1;
                            sim.ep.handle_input(Input::Command {
                                now: sim.now,
                                call,
                                command: CallCommand::Answer {
                                    local: local_media(),
                                },
                            });
                        }
                        Output::Event(Event::Ended { reason, .. }) => outcome.ended.push(reason),
                        Output::Event(_) => {}
                    }
                }
                if !moved {
                    break;
                }
            }
            // The caller hangs up 5 s after it got the 2xx.
            if bye.is_none() && uac.to_tag.is_some() && sim.now >= sim.t0 + SECS(5) {
                let b = uac.branch();
                uac.cseq += 1;
                let text = uac.request("BYE", &b, uac.cseq, "BYE", None);
                bye = Some(ClientNonInvite::new(
                    sim.now,
                    server,
                    Bytes::from(text),
                    Timers::default(),
                ));
                continue;
            }
            let mut next = [
                sim.ep.poll_timeout(),
                invite.poll_timeout(),
                bye.as_ref().and_then(ClientNonInvite::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            if bye.is_none() && uac.to_tag.is_some() {
                next = Some(next.map_or(sim.t0 + SECS(5), |n| n.min(sim.t0 + SECS(5))));
            }
            let Some(next) = next.filter(|n| *n <= end) else {
                break;
            };
            sim.now = sim.now.max(next);
            sim.ep.handle_input(Input::Timeout { now: sim.now });
            invite.handle_input(ClientInput::Timeout { now: sim.now });
            if let Some(b) = bye.as_mut() {
                b.handle_input(ClientInput::Timeout { now: sim.now });
            }
        }
        assert_eq!(sim.ep.active_calls(), 0);
        assert_eq!(sim.ep.transactions(), 0);
        outcome
    }

    #[test]
    fn thirty_percent_loss_still_completes_calls() {
        for seed in 0..20 {
            let o = run(seed, 30);
            assert_eq!(o.incoming, 1, "seed {seed}");
            assert_eq!(o.ended, vec![EndReason::RemoteBye], "seed {seed}");
            assert_eq!(o.bye_final, Some(200), "seed {seed}");
        }
    }

    #[test]
    fn no_loss_gives_a_clean_call() {
        let o = run(1, 0);
        assert_eq!(o.incoming, 1);
        assert_eq!(o.ended, vec![EndReason::RemoteBye]);
        assert_eq!(o.bye_final, Some(200));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn lossy_network_never_doubles_a_call_and_ends_it_once(seed in any::<u64>(), percent in 0..40u64) {
            let o = run(seed, percent);
            prop_assert!(o.incoming <= 1, "INVITE retransmissions made {} calls", o.incoming);
            prop_assert_eq!(o.ended.len(), o.incoming);
            if o.bye_final == Some(200) {
                prop_assert_eq!(&o.ended, &vec![EndReason::RemoteBye]);
            }
        }
    }
}

#[test]
fn absurd_timer_config_cannot_overflow_deadlines() {
    let mut sim = Sim::new(EndpointConfig {
        max_call_duration: Duration::MAX,
        timers: guichet::sip::endpoint::Timers {
            t1: Duration::MAX,
            t2: Duration::ZERO,
            t4: Duration::MAX,
        },
        ..EndpointConfig::default()
    });
    let mut uac = Uac::new("192.0.2.1:5060", "absurd");
    let call = sim.incoming_call(&mut uac, Some(OFFER));
    sim.answer(&mut uac, call);
    sim.run_until(SECS(3600 * 24));
    assert_eq!(ended(&sim.take_events())[0].1, EndReason::AckTimeout);
}
