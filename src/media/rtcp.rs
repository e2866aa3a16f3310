//! RTCP (RFC 3550 section 6) for one call leg: when to report, what to write, and what the
//! peer's reports say about the line. Sans-IO: wall-clock time comes in as a `SystemTime`
//! argument, never read here.
//!
//! [`RtcpSession`] schedules a compound report every 5 s, randomised by a factor in
//! [0.5, 1.5) from a seeded generator (RFC 3550 6.2/6.3.1; the first report comes after half
//! an interval). [`RtcpSession::write_report`] writes a sender report (if we sent RTP since
//! the last one) or a receiver report, with one report block from the
//! [`RtpReceiver`](super::rtp::RtpReceiver) statistics, plus the SDES CNAME a compound
//! packet must carry. [`RtcpSession::handle`] parses what the peer sends (via `rtcp_types`,
//! zero-copy): its sender reports (kept for LSR/DLSR in our next report block), its report
//! blocks about our stream as a [`Quality`] (fraction and cumulative loss, jitter in ms,
//! round-trip time from LSR/DLSR), and BYE. Malformed input is counted and answered with an
//! error, never a panic.
//!
//! Round-trip time (RFC 3550 6.4.1): the peer echoes the middle 32 bits of the NTP time of
//! our last SR (LSR) and the delay since it received it (DLSR). We remember the `Instant` at
//! which each recent SR left, so RTT = (arrival - sent) - DLSR on the monotonic clock,
//! immune to wall-clock steps.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use guichet::media::rtcp::{RtcpConfig, RtcpSession, SenderInfo};
//! use guichet::media::rtp::Ssrc;
//!
//! let t0 = Instant::now();
//! let mut rtcp = RtcpSession::new(RtcpConfig::default(), Ssrc(0x1234), t0);
//! let due = rtcp.poll_timeout();
//! assert!(due > t0 && due <= t0 + Duration::from_millis(3750));
//! let mut buf = Vec::new();
//! let sender = SenderInfo { rtp_timestamp: 8000, packet_count: 50, octet_count: 8000 };
//! rtcp.write_report(due, SystemTime::UNIX_EPOCH, Some(sender), None, &mut buf).unwrap();
//! assert!(rtcp.poll_timeout() > due);
//! assert_eq!(buf[1], 200); // SR first
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rtcp_types::prelude::*;
use rtcp_types::{
    Bye, Compound, Packet, ReceiverReport, ReportBlock, RtcpParseError, RtcpWriteError, Sdes,
    SdesChunk, SdesItem, SenderReport,
};

use super::rtp::{ReceptionReport, Ssrc};

/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// How many of our recent SR send times we remember for RTT.
const SENT_SR_MEMORY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum RtcpError {
    #[error("malformed RTCP: {0}")]
    Malformed(#[from] RtcpParseError),
    #[error("cannot write RTCP: {0}")]
    Write(#[from] RtcpWriteError),
}

/// How to build an [`RtcpSession`].
#[derive(Debug, Clone)]
pub struct RtcpConfig {
    /// Seed of the interval randomisation.
    pub seed: u64,
    /// Nominal report interval (RFC 3550 minimum: 5 s).
    pub interval: Duration,
    /// SDES CNAME, e.g. `guichet@host`.
    pub cname: String,
    /// RTP clock rate of the stream (for jitter in ms).
    pub clock_rate: u32,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        RtcpConfig {
            seed: 0,
            interval: Duration::from_secs(5),
            cname: "guichet".to_owned(),
            clock_rate: 8000,
        }
    }
}

/// Sender information for an SR, from the [`RtpSender`](super::rtp::RtpSender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// RTP timestamp matching the NTP time of the report.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// What the peer says about the stream we send it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// SSRC of the reporter.
    pub reporter: Ssrc,
    /// Fraction of our packets lost since its previous report, 0.0 to 1.0.
    pub fraction_lost: f64,
    /// Packets lost since the start (may be negative with duplicates).
    pub cumulative_lost: i32,
    pub jitter_ms: f64,
    /// Round-trip time, when the report echoes one of our recent SRs.
    pub rtt_ms: Option<f64>,
}

/// A sender report received from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSenderReport {
    pub ssrc: Ssrc,
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// What one incoming compound RTCP packet contained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RtcpReceived {
    pub sender_report: Option<PeerSenderReport>,
    /// The peer's report block about our SSRC, if present.
    pub quality: Option<Quality>,
    /// The peer said BYE.
    pub bye: bool,
}

/// Counters of an [`RtcpSession`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpCounters {
    pub reports_sent: u64,
    pub packets_received: u64,
    pub malformed: u64,
}

