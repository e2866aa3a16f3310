//! Property tests of the SIP message façade:
//! - print then parse gives back the parts that matter (method or status, Request-URI with
//!   escapes, every header name and value, body bytes), and such valid requests pass every
//!   UAS check of `read_datagram`;
//! - `StreamFramer` cuts any concatenation of messages, split anywhere, back into them;
//! - no byte string (random, or a mutated RFC 4475 torture file) makes `read_datagram`,
//!   `parse` or `StreamFramer` panic.

use guichet::sip::message::{
    self, Auth, Domain, Header, Headers, Host, HostWithPort, Incoming, Method, OtherParam,
    OtherParamValue, Param, Port, Request, Response, Scheme, SipMessage, StatusCode, StreamFramer,
    Uri, Version, header,
};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(Method::all())
}

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]"
}

fn domain() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z]{2,5}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

/// URI user text: anything printable, including characters that must be escaped.
fn user() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 %@:;?/&=+$,.!~*'()_é<>\"#-]{1,16}"
}

fn uri() -> impl Strategy<Value = Uri> {
    (
        prop::bool::ANY,
        prop::option::of(user()),
        prop::option::of("[a-zA-Z0-9 @:%]{1,8}"),
        prop_oneof![
            domain().prop_map(|d| Host::Domain(Domain::from(d))),
            any::<std::net::Ipv4Addr>().prop_map(|ip| Host::IpAddr(ip.into())),
            any::<std::net::Ipv6Addr>().prop_map(|ip| Host::IpAddr(ip.into())),
        ],
        prop::option::of(1u16..),
        prop::collection::vec(
            ("x-[a-z]{1,6}", prop::option::of("[a-zA-Z0-9.!~*_-]{1,8}")),
            0..3,
        ),
    )
        .prop_map(|(sips, user, password, host, port, params)| Uri {
            scheme: Some(if sips { Scheme::Sips } else { Scheme::Sip }),
            auth: user.map(|user| Auth {
                user,
                password: password.clone(),
            }),
            host_with_port: HostWithPort {
                host,
                port: port.map(Port),
            },
            params: params
                .into_iter()
                .map(|(n, v)| Param::Other(OtherParam::new(n), v.map(OtherParamValue::new)))
                .collect(),
            headers: Vec::new(),
        })
}

/// A quoted string with escaped quotes and backslashes, commas and semicolons inside.
fn quoted() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,;:<>@éà\"\\\\]{0,12}".prop_map(|s| {
        let mut q = String::from("\"");
        for c in s.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    })
}

fn name_addr() -> impl Strategy<Value = String> {
    (quoted(), domain(), "[a-z0-9]{1,8}", "[a-zA-Z0-9]{1,10}")
        .prop_map(|(display, host, user, tag)| format!("{display} <sip:{user}@{host}>;tag={tag}"))
}

/// An extension header value: tokens, quoted strings, comma lists, parameters.
fn extension_value() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        "[a-zA-Z0-9.!%*_+`'~-]{1,10}",
        quoted(),
        ("[a-z]{1,6}", "[a-z0-9]{1,6}").prop_map(|(n, v)| format!("tok;{n}={v}")),
        domain().prop_map(|d| format!("<sip:{d}>")),
    ];
    prop::collection::vec(item, 1..4).prop_map(|items| items.join(", "))
}

fn common_headers() -> impl Strategy<Value = Vec<Header>> {
    (
        domain(),
        "[a-zA-Z0-9]{4,16}",
        name_addr(),
        name_addr(),
        "[a-zA-Z0-9.!%*_+`'~()<>:/?{}-]{1,20}(@[a-z0-9.]{1,12})?",
        prop::collection::vec(("X-[A-Za-z][A-Za-z0-9-]{0,10}", extension_value()), 0..4),
        0u8..=255,
    )
        .prop_map(|(via_host, branch, from, to, call_id, extensions, mf)| {
            let mut h = vec![
                Header::Via(header::Via::new(format!(
                    "SIP/2.0/UDP {via_host}:5060;branch=z9hG4bK{branch};rport"
                ))),
                Header::From(header::From::new(from)),
                Header::To(header::To::new(to)),
                Header::CallId(header::CallId::new(call_id)),
                Header::MaxForwards(header::MaxForwards::new(mf.to_string())),
            ];
            h.extend(extensions.into_iter().map(|(n, v)| Header::Other(n, v)));
            h
        })
}

