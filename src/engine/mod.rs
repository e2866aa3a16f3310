//! The async shell: sockets, tokio tasks, the clock, and the wiring between layers.
//! The only module that does IO (with `cli`, `main` and the test caller).
//!
//! Owns: starting everything from a [`Config`] ([`start`]), the SIP endpoint task
//! ([`sip`]), one task per TCP connection ([`tcp`]), one task per call ([`call`], which
//! runs the flows), the media workers ([`media`]: RTP ports, pacing, playback, DTMF), the
//! flow set and its hot reload ([`flows`]), call records and live call events
//! ([`records`]), and graceful shutdown.
//!
//! Input: a validated [`Config`]. Output: a running engine behind an [`EngineHandle`]
//! (its bound SIP address, a live [`Snapshot`] of counters, the flows, call events, and
//! `shutdown`). A flow set with errors is a startup error ([`EngineError::Flows`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), guichet::engine::EngineError> {
//! let mut config = guichet::config::Config::default();
//! config.sip.listen = "127.0.0.1:0".parse().unwrap(); // any free port
//! let engine = guichet::engine::start(config).await?;
//! println!("SIP on {}", engine.sip_addr());
//! engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Task layout (see ARCHITECTURE.md): one SIP task owns the UDP socket, the TCP listener and
//! the sans-IO [`crate::sip::endpoint::Endpoint`]; TCP connection tasks frame bytes into
//! messages and hand them to it over a bounded channel; each call's task receives that
//! call's events and sends back [`crate::sip::endpoint::CallCommand`]s.

pub mod call;
pub mod flows;
pub mod media;
pub mod records;
pub mod sip;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::sip::endpoint::Stats;

/// The engine's one clock. Tokio's clock, so `#[tokio::test(start_paused = true)]` tests
/// run in virtual time; converted to `std::time::Instant` for the sans-IO core.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The registrar settings do not hold together.
    #[error("registrar: {0}")]
    Registrar(#[from] crate::sip::registrar::RegistrarError),
    /// The RTP port range is unusable.
    #[error("rtp.ports: {0}")]
    Ports(#[from] crate::media::ports::PortsError),
    /// The flow set under `paths.flows` does not load or fails the checker.
    #[error("paths.flows: {0}")]
    Flows(#[from] flows::FlowsError),
    /// `flows.entry` names no flow or node of the loaded set.
    #[error("flows.entry: no flow or node `{entry}` (flows: {known})")]
    UnknownFlowEntry { entry: String, known: String },
}

/// Counters for dashboards, logs and tests; refreshed by the SIP task after every wake-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The endpoint's own counters.
    pub sip: Stats,
    /// Calls the endpoint counts against `max_calls`.
    pub active_calls: usize,
    /// Call tasks alive.
    pub call_tasks: usize,
    /// Call tasks that panicked (each ended its call only).
    pub call_panics: u64,
    /// Calls started since the engine started.
    pub calls_started: u64,
    /// Open SIP TCP connections.
    pub tcp_connections: usize,
    /// TCP connections refused because `limits.tcp_max_connections` was reached.
    pub tcp_refused: u64,
    /// UDP datagrams dropped for being larger than `limits.max_message_size`.
    pub oversized_datagrams: u64,
}

/// A running engine.
#[derive(Debug)]
pub struct EngineHandle {
    sip_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    snapshot: watch::Receiver<Snapshot>,
    task: JoinHandle<()>,
    flows: flows::Flows,
    records: records::Records,
    reloader: JoinHandle<()>,
}

impl EngineHandle {
    /// The SIP address actually bound (UDP and TCP share it).
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// The latest counters.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every new snapshot (for tests that wait on a condition).
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// The flow set serving new calls, its swaps and reload outcomes.
    pub fn flows(&self) -> &flows::Flows {
        &self.flows
    }

    /// Live call events (nodes entered, digits, call records) from now on.
    pub fn call_events(&self) -> tokio::sync::broadcast::Receiver<records::CallEvent> {
        self.records.subscribe()
    }

    /// Graceful shutdown: BYE every call, wait for them up to `limits.shutdown_grace`, stop.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.reloader.abort();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "SIP task ended abnormally");
        }
    }

    /// Wait until the engine stops by itself (it does not, unless its SIP task fails).
    pub async fn wait(&mut self) {
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "SIP task ended abnormally");
        }
    }
}

