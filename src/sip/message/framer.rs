//! Cutting a TCP byte stream into SIP messages (RFC 3261 section 18.3).

/// Default cap on one framed message, head and body together (64 KiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// Why a TCP stream had to be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message head or body went past the configured cap.
    #[error("SIP message over {limit} bytes on a stream")]
    TooLarge { limit: usize },
    /// The head had no usable Content-Length (mandatory on streams, RFC 3261 section 18.3).
    #[error("no valid Content-Length on a stream message")]
    BadContentLength,
}

/// Cuts a TCP byte stream into SIP messages using Content-Length (RFC 3261 section 18.3).
///
/// CR/LF between messages are skipped; each CRLFCRLF among them is counted as an RFC 5626
/// keep-alive ping ([`StreamFramer::take_pings`]) that the owner answers with one CRLF.
/// After an error the framer keeps returning it: the stream must be closed.
#[derive(Debug)]
pub struct StreamFramer {
    max_message: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for CRLFCRLF without success.
    scanned: usize,
    /// (end of head, total length) once the head of the next message is known.
    pending: Option<(usize, usize)>,
    /// CR/LF bytes seen in the current run between messages.
    crlf_run: usize,
    pings: usize,
    failed: Option<FrameError>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(DEFAULT_MAX_MESSAGE)
    }
}

impl StreamFramer {
    /// The default cap, [`DEFAULT_MAX_MESSAGE`].
    pub const DEFAULT_MAX_MESSAGE: usize = DEFAULT_MAX_MESSAGE;

    /// A framer refusing messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            max_message,
            buf: Vec::new(),
            scanned: 0,
            pending: None,
            crlf_run: 0,
            pings: 0,
            failed: None,
        }
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Keep-alive pings (CRLFCRLF between messages) seen since the last call.
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    fn fail(&mut self, e: FrameError) -> Result<Option<Vec<u8>>, FrameError> {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        Err(e)
    }

    /// The next complete message, if one is buffered. Leading CRLF keep-alives are skipped.
    /// After an error the stream must be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.pending.is_none() {
            let skip = self
                .buf
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(self.buf.len());
            if skip > 0 {
                self.crlf_run += skip;
                self.pings += self.crlf_run / 4;
                self.crlf_run %= 4;
                self.buf.drain(..skip);
                self.scanned = 0;
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            self.crlf_run = 0;
            let from = self.scanned.saturating_sub(3);
            let Some(found) = self.buf.get(from..).and_then(super::scan::find_head_end) else {
                self.scanned = self.buf.len();
                if self.buf.len() > self.max_message {
                    return self.fail(FrameError::TooLarge {
                        limit: self.max_message,
                    });
                }
                return Ok(None);
            };
            let head_end = from + found;
            let length = match content_length(&self.buf[..head_end]) {
                Some(l) => l,
                None => return self.fail(FrameError::BadContentLength),
            };
            let total = match (head_end + 4).checked_add(length) {
                Some(t) if t <= self.max_message => t,
                _ => {
                    return self.fail(FrameError::TooLarge {
                        limit: self.max_message,
                    });
                }
            };
            self.pending = Some((head_end, total));
        }
        match self.pending {
            Some((_, total)) if self.buf.len() >= total => {
                self.pending = None;
                self.scanned = 0;
                let rest = self.buf.split_off(total);
                Ok(Some(std::mem::replace(&mut self.buf, rest)))
            }
            _ => Ok(None),
        }
    }
}

/// The Content-Length of a head (long or compact form, folded lines joined); `None` when
/// absent, malformed, or given twice with different values.
fn content_length(head: &[u8]) -> Option<usize> {
    let scanned = super::scan::scan(head);
    let mut length: Option<usize> = None;
    for value in scanned.values(super::HeaderName::ContentLength) {
        let v = usize::try_from(super::grammar::parse_digits(value, 10)?).ok()?;
        match length {
            Some(l) if l != v => return None,
            _ => length = Some(v),
        }
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\n\r\nabcd";

    #[test]
    fn split_at_every_boundary() {
        for cut in 0..=MSG.len() {
            let mut f = StreamFramer::default();
            f.push(&MSG[..cut]);
            let first = f.next_message().unwrap();
            f.push(&MSG[cut..]);
            let got = first.or_else(|| f.next_message().unwrap());
            assert_eq!(got.as_deref(), Some(MSG), "cut at {cut}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn byte_by_byte_with_pings_between() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        for b in &stream {
            f.push(&[*b]);
            while let Some(m) = f.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![MSG.to_vec(), MSG.to_vec()]);
        assert_eq!(f.take_pings(), 2);
        assert_eq!(f.take_pings(), 0);
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut f = StreamFramer::default();
        f.push(&[MSG, MSG, b"OPT"].concat());
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.buffered(), 3);
    }

    #[test]
    fn caps_and_bad_lengths() {
        let mut f = StreamFramer::new(16);
        f.push(&[b'A'; 17]);
        assert_eq!(f.next_message(), Err(FrameError::TooLarge { limit: 16 }));
        assert_eq!(f.next_message(), Err(FrameError::TooLarge { limit: 16 }));
        let mut f = StreamFramer::new(64);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::TooLarge { limit: 64 }));
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab");
        assert_eq!(f.next_message(), Err(FrameError::BadContentLength));
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::BadContentLength));
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nab");
        assert_eq!(f.next_message().unwrap().map(|m| m.len()), Some(50));
    }
}
