//! The load report: built from the tasks' totals, printed as a table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::LoadConfig;
use super::histogram::Histogram;
use super::measure::CLOCK_TICKS_PER_SECOND;
use super::media::MediaTotals;
use super::sip::SipTotals;

/// The quality bar of the capacity benchmark.
pub const BAR_P99_GAP_ERROR_US: u64 = 2000;
pub const BAR_MEMORY_PER_CALL_KIB: f64 = 64.0;

/// p50/p99/p99.9/max of a histogram, in the histogram's unit.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram) -> Self {
        Percentiles {
            samples: h.count(),
            p50: h.percentile(50.0),
            p99: h.percentile(99.0),
            p999: h.percentile(99.9),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// SIP outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct CallFigures {
    pub attempted: u64,
    pub answered: u64,
    pub failed: u64,
    /// Failures by SIP code (408: no final response before Timer B; 0: our own bug).
    pub failed_by_code: BTreeMap<u16, u64>,
    pub bad_sdp: u64,
    pub peak_concurrent: u64,
    pub remote_hangups: u64,
    pub bye_sent: u64,
    pub bye_failed: u64,
    pub unparsable_messages: u64,
    /// INVITE to 200 OK, microseconds.
    pub setup_us: Percentiles,
}

/// RTP figures, measured where the engine's media arrives (in the load tool).
#[derive(Debug, Clone, Serialize)]
pub struct MediaFigures {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub calls_measured: u64,
    pub calls_without_audio: u64,
    pub min_packets_per_call: u64,
    /// |arrival gap - ideal gap| for consecutive packets, microseconds.
    pub gap_error_us: Percentiles,
    pub keys_sent: u64,
    pub stray_packets: u64,
    pub send_errors: u64,
    /// Send slots the load tool itself skipped after stalls (its own overload).
    pub loadgen_skipped_slots: u64,
}

/// The engine's /proc figures (with `engine_pid`).
#[derive(Debug, Clone, Serialize)]
pub struct EngineFigures {
    pub pid: u32,
    pub rss_idle_kib: Option<u64>,
    pub rss_at_load_kib: Option<u64>,
    pub rss_max_kib: u64,
    pub rss_after_kib: Option<u64>,
    /// Calls up when `rss_at_load_kib` was sampled.
    pub calls_at_load: usize,
    /// (RSS at load - RSS idle) / calls at load.
    pub memory_per_call_kib: Option<f64>,
    /// utime + stime over the run.
    pub cpu_seconds: Option<f64>,
    /// Of one core, averaged over the run.
    pub cpu_percent: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub started_at: String,
    pub target: String,
    pub calls: u32,
    pub rate_per_s: f64,
    pub hold_s: f64,
    pub rtp_tasks: usize,
    pub elapsed_s: f64,
    pub sip: CallFigures,
    pub media: MediaFigures,
    pub engine: Option<EngineFigures>,
    pub loadgen_cpu_seconds: Option<f64>,
    /// Set when the load could not start at all.
    pub error: Option<String>,
    /// Why the run misses the quality bar (empty: it meets it).
    pub misses: Vec<String>,
}

pub(super) struct EngineSamples {
    pub pid: u32,
    /// (cpu ticks, rss KiB)
    pub before: Option<(u64, u64)>,
    /// (calls up, rss KiB)
    pub peak: Option<(usize, u64)>,
    pub max_rss_kib: u64,
    pub after: Option<(u64, u64)>,
}

pub(super) struct Inputs<'a> {
    pub cfg: &'a LoadConfig,
    pub started_wall: jiff::Timestamp,
    pub elapsed: Duration,
    pub sip: &'a SipTotals,
    pub media: &'a MediaTotals,
    pub engine: Option<EngineSamples>,
    pub self_cpu_ticks: Option<u64>,
}

fn ticks_to_s(t: u64) -> f64 {
    t as f64 / CLOCK_TICKS_PER_SECOND as f64
}

