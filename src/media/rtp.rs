//! RTP (RFC 3550) for one call leg: [`RtpSender`] writes packets, [`RtpReceiver`] validates,
//! latches and tracks what the peer sends. Sans-IO: no socket, no clock.
//!
//! # Sender
//! [`RtpSender`] owns the SSRC (from a seeded generator), the sequence number and the RTP
//! timestamp (both random at start, RFC 3550 section 5.1). [`RtpSender::packetize`] appends
//! one packet to a caller buffer (no allocation once that buffer has grown) and advances the
//! timestamp by the frame's sample count; [`RtpSender::advance`] moves the timestamp across
//! silence when nothing is sent, so the timeline stays true to the media clock. The caller
//! sets the marker bit on the first packet of each talk spurt (RFC 3551 section 4.1).
//! [`RtpSender::event`] writes RFC 4733 telephone-event packets: one timestamp for the whole
//! event, marker on its first packet, and the end packet three times.
//!
//! The 12-byte header is written by hand rather than with `rtp_types::RtpPacketBuilder`: we
//! never send CSRCs, extensions or padding, so it is 12 fixed bytes pushed onto the caller's
//! `Vec` with no size pass and no builder generics, which is the hot path of every call.
//!
//! # Receiver
//! [`RtpReceiver::handle`] takes `(now, from, bytes)` and answers a [`Received`]: audio
//! (with the payload as a range into `bytes`, zero-copy), a parsed telephone event, or
//! `Ignored(reason)` (counted per reason). Parsing uses `rtp_types` (fuzzed, zero-copy).
//!
//! Symmetric RTP latching: the receiver locks onto the source address that sends
//! `latch_after` (default 2) consecutive valid packets (consecutive sequence numbers, one
//! SSRC, an expected payload type). Up to four competing sources are counted separately, so
//! a stray stream interleaved with the real one cannot stop it from latching. After that, packets from any other address are ignored (RTP bleed protection),
//! unless the latched source has been silent for `relatch_after`, or the owner calls
//! [`RtpReceiver::unlatch`] (e.g. after a re-INVITE that moved the peer).
//!
//! Sequence tracking follows RFC 3550 appendix A.1 (wrap-around, misorder window, resync
//! after two packets in a row beyond the dropout limit), plus a 128-packet window that tells
//! duplicates from late packets. Interarrival jitter follows appendix A.8.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::media::rtp::{Received, ReceiverConfig, RtpReceiver, RtpSender, SenderConfig};
//!
//! let mut tx = RtpSender::new(SenderConfig { seed: 7, ..SenderConfig::default() });
//! let mut rx = RtpReceiver::new(ReceiverConfig::default(), Instant::now());
//! let peer = "192.0.2.1:4000".parse().unwrap();
//! let t0 = Instant::now();
//! let mut buf = Vec::with_capacity(172);
//! for i in 0..3u32 {
//!     buf.clear();
//!     tx.packetize(&[0xFF; 160], 160, i == 0, &mut buf).unwrap();
//!     let now = t0 + Duration::from_millis(20 * u64::from(i));
//!     match rx.handle(now, peer, &buf) {
//!         Received::Audio(a) => assert_eq!(buf[a.payload].len(), 160),
//!         Received::Ignored(reason) => assert_eq!(i, 0, "first packet only latches: {reason:?}"),
//!         Received::Event(_) => unreachable!(),
//!     }
//! }
//! assert_eq!(rx.latched(), Some(peer));
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rtp_types::RtpPacket;

/// Length of the fixed RTP header we write (no CSRC, no extension).
pub const HEADER_LEN: usize = 12;
/// Largest payload we accept to send: keeps packets under a 1500-byte MTU with room for
/// IP/UDP headers.
pub const MAX_PAYLOAD: usize = 1400;
/// PCMU static payload type (RFC 3551).
pub const PT_PCMU: u8 = 0;
/// PCMA static payload type (RFC 3551).
pub const PT_PCMA: u8 = 8;
/// The dynamic payload type most trunks use for telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// How many end packets RFC 4733 section 2.5.1.4 asks for.
const EVENT_END_REPEATS: u8 = 3;

/// Errors of this module. Only the sender can fail; the receiver never errors, it counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("payload of {0} bytes is larger than {MAX_PAYLOAD}")]
    PayloadTooLarge(usize),
    #[error("payload type {0} is not in 0..=127")]
    InvalidPayloadType(u8),
    #[error("telephone-event code {0} is larger than 255")]
    InvalidEvent(u16),
    #[error("volume {0} is larger than 63 (-63 dBm0)")]
    InvalidVolume(u8),
    #[error("no telephone-event payload type configured")]
    NoEventPayloadType,
}

/// A synchronization source identifier (RFC 3550 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Sender
// ---------------------------------------------------------------------------------------

/// How to build an [`RtpSender`].
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Seed for SSRC, initial sequence number and timestamp. Give each call its own seed
    /// (from the engine's seeded generator) so two calls never share an SSRC by construction.
    pub seed: u64,
    /// Audio payload type (0 for PCMU, 8 for PCMA).
    pub payload_type: u8,
    /// Payload type negotiated for telephone-event, if any.
    pub event_payload_type: Option<u8>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            seed: 0,
            payload_type: PT_PCMU,
            event_payload_type: Some(PT_TELEPHONE_EVENT),
        }
    }
}

/// What [`RtpSender::event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSent {
    /// An update (or the first packet) of an event in progress was written.
    Update,
    /// An end packet was written; `repeats_left` more should follow, one per update interval.
    End { repeats_left: u8 },
    /// The event already ended three times; nothing was written.
    AlreadyEnded,
}

