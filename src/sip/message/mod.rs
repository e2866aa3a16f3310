//! SIP message façade: the rest of Guichet sees SIP messages only through this module.
//!
//! Input: bytes from the network (one UDP datagram, or one message cut from a TCP stream
//! by [`StreamFramer`]). Output: an [`Incoming`] verdict: a usable request or response, a
//! request to refuse with a ready-built response (400, 416, 420, 415, 406, 501, 505), or
//! bytes to drop and count. Also builds responses to requests ([`build_response`]) and
//! reads the headers the endpoint needs ([`call_id`], [`top_via_branch`], [`cseq`]...).
//!
//! Types are rsipstack's (re-exported here); no other module imports rsipstack directly.
//! rsipstack's parser is liberal; every check a UAS makes before processing a request
//! (RFC 3261 section 8.2, RFC 4475) is made here, on our own scan of the raw text, in
//! this order: 505 (version), 400 (request line, required headers, grammar of Via/From/
//! To/Call-ID/CSeq/Contact/Date, Content-Length), 501 (unknown method), 416 (Request-URI
//! scheme), 420 (Require), 415 (body type), 406 (INVITE whose Accept excludes SDP).
//! A refusal carries a To-tag derived from Call-ID and top Via branch ([`refusal_tag`]),
//! so a retransmitted request gets the same response. An ACK is never answered: what
//! would be refused is dropped.
//!
//! API CONTRACT: `read_datagram`, `build_response`, `StreamFramer` are used by
//! `sip::endpoint` and `engine`; keep these signatures (extend freely).
//!
//! ```
//! use guichet::sip::message::{read_datagram, Incoming};
//! let bytes = b"OPTIONS sip:guichet@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n\
//!     To: <sip:guichet@example.com>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
//!     Require: 100rel\r\nContent-Length: 0\r\n\r\n";
//! match read_datagram(bytes) {
//!     Incoming::Refuse { code, response, .. } => {
//!         assert_eq!(code, 420);
//!         assert!(String::from_utf8_lossy(&response).contains("Unsupported: 100rel"));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! NOTE(rsipstack) findings (0.7.14), each handled in this module:
//! - methods are parsed case-insensitively and extension methods are refused: `invite` is
//!   taken as INVITE, `NEWMETHOD` fails to parse (we answer 501 from our own scan);
//! - the Request-URI is taken from `<...>` (ltgtruri), trailing spaces after the version
//!   are trimmed (trws), `?headers` are allowed in it (escruri): all 400 here;
//! - a URI user holding `;` (semiuri) is split at the `;` (user lost, wrong host);
//!   escapes in user/password are kept raw but printed encoded again (`%41` becomes
//!   `%2541`): we parse sip/sips URIs ourselves and store the decoded user;
//! - a Content-Length that does not parse (`-999`) is read as 0; a larger one than the
//!   datagram is silently cut; duplicates are accepted (ncl, clerr, mcl01: 400 here);
//! - a missing Content-Length gives an empty body, where on UDP the body is the rest of
//!   the datagram (inv2543): we restore it;
//! - a header line that is not UTF-8 silently ends the header section (every header after
//!   it is lost): we repair the head (U+FFFD) before handing it over;
//! - header parameter names are not trimmed (`branch  = x` is not a branch; wsinv): we read
//!   Via, From/To tags and Contact with our own grammar;
//! - nothing checks required headers, their count, CSeq against the method, the Date
//!   format, display names, or `< uri >` spacing: done here (RFC 4475 section 3.1.2).

mod body;
mod framer;
mod grammar;
mod headers;
mod scan;

