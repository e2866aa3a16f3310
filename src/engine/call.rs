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
//! The flow: once the media runs, a [`FlowRun`] starts on the current flow set (the call
//! keeps that `Arc` to its end) at `flow_entry` (`main`), with the caller's number and the
//! Paris wall clock. The loop feeds it digits (RFC 4733, in-band or SIP INFO, from
//! [`MediaNotice::Digit`]), `PlaybackFinished`, its own deadline and the caller's hang-up,
//! and carries out its outputs: prompts to the media workers (a prompt missing from the
//! store is logged and skipped), hang-up after the goodbye prompt. Until the agent queue
//! exists, every hand-over (queue, callback, voicemail, transfer) plays
//! [`UNAVAILABLE_PROMPT`] and answers `QueueResult::Unavailable`, so the node's fallback
//! runs. Each node entered is a `node_entered` event (`call`, `flow`, `node`, `version`);
//! the call ends with one `call_record` event, also appended to `calls.jsonl`
//! ([`crate::engine::records`]).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tracing::Instrument;

use crate::engine::flows::{Flows, short};
use crate::engine::media::{
    CallMedia, MediaError, MediaNotice, MediaStats, MediaWorkers, PlayItem, Reservation,
};
use crate::engine::records::{CallEvent, CallRecord, QualityRecord, Records};
use crate::engine::sip::SipCommand;
use crate::engine::{now, redact};
use crate::flow::interp::{
    CallerInfo, EndReason as FlowEnd, FlowEvent, FlowRun, Input, Output, QueueResult,
};
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
    /// The flow set new calls start on (hot reloaded).
    pub flows: Flows,
    /// Entry of every call (`main`: the `main` flow's entry node; or `flow.node`).
    pub flow_entry: String,
    /// Call records and live call events.
    pub records: Records,
    /// Calls per caller number over the last day, for `switch` on call counts (a tiny
    /// critical section per call start).
    pub recent: std::sync::Mutex<crate::flow::recent::RecentCalls>,
}

/// The system message played when the flow asks for a person and no agent queue exists.
pub const UNAVAILABLE_PROMPT: &str = "fr/system/indisponible";