/// RTCP schedule and state for one RTP session.
#[derive(Debug)]
pub struct RtcpSession {
    config: RtcpConfig,
    local_ssrc: Ssrc,
    rng: SmallRng,
    next_report_at: Instant,
    /// Middle 32 bits of the NTP time of the peer's last SR, and when it arrived.
    last_peer_sr: Option<(u32, Instant)>,
    /// Our recent SRs: (middle 32 bits of NTP time, when sent).
    sent_srs: [Option<(u32, Instant)>; SENT_SR_MEMORY],
    sent_sr_next: usize,
    quality: Option<Quality>,
    counters: RtcpCounters,
}

impl RtcpSession {
    /// A session for our stream `local_ssrc`, started at `now`.
    pub fn new(config: RtcpConfig, local_ssrc: Ssrc, now: Instant) -> Self {
        let mut config = config;
        config.clock_rate = config.clock_rate.max(1);
        // An SDES item holds at most 255 bytes.
        while config.cname.len() > 255 {
            config.cname.pop();
        }
        if config.interval.is_zero() {
            config.interval = Duration::from_secs(5);
        }
        // Operator config: a day at most, so deadlines never overflow.
        config.interval = config.interval.min(Duration::from_secs(86_400));
        let mut rng = SmallRng::seed_from_u64(config.seed);
        // RFC 3550 6.2: the first report after half the minimum interval.
        let first = randomised(&mut rng, config.interval / 2);
        RtcpSession {
            config,
            local_ssrc,
            rng,
            next_report_at: now + first,
            last_peer_sr: None,
            sent_srs: [None; SENT_SR_MEMORY],
            sent_sr_next: 0,
            quality: None,
            counters: RtcpCounters::default(),
        }
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_report_at
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_report_at
    }

    /// The latest quality the peer reported about our stream.
    pub fn quality(&self) -> Option<Quality> {
        self.quality
    }

    pub fn counters(&self) -> RtcpCounters {
        self.counters
    }

    /// Our SSRC changed (e.g. a new sender after a re-INVITE).
    pub fn set_local_ssrc(&mut self, ssrc: Ssrc) {
        self.local_ssrc = ssrc;
    }

    /// Append a compound report (SR if `sender` is given, else RR; then SDES CNAME) to
    /// `out` and schedule the next one. `wall` is the current wall-clock time (for the NTP
    /// timestamp of an SR); `reception` is the report block from our receiver, if it has
    /// received anything.
    pub fn write_report(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sender: Option<SenderInfo>,
        reception: Option<ReceptionReport>,
        out: &mut Vec<u8>,
    ) -> Result<(), RtcpError> {
        let result = self.write_compound(now, wall, sender, reception, out);
        self.counters.reports_sent += u64::from(result.is_ok());
        let base = self.next_report_at.max(now);
        self.next_report_at = base + randomised(&mut self.rng, self.config.interval);
        result
    }

    fn write_compound(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sender: Option<SenderInfo>,
        reception: Option<ReceptionReport>,
        out: &mut Vec<u8>,
    ) -> Result<(), RtcpError> {
        let block = reception.map(|r| self.report_block(now, r));
        let sdes = Sdes::builder().add_chunk(SdesChunk::builder(self.local_ssrc.0).add_item(
            SdesItem::builder(SdesItem::CNAME, self.config.cname.as_str()),
        ));
        let ntp = ntp_timestamp(wall);
        let compound = match sender {
            Some(s) => {
                let mut sr = SenderReport::builder(self.local_ssrc.0)
                    .ntp_timestamp(ntp)
                    .rtp_timestamp(s.rtp_timestamp)
                    .packet_count(s.packet_count)
                    .octet_count(s.octet_count);
                if let Some(b) = block {
                    sr = sr.add_report_block(b);
                }
                Compound::builder().add_packet(sr).add_packet(sdes)
            }
            None => {
                let mut rr = ReceiverReport::builder(self.local_ssrc.0);
                if let Some(b) = block {
                    rr = rr.add_report_block(b);
                }
                Compound::builder().add_packet(rr).add_packet(sdes)
            }
        };
        let size = compound.calculate_size()?;
        let start = out.len();
        out.resize(start + size, 0);
        // `out[start..]` is exactly `size` bytes long.
        let written = compound.write_into(&mut out[start..])?;
        out.truncate(start + written);
        if sender.is_some() {
            // sent_sr_next < SENT_SR_MEMORY: kept by the modulo below.
            self.sent_srs[self.sent_sr_next] = Some((ntp_middle(ntp), now));
            self.sent_sr_next = (self.sent_sr_next + 1) % SENT_SR_MEMORY;
        }
        Ok(())
    }

