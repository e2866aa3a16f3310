//! Media workers: the async shell that gives each call real RTP.
//!
//! Owns the RTP/RTCP sockets of every call, the port pool, and a few worker threads
//! (default: one per core) that each drive many calls with **one pacing loop**: no task or
//! timer per packet. The sans-IO parts do the work ([`MediaSession`], [`Pacer`],
//! [`Playback`], [`CallDtmf`], [`Recorder`]); this module moves bytes between them and the
//! sockets.
//!
//! Contract (what a call task sees):
//! - [`MediaWorkers::reserve`] takes a port pair from the [`PortPool`] and binds RTP (even
//!   port) and RTCP (port + 1) before the SDP answer is written ([`Reservation::port`]);
//!   an exhausted pool is [`MediaError::PortsExhausted`] (answer 503).
//!   [`Reservation::start`] hands the call to the least-loaded worker and returns
//!   [`CallMedia`]. [`MediaWorkers::open`] does both.
//! - [`CallMedia`] sends commands (play, stop, re-INVITE, INFO digit, recording, close) and
//!   receives [`MediaNotice`]s (digits, playback finished, media timeout, quality,
//!   recording stopped). Dropping it closes the call's media.
//! - Every digit is logged as the tracing event `dtmf` with fields `call`, `digit`,
//!   `source` (`rfc4733`, `info`, `inband`).
//!
//! ## The worker loop
//! A worker is an OS thread (`media-N`), not a tokio task, so SIP bursts on the runtime do
//! not delay the 20 ms packets; with `rtp.realtime` it asks for `SCHED_FIFO`. It owns its
//! calls' state and one [`Pacer`], and blocks on its command channel until the pacer's
//! next deadline (`recv_timeout`). On wake-up it takes every waiting command, then serves
//! every due slot: per slot it reads the call's sockets, runs the call's timers (RTCP,
//! media timeout, RFC 4733 lost end) when due, and sends one frame (prompt, music or G.711
//! silence) with a non-blocking `send_to` (a full socket buffer drops the packet and
//! counts it; nothing waits on the send path).
//!
//! - **Every answered, send-capable call is paced**: with nothing to play it sends silence
//!   frames (some trunks hang up on a call without RTP). A call on hold (no remote address,
//!   `recvonly`/`inactive`) stays in the pacer but sends nothing; its playlist still advances
//!   so `PlaybackFinished` keeps its timing.
//! - **Session timers ride on the pacer**: rather than a second heap of per-call deadlines,
//!   each slot compares `now` with the call's cached earliest deadline
//!   (`MediaSession::poll_timeout` / `CallDtmf::poll_timeout`). The timers concerned (RTCP
//!   every few seconds, media timeout of seconds, DTMF lost-end of a few hundred ms) tolerate
//!   the one-ptime lateness this gives.
//! - **Wake-ups are batched**: the first slot of a call is aligned on a worker-wide 2 ms grid,
//!   so a worker wakes at most 500 times a second whatever its number of calls, and sends
//!   each group of due calls back to back (small groups: 3,000 calls on 2 workers are 150
//!   per wake-up, so the last of a group is not far behind the first).
//! - **Decoding is on demand**: the caller's audio is decoded to linear only when in-band
//!   DTMF detection runs (the SDP had no telephone-event) or a recording is active.
//! - **Recordings go through a jitter buffer**: while recording, the caller's packets are
//!   put back in sequence order and played out at a fixed 60 ms delay, one frame per pacing
//!   slot (lost frames concealed by one repeat), so the WAV has no reordering or gaps.
//!
//! ## Receiving: read at each call's own slot, no task and no epoll
//! The sockets are plain non-blocking `std` sockets, not registered with tokio: an arrival
//! costs no epoll event and wakes nobody. Every answered call has a 20 ms slot, so the
//! worker reads the call's RTP socket at every second slot with one `recvmmsg`
//! ([`super::udp`], up to 16 datagrams, again only if it came back full; every slot while
//! recording), and its RTCP socket every tenth slot (RTCP comes every few seconds), just
//! before sending the call's next frame. A packet waits at most two ptimes in the kernel
//! buffer, which is harmless for latching, DTMF, RTCP and the media timeout. Earlier
//! designs, measured (bench/README.md): a receive task per call (1,000 calls: 51 % of a
//! core), then tokio-registered sockets read at the slot (42 %, then 68 % at 2,000 calls on
//! the first machine); the epoll events those sockets raised also cost the *sender* a
//! wake-up per packet. Hang-up drops the sockets with the call's state, so they close
//! deterministically.
//!
//! ```no_run
//! use std::sync::Arc;
//! use guichet::engine::media::{MediaConfig, MediaWorkers, PlayItem};
//! use guichet::ids::CallKey;
//! use guichet::media::prompts::PromptStore;
//! # async fn demo(session: guichet::sdp::Session) -> Result<(), Box<dyn std::error::Error>> {
//! let prompts = Arc::new(PromptStore::load_dir("audio".as_ref())?);
//! let workers = MediaWorkers::start(MediaConfig::default(), prompts);
//! let reservation = workers.reserve()?; // 503 on MediaError::PortsExhausted
//! let _port_for_the_sdp_answer = reservation.port();
//! let mut media = reservation.start(CallKey(1), &session)?;
//! media.play(vec![PlayItem::Prompt("fr/accueil".into())], true)?;
//! while let Some(notice) = media.next_notice().await {
//!     println!("{notice:?}");
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::udp::RecvBatch;

use crate::ids::CallKey;
use crate::media::dtmf::{CallDtmf, Digit, DtmfError, DtmfSource, info};
use crate::media::g711::Law;
use crate::media::jitter::{FrameKind, JitterBuffer, JitterConfig};
use crate::media::pacer::{Due, Pacer, PacerError, StreamId};
use crate::media::playback::{Item, Playback, PlaybackConfig};
use crate::media::ports::{DEFAULT_QUARANTINE, PortPair, PortPool, PortsError};
use crate::media::prompts::{MOH_PREFIX, PromptStore};
use crate::media::recorder::{Recorder, RecorderConfig, Recording};
use crate::media::rtcp::Quality;
use crate::media::rtp::Received;
use crate::media::session::{MediaEvent, MediaSession, PacketKind, SessionConfig};
use crate::sdp::{self, Codec, Direction};