pub use body::{ACCEPTED_BODY_TYPES, MediaType};
pub use framer::{DEFAULT_MAX_MESSAGE, FrameError, StreamFramer};
pub use headers::{
    Branch, CSeq, HeaderAccess, HeaderError, HeaderName, TopVia, call_id, contact_uri, cseq,
    from_tag, from_uri, max_forwards, parse_uri, record_route, request_user, to_tag, top_via,
    top_via_branch,
};
pub use rsipstack::sip::headers::untyped as header;
pub use rsipstack::sip::uri::{Auth, Domain, Host, HostWithPort, OtherParam, OtherParamValue};
pub use rsipstack::sip::{
    Header, Headers, Method, Param, Port, Request, Response, Scheme, SipMessage, StatusCode, Uri,
    Version,
};

use grammar::{parse_name_addr, parse_request_line, parse_version, split_outside};
use scan::Scanned;
use sha2::Digest;

/// SIP option tags we support (RFC 3261 section 19.2); the endpoint writes the same list
/// in its Supported headers. A request that requires anything else gets 420.
pub const SUPPORTED: &[&str] = &[];

/// Request-URI schemes we serve; any other gets 416.
pub const URI_SCHEMES: &[&str] = &["sip", "sips", "tel"];

/// Larger inputs are dropped without a look (a UDP datagram is at most 65,535 bytes).
pub const MAX_MESSAGE: usize = 128 * 1024;

/// Why bytes could not be read as a SIP message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The underlying parser refused the message.
    #[error("malformed SIP message: {0}")]
    Malformed(#[from] rsipstack::sip::Error),
    /// Only CR/LF or whitespace: a keep-alive.
    #[error("keep-alive (only CR/LF)")]
    KeepAlive,
    /// Over [`MAX_MESSAGE`] bytes.
    #[error("message of {len} bytes is too large")]
    TooLarge { len: usize },
    /// A response that fails the checks (it is dropped, RFC 4475 section 3.1.2).
    #[error("invalid response: {0}")]
    BadResponse(Defect),
    /// A request that would be refused but cannot be answered: an ACK, or no Via/CSeq.
    #[error("unanswerable request ({0})")]
    Unanswerable(Refusal),
}

/// What is wrong in a message that gets (or would get) 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    #[error("missing {0} header")]
    Missing(HeaderName),
    #[error("more than one {0} header")]
    Duplicate(HeaderName),
    #[error("malformed {0} header")]
    Malformed(HeaderName),
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    #[error("Content-Length {declared} larger than the {available} bytes received")]
    ContentLengthTooLarge { declared: u64, available: usize },
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed Request-URI")]
    BadRequestUri,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("no empty line after the header fields")]
    NoHeaderEnd,
    #[error("a header line without a colon")]
    BadHeaderLine,
    #[error("unparseable message")]
    Unparsed,
}

/// Why a request is refused, with the response code it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("400 Bad Request: {0}")]
    BadRequest(Defect),
    #[error("501 Not Implemented: unknown method")]
    NotImplemented,
    #[error("505 Version Not Supported")]
    VersionNotSupported,
    #[error("416 Unsupported URI Scheme")]
    UnsupportedUriScheme,
    #[error("420 Bad Extension: {0:?}")]
    BadExtension(Vec<String>),
    #[error("415 Unsupported Media Type")]
    UnsupportedMediaType,
    #[error("406 Not Acceptable: the request does not accept application/sdp")]
    NotAcceptable,
}

impl Refusal {
    /// The response code.
    pub fn code(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::NotImplemented => 501,
            Refusal::VersionNotSupported => 505,
            Refusal::UnsupportedUriScheme => 416,
            Refusal::BadExtension(_) => 420,
            Refusal::UnsupportedMediaType => 415,
            Refusal::NotAcceptable => 406,
        }
    }

    /// Headers the response must carry (RFC 3261 sections 8.2.2.3, 8.2.3, 21.4.16, 21.4.19).
    fn extra_headers(&self) -> Vec<Header> {
        match self {
            Refusal::BadExtension(tags) => vec![Header::Unsupported(
                rsipstack::sip::Unsupported::new(tags.join(", ")),
            )],
            Refusal::UnsupportedMediaType => vec![
                Header::Accept(rsipstack::sip::Accept::new(ACCEPTED_BODY_TYPES.join(", "))),
                Header::AcceptEncoding(rsipstack::sip::AcceptEncoding::new("identity")),
            ],
            Refusal::BadRequest(defect) => vec![Header::Warning(rsipstack::sip::Warning::new(
                // The text is ours (Display of Defect), never peer data: no quoting issue.
                format!("399 guichet \"{defect}\""),
            ))],
            _ => Vec::new(),
        }
    }
}