#[derive(Debug, Clone, Copy)]
struct EventInProgress {
    code: u8,
    timestamp: u32,
    /// Duration in the last packet sent.
    duration: u16,
    ends_sent: u8,
}

/// Writes RTP packets for one outgoing stream.
#[derive(Debug)]
pub struct RtpSender {
    ssrc: Ssrc,
    payload_type: u8,
    event_payload_type: Option<u8>,
    next_seq: u16,
    next_timestamp: u32,
    last_timestamp: Option<u32>,
    packets: u32,
    octets: u32,
    event: Option<EventInProgress>,
}

impl RtpSender {
    /// A sender with SSRC, first sequence number and first timestamp drawn from `config.seed`.
    pub fn new(config: SenderConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let ssrc = Ssrc(rng.next_u32());
        // Random starts (RFC 3550 5.1); the sequence number below 2^15 leaves room
        // before the first wrap so peers doing probation see an ordinary start.
        let next_seq = (rng.next_u32() & 0x7FFF) as u16;
        let next_timestamp = rng.next_u32();
        RtpSender {
            ssrc,
            payload_type: config.payload_type & 0x7F,
            event_payload_type: config.event_payload_type.map(|pt| pt & 0x7F),
            next_seq,
            next_timestamp,
            last_timestamp: None,
            packets: 0,
            octets: 0,
            event: None,
        }
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Timestamp the next audio packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Timestamp of the last packet sent, if any (for the RTCP sender report).
    pub fn last_timestamp(&self) -> Option<u32> {
        self.last_timestamp
    }

    /// Packets sent so far (RTCP SR sender's packet count, wraps like the field).
    pub fn packet_count(&self) -> u32 {
        self.packets
    }

    /// Payload octets sent so far (RTCP SR sender's octet count, wraps like the field).
    pub fn octet_count(&self) -> u32 {
        self.octets
    }

    /// Move the timestamp on by `samples` without sending (silence, skipped pacing slots).
    pub fn advance(&mut self, samples: u32) {
        self.next_timestamp = self.next_timestamp.wrapping_add(samples);
    }

    /// Append one audio packet to `out` and advance the timestamp by `samples`.
    /// `marker` goes on the first packet of a talk spurt.
    pub fn packetize(
        &mut self,
        payload: &[u8],
        samples: u32,
        marker: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), RtpError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(RtpError::PayloadTooLarge(payload.len()));
        }
        if let Some(ev) = self.event.filter(|ev| ev.ends_sent == 0) {
            // Audio interrupts an event that never ended: do not overlap it.
            self.skip_past(ev);
        }
        let ts = self.next_timestamp;
        self.write(self.payload_type, marker, ts, payload, out);
        self.next_timestamp = ts.wrapping_add(samples);
        Ok(())
    }

    /// Append one RFC 4733 telephone-event packet for `code` (0-9, 10 = `*`, 11 = `#`,
    /// 12-15 = A-D) to `out`.
    ///
    /// A new code (or a new call after the previous event ended) starts an event at the
    /// current audio timestamp with the marker bit; updates keep that timestamp and carry the
    /// growing `duration` (in timestamp units). Call with `end = true` three times, once per
    /// update interval: the third end packet closes the event and moves the audio timestamp
    /// past it. Every packet gets its own sequence number.
    pub fn event(
        &mut self,
        code: u8,
        duration: u16,
        end: bool,
        volume: u8,
        out: &mut Vec<u8>,
    ) -> Result<EventSent, RtpError> {
        let pt = self
            .event_payload_type
            .ok_or(RtpError::NoEventPayloadType)?;
        if volume > 63 {
            return Err(RtpError::InvalidVolume(volume));
        }
        let continuing = match self.event {
            // Updates, and the first end packet, of the event in progress.
            Some(ev) if ev.code == code && ev.ends_sent == 0 => Some(ev),
            // Repeats of its end packet.
            Some(ev) if ev.code == code && end && ev.ends_sent < EVENT_END_REPEATS => Some(ev),
            Some(ev) if ev.code == code && end => return Ok(EventSent::AlreadyEnded),
            _ => None,
        };
        let (mut state, first) = match continuing {
            Some(ev) => (ev, false),
            None => {
                // A new event (a new key, or the same key pressed again) starts after the
                // previous one, whether or not its end was sent.
                if let Some(prev) = self.event {
                    self.skip_past(prev);
                }
                let ev = EventInProgress {
                    code,
                    timestamp: self.next_timestamp,
                    duration: 0,
                    ends_sent: 0,
                };
                (ev, true)
            }
        };
        let mut payload = [0u8; 4];
        payload[0] = code;
        payload[1] = (if end { 0x80 } else { 0 }) | (volume & 0x3F);
        payload[2..4].copy_from_slice(&duration.to_be_bytes());
        self.write(pt, first, state.timestamp, &payload, out);
        state.duration = duration;
        let result = if end {
            state.ends_sent += 1;
            // The event covered [timestamp, timestamp + duration): audio resumes after it.
            self.skip_past(state);
            EventSent::End {
                repeats_left: EVENT_END_REPEATS - state.ends_sent,
            }
        } else {
            EventSent::Update
        };
        self.event = Some(state);
        Ok(result)
    }

    /// Move the audio timestamp past `ev` (never backwards).
    fn skip_past(&mut self, ev: EventInProgress) {
        let after = ev.timestamp.wrapping_add(u32::from(ev.duration));
        let ahead = after.wrapping_sub(self.next_timestamp);
        if ahead != 0 && ahead < 1 << 31 {
            self.next_timestamp = after;
        }
    }

    fn write(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8], out: &mut Vec<u8>) {
        let seq = self.next_seq;
        let mut header = [0u8; HEADER_LEN];
        header[0] = 0x80; // V=2, P=0, X=0, CC=0
        header[1] = (if marker { 0x80 } else { 0 }) | pt;
        header[2..4].copy_from_slice(&seq.to_be_bytes());
        header[4..8].copy_from_slice(&ts.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        out.reserve(HEADER_LEN + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        self.next_seq = seq.wrapping_add(1);
        self.last_timestamp = Some(ts);
        self.packets = self.packets.wrapping_add(1);
        // payload.len() <= MAX_PAYLOAD (checked by callers), fits u32.
        self.octets = self.octets.wrapping_add(payload.len() as u32);
    }
}

// ---------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------

/// How to build an [`RtpReceiver`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Audio payload type negotiated in SDP.
    pub audio_payload_type: u8,
    /// Telephone-event payload type negotiated in SDP, if any.
    pub event_payload_type: Option<u8>,
    /// RTP clock rate of the audio payload (8000 for G.711).
    pub clock_rate: u32,
    /// Consecutive valid packets from one source (same address, same SSRC) needed to latch.
    pub latch_after: u8,
    /// Silence of the latched source after which another source may latch.
    pub relatch_after: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            audio_payload_type: PT_PCMU,
            event_payload_type: Some(PT_TELEPHONE_EVENT),
            clock_rate: 8000,
            latch_after: 2,
            relatch_after: Duration::from_secs(2),
        }
    }
}