/// Largest datagram read from a media socket.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams taken from a call's RTP socket per `recvmmsg` (one call per slot, more only
/// when this many were waiting).
const MAX_BATCH: usize = 16;
/// The RTP socket is read every this many slots (every slot while recording): one
/// `recvmmsg` then takes two packets, which halves the per-call read calls (a small gain,
/// measured in bench/README.md); 40 ms is nothing to latching, DTMF or the media timeout.
const RTP_POLL_SLOTS: u32 = 2;
/// The RTCP socket is read every this many slots (RTCP comes every few seconds).
const RTCP_POLL_SLOTS: u32 = 10;
/// Bind attempts per reservation when a pair is taken by another program.
const BIND_ATTEMPTS: usize = 8;
/// Grid on which calls' first slots are aligned (bounds the worker's wake-ups).
const WAKE_GRID: Duration = Duration::from_millis(2);
/// Packetisation times accepted from SDP (also the session's bounds).
const MIN_PTIME_MS: u16 = 10;
const MAX_PTIME_MS: u16 = 200;
/// G.711 samples (= bytes) per millisecond.
const BYTES_PER_MS: usize = 8;

/// Settings of the media workers.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Worker threads (default: available cores).
    pub workers: usize,
    /// Address the RTP/RTCP sockets bind to.
    pub rtp_bind: IpAddr,
    /// First and last port of the RTP range (both included).
    pub port_first: u16,
    pub port_last: u16,
    /// How long a released port pair rests before reuse.
    pub quarantine: Duration,
    /// No RTP for this long raises [`MediaNotice::MediaTimeout`].
    pub no_rtp_timeout: Duration,
    /// RTCP report interval.
    pub rtcp_interval: Duration,
    /// Silence between two consecutive prompts.
    pub prompt_gap: Duration,
    /// Seed for SSRCs and initial sequence numbers (mixed with a per-call counter).
    pub seed: u64,
    /// RTCP CNAME.
    pub cname: String,
    /// Ask for real-time scheduling (`SCHED_FIFO`) for the worker threads.
    pub realtime: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rtp_bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_first: 20000,
            port_last: 29999,
            quarantine: DEFAULT_QUARANTINE,
            no_rtp_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
            prompt_gap: PlaybackConfig::default().gap,
            seed: 0x0067_7569_6368_6574, // "guichet"
            cname: "guichet".to_owned(),
            realtime: false,
        }
    }
}

/// Errors of the media workers.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Every RTP port pair is in use or in quarantine: answer the call with 503.
    #[error("RTP ports exhausted: {0}")]
    PortsExhausted(#[source] PortsError),
    /// The configured port range is unusable.
    #[error(transparent)]
    Ports(PortsError),
    /// No port pair could be bound (taken by another program, or a bad bind address).
    #[error("cannot bind RTP/RTCP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `play` named a prompt the store does not have.
    #[error("unknown prompt {0:?}")]
    UnknownPrompt(String),
    /// An INFO body that is not DTMF.
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
    /// The negotiated packetisation cannot be paced.
    #[error(transparent)]
    Pacer(#[from] PacerError),
    /// The worker is gone (runtime shutting down) or the call was closed.
    #[error("the media worker has stopped")]
    WorkerStopped,
}

/// One entry of a playlist given to [`CallMedia::play`].
#[derive(Debug, Clone, PartialEq)]
pub enum PlayItem {
    /// A prompt id from the store (`fr/accueil`).
    Prompt(String),
    /// Silence for this long.
    Silence(Duration),
    /// Music on hold: every prompt under `moh/`, in a loop, until stopped or barged in.
    MusicOnHold,
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingOutcome {
    /// Written; why it stopped and how long it is.
    Done(Recording),
    /// The file could not be created or written.
    Failed(String),
}

/// What the media of a call tells its call task.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaNotice {
    /// A key press, de-duplicated across sources.
    Digit { digit: Digit, source: DtmfSource },
    /// The playlist of the last [`CallMedia::play`] has ended (played out or barged in;
    /// not sent after [`CallMedia::stop_playback`] or when a new `play` replaced it).
    PlaybackFinished,
    /// No RTP for `no_rtp_timeout`.
    MediaTimeout,
    /// RTP came back after a media timeout.
    MediaResumed,
    /// The peer sent RTCP BYE.
    PeerBye,
    /// The peer's report about our stream.
    Quality(Quality),
    /// A recording ended (limits reached, `stop_recording`, or a write error).
    RecordingStopped(RecordingOutcome),
    /// The media was closed ([`CallMedia::close`]): the call's final RTP figures. The last
    /// notice of a call.
    Closed(MediaStats),
}

/// One call's RTP figures, for its call record.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MediaStats {
    /// RTP packets we sent (prompts, silence, events).
    pub packets_sent: u32,
    /// RTP packets received from the latched source (duplicates excluded).
    pub packets_received: u64,
    /// Packets expected from the caller's sequence numbers but never received.
    pub packets_lost: i64,
    /// Packets that came too late or out of the window.
    pub packets_late: u64,
    /// Interarrival jitter of the caller's stream (RFC 3550 A.8), in milliseconds.
    pub jitter_ms: f64,
    /// Times the caller's RTP stopped for `no_rtp_timeout`.
    pub media_timeouts: u64,
}

/// Counters of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub calls: usize,
    pub packets_sent: u64,
    /// Sends dropped because the socket buffer was full (or another send error).
    pub send_errors: u64,
    pub packets_received: u64,
    /// Slots skipped by the pacer after stalls.
    pub slots_skipped: u64,
}