/// What to do with one message read from the network.
#[derive(Debug)]
pub enum Incoming {
    /// A request that passed every check a UAS makes before processing it.
    Request(Request),
    /// A response (to be matched to a client transaction, or dropped).
    Response(Response),
    /// A request that must be refused: send `response` back to the sender. `request` is
    /// the parsed request when it parsed (an INVITE refusal needs a transaction for the ACK).
    Refuse {
        request: Option<Box<Request>>,
        code: u16,
        response: Vec<u8>,
    },
    /// Nothing can be answered: drop it and count it.
    Drop(ParseError),
}

/// [`Incoming`] with the reason of a refusal and the response as a value (for logs/tests).
#[derive(Debug)]
pub enum Inspection {
    Request(Request),
    Response(Response),
    Refuse {
        request: Option<Box<Request>>,
        refusal: Refusal,
        response: Response,
    },
    Drop(ParseError),
}

impl From<Inspection> for Incoming {
    fn from(i: Inspection) -> Incoming {
        match i {
            Inspection::Request(r) => Incoming::Request(r),
            Inspection::Response(r) => Incoming::Response(r),
            Inspection::Refuse {
                request,
                refusal,
                response,
            } => Incoming::Refuse {
                request,
                code: refusal.code(),
                response: response.to_bytes(),
            },
            Inspection::Drop(e) => Incoming::Drop(e),
        }
    }
}

/// Read one message (a whole UDP datagram, or one framed TCP message).
pub fn read_datagram(bytes: &[u8]) -> Incoming {
    inspect(bytes).into()
}

/// Parse one SIP message without any UAS checks (with our repairs: UTF-8 head, body
/// without Content-Length, sip/sips Request-URI).
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    let data = trim_leading_crlf(bytes);
    let raw = scan::scan(data);
    let mut msg = rsip_parse(data, &raw)?;
    fix_message(&mut msg, &raw);
    Ok(msg)
}

/// A method rsipstack knows, matched case-sensitively (RFC 3261 section 7.1).
pub fn known_method(s: &str) -> Option<Method> {
    Method::all().into_iter().find(|m| m.to_string() == s)
}

