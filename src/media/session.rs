//! [`MediaSession`]: the RTP side of one call. It combines an [`RtpSender`], an
//! [`RtpReceiver`], the RTCP schedule ([`RtcpSession`]) and the media timeout. Sans-IO: the
//! owner (a media worker holding thousands of sessions) feeds it datagrams and time, and
//! sends what it returns.
//!
//! Inputs (each carries `now`):
//! - [`MediaSession::handle_rtp`] / [`MediaSession::handle_rtcp`]: a datagram from the
//!   socket. `handle_rtp` returns the [`Received`] verdict directly, with audio as a range
//!   into the caller's bytes (zero-copy: feed it to the DTMF detector, recorder or jitter
//!   buffer without a copy); telephone events are also queued as [`MediaEvent`]s.
//! - [`MediaSession::handle_timeout`] (`now` and the wall clock for RTCP NTP times): runs
//!   RTCP reports, RFC 4733 end-packet repeats and the media timeout.
//! - [`MediaSession::send_audio`]: the owner's pacer says a 20 ms slot is due; the session
//!   writes the RTP packet into the caller's buffer (no allocation) and says where to send
//!   it. The session does not know where audio comes from (prompts, bridge, silence).
//! - [`MediaSession::send_event`]: RFC 4733 DTMF towards the peer.
//!
//! Outputs: [`MediaSession::poll_transmit`] (queued RTCP and event repeats, written into the
//! caller's buffer), [`MediaSession::poll_event`] ([`MediaEvent`]s), and
//! [`MediaSession::poll_timeout`] (a deadline, not a duration).
//!
//! Timestamps: pass the pacer's slot deadline as `at` to `send_audio`. The RTP timestamp is
//! derived from it on the session's media clock (first slot + elapsed time, rounded to
//! whole frames), so silence between talk spurts and slots skipped after a stall advance the
//! timestamp exactly, while back-to-back catch-up packets stay contiguous.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use guichet::media::session::{MediaSession, SessionConfig};
//!
//! let t0 = Instant::now();
//! let peer = "192.0.2.10:30000".parse().unwrap();
//! let mut s = MediaSession::new(SessionConfig::new(1, peer), t0);
//! let mut buf = Vec::with_capacity(1500);
//! let tx = s.send_audio(t0, &[0xFF; 160], true, &mut buf).unwrap();
//! assert_eq!((tx.dest, buf.len()), (peer, 172));
//! // Nothing received for 30 s: the owner learns it from poll_event after handle_timeout.
//! let deadline = s.poll_timeout().unwrap();
//! s.handle_timeout(t0 + Duration::from_secs(30), SystemTime::UNIX_EPOCH);
//! while s.poll_transmit(&mut buf).is_some() { buf.clear(); }
//! assert!(std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, guichet::media::session::MediaEvent::MediaTimeout { .. })));
//! # let _ = deadline;
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use super::rtcp::{Quality, RtcpConfig, RtcpCounters, RtcpError, RtcpSession, SenderInfo};
use super::rtp::{
    EventSent, IgnoreReason, PT_PCMU, PT_TELEPHONE_EVENT, Received, ReceiverConfig, ReceiverStats,
    RtpError, RtpReceiver, RtpSender, SenderConfig, TelephoneEvent,
};

const MIN_PTIME: Duration = Duration::from_millis(10);
const MAX_PTIME: Duration = Duration::from_millis(200);
/// Upper bound for configured timers (a day): keeps `Instant + Duration` far from overflow.
const MAX_TIMER: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Rtp(#[from] RtpError),
    #[error(transparent)]
    Rtcp(#[from] RtcpError),
    #[error("the session is closed")]
    Closed,
}

/// How to build a [`MediaSession`] (from the negotiated SDP).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Seed for SSRC, initial sequence/timestamp and RTCP randomisation.
    pub seed: u64,
    pub audio_payload_type: u8,
    pub event_payload_type: Option<u8>,
    pub clock_rate: u32,
    /// Packetisation time (20 ms).
    pub ptime: Duration,
    /// Where the SDP says to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP; `None` means RTP port + 1 (RFC 3550 11).
    pub remote_rtcp: Option<SocketAddr>,
    /// Symmetric RTP (RFC 4961): once latched, send to the address the peer sends from
    /// (fixes NATed peers whose SDP carries a private address).
    pub symmetric: bool,
    pub latch_after: u8,
    pub relatch_after: Duration,
    /// No RTP for this long raises [`MediaEvent::MediaTimeout`].
    pub no_rtp_timeout: Duration,
    pub rtcp_interval: Duration,
    pub cname: String,
}