/// Why a datagram was not delivered. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// Not parseable as RTP (too short, version not 2, bad padding or lengths).
    Malformed,
    /// Looks like RTCP (payload types 72-76 with the marker bit are SR/RR/SDES/BYE/APP).
    Rtcp,
    /// Payload type not negotiated (comfort noise, a codec we did not accept...).
    UnexpectedPayloadType,
    /// Header only, or a telephone-event payload shorter than 4 bytes.
    BadPayload,
    /// A valid packet used to latch but not delivered yet.
    Latching,
    /// From a source other than the latched one (RTP bleed, or a stray stream).
    OtherSource,
    /// Already received (same extended sequence number).
    Duplicate,
    /// A sequence jump beyond the dropout limit; the second in a row resyncs.
    SequenceJump,
    /// Older than the misorder window tracks.
    TooOld,
}

impl IgnoreReason {
    const ALL: [IgnoreReason; 9] = [
        IgnoreReason::Malformed,
        IgnoreReason::Rtcp,
        IgnoreReason::UnexpectedPayloadType,
        IgnoreReason::BadPayload,
        IgnoreReason::Latching,
        IgnoreReason::OtherSource,
        IgnoreReason::Duplicate,
        IgnoreReason::SequenceJump,
        IgnoreReason::TooOld,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// A delivered audio packet. `payload` indexes the bytes given to [`RtpReceiver::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    pub seq: u16,
    /// Extended (cycle-counted) sequence number, for ordering across wraps.
    pub ext_seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: Range<usize>,
    /// Arrived after a higher sequence number (reordered), still delivered.
    pub late: bool,
}

/// A parsed RFC 4733 telephone-event packet, as received (updates and the three end
/// packets all arrive; deduplicate by `timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub seq: u16,
    /// Event code: 0-9, 10 = `*`, 11 = `#`, 12-15 = A-D, others per RFC 4734.
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
    /// Start of the event; the same in every packet of one event.
    pub timestamp: u32,
    pub marker: bool,
}

/// What [`RtpReceiver::handle`] made of one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Audio(AudioPacket),
    Event(TelephoneEvent),
    Ignored(IgnoreReason),
}

/// Counters and derived statistics of the received stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiverStats {
    /// Packets delivered (audio and events), excluding duplicates.
    pub received: u64,
    /// Packets expected from the sequence numbers (RFC 3550 A.3).
    pub expected: u64,
    /// expected - received; negative if the peer duplicated packets we could not tell apart.
    pub lost: i64,
    pub late: u64,
    pub duplicates: u64,
    pub ignored_total: u64,
    pub ssrc_changes: u64,
    pub relatches: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// The same in milliseconds.
    pub jitter_ms: f64,
}

/// Fields of an RTCP report block that come from the receiver (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionReport {
    pub ssrc: Ssrc,
    pub fraction_lost: u8,
    /// Clamped to the 24-bit signed range of the field.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
}

/// How many competing sources latching keeps track of at once.
const LATCH_CANDIDATES: usize = 4;

/// A source trying to latch: its address, SSRC, last sequence number, and how many
/// consecutive (in sequence) valid packets it has sent.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    last_seq: u16,
    count: u8,
}

#[derive(Debug, Clone, Copy)]
enum Latch {
    /// Looking for a source. Each candidate is counted on its own, so a stray stream
    /// interleaved with the real one cannot keep it from latching.
    Searching {
        candidates: [Option<Candidate>; LATCH_CANDIDATES],
        /// Next slot to reuse when all are taken (round robin).
        evict: usize,
    },
    Latched {
        addr: SocketAddr,
    },
}

/// RFC 3550 A.1 per-source sequence state, with a duplicate window.
#[derive(Debug, Clone)]
struct SeqState {
    ssrc: u32,
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    bad_seq: u32,
    received: u64,
    /// Bit i set: extended sequence (ext_max - i) was received.
    window: u128,
    expected_prior: u64,
    received_prior: u64,
    /// Relative transit of the last audio packet, in timestamp units (A.8).
    transit: Option<u32>,
    /// Jitter scaled by 16 (A.8 integer form).
    jitter_q4: u32,
}

enum SeqOutcome {
    InOrder(u64),
    Late(u64),
    Duplicate,
    TooOld,
    Jump,
    Resynced(u64),
}

impl SeqState {
    fn new(ssrc: u32, seq: u16) -> Self {
        SeqState {
            ssrc,
            max_seq: seq,
            cycles: 0,
            base_seq: u64::from(seq),
            bad_seq: RTP_SEQ_MOD + 1,
            received: 1,
            window: 1,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
        }
    }