pub(super) fn build(i: Inputs<'_>) -> LoadReport {
    let elapsed_s = i.elapsed.as_secs_f64();
    let engine = i.engine.map(|e| {
        let cpu_seconds = match (e.before, e.after) {
            (Some(b), Some(a)) => Some(ticks_to_s(a.0.saturating_sub(b.0))),
            _ => None,
        };
        let memory_per_call_kib = match (e.before, e.peak) {
            (Some((_, idle)), Some((n, load))) if n > 0 => {
                Some((load as f64 - idle as f64) / n as f64)
            }
            _ => None,
        };
        EngineFigures {
            pid: e.pid,
            rss_idle_kib: e.before.map(|b| b.1),
            rss_at_load_kib: e.peak.map(|p| p.1),
            rss_max_kib: e.max_rss_kib,
            rss_after_kib: e.after.map(|a| a.1),
            calls_at_load: e.peak.map_or(0, |p| p.0),
            memory_per_call_kib,
            cpu_seconds,
            cpu_percent: cpu_seconds.map(|c| 100.0 * c / elapsed_s.max(1e-9)),
        }
    });
    let m = i.media;
    let s = i.sip;
    let mut report = LoadReport {
        started_at: i.started_wall.to_string(),
        target: i.cfg.target.to_string(),
        calls: i.cfg.calls,
        rate_per_s: i.cfg.rate,
        hold_s: i.cfg.hold.as_secs_f64(),
        rtp_tasks: i.cfg.rtp_tasks,
        elapsed_s,
        sip: CallFigures {
            attempted: s.attempted,
            answered: s.answered,
            failed: s.failed(),
            failed_by_code: s.failed_by_code.clone(),
            bad_sdp: s.bad_sdp,
            peak_concurrent: s.peak_concurrent,
            remote_hangups: s.remote_hangups,
            bye_sent: s.bye_sent,
            bye_failed: s.bye_failed,
            unparsable_messages: s.unparsable,
            setup_us: Percentiles::of(&s.setup_us),
        },
        media: MediaFigures {
            packets_sent: m.packets_sent,
            packets_received: m.packets_received,
            lost: m.lost,
            reordered: m.reordered,
            calls_measured: m.calls,
            calls_without_audio: m.calls_without_audio,
            min_packets_per_call: m.min_packets_per_call.unwrap_or(0),
            gap_error_us: Percentiles::of(&m.gap_error_us),
            keys_sent: m.keys_sent,
            stray_packets: m.stray_packets,
            send_errors: m.send_errors,
            loadgen_skipped_slots: m.skipped_slots,
        },
        engine,
        loadgen_cpu_seconds: i.self_cpu_ticks.map(ticks_to_s),
        error: None,
        misses: Vec::new(),
    };
    report.misses = report.compute_misses();
    report
}

impl LoadReport {
    pub(super) fn failed_to_start(cfg: &LoadConfig, error: String) -> Self {
        let empty = Percentiles::of(&Histogram::new());
        LoadReport {
            started_at: jiff::Timestamp::now().to_string(),
            target: cfg.target.to_string(),
            calls: cfg.calls,
            rate_per_s: cfg.rate,
            hold_s: cfg.hold.as_secs_f64(),
            rtp_tasks: cfg.rtp_tasks,
            elapsed_s: 0.0,
            sip: CallFigures {
                attempted: 0,
                answered: 0,
                failed: 0,
                failed_by_code: BTreeMap::new(),
                bad_sdp: 0,
                peak_concurrent: 0,
                remote_hangups: 0,
                bye_sent: 0,
                bye_failed: 0,
                unparsable_messages: 0,
                setup_us: empty,
            },
            media: MediaFigures {
                packets_sent: 0,
                packets_received: 0,
                lost: 0,
                reordered: 0,
                calls_measured: 0,
                calls_without_audio: 0,
                min_packets_per_call: 0,
                gap_error_us: empty,
                keys_sent: 0,
                stray_packets: 0,
                send_errors: 0,
                loadgen_skipped_slots: 0,
            },
            engine: None,
            loadgen_cpu_seconds: None,
            misses: vec![format!("did not start: {error}")],
            error: Some(error),
        }
    }

