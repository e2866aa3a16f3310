//! DTMF in SIP INFO bodies.
//!
//! Two body types are understood (content type matched case-insensitively, parameters
//! ignored):
//! - `application/dtmf-relay`: lines `Signal=5` and `Duration=160` (milliseconds), keys in
//!   any case, whitespace around keys, `=` and values ignored, CRLF or LF line ends, other
//!   keys ignored;
//! - `application/dtmf`: the body is the digit (`5`).
//!
//! A signal is a keypad character (`0-9 * # A-D`, letters in any case) or an RFC 4733 event
//! code written in decimal (`10` = `*`, `11` = `#`, `12`-`15` = A-D), which some gateways
//! send. Errors are typed ([`InfoError`]) so the caller can answer 415 or 400 and count them.
//!
//! ```
//! use std::time::Duration;
//! use guichet::media::dtmf::Digit;
//! use guichet::media::dtmf::info::parse_info;
//!
//! let got = parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
//! assert_eq!(got.digit, Digit::D5);
//! assert_eq!(got.duration, Some(Duration::from_millis(160)));
//! assert_eq!(parse_info("Application/DTMF", b" # ").unwrap().digit, Digit::Hash);
//! ```

use std::time::Duration;

use super::Digit;

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// Not a DTMF body type (answer 415 Unsupported Media Type).
    #[error("unsupported INFO content type {0:?}")]
    UnsupportedContentType(String),
    /// The body is not UTF-8 text.
    #[error("INFO body is not UTF-8 text")]
    NotText,
    /// A dtmf-relay body without a `Signal=` line.
    #[error("dtmf-relay body has no Signal line")]
    MissingSignal,
    /// The signal is not a DTMF key.
    #[error("invalid DTMF signal {0:?}")]
    InvalidSignal(String),
    /// The duration is not a number of milliseconds.
    #[error("invalid DTMF duration {0:?}")]
    InvalidDuration(String),
}

/// A digit carried by one INFO request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    /// The key.
    pub digit: Digit,
    /// The press duration, when the body gives one.
    pub duration: Option<Duration>,
}

/// Is this content type one of the DTMF INFO bodies?
pub fn is_dtmf_content_type(content_type: &str) -> bool {
    body_kind(content_type).is_some()
}

#[derive(Clone, Copy)]
enum BodyKind {
    Relay,
    Plain,
}

fn body_kind(content_type: &str) -> Option<BodyKind> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/dtmf-relay") {
        Some(BodyKind::Relay)
    } else if media.eq_ignore_ascii_case("application/dtmf") {
        Some(BodyKind::Plain)
    } else {
        None
    }
}

/// Parse an INFO body of the given content type.
pub fn parse_info(content_type: &str, body: &[u8]) -> Result<InfoDigit, InfoError> {
    let kind = body_kind(content_type)
        .ok_or_else(|| InfoError::UnsupportedContentType(content_type.to_owned()))?;
    let text = std::str::from_utf8(body).map_err(|_| InfoError::NotText)?;
    match kind {
        BodyKind::Plain => Ok(InfoDigit {
            digit: parse_signal(text.trim())?,
            duration: None,
        }),
        BodyKind::Relay => parse_relay(text),
    }
}

fn parse_relay(text: &str) -> Result<InfoDigit, InfoError> {
    let mut digit = None;
    let mut duration = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.eq_ignore_ascii_case("signal") {
            digit = Some(parse_signal(value)?);
        } else if key.eq_ignore_ascii_case("duration") {
            let ms: u64 = value
                .parse()
                .map_err(|_| InfoError::InvalidDuration(value.to_owned()))?;
            duration = Some(Duration::from_millis(ms));
        }
    }
    let digit = digit.ok_or(InfoError::MissingSignal)?;
    Ok(InfoDigit { digit, duration })
}

fn parse_signal(value: &str) -> Result<Digit, InfoError> {
    let invalid = || InfoError::InvalidSignal(value.to_owned());
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Digit::from_char(c).ok_or_else(invalid),
        (Some(_), Some(_)) => value
            .parse::<u8>()
            .ok()
            .and_then(Digit::from_event_code)
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relay_bodies_in_many_shapes() {
        let cases: &[(&[u8], Digit, Option<u64>)] = &[
            (b"Signal=5\r\nDuration=160\r\n", Digit::D5, Some(160)),
            (
                b"signal = *\nduration = 250",
                Digit::Star,
                None.or(Some(250)),
            ),
            (b"  SIGNAL=#  \r\n", Digit::Hash, None),
            (b"Signal= d\r\nDuration=100\r\nFoo=bar", Digit::D, Some(100)),
            (b"Signal=11\r\n", Digit::Hash, None),
            (b"Signal=10\r\nDuration= 90 \r\n", Digit::Star, Some(90)),
            (b"\r\nSignal=0", Digit::D0, None),
        ];
        for (body, digit, duration) in cases {
            let got = parse_info("application/dtmf-relay", body).unwrap();
            assert_eq!(got.digit, *digit, "{:?}", String::from_utf8_lossy(body));
            assert_eq!(got.duration, duration.map(Duration::from_millis));
        }
    }

    #[test]
    fn plain_bodies_and_content_types() {
        assert_eq!(
            parse_info("application/dtmf", b"5").unwrap().digit,
            Digit::D5
        );
        assert_eq!(
            parse_info(" APPLICATION/DTMF-Relay ; charset=utf-8", b"Signal=7")
                .unwrap()
                .digit,
            Digit::D7
        );
        assert_eq!(
            parse_info("application/dtmf", b"\r\n a \r\n")
                .unwrap()
                .digit,
            Digit::A
        );
        assert!(is_dtmf_content_type("Application/Dtmf"));
        assert!(!is_dtmf_content_type("application/sdp"));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            parse_info("application/sdp", b"v=0"),
            Err(InfoError::UnsupportedContentType("application/sdp".into()))
        );
        assert_eq!(
            parse_info("application/dtmf-relay", b"Duration=160"),
            Err(InfoError::MissingSignal)
        );
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=E"),
            Err(InfoError::InvalidSignal("E".into()))
        );
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=16"),
            Err(InfoError::InvalidSignal("16".into()))
        );
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=1\nDuration=-3"),
            Err(InfoError::InvalidDuration("-3".into()))
        );
        assert_eq!(
            parse_info("application/dtmf", b""),
            Err(InfoError::InvalidSignal("".into()))
        );
        assert_eq!(
            parse_info("application/dtmf", &[0xFF, 0xFE]),
            Err(InfoError::NotText)
        );
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_info("application/dtmf-relay", &body);
            let _ = parse_info("application/dtmf", &body);
        }

        #[test]
        fn every_digit_round_trips(i in 0usize..16, ms in 0u64..10_000) {
            let d = Digit::ALL[i];
            let body = format!("Signal={}\r\nDuration={ms}\r\n", d.as_char());
            let got = parse_info("application/dtmf-relay", body.as_bytes()).unwrap();
            prop_assert_eq!(got, InfoDigit { digit: d, duration: Some(Duration::from_millis(ms)) });
        }
    }
}