    fn ext_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn update(&mut self, seq: u16) -> SeqOutcome {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta == 0 {
            return SeqOutcome::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += u64::from(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
            self.window = if udelta >= 128 {
                0
            } else {
                self.window << udelta
            };
            self.window |= 1;
            self.received += 1;
            return SeqOutcome::InOrder(self.ext_max());
        }
        if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two packets in a row after a big jump: the source restarted (A.1).
                let ssrc = self.ssrc;
                *self = SeqState::new(ssrc, seq);
                return SeqOutcome::Resynced(self.ext_max());
            }
            self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return SeqOutcome::Jump;
        }
        // Reordered or duplicate, within MAX_MISORDER behind max_seq.
        let back = self.max_seq.wrapping_sub(seq);
        if back >= 128 {
            return SeqOutcome::TooOld;
        }
        let ext_max = self.ext_max();
        let Some(ext) = ext_max.checked_sub(u64::from(back)) else {
            return SeqOutcome::TooOld;
        };
        if ext < self.base_seq {
            return SeqOutcome::TooOld;
        }
        let bit = 1u128 << back;
        if self.window & bit != 0 {
            return SeqOutcome::Duplicate;
        }
        self.window |= bit;
        self.received += 1;
        SeqOutcome::Late(ext)
    }

    fn expected(&self) -> u64 {
        // ext_max >= base_seq: base is the first ext seq and ext_max only grows.
        self.ext_max().saturating_sub(self.base_seq) + 1
    }

    fn update_jitter(&mut self, arrival_ts: u32, rtp_ts: u32) {
        let transit = arrival_ts.wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // A.8: J += (|D| - J) / 16, kept scaled by 16. i64 so no step can overflow.
            let j = i64::from(self.jitter_q4);
            let next = j + i64::from(d) - ((j + 8) >> 4);
            self.jitter_q4 = next.clamp(0, i64::from(u32::MAX)) as u32;
        }
        self.transit = Some(transit);
    }
}

/// Validates, latches and tracks one incoming RTP stream.
#[derive(Debug)]
pub struct RtpReceiver {
    config: ReceiverConfig,
    epoch: Instant,
    latch: Latch,
    seq: Option<SeqState>,
    last_packet_at: Instant,
    ignored: [u64; IgnoreReason::ALL.len()],
    late: u64,
    duplicates: u64,
    ssrc_changes: u64,
    relatches: u64,
}

impl RtpReceiver {
    /// A receiver created at `now` (the media timeout counts from here until a packet comes).
    pub fn new(config: ReceiverConfig, now: Instant) -> Self {
        let mut config = config;
        config.latch_after = config.latch_after.max(1);
        config.clock_rate = config.clock_rate.max(1);
        RtpReceiver {
            config,
            epoch: now,
            latch: Latch::Searching {
                candidates: [None; LATCH_CANDIDATES],
                evict: 0,
            },
            seq: None,
            last_packet_at: now,
            ignored: [0; IgnoreReason::ALL.len()],
            late: 0,
            duplicates: 0,
            ssrc_changes: 0,
            relatches: 0,
        }
    }