/// The engine's own messages (id, text), rendered by `guichet prompts render`.
pub const SYSTEM_PROMPTS: &[(&str, &str)] = &[(
    UNAVAILABLE_PROMPT,
    "Aucun conseiller ne peut prendre votre appel pour le moment.",
)];

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
        call_id: start.call_id.to_string(),
        from_uri: start.from.clone(),
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
    call_id: String,
    /// The caller's From URI (unredacted: the flow may use the number).
    from_uri: String,
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
        let mut log = CallLog::new();
        let reason = self.call_loop(&mut media, &mut log).await;
        if let MediaState::Running(m) = &mut media {
            log.media = final_media_stats(m).await;
        }
        tracing::info!(?reason, seconds = started.elapsed().as_secs(), "call ended");
        self.record(log, reason, started.elapsed());
    }

    /// Log the `call_record` event and queue it for `calls.jsonl`.
    fn record(&self, log: CallLog, reason: Option<EndReason>, duration: Duration) {
        let end_reason = match (log.end_reason, log.flow_end, reason) {
            (Some(r), _, _) => r.to_owned(),
            (None, Some(FlowEnd::FlowHangup), _) => "flow_hangup".to_owned(),
            (None, Some(FlowEnd::Connected), _) => "connected".to_owned(),
            (None, Some(FlowEnd::Stuck), _) => "flow_stuck".to_owned(),
            (None, _, Some(r)) => end_reason_name(r),
            (None, _, None) => "engine".to_owned(),
        };
        let record = CallRecord {
            call_id: self.call_id.clone(),
            start: log.wall.to_string(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            end_reason,
            flow_version: log.flow_version,
            nodes_visited: log.nodes_visited,
            digits: log.digits,
            quality: log.quality,
            media: log.media,
        };
        tracing::info!(
            name: "call_record",
            call = %record.call_id,
            start = %record.start,
            duration_ms = record.duration_ms,
            end_reason = %record.end_reason,
            nodes_visited = record.nodes_visited,
            digits = %record.digits,
            flow_version = record.flow_version.as_deref().map(short).unwrap_or(""),
            fraction_lost = record.quality.map(|q| q.fraction_lost),
            cumulative_lost = record.quality.map(|q| q.cumulative_lost),
            jitter_ms = record.quality.map(|q| q.jitter_ms),
            rtp_sent = record.media.map(|m| m.packets_sent),
            rtp_received = record.media.map(|m| m.packets_received),
            rtp_lost = record.media.map(|m| m.packets_lost),
            rtp_jitter_ms = record.media.map(|m| m.jitter_ms),
            "call_record"
        );
        self.settings.records.write(record);
    }

    /// Up until the call ends; returns why (None: the engine dropped us).
    async fn call_loop(&mut self, media: &mut MediaState, log: &mut CallLog) -> Option<EndReason> {
        let mut flow: Option<FlowDriver> = None;
        let mut flow_tried = false;
        // Notices read ahead (see the digit case).
        let mut backlog: VecDeque<MediaNotice> = VecDeque::new();
        loop {
            if !flow_tried
                && let MediaState::Running(m) = media
                && !log.hung_up
            {
                flow_tried = true;
                flow = self.start_flow(log);
                if let Some(f) = flow.as_mut() {
                    f.drain(m, self, log).await;
                }
            }
            let notice = async {
                if let Some(n) = backlog.pop_front() {
                    return Some(n);
                }
                match media {
                    MediaState::Running(m) => m.next_notice().await,
                    _ => std::future::pending().await,
                }
            };
            let deadline = flow.as_ref().and_then(FlowDriver::deadline);
            let timeout = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(TokioInstant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            // What the flow must be told after the select (media borrowed inside it).
            let mut inputs: Vec<Input> = Vec::new();
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
                    Some(Event::Ended { reason, .. }) => {
                        if let Some(f) = flow.as_mut() {
                            f.run.handle_input(Input::Hangup);
                            f.collect_events(self, log);
                        }
                        if let MediaState::Running(m) = media {
                            m.close();
                        }
                        return Some(reason);
                    }
                    Some(Event::IncomingCall { .. }) => {}
                    None => return None,
                },
                n = notice => match n {
                    Some(MediaNotice::MediaTimeout) if !log.hung_up => {
                        tracing::warn!("no RTP received: hanging up");
                        log.hung_up = true;
                        log.end_reason.get_or_insert("media_timeout");
                        self.command(CallCommand::Hangup).await;
                    }
                    Some(MediaNotice::Digit { digit, source }) => {
                        let key = digit.as_char();
                        tracing::debug!(?digit, ?source, "digit");
                        log.digits.push(key);
                        self.settings.records.publish(CallEvent::Digit {
                            call_id: self.call_id.clone(),
                            digit: key,
                        });
                        if let Some(f) = flow.as_mut() {
                            // On barge-in the worker sends the key, then the end of the
                            // playlist, back to back. Give the flow the end first: taken
                            // after the key, it could pass for the end of a prompt the
                            // key itself started.
                            if let MediaState::Running(m) = media {
                                let mut next = m.try_notice();
                                if next.is_none() {
                                    tokio::task::yield_now().await;
                                    next = m.try_notice();
                                }
                                match next {
                                    Some(MediaNotice::PlaybackFinished) => {
                                        inputs.push(f.on_playback_finished());
                                    }
                                    Some(other) => backlog.push_back(other),
                                    None => {}
                                }
                            }
                            inputs.extend(f.on_digit(key));
                        }
                    }
                    Some(MediaNotice::PlaybackFinished) => {
                        if let Some(f) = flow.as_mut() {
                            inputs.push(f.on_playback_finished());
                        }
                    }
                    Some(MediaNotice::Quality(q)) => {
                        log.quality = Some(QualityRecord {
                            fraction_lost: q.fraction_lost,
                            cumulative_lost: q.cumulative_lost,
                            jitter_ms: q.jitter_ms,
                            rtt_ms: q.rtt_ms,
                        });
                    }
                    Some(other) => tracing::debug!(notice = ?other, "media notice"),
                    None => {
                        tracing::warn!("media stopped: hanging up");
                        *media = MediaState::Failed;
                        if !log.hung_up {
                            log.hung_up = true;
                            log.end_reason.get_or_insert("media_failed");
                            self.command(CallCommand::Hangup).await;
                        }
                    }
                },
                _ = timeout => inputs.push(Input::Timeout(now())),
            }
            if let Some(f) = flow.as_mut()
                && let MediaState::Running(m) = media
            {
                for input in inputs {
                    f.run.handle_input(input);
                    f.drain(m, self, log).await;
                }
            }
        }
    }

    /// Create the flow run for this call on the current flow set.
    fn start_flow(&self, log: &mut CallLog) -> Option<FlowDriver> {
        let Some(set) = self.settings.flows.current() else {
            tracing::warn!("no flows loaded: the call stays silent");
            return None;
        };
        log.flow_version = Some(set.version().to_owned());
        let number = caller_number(&self.from_uri);
        let recent_calls = match (&number, self.settings.recent.lock()) {
            (Some(n), Ok(mut recent)) => recent.record(n, now()),
            _ => 0,
        };
        let caller = CallerInfo {
            number,
            recent_calls,
        };
        let entry = self.settings.flow_entry.as_str();
        match FlowRun::new(set, entry, caller, now(), log.wall.clone()) {
            Ok(run) => Some(FlowDriver {
                run,
                waiting_unavailable: false,
            }),
            Err(e) => {
                tracing::error!(error = %e, entry, "cannot start the flow: the call stays silent");
                None
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

/// What one call leaves for its record.
#[derive(Debug)]
struct CallLog {
    /// Answer time on the wall clock (Europe/Paris).
    wall: jiff::ZonedDateTime,
    hung_up: bool,
    /// Why we ended the call, when we did.
    end_reason: Option<&'static str>,
    flow_end: Option<FlowEnd>,
    flow_version: Option<String>,
    nodes_visited: u32,
    digits: String,
    quality: Option<QualityRecord>,
    media: Option<MediaStats>,
}

impl CallLog {
    fn new() -> CallLog {
        CallLog {
            wall: paris_now(),
            hung_up: false,
            end_reason: None,
            flow_end: None,
            flow_version: None,
            nodes_visited: 0,
            digits: String::new(),
            quality: None,
            media: None,
        }
    }
}

/// Close the call's media (if not yet) and wait briefly for its final figures: the worker
/// answers within one wake-up; a stopped worker means no figures.
async fn final_media_stats(media: &mut CallMedia) -> Option<MediaStats> {
    media.close();
    let wait = async {
        while let Some(notice) = media.next_notice().await {
            if let MediaNotice::Closed(stats) = notice {
                return Some(stats);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_millis(500), wait)
        .await
        .ok()
        .flatten()
}

/// The wall clock in Europe/Paris (opening hours are local time).
fn paris_now() -> jiff::ZonedDateTime {
    let now = jiff::ZonedDateTime::now();
    match jiff::tz::TimeZone::get("Europe/Paris") {
        Ok(tz) => now.with_time_zone(tz),
        Err(e) => {
            tracing::warn!(error = %e, "no Europe/Paris time zone: using the system's");
            now
        }
    }
}

fn end_reason_name(reason: EndReason) -> String {
    let debug = format!("{reason:?}");
    // `CallerBye` -> `caller_bye`: stable, greppable names in calls.jsonl.
    let mut out = String::new();
    for (i, c) in debug
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .enumerate()
    {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The user part of a From URI (`<sip:0612345678@host>` -> `0612345678`).
fn caller_number(from: &str) -> Option<String> {
    let lower = from.to_ascii_lowercase();
    let start = ["sips:", "sip:", "tel:"]
        .iter()
        .filter_map(|s| lower.find(s).map(|i| i + s.len()))
        .min()?;
    let rest = from.get(start..)?;
    let end = rest.find(['@', ';', '>']).unwrap_or(rest.len());
    let user = rest.get(..end)?;
    (!user.is_empty() && user.chars().all(|c| c.is_ascii_digit() || c == '+'))
        .then(|| user.to_owned())
}

/// One call's flow run and what the engine does for it.
#[derive(Debug)]
struct FlowDriver {
    run: FlowRun,
    /// The unavailable message is playing; its end answers the pending queue request.
    waiting_unavailable: bool,
}

impl FlowDriver {
    fn deadline(&self) -> Option<std::time::Instant> {
        self.run.poll_timeout()
    }

    fn on_digit(&mut self, key: char) -> Option<Input> {
        // Keys during the unavailable message are not for the flow (it waits for a result).
        (!self.waiting_unavailable).then(|| Input::Digit(now(), key))
    }

    fn on_playback_finished(&mut self) -> Input {
        if std::mem::take(&mut self.waiting_unavailable) {
            Input::QueueResult(now(), QueueResult::Unavailable)
        } else {
            Input::PromptFinished(now())
        }
    }

    /// Carry out the run's outputs until it waits for something.
    async fn drain(&mut self, media: &CallMedia, task: &CallTask, log: &mut CallLog) {
        while let Some(out) = self.run.poll_output() {
            match out {
                Output::Play {
                    prompts,
                    interruptible,
                } => {
                    let ids = prompts.into_iter().map(|p| p.0).collect();
                    if !play_known(media, ids, interruptible) {
                        self.run.handle_input(Input::PromptFinished(now()));
                    }
                }
                Output::StopPlayback => {
                    if let Err(e) = media.stop_playback() {
                        tracing::debug!(error = %e, "stop playback");
                    }
                }
                Output::StartCollect {
                    max_digits,
                    terminator,
                } => tracing::debug!(max_digits, ?terminator, "collecting digits"),
                Output::Enqueue { .. }
                | Output::Callback { .. }
                | Output::Voicemail { .. }
                | Output::Transfer { .. } => {
                    tracing::info!(request = ?out, "no agent queue yet: adviser unavailable");
                    if play_known(media, vec![UNAVAILABLE_PROMPT.to_owned()], false) {
                        self.waiting_unavailable = true;
                    } else {
                        self.run
                            .handle_input(Input::QueueResult(now(), QueueResult::Unavailable));
                    }
                }
                Output::Hangup => {
                    if !log.hung_up {
                        log.hung_up = true;
                        log.end_reason.get_or_insert("flow_hangup");
                        task.command(CallCommand::Hangup).await;
                    }
                }
                Output::Event(event) => handle_event(event, task, log),
            }
        }
    }

    /// Flow events produced by `Input::Hangup` (no media any more).
    fn collect_events(&mut self, task: &CallTask, log: &mut CallLog) {
        while let Some(out) = self.run.poll_output() {
            if let Output::Event(event) = out {
                handle_event(event, task, log);
            }
        }
    }
}

fn handle_event(event: FlowEvent, task: &CallTask, log: &mut CallLog) {
    match event {
        FlowEvent::NodeEntered {
            flow,
            node,
            version,
        } => {
            log.nodes_visited = log.nodes_visited.saturating_add(1);
            tracing::info!(
                name: "node_entered",
                call = %task.call_id,
                flow = %flow,
                node = %node,
                version = %short(&version),
                "node_entered"
            );
            task.settings.records.publish(CallEvent::NodeEntered {
                call_id: task.call_id.clone(),
                flow,
                node,
                version,
            });
        }
        FlowEvent::VariableSet { name, value } => {
            tracing::debug!(%name, %value, "flow variable");
        }
        FlowEvent::Finished(reason) => {
            tracing::debug!(?reason, "flow finished");
            log.flow_end = Some(reason);
        }
    }
}

/// Play the prompts the store has (a missing one is logged and skipped). Returns whether
/// anything is playing (if not, the caller treats the prompts as already finished).
fn play_known(media: &CallMedia, mut ids: Vec<String>, interruptible: bool) -> bool {
    while !ids.is_empty() {
        let items = ids.iter().cloned().map(PlayItem::Prompt).collect();
        match media.play(items, interruptible) {
            Ok(()) => return true,
            Err(MediaError::UnknownPrompt(missing)) => {
                tracing::warn!(prompt = %missing, "prompt missing from the audio store: skipped");
                ids.retain(|id| *id != missing);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot play");
                return false;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_numbers_come_from_the_from_uri() {
        assert_eq!(
            caller_number("\"x\" <sip:0612345678@10.0.0.1>;tag=1").as_deref(),
            Some("0612345678")
        );
        assert_eq!(
            caller_number("<sip:+33160000000@h;user=phone>").as_deref(),
            Some("+33160000000")
        );
        assert_eq!(
            caller_number("tel:0160000000").as_deref(),
            Some("0160000000")
        );
        assert_eq!(caller_number("<sip:anonymous@anonymous.invalid>"), None);
        assert_eq!(caller_number("garbage"), None);
    }

    #[test]
    fn end_reasons_have_snake_case_names() {
        assert_eq!(end_reason_name(EndReason::RemoteBye), "remote_bye");
        assert_eq!(end_reason_name(EndReason::AckTimeout), "ack_timeout");
    }

    #[test]
    fn the_system_prompt_is_shipped() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("audio")
            .join(format!("{UNAVAILABLE_PROMPT}.wav"));
        assert!(
            path.is_file(),
            "{} is rendered and committed",
            path.display()
        );
    }
}
