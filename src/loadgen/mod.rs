//! `guichet load`: the load generator of the capacity benchmark (a SIP/RTP client tool;
//! like `engine`, it owns sockets, tokio tasks and the clock).
//!
//! [`run`] places `calls` calls at `rate` new calls per second to a SIP target over UDP,
//! each held for `hold` then hung up with BYE. Concurrency therefore peaks at
//! `min(calls, rate * hold)`: "3,000 concurrent calls" is `calls = 3000`, a fast ramp and a
//! hold longer than the ramp; "1,000 calls/s for 30 s" is `rate = 1000, calls = 30000`.
//!
//! Tasks (not one per call): one SIP task (`sip`) with every call's transactions in one
//! table keyed by Call-ID and one deadline heap; `rtp_tasks` RTP threads (`media`), each
//! with one RTP/RTCP socket pair and one [`crate::media::pacer::Pacer`] driving its calls'
//! [`crate::media::session::MediaSession`]s (20 ms PCMU out, RFC 4733 key presses at the
//! configured offsets after answer) with batched `sendmmsg`/`recvmmsg` and the kernel's
//! arrival timestamps; one sampler of the engine's `/proc` figures.
//!
//! Measured: calls attempted / answered / failed (by SIP code, 408 for no final
//! response), INVITE-to-200 setup latency, per call received packets and loss from
//! sequence gaps, inter-packet gap error against the ideal 20 ms ([`measure`]), in a
//! fixed-bucket [`histogram::Histogram`] of microseconds; with `engine_pid`, the engine's
//! CPU time and resident memory before, at peak load and after. The [`LoadReport`] prints
//! as a table ([`LoadReport::table`]) and as JSON ([`LoadReport::json`]).
//!
//! ```no_run
//! # async fn demo() {
//! use guichet::loadgen::{run, LoadConfig};
//! let mut cfg = LoadConfig::new("127.0.0.1:5060".parse().unwrap());
//! cfg.calls = 500;
//! cfg.rate = 100.0;
//! let report = run(cfg).await;
//! println!("{}", report.table());
//! assert!(report.meets_bar());
//! # }
//! ```

pub mod cli;
pub mod histogram;
pub mod measure;
mod media;
mod report;
mod sip;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use cli::{LoadArgs, cli_load};
pub use report::{CallFigures, EngineFigures, LoadReport, MediaFigures, Percentiles};

use crate::media::dtmf::Digit;
use media::MediaTotals;

/// Why the load could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot bind a {what} socket on {ip}: {source}")]
    Bind {
        what: &'static str,
        ip: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("bad key schedule {0:?}: expected e.g. 2s:1,3.5s:#")]
    Keys(String),
}

/// What load to place.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The engine's SIP address (UDP).
    pub target: SocketAddr,
    /// Our address (SIP and RTP sockets bind here; put in Via, Contact and SDP).
    pub local_ip: IpAddr,
    /// User part of the Request-URI (`sip:<user>@<target>`).
    pub user: String,
    /// Calls to place in total.
    pub calls: u32,
    /// New calls per second.
    pub rate: f64,
    /// How long each call lasts after it is answered.
    pub hold: Duration,
    /// Keys to press (RFC 4733), at offsets after answer.
    pub keys: Vec<(Duration, Digit)>,
    /// RTP threads (each one socket pair and one pacer).
    pub rtp_tasks: usize,
    /// The engine's PID, to sample its CPU time and memory from /proc.
    pub engine_pid: Option<u32>,
    /// SIP timers of our transactions (RFC 3261 defaults; tests shorten T1).
    pub timers: crate::sip::endpoint::Timers,
}

impl LoadConfig {
    /// 20 calls at 100 calls/s held 2 s, to user `1000`, from 127.0.0.1, 2 RTP threads.
    pub fn new(target: SocketAddr) -> Self {
        LoadConfig {
            target,
            local_ip: if target.ip().is_loopback() {
                target.ip()
            } else {
                IpAddr::from([0, 0, 0, 0])
            },
            user: "1000".to_owned(),
            calls: 20,
            rate: 100.0,
            hold: Duration::from_secs(2),
            keys: Vec::new(),
            rtp_tasks: 2,
            engine_pid: None,
            timers: crate::sip::endpoint::Timers::default(),
        }
    }
}

/// Parse a key schedule: `2s:1,3.5s:#` or `2000ms:1` (offset after answer, then the key).
pub fn parse_keys(text: &str) -> Result<Vec<(Duration, Digit)>, LoadError> {
    let bad = || LoadError::Keys(text.to_owned());
    let mut keys = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (at, key) = item.rsplit_once(':').ok_or_else(bad)?;
        let mut chars = key.trim().chars();
        let digit = chars.next().and_then(Digit::from_char).ok_or_else(bad)?;
        if chars.next().is_some() {
            return Err(bad());
        }
        let at = at.trim();
        let secs: f64 = if let Some(ms) = at.strip_suffix("ms") {
            ms.parse::<f64>().map_err(|_| bad())? / 1000.0
        } else if let Some(s) = at.strip_suffix('s') {
            s.parse().map_err(|_| bad())?
        } else {
            at.parse().map_err(|_| bad())?
        };
        if !(0.0..=86_400.0).contains(&secs) {
            return Err(bad());
        }
        keys.push((Duration::from_secs_f64(secs), digit));
    }
    Ok(keys)
}