#[derive(Debug, Default)]
struct WorkerCounters {
    calls: AtomicUsize,
    packets_sent: AtomicU64,
    send_errors: AtomicU64,
    packets_received: AtomicU64,
    slots_skipped: AtomicU64,
}

#[derive(Debug)]
struct WorkerHandle {
    commands: std_mpsc::Sender<Command>,
    counters: Arc<WorkerCounters>,
}

#[derive(Debug)]
struct Shared {
    config: MediaConfig,
    prompts: Arc<PromptStore>,
    pool: Mutex<Option<PortPool>>,
    pool_error: Option<PortsError>,
    workers: Vec<WorkerHandle>,
    next_stream: AtomicU32,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, Option<PortPool>> {
        // A poisoned lock only means another thread panicked mid-call: the pool's state is
        // still consistent (each method completes or does nothing).
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, pair: PortPair) {
        if let Some(pool) = self.pool().as_mut()
            && let Err(e) = pool.release(pair, Instant::now())
        {
            tracing::warn!(%pair, error = %e, "releasing an RTP port pair");
        }
    }
}

/// The media workers (cheap to clone; all clones share the workers and the port pool).
#[derive(Debug, Clone)]
pub struct MediaWorkers {
    shared: Arc<Shared>,
}

impl MediaWorkers {
    /// Start the worker threads (`media-0`, `media-1`, ...). A bad port range is reported
    /// by every later [`Self::reserve`]; a thread that cannot be started makes its share
    /// of calls fail with [`MediaError::WorkerStopped`].
    pub fn start(config: MediaConfig, prompts: Arc<PromptStore>) -> MediaWorkers {
        let (pool, pool_error) =
            match PortPool::new(config.port_first, config.port_last, config.quarantine) {
                Ok(pool) => (Some(pool), None),
                Err(e) => (None, Some(e)),
            };
        let epoch = Instant::now();
        let mut workers = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..config.workers.max(1) {
            let (tx, rx) = std_mpsc::channel();
            let counters = Arc::new(WorkerCounters::default());
            workers.push(WorkerHandle {
                commands: tx,
                counters: counters.clone(),
            });
            receivers.push((rx, counters));
        }
        let shared = Arc::new(Shared {
            config,
            prompts,
            pool: Mutex::new(pool),
            pool_error,
            workers,
            next_stream: AtomicU32::new(1),
        });
        for (index, (rx, counters)) in receivers.into_iter().enumerate() {
            let worker = Worker::new(index, Arc::downgrade(&shared), rx, counters, epoch);
            let realtime = shared.config.realtime;
            // The starter's tracing subscriber (global or scoped, as in tests) follows the
            // worker onto its thread, so `dtmf` and other events reach the same place.
            let dispatch = tracing::dispatcher::get_default(|d| d.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || {
                    let _scope = tracing::dispatcher::set_default(&dispatch);
                    if realtime {
                        match set_realtime() {
                            Ok(()) => tracing::debug!(worker = index, "real-time scheduling"),
                            Err(e) => tracing::warn!(
                                worker = index,
                                error = %e,
                                "rtp.realtime: cannot get real-time scheduling, running normally"
                            ),
                        }
                    }
                    worker.run()
                });
            if let Err(e) = spawned {
                tracing::error!(worker = index, error = %e, "cannot start a media worker thread");
            }
        }
        MediaWorkers { shared }
    }

