//! One task per call: receives the call's [`Event`]s, allocates its RTP port, answers, and
//! keeps the line up in silence until either side ends it.
//!
//! Input: [`CallStart`] (from `IncomingCall`), the call's event channel, the channel into
//! the SIP task. Output: [`CallCommand`]s (Ringing, Answer, Reject, Hangup) sent as
//! [`SipCommand::Call`], and G.711 silence over RTP at the negotiated ptime while we may
//! send.
//!
//! Rules: no port free -> 503; `sip.answer_delay` > 0 -> 180 Ringing first; no RTP received
//! for `limits.no_rtp_timeout` while the call is send-receive -> Hangup. The endpoint ends
//! calls that run past `limits.max_call_duration`.
//!
//! TODO(media): the silence loop is a stand-in for the media worker (prompts, DTMF, flow
//! interpreter); one 20 ms timer per call is fine at this size but the media workers pace
//! many calls from one loop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant as TokioInstant, MissedTickBehavior};
use tracing::Instrument;

use crate::engine::ports::{PortAllocator, PortLease};
use crate::engine::redact;
use crate::engine::sip::SipCommand;
use crate::ids::{CallId, CallKey};
use crate::sdp::{Codec, Direction, LocalMedia, Session};
use crate::sip::endpoint::{CallCommand, EndReason, Event, Peer};

/// Settings every call task shares.
#[derive(Debug)]
pub struct CallSettings {
    /// Address RTP sockets bind to.
    pub rtp_bind: IpAddr,
    /// Address written in SDP `c=`.
    pub rtp_advertised: IpAddr,
    pub ports: PortAllocator,
    pub answer_delay: Duration,
    pub no_rtp_timeout: Duration,
    pub show_numbers: bool,
    /// Fault injection for tests: a call to this number panics once confirmed.
    pub panic_on_number: Option<String>,
}

/// What the endpoint told us about a new call.
#[derive(Debug, Clone)]
pub struct CallStart {
    pub call: CallKey,
    pub call_id: CallId,
    pub from: String,
    pub to_user: String,
    pub source: Peer,
}

/// Bind attempts before giving up on finding an RTP port (ports used by other programs).
const BIND_ATTEMPTS: usize = 16;

/// Run one call to its end. Never returns an error: failures end the call.
pub async fn run(
    start: CallStart,
    events: mpsc::Receiver<Event>,
    to_sip: mpsc::Sender<SipCommand>,
    settings: Arc<CallSettings>,
) {
    // The dialled number is the service's own; the caller's number is personal data.
    let from = if settings.show_numbers {
        start.from.clone()
    } else {
        redact(&start.from)
    };
    let to = start.to_user.clone();
    let panic_on_confirm = settings.panic_on_number.as_deref() == Some(start.to_user.as_str());
    let span = tracing::info_span!(
        "call",
        call_id = %start.call_id,
        key = %start.call,
        from = %from,
        to = %to,
        source = %start.source.addr,
    );
    CallTask {
        call: start.call,
        panic_on_confirm,
        events,
        to_sip,
        settings,
    }
    .run()
    .instrument(span)
    .await
}

struct CallTask {
    call: CallKey,
    panic_on_confirm: bool,
    events: mpsc::Receiver<Event>,
    to_sip: mpsc::Sender<SipCommand>,
    settings: Arc<CallSettings>,
}

/// What the media side currently does.
#[derive(Debug)]
struct Media {
    socket: UdpSocket,
    _lease: PortLease,
    session: Option<Session>,
    confirmed: bool,
    sent: u64,
    received: u64,
    last_received: TokioInstant,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
}

