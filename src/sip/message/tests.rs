//! Unit tests of the façade (the RFC 4475 files are in tests/torture.rs).

use super::*;

fn msg(start: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut s = format!("{start}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

const BASE: &[&str] = &[
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport",
    "From: \"Alice\" <sip:alice@example.com>;tag=f1",
    "To: <sip:guichet@example.com>",
    "Call-ID: call-1@example.com",
    "CSeq: 7 INVITE",
    "Max-Forwards: 70",
    "Contact: <sip:alice@192.0.2.1:5060;transport=udp>",
];

fn invite(extra: &[&str], body: &str) -> Vec<u8> {
    let mut h: Vec<&str> = BASE.to_vec();
    h.extend_from_slice(extra);
    let cl = format!("Content-Length: {}", body.len());
    h.push(&cl);
    msg("INVITE sip:3949@example.com SIP/2.0", &h, body)
}

fn refusal(bytes: &[u8]) -> (Refusal, Response) {
    match inspect(bytes) {
        Inspection::Refuse {
            refusal, response, ..
        } => (refusal, response),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[test]
fn a_good_invite_passes_with_its_accessors() {
    let ct = "Content-Type: application/sdp";
    let Inspection::Request(req) = inspect(&invite(
        &[
            ct,
            "Record-Route: <sip:p1@example.net;lr>, <sip:p2@example.net;lr>",
        ],
        SDP,
    )) else {
        panic!("not a request");
    };
    assert_eq!(req.method, Method::Invite);
    assert_eq!(call_id(&req).unwrap(), "call-1@example.com");
    let branch = top_via_branch(&req).unwrap().unwrap();
    assert_eq!(branch.as_str(), "z9hG4bKabc");
    assert!(branch.is_rfc3261());
    assert_eq!(from_tag(&req).unwrap().as_deref(), Some("f1"));
    assert_eq!(to_tag(&req).unwrap(), None);
    assert_eq!(
        cseq(&req).unwrap(),
        CSeq {
            number: 7,
            method: Method::Invite
        }
    );
    assert_eq!(request_user(&req).as_deref(), Some("3949"));
    assert_eq!(
        contact_uri(&req).unwrap().to_string(),
        "sip:alice@192.0.2.1:5060;transport=UDP"
    );
    assert_eq!(
        record_route(&req).unwrap(),
        vec!["sip:p1@example.net;lr", "sip:p2@example.net;lr"]
    );
    assert_eq!(max_forwards(&req).unwrap(), Some(70));
    assert_eq!(sdp_body(&req).unwrap(), SDP.as_bytes());
    let via = top_via(&req).unwrap();
    assert_eq!(
        (via.transport.as_str(), via.port, via.rport),
        ("UDP", Some(5060), Some(None))
    );
}

#[test]
fn refusals_carry_a_stable_to_tag_and_the_right_headers() {
    let bytes = invite(&["Require: 100rel, timer"], "");
    let (r1, resp1) = refusal(&bytes);
    let (_, resp2) = refusal(&bytes);
    assert_eq!(
        r1,
        Refusal::BadExtension(vec!["100rel".into(), "timer".into()])
    );
    assert_eq!(resp1.to_bytes(), resp2.to_bytes());
    let text = String::from_utf8(resp1.to_bytes()).unwrap();
    assert!(text.starts_with("SIP/2.0 420 Bad Extension\r\n"), "{text}");
    assert!(text.contains("Unsupported: 100rel, timer\r\n"));
    let tag = refusal_tag("call-1@example.com", "z9hG4bKabc");
    assert!(
        text.contains(&format!("To: <sip:guichet@example.com>;tag={tag}\r\n")),
        "{text}"
    );
    assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n"));
    assert!(text.contains("CSeq: 7 INVITE\r\n"));
    // Another branch, another tag.
    assert_ne!(tag, refusal_tag("call-1@example.com", "z9hG4bKabd"));
}

#[test]
fn body_types() {
    let (r, resp) = refusal(&invite(&["Content-Type: text/html"], "<p>"));
    assert_eq!(r, Refusal::UnsupportedMediaType);
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(text.contains(
        "Accept: application/sdp, application/dtmf-relay, application/dtmf, multipart/mixed\r\n"
    ));
    let (r, _) = refusal(&invite(
        &["Content-Type: application/sdp", "Content-Encoding: gzip"],
        SDP,
    ));
    assert_eq!(r, Refusal::UnsupportedMediaType);
    // Optional bodies may be ignored.
    assert!(matches!(
        inspect(&invite(
            &[
                "Content-Type: text/html",
                "Content-Disposition: render;handling=optional"
            ],
            "<p>"
        )),
        Inspection::Request(_)
    ));
    // multipart/mixed with an SDP part.
    let mp = format!(
        "--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b\r\nContent-Type: application/isup\r\n\r\nxx\r\n--b--\r\n"
    );
    let Inspection::Request(req) =
        inspect(&invite(&["Content-Type: multipart/mixed;boundary=b"], &mp))
    else {
        panic!("multipart refused");
    };
    assert_eq!(sdp_body(&req).unwrap(), SDP.as_bytes());
    let mp = "--b\r\nContent-Type: application/isup\r\n\r\nxx\r\n--b--\r\n";
    let (r, _) = refusal(&invite(&["Content-Type: multipart/mixed;boundary=b"], mp));
    assert_eq!(r, Refusal::UnsupportedMediaType);
}

#[test]
fn accept_header_of_an_invite() {
    let (r, _) = refusal(&invite(&["Accept: text/plain"], ""));
    assert_eq!(r, Refusal::NotAcceptable);
    for ok in [
        "Accept: application/sdp",
        "Accept: text/plain, application/*",
        "Accept: */*",
    ] {
        assert!(
            matches!(inspect(&invite(&[ok], "")), Inspection::Request(_)),
            "{ok}"
        );
    }
}

#[test]
fn bad_requests() {
    let cases: Vec<(Vec<u8>, Defect)> = vec![
        (
            invite(&["Call-ID: again"], ""),
            Defect::Duplicate(HeaderName::CallId),
        ),
        (
            msg(
                "INVITE sip:a@example.com SIP/2.0",
                &[BASE[0], BASE[1], BASE[2], BASE[4]],
                "",
            ),
            Defect::Missing(HeaderName::CallId),
        ),
        (
            msg("BYE sip:a@example.com SIP/2.0", BASE, ""),
            Defect::CSeqMismatch,
        ),
        (
            {
                let mut b = invite(&[], "");
                // Content-Length: 0 -> claims 5 bytes that are not there.
                let s = String::from_utf8(b.clone())
                    .unwrap()
                    .replace("Content-Length: 0", "Content-Length: 5");
                b = s.into_bytes();
                b
            },
            Defect::ContentLengthTooLarge {
                declared: 5,
                available: 0,
            },
        ),
        (
            invite(&["Content-Length: 0"], ""),
            Defect::Duplicate(HeaderName::ContentLength),
        ),
        (
            msg("INVITE sip:a@example.com SIP/2.0 ", BASE, ""),
            Defect::BadRequestLine,
        ),
    ];
    for (bytes, defect) in cases {
        let (r, resp) = refusal(&bytes);
        assert_eq!(
            r,
            Refusal::BadRequest(defect.clone()),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(
            text.contains(&format!("Warning: 399 guichet \"{defect}\"")),
            "{text}"
        );
    }
}

#[test]
fn extra_bytes_after_the_body_are_ignored() {
    let mut bytes = invite(&["Content-Type: application/sdp"], SDP);
    bytes.extend_from_slice(b"garbage after the body");
    let Inspection::Request(req) = inspect(&bytes) else {
        panic!()
    };
    assert_eq!(req.body, SDP.as_bytes());
}

#[test]
fn an_ack_is_never_answered() {
    let mut h: Vec<&str> = BASE.to_vec();
    h[4] = "CSeq: 7 ACK";
    h.push("Require: foo");
    h.push("Content-Type: text/html");
    h.push("Content-Length: 3");
    let ok = msg("ACK sip:3949@example.com SIP/2.0", &h, "<p>");
    assert!(matches!(inspect(&ok), Inspection::Request(_)));
    let h2: Vec<&str> = h
        .iter()
        .copied()
        .filter(|l| !l.starts_with("Call-ID"))
        .collect();
    let bad = msg("ACK sip:3949@example.com SIP/2.0", &h2, "<p>");
    assert!(matches!(
        inspect(&bad),
        Inspection::Drop(ParseError::Unanswerable(_))
    ));
}

#[test]
fn unknown_and_lower_case_methods_get_501() {
    for m in ["FOO", "invite"] {
        let mut h: Vec<&str> = BASE.to_vec();
        let cseq = format!("CSeq: 7 {m}");
        h[4] = &cseq;
        let (r, resp) = refusal(&msg(&format!("{m} sip:a@example.com SIP/2.0"), &h, ""));
        assert_eq!(r, Refusal::NotImplemented);
        assert!(resp.to_bytes().starts_with(b"SIP/2.0 501 Not Implemented"));
    }
}

#[test]
fn keepalives_and_garbage_are_dropped() {
    assert!(matches!(
        inspect(b"\r\n\r\n"),
        Inspection::Drop(ParseError::KeepAlive)
    ));
    assert!(matches!(
        inspect(b""),
        Inspection::Drop(ParseError::KeepAlive)
    ));
    assert!(matches!(inspect(b"hello"), Inspection::Drop(_)));
    assert!(matches!(inspect(&[0xff; 100]), Inspection::Drop(_)));
}

#[test]
fn responses_are_checked_then_passed() {
    let h = [
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "From: <sip:a@b.example>;tag=1",
        "To: <sip:c@d.example>;tag=2",
        "Call-ID: x",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
    ];
    assert!(matches!(
        inspect(&msg("SIP/2.0 180 Ringing", &h, "")),
        Inspection::Response(_)
    ));
    assert!(matches!(
        inspect(&msg("SIP/2.0 099 Low", &h, "")),
        Inspection::Drop(ParseError::BadResponse(_))
    ));
    assert!(matches!(
        inspect(&msg("SIP/2.0 200 OK", &h[1..], "")),
        Inspection::Drop(ParseError::BadResponse(_))
    ));
}

#[test]
fn latin1_display_names_are_tolerated() {
    let mut bytes = b"OPTIONS sip:a@example.com SIP/2.0\r\nFrom: \"H\xe9l\xe8ne\" <sip:h@example.com>;tag=1\r\n".to_vec();
    bytes.extend_from_slice(b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let Inspection::Request(req) = inspect(&bytes) else {
        panic!()
    };
    assert_eq!(call_id(&req).unwrap(), "x");
}

#[test]
fn accessor_errors() {
    let Inspection::Request(mut req) = inspect(&invite(&[], "")) else {
        panic!()
    };
    req.headers
        .push(Header::CallId(header::CallId::new("other")));
    assert_eq!(
        call_id(&req),
        Err(HeaderError::Duplicate(HeaderName::CallId))
    );
    req.headers.retain(|h| {
        !matches!(
            h,
            Header::CallId(_) | Header::MaxForwards(_) | Header::Contact(_)
        )
    });
    assert_eq!(call_id(&req), Err(HeaderError::Missing(HeaderName::CallId)));
    assert_eq!(max_forwards(&req), Ok(None));
    assert_eq!(
        contact_uri(&req),
        Err(HeaderError::Missing(HeaderName::Contact))
    );
    req.headers
        .push(Header::MaxForwards(header::MaxForwards::new("300")));
    assert_eq!(
        max_forwards(&req),
        Err(HeaderError::Malformed(HeaderName::MaxForwards))
    );
    req.headers.retain(|h| !matches!(h, Header::Via(_)));
    req.headers
        .push(Header::Via(header::Via::new("SIP/2.0/UDP host;branch=")));
    assert_eq!(
        top_via_branch(&req),
        Err(HeaderError::Malformed(HeaderName::Via))
    );
}

#[test]
fn a_refused_request_keeps_its_uri() {
    let Inspection::Refuse {
        request: Some(req), ..
    } = inspect(&invite(&["Require: foo"], ""))
    else {
        panic!()
    };
    assert_eq!(req.uri.to_string(), "sip:3949@example.com");
}

#[test]
fn response_sdp() {
    let h = [
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "From: <sip:a@b.example>;tag=1",
        "To: <sip:c@d.example>;tag=2",
        "Call-ID: x",
        "CSeq: 1 INVITE",
        "Content-Type: application/sdp",
    ];
    let mut h: Vec<String> = h.iter().map(|s| s.to_string()).collect();
    h.push(format!("Content-Length: {}", SDP.len()));
    let refs: Vec<&str> = h.iter().map(String::as_str).collect();
    let Inspection::Response(r) = inspect(&msg("SIP/2.0 200 OK", &refs, SDP)) else {
        panic!()
    };
    assert_eq!(response_sdp_body(&r).unwrap(), SDP.as_bytes());
}