impl SessionConfig {
    /// Defaults for a G.711 mu-law call at ptime 20 with telephone-event 101.
    pub fn new(seed: u64, remote_rtp: SocketAddr) -> Self {
        SessionConfig {
            seed,
            audio_payload_type: PT_PCMU,
            event_payload_type: Some(PT_TELEPHONE_EVENT),
            clock_rate: 8000,
            ptime: Duration::from_millis(20),
            remote_rtp,
            remote_rtcp: None,
            symmetric: true,
            latch_after: 2,
            relatch_after: Duration::from_secs(2),
            no_rtp_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
            cname: "guichet".to_owned(),
        }
    }
}

/// Which socket a packet goes out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Rtp,
    Rtcp,
}

/// A packet written into the caller's buffer, and where to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub kind: PacketKind,
}

/// Something the call should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// An RFC 4733 packet, as received (deduplicate by its timestamp).
    TelephoneEvent(TelephoneEvent),
    /// No RTP for `no_rtp_timeout`: the peer is gone (hang up, or ask the SIP layer).
    MediaTimeout { silent_for: Duration },
    /// RTP came back after a media timeout.
    MediaResumed,
    /// The receiver latched onto this source.
    Latched(SocketAddr),
    /// The peer's latest report about our stream.
    PeerQuality(Quality),
    /// The peer sent RTCP BYE.
    PeerBye,
}

/// Inputs in the uniform sans-IO shape (see [`MediaSession::handle_input`]).
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Rtp {
        now: Instant,
        from: SocketAddr,
        bytes: &'a [u8],
    },
    Rtcp {
        now: Instant,
        from: SocketAddr,
        bytes: &'a [u8],
    },
    Tick {
        now: Instant,
        wall: SystemTime,
    },
}

/// Counters of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStats {
    pub rx: ReceiverStats,
    pub rtcp: RtcpCounters,
    pub packets_sent: u32,
    pub octets_sent: u32,
    pub media_timeouts: u64,
    pub peer_quality: Option<Quality>,
}

#[derive(Debug, Clone, Copy)]
struct EventRepeat {
    at: Instant,
    code: u8,
    duration: u16,
    volume: u8,
}

/// The RTP side of one call.
#[derive(Debug)]
pub struct MediaSession {
    config: SessionConfig,
    sender: RtpSender,
    receiver: RtpReceiver,
    rtcp: RtcpSession,
    /// Media clock: the first send slot and its RTP timestamp.
    anchor: Option<(Instant, u32)>,
    packets_at_last_report: u32,
    rtcp_source: Option<SocketAddr>,
    event_repeat: Option<EventRepeat>,
    timeout_paused: bool,
    timed_out: bool,
    media_timeouts: u64,
    closed: bool,
    transmits: VecDeque<(Transmit, Vec<u8>)>,
    events: VecDeque<MediaEvent>,
}

impl MediaSession {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut config = config;
        // These come from SDP (the peer) and config (the operator): keep them sane so no
        // deadline arithmetic can overflow.
        config.clock_rate = config.clock_rate.clamp(1, 192_000);
        config.ptime = config.ptime.clamp(MIN_PTIME, MAX_PTIME);
        config.no_rtp_timeout = config.no_rtp_timeout.min(MAX_TIMER);
        config.rtcp_interval = config.rtcp_interval.min(MAX_TIMER);
        config.relatch_after = config.relatch_after.min(MAX_TIMER);
        let sender = RtpSender::new(SenderConfig {
            seed: config.seed,
            payload_type: config.audio_payload_type,
            event_payload_type: config.event_payload_type,
        });
        let receiver = RtpReceiver::new(
            ReceiverConfig {
                audio_payload_type: config.audio_payload_type,
                event_payload_type: config.event_payload_type,
                clock_rate: config.clock_rate,
                latch_after: config.latch_after,
                relatch_after: config.relatch_after,
            },
            now,
        );
        let rtcp = RtcpSession::new(
            RtcpConfig {
                seed: config.seed ^ 0x5254_4350, // "RTCP": a different stream from the SSRC's
                interval: config.rtcp_interval,
                cname: config.cname.clone(),
                clock_rate: config.clock_rate,
            },
            sender.ssrc(),
            now,
        );
        MediaSession {
            config,
            sender,
            receiver,
            rtcp,
            anchor: None,
            packets_at_last_report: 0,
            rtcp_source: None,
            event_repeat: None,
            timeout_paused: false,
            timed_out: false,
            media_timeouts: 0,
            closed: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    pub fn receiver(&self) -> &RtpReceiver {
        &self.receiver
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            rx: self.receiver.stats(),
            rtcp: self.rtcp.counters(),
            packets_sent: self.sender.packet_count(),
            octets_sent: self.sender.octet_count(),
            media_timeouts: self.media_timeouts,
            peer_quality: self.rtcp.quality(),
        }
    }

