//! DTMF: key presses from three sources merged into one digit stream.
//!
//! Owns the [`Digit`] type (0-9, `*`, `#`, A-D), the three receivers and the merger:
//!
//! - [`rfc4733`]: telephone-event RTP payloads (RFC 4733), one digit per event however many
//!   packets and end retransmissions arrive;
//! - [`info`]: SIP INFO bodies (`application/dtmf-relay`, `application/dtmf`);
//! - [`inband`]: a Goertzel detector over decoded 8 kHz audio, for gateways that send tones
//!   in the audio only;
//! - [`tones`]: a DTMF tone generator (tests and the test caller).
//!
//! Some gateways send two kinds for the same key press (RFC 4733 *and* in-band tones, or
//! RFC 4733 *and* INFO). [`DigitMerger`] takes the digits of all sources, each stamped with
//! the time the key press started, and emits one stream: a digit equal to one already
//! emitted from a *different* source within a window (default 200 ms) is a duplicate; the
//! same digit from the same source is always a new press (each source de-duplicates its own
//! packets). Every emitted [`DtmfEvent`] carries its [`DtmfSource`] so the engine can log
//! `dtmf { call, digit, source }`.
//!
//! [`CallDtmf`] is the one object a call needs: it owns the RFC 4733 receiver, the in-band
//! detector (optional) and the merger; the owner feeds telephone events, INFO bodies and
//! decoded audio, calls `handle_timeout` at `poll_timeout`, and drains `poll_output`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::media::dtmf::{Digit, DigitMerger, DtmfSource};
//!
//! let t0 = Instant::now();
//! let mut merger = DigitMerger::default();
//! merger.handle_input(t0, Digit::D5, DtmfSource::Rfc4733);
//! merger.handle_input(t0 + Duration::from_millis(30), Digit::D5, DtmfSource::Inband);
//! let first = merger.poll_output().unwrap();
//! assert_eq!((first.digit, first.source), (Digit::D5, DtmfSource::Rfc4733));
//! assert!(merger.poll_output().is_none()); // the in-band copy was a duplicate
//! ```

pub mod inband;
pub mod info;
pub mod rfc4733;
pub mod tones;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// One DTMF key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Digit {
    D0,
    D1,
    D2,
    D3,
    D4,
    D5,
    D6,
    D7,
    D8,
    D9,
    Star,
    Hash,
    A,
    B,
    C,
    D,
}

/// Low-group (row) DTMF frequencies in Hz.
pub const ROW_FREQS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// High-group (column) DTMF frequencies in Hz.
pub const COL_FREQS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The keypad: `KEYPAD[row][col]`.
const KEYPAD: [[Digit; 4]; 4] = [
    [Digit::D1, Digit::D2, Digit::D3, Digit::A],
    [Digit::D4, Digit::D5, Digit::D6, Digit::B],
    [Digit::D7, Digit::D8, Digit::D9, Digit::C],
    [Digit::Star, Digit::D0, Digit::Hash, Digit::D],
];

impl Digit {
    /// All sixteen digits, in RFC 4733 event-code order.
    pub const ALL: [Digit; 16] = [
        Digit::D0,
        Digit::D1,
        Digit::D2,
        Digit::D3,
        Digit::D4,
        Digit::D5,
        Digit::D6,
        Digit::D7,
        Digit::D8,
        Digit::D9,
        Digit::Star,
        Digit::Hash,
        Digit::A,
        Digit::B,
        Digit::C,
        Digit::D,
    ];

    /// The RFC 4733 event code (0-9, `*` = 10, `#` = 11, A-D = 12-15).
    pub fn event_code(self) -> u8 {
        self as u8
    }

    /// The digit of an RFC 4733 event code; `None` for non-DTMF events (flash, tones).
    pub fn from_event_code(code: u8) -> Option<Digit> {
        Digit::ALL.get(usize::from(code)).copied()
    }

    /// The keypad character: `'0'..='9'`, `'*'`, `'#'`, `'A'..='D'`.
    pub fn as_char(self) -> char {
        b"0123456789*#ABCD"[self as usize] as char
    }

    /// The digit of a keypad character (letters in either case).
    pub fn from_char(c: char) -> Option<Digit> {
        let code = match c.to_ascii_uppercase() {
            c @ '0'..='9' => c as u8 - b'0',
            '*' => 10,
            '#' => 11,
            c @ 'A'..='D' => c as u8 - b'A' + 12,
            _ => return None,
        };
        Digit::from_event_code(code)
    }