/// The To-tag of a refusal: a hash of Call-ID and top Via branch, so retransmissions of
/// the request get the same response.
pub fn refusal_tag(call_id: &str, branch: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(call_id.as_bytes());
    h.update([0u8]);
    h.update(branch.as_bytes());
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The SDP of a response (an answer to our offer), as [`sdp_body`] does for requests.
pub fn response_sdp_body(resp: &Response) -> Option<Vec<u8>> {
    if resp.body.is_empty() {
        return None;
    }
    let ct = headers::values(resp, HeaderName::ContentType).next()?;
    body::sdp_of(&MediaType::parse(ct)?, &resp.body)
}

/// The SDP of a request: its body when it is `application/sdp`, or the `application/sdp`
/// part of a `multipart/mixed` body. `None` otherwise.
pub fn sdp_body(req: &Request) -> Option<Vec<u8>> {
    if req.body.is_empty() {
        return None;
    }
    let ct = headers::values(req, HeaderName::ContentType).next()?;
    body::sdp_of(&MediaType::parse(ct)?, &req.body)
}

fn trim_leading_crlf(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    &bytes[skip..]
}

/// Hand the message to rsipstack, with the head repaired to UTF-8 when needed, and a
/// sip/sips Request-URI that we parsed replaced by a placeholder (the caller puts ours
/// back).
///
/// NOTE(rsipstack): its URI parser splits at the first `;` before looking for the `@`, so
/// a user part holding `;` either loses the user (semiuri) or fails the whole message
/// (`sip:;@example.com`).
fn rsip_parse(data: &[u8], raw: &Scanned<'_>) -> Result<SipMessage, ParseError> {
    let ours =
        parse_request_line(&raw.start_line).filter(|l| grammar::parse_sip_uri(l.uri).is_ok());
    if raw.head_is_utf8 && ours.is_none() {
        return Ok(rsipstack::sip::parser::parse_message(data)?);
    }
    let head = String::from_utf8_lossy(&data[..raw.head_len.min(data.len())]);
    let mut repaired = match ours {
        Some(line) => {
            let after_start = head.find('\n').map_or("", |i| &head[i..]);
            format!(
                "{} sip:uri.invalid {}{after_start}",
                line.method, line.version
            )
        }
        None => head.into_owned(),
    };
    repaired.push_str("\r\n\r\n");
    let mut bytes = repaired.into_bytes();
    bytes.extend_from_slice(raw.rest);
    Ok(rsipstack::sip::parser::parse_message(&bytes)?)
}

/// The body per RFC 3261 section 18.3: Content-Length bytes, or the rest of the datagram
/// when there is no Content-Length.
fn body_of(raw: &Scanned<'_>) -> Vec<u8> {
    // NOTE(rsipstack): without Content-Length its body is empty (RFC 2543 UDP peers send
    // none and the body runs to the end of the datagram, inv2543); an unparseable value
    // (`-999`, ncl) is read as 0.
    match raw
        .first(HeaderName::ContentLength)
        .and_then(|v| grammar::parse_digits(v, 20))
    {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(raw.rest.len());
            raw.rest[..n].to_vec()
        }
        None => raw.rest.to_vec(),
    }
}

fn fix_message(msg: &mut SipMessage, raw: &Scanned<'_>) {
    match msg {
        SipMessage::Request(req) => {
            req.body = body_of(raw);
            if let Some(line) = parse_request_line(&raw.start_line)
                && let Ok(uri) = grammar::parse_sip_uri(line.uri)
            {
                req.uri = uri;
            }
        }
        SipMessage::Response(resp) => resp.body = body_of(raw),
    }
}

/// Check everything a request or response must have (RFC 3261 sections 7, 8.1.1, 20).
fn check_headers(raw: &Scanned<'_>, method: Option<&str>) -> Result<(), Defect> {
    use HeaderName as H;
    if raw.bad_lines > 0 {
        return Err(Defect::BadHeaderLine);
    }
    // NOTE(rsipstack): no check of required headers or their count (insuf, multi01), of
    // display names (baddn, quotbal), of `< uri >` spacing (badaspec), of the Date format
    // (baddate), of URI headers in an addr-spec Contact (regbadct), of empty Via
    // parameters (badinv01), of CSeq overflow (scalar02) or of CSeq against the method
    // (mismatch01): all done below.
    for name in [H::Via, H::From, H::To, H::CallId, H::CSeq] {
        match raw.count(name) {
            0 => return Err(Defect::Missing(name)),
            1 => {}
            _ if name == H::Via => {}
            _ => return Err(Defect::Duplicate(name)),
        }
    }
    for v in raw.values(H::Via) {
        let entries = split_outside(v, ',').ok_or(Defect::Malformed(H::Via))?;
        if !entries.iter().all(|e| grammar::parse_via(e).is_some()) {
            return Err(Defect::Malformed(H::Via));
        }
    }
    for name in [H::From, H::To] {
        let v = raw.first(name).unwrap_or("");
        let na = parse_name_addr(v).ok_or(Defect::Malformed(name))?;
        if matches!(na.param("tag"), Some(None)) {
            return Err(Defect::Malformed(name));
        }
    }
    if !grammar::is_call_id(raw.first(H::CallId).unwrap_or("")) {
        return Err(Defect::Malformed(H::CallId));
    }
    let (_, cseq_method) =
        grammar::parse_cseq(raw.first(H::CSeq).unwrap_or("")).ok_or(Defect::Malformed(H::CSeq))?;
    if method.is_some_and(|m| m != cseq_method) {
        return Err(Defect::CSeqMismatch);
    }
    // NOTE(rsipstack): a Content-Length larger than what arrived is silently cut to the
    // bytes present (clerr), and two Content-Length headers are accepted (mcl01): 400.
    if raw.count(H::ContentLength) > 1 {
        return Err(Defect::Duplicate(H::ContentLength));
    }
    if let Some(v) = raw.first(H::ContentLength) {
        let declared = grammar::parse_digits(v, 20).ok_or(Defect::Malformed(H::ContentLength))?;
        if declared > raw.rest.len() as u64 {
            return Err(Defect::ContentLengthTooLarge {
                declared,
                available: raw.rest.len(),
            });
        }
    }
    for v in raw.values(H::Contact) {
        if v.trim() == "*" {
            continue;
        }
        let entries = split_outside(v, ',').ok_or(Defect::Malformed(H::Contact))?;
        if !entries.iter().all(|e| parse_name_addr(e).is_some()) {
            return Err(Defect::Malformed(H::Contact));
        }
    }
    if let Some(v) = raw.first(H::Date)
        && !grammar::is_sip_date(v)
    {
        return Err(Defect::Malformed(H::Date));
    }
    if raw.count(H::ContentType) > 1 {
        return Err(Defect::Duplicate(H::ContentType));
    }
    if let Some(v) = raw.first(H::ContentType)
        && MediaType::parse(v).is_none()
    {
        return Err(Defect::Malformed(H::ContentType));
    }
    if !raw.has_blank_line {
        return Err(Defect::NoHeaderEnd);
    }
    Ok(())
}

