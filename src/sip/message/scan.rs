//! A tolerant line scanner over raw SIP bytes.
//!
//! It never fails: it cuts the head into a start line and unfolded `(name, value)` header
//! lines, and says where the body starts. The strict checks (grammar, counts) are made by
//! the callers on what it returns; when rsipstack refuses a message, the scanner's output
//! is what lets us still answer it (salvage of Via, From, To, Call-ID and CSeq).
//!
//! Invalid UTF-8 in the head is replaced by U+FFFD (`head_is_utf8` says it happened).

use std::borrow::Cow;

/// One header line after unfolding: name trimmed, value trimmed, folds joined by one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    pub name: String,
    pub value: String,
}

/// What the scanner found in a message.
#[derive(Debug)]
pub struct Scanned<'a> {
    /// The first line, without its line end.
    pub start_line: String,
    /// Unfolded header lines in order.
    pub headers: Vec<RawHeader>,
    /// Lines of the head that have no colon (not header lines).
    pub bad_lines: usize,
    /// Whether the head ends with an empty line (CRLFCRLF).
    pub has_blank_line: bool,
    /// Whether the head was valid UTF-8 before repair.
    pub head_is_utf8: bool,
    /// Length of the head in bytes, up to and excluding the CRLFCRLF.
    pub head_len: usize,
    /// Everything after the CRLFCRLF (empty if there is none).
    pub rest: &'a [u8],
}

/// Position of the first CRLFCRLF in `data`.
pub fn find_head_end(data: &[u8]) -> Option<usize> {
    data.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Scan `data` (leading CR/LF already removed by the caller).
pub fn scan(data: &[u8]) -> Scanned<'_> {
    let (head, rest, has_blank_line) = match find_head_end(data) {
        // `end + 4 <= data.len()` because the window of 4 bytes starting at `end` exists.
        Some(end) => (&data[..end], &data[end + 4..], true),
        None => (data, &data[data.len()..], false),
    };
    let head_is_utf8 = std::str::from_utf8(head).is_ok();
    let text: Cow<'_, str> = String::from_utf8_lossy(head);
    // Without the empty line, the head is the whole input: ignore its trailing line ends.
    let text = if has_blank_line {
        &text[..]
    } else {
        text.trim_end_matches(['\r', '\n'])
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or("").to_string();
    let mut headers: Vec<RawHeader> = Vec::new();
    let mut bad_lines = 0;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(last) => {
                    let more = line.trim();
                    if !more.is_empty() {
                        if !last.value.is_empty() {
                            last.value.push(' ');
                        }
                        last.value.push_str(more);
                    }
                }
                None => bad_lines += 1,
            }
            continue;
        }
        if line.is_empty() {
            // An empty line inside the head only happens with bare LF line ends.
            bad_lines += 1;
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => headers.push(RawHeader {
                name: name.trim().to_string(),
                value: value.trim().to_string(),
            }),
            None => bad_lines += 1,
        }
    }
    Scanned {
        start_line,
        headers,
        bad_lines,
        has_blank_line,
        head_is_utf8,
        head_len: head.len(),
        rest,
    }
}

impl Scanned<'_> {
    /// Values of the headers that `name` designates (long or compact form), in order.
    pub fn values(&self, name: super::HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| name.matches(&h.name))
            .map(|h| h.value.as_str())
    }

    /// How many header lines carry `name`.
    pub fn count(&self, name: super::HeaderName) -> usize {
        self.values(name).count()
    }

    /// The first value of `name`.
    pub fn first(&self, name: super::HeaderName) -> Option<&str> {
        self.values(name).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_are_joined_and_names_trimmed() {
        let s =
            scan(b"OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:x@y ;\r\n  tag=1\r\nl: 0\r\n\r\nBODY");
        assert_eq!(s.start_line, "OPTIONS sip:a@b SIP/2.0");
        assert_eq!(s.headers.len(), 2);
        assert_eq!(s.headers[0].name, "TO");
        assert_eq!(s.headers[0].value, "sip:x@y ; tag=1");
        assert!(s.has_blank_line);
        assert_eq!(s.rest, b"BODY");
        assert_eq!(s.bad_lines, 0);
    }

    #[test]
    fn a_head_without_blank_line_is_all_head() {
        let s = scan(b"OPTIONS sip:a@b SIP/2.0\r\nnocolon\r\nVia: x");
        assert!(!s.has_blank_line);
        assert_eq!(s.bad_lines, 1);
        assert_eq!(s.headers[0].value, "x");
        assert!(s.rest.is_empty());
    }
}