    /// Where RTP goes now: the latched source under symmetric RTP, else the SDP address.
    pub fn rtp_destination(&self) -> SocketAddr {
        match self.receiver.latched() {
            Some(addr) if self.config.symmetric => addr,
            _ => self.config.remote_rtp,
        }
    }

    /// Where RTCP goes now.
    pub fn rtcp_destination(&self) -> SocketAddr {
        if let Some(addr) = self.rtcp_source.filter(|_| self.config.symmetric) {
            return addr;
        }
        if let Some(addr) = self.config.remote_rtcp {
            return addr;
        }
        let mut addr = self.rtp_destination();
        addr.set_port(addr.port().wrapping_add(1));
        addr
    }

    /// A re-INVITE moved the peer: new SDP addresses, and let the receiver latch again.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        self.config.remote_rtp = rtp;
        self.config.remote_rtcp = rtcp;
        self.rtcp_source = None;
        self.receiver.unlatch();
    }

    /// Suspend the media timeout while the call is on hold (sendonly/inactive SDP).
    pub fn pause_media_timeout(&mut self, paused: bool) {
        self.timeout_paused = paused;
    }

    /// The uniform sans-IO entry point; `Rtp` returns the receiver's verdict.
    pub fn handle_input(&mut self, input: Input<'_>) -> Option<Received> {
        match input {
            Input::Rtp { now, from, bytes } => Some(self.handle_rtp(now, from, bytes)),
            Input::Rtcp { now, from, bytes } => {
                self.handle_rtcp(now, from, bytes);
                None
            }
            Input::Tick { now, wall } => {
                self.handle_timeout(now, wall);
                None
            }
        }
    }

    /// One datagram from the RTP socket.
    pub fn handle_rtp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Received {
        let was_latched = self.receiver.latched();
        let received = self.receiver.handle(now, from, bytes);
        if received == Received::Ignored(IgnoreReason::Rtcp) {
            // RTCP multiplexed on the RTP port (RFC 5761).
            self.handle_rtcp(now, from, bytes);
            return received;
        }
        if let Some(addr) = self.receiver.latched().filter(|a| Some(*a) != was_latched) {
            self.events.push_back(MediaEvent::Latched(addr));
        }
        match &received {
            Received::Audio(_) | Received::Event(_) if self.timed_out => {
                self.timed_out = false;
                self.events.push_back(MediaEvent::MediaResumed);
            }
            _ => {}
        }
        if let Received::Event(ev) = &received {
            self.events.push_back(MediaEvent::TelephoneEvent(*ev));
        }
        received
    }

    /// One datagram from the RTCP socket. Malformed packets are counted (see [`Self::stats`]).
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        // Bleed protection: once RTP is latched, take RTCP only from the same host.
        if let Some(rtp) = self.receiver.latched()
            && rtp.ip() != from.ip()
        {
            return;
        }
        let Ok(got) = self.rtcp.handle(now, bytes) else {
            return;
        };
        // Latch RTCP's source too; one learnt before RTP latched is replaced once a packet
        // comes from the latched host.
        let stale = match (self.rtcp_source, self.receiver.latched()) {
            (None, _) => true,
            (Some(src), Some(rtp)) => src.ip() != rtp.ip(),
            (Some(_), None) => false,
        };
        if stale {
            self.rtcp_source = Some(from);
        }
        if let Some(q) = got.quality {
            self.events.push_back(MediaEvent::PeerQuality(q));
        }
        if got.bye {
            self.events.push_back(MediaEvent::PeerBye);
        }
    }

    /// Timestamp units in `d` on the media clock.
    fn samples_in(&self, d: Duration) -> u64 {
        (d.as_nanos() * u128::from(self.config.clock_rate) / 1_000_000_000) as u64
    }

    /// Bring the sender's timestamp up to the media clock at `at` (never backwards).
    fn align_timestamp(&mut self, at: Instant) {
        let next = self.sender.next_timestamp();
        let Some((anchor_at, anchor_ts)) = self.anchor else {
            self.anchor = Some((at, next));
            return;
        };
        let frame = self.samples_in(self.config.ptime).max(1);
        let elapsed = self.samples_in(at.saturating_duration_since(anchor_at));
        // Round to whole frames so a jittery `at` still lands on the slot.
        let rounded = (elapsed + frame / 2) / frame * frame;
        let target = anchor_ts.wrapping_add(rounded as u32);
        let ahead = target.wrapping_sub(next);
        if ahead != 0 && ahead < 1 << 31 {
            self.sender.advance(ahead);
        }
    }

    /// Write the RTP packet for one audio slot into `out` (appended) and return where to
    /// send it. `at` is the slot's deadline from the pacer; `talkspurt_start` sets the
    /// marker bit (first packet after silence). For G.711, one byte is one sample.
    pub fn send_audio(
        &mut self,
        at: Instant,
        payload: &[u8],
        talkspurt_start: bool,
        out: &mut Vec<u8>,
    ) -> Result<Transmit, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        let first = self.anchor.is_none();
        self.align_timestamp(at);
        // G.711: payload.len() <= MAX_PAYLOAD is checked by packetize; it fits u32.
        let samples = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.sender
            .packetize(payload, samples, talkspurt_start || first, out)?;
        Ok(Transmit {
            dest: self.rtp_destination(),
            kind: PacketKind::Rtp,
        })
    }

    /// Write one RFC 4733 packet for `code` into `out` and return where to send it. Call
    /// every 50 ms or so with the growing `duration` while the key is down, then once with
    /// `end = true`: the session repeats the end packet twice more, one ptime apart, via
    /// [`Self::poll_transmit`] after [`Self::handle_timeout`]. Do not send audio meanwhile.
    pub fn send_event(
        &mut self,
        at: Instant,
        code: u8,
        duration: u16,
        end: bool,
        volume: u8,
        out: &mut Vec<u8>,
    ) -> Result<Transmit, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        // A new event (another key, or a key down again) cancels pending end repeats of the
        // previous one; the sender starts it after the previous event.
        if self.event_repeat.is_some_and(|r| r.code != code || !end) {
            self.event_repeat = None;
        }
        // Only a new event reads the aligned timestamp; an event in progress keeps its own.
        self.align_timestamp(at);
        let sent = self.sender.event(code, duration, end, volume, out)?;
        self.event_repeat = match sent {
            EventSent::End { repeats_left } if repeats_left > 0 => Some(EventRepeat {
                at: at + self.config.ptime,
                code,
                duration,
                volume,
            }),
            EventSent::Update => self.event_repeat,
            _ => None,
        };
        Ok(Transmit {
            dest: self.rtp_destination(),
            kind: PacketKind::Rtp,
        })
    }

    /// The earliest deadline of this session (RTCP, event repeat, media timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut next = self.rtcp.poll_timeout();
        if let Some(r) = self.event_repeat {
            next = next.min(r.at);
        }
        if !self.timed_out && !self.timeout_paused {
            next = next.min(self.receiver.last_packet_at() + self.config.no_rtp_timeout);
        }
        Some(next)
    }

    /// Run whatever is due at `now`. `wall` is the wall-clock time (for RTCP NTP times).
    /// An early, late or repeated call is harmless.
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        if self.closed {
            return;
        }
        if let Some(r) = self.event_repeat.filter(|r| now >= r.at) {
            let mut buf = Vec::with_capacity(16);
            match self
                .sender
                .event(r.code, r.duration, true, r.volume, &mut buf)
            {
                Ok(EventSent::End { repeats_left }) => {
                    self.queue(PacketKind::Rtp, buf);
                    self.event_repeat = (repeats_left > 0).then_some(EventRepeat {
                        at: r.at + self.config.ptime,
                        ..r
                    });
                }
                _ => self.event_repeat = None,
            }
        }
        if !self.timed_out && !self.timeout_paused {
            let silent = self.receiver.silent_for(now);
            if silent >= self.config.no_rtp_timeout {
                self.timed_out = true;
                self.media_timeouts += 1;
                self.events
                    .push_back(MediaEvent::MediaTimeout { silent_for: silent });
            }
        }
        if self.rtcp.is_due(now) {
            let sent = self.sender.packet_count();
            let sender = (sent != self.packets_at_last_report).then(|| SenderInfo {
                rtp_timestamp: self.media_timestamp(now),
                packet_count: sent,
                octet_count: self.sender.octet_count(),
            });
            self.packets_at_last_report = sent;
            let reception = self.receiver.reception_report();
            let mut buf = Vec::with_capacity(128);
            // On a write error (only possible from our own sizes) the report is skipped;
            // write_report reschedules either way.
            if self
                .rtcp
                .write_report(now, wall, sender, reception, &mut buf)
                .is_ok()
            {
                self.queue(PacketKind::Rtcp, buf);
            }
        }
    }

    /// RTP timestamp of `now` on our media clock (for the SR).
    fn media_timestamp(&self, now: Instant) -> u32 {
        match self.anchor {
            Some((at, ts)) => {
                ts.wrapping_add(self.samples_in(now.saturating_duration_since(at)) as u32)
            }
            None => self.sender.next_timestamp(),
        }
    }

    fn queue(&mut self, kind: PacketKind, bytes: Vec<u8>) {
        let dest = match kind {
            PacketKind::Rtp => self.rtp_destination(),
            PacketKind::Rtcp => self.rtcp_destination(),
        };
        self.transmits.push_back((Transmit { dest, kind }, bytes));
    }

    /// The next queued packet (RTCP, RFC 4733 end repeats), appended to `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Transmit> {
        let (t, bytes) = self.transmits.pop_front()?;
        out.extend_from_slice(&bytes);
        Some(t)
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// End the session: queues an RTCP BYE; afterwards nothing is sent or scheduled.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        let mut buf = Vec::with_capacity(16);
        if self.rtcp.write_bye(&mut buf).is_ok() {
            self.queue(PacketKind::Rtcp, buf);
        }
        self.closed = true;
        self.event_repeat = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pacer::{Pacer, StreamId};
    use crate::media::rtp::AudioPacket;
    use proptest::prelude::*;
    use rtp_types::RtpPacket;

    const PTIME: Duration = Duration::from_millis(20);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn wall(t0: Instant, now: Instant) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + (now - t0)
    }

    #[test]
    fn timestamps_follow_the_pacer_grid_across_silence_and_skips() {
        let t0 = Instant::now();
        let mut s = MediaSession::new(SessionConfig::new(5, addr("192.0.2.1:4000")), t0);
        let ts0 = s.sender().next_timestamp();
        let mut buf = Vec::with_capacity(200);
        let mut sent = Vec::new();
        let mut send = |s: &mut MediaSession, at: Instant, start: bool| {
            buf.clear();
            s.send_audio(at, &[0xFF; 160], start, &mut buf).unwrap();
            let p = RtpPacket::parse(&buf).unwrap();
            sent.push((p.timestamp().wrapping_sub(ts0), p.marker_bit()));
        };
        // Talk spurt of 3 slots, jittery `at` (1-7 ms late).
        for k in 0..3u32 {
            send(
                &mut s,
                t0 + PTIME * k + Duration::from_millis(u64::from(1 + 3 * k)),
                k == 0,
            );
        }
        // 1 s of silence, then a new talk spurt.
        send(&mut s, t0 + PTIME * 53, true);
        // A stall: two catch-up packets with the same `at` stay contiguous.
        send(&mut s, t0 + PTIME * 60, false);
        send(&mut s, t0 + PTIME * 60, false);
        assert_eq!(
            sent,
            vec![
                (0, true),
                (160, false),
                (320, false),
                (53 * 160, true),
                (60 * 160, false),
                (61 * 160, false)
            ]
        );
    }

    /// Two sessions wired back to back over a perfect network with `delay` one way.
    struct Pair {
        a: MediaSession,
        b: MediaSession,
        a_addr: SocketAddr,
        b_addr: SocketAddr,
        delay: Duration,
        in_flight: Vec<(Instant, bool, PacketKind, SocketAddr, Vec<u8>)>, // to_b?
        b_audio: Vec<AudioPacket>,
        events_a: Vec<MediaEvent>,
        events_b: Vec<MediaEvent>,
    }

    impl Pair {
        fn new(t0: Instant, delay: Duration) -> Self {
            let a_addr = addr("192.0.2.1:4000");
            let b_addr = addr("198.51.100.2:5000");
            Pair {
                a: MediaSession::new(SessionConfig::new(1, b_addr), t0),
                b: MediaSession::new(SessionConfig::new(2, a_addr), t0),
                a_addr,
                b_addr,
                delay,
                in_flight: Vec::new(),
                b_audio: Vec::new(),
                events_a: Vec::new(),
                events_b: Vec::new(),
            }
        }

        fn drain(&mut self, now: Instant) {
            let mut buf = Vec::new();
            while let Some(t) = self.a.poll_transmit(&mut buf) {
                self.in_flight.push((
                    now + self.delay,
                    true,
                    t.kind,
                    self.a_addr,
                    std::mem::take(&mut buf),
                ));
            }
            while let Some(t) = self.b.poll_transmit(&mut buf) {
                self.in_flight.push((
                    now + self.delay,
                    false,
                    t.kind,
                    self.b_addr,
                    std::mem::take(&mut buf),
                ));
            }
            self.events_a
                .extend(std::iter::from_fn(|| self.a.poll_event()));
            self.events_b
                .extend(std::iter::from_fn(|| self.b.poll_event()));
        }

        /// Run to `until`, both sides sending audio every 20 ms from `t0`.
        fn run(&mut self, t0: Instant, until: Instant, audio: bool) {
            let mut pacer = Pacer::new();
            pacer.add(StreamId(0), t0, PTIME).unwrap();
            let mut due = Vec::new();
            let mut now = t0;
            while now < until {
                // Deliver what has arrived.
                let (arrived, rest): (Vec<_>, Vec<_>) =
                    self.in_flight.drain(..).partition(|p| p.0 <= now);
                self.in_flight = rest;
                for (at, to_b, kind, from, bytes) in arrived {
                    let target = if to_b { &mut self.b } else { &mut self.a };
                    match kind {
                        PacketKind::Rtp => {
                            if let Received::Audio(p) = target.handle_rtp(at, from, &bytes)
                                && to_b
                            {
                                self.b_audio.push(p);
                            }
                        }
                        PacketKind::Rtcp => target.handle_rtcp(at, from, &bytes),
                    }
                }
                self.a.handle_timeout(now, wall(t0, now));
                self.b.handle_timeout(now, wall(t0, now));
                if audio {
                    due.clear();
                    pacer.due_slots(now, &mut due);
                    for d in &due {
                        let mut buf = Vec::new();
                        let t = self
                            .a
                            .send_audio(d.deadline, &[0x55; 160], false, &mut buf)
                            .unwrap();
                        assert_eq!(t.dest, self.b_addr);
                        self.in_flight.push((
                            now + self.delay,
                            true,
                            PacketKind::Rtp,
                            self.a_addr,
                            buf,
                        ));
                        let mut buf = Vec::new();
                        self.b
                            .send_audio(d.deadline, &[0x55; 160], false, &mut buf)
                            .unwrap();
                        self.in_flight.push((
                            now + self.delay,
                            false,
                            PacketKind::Rtp,
                            self.b_addr,
                            buf,
                        ));
                    }
                }
                self.drain(now);
                now += Duration::from_millis(1);
            }
        }
    }

    #[test]
    fn two_sessions_exchange_audio_and_rtcp_with_rtt() {
        let t0 = Instant::now();
        let mut pair = Pair::new(t0, Duration::from_millis(15));
        pair.run(t0, t0 + Duration::from_secs(20), true);
        // B got every packet but the one used to latch (1000 sent in 20 s, minus the
        // last in flight).
        assert!(pair.b_audio.len() >= 997, "{}", pair.b_audio.len());
        assert!(
            pair.b_audio
                .windows(2)
                .all(|w| w[1].seq == w[0].seq.wrapping_add(1))
        );
        assert!(pair.events_b.contains(&MediaEvent::Latched(pair.a_addr)));
        // RTCP both ways: A learns the quality of its stream at B, with RTT = 2 x 15 ms.
        let qualities: Vec<Quality> = pair
            .events_a
            .iter()
            .filter_map(|e| match e {
                MediaEvent::PeerQuality(q) => Some(*q),
                _ => None,
            })
            .collect();
        assert!(qualities.len() >= 2, "{qualities:?}");
        let last = qualities.last().unwrap();
        assert_eq!(last.fraction_lost, 0.0);
        assert_eq!(last.cumulative_lost, 0);
        assert!(last.jitter_ms < 0.2);
        let rtt = last.rtt_ms.unwrap();
        assert!((rtt - 30.0).abs() <= 1.5, "rtt {rtt}");
        assert!(pair.a.stats().rtcp.reports_sent >= 3);
        assert_eq!(pair.a.stats().rtcp.malformed, 0);
        assert_eq!(pair.a.stats().media_timeouts, 0);
    }

    #[test]
    fn dtmf_end_is_sent_three_times() {
        let t0 = Instant::now();
        let mut pair = Pair::new(t0, Duration::from_millis(10));
        pair.run(t0, t0 + Duration::from_millis(200), true);
        let at = t0 + Duration::from_millis(200);
        for (i, dur) in [400u16, 800].into_iter().enumerate() {
            let mut buf = Vec::new();
            pair.a
                .send_event(at + PTIME * (i as u32), 1, dur, false, 10, &mut buf)
                .unwrap();
            pair.in_flight.push((
                at + PTIME * (i as u32) + pair.delay,
                true,
                PacketKind::Rtp,
                pair.a_addr,
                buf,
            ));
        }
        let mut buf = Vec::new();
        let end_at = at + PTIME * 2;
        pair.a
            .send_event(end_at, 1, 960, true, 10, &mut buf)
            .unwrap();
        pair.in_flight
            .push((end_at + pair.delay, true, PacketKind::Rtp, pair.a_addr, buf));
        pair.run(end_at, end_at + Duration::from_millis(100), false);
        let events: Vec<TelephoneEvent> = pair
            .events_b
            .iter()
            .filter_map(|e| match e {
                MediaEvent::TelephoneEvent(ev) => Some(*ev),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 5, "{events:?}");
        assert!(
            events
                .iter()
                .all(|e| e.event == 1 && e.timestamp == events[0].timestamp)
        );
        assert_eq!(events.iter().filter(|e| e.end).count(), 3);
        assert!(events[0].marker);
        assert_eq!(events[4].duration, 960);
    }

    #[test]
    fn media_timeout_once_then_resumed() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut s = MediaSession::new(SessionConfig::new(3, peer), t0);
        let mut buf = Vec::new();
        let mut now = t0;
        let mut timeouts = 0;
        // Drive by poll_timeout only, as a worker would, for 70 s of silence.
        while now < t0 + Duration::from_secs(70) {
            now = s.poll_timeout().unwrap().max(now);
            s.handle_timeout(now, wall(t0, now));
            while s.poll_transmit(&mut buf).is_some() {}
            while let Some(e) = s.poll_event() {
                if let MediaEvent::MediaTimeout { silent_for } = e {
                    assert_eq!(silent_for, Duration::from_secs(30));
                    assert_eq!(now, t0 + Duration::from_secs(30));
                    timeouts += 1;
                }
            }
        }
        assert_eq!(timeouts, 1);
        assert_eq!(s.stats().media_timeouts, 1);
        // RTP comes back: resumed, and the timeout is armed again.
        let mut tx = RtpSender::new(SenderConfig::default());
        for _ in 0..2 {
            buf.clear();
            tx.packetize(&[0; 160], 160, false, &mut buf).unwrap();
            s.handle_rtp(now, peer, &buf);
        }
        let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(evs.contains(&MediaEvent::MediaResumed));
        assert!(s.poll_timeout().unwrap() <= now + Duration::from_secs(30));
        s.handle_timeout(now + Duration::from_secs(30), wall(t0, now));
        assert_eq!(s.stats().media_timeouts, 2);
        // On hold, no timeout.
        let mut h = MediaSession::new(SessionConfig::new(3, peer), t0);
        h.pause_media_timeout(true);
        h.handle_timeout(t0 + Duration::from_secs(100), wall(t0, t0));
        assert_eq!(h.stats().media_timeouts, 0);
    }

    #[test]
    fn symmetric_rtp_follows_nat_and_ignores_bleed() {
        let t0 = Instant::now();
        let sdp_addr = addr("10.0.0.5:4000"); // private address in the SDP
        let public = addr("203.0.113.7:61000");
        let bleed = addr("203.0.113.99:7000");
        let mut s = MediaSession::new(SessionConfig::new(4, sdp_addr), t0);
        assert_eq!(s.rtp_destination(), sdp_addr);
        assert_eq!(s.rtcp_destination(), addr("10.0.0.5:4001"));
        let mut rr = Vec::new();
        let mut stray = MediaSession::new(SessionConfig::new(8, sdp_addr), t0);
        stray.close();
        stray.poll_transmit(&mut rr).unwrap();
        // RTCP from a stray host before RTP latched: taken for now...
        s.handle_rtcp(t0, addr("203.0.113.99:7001"), &rr);
        assert_eq!(s.rtcp_destination(), addr("203.0.113.99:7001"));
        let mut peer = RtpSender::new(SenderConfig {
            seed: 77,
            ..Default::default()
        });
        let mut other = RtpSender::new(SenderConfig {
            seed: 78,
            ..Default::default()
        });
        let mut buf = Vec::new();
        for i in 0..5u32 {
            let now = t0 + PTIME * i;
            buf.clear();
            peer.packetize(&[1; 160], 160, false, &mut buf).unwrap();
            s.handle_rtp(now, public, &buf);
            buf.clear();
            other.packetize(&[2; 160], 160, false, &mut buf).unwrap();
            let r = s.handle_rtp(now, bleed, &buf);
            if i >= 1 {
                assert_eq!(r, Received::Ignored(IgnoreReason::OtherSource));
            }
        }
        assert_eq!(s.rtp_destination(), public);
        // ...then replaced by the latched host's RTCP, and strays are ignored.
        s.handle_rtcp(t0, addr("203.0.113.7:61001"), &rr);
        s.handle_rtcp(t0, addr("203.0.113.99:7001"), &rr);
        assert_eq!(s.rtcp_destination(), addr("203.0.113.7:61001"));
        assert_eq!(s.stats().rtcp.packets_received, 2);
        let mut out = Vec::new();
        assert_eq!(
            s.send_audio(t0, &[0; 160], true, &mut out).unwrap().dest,
            public
        );
        // re-INVITE to a new address: unlatched, sends to the new SDP address.
        let moved = addr("192.0.2.50:9000");
        s.set_remote(moved, None);
        assert_eq!(s.rtp_destination(), moved);
        assert_eq!(
            s.stats().rx.ignored_total,
            6,
            "4 bleed + first packet of each source"
        );
    }

    #[test]
    fn rtcp_multiplexed_on_the_rtp_port_is_handled() {
        let t0 = Instant::now();
        let peer = addr("192.0.2.1:4000");
        let mut s = MediaSession::new(SessionConfig::new(6, peer), t0);
        let mut other = MediaSession::new(SessionConfig::new(7, addr("192.0.2.2:4000")), t0);
        other.close();
        let mut bye = Vec::new();
        other.poll_transmit(&mut bye).unwrap();
        assert_eq!(
            s.handle_rtp(t0, peer, &bye),
            Received::Ignored(IgnoreReason::Rtcp)
        );
        assert_eq!(s.stats().rtcp.packets_received, 1);
        assert_eq!(s.poll_event(), Some(MediaEvent::PeerBye));
    }

    #[test]
    fn close_sends_bye_and_stops() {
        let t0 = Instant::now();
        let mut s = MediaSession::new(SessionConfig::new(6, addr("192.0.2.1:4000")), t0);
        s.close();
        let mut buf = Vec::new();
        let t = s.poll_transmit(&mut buf).unwrap();
        assert_eq!(t.kind, PacketKind::Rtcp);
        assert_eq!(buf[1], 201); // RR then BYE
        assert!(s.poll_timeout().is_none());
        assert!(s.send_audio(t0, &[0; 160], false, &mut buf).is_err());
    }

    #[test]
    fn many_sessions_one_pacer() {
        // 2,000 sessions driven by one pacer for 2 s of virtual time: every slot sent once,
        // timestamps contiguous, no per-packet allocation in the send path.
        let t0 = Instant::now();
        let n = 2_000u32;
        let mut sessions: Vec<MediaSession> = (0..n)
            .map(|i| {
                MediaSession::new(SessionConfig::new(u64::from(i), addr("192.0.2.1:4000")), t0)
            })
            .collect();
        let mut pacer = Pacer::new();
        for i in 0..n {
            pacer
                .add(
                    StreamId(i),
                    t0 + Duration::from_micros(u64::from(i) * 10),
                    PTIME,
                )
                .unwrap();
        }
        let mut due = Vec::with_capacity(n as usize);
        let mut batch: Vec<u8> = Vec::with_capacity(64 * 172);
        let mut sent = 0u64;
        let end = t0 + Duration::from_secs(2);
        while let Some(next) = pacer.next_deadline().filter(|d| *d < end) {
            due.clear();
            pacer.due_slots(next, &mut due);
            for d in &due {
                if batch.len() + 172 > batch.capacity() {
                    batch.clear(); // a worker would sendmmsg here
                }
                let s = &mut sessions[d.stream.0 as usize];
                s.send_audio(d.deadline, &[0xFF; 160], false, &mut batch)
                    .unwrap();
                sent += 1;
            }
        }
        assert_eq!(sent, u64::from(n) * 100);
        for s in &sessions {
            assert_eq!(s.stats().packets_sent, 100);
        }
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(dgrams in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..200), any::<bool>(), 0u64..40_000), 0..40)) {
            let t0 = Instant::now();
            let peer = addr("192.0.2.1:4000");
            let mut s = MediaSession::new(SessionConfig::new(9, peer), t0);
            let mut buf = Vec::new();
            for (bytes, rtcp, ms) in dgrams {
                let now = t0 + Duration::from_millis(ms);
                if rtcp {
                    s.handle_rtcp(now, peer, &bytes);
                } else if let Received::Audio(a) = s.handle_rtp(now, peer, &bytes) {
                    prop_assert!(a.payload.end <= bytes.len());
                }
                s.handle_timeout(now, SystemTime::UNIX_EPOCH);
                while s.poll_transmit(&mut buf).is_some() {}
                while s.poll_event().is_some() {}
            }
        }
    }
}