fn inspect_response(data: &[u8], raw: &Scanned<'_>) -> Inspection {
    if !grammar::status_line_ok(&raw.start_line) {
        return Inspection::Drop(ParseError::BadResponse(Defect::BadStatusLine));
    }
    if let Err(d) = check_headers(raw, None) {
        return Inspection::Drop(ParseError::BadResponse(d));
    }
    match rsip_parse(data, raw) {
        Ok(SipMessage::Response(mut r)) => {
            r.body = body_of(raw);
            Inspection::Response(r)
        }
        Ok(SipMessage::Request(_)) => {
            Inspection::Drop(ParseError::BadResponse(Defect::BadStatusLine))
        }
        Err(e) => Inspection::Drop(e),
    }
}

/// The headers a refusal copies, taken from the raw scan (first of each, all Vias), and
/// a stand-in request carrying them. `None` without a Via and a CSeq (nothing to match).
fn salvage(raw: &Scanned<'_>) -> Option<Request> {
    use HeaderName as H;
    let mut headers = Headers::default();
    for v in raw.values(H::Via) {
        headers.push(Header::Via(rsipstack::sip::Via::new(v)));
    }
    if headers.is_empty() {
        return None;
    }
    let cseq = raw.first(H::CSeq)?;
    if let Some(v) = raw.first(H::From) {
        headers.push(Header::From(rsipstack::sip::From::new(v)));
    }
    if let Some(v) = raw.first(H::To) {
        headers.push(Header::To(rsipstack::sip::To::new(v)));
    }
    if let Some(v) = raw.first(H::CallId) {
        headers.push(Header::CallId(rsipstack::sip::CallId::new(v)));
    }
    headers.push(Header::CSeq(rsipstack::sip::CSeq::new(cseq)));
    let method = grammar::parse_cseq(cseq)
        .and_then(|(_, m)| known_method(m))
        .unwrap_or(Method::Options);
    Some(Request {
        method,
        uri: Uri::default(),
        version: rsipstack::sip::Version::V2,
        headers,
        body: Vec::new(),
    })
}

