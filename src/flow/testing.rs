//! Flow tests: YAML files under `flows/tests/` that script a caller (keys with timings, the
//! date and time of the call, the caller's number) and state what must happen (prompts
//! heard in order, a queue reached, how the call ends, within how many seconds).
//!
//! Input: the flow directory. Output: a [`Report`] with one [`TestResult`] per test (and
//! the load errors, if the flows do not load). Run by `guichet flows test` and by
//! `tests/flows.rs` under `cargo test`.
//!
//! ```yaml
//! tests:
//!   - name: "Silence : un conseiller après les relances"
//!     at: 2026-12-07T10:00          # Europe/Paris; default Monday 2026-12-07 10:00
//!     keys: []                      # "1", or { key: "1", after: 2s }
//!     expect:
//!       heard: [bienvenue, "tapez 0"]   # prompt ids or text excerpts, in this order
//!       queue: accueil
//!       within: 90s
//!       ends: hangup                # hangup | connected | caller_hangup | time_limit
//! ```
//!
//! ```no_run
//! let report = guichet::flow::testing::run_flow_tests(std::path::Path::new("flows"));
//! print!("{report}");
//! assert!(report.passed());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::flow::diagnostic::Diagnostic;
use crate::flow::interp::{CallerInfo, EndReason, QueueResult};
use crate::flow::ir::{FlowSet, Loc, is_phone_key};
use crate::flow::load::parse_duration;
use crate::flow::simulate::{Ending, SimOptions, Transcript, parse_at, simulate_with};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    tests: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    recent_calls: Option<u32>,
    #[serde(default)]
    keys: Vec<RawKey>,
    /// `unavailable` (default) or `connected`.
    #[serde(default)]
    queue_answer: Option<String>,
    expect: RawExpect,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawKey {
    Key(String),
    Timed(TimedKey),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimedKey {
    key: String,
    after: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    heard: Vec<String>,
    #[serde(default)]
    not_heard: Vec<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    no_queue: Option<bool>,
    #[serde(default)]
    ends: Option<String>,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    visits: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

/// The outcome of one flow test.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub file: PathBuf,
    pub line: u32,
    pub name: String,
    /// Empty when the test passed.
    pub failures: Vec<String>,
    pub transcript: Transcript,
}

/// Every flow test of a directory.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Problems loading the flows or reading test files.
    pub errors: Vec<Diagnostic>,
    pub results: Vec<TestResult>,
}

impl Report {
    /// No error and every test passed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.results.iter().all(|r| r.failures.is_empty())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "{e}")?;
        }
        for r in &self.results {
            if r.failures.is_empty() {
                writeln!(f, "ok    {}:{}: {}", r.file.display(), r.line, r.name)?;
            } else {
                writeln!(f, "FAIL  {}:{}: {}", r.file.display(), r.line, r.name)?;
                for fl in &r.failures {
                    writeln!(f, "        {fl}")?;
                }
                writeln!(f, "      transcript:")?;
                for line in r.transcript.to_string().lines() {
                    writeln!(f, "        {line}")?;
                }
            }
        }
        let failed = self
            .results
            .iter()
            .filter(|r| !r.failures.is_empty())
            .count();
        writeln!(
            f,
            "{} tests, {} passed, {} failed",
            self.results.len(),
            self.results.len() - failed,
            failed
        )
    }
}

/// The default moment of a test call: Monday 7 December 2026, 10:00, Paris.
fn default_at() -> jiff::ZonedDateTime {
    jiff::civil::date(2026, 12, 7)
        .at(10, 0, 0, 0)
        .to_zoned_datetime(
            jiff::tz::TimeZone::get("Europe/Paris").unwrap_or(jiff::tz::TimeZone::UTC),
        )
        .unwrap_or_default()
}

/// Run every test file under `dir/tests/` against the flows of `dir`.
pub fn run_flow_tests(dir: &Path) -> Report {
    run_flow_tests_with(dir, None)
}

/// Same, with recordings from `audio_dir` for durations.
pub fn run_flow_tests_with(dir: &Path, audio_dir: Option<&Path>) -> Report {
    let mut report = Report::default();
    let set = match FlowSet::load(dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            report.errors = e;
            return report;
        }
    };
    let tests_dir = dir.join("tests");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    paths.sort();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                report
                    .errors
                    .push(Diagnostic::error(&path, 0, 0, "io", e.to_string()));
                continue;
            }
        };
        match serde_saphyr::from_str::<RawTestFile>(&text) {
            Ok(file) => {
                for t in file.tests {
                    let loc = Loc::of(&t.referenced);
                    report
                        .results
                        .push(run_one(&set, &path, loc.line, &t.value, audio_dir));
                }
            }
            Err(e) => {
                let loc = e.location().map(|l| Loc::of(&l)).unwrap_or_default();
                let msg = e.without_snippet().to_string();
                report.errors.push(Diagnostic::error(
                    &path,
                    loc.line,
                    loc.column,
                    "test-file",
                    msg.lines().next().unwrap_or("invalid test file").to_owned(),
                ));
            }
        }
    }
    report
}

fn matches(item: &str, id: &str, text: &str) -> bool {
    id == item
        || id.ends_with(&format!("/{item}"))
        || text.to_lowercase().contains(&item.to_lowercase())
}

