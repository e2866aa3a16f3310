//! Small header accessors the transaction and dialog layers need, over the header values
//! of [`crate::sip::message`]'s types (untyped strings): top Via parts, tags, CSeq, URIs.
//!
//! Every accessor returns `Option`: a header a peer omitted or garbled is `None`, never a
//! panic. Example:
//! ```
//! use guichet::sip::headers::{tag_param, ViaParts};
//! assert_eq!(tag_param("<sip:a@b>;tag=x1"), Some("x1"));
//! let via = ViaParts::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKab;rport").unwrap();
//! assert_eq!(via.port, Some(5062));
//! assert_eq!(via.branch(), Some("z9hG4bKab"));
//! ```

use crate::sip::message::{Header, Headers, Method};

/// The magic cookie of RFC 3261 branches (section 8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// The first value of header `name` (canonical name, case-insensitive).
pub fn first<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(Header::value)
}

/// Every value of header `name`, each comma-separated element on its own (outside quotes
/// and angle brackets), in order.
pub fn all(headers: &Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .flat_map(|h| split_list(h.value()))
        .collect()
}

/// Split a header value at top-level commas (not inside `"..."` or `<...>`).
pub fn split_list(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut in_angle = false;
    for c in value.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                let t = current.trim();
                if !t.is_empty() {
                    parts.push(t.to_owned());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    let t = current.trim();
    if !t.is_empty() {
        parts.push(t.to_owned());
    }
    parts
}

/// The header parameters of a name-addr or addr-spec value (after `>` when there is one).
fn header_params(value: &str) -> &str {
    match value.rfind('>') {
        Some(i) => value.get(i + 1..).unwrap_or(""),
        None => value.find(';').and_then(|i| value.get(i..)).unwrap_or(""),
    }
}

/// The `tag` parameter of a From/To value.
pub fn tag_param(value: &str) -> Option<&str> {
    param(header_params(value), "tag")
}

/// The value of `;name=value` in a `;`-separated parameter string.
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The URI of a name-addr (`"Bob" <sip:b@h>;tag=1`) or addr-spec (`sip:b@h;tag=1`).
pub fn uri_of(value: &str) -> &str {
    if let (Some(start), Some(end)) = (value.find('<'), value.find('>'))
        && start < end
    {
        return value.get(start + 1..end).unwrap_or("").trim();
    }
    value.split(';').next().unwrap_or("").trim()
}

/// The user part of a SIP URI (`sip:0123@host` -> `0123`), empty when there is none.
pub fn uri_user(uri: &str) -> &str {
    let rest = uri
        .split_once(':')
        .map(|(_, r)| r)
        .unwrap_or(uri)
        .trim_start_matches('/');
    match rest.split_once('@') {
        Some((user, _)) => user
            .split(';')
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or(""),
        None => "",
    }
}

/// Host and port of a SIP URI (`sip:u@10.0.0.1:5070;lr` -> ("10.0.0.1", Some(5070))).
pub fn uri_host_port(uri: &str) -> Option<(&str, Option<u16>)> {
    let rest = uri.split_once(':')?.1;
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hostport = rest.split([';', '?']).next()?.trim();
    split_host_port(hostport)
}

/// `host[:port]`, with IPv6 references in brackets.
pub fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    if let Some(after) = hostport.strip_prefix('[') {
        let (host, rest) = after.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        return Some((host, port));
    }
    match hostport.split_once(':') {
        Some((host, port)) => Some((host, Some(port.trim().parse().ok()?))),
        None if hostport.is_empty() => None,
        None => Some((hostport, None)),
    }
}

/// CSeq `314 INVITE` -> (314, "INVITE").
pub fn cseq(headers: &Headers) -> Option<(u32, &str)> {
    let v = first(headers, "CSeq")?;
    let mut it = v.split_whitespace();
    let n = it.next()?.parse().ok()?;
    Some((n, it.next()?))
}

/// The Call-ID value.
pub fn call_id(headers: &Headers) -> Option<&str> {
    first(headers, "Call-ID").map(str::trim)
}

/// The parts of one Via value (`SIP/2.0/UDP host:port;params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaParts {
    /// `UDP`, `TCP`...
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    /// `name` or `name=value` pairs, in order.
    pub params: Vec<(String, Option<String>)>,
}

impl ViaParts {
    /// Parse one Via element (not a comma-separated list).
    pub fn parse(value: &str) -> Option<ViaParts> {
        let value = value.trim();
        let (proto, rest) = value.split_once(char::is_whitespace)?;
        let transport = proto.rsplit('/').next()?.trim().to_ascii_uppercase();
        let mut parts = rest.split(';');
        let sent_by = parts.next()?.trim();
        let (host, port) = split_host_port(sent_by)?;
        let params = parts
            .filter(|p| !p.trim().is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                None => (p.trim().to_owned(), None),
            })
            .collect();
        Some(ViaParts {
            transport,
            host: host.to_owned(),
            port,
            params,
        })
    }

    /// The value of a parameter (`Some(None)` for a flag such as `rport`).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// `host[:port]` as written.
    pub fn sent_by(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// Print back as a Via value.
    pub fn print(&self) -> String {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.sent_by());
        for (k, v) in &self.params {
            s.push(';');
            s.push_str(k);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        s
    }

    /// Set (or add) a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }
}

/// The raw top Via element (first element of the first Via header).
pub fn top_via_raw(headers: &Headers) -> Option<String> {
    all(headers, "Via").into_iter().next()
}

/// The parsed top Via.
pub fn top_via(headers: &Headers) -> Option<ViaParts> {
    ViaParts::parse(&top_via_raw(headers)?)
}

/// A method's name, also for ones rsipstack knows (all our methods).
pub fn method_name(m: &Method) -> String {
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_parts() {
        assert_eq!(uri_of("\"A\" <sip:1@h:5060;lr>;tag=9"), "sip:1@h:5060;lr");
        assert_eq!(uri_of("sip:1@h;tag=9"), "sip:1@h");
        assert_eq!(
            tag_param("\"A;tag=no\" <sip:1@h;tag=no>;tag=yes"),
            Some("yes")
        );
        assert_eq!(tag_param("sip:1@h"), None);
        assert_eq!(uri_user("sip:0140@10.0.0.1"), "0140");
        assert_eq!(
            uri_host_port("sip:u@[::1]:5070;lr"),
            Some(("::1", Some(5070)))
        );
        assert_eq!(uri_host_port("sip:10.1.1.1"), Some(("10.1.1.1", None)));
    }

    #[test]
    fn via_round_trip() {
        let mut v = ViaParts::parse("SIP/2.0/udp 1.2.3.4;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.param("rport"), Some(None));
        v.set_param("rport", Some("5062".into()));
        v.set_param("received", Some("5.6.7.8".into()));
        assert_eq!(
            v.print(),
            "SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1;rport=5062;received=5.6.7.8"
        );
        assert_eq!(
            split_list("<sip:a,b>;x, <sip:c>"),
            vec!["<sip:a,b>;x", "<sip:c>"]
        );
    }
}
