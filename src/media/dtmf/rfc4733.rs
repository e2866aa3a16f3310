//! RFC 4733 telephone-event payloads: parse, encode, and a receiver that turns packets
//! into digits.
//!
//! The payload (RFC 4733 section 2.3) is 4 bytes: event code, `E|R|volume(6)`, and a
//! 16-bit duration in RTP timestamp units. One key press is one *event*, keyed by the RTP
//! timestamp of its packets; the sender repeats packets with growing durations and sends
//! the final (E bit) packet three times.
//!
//! [`Rfc4733Receiver`] reports each digit exactly once, however many packets and end
//! retransmissions arrive:
//! - the digit is reported **as soon as** the event's duration reaches the configured
//!   minimum (default 40 ms), not at its end: a caller who holds a key for two seconds is
//!   answered at once, and a press shorter than the minimum is never reported;
//! - **lost end packets** therefore lose nothing: the digit was reported from the updates.
//!   The event is closed when its end packet arrives, when another event starts, or when no
//!   packet came for `end_timeout` (default 250 ms; the owner calls
//!   [`handle_timeout`](Rfc4733Receiver::handle_timeout) at
//!   [`poll_timeout`](Rfc4733Receiver::poll_timeout)); closing only frees the state;
//! - packets of an event already seen (end retransmissions, late packets) are dropped: the
//!   receiver remembers the timestamps of the last few events;
//! - long events split into 0xFFFF-duration segments (section 2.5.1.3) stay one digit.
//!
//! The caller feeds only packets of the negotiated telephone-event payload type, after the
//! media latch; this module never sees RTP headers.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::media::dtmf::Digit;
//! use guichet::media::dtmf::rfc4733::{Rfc4733Receiver, TelephoneEvent};
//!
//! let t0 = Instant::now();
//! let mut rx = Rfc4733Receiver::default();
//! for (i, ev) in TelephoneEvent::press(Digit::D5, 10, 800, 160).into_iter().enumerate() {
//!     let payload = ev.to_bytes();
//!     let ev = TelephoneEvent::parse(&payload).unwrap();
//!     rx.handle_event(t0 + Duration::from_millis(20 * i as u64), 1234, ev);
//! }
//! assert_eq!(rx.poll_output().unwrap().digit, Digit::D5);
//! assert!(rx.poll_output().is_none());
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Digit;

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc4733Error {
    /// The payload is shorter than the 4 bytes of one event.
    #[error("telephone-event payload is {0} bytes, expected at least 4")]
    TooShort(usize),
}

/// One telephone-event payload (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 are DTMF digits).
    pub event: u8,
    /// E bit: the final packet(s) of the event.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse the first event of a payload (trailing bytes, e.g. redundancy, are ignored).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, Rfc4733Error> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(Rfc4733Error::TooShort(payload.len())),
        }
    }

    /// The 4 payload bytes (R bit zero, volume clamped to 63).
    pub fn to_bytes(&self) -> [u8; 4] {
        let flags = if self.end { 0x80 } else { 0 } | self.volume.min(63);
        let [d0, d1] = self.duration.to_be_bytes();
        [self.event, flags, d0, d1]
    }

    /// The payloads a sender emits for one key press of `duration` timestamp units, one
    /// every `step` units (160 = 20 ms at 8 kHz), the end packet sent three times.
    /// All of them carry the same RTP timestamp (the start of the press).
    pub fn press(digit: Digit, volume: u8, duration: u16, step: u16) -> Vec<TelephoneEvent> {
        let step = step.max(1);
        let mut out = Vec::new();
        let mut d = step.min(duration);
        while d < duration {
            out.push(TelephoneEvent {
                event: digit.event_code(),
                end: false,
                volume,
                duration: d,
            });
            d = d.saturating_add(step);
        }
        for _ in 0..3 {
            out.push(TelephoneEvent {
                event: digit.event_code(),
                end: true,
                volume,
                duration,
            });
        }
        out
    }
}

