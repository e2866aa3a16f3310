//! RFC 3261 section 25 grammar pieces, checked on our side of rsipstack.
//!
//! rsipstack's parser is liberal (see the `NOTE(rsipstack)` comments in `mod.rs`); these
//! functions decide what is well-formed enough to process. They work on `&str` slices of
//! unfolded header values and never panic: every index comes from `find`/`split` on the
//! same string, so it lies on a char boundary.

use rsipstack::sip::{
    Param, Scheme, Uri,
    uri::{Auth, Host, HostWithPort, OtherParam, OtherParamValue},
};

/// RFC 3261 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// A non-empty RFC 3261 `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// RFC 3261 `word` characters (Call-ID).
fn is_word_char(c: char) -> bool {
    is_token_char(c) || "()<>:\\\"/[]?{}".contains(c)
}

/// Call-ID = word [ "@" word ].
pub fn is_call_id(s: &str) -> bool {
    let mut parts = s.split('@');
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    if parts.next().is_some() {
        return false;
    }
    let word = |w: &str| !w.is_empty() && w.chars().all(is_word_char);
    word(first) && second.is_none_or(word)
}

/// Skip a quoted string that starts at byte 0 of `s` (which is `"`). Returns the byte
/// index just after the closing quote, or `None` if it is not closed.
pub fn quoted_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            if c == '\r' || c == '\n' {
                return None;
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i + 1);
        }
    }
    None
}

/// Split `s` at `sep` characters that are outside quoted strings and angle brackets.
/// Returns `None` when quotes or brackets are unbalanced.
pub fn split_outside(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = 0usize;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => angle += 1,
            '>' => angle = angle.checked_sub(1)?,
            c if c == sep && angle == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if in_quotes || angle != 0 {
        return None;
    }
    out.push(&s[start..]);
    Some(out)
}

/// A `;name[=value]` parameter as written (name and value trimmed, value unquoted text
/// kept with its quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericParam<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// Parse `s` as `*( SEMI generic-param )`: `s` is what follows the first `;` (or the empty
/// string). Empty parameters (`;;`) and bad names are errors.
pub fn parse_params(s: &str) -> Option<Vec<GenericParam<'_>>> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Some(out);
    }
    for part in split_outside(s, ';')? {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (part.trim(), None),
        };
        if !is_token(name) {
            return None;
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                quoted_end(v) == Some(v.len())
            } else if v.starts_with('[') && v.ends_with(']') {
                v.len() > 2 && v[1..v.len() - 1].parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                // received= carries a bare IPv6 address (RFC 3261 section 20.42).
                is_token(v) || is_host(v) || v.parse::<std::net::Ipv6Addr>().is_ok()
            };
            if !ok {
                return None;
            }
        }
        out.push(GenericParam { name, value });
    }
    Some(out)
}

/// Whether `s` is a host: hostname (letters, digits, `-`, `_`, `.`), IPv4 or `[IPv6]`.
pub fn is_host(s: &str) -> bool {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && !s.starts_with(['.', '-'])
}

/// `host [":" port]` into its parts.
pub fn parse_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let host = &s[..=close];
        match &s[close + 1..] {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if !is_host(host) {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// The scheme of an absolute URI (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`), and
/// the rest after the colon. `None` if `s` does not start with a scheme.
pub fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        Some((scheme, rest))
    } else {
        None
    }
}

/// Percent-decode `s`; `None` when the result is not UTF-8 (then the raw text is kept).
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Why a SIP URI is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriFault {
    /// Not `scheme:...` at all, or whitespace/brackets inside.
    Syntax,
    /// A scheme we do not serve (the request gets 416).
    Scheme,
}