    fn compute_misses(&self) -> Vec<String> {
        let mut misses = Vec::new();
        if self.sip.attempted < u64::from(self.calls) {
            misses.push(format!(
                "only {} of {} calls attempted",
                self.sip.attempted, self.calls
            ));
        }
        if self.sip.failed > 0 || self.sip.answered < self.sip.attempted {
            misses.push(format!(
                "{} of {} calls not answered ({} failed)",
                self.sip.attempted - self.sip.answered.min(self.sip.attempted),
                self.sip.attempted,
                self.sip.failed
            ));
        }
        if self.media.lost > 0 {
            misses.push(format!("{} RTP packets lost", self.media.lost));
        }
        if self.media.calls_without_audio > 0 {
            misses.push(format!(
                "{} calls received no RTP",
                self.media.calls_without_audio
            ));
        }
        if self.media.gap_error_us.p99 >= BAR_P99_GAP_ERROR_US {
            misses.push(format!(
                "p99 inter-packet gap error {} us >= {} us",
                self.media.gap_error_us.p99, BAR_P99_GAP_ERROR_US
            ));
        }
        // Memory per call is a bar only when every call was up at once (the concurrency
        // series). In a call-rate run most calls have ended, and RSS also holds their SIP
        // transactions for RFC 3261's 32 s (Timers J and L): dividing by the calls up
        // would charge that to the few calls still up.
        if self.all_calls_up_at_once()
            && let Some(mem) = self.engine.as_ref().and_then(|e| e.memory_per_call_kib)
            && mem >= BAR_MEMORY_PER_CALL_KIB
        {
            misses.push(format!(
                "{mem:.1} KiB of engine memory per call >= {BAR_MEMORY_PER_CALL_KIB} KiB"
            ));
        }
        misses
    }

    /// Whether every call of the run was up at the same time (a concurrency run).
    pub fn all_calls_up_at_once(&self) -> bool {
        self.sip.peak_concurrent >= u64::from(self.calls)
    }

    /// Whether the run meets the benchmark's quality bar: every call answered, every call
    /// hearing audio, no packet lost, p99 gap error under 2 ms, memory per call (when
    /// measured, in a run where every call was up at once) under 64 KiB.
    pub fn meets_bar(&self) -> bool {
        self.misses.is_empty()
    }