fn refuse(
    raw: &Scanned<'_>,
    is_ack: bool,
    request: Option<Request>,
    refusal: Refusal,
) -> Inspection {
    if is_ack {
        return Inspection::Drop(ParseError::Unanswerable(refusal));
    }
    let Some(stand_in) = salvage(raw) else {
        return Inspection::Drop(ParseError::Unanswerable(refusal));
    };
    let branch_key = match top_via(&stand_in) {
        Ok(TopVia {
            branch: Some(b), ..
        }) => b.to_string(),
        _ => raw.first(HeaderName::Via).unwrap_or("").to_string(),
    };
    let tag = refusal_tag(raw.first(HeaderName::CallId).unwrap_or(""), &branch_key);
    let response = build_response(
        &stand_in,
        refusal.code(),
        Some(&tag),
        refusal.extra_headers(),
        None,
    );
    Inspection::Refuse {
        request: request.map(Box::new),
        refusal,
        response,
    }
}

/// Methods whose body we interpret; for the others the endpoint answers as it sees fit
/// (405/501/200) and the body is not looked at.
fn body_examined(method: Method) -> bool {
    matches!(
        method,
        Method::Invite
            | Method::Update
            | Method::PRack
            | Method::Info
            | Method::Bye
            | Method::Options
    )
}

/// Every check a UAS makes before processing, with the detailed reason of a refusal.
pub fn inspect(bytes: &[u8]) -> Inspection {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Inspection::Drop(ParseError::KeepAlive);
    }
    if bytes.len() > MAX_MESSAGE {
        return Inspection::Drop(ParseError::TooLarge { len: bytes.len() });
    }
    let data = trim_leading_crlf(bytes);
    // NOTE(rsipstack): a header line that is not UTF-8 silently ends its header section
    // (every later header is lost); `rsip_parse` hands it a repaired head instead.
    let raw = scan::scan(data);
    if raw.start_line.starts_with("SIP/") || raw.start_line.starts_with("sip/") {
        return inspect_response(data, &raw);
    }
    inspect_request(data, &raw)
}

fn inspect_request(data: &[u8], raw: &Scanned<'_>) -> Inspection {
    let line = parse_request_line(&raw.start_line);
    let method_text = raw.start_line.split(' ').next().unwrap_or("");
    let is_ack = method_text == "ACK";
    let parsed = match rsip_parse(data, raw) {
        Ok(mut msg @ SipMessage::Request(_)) => {
            fix_message(&mut msg, raw);
            match msg {
                SipMessage::Request(r) => Some(r),
                SipMessage::Response(_) => None,
            }
        }
        _ => None,
    };
    let refuse = |request: Option<Request>, refusal: Refusal| refuse(raw, is_ack, request, refusal);

    // 505 first: another version may have another grammar.
    let version = line.as_ref().and_then(|l| parse_version(l.version));
    if version.is_some_and(|v| v != (2, 0)) {
        return refuse(parsed, Refusal::VersionNotSupported);
    }
    let Some(line) = line.filter(|_| version.is_some()) else {
        return refuse(parsed, Refusal::BadRequest(Defect::BadRequestLine));
    };
    if let Err(d) = check_headers(raw, Some(line.method)) {
        return refuse(parsed, Refusal::BadRequest(d));
    }
    let Some((scheme, _)) = grammar::split_scheme(line.uri) else {
        return refuse(parsed, Refusal::BadRequest(Defect::BadRequestUri));
    };
    // NOTE(rsipstack): methods are matched case-insensitively (`invite` is INVITE) and an
    // extension method makes the whole message unparseable (intmeth, esc02): both are
    // unknown methods for us, answered 501 from our own scan.
    let Some(method) = known_method(line.method) else {
        return refuse(parsed, Refusal::NotImplemented);
    };
    let scheme = scheme.to_ascii_lowercase();
    if !URI_SCHEMES.contains(&scheme.as_str()) {
        return refuse(parsed, Refusal::UnsupportedUriScheme);
    }
    // NOTE(rsipstack): its Request-URI parser strips `<...>` (ltgtruri) and accepts
    // `?headers` (escruri); its request-line parser trims spaces after the version (trws).
    let sip_uri = if scheme == "tel" {
        None
    } else {
        match grammar::parse_sip_uri(line.uri) {
            Ok(u) if u.headers.is_empty() => Some(u),
            _ => return refuse(parsed, Refusal::BadRequest(Defect::BadRequestUri)),
        }
    };
    let Some(mut req) = parsed else {
        return refuse(None, Refusal::BadRequest(Defect::Unparsed));
    };
    if let Some(u) = sip_uri {
        req.uri = u;
    }
    if is_ack {
        return Inspection::Request(req);
    }

    if method != Method::Cancel {
        let unsupported: Vec<String> = raw
            .values(HeaderName::Require)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .map(str::to_string)
            .collect();
        if !unsupported.is_empty() {
            return refuse(Some(req), Refusal::BadExtension(unsupported));
        }
    }

    if body_examined(method) && !req.body.is_empty() && !body_acceptable(raw, &req.body) {
        return refuse(Some(req), Refusal::UnsupportedMediaType);
    }

    if method == Method::Invite && raw.count(HeaderName::Accept) > 0 {
        let accepts_sdp = raw
            .values(HeaderName::Accept)
            .flat_map(|v| split_outside(v, ',').unwrap_or_default())
            .filter_map(MediaType::parse)
            .any(|m| m.accepts("application", "sdp"));
        if !accepts_sdp {
            return refuse(Some(req), Refusal::NotAcceptable);
        }
    }
    Inspection::Request(req)
}