/// One reading of a process's /proc figures.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    cpu_ticks: u64,
    rss_kib: u64,
}

fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_ticks: measure::parse_stat_cpu_ticks(&stat)?,
        rss_kib: measure::parse_status_rss_kib(&status)?,
    })
}

/// Samples of the engine taken while the load runs: the one with the most calls up.
#[derive(Debug, Default)]
struct PeakSample {
    active: usize,
    sample: Option<ProcSample>,
    max_rss_kib: u64,
}

/// Place the load described by `cfg` and measure it. Never panics on network trouble:
/// what could not be done shows up in the report (failed calls, send errors, `error`).
pub async fn run(cfg: LoadConfig) -> LoadReport {
    match run_inner(&cfg).await {
        Ok(r) => r,
        Err(e) => LoadReport::failed_to_start(&cfg, e.to_string()),
    }
}

async fn run_inner(cfg: &LoadConfig) -> Result<LoadReport, LoadError> {
    let bind_err = |what, source| LoadError::Bind {
        what,
        ip: cfg.local_ip,
        source,
    };
    let sip_sock =
        media::bind_udp(SocketAddr::new(cfg.local_ip, 0)).map_err(|e| bind_err("SIP", e))?;
    let mut media_tx = Vec::new();
    let mut media_local = Vec::new();
    let mut media_tasks = Vec::new();
    for _ in 0..cfg.rtp_tasks.clamp(1, 16) {
        let (rtp, rtcp) = media::bind_pair(cfg.local_ip).map_err(|e| bind_err("RTP", e))?;
        let local = rtp.local_addr().map_err(|e| bind_err("RTP", e))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("load-rtp-{}", media_tasks.len()))
            .spawn(move || media::run_media(rtp, rtcp, rx))
            .map_err(|e| bind_err("RTP", e))?;
        media_tx.push(tx);
        media_local.push(local);
        media_tasks.push(thread);
    }

    let self_pid = std::process::id();
    let engine_before = cfg.engine_pid.and_then(sample);
    let self_before = sample(self_pid);
    let started_wall = jiff::Timestamp::now();
    let t0 = Instant::now();

    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(std::sync::Mutex::new(PeakSample::default()));
    let sampler = cfg.engine_pid.map(|pid| {
        let active = active.clone();
        let peak = peak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let now_active = active.load(Ordering::Relaxed);
                let Some(s) = sample(pid) else { continue };
                // Tiny critical section, never held across an await.
                if let Ok(mut p) = peak.lock() {
                    p.max_rss_kib = p.max_rss_kib.max(s.rss_kib);
                    if now_active >= p.active && now_active > 0 {
                        p.active = now_active;
                        p.sample = Some(s);
                    }
                }
            }
        })
    });

    let sip_totals = sip::run_sip(cfg, &sip_sock, &media_tx, &media_local, active.clone()).await;
    drop(media_tx);
    let mut media = MediaTotals::default();
    for t in media_tasks {
        if let Ok(Ok(m)) = tokio::task::spawn_blocking(move || t.join()).await {
            media.merge(&m);
        }
    }
    let elapsed = t0.elapsed();
    if let Some(s) = sampler {
        s.abort();
    }
    // Let the engine release its calls before the "after" sample.
    if cfg.engine_pid.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let engine_after = cfg.engine_pid.and_then(sample);
    let self_after = sample(self_pid);
    let peak = peak
        .lock()
        .map(|p| (p.active, p.sample, p.max_rss_kib))
        .unwrap_or((0, None, 0));

    Ok(report::build(report::Inputs {
        cfg,
        started_wall,
        elapsed,
        sip: &sip_totals,
        media: &media,
        engine: cfg.engine_pid.map(|pid| report::EngineSamples {
            pid,
            before: engine_before.map(|s| (s.cpu_ticks, s.rss_kib)),
            peak: peak.1.map(|s| (peak.0, s.rss_kib)),
            max_rss_kib: peak.2,
            after: engine_after.map(|s| (s.cpu_ticks, s.rss_kib)),
        }),
        self_cpu_ticks: match (self_before, self_after) {
            (Some(a), Some(b)) => Some(b.cpu_ticks.saturating_sub(a.cpu_ticks)),
            _ => None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_schedule_parses() {
        let keys = parse_keys("2s:1, 3.5s:#,250ms:*").unwrap();
        assert_eq!(
            keys,
            vec![
                (Duration::from_secs(2), Digit::D1),
                (Duration::from_millis(3500), Digit::Hash),
                (Duration::from_millis(250), Digit::Star),
            ]
        );
        assert!(parse_keys("").unwrap().is_empty());
        for bad in ["2s", "x:1", "2s:12", "2s:z", "-1s:1", "1e9s:1"] {
            assert!(parse_keys(bad).is_err(), "{bad}");
        }
    }
}
