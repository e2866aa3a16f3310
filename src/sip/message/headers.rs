//! Typed access to the headers the endpoint needs, with our own (stricter) parsing.

use super::grammar::{self, parse_name_addr, parse_via};
use rsipstack::sip::{Header, Headers, Method, Request, Response, SipMessage, Uri};

/// The header fields this module checks or reads, with their compact forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Contact,
    RecordRoute,
    ContentLength,
    ContentType,
    ContentEncoding,
    ContentDisposition,
    Require,
    Accept,
    Date,
}

impl HeaderName {
    /// The long name, as we write it.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Contact => "Contact",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::Require => "Require",
            HeaderName::Accept => "Accept",
            HeaderName::Date => "Date",
        }
    }

    fn compact(self) -> Option<&'static str> {
        match self {
            HeaderName::Via => Some("v"),
            HeaderName::From => Some("f"),
            HeaderName::To => Some("t"),
            HeaderName::CallId => Some("i"),
            HeaderName::Contact => Some("m"),
            HeaderName::ContentLength => Some("l"),
            HeaderName::ContentType => Some("c"),
            HeaderName::ContentEncoding => Some("e"),
            _ => None,
        }
    }

    /// Whether a header line named `name` (as written) is this header.
    pub fn matches(self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.as_str())
            || self.compact().is_some_and(|c| name.eq_ignore_ascii_case(c))
    }
}

impl std::fmt::Display for HeaderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("missing {0} header")]
    Missing(HeaderName),
    #[error("more than one {0} header")]
    Duplicate(HeaderName),
    #[error("malformed {0} header")]
    Malformed(HeaderName),
}

/// Anything with SIP headers: requests, responses, messages, header lists.
pub trait HeaderAccess {
    fn sip_headers(&self) -> &Headers;
}
impl HeaderAccess for Headers {
    fn sip_headers(&self) -> &Headers {
        self
    }
}
impl HeaderAccess for Request {
    fn sip_headers(&self) -> &Headers {
        &self.headers
    }
}
impl HeaderAccess for Response {
    fn sip_headers(&self) -> &Headers {
        &self.headers
    }
}
impl HeaderAccess for SipMessage {
    fn sip_headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }
}

/// Values of all headers `name` (long or compact name) in order.
pub fn values(m: &impl HeaderAccess, name: HeaderName) -> impl Iterator<Item = &str> {
    m.sip_headers()
        .iter()
        .filter(move |h| name.matches(h.name()))
        .map(Header::value)
}

/// The single value of `name`: missing and duplicate are errors.
fn single(m: &impl HeaderAccess, name: HeaderName) -> Result<&str, HeaderError> {
    let mut it = values(m, name);
    let first = it.next().ok_or(HeaderError::Missing(name))?;
    if it.next().is_some() {
        return Err(HeaderError::Duplicate(name));
    }
    Ok(first.trim())
}

/// The Call-ID.
pub fn call_id(m: &impl HeaderAccess) -> Result<&str, HeaderError> {
    let v = single(m, HeaderName::CallId)?;
    if grammar::is_call_id(v) {
        Ok(v)
    } else {
        Err(HeaderError::Malformed(HeaderName::CallId))
    }
}

/// A Via branch parameter. RFC 3261 branches start with the magic cookie `z9hG4bK`;
/// others (RFC 2543 peers, or the cookie alone) are kept as they are and matched the old way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Branch(String);

impl Branch {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether it carries the RFC 3261 magic cookie followed by something.
    pub fn is_rfc3261(&self) -> bool {
        self.0.len() > 7 && self.0.starts_with("z9hG4bK")
    }
}

impl std::fmt::Display for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The top Via entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// Transport as written, upper-cased (`UDP`, `TCP`, `TLS`...).
    pub transport: String,
    /// sent-by host (IPv6 in brackets).
    pub host: String,
    pub port: Option<u16>,
    /// `None` for RFC 2543 peers that send no branch.
    pub branch: Option<Branch>,
    /// `Some(None)` for a bare `;rport`.
    pub rport: Option<Option<u16>>,
    pub received: Option<String>,
}

/// The top Via entry (first entry of the first Via header).
///
/// NOTE(rsipstack): its typed Via does not trim parameter names (`branch  = x` in wsinv is
/// not seen as a branch) and refuses unknown transports (transports.dat); this grammar is
/// ours.
pub fn top_via(m: &impl HeaderAccess) -> Result<TopVia, HeaderError> {
    let malformed = HeaderError::Malformed(HeaderName::Via);
    let first = values(m, HeaderName::Via)
        .next()
        .ok_or(HeaderError::Missing(HeaderName::Via))?;
    let entries = grammar::split_outside(first, ',').ok_or(malformed.clone())?;
    let entry = entries.first().ok_or(malformed.clone())?;
    let via = parse_via(entry).ok_or(malformed.clone())?;
    let branch = match via.param("branch") {
        Some(Some(b)) if grammar::is_token(b) => Some(Branch(b.to_string())),
        Some(_) => return Err(malformed),
        None => None,
    };
    let rport = match via.param("rport") {
        Some(Some(p)) => Some(Some(p.parse::<u16>().map_err(|_| malformed.clone())?)),
        Some(None) => Some(None),
        None => None,
    };
    Ok(TopVia {
        transport: via.transport.to_ascii_uppercase(),
        host: via.host.to_string(),
        port: via.port,
        branch,
        rport,
        received: via.param("received").flatten().map(str::to_string),
    })
}

