//! SIP message façade: the rest of Guichet sees SIP messages only through this module.
//!
//! Input: bytes from the network (one UDP datagram, or one message cut from a TCP stream
//! by [`StreamFramer`]). Output: an [`Incoming`] verdict: a usable request or response, a
//! request to refuse with a ready-built response (400, 416, 420, 415, 505...), or bytes to
//! drop and count. Also builds responses to requests ([`build_response`]).
//!
//! Types are rsipstack's (re-exported here); no other module imports rsipstack directly.
//!
//! API CONTRACT: `read_datagram`, `build_response`, `StreamFramer` are used by
//! `sip::endpoint` and `engine`; keep these signatures (extend freely).

pub use rsipstack::sip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

/// Why bytes could not be read as a SIP message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The underlying parser refused the message.
    #[error("malformed SIP message: {0}")]
    Malformed(#[from] rsipstack::sip::Error),
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

/// Read one message (a whole UDP datagram, or one framed TCP message).
pub fn read_datagram(bytes: &[u8]) -> Incoming {
    match rsipstack::sip::parser::parse_message(bytes) {
        Ok(SipMessage::Request(r)) => Incoming::Request(r),
        Ok(SipMessage::Response(r)) => Incoming::Response(r),
        Err(e) => Incoming::Drop(ParseError::Malformed(e)),
    }
}

/// Parse one SIP message without any UAS checks.
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    Ok(rsipstack::sip::parser::parse_message(bytes)?)
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
            Header::To(to) => {
                let has_tag = to
                    .value()
                    .split(';')
                    .skip(1)
                    .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="));
                match to_tag {
                    Some(tag) if !has_tag => headers.push(Header::To(rsipstack::sip::To::new(
                        format!("{};tag={}", to.value(), tag),
                    ))),
                    _ => headers.push(h.clone()),
                }
            }
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

/// Why a TCP stream had to be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A message head or body went past the configured cap.
    #[error("SIP message over {limit} bytes on a stream")]
    TooLarge { limit: usize },
    /// The head had no usable Content-Length (mandatory on streams, RFC 3261 section 18.3).
    #[error("no valid Content-Length on a stream message")]
    BadContentLength,
}

/// Cuts a TCP byte stream into SIP messages using Content-Length (RFC 3261 section 18.3).
#[derive(Debug)]
pub struct StreamFramer {
    max_message: usize,
    buf: Vec<u8>,
}

impl StreamFramer {
    /// A framer refusing messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            max_message,
            buf: Vec::new(),
        }
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, if one is buffered. Leading CRLF keep-alives are skipped.
    /// After an error the stream must be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let start = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..start);
        let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() > self.max_message {
                return Err(FrameError::TooLarge {
                    limit: self.max_message,
                });
            }
            return Ok(None);
        };
        let head = &self.buf[..head_end];
        let mut length = None;
        for line in head.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| FrameError::BadContentLength)?,
                );
            }
        }
        let length = length.ok_or(FrameError::BadContentLength)?;
        let total = head_end + 4 + length;
        if total > self.max_message {
            return Err(FrameError::TooLarge {
                limit: self.max_message,
            });
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(msg))
    }
}
