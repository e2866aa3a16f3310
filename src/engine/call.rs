//! One task per call: receives the call's [`Event`]s, reserves its RTP ports from the media
//! workers, answers, and keeps the line up until either side ends it.
//!
//! Input: [`CallStart`] (from `IncomingCall`), the call's event channel, the channel into
//! the SIP task. Output: [`CallCommand`]s (Ringing, Answer, Reject, Hangup) sent as
//! [`SipCommand::Call`], and media commands to [`CallMedia`] (start on the negotiated
//! session, session updates on re-INVITE, INFO digits).
//!
//! Rules: no port free -> 503; `sip.answer_delay` > 0 -> 180 Ringing first; the media
//! workers pace G.711 silence while nothing is played, and report
//! [`MediaNotice::MediaTimeout`] after `limits.no_rtp_timeout` without RTP -> Hangup. The
//! endpoint ends calls that run past `limits.max_call_duration`.
//!
//! TODO(integrator): run the flow interpreter here (play prompts, collect digits from
//! [`MediaNotice::Digit`], hand over to the queue).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tracing::Instrument;

use crate::engine::media::{CallMedia, MediaError, MediaNotice, MediaWorkers, Reservation};
use crate::engine::redact;
use crate::engine::sip::SipCommand;
use crate::ids::{CallId, CallKey};
use crate::sdp::{LocalMedia, Session};
use crate::sip::endpoint::{CallCommand, EndReason, Event, Peer};

/// Settings every call task shares.
#[derive(Debug)]
pub struct CallSettings {
    /// Address written in SDP `c=`.
    pub rtp_advertised: IpAddr,
    /// The media workers (RTP ports, pacing, DTMF, playback).
    pub media: MediaWorkers,
    pub answer_delay: Duration,
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

/// The call's media: reserved ports until the session is known, then running.
#[derive(Debug)]
enum MediaState {
    Reserved(Reservation),
    Running(CallMedia),
    /// Start failed (logged); the call is being hung up.
    Failed,
}

impl CallTask {
    async fn run(mut self) {
        tracing::info!("incoming call");
        let started = TokioInstant::now();
        let reservation = match self.settings.media.reserve() {
            Ok(r) => r,
            Err(e) => {
                let exhausted = matches!(e, MediaError::PortsExhausted(_));
                tracing::warn!(error = %e, exhausted, "no RTP port: refusing with 503");
                self.command(CallCommand::Reject { code: 503 }).await;
                let reason = self.wait_end().await;
                tracing::info!(?reason, "call ended");
                return;
            }
        };
        let local = LocalMedia {
            addr: self.settings.rtp_advertised,
            port: reservation.port(),
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
        let mut media = MediaState::Reserved(reservation);
        let reason = self.call_loop(&mut media).await;
        tracing::info!(?reason, seconds = started.elapsed().as_secs(), "call ended");
    }

    /// Up until the call ends; returns why (None: the engine dropped us).
    async fn call_loop(&mut self, media: &mut MediaState) -> Option<EndReason> {
        let mut hung_up = false;
        loop {
            let notice = async {
                match media {
                    MediaState::Running(m) => m.next_notice().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Answered { session, .. }) => {
                        tracing::info!(session = ?session, "answered");
                        if let Some(s) = session {
                            self.apply_session(media, s).await;
                        }
                    }
                    Some(Event::Confirmed { .. }) => {
                        tracing::debug!("ACK received");
                        assert!(!self.panic_on_confirm, "injected fault: call task panics");
                    }
                    Some(Event::MediaUpdated { session, .. }) => {
                        tracing::info!(direction = ?session.local_direction, "media updated");
                        self.apply_session(media, session).await;
                    }
                    Some(Event::Info { content_type, body, .. }) => {
                        if let MediaState::Running(m) = media
                            && let Err(e) = m.info_digit(&content_type, &body)
                        {
                            tracing::debug!(error = %e, %content_type, "INFO not used");
                        }
                    }
                    Some(Event::Ended { reason, .. }) => return Some(reason),
                    Some(Event::IncomingCall { .. }) => {}
                    None => return None,
                },
                n = notice => match n {
                    Some(MediaNotice::MediaTimeout) if !hung_up => {
                        tracing::warn!("no RTP received: hanging up");
                        hung_up = true;
                        self.command(CallCommand::Hangup).await;
                    }
                    Some(MediaNotice::Digit { digit, source }) => {
                        tracing::debug!(?digit, ?source, "digit");
                    }
                    Some(other) => tracing::debug!(notice = ?other, "media notice"),
                    None => {
                        tracing::warn!("media stopped: hanging up");
                        *media = MediaState::Failed;
                        if !hung_up {
                            hung_up = true;
                            self.command(CallCommand::Hangup).await;
                        }
                    }
                },
            }
        }
    }

    /// Start the media on the first negotiated session, update it afterwards.
    async fn apply_session(&self, media: &mut MediaState, session: Session) {
        let state = std::mem::replace(media, MediaState::Failed);
        *media = match state {
            MediaState::Reserved(reservation) => match reservation.start(self.call, &session) {
                Ok(m) => MediaState::Running(m),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start media: hanging up");
                    self.command(CallCommand::Hangup).await;
                    MediaState::Failed
                }
            },
            MediaState::Running(m) => {
                if let Err(e) = m.update_session(session) {
                    tracing::warn!(error = %e, "media update failed");
                }
                MediaState::Running(m)
            }
            MediaState::Failed => MediaState::Failed,
        };
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