    /// Take a port pair and bind its sockets; the port goes into the SDP answer.
    pub fn reserve(&self) -> Result<Reservation, MediaError> {
        let ip = self.shared.config.rtp_bind;
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            let pair = {
                let mut guard = self.shared.pool();
                let Some(pool) = guard.as_mut() else {
                    let e = self
                        .shared
                        .pool_error
                        .clone()
                        .unwrap_or(PortsError::EmptyRange {
                            first: self.shared.config.port_first,
                            last: self.shared.config.port_last,
                        });
                    return Err(MediaError::Ports(e));
                };
                pool.allocate(Instant::now()).map_err(|e| match e {
                    PortsError::Exhausted { .. } => MediaError::PortsExhausted(e),
                    e => MediaError::Ports(e),
                })?
            };
            match bind_pair(ip, pair) {
                Ok((rtp, rtcp)) => {
                    return Ok(Reservation {
                        shared: self.shared.clone(),
                        ports: Some(BoundPair { pair, rtp, rtcp }),
                    });
                }
                Err(e) => {
                    tracing::warn!(%pair, error = %e, "RTP port pair taken, trying another");
                    self.shared.release(pair);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or(MediaError::WorkerStopped))
    }

    /// [`Self::reserve`] then [`Reservation::start`].
    pub fn open(&self, call: CallKey, session: &sdp::Session) -> Result<CallMedia, MediaError> {
        self.reserve()?.start(call, session)
    }

    /// Calls per worker now.
    pub fn loads(&self) -> Vec<usize> {
        self.shared
            .workers
            .iter()
            .map(|w| w.counters.calls.load(Ordering::Relaxed))
            .collect()
    }

    /// Counters of each worker.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.shared
            .workers
            .iter()
            .map(|w| WorkerStats {
                calls: w.counters.calls.load(Ordering::Relaxed),
                packets_sent: w.counters.packets_sent.load(Ordering::Relaxed),
                send_errors: w.counters.send_errors.load(Ordering::Relaxed),
                packets_received: w.counters.packets_received.load(Ordering::Relaxed),
                slots_skipped: w.counters.slots_skipped.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Port pairs in use (calls and reservations).
    pub fn ports_in_use(&self) -> usize {
        self.shared.pool().as_ref().map_or(0, PortPool::in_use)
    }
}

#[derive(Debug)]
struct BoundPair {
    pair: PortPair,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

fn bind_pair(ip: IpAddr, pair: PortPair) -> Result<(UdpSocket, UdpSocket), MediaError> {
    let bind = |port: u16| {
        let addr = SocketAddr::new(ip, port);
        // Plain non-blocking sockets, not registered with tokio: the worker reads them at
        // the call's slot, so an arrival costs no epoll event.
        let socket = UdpSocket::bind(addr).and_then(|s| s.set_nonblocking(true).map(|()| s));
        socket.map_err(|source| MediaError::Bind { addr, source })
    };
    Ok((bind(pair.rtp())?, bind(pair.rtcp())?))
}

/// A bound port pair waiting for the SDP exchange. Dropping it releases the ports.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    ports: Option<BoundPair>,
}

impl Reservation {
    /// Our RTP port (RTCP is the next one), for the SDP answer.
    pub fn port(&self) -> u16 {
        self.ports.as_ref().map_or(0, |p| p.pair.rtp())
    }

    /// Start the call's media on the least-loaded worker.
    pub fn start(mut self, call: CallKey, session: &sdp::Session) -> Result<CallMedia, MediaError> {
        let ports = self.ports.take().ok_or(MediaError::WorkerStopped)?;
        let Some((index, worker)) = self
            .shared
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.counters.calls.load(Ordering::Relaxed))
        else {
            self.shared.release(ports.pair);
            return Err(MediaError::WorkerStopped);
        };
        let id = StreamId(self.shared.next_stream.fetch_add(1, Ordering::Relaxed));
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let local_port = ports.pair.rtp();
        worker.counters.calls.fetch_add(1, Ordering::Relaxed);
        let start = Command::Start(Box::new(NewCall {
            id,
            call,
            session: session.clone(),
            ports,
            notices: notices_tx,
        }));
        if let Err(std_mpsc::SendError(Command::Start(new))) = worker.commands.send(start) {
            worker.counters.calls.fetch_sub(1, Ordering::Relaxed);
            self.shared.release(new.ports.pair);
            return Err(MediaError::WorkerStopped);
        }
        tracing::debug!(%call, port = local_port, worker = index, "media started");
        Ok(CallMedia {
            call,
            id,
            local_port,
            commands: worker.commands.clone(),
            prompts: self.shared.prompts.clone(),
            notices,
            closed: false,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(ports) = self.ports.take() {
            self.shared.release(ports.pair);
        }
    }
}

/// The media of one call, held by its call task. Dropping it closes the media.
#[derive(Debug)]
pub struct CallMedia {
    call: CallKey,
    id: StreamId,
    local_port: u16,
    commands: std_mpsc::Sender<Command>,
    prompts: Arc<PromptStore>,
    notices: mpsc::UnboundedReceiver<MediaNotice>,
    closed: bool,
}

impl CallMedia {
    pub fn call(&self) -> CallKey {
        self.call
    }

    /// Our RTP port.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    fn send(&self, command: Command) -> Result<(), MediaError> {
        if self.closed {
            return Err(MediaError::WorkerStopped);
        }
        self.commands
            .send(command)
            .map_err(|_| MediaError::WorkerStopped)
    }

    /// Play these items (replacing what is playing). `interruptible` prompts stop at the
    /// first digit (barge-in). Unknown prompt ids are refused before anything changes.
    pub fn play(&self, items: Vec<PlayItem>, interruptible: bool) -> Result<(), MediaError> {
        let mut resolved = Vec::with_capacity(items.len());
        for item in items {
            resolved.push(match item {
                PlayItem::Prompt(id) => {
                    let prompt = self.prompts.get(&id).ok_or(MediaError::UnknownPrompt(id))?;
                    Item::Prompt {
                        prompt: prompt.clone(),
                        interruptible,
                    }
                }
                PlayItem::Silence(d) => Item::Silence(d),
                PlayItem::MusicOnHold => Item::MusicOnHold(self.prompts.with_prefix(MOH_PREFIX)),
            });
        }
        self.send(Command::Play {
            id: self.id,
            items: resolved,
        })
    }

    /// Stop playing (no `PlaybackFinished` follows); silence is sent instead.
    pub fn stop_playback(&self) -> Result<(), MediaError> {
        self.send(Command::StopPlayback { id: self.id })
    }

    /// A re-INVITE changed the session: new remote, hold (stop sending), resume.
    pub fn update_session(&self, session: sdp::Session) -> Result<(), MediaError> {
        self.send(Command::UpdateSession {
            id: self.id,
            session: Box::new(session),
        })
    }

    /// A SIP INFO body; a body that is not DTMF is an error (answer 415 or 400).
    pub fn info_digit(&self, content_type: &str, body: &[u8]) -> Result<(), MediaError> {
        info::parse_info(content_type, body).map_err(DtmfError::from)?;
        self.send(Command::Info {
            id: self.id,
            at: Instant::now(),
            content_type: content_type.to_owned(),
            body: body.to_vec(),
        })
    }

    /// Record the caller into a WAV at `path` (replaces a recording in progress).
    pub fn start_recording(
        &self,
        path: impl Into<PathBuf>,
        limits: RecorderConfig,
    ) -> Result<(), MediaError> {
        self.send(Command::StartRecording {
            id: self.id,
            path: path.into(),
            limits,
        })
    }

    /// Finish the recording; `RecordingStopped` follows.
    pub fn stop_recording(&self) -> Result<(), MediaError> {
        self.send(Command::StopRecording { id: self.id })
    }

    /// End the media: RTCP BYE, the port pair goes to quarantine.
    pub fn close(&mut self) {
        if !self.closed {
            let _ = self.commands.send(Command::Close { id: self.id });
            self.closed = true;
        }
    }

    /// The next notice; `None` once the media is closed and drained.
    pub async fn next_notice(&mut self) -> Option<MediaNotice> {
        self.notices.recv().await
    }

    /// A notice if one is waiting.
    pub fn try_notice(&mut self) -> Option<MediaNotice> {
        self.notices.try_recv().ok()
    }

    /// The notice receiver itself (for `tokio::select!`).
    pub fn notices(&mut self) -> &mut mpsc::UnboundedReceiver<MediaNotice> {
        &mut self.notices
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug)]
struct NewCall {
    id: StreamId,
    call: CallKey,
    session: sdp::Session,
    ports: BoundPair,
    notices: mpsc::UnboundedSender<MediaNotice>,
}

#[derive(Debug)]
enum Command {
    Start(Box<NewCall>),
    Play {
        id: StreamId,
        items: Vec<Item>,
    },
    StopPlayback {
        id: StreamId,
    },
    UpdateSession {
        id: StreamId,
        session: Box<sdp::Session>,
    },
    Info {
        id: StreamId,
        at: Instant,
        content_type: String,
        body: Vec<u8>,
    },
    StartRecording {
        id: StreamId,
        path: PathBuf,
        limits: RecorderConfig,
    },
    StopRecording {
        id: StreamId,
    },
    Close {
        id: StreamId,
    },
}

fn law_of(codec: Codec) -> Law {
    match codec {
        Codec::Pcmu => Law::Ulaw,
        Codec::Pcma => Law::Alaw,
    }
}

fn ptime_of(session: &sdp::Session) -> Duration {
    Duration::from_millis(u64::from(
        session.ptime_ms.clamp(MIN_PTIME_MS, MAX_PTIME_MS),
    ))
}

/// We send when the remote has an address and the direction lets us.
fn may_send(session: &sdp::Session) -> bool {
    session.remote.is_some()
        && matches!(
            session.local_direction,
            Direction::SendRecv | Direction::SendOnly
        )
}

/// We expect RTP when the direction lets the peer send.
fn expects_rtp(session: &sdp::Session) -> bool {
    matches!(
        session.local_direction,
        Direction::SendRecv | Direction::RecvOnly
    )
}

/// A per-call seed from the configured seed (splitmix64 of the stream number).
fn call_seed(seed: u64, id: StreamId) -> u64 {
    let mut z = seed ^ u64::from(id.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct ActiveRecording {
    recorder: Recorder<BufWriter<File>>,
    /// The caller's packets, reordered and played out at a fixed delay (60 ms) one frame
    /// per pacing slot, so a recording has no reordering, gaps or jitter of its own.
    jitter: JitterBuffer,
}

struct CallState {
    call: CallKey,
    sdp: sdp::Session,
    session: MediaSession,
    law: Law,
    frame_len: usize,
    playback: Option<Playback>,
    dtmf: CallDtmf,
    recording: Option<ActiveRecording>,
    pair: PortPair,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Slots served, to read the RTP socket every [`RTP_POLL_SLOTS`] and the RTCP socket
    /// every [`RTCP_POLL_SLOTS`].
    slots: u32,
    notices: mpsc::UnboundedSender<MediaNotice>,
    /// Earliest deadline of the session and the DTMF receiver.
    timer_at: Option<Instant>,
}

/// Buffers reused across calls and wake-ups.
struct Scratch {
    packet: Vec<u8>,
    frame: Vec<u8>,
    pcm: Vec<i16>,
    /// Datagrams received from one socket.
    rx: RecvBatch,
}

struct Worker {
    index: usize,
    shared: std::sync::Weak<Shared>,
    config: MediaConfig,
    commands: std_mpsc::Receiver<Command>,
    counters: Arc<WorkerCounters>,
    calls: HashMap<StreamId, CallState>,
    pacer: Pacer,
    due: Vec<Due<StreamId>>,
    scratch: Scratch,
    epoch: Instant,
}

impl Worker {
    fn new(
        index: usize,
        shared: std::sync::Weak<Shared>,
        commands: std_mpsc::Receiver<Command>,
        counters: Arc<WorkerCounters>,
        epoch: Instant,
    ) -> Worker {
        let config = shared
            .upgrade()
            .map(|s| s.config.clone())
            .unwrap_or_default();
        Worker {
            index,
            shared,
            config,
            commands,
            counters,
            calls: HashMap::new(),
            pacer: Pacer::new(),
            due: Vec::new(),
            scratch: Scratch {
                packet: Vec::with_capacity(MAX_DATAGRAM),
                rx: RecvBatch::new(MAX_BATCH, MAX_DATAGRAM),
                frame: vec![0; usize::from(MAX_PTIME_MS) * BYTES_PER_MS],
                pcm: Vec::with_capacity(usize::from(MAX_PTIME_MS) * BYTES_PER_MS),
            },
            epoch,
        }
    }

    /// The worker thread: sleep until the next slot or a command, take every waiting
    /// command, serve the due slots. Ends when every command sender is gone.
    fn run(mut self) {
        tracing::debug!(worker = self.index, "media worker started");
        loop {
            // A deadline already past waits zero: one non-blocking look at the channel.
            let first = match self.pacer.next_deadline() {
                Some(at) => self
                    .commands
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                None => self
                    .commands
                    .recv()
                    .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
            };
            match first {
                Ok(command) => self.command(command),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            // Take everything else that is already waiting, without blocking.
            while let Ok(command) = self.commands.try_recv() {
                self.command(command);
            }
            self.serve_due(Instant::now());
        }
        for id in self.calls.keys().copied().collect::<Vec<_>>() {
            self.close(id);
        }
        tracing::debug!(worker = self.index, "media worker stopped");
    }

    /// Serve every due slot: timers, then one frame per send-capable call.
    fn serve_due(&mut self, now: Instant) {
        self.due.clear();
        self.pacer.due_slots(now, &mut self.due);
        if self.due.is_empty() {
            return;
        }
        let wall = SystemTime::now();
        let mut sent = 0u64;
        let mut errors = 0u64;
        let mut skipped = 0u64;
        let mut received = 0u64;
        for slot in &self.due {
            skipped += u64::from(slot.skipped);
            let Some(call) = self.calls.get_mut(&slot.stream) else {
                continue;
            };
            let (s, e, r) = call.serve_slot(slot.deadline, now, wall, &mut self.scratch);
            sent += s;
            errors += e;
            received += r;
        }
        self.counters
            .packets_sent
            .fetch_add(sent, Ordering::Relaxed);
        self.counters
            .send_errors
            .fetch_add(errors, Ordering::Relaxed);
        self.counters
            .slots_skipped
            .fetch_add(skipped, Ordering::Relaxed);
        self.counters
            .packets_received
            .fetch_add(received, Ordering::Relaxed);
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Start(new) => self.start(*new, now),
            Command::Close { id } => self.close(id),
            Command::Play { id, items } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    let config = PlaybackConfig {
                        gap: self.config.prompt_gap,
                    };
                    call.playback = Some(Playback::with_config(items, call.law, config));
                }
            }
            Command::StopPlayback { id } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.playback = None;
                }
            }
            Command::UpdateSession { id, session } => self.update_session(id, *session, now),
            Command::Info {
                id,
                at,
                content_type,
                body,
            } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    // Already validated by CallMedia::info_digit.
                    let _ = call.dtmf.handle_info(at, &content_type, &body);
                    call.after_input(now, &mut self.scratch);
                }
            }
            Command::StartRecording { id, path, limits } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.finish_recording();
                    let recorder = File::create(&path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))
                        .and_then(|f| {
                            Recorder::new(BufWriter::new(f), limits)
                                .map_err(|e| format!("{}: {e}", path.display()))
                        });
                    let jitter = JitterBuffer::new(JitterConfig {
                        samples_per_frame: u32::try_from(call.frame_len).unwrap_or(160),
                        frame_bytes: call.frame_len,
                        silence_byte: call.law.silence(),
                        ..JitterConfig::default()
                    });
                    match recorder {
                        Ok(recorder) => call.recording = Some(ActiveRecording { recorder, jitter }),
                        Err(e) => {
                            call.notify(MediaNotice::RecordingStopped(RecordingOutcome::Failed(e)))
                        }
                    }
                }
            }
            Command::StopRecording { id } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.finish_recording();
                }
            }
        }
    }

    fn session_config(&self, id: StreamId, session: &sdp::Session) -> SessionConfig {
        let placeholder = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9);
        let mut config = SessionConfig::new(
            call_seed(self.config.seed, id),
            session.remote.unwrap_or(placeholder),
        );
        config.audio_payload_type = session.payload_type;
        config.event_payload_type = session.telephone_event;
        config.ptime = ptime_of(session);
        config.no_rtp_timeout = self.config.no_rtp_timeout;
        config.rtcp_interval = self.config.rtcp_interval;
        config.cname = self.config.cname.clone();
        config
    }

    /// The first slot: at least one ptime from now, on the worker's wake grid.
    fn first_slot(&self, now: Instant, ptime: Duration) -> Instant {
        let earliest = now + ptime;
        let since = earliest.saturating_duration_since(self.epoch).as_nanos();
        let grid = WAKE_GRID.as_nanos();
        let rounded = since.div_ceil(grid) * grid;
        // Offsets fit: the worker runs for far less than u64 nanoseconds (584 years).
        self.epoch + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX / 2))
    }

    fn start(&mut self, new: NewCall, now: Instant) {
        let NewCall {
            id,
            call,
            session,
            ports,
            notices,
        } = new;
        let ptime = ptime_of(&session);
        if let Err(e) = self.pacer.add(id, self.first_slot(now, ptime), ptime) {
            // Unreachable with the clamped ptime; give the ports back all the same.
            tracing::error!(%call, error = %e, "cannot pace the call");
            self.counters.calls.fetch_sub(1, Ordering::Relaxed);
            if let Some(shared) = self.shared.upgrade() {
                shared.release(ports.pair);
            }
            return;
        }
        let mut media = MediaSession::new(self.session_config(id, &session), now);
        media.pause_media_timeout(!expects_rtp(&session));
        let mut state = CallState {
            call,
            law: law_of(session.codec),
            frame_len: frame_len(ptime),
            dtmf: CallDtmf::new(session.telephone_event.is_none()),
            sdp: session,
            session: media,
            playback: None,
            recording: None,
            pair: ports.pair,
            rtp: ports.rtp,
            rtcp: ports.rtcp,
            slots: 0,
            notices,
            timer_at: None,
        };
        state.after_input(now, &mut self.scratch);
        self.calls.insert(id, state);
    }

    fn update_session(&mut self, id: StreamId, new: sdp::Session, now: Instant) {
        let config = self.calls.get(&id).map(|_| self.session_config(id, &new));
        let first = self.first_slot(now, ptime_of(&new));
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let old = &call.sdp;
        let format_changed = old.codec != new.codec
            || old.payload_type != new.payload_type
            || old.telephone_event != new.telephone_event
            || old.ptime_ms != new.ptime_ms;
        if format_changed {
            if let Some(config) = config {
                call.session = MediaSession::new(config, now);
            }
            call.law = law_of(new.codec);
            call.frame_len = frame_len(ptime_of(&new));
            call.dtmf = CallDtmf::new(new.telephone_event.is_none());
            if call.playback.take().is_some() {
                call.notify(MediaNotice::PlaybackFinished);
            }
            if ptime_of(old) != ptime_of(&new) {
                // ptime is clamped to a valid period.
                let _ = self.pacer.add(id, first, ptime_of(&new));
            }
        } else if let Some(remote) = new.remote
            && old.remote != new.remote
        {
            call.session.set_remote(remote, None);
        }
        call.session.pause_media_timeout(!expects_rtp(&new));
        call.sdp = new;
        call.after_input(now, &mut self.scratch);
    }

    fn close(&mut self, id: StreamId) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        self.pacer.remove(id);
        call.session.close();
        let (sent, errors) = call.flush_transmits(&mut self.scratch);
        let stats = call.session.stats();
        call.notify(MediaNotice::Closed(MediaStats {
            packets_sent: stats.packets_sent,
            packets_received: stats.rx.received,
            packets_lost: stats.rx.lost,
            packets_late: stats.rx.late,
            jitter_ms: stats.rx.jitter_ms,
            media_timeouts: stats.media_timeouts,
        }));
        self.counters
            .packets_sent
            .fetch_add(sent, Ordering::Relaxed);
        self.counters
            .send_errors
            .fetch_add(errors, Ordering::Relaxed);
        call.finish_recording();
        self.counters.calls.fetch_sub(1, Ordering::Relaxed);
        if let Some(shared) = self.shared.upgrade() {
            shared.release(call.pair);
        }
        tracing::debug!(call = %call.call, "media closed");
    }
}

