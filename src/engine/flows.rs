//! The flow set the calls run, and its hot reload.
//!
//! Owns: the current `Arc<FlowSet>` in a [`watch`] channel (`None` until a set loads), and the reload task that
//! replaces it when `paths.flows` changes (a recursive `notify` watcher, debounced by
//! [`DEBOUNCE`]) or on SIGHUP.
//!
//! Input: the flows directory and the audio directory (for the checker's `missing-wav`
//! rule; skipped with a warning when the audio directory does not exist). Output:
//! [`Flows`], a cheap handle calls read with [`Flows::current`], and a [`FlowStatus`]
//! watch (version, reloads done and refused, last diagnostics) for tests and dashboards.
//!
//! Rules: a missing flows directory starts the engine without flows (calls are kept up in
//! silence, logged as an error); a set that does not load or check is a startup error. On
//! reload the whole set is loaded and checked; any *error* (not a warning) refuses it. A
//! refused set is logged diagnostic by diagnostic (`file:line:column: ...`) and the last
//! good set keeps serving. A good set is swapped atomically and logged with its version
//! (content hash) and `diff_summary`. A call keeps the `Arc` it started with, so an edit
//! never changes a call in progress. Prompts (`paths.audio`) are not reloaded: restart the
//! engine after re-rendering audio.
//!
//! ```no_run
//! # async fn demo() -> Result<(), guichet::engine::flows::FlowsError> {
//! use guichet::engine::flows::Flows;
//! let flows = Flows::load("flows".as_ref(), "audio".as_ref()).await?;
//! if let Some(set) = flows.current() {
//!     println!("flows version {}", set.version());
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use crate::flow::check;
use crate::flow::diagnostic::Diagnostic;
use crate::flow::ir::{FlowSet, diff_summary};

/// Quiet time after the last file event before reloading (editors write in several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why a flow set was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    /// Load or check errors, each `file:line:column: ...`.
    #[error("flow set refused ({} error(s)):\n{}", .0.len(), join(.0))]
    Refused(Vec<Diagnostic>),
    /// The loader task failed (runtime shutting down).
    #[error("flow loader stopped: {0}")]
    Stopped(String),
}

fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The state of the flows, for tests and dashboards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStatus {
    /// Version (content hash) of the set serving new calls.
    pub version: String,
    /// Sets swapped in since startup.
    pub reloads: u64,
    /// Sets refused since startup.
    pub refused: u64,
    /// Errors of the last refused set (`file:line:column: ...`).
    pub last_errors: Vec<String>,
}

