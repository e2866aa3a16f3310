//! Message bodies: Content-Type and Accept media ranges, multipart/mixed, and the SDP.

use super::grammar::{is_token, parse_params, quoted_end};

/// The body types Guichet handles, written in the Accept header of a 415.
pub const ACCEPTED_BODY_TYPES: &[&str] = &[
    "application/sdp",
    "application/dtmf-relay",
    "application/dtmf",
    "multipart/mixed",
];

/// A parsed `type/subtype;params` (type and subtype lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub kind: String,
    pub subtype: String,
    pub params: Vec<(String, Option<String>)>,
}

impl MediaType {
    /// Parse a Content-Type value or one Accept entry. `None` when malformed.
    pub fn parse(s: &str) -> Option<MediaType> {
        let (main, params) = match s.split_once(';') {
            Some((m, p)) => (m, p),
            None => (s, ""),
        };
        let (kind, subtype) = main.trim().split_once('/')?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if !is_token(kind) || !is_token(subtype) {
            return None;
        }
        let params = parse_params(params)?
            .into_iter()
            .map(|p| {
                let value = p.value.map(|v| {
                    if v.starts_with('"') && quoted_end(v) == Some(v.len()) && v.len() >= 2 {
                        v[1..v.len() - 1].to_string()
                    } else {
                        v.to_string()
                    }
                });
                (p.name.to_ascii_lowercase(), value)
            })
            .collect();
        Some(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params,
        })
    }

    /// Whether this is `kind/subtype` (compare lower-case).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind == kind && self.subtype == subtype
    }

    /// A parameter value by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether this Accept media range covers `kind/subtype` with a non-zero q.
    pub fn accepts(&self, kind: &str, subtype: &str) -> bool {
        let type_ok = (self.kind == "*" && self.subtype == "*")
            || (self.kind == kind && (self.subtype == "*" || self.subtype == subtype));
        let q_zero = self
            .param("q")
            .and_then(|q| q.parse::<f32>().ok())
            .is_some_and(|q| q <= 0.0);
        type_ok && !q_zero
    }
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub content_type: Option<MediaType>,
    pub body: &'a [u8],
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Split a multipart body (RFC 2046 section 5.1) by `boundary`. `None` when malformed.
pub fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let first = find(body, delimiter)?;
    let mut rest = body.get(first + delimiter.len()..)?;
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        // Skip transport padding and the CRLF after the delimiter.
        let line_end = find(rest, b"\r\n")?;
        rest = rest.get(line_end + 2..)?;
        let close = [b"\r\n", delimiter].concat();
        let end = find(rest, &close)?;
        let part = rest.get(..end)?;
        rest = rest.get(end + close.len()..)?;
        let (head, part_body) = if part.starts_with(b"\r\n") {
            (&part[..0], &part[2..])
        } else {
            match find(part, b"\r\n\r\n") {
                Some(h) => (&part[..h], part.get(h + 4..)?),
                None => return None,
            }
        };
        let head = String::from_utf8_lossy(head);
        let mut content_type = None;
        for line in head.split("\r\n") {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim();
                if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c") {
                    content_type = Some(MediaType::parse(value)?);
                }
            }
        }
        parts.push(Part {
            content_type,
            body: part_body,
        });
        if parts.len() > 64 {
            return None;
        }
    }
}

/// The SDP carried by a body of type `content_type`: the body itself for
/// `application/sdp`, the first `application/sdp` part of a `multipart/mixed`.
pub fn sdp_of(content_type: &MediaType, body: &[u8]) -> Option<Vec<u8>> {
    if content_type.is("application", "sdp") {
        return Some(body.to_vec());
    }
    if content_type.is("multipart", "mixed") {
        let boundary = content_type.param("boundary")?;
        return multipart_parts(body, boundary)?
            .into_iter()
            .find(|p| {
                p.content_type
                    .as_ref()
                    .is_some_and(|t| t.is("application", "sdp"))
            })
            .map(|p| p.body.to_vec());
    }
    None
}

/// Whether a body of this type is one Guichet can handle.
pub fn is_acceptable(content_type: &MediaType, body: &[u8]) -> bool {
    if content_type.is("multipart", "mixed") {
        return sdp_of(content_type, body).is_some();
    }
    ACCEPTED_BODY_TYPES
        .iter()
        .filter_map(|t| t.split_once('/'))
        .any(|(k, s)| content_type.is(k, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_with_sdp_part() {
        let body = b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b1--\r\n";
        let ct = MediaType::parse("multipart/mixed;boundary=b1").unwrap();
        assert_eq!(sdp_of(&ct, body).unwrap(), b"v=0\r\n");
        assert!(is_acceptable(&ct, body));
        let ct = MediaType::parse("multipart/mixed; boundary=\"b2\"").unwrap();
        assert_eq!(ct.param("boundary"), Some("b2"));
        assert!(!is_acceptable(&ct, body));
    }

    #[test]
    fn accept_ranges() {
        assert!(
            MediaType::parse("application/*")
                .unwrap()
                .accepts("application", "sdp")
        );
        assert!(
            MediaType::parse("*/*")
                .unwrap()
                .accepts("application", "sdp")
        );
        assert!(
            !MediaType::parse("application/sdp;q=0")
                .unwrap()
                .accepts("application", "sdp")
        );
        assert!(
            !MediaType::parse("text/nobodyKnowsThis")
                .unwrap()
                .accepts("application", "sdp")
        );
        assert!(MediaType::parse("text").is_none());
    }
}