/// Receiver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc4733Config {
    /// Presses shorter than this are ignored (default 40 ms).
    pub min_duration: Duration,
    /// Close an event whose end packet never came after this silence (default 250 ms).
    pub end_timeout: Duration,
    /// RTP clock rate of the telephone-event stream (default 8000).
    pub clock_rate: u32,
}

impl Default for Rfc4733Config {
    fn default() -> Self {
        Rfc4733Config {
            min_duration: Duration::from_millis(40),
            end_timeout: Duration::from_millis(250),
            clock_rate: 8000,
        }
    }
}

/// A digit received over RFC 4733.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc4733Digit {
    /// The key.
    pub digit: Digit,
    /// Arrival time of the first packet of the event.
    pub at: Instant,
    /// The press duration when the digit was reported (the key may still be down).
    pub duration: Duration,
    /// Volume of the packet that reported it, in -dBm0.
    pub volume: u8,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    started: Instant,
    last_packet: Instant,
    /// Total duration in timestamp units, including earlier 0xFFFF segments.
    duration: u64,
    /// Duration of the current segment.
    segment: u16,
    volume: u8,
    reported: bool,
}

/// How many finished event timestamps are remembered to drop their retransmissions.
const DONE_HISTORY: usize = 8;

/// Turns telephone-event packets into digits (see the module docs).
#[derive(Debug)]
pub struct Rfc4733Receiver {
    config: Rfc4733Config,
    current: Option<Current>,
    done: VecDeque<u32>,
    out: VecDeque<Rfc4733Digit>,
}

impl Default for Rfc4733Receiver {
    fn default() -> Self {
        Rfc4733Receiver::new(Rfc4733Config::default())
    }
}

impl Rfc4733Receiver {
    /// A receiver with these settings.
    pub fn new(config: Rfc4733Config) -> Self {
        Rfc4733Receiver {
            config,
            current: None,
            done: VecDeque::with_capacity(DONE_HISTORY),
            out: VecDeque::new(),
        }
    }

    /// One telephone-event packet with its RTP timestamp, received at `now`.
    pub fn handle_event(&mut self, now: Instant, rtp_timestamp: u32, ev: TelephoneEvent) {
        if self.done.contains(&rtp_timestamp) {
            return; // end retransmission or a late packet of a reported event
        }
        let mut finished_segment = None;
        match self.current {
            Some(ref mut cur) if cur.timestamp == rtp_timestamp => {
                cur.last_packet = now;
                // Durations only grow within an event; a reordered older packet is ignored.
                if ev.duration > cur.segment {
                    cur.duration += u64::from(ev.duration - cur.segment);
                    cur.segment = ev.duration;
                }
                cur.volume = ev.volume;
            }
            Some(ref mut cur)
                if cur.event == ev.event
                    && cur.segment == u16::MAX
                    && rtp_timestamp == cur.timestamp.wrapping_add(u32::from(u16::MAX)) =>
            {
                // Next segment of a long event (RFC 4733 section 2.5.1.3): same press.
                finished_segment = Some(cur.timestamp);
                cur.timestamp = rtp_timestamp;
                cur.last_packet = now;
                cur.duration += u64::from(ev.duration);
                cur.segment = ev.duration;
                cur.volume = ev.volume;
            }
            _ => {
                // A new event: a still-open previous one lost its end packet.
                self.close();
                self.current = Some(Current {
                    timestamp: rtp_timestamp,
                    event: ev.event,
                    started: now,
                    last_packet: now,
                    duration: u64::from(ev.duration),
                    segment: ev.duration,
                    volume: ev.volume,
                    reported: false,
                });
            }
        }
        if let Some(ts) = finished_segment {
            self.done_push(ts);
        }
        self.report_if_long_enough();
        if ev.end {
            self.close();
        }
    }