impl CallTask {
    async fn run(mut self) {
        tracing::info!("incoming call");
        let started = TokioInstant::now();
        let Some((socket, lease)) = self.bind_rtp().await else {
            tracing::warn!("no RTP port free: refusing with 503");
            self.command(CallCommand::Reject { code: 503 }).await;
            let reason = self.wait_end().await;
            tracing::info!(?reason, "call ended");
            return;
        };
        let local = LocalMedia {
            addr: self.settings.rtp_advertised,
            port: lease.port(),
            session_id: rand::random::<u32>().into(),
            version: 1,
        };
        if !self.settings.answer_delay.is_zero() {
            self.command(CallCommand::Ringing).await;
            let ring_until = TokioInstant::now() + self.settings.answer_delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(ring_until) => break,
                    ev = self.events.recv() => match ev {
                        Some(Event::Ended { reason, .. }) => {
                            tracing::info!(?reason, "call ended before answer");
                            return;
                        }
                        Some(other) => tracing::debug!(event = ?other, "event while ringing"),
                        None => return,
                    },
                }
            }
        }
        self.command(CallCommand::Answer { local }).await;
        let mut media = Media {
            socket,
            _lease: lease,
            session: None,
            confirmed: false,
            sent: 0,
            received: 0,
            last_received: TokioInstant::now(),
            seq: rand::random(),
            timestamp: rand::random(),
            ssrc: rand::random(),
        };
        let reason = self.media_loop(&mut media).await;
        tracing::info!(
            ?reason,
            seconds = started.elapsed().as_secs(),
            rtp_sent = media.sent,
            rtp_received = media.received,
            "call ended"
        );
    }

    /// Up in silence until the call ends; returns why (None: the engine dropped us).
    async fn media_loop(&mut self, media: &mut Media) -> Option<EndReason> {
        let mut ptime = Duration::from_millis(20);
        let mut tick = tokio::time::interval(ptime);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut rtp_buf = vec![0u8; 2048];
        let mut hung_up = false;
        loop {
            let no_rtp_deadline = media.last_received + self.settings.no_rtp_timeout;
            let watch_rtp = !hung_up && media.confirmed && media.expects_rtp();
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Answered { session, .. }) => {
                        tracing::info!(session = ?session, "answered");
                        if let Some(s) = session {
                            media.set_session(s);
                        }
                    }
                    Some(Event::Confirmed { .. }) => {
                        tracing::debug!("ACK received");
                        assert!(!self.panic_on_confirm, "injected fault: call task panics");
                        media.confirmed = true;
                        media.last_received = TokioInstant::now();
                    }
                    Some(Event::MediaUpdated { session, .. }) => {
                        tracing::info!(direction = ?session.local_direction, "media updated");
                        media.set_session(session);
                        media.last_received = TokioInstant::now();
                    }
                    Some(Event::Info { content_type, .. }) => {
                        tracing::debug!(%content_type, "INFO received (ignored for now)");
                    }
                    Some(Event::Ended { reason, .. }) => return Some(reason),
                    Some(Event::IncomingCall { .. }) => {}
                    None => return None,
                },
                r = media.socket.recv_from(&mut rtp_buf) => {
                    if let Ok((n, _)) = r
                        && n >= 12
                    {
                        media.received += 1;
                        media.last_received = TokioInstant::now();
                    }
                }
                _ = tick.tick() => {
                    let want = media.ptime();
                    if want != ptime {
                        ptime = want;
                        tick = tokio::time::interval(ptime);
                        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    }
                    media.send_silence();
                }
                _ = tokio::time::sleep_until(no_rtp_deadline), if watch_rtp => {
                    tracing::warn!(
                        seconds = self.settings.no_rtp_timeout.as_secs(),
                        "no RTP received: hanging up"
                    );
                    hung_up = true;
                    self.command(CallCommand::Hangup).await;
                }
            }
        }
    }

    async fn bind_rtp(&self) -> Option<(UdpSocket, PortLease)> {
        // Ports another program holds stay leased until we return, so the pool offers others.
        let mut busy = Vec::new();
        for _ in 0..BIND_ATTEMPTS {
            let lease = self.settings.ports.allocate()?;
            let addr = SocketAddr::new(self.settings.rtp_bind, lease.port());
            match UdpSocket::bind(addr).await {
                Ok(socket) => return Some((socket, lease)),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "RTP port busy, trying another");
                    busy.push(lease);
                }
            }
        }
        None
    }

    async fn command(&self, command: CallCommand) {
        let msg = SipCommand::Call {
            call: self.call,
            command,
        };
        if self.to_sip.send(msg).await.is_err() {
            tracing::debug!("SIP task gone");
        }
    }

    async fn wait_end(&mut self) -> Option<EndReason> {
        while let Some(ev) = self.events.recv().await {
            if let Event::Ended { reason, .. } = ev {
                return Some(reason);
            }
        }
        None
    }
}

impl Media {
    fn set_session(&mut self, session: Session) {
        self.session = Some(session);
    }

    fn ptime(&self) -> Duration {
        let ms = self
            .session
            .as_ref()
            .map_or(20, |s| s.ptime_ms)
            .clamp(10, 60);
        Duration::from_millis(u64::from(ms))
    }

    /// Whether the remote should be sending us RTP (send-receive, not on hold).
    fn expects_rtp(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.local_direction == Direction::SendRecv && s.remote.is_some())
    }

    fn send_silence(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        let Some(remote) = session.remote else {
            return;
        };
        if !matches!(
            session.local_direction,
            Direction::SendRecv | Direction::SendOnly
        ) {
            return;
        }
        let samples = usize::from(session.ptime_ms.clamp(10, 60)) * 8;
        let silence = match session.codec {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        };
        let mut packet = Vec::with_capacity(12 + samples);
        packet.push(0x80); // V=2, no padding, no extension, no CSRC
        packet.push(session.payload_type & 0x7F);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&self.timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.resize(12 + samples, silence);
        if self.socket.try_send_to(&packet, remote).is_ok() {
            self.sent += 1;
        }
        self.seq = self.seq.wrapping_add(1);
        // samples <= 480, fits u32.
        self.timestamp = self.timestamp.wrapping_add(samples as u32);
    }
}