    /// Pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |v| format!("{v:.1} {unit}"));
        let optk = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} KiB"));
        // Writing to a String cannot fail.
        let _ = writeln!(
            t,
            "guichet load: {} calls at {}/s held {:.1} s -> {} ({} RTP tasks), started {}, ran {:.1} s",
            self.calls,
            self.rate_per_s,
            self.hold_s,
            self.target,
            self.rtp_tasks,
            self.started_at,
            self.elapsed_s
        );
        if let Some(e) = &self.error {
            let _ = writeln!(t, "ERROR: {e}");
        }
        let rows: Vec<(&str, String)> = vec![
            ("calls attempted", self.sip.attempted.to_string()),
            ("calls answered", self.sip.answered.to_string()),
            (
                "calls failed",
                format!("{} {:?}", self.sip.failed, self.sip.failed_by_code),
            ),
            (
                "peak concurrent calls",
                self.sip.peak_concurrent.to_string(),
            ),
            (
                "setup ms p50 / p99 / max",
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    ms(self.sip.setup_us.p50),
                    ms(self.sip.setup_us.p99),
                    ms(self.sip.setup_us.max)
                ),
            ),
            (
                "BYE sent / failed / engine hung up",
                format!(
                    "{} / {} / {}",
                    self.sip.bye_sent, self.sip.bye_failed, self.sip.remote_hangups
                ),
            ),
            ("RTP packets sent", self.media.packets_sent.to_string()),
            (
                "RTP packets received",
                self.media.packets_received.to_string(),
            ),
            (
                "RTP lost / reordered",
                format!("{} / {}", self.media.lost, self.media.reordered),
            ),
            (
                "calls without audio / min packets per call",
                format!(
                    "{} / {}",
                    self.media.calls_without_audio, self.media.min_packets_per_call
                ),
            ),
            (
                "gap error ms p50 / p99 / p99.9 / max",
                format!(
                    "{:.3} / {:.3} / {:.3} / {:.3} ({} gaps)",
                    ms(self.media.gap_error_us.p50),
                    ms(self.media.gap_error_us.p99),
                    ms(self.media.gap_error_us.p999),
                    ms(self.media.gap_error_us.max),
                    self.media.gap_error_us.samples
                ),
            ),
            ("keys sent (RFC 4733)", self.media.keys_sent.to_string()),
            (
                "loadgen skipped slots / send errors / stray",
                format!(
                    "{} / {} / {}",
                    self.media.loadgen_skipped_slots,
                    self.media.send_errors,
                    self.media.stray_packets
                ),
            ),
            ("loadgen CPU", opt(self.loadgen_cpu_seconds, "s")),
        ];
        let mut rows = rows;
        if let Some(e) = &self.engine {
            rows.push(("engine pid", e.pid.to_string()));
            rows.push((
                "engine RSS idle / at load / after",
                format!(
                    "{} / {} / {}",
                    optk(e.rss_idle_kib),
                    optk(e.rss_at_load_kib),
                    optk(e.rss_after_kib)
                ),
            ));
            rows.push((
                "engine memory per call",
                format!(
                    "{} ({} calls up)",
                    opt(e.memory_per_call_kib, "KiB"),
                    e.calls_at_load
                ),
            ));
            rows.push((
                "engine CPU",
                format!(
                    "{} ({} of one core)",
                    opt(e.cpu_seconds, "s"),
                    opt(e.cpu_percent, "%")
                ),
            ));
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(t, "  {k:<width$}  {v}");
        }
        if self.misses.is_empty() {
            let _ = writeln!(t, "quality bar: MET");
        } else {
            let _ = writeln!(t, "quality bar: MISSED: {}", self.misses.join("; "));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clean run of `calls` calls with `peak` of them up at once and `mem` KiB per call.
    fn run(calls: u32, peak: u64, mem: f64) -> LoadReport {
        let cfg = LoadConfig::new("127.0.0.1:5060".parse().unwrap());
        let mut r = LoadReport::failed_to_start(&LoadConfig { calls, ..cfg }, String::new());
        r.error = None;
        r.sip.attempted = u64::from(calls);
        r.sip.answered = u64::from(calls);
        r.sip.peak_concurrent = peak;
        r.engine = Some(EngineFigures {
            pid: 1,
            rss_idle_kib: Some(1000),
            rss_at_load_kib: Some(1000 + (mem * peak as f64) as u64),
            rss_max_kib: 0,
            rss_after_kib: None,
            calls_at_load: peak as usize,
            memory_per_call_kib: Some(mem),
            cpu_seconds: None,
            cpu_percent: None,
        });
        r.misses = r.compute_misses();
        r
    }

    #[test]
    fn memory_per_call_is_a_bar_only_when_every_call_was_up_at_once() {
        let concurrent = run(3000, 3000, 70.0);
        assert!(concurrent.all_calls_up_at_once());
        assert_eq!(
            concurrent.misses,
            vec!["70.0 KiB of engine memory per call >= 64 KiB".to_owned()]
        );
        assert!(run(3000, 3000, 30.0).meets_bar());
        // A call-rate run: 10,000 calls, about 1,000 up at a time.
        let rate = run(10_000, 1_058, 70.0);
        assert!(!rate.all_calls_up_at_once());
        assert!(rate.meets_bar(), "{:?}", rate.misses);
    }
}