/// Test-only behaviour switched on from outside (never from the config file).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Fault injection: the call task of a call to this number panics when the call is
    /// confirmed (proves a panicking call ends that call only).
    pub panic_on_number: Option<String>,
    /// Where calls enter the flows instead of `main` (a flow id or `flow.node`).
    pub flow_entry: Option<String>,
}

/// Bind the sockets and start the SIP task. Returns once everything listens.
pub async fn start(config: Config) -> Result<EngineHandle, EngineError> {
    start_with(config, Hooks::default()).await
}

/// [`start`] with test hooks.
pub async fn start_with(config: Config, hooks: Hooks) -> Result<EngineHandle, EngineError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (snapshot_tx, snapshot_rx) = watch::channel(Snapshot::default());
    let flows = flows::Flows::load(&config.paths.flows, &config.paths.audio).await?;
    if let Some(set) = flows.current() {
        let entry = hooks.flow_entry.as_deref().unwrap_or(&config.flows.entry);
        if set.entry(entry).is_none() {
            return Err(EngineError::UnknownFlowEntry {
                entry: entry.to_owned(),
                known: set
                    .flows()
                    .iter()
                    .map(|f| f.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let sockets = sip::Sockets::bind(&config).await?;
    let sip_addr = sockets.local_addr();
    let prompts = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || sip::load_prompts(&config))
            .await
            .unwrap_or_default()
    };
    let task = sip::SipTask::new(
        config.clone(),
        sockets,
        shutdown_rx,
        snapshot_tx,
        hooks,
        sip::CallResources {
            prompts,
            flows: flows.clone(),
            records: records::Records::start(config.paths.data.clone()),
        },
    )?;
    let records = task.records();
    let reloader = flows.spawn_reloader(shutdown_tx.subscribe());
    tracing::info!(
        sip = %sip_addr,
        udp = config.sip.udp,
        tcp = config.sip.tcp,
        rtp_ports = %config.rtp.ports,
        max_calls = config.limits.max_calls,
        "guichet listening"
    );
    let task = tokio::spawn(task.run());
    Ok(EngineHandle {
        sip_addr,
        shutdown: shutdown_tx,
        snapshot: snapshot_rx,
        task,
        flows,
        records,
        reloader,
    })
}

/// `guichet serve`: start, run until SIGINT or SIGTERM, then shut down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // TODO(integrator): start the HTTP API on `config.http.listen` and the SQLite store
    // (`config.paths.data`) here when those modules land. Flows (hot reloaded), prompts and
    // call records (`calls.jsonl`) are started by `start`.
    let mut engine = start(config).await?;
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutdown requested: ending calls");
            engine.shutdown().await;
        }
        _ = engine.wait() => {}
    }
    tracing::info!("guichet stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Hide the user part of a SIP URI or a number in logs: `sip:0612345678@x` becomes
/// `sip:06******78@x`. Short users are fully masked.
pub fn redact(uri: &str) -> String {
    let lower = uri.to_ascii_lowercase();
    let scheme_end = ["sips:", "sip:", "tel:"]
        .iter()
        .filter_map(|s| lower.find(s).map(|i| (i + s.len(), *s == "tel:")))
        .min();
    let (prefix, rest, is_sip) = match scheme_end {
        Some((i, is_tel)) => (&uri[..i], &uri[i..], !is_tel),
        None => ("", uri, false),
    };
    let user_end = if is_sip {
        // `sip:host` has no user part.
        rest.find('@').unwrap_or_default()
    } else {
        rest.find([';', '>', '@']).unwrap_or(rest.len())
    };
    let (user, tail) = rest.split_at(user_end);
    let chars: Vec<char> = user.chars().collect();
    let masked: String = if chars.len() <= 4 {
        "*".repeat(chars.len())
    } else {
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 2 || i + 2 >= chars.len() {
                    *c
                } else {
                    '*'
                }
            })
            .collect()
    };
    format!("{prefix}{masked}{tail}")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_hides_the_middle_of_numbers() {
        assert_eq!(redact("sip:0612345678@10.0.0.1"), "sip:06******78@10.0.0.1");
        assert_eq!(
            redact("<sip:+33612345678@h;user=phone>"),
            "<sip:+3********78@h;user=phone>"
        );
        assert_eq!(redact("sip:3939@h"), "sip:****@h");
        assert_eq!(redact("0612345678"), "06******78");
        assert_eq!(redact("tel:0612345678"), "tel:06******78");
        assert_eq!(redact("sip:host.example"), "sip:host.example");
    }
}