fn run_one(
    set: &Arc<FlowSet>,
    file: &Path,
    line: u32,
    t: &RawTest,
    audio: Option<&Path>,
) -> TestResult {
    let mut failures = Vec::new();
    let at = match &t.at {
        None => default_at(),
        Some(s) => parse_at(s).unwrap_or_else(|e| {
            failures.push(e);
            default_at()
        }),
    };
    let mut keys = Vec::new();
    for k in &t.keys {
        let (key, after) = match k {
            RawKey::Key(k) => (k.as_str(), None),
            RawKey::Timed(tk) => match parse_duration(&tk.after) {
                Some(d) => (tk.key.as_str(), Some(d)),
                None => {
                    failures.push(format!("`after: {}` is not a duration like 2s", tk.after));
                    (tk.key.as_str(), None)
                }
            },
        };
        let mut chars = key.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if is_phone_key(c) => keys.push((after, c)),
            _ => failures.push(format!("`{key}` is not a phone key (0-9, *, #)")),
        }
    }
    let queue_answer = match t.queue_answer.as_deref() {
        None | Some("unavailable") => QueueResult::Unavailable,
        Some("connected") => QueueResult::Connected,
        Some(o) => {
            failures.push(format!(
                "queue_answer `{o}`: expected unavailable or connected"
            ));
            QueueResult::Unavailable
        }
    };
    let opts = SimOptions {
        audio_dir: audio.map(Path::to_owned),
        caller: CallerInfo {
            number: t.caller.clone(),
            recent_calls: t.recent_calls.unwrap_or(0),
        },
        queue_answer,
        ..SimOptions::default()
    };
    let entry = t.entry.as_deref().unwrap_or("main");
    let transcript = match simulate_with(set, entry, &keys, at, &opts) {
        Ok(tr) => tr,
        Err(e) => {
            failures.push(e.to_string());
            Transcript::default()
        }
    };
    if failures.is_empty() {
        check_expect(&t.expect, &transcript, &mut failures);
    }
    TestResult {
        file: file.to_owned(),
        line,
        name: t.name.clone(),
        failures,
        transcript,
    }
}

fn check_expect(e: &RawExpect, tr: &Transcript, failures: &mut Vec<String>) {
    let heard: Vec<(String, String)> = tr
        .heard()
        .map(|(_, id, text)| (id.0.clone(), text.to_owned()))
        .collect();
    let mut pos = 0usize;
    for item in &e.heard {
        match heard
            .get(pos..)
            .and_then(|rest| rest.iter().position(|(id, text)| matches(item, id, text)))
        {
            // The next item may match the same prompt (an id, then an excerpt of its text).
            Some(i) => pos += i,
            None => failures.push(format!("expected to hear `{item}` (in this order)")),
        }
    }
    for item in &e.not_heard {
        if heard.iter().any(|(id, text)| matches(item, id, text)) {
            failures.push(format!("did not expect to hear `{item}`"));
        }
    }
    let queue = tr.queue_reached();
    if let Some(q) = &e.queue {
        match queue {
            Some((_, got)) if got == q => {}
            Some((_, got)) => failures.push(format!("expected queue `{q}`, reached `{got}`")),
            None => failures.push(format!("expected queue `{q}`, reached no queue")),
        }
    }
    if e.no_queue == Some(true)
        && let Some((_, got)) = queue
    {
        failures.push(format!("expected no queue, reached `{got}`"));
    }
    let ending = tr.ending();
    if let Some(want) = &e.ends {
        let got = ending.map(|(_, r)| match r {
            Ending::Finished(EndReason::FlowHangup) => "hangup",
            Ending::Finished(EndReason::Connected) => "connected",
            Ending::Finished(EndReason::CallerHangup) => "caller_hangup",
            Ending::Finished(EndReason::Stuck) => "stuck",
            Ending::TimeLimit => "time_limit",
            Ending::Stalled => "stalled",
        });
        if got != Some(want.as_str()) {
            failures.push(format!(
                "expected the call to end with `{want}`, got `{}`",
                got.unwrap_or("nothing")
            ));
        }
    }
    if let Some(w) = &e.within {
        match parse_duration(w) {
            None => failures.push(format!("`within: {w}` is not a duration like 90s")),
            Some(limit) => {
                let at = if e.queue.is_some() {
                    queue.map(|(t, _)| t)
                } else {
                    ending.map(|(t, _)| t)
                };
                match at {
                    Some(t) if t <= limit => {}
                    Some(t) => failures.push(format!(
                        "reached after {:.1}s, expected within {}",
                        t.as_secs_f64(),
                        w
                    )),
                    None => failures.push(format!("nothing reached within {w}")),
                }
            }
        }
    }
    for v in &e.visits {
        if !tr.nodes().any(|n| n == v || n.ends_with(&format!(".{v}"))) {
            failures.push(format!("expected to pass through node `{v}`"));
        }
    }
    for (name, want) in &e.vars {
        let got = tr.lines.iter().rev().find_map(|l| match l {
            crate::flow::simulate::Line::Var { name: n, value, .. } if n == name => {
                Some(value.as_str())
            }
            _ => None,
        });
        if got != Some(want.as_str()) {
            failures.push(format!("expected `{name}` = `{want}`, got {got:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tests_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.yaml"),
            r#"
id: main
language: fr
reviewed: 2026-12-05
entry: bye
prompts: { bye: "Au revoir et bonne journée." }
nodes:
  bye:
    hangup: { prompts: [bye] }
"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(
            dir.path().join("tests/t.yaml"),
            r#"
tests:
  - name: passes
    expect: { heard: [bye, "bonne journée"], ends: hangup, within: 10s, no_queue: true }
  - name: fails
    keys: ["1", { key: "2", after: 1s }]
    expect: { heard: ["inconnu"], queue: accueil }
"#,
        )
        .unwrap();
        let r = run_flow_tests(dir.path());
        assert!(r.errors.is_empty(), "{r}");
        assert_eq!(r.results.len(), 2);
        assert!(r.results[0].failures.is_empty(), "{r}");
        assert_eq!(r.results[1].failures.len(), 2, "{r}");
        assert!(!r.passed());
        assert!(r.to_string().contains("FAIL"));
    }
}