/// Parse a `sip:`/`sips:` URI strictly (RFC 3261 section 19.1.1) into rsipstack's [`Uri`]:
/// the user part may hold `;` and `?` (split at the `@`), user and password are
/// percent-decoded (rsipstack's printer encodes them again), parameters kept as written.
pub fn parse_sip_uri(s: &str) -> Result<Uri, UriFault> {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err(UriFault::Syntax);
    }
    let (scheme, rest) = split_scheme(s).ok_or(UriFault::Syntax)?;
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else {
        return Err(UriFault::Scheme);
    };
    // userinfo cannot hold '@' (it must be escaped), nor can anything after it.
    let (userinfo, hostpart) = match rest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    if hostpart.contains('@') {
        return Err(UriFault::Syntax);
    }
    let auth = match userinfo {
        Some(u) => {
            let (user, password) = match u.split_once(':') {
                Some((user, pw)) => (user, Some(pw)),
                None => (u, None),
            };
            if user.is_empty() {
                return Err(UriFault::Syntax);
            }
            let decode = |t: &str| percent_decode(t).unwrap_or_else(|| t.to_string());
            Some(Auth {
                user: decode(user),
                password: password.map(decode),
            })
        }
        None => None,
    };
    let (before_headers, headers) = match hostpart.split_once('?') {
        Some((b, h)) => (b, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params) = match before_headers.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (before_headers, None),
    };
    let (host, port) = parse_hostport(hostport).ok_or(UriFault::Syntax)?;
    let host: Host = match host.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => Host::IpAddr(v6.parse().map_err(|_| UriFault::Syntax)?),
        None => host.parse().map_err(|_| UriFault::Syntax)?,
    };
    let mut uri_params = Vec::new();
    if let Some(p) = params {
        for part in p.split(';') {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (part, None),
            };
            if name.is_empty() {
                return Err(UriFault::Syntax);
            }
            let param = Param::try_from((name, value)).unwrap_or_else(|_| {
                Param::Other(OtherParam::new(name), value.map(OtherParamValue::new))
            });
            uri_params.push(param);
        }
    }
    let mut uri_headers = Vec::new();
    if let Some(h) = headers {
        for kv in h.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            uri_headers.push((k.to_string(), v.to_string()));
        }
    }
    Ok(Uri {
        scheme: Some(scheme),
        auth,
        host_with_port: HostWithPort {
            host,
            port: port.map(rsipstack::sip::Port),
        },
        params: uri_params,
        headers: uri_headers,
    })
}

/// A name-addr or addr-spec (From, To, Contact, Route, Record-Route entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (with its quotes if quoted).
    pub display: Option<&'a str>,
    /// The URI text, without the angle brackets.
    pub uri: &'a str,
    /// Whether the URI was in angle brackets.
    pub bracketed: bool,
    /// Header parameters (after the URI).
    pub params: Vec<GenericParam<'a>>,
}

impl NameAddr<'_> {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }
}

/// Check the text of a URI inside a name-addr or addr-spec: `scheme:` then something, no
/// whitespace; a sip/sips URI is parsed strictly (headers allowed).
fn is_uri_text(u: &str) -> bool {
    if u.is_empty() || u.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
        return false;
    }
    match split_scheme(u) {
        Some((scheme, rest)) => {
            if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
                parse_sip_uri(u).is_ok()
            } else {
                !rest.is_empty()
            }
        }
        None => false,
    }
}

/// Parse one name-addr / addr-spec with its header parameters (RFC 3261 section 20.10).
pub fn parse_name_addr(s: &str) -> Option<NameAddr<'_>> {
    let s = s.trim();
    let (display, after_display) = if s.starts_with('"') {
        let end = quoted_end(s)?;
        let rest = s[end..].trim_start();
        if !rest.starts_with('<') {
            return None;
        }
        (Some(&s[..end]), rest)
    } else if let Some(lt) = s.find('<') {
        let name = s[..lt].trim();
        // Lenient: UTF-8 letters are accepted in an unquoted display name (some PBXs send
        // `Hélène <sip:...>`); separators such as `,` are not (RFC 4475 baddn).
        let display_token = |w: &str| w.chars().all(|c| is_token_char(c) || !c.is_ascii());
        if !name.split_whitespace().all(display_token) {
            return None;
        }
        (if name.is_empty() { None } else { Some(name) }, &s[lt..])
    } else {
        (None, s)
    };
    if let Some(inner) = after_display.strip_prefix('<') {
        let gt = inner.find('>')?;
        let uri = &inner[..gt];
        if !is_uri_text(uri) {
            return None;
        }
        let after = inner[gt + 1..].trim_start();
        let params = if after.is_empty() {
            Vec::new()
        } else {
            parse_params(after.strip_prefix(';')?)?
        };
        return Some(NameAddr {
            display,
            uri,
            bracketed: true,
            params,
        });
    }
    // addr-spec: the URI ends at the first ';' and may not hold ',', '?' or ';'
    // (RFC 3261 section 20: such URIs must be in angle brackets).
    let (uri, params) = match after_display.split_once(';') {
        Some((u, p)) => (u.trim(), Some(p)),
        None => (after_display.trim(), None),
    };
    if uri.contains([',', '?']) || !is_uri_text(uri) {
        return None;
    }
    let params = match params {
        Some(p) => parse_params(p)?,
        None => Vec::new(),
    };
    Some(NameAddr {
        display: None,
        uri,
        bracketed: false,
        params,
    })
}

