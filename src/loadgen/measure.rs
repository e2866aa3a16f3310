//! What the load tool measures, as plain functions over values (no IO): the per-call RTP
//! receive tracker (packets, loss from sequence gaps, inter-packet gap error against the
//! timestamp-implied ideal) and the parsers of `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! Gap error: for two packets in sequence (`seq` + 1) where the later one does not start a
//! talk spurt (marker bit clear), the ideal gap is the RTP timestamp difference (160
//! samples at 8 kHz = 20 ms) and the error is `|arrival gap - ideal gap|` in microseconds.
//! Packets out of order or after a loss are counted but not measured.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::loadgen::histogram::Histogram;
//! use guichet::loadgen::measure::{GapTracker, RtpHeader};
//! let t0 = Instant::now();
//! let (mut tracker, mut hist) = (GapTracker::default(), Histogram::new());
//! tracker.record(RtpHeader { seq: 1, timestamp: 0, marker: true, payload_type: 0 }, t0, &mut hist);
//! tracker.record(RtpHeader { seq: 2, timestamp: 160, marker: false, payload_type: 0 },
//!                t0 + Duration::from_micros(20_700), &mut hist);
//! assert_eq!(hist.max(), 700);
//! assert_eq!(tracker.lost(), 0);
//! ```

use std::time::Instant;

use super::histogram::Histogram;

/// The fields of a fixed RTP header the tracker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
}

impl RtpHeader {
    /// Read the fixed header of an RTP version 2 packet; `None` for anything else
    /// (too short, another version, an RTCP packet multiplexed on the port).
    pub fn parse(bytes: &[u8]) -> Option<RtpHeader> {
        let b0 = *bytes.first()?;
        let b1 = *bytes.get(1)?;
        if b0 >> 6 != 2 || bytes.len() < 12 {
            return None;
        }
        let payload_type = b1 & 0x7f;
        if (72..=76).contains(&payload_type) {
            return None; // RTCP SR/RR/SDES/BYE/APP (RFC 5761)
        }
        Some(RtpHeader {
            seq: u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]),
            timestamp: u32::from_be_bytes([
                *bytes.get(4)?,
                *bytes.get(5)?,
                *bytes.get(6)?,
                *bytes.get(7)?,
            ]),
            marker: b1 & 0x80 != 0,
            payload_type,
        })
    }
}

/// Largest ideal gap measured (1 s): longer timestamp jumps are pauses, not jitter.
const MAX_IDEAL_US: u64 = 1_000_000;

/// The receive side of one call. Gaps are measured between audio packets only (packets
/// of another payload type, e.g. RFC 4733 events, are counted for loss, not measured).
#[derive(Debug, Clone, Default)]
pub struct GapTracker {
    /// Audio payload type; `None` until the first packet, which sets it.
    audio_pt: Option<u8>,
    received: u64,
    /// First extended sequence number and the highest seen.
    first_ext: Option<u64>,
    highest_ext: u64,
    reordered: u64,
    last: Option<(u16, u32, Instant)>,
}

impl GapTracker {
    /// One packet arrived at `at`; gap errors go to `hist`.
    pub fn record(&mut self, h: RtpHeader, at: Instant, hist: &mut Histogram) {
        self.received += 1;
        let audio = *self.audio_pt.get_or_insert(h.payload_type) == h.payload_type;
        let ext = match self.first_ext {
            None => {
                self.first_ext = Some(u64::from(h.seq));
                self.highest_ext = u64::from(h.seq);
                self.last = Some((h.seq, h.timestamp, at));
                return;
            }
            Some(_) => {
                // Extend the 16-bit sequence number around the highest seen so far.
                let cycles = self.highest_ext & !0xffff;
                let candidates = [
                    cycles.wrapping_sub(0x1_0000) | u64::from(h.seq),
                    cycles | u64::from(h.seq),
                    (cycles + 0x1_0000) | u64::from(h.seq),
                ];
                candidates
                    .into_iter()
                    .min_by_key(|c| c.abs_diff(self.highest_ext))
                    .unwrap_or(u64::from(h.seq))
            }
        };
        if ext <= self.highest_ext {
            self.reordered += 1;
            return;
        }
        self.highest_ext = ext;
        if !audio {
            return;
        }
        if let Some((last_seq, last_ts, last_at)) = self.last
            && h.seq == last_seq.wrapping_add(1)
            && !h.marker
        {
            let ideal_us = u64::from(h.timestamp.wrapping_sub(last_ts)) * 1_000_000 / 8000;
            if ideal_us > 0 && ideal_us <= MAX_IDEAL_US {
                let actual_us = at.saturating_duration_since(last_at).as_micros() as u64;
                hist.record(actual_us.abs_diff(ideal_us));
            }
        }
        self.last = Some((h.seq, h.timestamp, at));
    }