/// Whether we can handle the body (type and encoding), or may ignore it
/// (`Content-Disposition: ...;handling=optional`, RFC 3261 section 20.11).
fn body_acceptable(raw: &Scanned<'_>, body: &[u8]) -> bool {
    let optional = raw.first(HeaderName::ContentDisposition).is_some_and(|d| {
        d.split(';').skip(1).any(|p| {
            p.split_once('=').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("handling")
                    && v.trim().eq_ignore_ascii_case("optional")
            })
        })
    });
    if optional {
        return true;
    }
    let encoding_ok = raw
        .values(HeaderName::ContentEncoding)
        .flat_map(|v| v.split(','))
        .all(|e| e.trim().eq_ignore_ascii_case("identity"));
    encoding_ok
        && raw
            .first(HeaderName::ContentType)
            .and_then(MediaType::parse)
            .is_some_and(|ct| body::is_acceptable(&ct, body))
}

/// Whether a To/From value already carries a tag.
fn has_tag(value: &str) -> bool {
    match parse_name_addr(value) {
        Some(na) => na.param("tag").is_some(),
        None => value
            .split(';')
            .skip(1)
            .any(|p| p.trim().to_ascii_lowercase().starts_with("tag")),
    }
}

/// Build a response to `req` (RFC 3261 section 8.2.6): Via, From, To, Call-ID, CSeq copied,
/// `to_tag` added to To when it has none, then `extra` headers, then the body with its
/// Content-Type (Content-Length is always written).
pub fn build_response(
    req: &Request,
    code: u16,
    to_tag: Option<&str>,
    extra: Vec<Header>,
    body: Option<(&str, Vec<u8>)>,
) -> Response {
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => match to_tag {
                Some(tag) if !has_tag(to.value()) => headers.push(Header::To(
                    rsipstack::sip::To::new(format!("{};tag={}", to.value(), tag)),
                )),
                _ => headers.push(h.clone()),
            },
            _ => {}
        }
    }
    headers.extend(extra);
    let body = match body {
        Some((ctype, bytes)) => {
            headers.push(Header::ContentType(rsipstack::sip::ContentType::new(ctype)));
            bytes
        }
        None => Vec::new(),
    };
    headers.push(Header::ContentLength(rsipstack::sip::ContentLength::new(
        body.len().to_string(),
    )));
    Response {
        status_code: StatusCode::from(code),
        wire_reason: None,
        version: rsipstack::sip::Version::V2,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests;