/// Load and check a flow set; blocking file IO (call from `spawn_blocking`). Warnings are
/// logged; errors refuse the set.
pub fn load_checked(dir: &Path, audio: &Path) -> Result<FlowSet, Vec<Diagnostic>> {
    let set = FlowSet::load(dir)?;
    let audio_dir = if audio.is_dir() {
        Some(audio)
    } else {
        tracing::warn!(dir = %audio.display(), "no audio directory: prompt recordings not checked");
        None
    };
    let report = check::check(&set, audio_dir);
    let (errors, others): (Vec<_>, Vec<_>) = report
        .diagnostics
        .into_iter()
        .partition(Diagnostic::is_error);
    for d in &others {
        tracing::debug!(diagnostic = %d, "flow check");
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

async fn load_blocking(dir: PathBuf, audio: PathBuf) -> Result<FlowSet, FlowsError> {
    tokio::task::spawn_blocking(move || load_checked(&dir, &audio))
        .await
        .map_err(|e| FlowsError::Stopped(e.to_string()))?
        .map_err(FlowsError::Refused)
}

/// The current flow set (cheap to clone).
#[derive(Debug, Clone)]
pub struct Flows {
    dir: PathBuf,
    audio: PathBuf,
    current: watch::Receiver<Option<Arc<FlowSet>>>,
    sender: Arc<watch::Sender<Option<Arc<FlowSet>>>>,
    status: Arc<watch::Sender<FlowStatus>>,
}

impl Flows {
    /// Load and check the set at startup (a bad set is an error carrying every diagnostic).
    /// A missing directory is not an error: calls are answered and kept up in silence
    /// (logged loudly), until a SIGHUP after the directory appears.
    pub async fn load(dir: &Path, audio: &Path) -> Result<Flows, FlowsError> {
        if !dir.exists() {
            tracing::error!(
                dir = %dir.display(),
                "no flows directory: calls will be answered in silence (set paths.flows)"
            );
            return Ok(Flows::new(dir, audio, None));
        }
        let set = load_blocking(dir.to_owned(), audio.to_owned()).await?;
        tracing::info!(
            version = %short(set.version()),
            flows = set.flows().len(),
            nodes = set.nodes().len(),
            dir = %dir.display(),
            "flows loaded"
        );
        Ok(Flows::new(dir, audio, Some(set)))
    }

    /// A handle on an already loaded set, or on none yet.
    pub fn new(dir: &Path, audio: &Path, set: Option<FlowSet>) -> Flows {
        let status = FlowStatus {
            version: set
                .as_ref()
                .map(|s| s.version().to_owned())
                .unwrap_or_default(),
            ..FlowStatus::default()
        };
        let (tx, rx) = watch::channel(set.map(Arc::new));
        let (status_tx, _) = watch::channel(status);
        Flows {
            dir: dir.to_owned(),
            audio: audio.to_owned(),
            current: rx,
            sender: Arc::new(tx),
            status: Arc::new(status_tx),
        }
    }

    /// The set new calls start on (`None`: no flows directory at startup).
    pub fn current(&self) -> Option<Arc<FlowSet>> {
        self.current.borrow().clone()
    }

    /// Version of the current set (empty without one).
    pub fn version(&self) -> String {
        self.current()
            .map(|s| s.version().to_owned())
            .unwrap_or_default()
    }

    /// A receiver that sees every swap.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<FlowSet>>> {
        self.current.clone()
    }

    /// Reload outcomes.
    pub fn status(&self) -> watch::Receiver<FlowStatus> {
        self.status.subscribe()
    }

    /// Load and check the directory again; swap if good, keep the old set if not.
    pub async fn reload(&self) -> Result<(), FlowsError> {
        match load_blocking(self.dir.clone(), self.audio.clone()).await {
            Ok(set) => {
                let old = self.current();
                if old.as_ref().is_some_and(|o| o.version() == set.version()) {
                    tracing::debug!(version = %short(set.version()), "flows unchanged");
                    return Ok(());
                }
                let diff = match &old {
                    Some(o) => diff_summary(o, &set),
                    None => vec!["+ every flow".to_owned()],
                };
                let previous = self.version();
                let version = set.version().to_owned();
                self.sender.send_replace(Some(Arc::new(set)));
                tracing::info!(
                    version = %short(&version),
                    previous = %short(&previous),
                    changes = %diff.join("; "),
                    "flows reloaded"
                );
                self.status.send_modify(|s| {
                    s.version = version;
                    s.reloads += 1;
                });
                Ok(())
            }
            Err(FlowsError::Refused(diags)) => {
                for d in &diags {
                    tracing::error!(diagnostic = %d, "flow reload refused");
                }
                tracing::warn!(
                    errors = diags.len(),
                    version = %short(&self.version()),
                    "flow set refused: the last good version keeps serving"
                );
                self.status.send_modify(|s| {
                    s.refused += 1;
                    s.last_errors = diags.iter().map(ToString::to_string).collect();
                });
                Err(FlowsError::Refused(diags))
            }
            Err(e) => Err(e),
        }
    }

    /// Start the reload task: file changes (debounced) and SIGHUP. Stops when `shutdown`
    /// turns true.
    pub fn spawn_reloader(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(reload_task(self.clone(), shutdown))
    }
}

/// The first 12 hex digits of a version (enough to tell versions apart in logs).
pub fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

async fn reload_task(flows: Flows, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = {
        use notify::Watcher;
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if !ev.kind.is_access() => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "flow watcher error"),
        };
        match notify::recommended_watcher(handler) {
            Ok(mut w) => match w.watch(&flows.dir, notify::RecursiveMode::Recursive) {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, dir = %flows.dir.display(), "cannot watch flows: reload with SIGHUP");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no file watcher: reload with SIGHUP");
                None
            }
        }
    };
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    };
    let mut watching = watcher.is_some();
    let mut due: Option<TokioInstant> = None;
    loop {
        let debounce = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let sighup = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let sighup = std::future::pending::<Option<()>>();
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            ev = rx.recv(), if watching => {
                if ev.is_none() {
                    // The watcher is gone: only SIGHUP remains.
                    watching = false;
                    continue;
                }
                due = Some(TokioInstant::now() + DEBOUNCE);
            }
            _ = debounce => {
                due = None;
                tracing::info!(dir = %flows.dir.display(), "flows changed: reloading");
                let _ = flows.reload().await;
            }
            _ = sighup => {
                tracing::info!("SIGHUP: reloading flows");
                let _ = flows.reload().await;
            }
        }
    }
    drop(watcher);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_directory_gives_an_empty_set() {
        let dir = tempfile::tempdir().unwrap();
        let flows = Flows::load(&dir.path().join("none"), dir.path())
            .await
            .unwrap();
        assert!(flows.current().is_none());
        assert!(flows.reload().await.is_err(), "still missing: refused");
        assert_eq!(flows.status().borrow().refused, 1);
    }
}