    /// Append a BYE for our SSRC (end of call), preceded by an RR as RFC 3550 requires.
    pub fn write_bye(&mut self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let compound = Compound::builder()
            .add_packet(ReceiverReport::builder(self.local_ssrc.0))
            .add_packet(Bye::builder().add_source(self.local_ssrc.0));
        let size = compound.calculate_size()?;
        let start = out.len();
        out.resize(start + size, 0);
        let written = compound.write_into(&mut out[start..])?;
        out.truncate(start + written);
        Ok(())
    }

    /// Parse one compound RTCP packet from the peer, received at `now`.
    pub fn handle(&mut self, now: Instant, bytes: &[u8]) -> Result<RtcpReceived, RtcpError> {
        match self.parse(now, bytes) {
            Ok(r) => {
                self.counters.packets_received += 1;
                if r.quality.is_some() {
                    self.quality = r.quality;
                }
                Ok(r)
            }
            Err(e) => {
                self.counters.malformed += 1;
                Err(e)
            }
        }
    }

    fn parse(&mut self, now: Instant, bytes: &[u8]) -> Result<RtcpReceived, RtcpError> {
        let compound = Compound::parse(bytes)?;
        let mut received = RtcpReceived::default();
        // Parse everything first, so a malformed tail leaves no half-applied state.
        let mut peer_sr = None;
        for packet in compound {
            match packet? {
                Packet::Sr(sr) => {
                    let report = PeerSenderReport {
                        ssrc: Ssrc(sr.ssrc()),
                        ntp_timestamp: sr.ntp_timestamp(),
                        rtp_timestamp: sr.rtp_timestamp(),
                        packet_count: sr.packet_count(),
                        octet_count: sr.octet_count(),
                    };
                    received.sender_report = Some(report);
                    peer_sr = Some(ntp_middle(report.ntp_timestamp));
                    for block in sr.report_blocks() {
                        if let Some(q) = self.quality_from(now, sr.ssrc(), &block) {
                            received.quality = Some(q);
                        }
                    }
                }
                Packet::Rr(rr) => {
                    for block in rr.report_blocks() {
                        if let Some(q) = self.quality_from(now, rr.ssrc(), &block) {
                            received.quality = Some(q);
                        }
                    }
                }
                Packet::Bye(_) => received.bye = true,
                _ => {}
            }
        }
        if let Some(lsr) = peer_sr {
            self.last_peer_sr = Some((lsr, now));
        }
        Ok(received)
    }

    fn quality_from(
        &self,
        now: Instant,
        reporter: u32,
        block: &ReportBlock<'_>,
    ) -> Option<Quality> {
        if block.ssrc() != self.local_ssrc.0 {
            return None;
        }
        let lsr = block.last_sender_report_timestamp();
        let dlsr = block.delay_since_last_sender_report_timestamp();
        let rtt_ms = if lsr == 0 {
            None
        } else {
            self.sent_srs
                .iter()
                .flatten()
                .find(|(mid, _)| *mid == lsr)
                .map(|&(_, sent)| {
                    let total = now.saturating_duration_since(sent).as_secs_f64();
                    let delay = f64::from(dlsr) / 65536.0;
                    ((total - delay) * 1000.0).max(0.0)
                })
        };
        let raw = block.cumulative_lost() & 0x00FF_FFFF;
        // Sign-extend the 24-bit field.
        let cumulative_lost = ((raw << 8) as i32) >> 8;
        Some(Quality {
            reporter: Ssrc(reporter),
            fraction_lost: f64::from(block.fraction_lost()) / 256.0,
            cumulative_lost,
            jitter_ms: f64::from(block.interarrival_jitter()) * 1000.0
                / f64::from(self.config.clock_rate),
            rtt_ms,
        })
    }

    fn report_block(&self, now: Instant, r: ReceptionReport) -> rtcp_types::ReportBlockBuilder {
        let (lsr, dlsr) = match self.last_peer_sr {
            Some((lsr, at)) => {
                let units = now.saturating_duration_since(at).as_secs_f64() * 65536.0;
                (lsr, units.min(f64::from(u32::MAX)) as u32)
            }
            None => (0, 0),
        };
        ReportBlock::builder(r.ssrc.0)
            .fraction_lost(r.fraction_lost)
            .cumulative_lost((r.cumulative_lost as u32) & 0x00FF_FFFF)
            .extended_sequence_number(r.extended_highest_seq)
            .interarrival_jitter(r.jitter)
            .last_sender_report_timestamp(lsr)
            .delay_since_last_sender_report_timestamp(dlsr)
    }
}