    /// (row, column) index on the keypad.
    pub fn keypad_position(self) -> (usize, usize) {
        for (r, row) in KEYPAD.iter().enumerate() {
            for (c, d) in row.iter().enumerate() {
                if *d == self {
                    return (r, c);
                }
            }
        }
        // Every digit is on the keypad (KEYPAD holds all 16), so this is never reached.
        (0, 0)
    }

    /// The digit at keypad (row, column), both in `0..4`.
    pub fn from_keypad(row: usize, col: usize) -> Option<Digit> {
        KEYPAD.get(row).and_then(|r| r.get(col)).copied()
    }

    /// (low, high) frequencies in Hz.
    pub fn frequencies(self) -> (f64, f64) {
        let (r, c) = self.keypad_position();
        (ROW_FREQS[r], COL_FREQS[c])
    }
}

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    /// RTP telephone-event (RFC 4733).
    Rfc4733,
    /// SIP INFO body.
    Info,
    /// Tones in the audio (Goertzel detector).
    Inband,
}

impl DtmfSource {
    fn bit(self) -> u8 {
        match self {
            DtmfSource::Rfc4733 => 1,
            DtmfSource::Info => 2,
            DtmfSource::Inband => 4,
        }
    }

    /// A short lowercase name for logs: `rfc4733`, `info`, `inband`.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::Info => "info",
            DtmfSource::Inband => "inband",
        }
    }
}

impl fmt::Display for DtmfSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key press, de-duplicated across sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// The key.
    pub digit: Digit,
    /// The source whose report came first.
    pub source: DtmfSource,
    /// When the key press started (as reported by that source).
    pub at: Instant,
}

/// How many recent presses the merger remembers (bounded memory whatever a peer sends).
const MERGER_HISTORY: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Press {
    digit: Digit,
    at: Instant,
    /// Bit set of the sources that reported this press.
    sources: u8,
}

/// Merges the digits of the three sources into one stream (see the module docs).
///
/// Sans-IO: [`handle_input`](Self::handle_input) then drain
/// [`poll_output`](Self::poll_output). Digits are emitted at once (the first report of a
/// press wins), so the merger needs no timer.
#[derive(Debug)]
pub struct DigitMerger {
    window: Duration,
    recent: VecDeque<Press>,
    out: VecDeque<DtmfEvent>,
    duplicates: u64,
}

impl Default for DigitMerger {
    fn default() -> Self {
        DigitMerger::new(Duration::from_millis(200))
    }
}

impl DigitMerger {
    /// A merger treating a same digit from another source within `window` as a duplicate.
    pub fn new(window: Duration) -> Self {
        DigitMerger {
            window,
            recent: VecDeque::with_capacity(MERGER_HISTORY),
            out: VecDeque::new(),
            duplicates: 0,
        }
    }

    /// A digit from `source` whose key press started at `at`.
    pub fn handle_input(&mut self, at: Instant, digit: Digit, source: DtmfSource) {
        let window = self.window;
        let bit = source.bit();
        let near = |p: &Press| {
            let gap = if p.at > at {
                p.at.duration_since(at)
            } else {
                at.duration_since(p.at)
            };
            gap <= window
        };
        if let Some(press) = self
            .recent
            .iter_mut()
            .find(|p| p.digit == digit && p.sources & bit == 0 && near(p))
        {
            press.sources |= bit;
            self.duplicates = self.duplicates.saturating_add(1);
            return;
        }
        if self.recent.len() == MERGER_HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(Press {
            digit,
            at,
            sources: bit,
        });
        self.out.push_back(DtmfEvent { digit, source, at });
    }

    /// The next de-duplicated digit.
    pub fn poll_output(&mut self) -> Option<DtmfEvent> {
        self.out.pop_front()
    }