/// The branch of the top Via; `Ok(None)` when it has none (RFC 2543).
pub fn top_via_branch(m: &impl HeaderAccess) -> Result<Option<Branch>, HeaderError> {
    Ok(top_via(m)?.branch)
}

fn tag_of(m: &impl HeaderAccess, name: HeaderName) -> Result<Option<String>, HeaderError> {
    let v = single(m, name)?;
    let na = parse_name_addr(v).ok_or(HeaderError::Malformed(name))?;
    match na.param("tag") {
        Some(Some(t)) => Ok(Some(t.to_string())),
        Some(None) => Err(HeaderError::Malformed(name)),
        None => Ok(None),
    }
}

/// The From tag (`None` for RFC 2543 peers that send none).
pub fn from_tag(m: &impl HeaderAccess) -> Result<Option<String>, HeaderError> {
    tag_of(m, HeaderName::From)
}

/// The To tag (`None` outside a dialog).
pub fn to_tag(m: &impl HeaderAccess) -> Result<Option<String>, HeaderError> {
    tag_of(m, HeaderName::To)
}

/// The URI of the From header, as written (without angle brackets).
pub fn from_uri(m: &impl HeaderAccess) -> Result<String, HeaderError> {
    let v = single(m, HeaderName::From)?;
    let na = parse_name_addr(v).ok_or(HeaderError::Malformed(HeaderName::From))?;
    Ok(na.uri.to_string())
}

/// A CSeq value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq {
    pub number: u32,
    pub method: Method,
}

/// The CSeq: number and method (an extension method is reported as malformed, as
/// rsipstack cannot represent it).
pub fn cseq(m: &impl HeaderAccess) -> Result<CSeq, HeaderError> {
    let malformed = HeaderError::Malformed(HeaderName::CSeq);
    let (number, method) =
        grammar::parse_cseq(single(m, HeaderName::CSeq)?).ok_or(malformed.clone())?;
    let method = super::known_method(method).ok_or(malformed)?;
    Ok(CSeq { number, method })
}

/// The user part of the Request-URI (percent-decoded), or a tel: number.
pub fn request_user(req: &Request) -> Option<String> {
    match &req.uri.scheme {
        Some(rsipstack::sip::Scheme::Other(s)) if s.eq_ignore_ascii_case("tel") => {
            Some(req.uri.host_with_port.host.to_string())
        }
        _ => req.uri.user().map(str::to_string),
    }
}

/// The URI of the first Contact (for the remote target). `*` is malformed here.
pub fn contact_uri(m: &impl HeaderAccess) -> Result<Uri, HeaderError> {
    let malformed = HeaderError::Malformed(HeaderName::Contact);
    let first = values(m, HeaderName::Contact)
        .next()
        .ok_or(HeaderError::Missing(HeaderName::Contact))?;
    let entries = grammar::split_outside(first, ',').ok_or(malformed.clone())?;
    let entry = entries.first().ok_or(malformed.clone())?;
    let na = parse_name_addr(entry).ok_or(malformed.clone())?;
    parse_uri(na.uri).ok_or(malformed)
}

/// The Record-Route URIs in order (all headers, comma lists split), exactly as written
/// between the angle brackets, for a dialog's route set (RFC 3261 section 12.1).
pub fn record_route(m: &impl HeaderAccess) -> Result<Vec<String>, HeaderError> {
    let malformed = HeaderError::Malformed(HeaderName::RecordRoute);
    let mut out = Vec::new();
    for v in values(m, HeaderName::RecordRoute) {
        for entry in grammar::split_outside(v, ',').ok_or(malformed.clone())? {
            let na = parse_name_addr(entry).ok_or(malformed.clone())?;
            if !na.bracketed {
                return Err(malformed);
            }
            out.push(na.uri.to_string());
        }
    }
    Ok(out)
}

/// Max-Forwards: `Ok(None)` when absent.
pub fn max_forwards(m: &impl HeaderAccess) -> Result<Option<u8>, HeaderError> {
    let mut it = values(m, HeaderName::MaxForwards);
    let Some(v) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(HeaderError::Duplicate(HeaderName::MaxForwards));
    }
    grammar::parse_digits(v, 10)
        .and_then(|n| u8::try_from(n).ok())
        .map(Some)
        .ok_or(HeaderError::Malformed(HeaderName::MaxForwards))
}

/// Parse a URI as we do for the Request-URI: sip/sips strictly (user percent-decoded),
/// anything else through rsipstack.
pub fn parse_uri(s: &str) -> Option<Uri> {
    match grammar::parse_sip_uri(s) {
        Ok(u) => Some(u),
        Err(grammar::UriFault::Scheme) if grammar::split_scheme(s).is_some() => {
            rsipstack::sip::parse_uri(s).ok()
        }
        Err(_) => None,
    }
}