/// `base` times a factor uniform in [0.5, 1.5) (RFC 3550 6.3.1).
fn randomised(rng: &mut SmallRng, base: Duration) -> Duration {
    let factor = 0.5 + f64::from(rng.next_u32()) / (f64::from(u32::MAX) + 1.0);
    base.mul_f64(factor)
}

/// 64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low word).
pub fn ntp_timestamp(wall: SystemTime) -> u64 {
    let since = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    // Seconds wrap at the NTP era boundary (2036), as the field does.
    let secs = since.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xFFFF_FFFF;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp (the LSR field).
pub fn ntp_middle(ntp: u64) -> u32 {
    ((ntp >> 16) & 0xFFFF_FFFF) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer_rr(peer_ssrc: u32, about: u32, lsr: u32, dlsr: u32, cumulative: u32) -> Vec<u8> {
        let rr = ReceiverReport::builder(peer_ssrc).add_report_block(
            ReportBlock::builder(about)
                .fraction_lost(64)
                .cumulative_lost(cumulative)
                .extended_sequence_number(1000)
                .interarrival_jitter(160)
                .last_sender_report_timestamp(lsr)
                .delay_since_last_sender_report_timestamp(dlsr),
        );
        let mut buf = vec![0; rr.calculate_size().unwrap()];
        rr.write_into(&mut buf).unwrap();
        buf
    }

    #[test]
    fn ntp_conversion() {
        let wall = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        let ntp = ntp_timestamp(wall);
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xFFFF_FFFF, 1 << 31);
        assert_eq!(
            ntp_middle(ntp),
            (((1_700_000_000 + NTP_UNIX_OFFSET) as u32) << 16) | 0x8000
        );
    }

    #[test]
    fn schedule_is_randomised_within_bounds_and_seeded() {
        let t0 = Instant::now();
        let mut a = RtcpSession::new(
            RtcpConfig {
                seed: 9,
                ..Default::default()
            },
            Ssrc(1),
            t0,
        );
        let b = RtcpSession::new(
            RtcpConfig {
                seed: 9,
                ..Default::default()
            },
            Ssrc(1),
            t0,
        );
        assert_eq!(a.poll_timeout(), b.poll_timeout());
        let first = a.poll_timeout() - t0;
        assert!(first >= Duration::from_millis(1250) && first < Duration::from_millis(3750));
        let mut gaps = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..200 {
            let due = a.poll_timeout();
            assert!(!a.is_due(due - Duration::from_nanos(1)));
            buf.clear();
            a.write_report(due, SystemTime::UNIX_EPOCH, None, None, &mut buf)
                .unwrap();
            gaps.push(a.poll_timeout() - due);
        }
        assert!(
            gaps.iter()
                .all(|g| *g >= Duration::from_millis(2500) && *g < Duration::from_millis(7500))
        );
        let mean = gaps.iter().sum::<Duration>() / 200;
        assert!(
            mean > Duration::from_millis(4500) && mean < Duration::from_millis(5500),
            "{mean:?}"
        );
        assert!(gaps.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn sender_report_round_trip_and_rtt() {
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut rtcp = RtcpSession::new(RtcpConfig::default(), Ssrc(0xAAAA), t0);
        let reception = ReceptionReport {
            ssrc: Ssrc(0xBBBB),
            fraction_lost: 12,
            cumulative_lost: -3,
            extended_highest_seq: 70_000,
            jitter: 40,
        };
        let sender = SenderInfo {
            rtp_timestamp: 1234,
            packet_count: 250,
            octet_count: 40_000,
        };
        let mut buf = Vec::new();
        rtcp.write_report(t0, wall0, Some(sender), Some(reception), &mut buf)
            .unwrap();
        // Parse it back as the peer would.
        let mut seen_sdes = false;
        for p in Compound::parse(&buf).unwrap() {
            match p.unwrap() {
                Packet::Sr(sr) => {
                    assert_eq!(sr.ssrc(), 0xAAAA);
                    assert_eq!(sr.ntp_timestamp(), ntp_timestamp(wall0));
                    assert_eq!(
                        (sr.rtp_timestamp(), sr.packet_count(), sr.octet_count()),
                        (1234, 250, 40_000)
                    );
                    let blocks: Vec<_> = sr.report_blocks().collect();
                    assert_eq!(blocks.len(), 1);
                    assert_eq!(blocks[0].ssrc(), 0xBBBB);
                    assert_eq!(blocks[0].fraction_lost(), 12);
                    assert_eq!(blocks[0].cumulative_lost(), 0xFF_FFFD);
                    assert_eq!(blocks[0].extended_sequence_number(), 70_000);
                    assert_eq!(blocks[0].interarrival_jitter(), 40);
                    assert_eq!(blocks[0].last_sender_report_timestamp(), 0);
                }
                Packet::Sdes(sdes) => {
                    let chunk = sdes.chunks().next().unwrap();
                    let item = chunk.items().next().unwrap();
                    assert_eq!(item.value(), b"guichet");
                    seen_sdes = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(seen_sdes);
        // The peer answers 120 ms later with LSR = our SR and DLSR = 100 ms: RTT 20 ms.
        let lsr = ntp_middle(ntp_timestamp(wall0));
        let rr = peer_rr(0xBBBB, 0xAAAA, lsr, 6554, 0xFF_FFFE);
        let got = rtcp.handle(t0 + Duration::from_millis(120), &rr).unwrap();
        let q = got.quality.unwrap();
        assert_eq!(q.reporter, Ssrc(0xBBBB));
        assert_eq!(q.fraction_lost, 0.25);
        assert_eq!(q.cumulative_lost, -2);
        assert_eq!(q.jitter_ms, 20.0);
        let rtt = q.rtt_ms.unwrap();
        assert!((rtt - 20.0).abs() < 0.1, "{rtt}");
        assert_eq!(rtcp.quality(), Some(q));
        // A block about someone else, or without LSR, gives no RTT / no quality.
        let other = peer_rr(0xBBBB, 0xCCCC, lsr, 0, 0);
        assert_eq!(rtcp.handle(t0, &other).unwrap().quality, None);
        let no_lsr = peer_rr(0xBBBB, 0xAAAA, 0, 0, 5);
        assert_eq!(
            rtcp.handle(t0, &no_lsr).unwrap().quality.unwrap().rtt_ms,
            None
        );
    }

    #[test]
    fn our_report_echoes_peer_sr() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(RtcpConfig::default(), Ssrc(1), t0);
        let peer_ntp = ntp_timestamp(UNIX_EPOCH + Duration::from_secs(1_750_000_000));
        let sr = SenderReport::builder(2)
            .ntp_timestamp(peer_ntp)
            .packet_count(10);
        let mut buf = vec![0; sr.calculate_size().unwrap()];
        sr.write_into(&mut buf).unwrap();
        let got = rtcp.handle(t0, &buf).unwrap();
        assert_eq!(got.sender_report.unwrap().packet_count, 10);
        let reception = ReceptionReport {
            ssrc: Ssrc(2),
            fraction_lost: 0,
            cumulative_lost: 0,
            extended_highest_seq: 10,
            jitter: 0,
        };
        let mut out = Vec::new();
        rtcp.write_report(
            t0 + Duration::from_millis(500),
            SystemTime::UNIX_EPOCH,
            None,
            Some(reception),
            &mut out,
        )
        .unwrap();
        let mut compound = Compound::parse(&out).unwrap();
        let Some(Ok(Packet::Rr(rr))) = compound.next() else {
            panic!("RR first")
        };
        let block = rr.report_blocks().next().unwrap();
        assert_eq!(block.last_sender_report_timestamp(), ntp_middle(peer_ntp));
        assert_eq!(block.delay_since_last_sender_report_timestamp(), 32768);
    }

    #[test]
    fn bye_is_reported_and_written() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(RtcpConfig::default(), Ssrc(1), t0);
        let mut out = Vec::new();
        rtcp.write_bye(&mut out).unwrap();
        let mut other = RtcpSession::new(RtcpConfig::default(), Ssrc(2), t0);
        assert!(other.handle(t0, &out).unwrap().bye);
    }

    #[test]
    fn malformed_is_counted() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(RtcpConfig::default(), Ssrc(1), t0);
        assert!(rtcp.handle(t0, &[]).is_err());
        assert!(rtcp.handle(t0, &[0x80, 201, 0, 7, 1, 2]).is_err());
        assert!(rtcp.handle(t0, &[0x40, 201, 0, 1, 0, 0, 0, 1]).is_err());
        assert_eq!(rtcp.counters().malformed, 3);
        assert_eq!(rtcp.counters().packets_received, 0);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), v2 in any::<bool>()) {
            let t0 = Instant::now();
            let mut rtcp = RtcpSession::new(RtcpConfig::default(), Ssrc(1), t0);
            let mut data = data;
            if v2 && !data.is_empty() {
                data[0] = 0x80 | (data[0] & 0x3F); // get past the version check more often
            }
            let ok = rtcp.handle(t0, &data).is_ok();
            let c = rtcp.counters();
            prop_assert_eq!(c.malformed + c.packets_received, 1);
            prop_assert_eq!(ok, c.packets_received == 1);
        }
    }
}