    /// A timer tick: closes an event whose end packet did not come in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(cur) = self.current
            && now >= cur.last_packet + self.config.end_timeout
        {
            self.close();
        }
    }

    /// The deadline of the lost-end timer, if an event is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .map(|cur| cur.last_packet + self.config.end_timeout)
    }

    /// The next digit.
    pub fn poll_output(&mut self) -> Option<Rfc4733Digit> {
        self.out.pop_front()
    }

    fn done_push(&mut self, ts: u32) {
        if self.done.len() == DONE_HISTORY {
            self.done.pop_front();
        }
        self.done.push_back(ts);
    }

    fn report_if_long_enough(&mut self) {
        let rate = u64::from(self.config.clock_rate.max(1));
        let min = self.config.min_duration;
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let duration = Duration::from_micros(cur.duration.saturating_mul(1_000_000) / rate);
        if cur.reported || duration < min {
            return;
        }
        cur.reported = true;
        if let Some(digit) = Digit::from_event_code(cur.event) {
            self.out.push_back(Rfc4733Digit {
                digit,
                at: cur.started,
                duration,
                volume: cur.volume,
            });
        }
    }

    fn close(&mut self) {
        if let Some(cur) = self.current.take() {
            self.done_push(cur.timestamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(rx: &mut Rfc4733Receiver) -> Vec<Rfc4733Digit> {
        std::iter::from_fn(|| rx.poll_output()).collect()
    }

    #[test]
    fn parse_and_encode_known_bytes() {
        let ev = TelephoneEvent::parse(&[0x0B, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), [0x0B, 0x8A, 0x03, 0x20]);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(Rfc4733Error::TooShort(3))
        );
        // R bit set by a peer is ignored.
        assert!(!TelephoneEvent::parse(&[1, 0x40, 0, 0]).unwrap().end);
    }

    proptest! {
        #[test]
        fn payload_round_trips(event: u8, end: bool, volume in 0u8..64, duration: u16) {
            let ev = TelephoneEvent { event, end, volume, duration };
            prop_assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Ok(ev));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = TelephoneEvent::parse(&bytes);
        }

        #[test]
        fn any_packet_sequence_reports_each_event_at_most_once(
            packets in proptest::collection::vec((0u32..4, 0u8..17, any::<bool>(), any::<u16>()), 0..60)
        ) {
            let t0 = Instant::now();
            let mut rx = Rfc4733Receiver::default();
            for (i, (ts, event, end, duration)) in packets.iter().enumerate() {
                let now = t0 + ms(10 * i as u64);
                rx.handle_timeout(now);
                rx.handle_event(now, *ts, TelephoneEvent { event: *event, end: *end, volume: 10, duration: *duration });
            }
            rx.handle_timeout(t0 + ms(100_000));
            // Four timestamps, and the history remembers 8: each reported at most once.
            prop_assert!(drain(&mut rx).len() <= 4);
        }
    }

    #[test]
    fn every_digit_reported_once_despite_retransmissions() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        for (k, digit) in Digit::ALL.iter().enumerate() {
            let ts = 1000 + 8000 * k as u32;
            let start = t0 + ms(500 * k as u64);
            for (i, ev) in TelephoneEvent::press(*digit, 10, 960, 160)
                .into_iter()
                .enumerate()
            {
                // Every packet also duplicated by the network.
                let now = start + ms(20 * i as u64);
                rx.handle_event(now, ts, ev);
                rx.handle_event(now, ts, ev);
            }
        }
        let got = drain(&mut rx);
        assert_eq!(
            got.iter().map(|d| d.digit).collect::<Vec<_>>(),
            Digit::ALL.to_vec()
        );
        assert!(got.iter().all(|d| d.duration == ms(40)));
        assert_eq!(got[3].at, t0 + ms(1500));
    }

    #[test]
    fn short_press_is_ignored_and_minimum_is_configurable() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        for ev in TelephoneEvent::press(Digit::D1, 10, 200, 160) {
            rx.handle_event(t0, 1, ev); // 25 ms
        }
        for ev in TelephoneEvent::press(Digit::D2, 10, 320, 160) {
            rx.handle_event(t0, 2, ev); // exactly 40 ms
        }
        let got = drain(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digit, Digit::D2);

        let mut rx = Rfc4733Receiver::new(Rfc4733Config {
            min_duration: ms(10),
            ..Rfc4733Config::default()
        });
        for ev in TelephoneEvent::press(Digit::D1, 10, 200, 160) {
            rx.handle_event(t0, 1, ev);
        }
        assert_eq!(drain(&mut rx).len(), 1);
    }

    #[test]
    fn reported_once_the_minimum_is_reached_not_at_the_end() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        // A key held 2 s: updates every 20 ms.
        let evs = TelephoneEvent::press(Digit::D0, 10, 16_000, 160);
        let mut reported_after = None;
        for (i, ev) in evs.iter().enumerate() {
            rx.handle_event(t0 + ms(20 * i as u64), 5, *ev);
            if let Some(d) = rx.poll_output() {
                assert!(reported_after.is_none(), "reported twice");
                assert_eq!(d.at, t0);
                reported_after = Some(ev.duration);
            }
        }
        // Reported with the packet whose duration first reached 40 ms (320 units).
        assert_eq!(reported_after, Some(320));
    }

    #[test]
    fn lost_end_loses_nothing_and_timeout_closes_the_event() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        let evs = TelephoneEvent::press(Digit::Star, 10, 800, 160);
        let mut last = t0;
        for (i, ev) in evs.iter().filter(|e| !e.end).enumerate() {
            last = t0 + ms(20 * i as u64);
            rx.handle_event(last, 77, *ev);
        }
        let got = drain(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digit, Digit::Star);
        let deadline = rx.poll_timeout().unwrap();
        assert_eq!(deadline, last + ms(250));
        rx.handle_timeout(deadline - ms(1)); // early wake-up: harmless
        assert!(rx.poll_timeout().is_some());
        rx.handle_timeout(deadline);
        rx.handle_timeout(deadline); // twice: harmless
        assert!(drain(&mut rx).is_empty());
        assert_eq!(rx.poll_timeout(), None);
        // The end packets arriving very late do not report it again.
        rx.handle_event(deadline + ms(10), 77, evs[evs.len() - 1]);
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn only_a_short_start_before_silence_is_not_a_digit() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        let ev = TelephoneEvent {
            event: 3,
            end: false,
            volume: 10,
            duration: 160,
        };
        rx.handle_event(t0, 9, ev);
        rx.handle_timeout(t0 + ms(300));
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn lost_end_reported_when_next_event_starts() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        for d in [160u16, 320, 480] {
            rx.handle_event(
                t0,
                10,
                TelephoneEvent {
                    event: 4,
                    end: false,
                    volume: 10,
                    duration: d,
                },
            );
        }
        for ev in TelephoneEvent::press(Digit::D4, 10, 480, 160) {
            rx.handle_event(t0 + ms(100), 5000, ev);
        }
        let got: Vec<_> = drain(&mut rx).iter().map(|d| d.digit).collect();
        assert_eq!(got, vec![Digit::D4, Digit::D4]);
    }

    #[test]
    fn only_end_packets_received_still_reports() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        let ev = TelephoneEvent {
            event: 9,
            end: true,
            volume: 10,
            duration: 640,
        };
        rx.handle_event(t0, 3, ev);
        rx.handle_event(t0, 3, ev);
        assert_eq!(drain(&mut rx).len(), 1);
    }

    #[test]
    fn long_event_segments_are_one_digit() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        let ev = |end, duration| TelephoneEvent {
            event: 0,
            end,
            volume: 10,
            duration,
        };
        rx.handle_event(t0, 100, ev(false, 40_000));
        rx.handle_event(t0 + ms(5000), 100, ev(false, u16::MAX));
        let next = 100u32.wrapping_add(u32::from(u16::MAX));
        rx.handle_event(t0 + ms(8200), next, ev(false, 800));
        rx.handle_event(t0 + ms(8300), next, ev(true, 1600));
        let got = drain(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].at, t0);
        // Reported with the first packet (already 5 s long), once.
        assert_eq!(got[0].duration, Duration::from_secs(5));
    }

    #[test]
    fn non_dtmf_events_are_not_digits() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        rx.handle_event(
            t0,
            1,
            TelephoneEvent {
                event: 16, // flash
                end: true,
                volume: 10,
                duration: 1600,
            },
        );
        assert!(drain(&mut rx).is_empty());
    }
}