    /// How many reports were dropped as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// Errors of a call's DTMF input (a bad telephone-event payload or INFO body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// A telephone-event payload that does not parse.
    #[error(transparent)]
    Rfc4733(#[from] rfc4733::Rfc4733Error),
    /// An INFO body that is not a DTMF body.
    #[error(transparent)]
    Info(#[from] info::InfoError),
}

/// All DTMF input of one call: the three receivers feeding one [`DigitMerger`].
///
/// Sans-IO: feed packets, INFO bodies and decoded audio with their `now`; call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout); drain
/// [`poll_output`](Self::poll_output) after each input.
///
/// ```
/// use std::time::Instant;
/// use guichet::media::dtmf::{CallDtmf, Digit, DtmfSource};
///
/// let mut dtmf = CallDtmf::new(true);
/// dtmf.handle_info(Instant::now(), "application/dtmf-relay", b"Signal=0\r\nDuration=100").unwrap();
/// let ev = dtmf.poll_output().unwrap();
/// assert_eq!((ev.digit, ev.source), (Digit::D0, DtmfSource::Info));
/// ```
#[derive(Debug)]
pub struct CallDtmf {
    rfc4733: rfc4733::Rfc4733Receiver,
    inband: Option<inband::InbandDetector>,
    merger: DigitMerger,
}

impl CallDtmf {
    /// Default settings; `inband` enables the Goertzel detector on the caller's audio.
    pub fn new(inband: bool) -> Self {
        CallDtmf {
            rfc4733: rfc4733::Rfc4733Receiver::default(),
            inband: inband.then(inband::InbandDetector::default),
            merger: DigitMerger::default(),
        }
    }

    /// Explicit settings for each part.
    pub fn with_parts(
        rfc4733: rfc4733::Rfc4733Receiver,
        inband: Option<inband::InbandDetector>,
        merger: DigitMerger,
    ) -> Self {
        CallDtmf {
            rfc4733,
            inband,
            merger,
        }
    }

    /// A telephone-event payload (RTP payload of the negotiated telephone-event type).
    pub fn handle_telephone_event(
        &mut self,
        now: Instant,
        rtp_timestamp: u32,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let ev = rfc4733::TelephoneEvent::parse(payload)?;
        self.rfc4733.handle_event(now, rtp_timestamp, ev);
        self.drain();
        Ok(())
    }

    /// A telephone event as parsed by the RTP receiver
    /// ([`MediaEvent::TelephoneEvent`](crate::media::session::MediaEvent::TelephoneEvent)).
    pub fn handle_rtp_event(&mut self, now: Instant, ev: &crate::media::rtp::TelephoneEvent) {
        let payload = rfc4733::TelephoneEvent {
            event: ev.event,
            end: ev.end,
            volume: ev.volume,
            duration: ev.duration,
        };
        self.rfc4733.handle_event(now, ev.timestamp, payload);
        self.drain();
    }

    /// A SIP INFO request body with its Content-Type.
    pub fn handle_info(
        &mut self,
        now: Instant,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), DtmfError> {
        let got = info::parse_info(content_type, body)?;
        self.merger.handle_input(now, got.digit, DtmfSource::Info);
        Ok(())
    }

    /// Decoded 8 kHz audio from the caller; `now` is the time of `samples[0]`.
    pub fn handle_audio(&mut self, now: Instant, samples: &[i16]) {
        if let Some(det) = self.inband.as_mut() {
            det.push_samples(now, samples);
            self.drain();
        }
    }

    /// A timer tick (the RFC 4733 lost-end timer).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.rfc4733.handle_timeout(now);
        self.drain();
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rfc4733.poll_timeout()
    }

    /// The next digit, de-duplicated across sources.
    pub fn poll_output(&mut self) -> Option<DtmfEvent> {
        self.merger.poll_output()
    }

    fn drain(&mut self) {
        while let Some(d) = self.rfc4733.poll_output() {
            self.merger.handle_input(d.at, d.digit, DtmfSource::Rfc4733);
        }
        if let Some(det) = self.inband.as_mut() {
            while let Some(d) = det.poll_output() {
                self.merger.handle_input(d.at, d.digit, DtmfSource::Inband);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(m: &mut DigitMerger) -> Vec<(Digit, DtmfSource)> {
        std::iter::from_fn(|| m.poll_output())
            .map(|e| (e.digit, e.source))
            .collect()
    }

    #[test]
    fn digit_codes_chars_and_keypad_agree() {
        for (i, d) in Digit::ALL.iter().enumerate() {
            assert_eq!(usize::from(d.event_code()), i);
            assert_eq!(Digit::from_char(d.as_char()), Some(*d));
            let (r, c) = d.keypad_position();
            assert_eq!(Digit::from_keypad(r, c), Some(*d));
        }
        assert_eq!(Digit::from_event_code(16), None);
        assert_eq!(Digit::from_char('e'), None);
        assert_eq!(Digit::from_char('b'), Some(Digit::B));
        assert_eq!(Digit::D5.frequencies(), (770.0, 1336.0));
        assert_eq!(Digit::Hash.frequencies(), (941.0, 1477.0));
    }

    #[test]
    fn same_press_from_two_sources_is_one_digit() {
        let t0 = Instant::now();
        let mut m = DigitMerger::default();
        m.handle_input(t0 + ms(40), Digit::D1, DtmfSource::Inband);
        m.handle_input(t0, Digit::D1, DtmfSource::Rfc4733);
        m.handle_input(t0 + ms(150), Digit::D1, DtmfSource::Info);
        assert_eq!(drain(&mut m), vec![(Digit::D1, DtmfSource::Inband)]);
        assert_eq!(m.duplicates(), 2);
    }

    #[test]
    fn same_digit_twice_from_one_source_is_two_presses() {
        let t0 = Instant::now();
        let mut m = DigitMerger::default();
        m.handle_input(t0, Digit::D7, DtmfSource::Rfc4733);
        m.handle_input(t0 + ms(120), Digit::D7, DtmfSource::Rfc4733);
        assert_eq!(drain(&mut m).len(), 2);
    }

    #[test]
    fn double_press_with_two_sources_gives_two_digits() {
        let t0 = Instant::now();
        let mut m = DigitMerger::default();
        m.handle_input(t0, Digit::D3, DtmfSource::Rfc4733);
        m.handle_input(t0 + ms(20), Digit::D3, DtmfSource::Inband);
        m.handle_input(t0 + ms(150), Digit::D3, DtmfSource::Rfc4733);
        m.handle_input(t0 + ms(170), Digit::D3, DtmfSource::Inband);
        assert_eq!(
            drain(&mut m),
            vec![
                (Digit::D3, DtmfSource::Rfc4733),
                (Digit::D3, DtmfSource::Rfc4733)
            ]
        );
        assert_eq!(m.duplicates(), 2);
    }

    #[test]
    fn outside_window_or_other_digit_is_new() {
        let t0 = Instant::now();
        let mut m = DigitMerger::default();
        m.handle_input(t0, Digit::D3, DtmfSource::Rfc4733);
        m.handle_input(t0 + ms(500), Digit::D3, DtmfSource::Inband);
        m.handle_input(t0 + ms(510), Digit::D4, DtmfSource::Rfc4733);
        assert_eq!(drain(&mut m).len(), 3);
    }

    #[test]
    fn call_dtmf_merges_rfc4733_and_inband_from_one_gateway() {
        use rfc4733::TelephoneEvent;
        use tones::{ToneLevel, dtmf_tone};
        let t0 = Instant::now();
        let mut dtmf = CallDtmf::new(true);
        // The gateway sends "1" then "2", each 100 ms, as events and as tones, 200 ms apart.
        let mut got = Vec::new();
        for (k, digit) in [Digit::D1, Digit::D2].into_iter().enumerate() {
            let start = t0 + ms(300 * k as u64);
            let tone = dtmf_tone(digit, 800, ToneLevel::default());
            let events = TelephoneEvent::press(digit, 10, 800, 160);
            for i in 0..events.len().max(8) {
                let now = start + ms(20 * i as u64);
                if let Some(frame) = tone.chunks(160).nth(i) {
                    dtmf.handle_audio(now, frame);
                } else {
                    dtmf.handle_audio(now, &[0; 160]);
                }
                if let Some(ev) = events.get(i) {
                    dtmf.handle_telephone_event(now, 1000 + 8000 * k as u32, &ev.to_bytes())
                        .unwrap();
                }
                got.extend(std::iter::from_fn(|| dtmf.poll_output()));
            }
        }
        let digits: Vec<(Digit, DtmfSource)> = got.iter().map(|e| (e.digit, e.source)).collect();
        assert_eq!(
            digits,
            vec![
                (Digit::D1, DtmfSource::Inband),
                (Digit::D2, DtmfSource::Inband)
            ]
        );
        assert!(dtmf.handle_telephone_event(t0, 1, &[1, 2]).is_err());
        // The RTP layer's parsed events are accepted as they are.
        for (i, d) in [160u16, 320, 400, 400].into_iter().enumerate() {
            let ev = crate::media::rtp::TelephoneEvent {
                seq: i as u16,
                event: 11,
                end: i >= 2,
                volume: 10,
                duration: d,
                timestamp: 99_000,
                marker: i == 0,
            };
            dtmf.handle_rtp_event(t0 + ms(2000 + 20 * i as u64), &ev);
        }
        let ev = dtmf.poll_output().unwrap();
        assert_eq!((ev.digit, ev.source), (Digit::Hash, DtmfSource::Rfc4733));
        assert!(dtmf.poll_output().is_none());
        assert!(dtmf.handle_info(t0, "text/plain", b"1").is_err());
        assert_eq!(dtmf.poll_timeout(), None);
    }

    #[test]
    fn history_is_bounded() {
        let t0 = Instant::now();
        let mut m = DigitMerger::default();
        for i in 0..1000u64 {
            m.handle_input(t0 + ms(i * 300), Digit::D9, DtmfSource::Info);
        }
        assert_eq!(drain(&mut m).len(), 1000);
        assert!(m.recent.len() <= MERGER_HISTORY);
    }
}