fn with_body(mut headers: Vec<Header>, body: &[u8]) -> Headers {
    if !body.is_empty() {
        headers.push(Header::ContentType(header::ContentType::new(
            "application/sdp",
        )));
    }
    headers.push(Header::ContentLength(header::ContentLength::new(
        body.len().to_string(),
    )));
    Headers::from(headers)
}

prop_compose! {
    fn request()(method in method(), uri in uri(), headers in common_headers(),
                 seq in 0u32..0x8000_0000, body in prop::collection::vec(any::<u8>(), 0..300))
                -> Request {
        let mut headers = headers;
        headers.push(Header::CSeq(header::CSeq::new(format!("{seq} {method}"))));
        Request {
            method,
            uri,
            version: Version::V2,
            headers: with_body(headers, &body),
            body,
        }
    }
}

prop_compose! {
    fn response()(code in prop::sample::select(vec![100u16, 180, 183, 200, 202, 302, 400, 401,
                                                   404, 407, 415, 420, 481, 486, 487, 500, 503, 603]),
                  method in method(), headers in common_headers(), seq in 0u32..,
                  body in prop::collection::vec(any::<u8>(), 0..300)) -> Response {
        let mut headers = headers;
        headers.push(Header::CSeq(header::CSeq::new(format!("{seq} {method}"))));
        Response {
            status_code: StatusCode::from(code),
            wire_reason: None,
            version: Version::V2,
            headers: with_body(headers, &body),
            body,
        }
    }
}