/// One Via entry (RFC 3261 section 20.42), LWS allowed around `/`, `;` and `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaEntry<'a> {
    pub protocol: &'a str,
    pub version: &'a str,
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Vec<GenericParam<'a>>,
}

impl ViaEntry<'_> {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }
}

/// Parse one Via entry.
pub fn parse_via(s: &str) -> Option<ViaEntry<'_>> {
    let mut slashes = s.splitn(3, '/');
    let protocol = slashes.next()?.trim();
    let version = slashes.next()?.trim();
    let rest = slashes.next()?.trim_start();
    if !is_token(protocol) || !is_token(version) {
        return None;
    }
    let transport_end = rest.find(|c: char| !is_token_char(c))?;
    let transport = &rest[..transport_end];
    let after = &rest[transport_end..];
    if transport.is_empty() || !after.starts_with([' ', '\t']) {
        return None;
    }
    let after = after.trim_start();
    let (sent_by, params) = match after.split_once(';') {
        Some((h, p)) => (h.trim(), Some(p)),
        None => (after.trim(), None),
    };
    let (host, port) = parse_hostport(sent_by)?;
    let params = match params {
        Some(p) => parse_params(p)?,
        None => Vec::new(),
    };
    Some(ViaEntry {
        protocol,
        version,
        transport,
        host,
        port,
        params,
    })
}

/// CSeq = 1*DIGIT LWS Method; the number must fit in 32 bits (RFC 3261 section 8.1.1.5).
pub fn parse_cseq(s: &str) -> Option<(u32, &str)> {
    let s = s.trim();
    let split = s.find(char::is_whitespace)?;
    let (number, method) = (&s[..split], s[split..].trim_start());
    if number.is_empty() || number.len() > 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !is_token(method) {
        return None;
    }
    Some((number.parse().ok()?, method))
}

/// Content-Length / Max-Forwards style `1*DIGIT`.
pub fn parse_digits(s: &str, max_len: usize) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An RFC 1123 date in GMT, as SIP requires (`Sat, 13 Nov 2010 23:29:00 GMT`).
pub fn is_sip_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [wkday, day, month, year, time, zone] = parts.as_slice() else {
        return false;
    };
    const DAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    let time_ok = {
        let t: Vec<&str> = time.split(':').collect();
        t.len() == 3 && t.iter().all(|p| digits(p, 2))
    };
    DAYS.contains(wkday)
        && (digits(day, 2) || digits(day, 1))
        && MONTHS.contains(month)
        && digits(year, 4)
        && time_ok
        && *zone == "GMT"
}

/// The parts of a request line, split on single spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub version: &'a str,
}

/// `Method SP Request-URI SP SIP-Version`, exactly one space each, nothing trailing.
pub fn parse_request_line(line: &str) -> Option<RequestLine<'_>> {
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !is_token(method) || uri.is_empty() || version.is_empty() {
        return None;
    }
    Some(RequestLine {
        method,
        uri,
        version,
    })
}