/// `SCHED_FIFO` priority of real-time media workers: above every normal thread, low among
/// real-time ones (kernel threads and audio servers use higher).
#[cfg(target_os = "linux")]
const REALTIME_PRIORITY: libc::c_int = 10;

/// Put the calling thread under `SCHED_FIFO` (Linux; an error elsewhere). The kernel's
/// real-time throttling (95 % of each second by default) still leaves time to the rest.
fn set_realtime() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param {
            sched_priority: REALTIME_PRIORITY,
        };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "real-time scheduling is implemented for Linux only",
    ))
}

fn frame_len(ptime: Duration) -> usize {
    // ptime is clamped to 10..=200 ms: at most 1600 bytes, the scratch frame's size.
    usize::try_from(ptime.as_millis()).unwrap_or(usize::from(MAX_PTIME_MS)) * BYTES_PER_MS
}

impl CallState {
    fn notify(&self, notice: MediaNotice) {
        // The call task may be gone already (hang-up races): nothing to do then.
        let _ = self.notices.send(notice);
    }

    /// Read what the caller sent since the last read (non-blocking, one `recvmmsg` of up
    /// to [`MAX_BATCH`] datagrams, again only if it came back full; the RTP socket every
    /// [`RTP_POLL_SLOTS`], the RTCP socket every [`RTCP_POLL_SLOTS`]) and feed it to the
    /// session, DTMF and recording.
    fn poll_sockets(&mut self, now: Instant, scratch: &mut Scratch) -> (u64, u64, u64) {
        let mut received = 0u64;
        self.slots = self.slots.wrapping_add(1);
        let rtp_due = self.recording.is_some() || self.slots.is_multiple_of(RTP_POLL_SLOTS);
        let rtcp_due = self.slots.is_multiple_of(RTCP_POLL_SLOTS);
        for (kind, due) in [(PacketKind::Rtp, rtp_due), (PacketKind::Rtcp, rtcp_due)] {
            if !due {
                continue;
            }
            loop {
                let socket = match kind {
                    PacketKind::Rtp => &self.rtp,
                    PacketKind::Rtcp => &self.rtcp,
                };
                // Errors (an ICMP report of an earlier send) end this slot's reading.
                let n = scratch.rx.recv(socket).unwrap_or(0);
                for d in scratch.rx.iter() {
                    received += 1;
                    self.handle_packet(now, kind, d.from, d.bytes, &mut scratch.pcm);
                }
                if n < scratch.rx.capacity() {
                    break;
                }
            }
        }
        if received == 0 {
            return (0, 0, 0);
        }
        let (sent, errors) = self.after_input(now, scratch);
        (sent, errors, received)
    }