fn pairs(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn requests_round_trip_and_pass_the_uas_checks(req in request()) {
        let bytes = req.to_bytes();
        let Ok(SipMessage::Request(back)) = message::parse(&bytes) else {
            return Err(TestCaseError::fail(format!("unparsed: {}", String::from_utf8_lossy(&bytes))));
        };
        prop_assert_eq!(back.method, req.method);
        prop_assert_eq!(&back.uri, &req.uri, "{}", req.uri);
        prop_assert_eq!(pairs(&back.headers), pairs(&req.headers));
        prop_assert_eq!(&back.body, &req.body);
        match message::read_datagram(&bytes) {
            Incoming::Request(checked) => prop_assert_eq!(checked, back),
            other => return Err(TestCaseError::fail(format!(
                "valid request not passed: {other:?}\n{}", String::from_utf8_lossy(&bytes)))),
        }
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let bytes = resp.to_bytes();
        let Incoming::Response(back) = message::read_datagram(&bytes) else {
            return Err(TestCaseError::fail(format!("dropped: {}", String::from_utf8_lossy(&bytes))));
        };
        prop_assert_eq!(back.status_code.code(), resp.status_code.code());
        prop_assert_eq!(pairs(&back.headers), pairs(&resp.headers));
        prop_assert_eq!(&back.body, &resp.body);
    }

    #[test]
    fn the_framer_cuts_any_split_stream_back_into_its_messages(
        reqs in prop::collection::vec(request(), 1..4),
        cuts in prop::collection::vec(1usize..200, 1..20),
        pings in prop::collection::vec(0usize..3, 4),
    ) {
        let mut stream = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            for _ in 0..pings[i] {
                stream.extend_from_slice(b"\r\n\r\n");
            }
            stream.extend_from_slice(&r.to_bytes());
        }
        let mut framer = StreamFramer::default();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            framer.push(&rest[..n]);
            rest = &rest[n..];
            i += 1;
            while let Some(m) = framer.next_message().map_err(|e| TestCaseError::fail(e.to_string()))? {
                got.push(m);
            }
        }
        let want: Vec<Vec<u8>> = reqs.iter().map(Request::to_bytes).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(framer.take_pings(), pings[..reqs.len()].iter().sum::<usize>());
    }

    #[test]
    fn an_injected_defect_gets_its_code(req in request(), defect in 0usize..7) {
        let text = String::from_utf8_lossy(&req.to_bytes()).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
        let method = req.method.to_string();
        let code = match defect {
            0 => { lines.retain(|l| !l.starts_with("Call-ID:")); 400 }
            1 => { let to = lines.iter().find(|l| l.starts_with("To:")).cloned().unwrap_or_default(); lines.push(to); 400 }
            2 => {
                let other = if req.method == Method::Options { "INFO" } else { "OPTIONS" };
                for l in lines.iter_mut().filter(|l| l.starts_with("CSeq:")) {
                    *l = l.replace(&method, other);
                }
                400
            }
            3 => { lines.insert(1, "Require: x-nothing".into()); 420 }
            4 => { lines[0] = lines[0].replace(" SIP/2.0", " SIP/3.0"); 505 }
            5 => { lines[0] = format!("{method} mailto:someone@example.com SIP/2.0"); 416 }
            _ => { lines[0] = format!("{method}  {}", &lines[0][method.len() + 1..]); 400 }
        };
        let bytes = format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes();
        let got = message::read_datagram(&bytes);
        match (req.method, code, got) {
            // No response to an ACK, ever; Require is ignored in ACK and CANCEL.
            (Method::Ack, 420, Incoming::Request(_)) | (Method::Cancel, 420, Incoming::Request(_)) => {}
            (Method::Ack, _, Incoming::Drop(_)) => {}
            (_, code, Incoming::Refuse { code: got, response, .. }) => {
                prop_assert_eq!(got, code, "{}", String::from_utf8_lossy(&bytes));
                let status = format!("SIP/2.0 {code} ");
                prop_assert!(response.starts_with(status.as_bytes()));
            }
            (_, _, other) => return Err(TestCaseError::fail(format!(
                "defect {defect} not refused: {other:?}\n{}", String::from_utf8_lossy(&bytes)))),
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&data);
    }

    #[test]
    fn random_sip_like_text_never_panics(
        lines in prop::collection::vec("[ -~\t]{0,40}", 0..20), body in "[ -~]{0,40}"
    ) {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.push_str(&body);
        exercise(s.as_bytes());
    }

    #[test]
    fn mutated_torture_files_never_panic(
        file in 0usize..64,
        edits in prop::collection::vec((0usize..5, any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let files = torture_files();
        let mut data = files[file % files.len()].clone();
        for (kind, at, byte) in edits {
            let len = data.len();
            match kind {
                0 if len > 0 => data[at.index(len)] = byte,
                1 => data.insert(at.index(len + 1), byte),
                2 if len > 0 => { data.remove(at.index(len)); }
                3 => data.truncate(at.index(len + 1)),
                _ => {
                    // Duplicate a slice (repeated headers, CRLFs).
                    let start = at.index(len + 1);
                    let end = (start + usize::from(byte)).min(len);
                    let slice = data[start..end].to_vec();
                    data.splice(start..start, slice);
                }
            }
        }
        exercise(&data);
    }
}

/// Every entry point over `data`; only a panic fails.
fn exercise(data: &[u8]) {
    if let Incoming::Refuse { response, code, .. } = message::read_datagram(data) {
        assert!(response.starts_with(format!("SIP/2.0 {code} ").as_bytes()));
    }
    let _ = message::parse(data);
    for chunk in [data.len().max(1), 3] {
        let mut framer = StreamFramer::new(1024);
        for piece in data.chunks(chunk) {
            framer.push(piece);
            while let Ok(Some(m)) = framer.next_message() {
                let _ = message::read_datagram(&m);
            }
        }
    }
}

fn torture_files() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("SIP_TORTURE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/sip-torture"
            ))
        });
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("torture folder {} missing: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .dat file in {}", dir.display());
    files
}
