//! RTP threads of the load tool: each owns one RTP/RTCP socket pair and drives the
//! [`MediaSession`]s of many calls from one [`Pacer`] (20 ms PCMU audio out, RFC 4733 key
//! presses at scheduled times), and measures what the engine sends back (per call
//! [`GapTracker`], one shared gap-error [`Histogram`]).
//!
//! A thread of its own, not a tokio task, with batched system calls
//! ([`crate::engine::udp`]): at each wake-up it reads everything queued with `recvmmsg` and
//! sends every due packet with one `sendmmsg`, so the tool costs far less CPU than the
//! engine it loads. Arrival times are the kernel's (`SO_TIMESTAMPNS`), so a late wake-up
//! of the tool does not show as jitter of the engine.
//!
//! Incoming RTP is matched to its call by source address: the engine sends each call's
//! media from the port it put in its SDP answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;

use super::histogram::Histogram;
use super::measure::{GapTracker, RtpHeader};
use crate::engine::udp::{self, RecvBatch, SendBatch};
use crate::media::dtmf::Digit;
use crate::media::g711::linear_to_ulaw;
use crate::media::pacer::Pacer;
use crate::media::session::{MediaSession, PacketKind, SessionConfig, Transmit};

/// Slots of a key press (5 x 20 ms = 100 ms) and quiet slots after it.
const PRESS_SLOTS: u16 = 5;
const QUIET_SLOTS_AFTER_PRESS: u8 = 3;

/// What the SIP task tells an RTP task.
#[derive(Debug)]
pub enum MediaCommand {
    /// A call was answered: start sending to `remote` and measuring what comes from it.
    Start {
        call: u32,
        remote: SocketAddr,
        payload_type: u8,
        event_payload_type: Option<u8>,
        seed: u64,
        keys: Vec<(Duration, Digit)>,
    },
    /// The call ended: stop and keep its figures.
    Stop { call: u32 },
}

/// Figures of one RTP task, merged by [`super::run`].
#[derive(Debug, Clone, Default)]
pub struct MediaTotals {
    pub gap_error_us: Histogram,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub calls: u64,
    pub calls_without_audio: u64,
    pub min_packets_per_call: Option<u64>,
    pub keys_sent: u64,
    pub stray_packets: u64,
    pub send_errors: u64,
    pub skipped_slots: u64,
}

impl MediaTotals {
    pub fn merge(&mut self, o: &MediaTotals) {
        self.gap_error_us.merge(&o.gap_error_us);
        self.packets_sent += o.packets_sent;
        self.packets_received += o.packets_received;
        self.lost += o.lost;
        self.reordered += o.reordered;
        self.calls += o.calls;
        self.calls_without_audio += o.calls_without_audio;
        self.min_packets_per_call = match (self.min_packets_per_call, o.min_packets_per_call) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.keys_sent += o.keys_sent;
        self.stray_packets += o.stray_packets;
        self.send_errors += o.send_errors;
        self.skipped_slots += o.skipped_slots;
    }
}

enum KeyState {
    Idle,
    Pressing { code: u8, slot: u16 },
    Quiet(u8),
}

struct CallMedia {
    remote: SocketAddr,
    session: MediaSession,
    tracker: GapTracker,
    answered_at: Instant,
    keys: Vec<(Duration, Digit)>,
    next_key: usize,
    key: KeyState,
    frame: usize,
}

