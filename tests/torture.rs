//! RFC 4475 torture messages: what the message layer gives for each file of
//! `../shared/sip-torture/` (see its README.md for the expected behaviour).
//!
//! Files whose final answer depends on the endpoint (regaut01: a registrar's 401;
//! zeromf: processed; inv2543: RFC 2543 matching; REGISTER Contact parameters) are checked
//! for what this layer must give: the request passes through, with its headers intact.

use guichet::sip::message::{
    self, HeaderName, Incoming, Method, Request, StreamFramer, call_id, contact_uri, cseq,
    from_tag, read_datagram, request_user, top_via_branch,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sip-torture/");

/// `../shared/sip-torture/` from the repository root; `SIP_TORTURE_DIR` overrides it
/// (for a git worktree, whose root has no `shared/` beside it).
fn dir() -> std::path::PathBuf {
    std::env::var_os("SIP_TORTURE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(DIR))
}

fn load(name: &str) -> Vec<u8> {
    let dir = dir();
    assert!(
        dir.is_dir(),
        "the RFC 4475 torture folder is missing: expected {} (shared/ beside the repository \
         root, or set SIP_TORTURE_DIR)",
        dir.display()
    );
    let path = dir.join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every entry point must survive the file: datagram, parse, and the stream framer fed
/// the file whole and byte by byte.
fn survive(bytes: &[u8]) {
    let _ = message::parse(bytes);
    for chunk in [bytes.len().max(1), 1, 7] {
        let mut framer = StreamFramer::default();
        for piece in bytes.chunks(chunk) {
            framer.push(piece);
            while let Ok(Some(m)) = framer.next_message() {
                let _ = read_datagram(&m);
            }
        }
    }
}

fn request(name: &str) -> Request {
    let bytes = load(name);
    survive(&bytes);
    match read_datagram(&bytes) {
        Incoming::Request(r) => r,
        other => panic!("{name}: expected a request to process, got {other:?}"),
    }
}

fn response(name: &str) {
    let bytes = load(name);
    survive(&bytes);
    match read_datagram(&bytes) {
        Incoming::Response(_) => {}
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

fn dropped(name: &str) {
    let bytes = load(name);
    survive(&bytes);
    match read_datagram(&bytes) {
        Incoming::Drop(_) => {}
        other => panic!("{name}: expected a drop, got {other:?}"),
    }
}

/// A refusal with `code`; returns the response text. Checks the status line, that the
/// response echoes the request's Call-ID (when it had exactly one) and carries a To-tag,
/// and that a retransmission gets the same bytes.
fn refused(name: &str, code: u16) -> String {
    let bytes = load(name);
    survive(&bytes);
    let Incoming::Refuse {
        code: got,
        response,
        ..
    } = read_datagram(&bytes)
    else {
        panic!(
            "{name}: expected a {code} refusal, got {:?}",
            read_datagram(&bytes)
        );
    };
    assert_eq!(got, code, "{name}");
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(
        text.starts_with(&format!("SIP/2.0 {code} ")),
        "{name}: {text}"
    );
    assert!(text.contains("\r\nVia: "), "{name}: no Via in {text}");
    assert!(text.contains("\r\nCSeq: "), "{name}: no CSeq in {text}");
    assert!(
        text.ends_with("Content-Length: 0\r\n\r\n"),
        "{name}: {text}"
    );
    let Incoming::Refuse {
        response: again, ..
    } = read_datagram(&bytes)
    else {
        unreachable!()
    };
    assert_eq!(
        response, again,
        "{name}: a retransmission must get the same response"
    );
    text
}

fn has_tagged_to(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("To: ") && l.contains("tag="))
}

// ---- 3.1.1 valid messages -------------------------------------------------------------

#[test]
fn wsinv() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(call_id(&r).unwrap(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(cseq(&r).unwrap().number, 9);
    assert_eq!(top_via_branch(&r).unwrap().unwrap().as_str(), "390skdjuw");
    assert_eq!(from_tag(&r).unwrap().as_deref(), Some("98asjd8"));
    assert_eq!(message::to_tag(&r).unwrap().as_deref(), Some("1918181833n"));
    assert_eq!(message::max_forwards(&r).unwrap(), Some(68));
    assert_eq!(r.body.len(), 150);
    assert!(message::sdp_body(&r).is_some());
}

#[test]
fn intmeth() {
    // An extension method: the normal answer of a UAS is 501 Not Implemented.
    let text = refused("intmeth", 501);
    assert!(text.contains("CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n"));
    assert!(has_tagged_to(&text));
}

#[test]
fn esc01() {
    let r = request("esc01");
    assert_eq!(request_user(&r).as_deref(), Some("sips:user@example.com"));
    assert_eq!(r.uri.host().to_string(), "example.net");
    assert_eq!(
        contact_uri(&r).unwrap().user(),
        Some("caller"),
        "escaped user of the Contact"
    );
    assert_eq!(r.body.len(), 150);
}

#[test]
fn escnull() {
    let r = request("escnull");
    assert_eq!(r.method, Method::Register);
    assert_eq!(message::HeaderName::Contact.as_str(), "Contact");
    assert_eq!(
        r.headers
            .iter()
            .filter(|h| HeaderName::Contact.matches(h.name()))
            .count(),
        2
    );
    assert_eq!(contact_uri(&r).unwrap().user(), Some("\0"));
}

#[test]
fn esc02() {
    // RE%47IST%45R is an extension method, not REGISTER: 501.
    let text = refused("esc02", 501);
    assert!(text.contains("CSeq: 29344 RE%47IST%45R\r\n"));
}

#[test]
fn lwsdisp() {
    let r = request("lwsdisp");
    assert_eq!(r.method, Method::Options);
    assert_eq!(message::from_uri(&r).unwrap(), "sip:caller@example.com");
}

#[test]
fn longreq() {
    let r = request("longreq");
    assert_eq!(r.method, Method::Invite);
    // The top Via has no branch at all: an RFC 2543 transaction.
    assert_eq!(top_via_branch(&r).unwrap(), None);
    assert_eq!(
        r.headers
            .iter()
            .filter(|h| HeaderName::Via.matches(h.name()))
            .count(),
        34
    );
    assert_eq!(r.body.len(), 150);
}

#[test]
fn semiuri() {
    let r = request("semiuri");
    assert_eq!(request_user(&r).as_deref(), Some("user;par=u@example.net"));
    assert_eq!(r.uri.host().to_string(), "example.com");
}

#[test]
fn transports() {
    let r = request("transports");
    assert_eq!(message::top_via(&r).unwrap().transport, "UDP");
}

#[test]
fn mpart01() {
    // MESSAGE with a multipart body: passed to the endpoint, which answers the method.
    let r = request("mpart01");
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.body.len(), 553);
    assert_eq!(message::sdp_body(&r), None);
}

#[test]
fn unreason() {
    response("unreason");
}

#[test]
fn noreason() {
    response("noreason");
}

#[test]
fn dblreq() {
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty(), "the trailing INVITE is ignored");
}

// ---- 3.1.2 invalid messages -----------------------------------------------------------

#[test]
fn badinv01() {
    refused("badinv01", 400);
}

#[test]
fn clerr() {
    refused("clerr", 400);
}

#[test]
fn ncl() {
    refused("ncl", 400);
}

#[test]
fn scalar02() {
    refused("scalar02", 400);
}

#[test]
fn scalarlg() {
    dropped("scalarlg");
}

#[test]
fn quotbal() {
    refused("quotbal", 400);
}

#[test]
fn ltgtruri() {
    refused("ltgtruri", 400);
}

#[test]
fn lwsruri() {
    refused("lwsruri", 400);
}

#[test]
fn lwsstart() {
    refused("lwsstart", 400);
}

#[test]
fn trws() {
    refused("trws", 400);
}

#[test]
fn escruri() {
    refused("escruri", 400);
}

#[test]
fn baddate() {
    refused("baddate", 400);
}

#[test]
fn regbadct() {
    refused("regbadct", 400);
}

#[test]
fn badaspec() {
    refused("badaspec", 400);
}

#[test]
fn baddn() {
    refused("baddn", 400);
}

#[test]
fn badvers() {
    refused("badvers", 505);
}

#[test]
fn mismatch01() {
    refused("mismatch01", 400);
}

#[test]
fn mismatch02() {
    refused("mismatch02", 400);
}

#[test]
fn bigcode() {
    dropped("bigcode");
}

// ---- 3.2 / 3.3 / 3.4 ------------------------------------------------------------------

#[test]
fn badbranch() {
    let r = request("badbranch");
    let branch = top_via_branch(&r).unwrap().unwrap();
    assert_eq!(branch.as_str(), "z9hG4bK");
    assert!(
        !branch.is_rfc3261(),
        "the cookie alone is a pre-RFC 3261 branch"
    );
}

#[test]
fn insuf() {
    // No To, From, Call-ID: still answerable with 400 (Via and CSeq are enough to match).
    let text = refused("insuf", 400);
    assert!(text.contains("CSeq: 193942 INVITE\r\n"));
}

#[test]
fn unkscm() {
    refused("unkscm", 416);
}

#[test]
fn novelsc() {
    refused("novelsc", 416);
}

#[test]
fn unksm2() {
    let r = request("unksm2");
    assert_eq!(r.method, Method::Register);
    assert_eq!(message::from_uri(&r).unwrap(), "http://www.example.com");
}

#[test]
fn bext01() {
    let text = refused("bext01", 420);
    assert!(
        text.contains("Unsupported: nothingSupportsThis, nothingSupportsThisEither\r\n"),
        "{text}"
    );
    assert!(
        !text.contains("noProxiesSupportThis"),
        "Proxy-Require is not ours"
    );
}

#[test]
fn invut() {
    let text = refused("invut", 415);
    assert!(text.contains("\r\nAccept: application/sdp"), "{text}");
}

#[test]
fn regaut01() {
    // The 401 challenge is the registrar's (endpoint); the message layer passes it on.
    let r = request("regaut01");
    assert_eq!(r.method, Method::Register);
    assert!(
        r.headers
            .iter()
            .any(|h| h.name() == "Authorization" && h.value().starts_with("NoOneKnowsThisScheme"))
    );
}

#[test]
fn multi01() {
    let text = refused("multi01", 400);
    // Only the first of each duplicated header is echoed.
    assert_eq!(text.matches("\r\nCall-ID: ").count(), 1, "{text}");
    assert_eq!(text.matches("\r\nTo: ").count(), 1, "{text}");
}

#[test]
fn mcl01() {
    refused("mcl01", 400);
}

#[test]
fn bcast() {
    // A response: handed to the transaction layer, which matches or drops it; this layer
    // never sends anything for a response.
    response("bcast");
}

#[test]
fn zeromf() {
    let r = request("zeromf");
    assert_eq!(message::max_forwards(&r).unwrap(), Some(0));
}

#[test]
fn cparam01() {
    let r = request("cparam01");
    // addr-spec form: ";unknownparam" is a Contact header parameter, not a URI parameter.
    let uri = contact_uri(&r).unwrap();
    assert_eq!(uri.to_string(), "sip:+19725552222@gw1.example.net");
    assert!(
        r.headers
            .iter()
            .any(|h| h.value() == "sip:+19725552222@gw1.example.net;unknownparam")
    );
}

#[test]
fn cparam02() {
    let r = request("cparam02");
    // name-addr form: ";unknownparam" belongs to the URI.
    let uri = contact_uri(&r).unwrap();
    assert_eq!(
        uri.to_string(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
}

#[test]
fn regescrt() {
    let r = request("regescrt");
    let uri = contact_uri(&r).unwrap();
    assert_eq!(
        uri.headers,
        vec![("Route".to_string(), "%3Csip:sip.example.com%3E".to_string())]
    );
    assert!(
        r.headers
            .iter()
            .any(|h| h.value() == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    );
}

#[test]
fn sdp01() {
    refused("sdp01", 406);
}

#[test]
fn inv2543() {
    // RFC 2543: no Max-Forwards, no branch, no From tag, no Content-Length on UDP.
    let r = request("inv2543");
    assert_eq!(message::max_forwards(&r).unwrap(), None);
    assert_eq!(top_via_branch(&r).unwrap(), None);
    assert_eq!(from_tag(&r).unwrap(), None);
    let sdp = message::sdp_body(&r).expect("the body runs to the end of the datagram");
    assert!(sdp.starts_with(b"v=0\r\n"));
    assert_eq!(
        message::record_route(&r).unwrap(),
        vec!["sip:UserB@example.com;maddr=ss1.example.com"]
    );
}

/// Every file of the folder has its test above.
#[test]
fn every_file_is_covered() {
    let _ = load("wsinv");
    let source = include_str!("torture.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir()).expect("torture folder") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".dat")
            && !source.contains(&format!("fn {stem}()"))
        {
            missing.push(stem.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "torture files without a test: {missing:?}"
    );
}