    /// One due slot: read the caller's packets, run due timers, then send one frame if we
    /// may send. Returns (packets sent, send errors, packets received).
    fn serve_slot(
        &mut self,
        deadline: Instant,
        now: Instant,
        wall: SystemTime,
        scratch: &mut Scratch,
    ) -> (u64, u64, u64) {
        let (mut sent, mut errors, received) = self.poll_sockets(now, scratch);
        if self.timer_at.is_some_and(|t| t <= now) {
            self.session.handle_timeout(now, wall);
            self.dtmf.handle_timeout(now);
            let (s, e) = self.after_input(now, scratch);
            sent += s;
            errors += e;
        }
        let mut counts = (sent, errors, received);
        if let Some(rec) = self.recording.as_mut() {
            let played = rec.jitter.pop();
            if played.kind != FrameKind::Buffering {
                scratch.pcm.clear();
                self.law.decode(played.payload, &mut scratch.pcm);
                match rec.recorder.push(&scratch.pcm) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => self.finish_recording(),
                }
            }
        }
        // frame_len <= the scratch frame's length (see frame_len).
        let Some(frame) = scratch.frame.get_mut(..self.frame_len) else {
            return counts;
        };
        let mut marker = false;
        let mut have_frame = false;
        if let Some(playback) = self.playback.as_mut() {
            if playback.next_frame(frame).is_some() {
                marker = playback.is_talkspurt_start();
                have_frame = true;
            } else {
                self.playback = None;
                let _ = self.notices.send(MediaNotice::PlaybackFinished);
            }
        }
        if !may_send(&self.sdp) {
            return counts;
        }
        if !have_frame {
            frame.fill(self.law.silence());
        }
        scratch.packet.clear();
        match self
            .session
            .send_audio(deadline, frame, marker, &mut scratch.packet)
        {
            Ok(tx) => match self.rtp.send_to(&scratch.packet, tx.dest) {
                Ok(_) => counts.0 += 1,
                Err(_) => counts.1 += 1,
            },
            Err(_) => counts.1 += 1,
        }
        counts
    }

    fn handle_packet(
        &mut self,
        at: Instant,
        kind: PacketKind,
        from: SocketAddr,
        bytes: &[u8],
        pcm: &mut Vec<i16>,
    ) {
        match kind {
            PacketKind::Rtcp => self.session.handle_rtcp(at, from, bytes),
            PacketKind::Rtp => {
                let received = self.session.handle_rtp(at, from, bytes);
                let Received::Audio(audio) = received else {
                    return;
                };
                let inband = self.sdp.telephone_event.is_none();
                if !inband && self.recording.is_none() {
                    return; // no need to decode
                }
                let Some(payload) = bytes.get(audio.payload) else {
                    return;
                };
                if let Some(rec) = self.recording.as_mut() {
                    // Recorded from the jitter buffer, one frame per slot (serve_slot).
                    rec.jitter.push(audio.seq, audio.ts, payload);
                }
                if inband {
                    pcm.clear();
                    self.law.decode(payload, pcm);
                    self.dtmf.handle_audio(at, pcm);
                }
            }
        }
    }

    /// Drain the session's packets and events and the DTMF digits; refresh the timer.
    fn after_input(&mut self, now: Instant, scratch: &mut Scratch) -> (u64, u64) {
        let counts = self.flush_transmits(scratch);
        while let Some(event) = self.session.poll_event() {
            match event {
                MediaEvent::TelephoneEvent(ev) => self.dtmf.handle_rtp_event(now, &ev),
                MediaEvent::MediaTimeout { silent_for } => {
                    tracing::info!(call = %self.call, ?silent_for, "media timeout");
                    self.notify(MediaNotice::MediaTimeout);
                }
                MediaEvent::MediaResumed => self.notify(MediaNotice::MediaResumed),
                MediaEvent::PeerBye => self.notify(MediaNotice::PeerBye),
                MediaEvent::PeerQuality(q) => self.notify(MediaNotice::Quality(q)),
                MediaEvent::Latched(addr) => {
                    tracing::debug!(call = %self.call, %addr, "RTP latched");
                }
            }
        }
        while let Some(ev) = self.dtmf.poll_output() {
            tracing::info!(
                name: "dtmf",
                call = %self.call,
                digit = %ev.digit,
                source = %ev.source,
                "dtmf"
            );
            if let Some(playback) = self.playback.as_mut()
                && playback.barge_in()
                && playback.finished()
            {
                self.playback = None;
                self.notify(MediaNotice::Digit {
                    digit: ev.digit,
                    source: ev.source,
                });
                self.notify(MediaNotice::PlaybackFinished);
                continue;
            }
            self.notify(MediaNotice::Digit {
                digit: ev.digit,
                source: ev.source,
            });
        }
        self.timer_at = match (self.session.poll_timeout(), self.dtmf.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        counts
    }

    /// Send the session's queued packets (RTCP, event repeats, BYE).
    fn flush_transmits(&mut self, scratch: &mut Scratch) -> (u64, u64) {
        let mut counts = (0, 0);
        loop {
            scratch.packet.clear();
            let Some(tx) = self.session.poll_transmit(&mut scratch.packet) else {
                break;
            };
            let socket = match tx.kind {
                PacketKind::Rtp => &self.rtp,
                PacketKind::Rtcp => &self.rtcp,
            };
            if self.sdp.remote.is_none() {
                continue; // on hold with a null address: nowhere to send
            }
            match socket.send_to(&scratch.packet, tx.dest) {
                Ok(_) => counts.0 += 1,
                Err(_) => counts.1 += 1,
            }
        }
        counts
    }

    fn finish_recording(&mut self) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        let outcome = match rec.recorder.finish() {
            Ok(done) => RecordingOutcome::Done(done),
            Err(e) => RecordingOutcome::Failed(e.to_string()),
        };
        self.notify(MediaNotice::RecordingStopped(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(remote: Option<SocketAddr>, dir: Direction) -> sdp::Session {
        sdp::Session {
            remote,
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event: Some(101),
            ptime_ms: 20,
            local_direction: dir,
        }
    }

    #[test]
    fn directions_decide_sending_and_the_media_timeout() {
        let peer = Some("127.0.0.1:4000".parse().unwrap());
        assert!(may_send(&session(peer, Direction::SendRecv)));
        assert!(may_send(&session(peer, Direction::SendOnly)));
        assert!(!may_send(&session(peer, Direction::RecvOnly)));
        assert!(!may_send(&session(None, Direction::SendRecv)));
        assert!(expects_rtp(&session(peer, Direction::RecvOnly)));
        assert!(!expects_rtp(&session(peer, Direction::Inactive)));
        assert!(!expects_rtp(&session(peer, Direction::SendOnly)));
    }

    #[test]
    fn ptime_is_clamped_and_sizes_the_frame() {
        let mut s = session(None, Direction::SendRecv);
        assert_eq!(frame_len(ptime_of(&s)), 160);
        s.ptime_ms = 0;
        assert_eq!(frame_len(ptime_of(&s)), 80);
        s.ptime_ms = u16::MAX;
        assert_eq!(frame_len(ptime_of(&s)), 1600);
    }

    #[test]
    fn call_seeds_differ_per_stream() {
        let a = call_seed(7, StreamId(1));
        let b = call_seed(7, StreamId(2));
        assert_ne!(a, b);
        assert_eq!(a, call_seed(7, StreamId(1)));
    }

    #[tokio::test]
    async fn a_reservation_dropped_before_start_returns_its_ports() {
        let config = MediaConfig {
            workers: 1,
            rtp_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_first: 47100,
            port_last: 47103,
            ..MediaConfig::default()
        };
        let workers = MediaWorkers::start(config, Arc::new(PromptStore::default()));
        let r = workers.reserve().unwrap();
        assert_eq!(r.port() % 2, 0);
        assert_eq!(workers.ports_in_use(), 1);
        drop(r);
        assert_eq!(workers.ports_in_use(), 0);
    }

    #[tokio::test]
    async fn a_bad_port_range_is_reported_on_reserve() {
        let config = MediaConfig {
            workers: 1,
            port_first: 3,
            port_last: 3,
            ..MediaConfig::default()
        };
        let workers = MediaWorkers::start(config, Arc::new(PromptStore::default()));
        assert!(matches!(
            workers.reserve(),
            Err(MediaError::Ports(PortsError::EmptyRange { .. }))
        ));
    }
}