    /// The latched source address, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        match self.latch {
            Latch::Latched { addr } => Some(addr),
            Latch::Searching { .. } => None,
        }
    }

    /// SSRC of the stream being tracked, if any.
    pub fn remote_ssrc(&self) -> Option<Ssrc> {
        self.seq.as_ref().map(|s| Ssrc(s.ssrc))
    }

    /// Forget the latched source (re-INVITE moved the peer): the next source to send
    /// `latch_after` valid packets is latched. Statistics are kept.
    pub fn unlatch(&mut self) {
        if matches!(self.latch, Latch::Latched { .. }) {
            self.latch = Latch::Searching {
                candidates: [None; LATCH_CANDIDATES],
                evict: 0,
            };
        }
    }

    /// Change the negotiated payload types (re-INVITE).
    pub fn set_payload_types(&mut self, audio: u8, event: Option<u8>) {
        self.config.audio_payload_type = audio;
        self.config.event_payload_type = event;
    }

    /// Time since the last delivered packet (or since creation), for the media timeout.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_packet_at)
    }

    /// When the last packet was delivered (or the receiver was created).
    pub fn last_packet_at(&self) -> Instant {
        self.last_packet_at
    }

    /// How many datagrams were ignored for `reason`.
    pub fn ignored(&self, reason: IgnoreReason) -> u64 {
        // index() < ALL.len() == ignored.len(): every variant is listed in ALL.
        self.ignored[reason.index()]
    }

    /// Counters and derived statistics.
    pub fn stats(&self) -> ReceiverStats {
        let (received, expected, jitter) = match &self.seq {
            Some(s) => (s.received, s.expected(), s.jitter_q4 >> 4),
            None => (0, 0, 0),
        };
        ReceiverStats {
            received,
            expected,
            lost: expected as i64 - received as i64,
            late: self.late,
            duplicates: self.duplicates,
            ignored_total: self.ignored.iter().sum(),
            ssrc_changes: self.ssrc_changes,
            relatches: self.relatches,
            jitter,
            jitter_ms: f64::from(jitter) * 1000.0 / f64::from(self.config.clock_rate),
        }
    }

    /// The receiver part of an RTCP report block, and start a new reporting interval
    /// (the fraction lost covers the time since the previous call). `None` before any packet.
    pub fn reception_report(&mut self) -> Option<ReceptionReport> {
        let s = self.seq.as_mut()?;
        let expected = s.expected();
        let expected_interval = expected.saturating_sub(s.expected_prior);
        let received_interval = s.received.saturating_sub(s.received_prior);
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval == 0 {
            0
        } else {
            // lost_interval <= expected_interval, so the quotient is <= 256; clamp to 255.
            ((lost_interval << 8) / expected_interval).min(255) as u8
        };
        let cumulative = expected as i64 - s.received as i64;
        Some(ReceptionReport {
            ssrc: Ssrc(s.ssrc),
            fraction_lost,
            cumulative_lost: cumulative.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            extended_highest_seq: s.ext_max() as u32,
            jitter: s.jitter_q4 >> 4,
        })
    }

    fn ignore(&mut self, reason: IgnoreReason) -> Received {
        // index() < ALL.len() == ignored.len(): every variant is listed in ALL.
        self.ignored[reason.index()] += 1;
        Received::Ignored(reason)
    }

    /// Handle one datagram that arrived at `now` from `from`.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Received {
        let Ok(packet) = RtpPacket::parse(bytes) else {
            return self.ignore(IgnoreReason::Malformed);
        };
        let pt = packet.payload_type();
        if (72..=76).contains(&pt) && packet.marker_bit() {
            return self.ignore(IgnoreReason::Rtcp);
        }
        let is_event = self.config.event_payload_type == Some(pt);
        if pt != self.config.audio_payload_type && !is_event {
            return self.ignore(IgnoreReason::UnexpectedPayloadType);
        }
        let payload_len = packet.payload_len();
        if payload_len == 0 || (is_event && payload_len < 4) {
            return self.ignore(IgnoreReason::BadPayload);
        }
        let ssrc = packet.ssrc();
        let seq = packet.sequence_number();

        // Latching and bleed protection.
        match self.latch {
            Latch::Latched { addr } if addr == from => {}
            Latch::Latched { .. } => {
                if self.silent_for(now) < self.config.relatch_after {
                    return self.ignore(IgnoreReason::OtherSource);
                }
                // The latched source went quiet: let another one prove itself.
                self.latch = Latch::Searching {
                    candidates: [None; LATCH_CANDIDATES],
                    evict: 0,
                };
                if let Some(r) = self.latching_step(from, ssrc, seq) {
                    return r;
                }
                self.relatches += 1;
            }
            Latch::Searching { .. } => {
                let had_latched = self.seq.is_some();
                if let Some(r) = self.latching_step(from, ssrc, seq) {
                    return r;
                }
                if had_latched {
                    self.relatches += 1;
                }
            }
        }

        // Sequence tracking (per SSRC; a new SSRC restarts it, RFC 3550 8.2).
        let outcome = match self.seq.as_mut() {
            Some(s) if s.ssrc == ssrc => s.update(seq),
            Some(_) | None => {
                if self.seq.is_some() {
                    self.ssrc_changes += 1;
                }
                let s = SeqState::new(ssrc, seq);
                let ext = s.ext_max();
                self.seq = Some(s);
                SeqOutcome::InOrder(ext)
            }
        };
        let (ext_seq, late) = match outcome {
            SeqOutcome::InOrder(e) | SeqOutcome::Resynced(e) => (e, false),
            SeqOutcome::Late(e) => {
                self.late += 1;
                (e, true)
            }
            SeqOutcome::Duplicate => {
                self.duplicates += 1;
                return self.ignore(IgnoreReason::Duplicate);
            }
            SeqOutcome::TooOld => return self.ignore(IgnoreReason::TooOld),
            SeqOutcome::Jump => return self.ignore(IgnoreReason::SequenceJump),
        };
        self.last_packet_at = now;
        let ts = packet.timestamp();
        let marker = packet.marker_bit();
        let offset = packet.payload_offset();
        if is_event {
            let p = packet.payload();
            // payload_len >= 4 was checked above.
            let (Some(&event), Some(&flags), Some(&d0), Some(&d1)) =
                (p.first(), p.get(1), p.get(2), p.get(3))
            else {
                return self.ignore(IgnoreReason::BadPayload);
            };
            return Received::Event(TelephoneEvent {
                seq,
                event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([d0, d1]),
                timestamp: ts,
                marker,
            });
        }
        if !late {
            let arrival = self.arrival_ts(now);
            if let Some(s) = self.seq.as_mut() {
                s.update_jitter(arrival, ts);
            }
        }
        Received::Audio(AudioPacket {
            seq,
            ext_seq,
            ts,
            marker,
            payload_type: pt,
            payload: offset..offset + payload_len,
            late,
        })
    }

    /// One step of the latching state machine while searching. `Some` means the packet
    /// is consumed by latching; `None` means the source is now latched and the packet
    /// should be delivered.
    fn latching_step(&mut self, from: SocketAddr, ssrc: u32, seq: u16) -> Option<Received> {
        let Latch::Searching {
            mut candidates,
            mut evict,
        } = self.latch
        else {
            return None;
        };
        let found = candidates
            .iter_mut()
            .flatten()
            .find(|c| c.addr == from && c.ssrc == ssrc);
        let count = match found {
            Some(c) => {
                c.count = if seq == c.last_seq.wrapping_add(1) {
                    c.count.saturating_add(1)
                } else {
                    1
                };
                c.last_seq = seq;
                c.count
            }
            None => {
                let fresh = Candidate {
                    addr: from,
                    ssrc,
                    last_seq: seq,
                    count: 1,
                };
                if let Some(slot) = candidates.iter_mut().find(|c| c.is_none()) {
                    *slot = Some(fresh);
                } else if let Some(slot) = candidates.get_mut(evict % LATCH_CANDIDATES) {
                    *slot = Some(fresh);
                    evict = (evict + 1) % LATCH_CANDIDATES;
                }
                1
            }
        };
        if count >= self.config.latch_after {
            self.latch = Latch::Latched { addr: from };
            None
        } else {
            self.latch = Latch::Searching { candidates, evict };
            Some(self.ignore(IgnoreReason::Latching))
        }
    }

    fn arrival_ts(&self, now: Instant) -> u32 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        // Wraps like an RTP timestamp; only differences are used.
        (nanos * u128::from(self.config.clock_rate) / 1_000_000_000) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, (if marker { 0x80 } else { 0 }) | pt];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn audio(seq: u16, ts: u32) -> Vec<u8> {
        packet(0, seq, ts, 0xABCD, false, &[0xFF; 160])
    }

    fn latched_rx(t0: Instant, peer: SocketAddr, seq0: u16) -> RtpReceiver {
        let mut rx = RtpReceiver::new(ReceiverConfig::default(), t0);
        assert_eq!(
            rx.handle(t0, peer, &audio(seq0, 0)),
            Received::Ignored(IgnoreReason::Latching)
        );
        assert!(matches!(
            rx.handle(t0, peer, &audio(seq0.wrapping_add(1), 160)),
            Received::Audio(_)
        ));
        rx
    }

    #[test]
    fn sender_writes_header_and_advances() {
        let mut tx = RtpSender::new(SenderConfig {
            seed: 42,
            ..Default::default()
        });
        let seq0 = tx.next_seq();
        let ts0 = tx.next_timestamp();
        let mut buf = Vec::new();
        tx.packetize(&[1, 2, 3], 160, true, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.marker_bit());
        assert_eq!(p.payload_type(), PT_PCMU);
        assert_eq!(p.sequence_number(), seq0);
        assert_eq!(p.timestamp(), ts0);
        assert_eq!(p.ssrc(), tx.ssrc().0);
        assert_eq!(p.payload(), &[1, 2, 3]);
        // Silence of 3 frames, then the next talk spurt.
        tx.advance(3 * 160);
        buf.clear();
        tx.packetize(&[0; 160], 160, true, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.sequence_number(), seq0.wrapping_add(1));
        assert_eq!(p.timestamp(), ts0.wrapping_add(4 * 160));
        assert_eq!(tx.packet_count(), 2);
        assert_eq!(tx.octet_count(), 163);
        assert!(
            tx.packetize(&[0; MAX_PAYLOAD + 1], 160, false, &mut buf)
                .is_err()
        );
    }

    #[test]
    fn seeds_are_deterministic_and_distinct() {
        let a = RtpSender::new(SenderConfig {
            seed: 1,
            ..Default::default()
        });
        let b = RtpSender::new(SenderConfig {
            seed: 1,
            ..Default::default()
        });
        let c = RtpSender::new(SenderConfig {
            seed: 2,
            ..Default::default()
        });
        assert_eq!(
            (a.ssrc(), a.next_seq(), a.next_timestamp()),
            (b.ssrc(), b.next_seq(), b.next_timestamp())
        );
        assert_ne!(a.ssrc(), c.ssrc());
    }

    #[test]
    fn no_allocation_once_buffer_is_large_enough() {
        let mut tx = RtpSender::new(SenderConfig::default());
        let mut buf = Vec::with_capacity(HEADER_LEN + 160);
        let ptr = buf.as_ptr();
        for _ in 0..1000 {
            buf.clear();
            tx.packetize(&[0; 160], 160, false, &mut buf).unwrap();
        }
        assert_eq!(buf.as_ptr(), ptr);
        assert_eq!(buf.capacity(), HEADER_LEN + 160);
    }

    #[test]
    fn rfc4733_event_keeps_timestamp_and_repeats_end() {
        let mut tx = RtpSender::new(SenderConfig {
            seed: 3,
            ..Default::default()
        });
        let start = tx.next_timestamp();
        let mut seqs = Vec::new();
        let mut buf = Vec::new();
        let mut parsed = Vec::new();
        for (i, (dur, end)) in [
            (160, false),
            (320, false),
            (480, true),
            (480, true),
            (480, true),
        ]
        .into_iter()
        .enumerate()
        {
            buf.clear();
            let r = tx.event(5, dur, end, 10, &mut buf).unwrap();
            if end {
                assert_eq!(
                    r,
                    EventSent::End {
                        repeats_left: (4 - i) as u8
                    }
                );
            }
            let p = RtpPacket::parse(&buf).unwrap();
            seqs.push(p.sequence_number());
            assert_eq!(p.payload_type(), PT_TELEPHONE_EVENT);
            assert_eq!(p.timestamp(), start, "same timestamp across the event");
            assert_eq!(p.marker_bit(), i == 0);
            parsed.push(p.payload().to_vec());
        }
        assert_eq!(parsed[0], vec![5, 10, 0, 160]);
        assert_eq!(parsed[4], vec![5, 0x80 | 10, 0x01, 0xE0]);
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1));
        }
        buf.clear();
        assert_eq!(
            tx.event(5, 480, true, 10, &mut buf).unwrap(),
            EventSent::AlreadyEnded
        );
        assert!(buf.is_empty());
        assert_eq!(
            tx.next_timestamp(),
            start.wrapping_add(480),
            "audio resumes after the event"
        );
        // The same digit again is a new event.
        buf.clear();
        tx.event(5, 160, false, 10, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker_bit());
        assert_eq!(p.timestamp(), start.wrapping_add(480));
        assert!(tx.event(5, 160, false, 64, &mut buf).is_err());
        // Pressed again right after one end packet: a new event after the first one.
        buf.clear();
        tx.event(5, 320, true, 10, &mut buf).unwrap();
        buf.clear();
        tx.event(5, 160, false, 10, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker_bit());
        assert_eq!(p.timestamp(), start.wrapping_add(480 + 320));
        // Audio after an event that never ended does not overlap it.
        buf.clear();
        tx.packetize(&[0; 160], 160, true, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.timestamp(), start.wrapping_add(480 + 320 + 160));
    }

    #[test]
    fn latches_after_two_and_blocks_bleed() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let other = addr("198.51.100.9:5000");
        let mut rx = RtpReceiver::new(ReceiverConfig::default(), t0);
        // One packet from the bleed source, then the peer: the counter restarts.
        assert_eq!(
            rx.handle(t0, other, &audio(1, 0)),
            Received::Ignored(IgnoreReason::Latching)
        );
        assert_eq!(
            rx.handle(t0, peer, &audio(10, 0)),
            Received::Ignored(IgnoreReason::Latching)
        );
        let r = rx.handle(t0 + Duration::from_millis(20), peer, &audio(11, 160));
        assert!(
            matches!(r, Received::Audio(AudioPacket { seq: 11, .. })),
            "{r:?}"
        );
        assert_eq!(rx.latched(), Some(peer));
        // Bleed from another source is ignored while the peer talks.
        for i in 0..10u16 {
            let now = t0 + Duration::from_millis(40 + 20 * u64::from(i));
            assert_eq!(
                rx.handle(now, other, &audio(100 + i, 0)),
                Received::Ignored(IgnoreReason::OtherSource)
            );
            assert!(matches!(
                rx.handle(now, peer, &audio(12 + i, 320 + 160 * u32::from(i))),
                Received::Audio(_)
            ));
        }
        assert_eq!(rx.ignored(IgnoreReason::OtherSource), 10);
        assert_eq!(rx.latched(), Some(peer));
    }

    #[test]
    fn interleaved_bleed_cannot_block_latching() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut rx = RtpReceiver::new(ReceiverConfig::default(), t0);
        let bleeders: Vec<SocketAddr> = (0..6)
            .map(|i| addr(&format!("198.51.100.{i}:5000")))
            .collect();
        // Packets from the peer alternate with single packets from many other sources.
        assert_eq!(
            rx.handle(t0, peer, &audio(10, 0)),
            Received::Ignored(IgnoreReason::Latching)
        );
        for b in &bleeders[..2] {
            assert_eq!(
                rx.handle(t0, *b, &audio(1, 0)),
                Received::Ignored(IgnoreReason::Latching)
            );
        }
        assert!(matches!(
            rx.handle(t0, peer, &audio(11, 160)),
            Received::Audio(_)
        ));
        assert_eq!(rx.latched(), Some(peer));
        // A source whose sequence numbers are not consecutive does not latch.
        let mut rx = RtpReceiver::new(ReceiverConfig::default(), t0);
        for seq in [1u16, 5, 9, 13] {
            assert_eq!(
                rx.handle(t0, peer, &audio(seq, 0)),
                Received::Ignored(IgnoreReason::Latching)
            );
        }
        assert_eq!(rx.latched(), None);
    }

    #[test]
    fn relatches_after_silence_or_unlatch() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let moved = addr("192.0.2.77:6000");
        let mut rx = latched_rx(t0, peer, 100);
        // 1 s of silence: still bleed-protected.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            rx.handle(t1, moved, &audio(500, 0)),
            Received::Ignored(IgnoreReason::OtherSource)
        );
        // After relatch_after (2 s) of silence, the new source latches after two packets.
        let t2 = t0 + Duration::from_secs(3);
        let p1 = packet(0, 500, 0, 0x7777, false, &[0; 160]);
        let p2 = packet(0, 501, 160, 0x7777, false, &[0; 160]);
        assert_eq!(
            rx.handle(t2, moved, &p1),
            Received::Ignored(IgnoreReason::Latching)
        );
        assert!(matches!(rx.handle(t2, moved, &p2), Received::Audio(_)));
        assert_eq!(rx.latched(), Some(moved));
        assert_eq!(rx.stats().relatches, 1);
        assert_eq!(rx.stats().ssrc_changes, 1);
        // Explicit unlatch (re-INVITE) allows the old address straight away.
        rx.unlatch();
        assert_eq!(
            rx.handle(t2, peer, &audio(102, 320)),
            Received::Ignored(IgnoreReason::Latching)
        );
        assert!(matches!(
            rx.handle(t2, peer, &audio(103, 480)),
            Received::Audio(_)
        ));
        assert_eq!(rx.latched(), Some(peer));
    }

    #[test]
    fn validates_version_pt_and_length() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut rx = latched_rx(t0, peer, 1);
        let mut v1 = audio(3, 320);
        v1[0] = 0x40;
        assert_eq!(
            rx.handle(t0, peer, &v1),
            Received::Ignored(IgnoreReason::Malformed)
        );
        assert_eq!(
            rx.handle(t0, peer, &[0x80, 0, 0]),
            Received::Ignored(IgnoreReason::Malformed)
        );
        assert_eq!(
            rx.handle(t0, peer, &packet(13, 3, 0, 0xABCD, false, &[0])),
            Received::Ignored(IgnoreReason::UnexpectedPayloadType)
        );
        assert_eq!(
            rx.handle(t0, peer, &packet(0, 3, 0, 0xABCD, false, &[])),
            Received::Ignored(IgnoreReason::BadPayload)
        );
        assert_eq!(
            rx.handle(t0, peer, &packet(101, 3, 0, 0xABCD, false, &[1, 2])),
            Received::Ignored(IgnoreReason::BadPayload)
        );
        // An RTCP receiver report on the RTP port (rtcp-mux style).
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            rx.handle(t0, peer, &rr),
            Received::Ignored(IgnoreReason::Malformed)
        );
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            rx.handle(t0, peer, &rr),
            Received::Ignored(IgnoreReason::Rtcp)
        );
        assert_eq!(
            rx.stats().ignored_total,
            8,
            "7 and the first latching packet"
        );
        assert_eq!(rx.stats().received, 1, "only the latching packet counted");
    }

    #[test]
    fn parses_telephone_event() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut rx = latched_rx(t0, peer, 1);
        let r = rx.handle(
            t0,
            peer,
            &packet(101, 3, 8000, 0xABCD, true, &[11, 0x80 | 7, 0x03, 0x20]),
        );
        assert_eq!(
            r,
            Received::Event(TelephoneEvent {
                seq: 3,
                event: 11,
                end: true,
                volume: 7,
                duration: 800,
                timestamp: 8000,
                marker: true
            })
        );
    }

    #[test]
    fn sequence_wraps_and_counts_loss_late_duplicates() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut rx = latched_rx(t0, peer, 65530);
        // 65531 delivered by latching. Send 65532..=65535, 0..=5 but skip 65534 and 2,
        // deliver 2 late after 4, and duplicate 3.
        let mut got = Vec::new();
        for seq in [65532u16, 65533, 65535, 0, 1, 3, 4, 2, 3, 5] {
            match rx.handle(t0, peer, &audio(seq, 0)) {
                Received::Audio(a) => got.push((a.seq, a.ext_seq, a.late)),
                Received::Ignored(IgnoreReason::Duplicate) => got.push((seq, 0, false)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got[3], (0, 65536, false));
        assert_eq!(got[7], (2, 65538, true));
        assert_eq!(got[8], (3, 0, false), "duplicate");
        let s = rx.stats();
        // The first latching packet (65530) is not counted: tracking starts at 65531.
        assert_eq!(s.expected, 65541 - 65531 + 1);
        assert_eq!(s.received, 10);
        assert_eq!(s.lost, 1, "only 65534 missing");
        assert_eq!(s.late, 1);
        assert_eq!(s.duplicates, 1);
        let rr = rx.reception_report().unwrap();
        assert_eq!(rr.extended_highest_seq, 65541);
        assert_eq!(rr.cumulative_lost, 1);
        assert_eq!(rr.fraction_lost, (256 / 11) as u8);
        // Next interval: nothing lost.
        rx.handle(t0, peer, &audio(6, 0));
        assert_eq!(rx.reception_report().unwrap().fraction_lost, 0);
    }

    #[test]
    fn big_jump_resyncs_on_second_packet() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut rx = latched_rx(t0, peer, 10);
        assert_eq!(
            rx.handle(t0, peer, &audio(20_000, 0)),
            Received::Ignored(IgnoreReason::SequenceJump)
        );
        assert!(matches!(
            rx.handle(t0, peer, &audio(20_001, 0)),
            Received::Audio(_)
        ));
        assert!(matches!(
            rx.handle(t0, peer, &audio(20_002, 0)),
            Received::Audio(_)
        ));
        assert_eq!(rx.stats().expected, 2);
        // A packet far behind is too old.
        assert_eq!(
            rx.handle(t0, peer, &audio(19_800, 0)),
            Received::Ignored(IgnoreReason::SequenceJump)
        );
    }

    #[test]
    fn jitter_follows_a8() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut rx = latched_rx(t0, peer, 1);
        // Perfectly paced: jitter 0.
        for i in 2..50u32 {
            rx.handle(
                t0 + Duration::from_millis(20 * u64::from(i - 1)),
                peer,
                &audio(i as u16, 160 * (i - 1)),
            );
        }
        assert_eq!(rx.stats().jitter, 0);
        // Alternate +-5 ms (40 ts units) around the schedule: |D| = 40 or 80 each time.
        let mut model = 0.0f64;
        let mut prev_transit: Option<f64> = None;
        for i in 50..400u32 {
            let offset: i64 = if i % 2 == 0 { 5 } else { -5 };
            let ms = 20 * i64::from(i - 1) + offset;
            let now = t0 + Duration::from_millis(ms as u64);
            rx.handle(now, peer, &audio(i as u16, 160 * (i - 1)));
            let transit = (ms as f64) * 8.0 - 160.0 * f64::from(i - 1);
            if let Some(p) = prev_transit {
                model += ((transit - p).abs() - model) / 16.0;
            }
            prev_transit = Some(transit);
        }
        let s = rx.stats();
        assert!(
            (f64::from(s.jitter) - model).abs() <= 2.0,
            "{} vs {model}",
            s.jitter
        );
        assert!((s.jitter_ms - model / 8.0).abs() < 0.3);
    }

    #[test]
    fn every_ignore_reason_has_its_counter() {
        for (i, r) in IgnoreReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn silent_for_tracks_last_packet() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let rx = latched_rx(t0, peer, 1);
        assert_eq!(
            rx.silent_for(t0 + Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300),
                                    seqs in proptest::collection::vec(any::<(u16, u8, bool)>(), 0..50)) {
            let t0 = Instant::now();
            let peer = addr("192.0.2.1:4000");
            let mut rx = RtpReceiver::new(ReceiverConfig::default(), t0);
            let mut ignored = u64::from(matches!(rx.handle(t0, peer, &data), Received::Ignored(_)));
            for (i, (seq, pt, from_peer)) in seqs.into_iter().enumerate() {
                let mut p = audio(seq, i as u32 * 160);
                p[1] = pt;
                let from = if from_peer { peer } else { addr("10.0.0.1:1") };
                match rx.handle(t0 + Duration::from_millis(i as u64 * 20), from, &p) {
                    Received::Audio(a) => prop_assert!(a.payload.end <= p.len()),
                    Received::Ignored(_) => ignored += 1,
                    Received::Event(_) => {}
                }
                let _ = rx.reception_report();
            }
            prop_assert_eq!(rx.stats().ignored_total, ignored);
        }
    }
}