    /// Tell the tracker which payload type is audio (else the first packet's is taken).
    pub fn set_audio_payload_type(&mut self, pt: u8) {
        self.audio_pt = Some(pt);
    }

    /// Packets received (duplicates and reordered ones included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the sequence numbers.
    pub fn expected(&self) -> u64 {
        match self.first_ext {
            Some(first) => self.highest_ext - first + 1,
            None => 0,
        }
    }

    /// Sequence numbers never seen (never negative: duplicates do not hide a loss count).
    pub fn lost(&self) -> u64 {
        let in_order = self.received - self.reordered;
        self.expected().saturating_sub(in_order)
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

/// CPU ticks (user + system) from the text of `/proc/<pid>/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: cut after the
    // last ')'. Fields from there start at field 3 (state); utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size in KiB (`VmRSS:`) from the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Linux's USER_HZ: the unit of utime/stime (100 on every mainstream architecture).
pub const CLOCK_TICKS_PER_SECOND: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pkt(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            seq,
            timestamp: ts,
            marker: false,
            payload_type: 0,
        }
    }

    #[test]
    fn perfect_stream_has_zero_error_and_no_loss() {
        let t0 = Instant::now();
        let (mut t, mut h) = (GapTracker::default(), Histogram::new());
        for i in 0..100u16 {
            t.record(
                pkt(65500u16.wrapping_add(i), u32::from(i) * 160),
                t0 + Duration::from_millis(20) * u32::from(i),
                &mut h,
            );
        }
        assert_eq!((t.received(), t.expected(), t.lost()), (100, 100, 0));
        assert_eq!((h.count(), h.max()), (99, 0));
    }

    #[test]
    fn a_gap_in_sequence_is_loss_and_not_measured() {
        let t0 = Instant::now();
        let (mut t, mut h) = (GapTracker::default(), Histogram::new());
        t.record(pkt(10, 0), t0, &mut h);
        t.record(pkt(13, 480), t0 + Duration::from_millis(60), &mut h);
        t.record(pkt(14, 640), t0 + Duration::from_millis(83), &mut h);
        assert_eq!((t.expected(), t.lost()), (5, 2));
        assert_eq!((h.count(), h.max()), (1, 3000));
    }

    #[test]
    fn event_packets_are_not_measured_and_break_the_audio_run() {
        let t0 = Instant::now();
        let (mut t, mut h) = (GapTracker::default(), Histogram::new());
        t.set_audio_payload_type(0);
        t.record(pkt(1, 0), t0, &mut h);
        let mut ev = pkt(2, 160);
        ev.payload_type = 101;
        t.record(ev, t0 + Duration::from_millis(20), &mut h);
        ev.seq = 3;
        t.record(ev, t0 + Duration::from_millis(40), &mut h);
        t.record(pkt(4, 480), t0 + Duration::from_millis(95), &mut h);
        t.record(pkt(5, 640), t0 + Duration::from_millis(115), &mut h);
        assert_eq!((t.lost(), t.received()), (0, 5));
        assert_eq!((h.count(), h.max()), (1, 0));
    }

    #[test]
    fn reordered_packet_is_counted_not_lost() {
        let t0 = Instant::now();
        let (mut t, mut h) = (GapTracker::default(), Histogram::new());
        t.record(pkt(1, 0), t0, &mut h);
        t.record(pkt(3, 320), t0, &mut h);
        t.record(pkt(2, 160), t0, &mut h);
        assert_eq!((t.lost(), t.reordered()), (1, 1));
    }

    #[test]
    fn talkspurt_start_is_not_measured() {
        let t0 = Instant::now();
        let (mut t, mut h) = (GapTracker::default(), Histogram::new());
        t.record(pkt(1, 0), t0, &mut h);
        let mut p = pkt(2, 8000);
        p.marker = true;
        t.record(p, t0 + Duration::from_secs(3), &mut h);
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn rtp_header_parse() {
        let mut b = [0u8; 12];
        b[0] = 0x80;
        b[1] = 0x80;
        b[2..4].copy_from_slice(&7u16.to_be_bytes());
        b[4..8].copy_from_slice(&1234u32.to_be_bytes());
        let h = RtpHeader::parse(&b).unwrap();
        assert_eq!(
            (h.seq, h.timestamp, h.marker, h.payload_type),
            (7, 1234, true, 0)
        );
        b[1] = 200; // RTCP SR
        assert!(RtpHeader::parse(&b).is_none());
        assert!(RtpHeader::parse(&b[..5]).is_none());
        assert!(RtpHeader::parse(&[]).is_none());
    }

    #[test]
    fn proc_parsers() {
        let stat = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 4 0 99";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(287));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        let status = "Name:\tguichet\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn real_proc_self_parses() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu_ticks(&stat).is_some());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_status_rss_kib(&status).unwrap() > 0);
    }
}