/// `SIP/x.y` into `(x, y)`; "SIP" is case-insensitive.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (sip, num) = v.split_once('/')?;
    if !sip.eq_ignore_ascii_case("SIP") {
        return None;
    }
    let (major, minor) = num.split_once('.')?;
    let d = |t: &str| {
        (!t.is_empty() && t.len() <= 4 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    Some((d(major)?, d(minor)?))
}

/// `SIP-Version SP 3DIGIT SP Reason-Phrase` with a code in 100..=699.
pub fn status_line_ok(line: &str) -> bool {
    let mut parts = line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return false;
    };
    parse_version(version) == Some((2, 0))
        && code.len() == 3
        && code.bytes().all(|b| b.is_ascii_digit())
        && code.parse::<u16>().is_ok_and(|c| (100..=699).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let n =
            parse_name_addr("\"J Rosenberg \\\\\\\"\"  <sip:j@example.com> ; tag = 98").unwrap();
        assert_eq!(n.uri, "sip:j@example.com");
        assert_eq!(n.param("tag"), Some(Some("98")));
        let n = parse_name_addr("sip:watson@example.com;tag=Dk").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.param("tag"), Some(Some("Dk")));
        assert!(parse_name_addr("caller<sip:caller@example.com>;tag=323").is_some());
        assert!(parse_name_addr("\"Mr. J. User <sip:j.user@example.com>").is_none());
        assert!(parse_name_addr("Bell, Alexander <sip:a@example.com>").is_none());
        assert!(parse_name_addr("\"W\" < sip:t@example.org >").is_none());
        assert!(parse_name_addr("sip:user@example.com?Route=%3Csip:x%3E").is_none());
        assert!(parse_name_addr("<sip:user@example.com?Route=%3Csip:x%3E>").is_some());
        assert!(parse_name_addr("\"Joe\" <sip:joe@example.org>;;;;").is_none());
        assert!(parse_name_addr("isbn:2983792873").is_some());
        assert!(parse_name_addr("Hélène Dupré <sip:h@example.fr>;tag=1").is_some());
        assert!(parse_name_addr("<http://www.example.com>;tag=3").is_some());
    }

    #[test]
    fn via_forms() {
        let v = parse_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.param("branch"), Some(Some("390skdjuw")));
        let v =
            parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.param("branch"), Some(Some("z9hG4bK9ikj8")));
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;;").is_none());
        let v = parse_via("SIP/2.0/UDP [2001:db8::1]:5070;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.param("rport"), Some(None));
        let v =
            parse_via("SIP/2.0/UDP [2001:db8::1];received=2001:db8::2;branch=z9hG4bK1").unwrap();
        assert_eq!(v.param("received"), Some(Some("2001:db8::2")));
    }

    #[test]
    fn sip_uri_user_may_hold_semicolons_and_escapes() {
        let u = parse_sip_uri("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some("user;par=u@example.net"));
        assert_eq!(u.host().to_string(), "example.com");
        let u = parse_sip_uri("sip:%75se%72@example.com:5070;transport=udp;foo").unwrap();
        assert_eq!(u.user(), Some("user"));
        assert_eq!(u.params.len(), 2);
        assert_eq!(parse_sip_uri("sip:a@b c"), Err(UriFault::Syntax));
        assert_eq!(parse_sip_uri("http://x"), Err(UriFault::Scheme));
        assert!(parse_sip_uri("sip:user@example.com:99999").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_cseq("0009 INVITE"), Some((9, "INVITE")));
        assert_eq!(parse_cseq("36893488147419103232 REGISTER"), None);
        assert_eq!(parse_cseq("1INVITE"), None);
        assert!(is_sip_date("Sat, 13 Nov 2010 23:29:00 GMT"));
        assert!(!is_sip_date("Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(status_line_ok("SIP/2.0 100 "));
        assert!(!status_line_ok(
            "SIP/2.0 4294967301 better not break the receiver"
        ));
        assert!(parse_request_line("INVITE  sip:a@b SIP/2.0").is_none());
        assert!(parse_request_line("OPTIONS sip:a@b SIP/2.0  ").is_none());
        assert_eq!(parse_version("SIP/7.0"), Some((7, 0)));
        assert!(is_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"));
        assert!(!is_call_id("a b"));
    }
}