/// 20 ms of a quiet 440 Hz tone, G.711 mu-law (a phone that "speaks").
fn audio_frames() -> Vec<[u8; 160]> {
    // 8000 / 440 is not whole; 11 frames of 20 ms hold 4840 cycles/1000 ~ close enough to
    // loop without a loud click at this level.
    (0..11)
        .map(|f| {
            let mut frame = [0u8; 160];
            for (i, b) in frame.iter_mut().enumerate() {
                let n = (f * 160 + i) as f64;
                let s = (n * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 1000.0;
                *b = linear_to_ulaw(s as i16);
            }
            frame
        })
        .collect()
}

/// Kernel buffer asked for on every load-tool socket (capped by net.core.rmem_max /
/// wmem_max): one socket carries thousands of calls, and a short stall of the load tool
/// must not overflow its receive buffer and count as loss against the engine.
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Receive buffer of an RTP socket, forced past rmem_max when the tool may
/// (`SO_RCVBUFFORCE`): 64 MiB hold about a second of 3,000 calls' audio, so the engine's
/// real-time workers can starve the tool for that long without a packet lost to it.
pub const RTP_RECV_BUFFER: usize = 64 << 20;

/// Datagrams taken from the RTP socket per `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Longest wait between two reads of the sockets (the pacer usually wakes sooner).
const MAX_WAIT: Duration = Duration::from_millis(2);

fn bind_std(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps the sizes at its maxima (the RTP socket then asks for
    // more with `udp::force_recv_buffer`, see `bind_pair`).
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// A non-blocking tokio UDP socket bound to `addr` with [`SOCKET_BUFFER`]-sized buffers.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(bind_std(addr)?)
}

/// Bind an RTP socket on an even port of `ip` with its RTCP socket on the next port
/// (plain non-blocking sockets, for an RTP thread). The RTP socket stamps each datagram
/// with the kernel's arrival time, so the gap error measured does not include the load
/// tool's own delay in reading it.
pub fn bind_pair(
    ip: std::net::IpAddr,
) -> std::io::Result<(std::net::UdpSocket, std::net::UdpSocket)> {
    let mut last_err = None;
    for _ in 0..64 {
        let rtp = bind_std(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        match bind_std(SocketAddr::new(ip, port + 1)) {
            Ok(rtcp) => {
                // Without stamps (not Linux) arrival falls back to the read time.
                let _ = udp::enable_rx_timestamps(&rtp);
                let _ = udp::force_recv_buffer(&rtp, RTP_RECV_BUFFER);
                return Ok((rtp, rtcp));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free even/odd port pair")))
}

/// Maps kernel arrival stamps (wall clock) onto the monotonic clock the trackers use.
struct Clock {
    mono: Instant,
    wall: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn instant(&self, stamp: Option<SystemTime>, read_at: Instant) -> Instant {
        let Some(stamp) = stamp else {
            return read_at;
        };
        let at = match stamp.duration_since(self.wall) {
            Ok(after) => self.mono.checked_add(after),
            Err(e) => self.mono.checked_sub(e.duration()),
        };
        // A stamp can never be later than the read; a stepped wall clock could make it so.
        at.map_or(read_at, |at| at.min(read_at))
    }
}

/// The sockets and outgoing batches of one RTP thread.
struct Io {
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    rtp_out: SendBatch,
    rtcp_out: SendBatch,
}

impl Io {
    fn queue(&mut self, t: Transmit, bytes: &[u8]) {
        match t.kind {
            PacketKind::Rtp => self.rtp_out.push(bytes, t.dest),
            PacketKind::Rtcp => self.rtcp_out.push(bytes, t.dest),
        }
    }

    /// Send what is queued; RTP packets count as sent once the kernel took them.
    fn flush(&mut self, totals: &mut MediaTotals) {
        let (rtp_sent, rtp_failed) = self.rtp_out.flush(&self.rtp);
        let (_, rtcp_failed) = self.rtcp_out.flush(&self.rtcp);
        totals.packets_sent += rtp_sent;
        totals.send_errors += rtp_failed + rtcp_failed;
    }
}

/// One RTP thread: runs until `commands` closes and every call has been stopped. Each
/// wake-up reads everything queued (`recvmmsg`), serves the due 20 ms slots and sends what
/// they produced in one `sendmmsg` per socket.
pub fn run_media(
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    commands: std::sync::mpsc::Receiver<MediaCommand>,
) -> MediaTotals {
    use std::sync::mpsc::RecvTimeoutError;

    let frames = audio_frames();
    let ptime = Duration::from_millis(20);
    let clock = Clock::new();
    let mut pacer: Pacer<u32> = Pacer::new();
    let mut calls: HashMap<u32, CallMedia> = HashMap::new();
    let mut by_addr: HashMap<SocketAddr, u32> = HashMap::new();
    let mut totals = MediaTotals::default();
    let mut rtp_in = RecvBatch::new(RECV_BATCH, 2048);
    let mut rtcp_in = RecvBatch::new(8, 2048);
    let mut tx_buf: Vec<u8> = Vec::with_capacity(1500);
    let mut io = Io {
        rtp,
        rtcp,
        rtp_out: SendBatch::new(),
        rtcp_out: SendBatch::new(),
    };
    let mut open = true;

    loop {
        if !open && calls.is_empty() {
            break;
        }
        // Wait for the next slot (or a command), at most MAX_WAIT.
        let now = Instant::now();
        let wait = pacer
            .next_deadline()
            .map_or(MAX_WAIT, |d| d.saturating_duration_since(now).min(MAX_WAIT));
        // A zero wait is one non-blocking look at the channel.
        let mut command = if !open {
            std::thread::sleep(wait);
            None
        } else {
            match commands.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            }
        };
        while let Some(cmd) = command.take() {
            match cmd {
                MediaCommand::Start {
                    call,
                    remote,
                    payload_type,
                    event_payload_type,
                    seed,
                    keys,
                } => {
                    let now = Instant::now();
                    let mut config = SessionConfig::new(seed, remote);
                    config.audio_payload_type = payload_type;
                    config.event_payload_type = event_payload_type;
                    config.no_rtp_timeout = Duration::from_secs(3600);
                    config.cname = "guichet-load".to_owned();
                    let mut keys = keys;
                    keys.sort_by_key(|k| k.0);
                    if event_payload_type.is_none() {
                        keys.clear();
                    }
                    // Spread first slots over the 20 ms grid by call number.
                    let offset = Duration::from_micros(u64::from(call % 20) * 1000);
                    if pacer.add(call, now + offset, ptime).is_ok() {
                        by_addr.insert(remote, call);
                        let mut tracker = GapTracker::default();
                        tracker.set_audio_payload_type(payload_type);
                        calls.insert(
                            call,
                            CallMedia {
                                remote,
                                session: MediaSession::new(config, now),
                                tracker,
                                answered_at: now,
                                keys,
                                next_key: 0,
                                key: KeyState::Idle,
                                frame: 0,
                            },
                        );
                    }
                }
                MediaCommand::Stop { call } => {
                    pacer.remove(call);
                    if let Some(mut c) = calls.remove(&call) {
                        by_addr.remove(&c.remote);
                        c.session.close();
                        drain_session(&mut c.session, &mut io, &mut tx_buf);
                        finish(&c, &mut totals);
                    }
                }
            }
            if open {
                match commands.try_recv() {
                    Ok(c) => command = Some(c),
                    Err(std::sync::mpsc::TryRecvError::Empty) => {}
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
        }

        // Everything queued on the sockets, stamped by the kernel on arrival.
        loop {
            let n = rtp_in.recv(&io.rtp).unwrap_or(0);
            let read_at = Instant::now();
            for d in rtp_in.iter() {
                let at = clock.instant(d.stamp, read_at);
                receive(&mut calls, &by_addr, &mut totals, d.from, d.bytes, at);
            }
            if n < rtp_in.capacity() {
                break;
            }
        }
        while rtcp_in.recv(&io.rtcp).unwrap_or(0) > 0 {
            let now = Instant::now();
            for d in rtcp_in.iter() {
                let from = d.from;
                if let Some(id) =
                    by_addr.get(&SocketAddr::new(from.ip(), from.port().wrapping_sub(1)))
                    && let Some(c) = calls.get_mut(id)
                {
                    c.session.handle_rtcp(now, from, d.bytes);
                }
            }
        }

        // The due slots, sent together.
        let now = Instant::now();
        let wall = SystemTime::now();
        while let Some(due) = pacer.pop_due(now) {
            totals.skipped_slots += u64::from(due.skipped);
            let Some(c) = calls.get_mut(&due.stream) else {
                continue;
            };
            tx_buf.clear();
            if let Some(t) = slot(c, due.deadline, &frames, &mut tx_buf, &mut totals) {
                io.queue(t, &tx_buf);
            }
            if c.session.poll_timeout().is_some_and(|d| d <= now) {
                c.session.handle_timeout(now, wall);
            }
            drain_session(&mut c.session, &mut io, &mut tx_buf);
        }
        io.flush(&mut totals);
    }
    io.flush(&mut totals);
    totals
}

fn receive(
    calls: &mut HashMap<u32, CallMedia>,
    by_addr: &HashMap<SocketAddr, u32>,
    totals: &mut MediaTotals,
    from: SocketAddr,
    bytes: &[u8],
    now: Instant,
) {
    let Some(c) = by_addr.get(&from).and_then(|id| calls.get_mut(id)) else {
        totals.stray_packets += 1;
        return;
    };
    if let Some(h) = RtpHeader::parse(bytes) {
        c.tracker.record(h, now, &mut totals.gap_error_us);
    }
    let _ = c.session.handle_rtp(now, from, bytes);
}

/// What to send in one 20 ms slot: audio, a key-press packet, or nothing.
fn slot(
    c: &mut CallMedia,
    at: Instant,
    frames: &[[u8; 160]],
    out: &mut Vec<u8>,
    totals: &mut MediaTotals,
) -> Option<Transmit> {
    match c.key {
        KeyState::Pressing { code, slot } => {
            let slot = slot + 1;
            let end = slot >= PRESS_SLOTS;
            c.key = if end {
                KeyState::Quiet(QUIET_SLOTS_AFTER_PRESS)
            } else {
                KeyState::Pressing { code, slot }
            };
            return c
                .session
                .send_event(at, code, slot * 160, end, 10, out)
                .ok();
        }
        KeyState::Quiet(n) => {
            c.key = if n <= 1 {
                KeyState::Idle
            } else {
                KeyState::Quiet(n - 1)
            };
            return None;
        }
        KeyState::Idle => {}
    }
    if let Some(&(after, digit)) = c.keys.get(c.next_key)
        && at >= c.answered_at + after
    {
        c.next_key += 1;
        totals.keys_sent += 1;
        let code = digit.event_code();
        c.key = KeyState::Pressing { code, slot: 1 };
        return c.session.send_event(at, code, 160, false, 10, out).ok();
    }
    let frame = frames.get(c.frame % frames.len().max(1))?;
    c.frame = c.frame.wrapping_add(1);
    let first = c.session.stats().packets_sent == 0;
    c.session.send_audio(at, frame, first, out).ok()
}

/// Queue the session's pending packets (RTCP, BYE) and drop its events.
fn drain_session(session: &mut MediaSession, io: &mut Io, buf: &mut Vec<u8>) {
    loop {
        buf.clear();
        let Some(t) = session.poll_transmit(buf) else {
            break;
        };
        io.queue(t, buf);
    }
    while session.poll_event().is_some() {}
}

fn finish(c: &CallMedia, totals: &mut MediaTotals) {
    let got = c.tracker.received();
    totals.calls += 1;
    totals.packets_received += got;
    totals.lost += c.tracker.lost();
    totals.reordered += c.tracker.reordered();
    if got == 0 {
        totals.calls_without_audio += 1;
    }
    totals.min_packets_per_call = Some(totals.min_packets_per_call.map_or(got, |m| m.min(got)));
}
