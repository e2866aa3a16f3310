//! Operator commands as plain functions, for the binary's clap layer to call:
//! `guichet flows check|simulate|test|graph` and `guichet schema`. They print to stdout
//! (results) and stderr (problems) and return the process exit code. This is the only
//! part of `flow` that touches the terminal; it reads no clock (times come from arguments).
//!
//! ```no_run
//! use std::path::Path;
//! let code = guichet::flow::cli::cli_check(Path::new("flows"), Some(Path::new("audio")));
//! # let _ = code;
//! ```

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flow::check;
use crate::flow::diagnostic::Severity;
use crate::flow::graph;
use crate::flow::interp::{CallerInfo, FlowRun, Input, Output, QueueResult};
use crate::flow::ir::{FlowSet, is_phone_key};
use crate::flow::load::parse_duration;
use crate::flow::schema;
use crate::flow::simulate::{SimOptions, parse_at, simulate_with};
use crate::flow::testing;
use crate::flow::timing::PromptTimes;

/// Output format of [`cli_graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

fn load_or_print(dir: &Path) -> Option<Arc<FlowSet>> {
    match FlowSet::load(dir) {
        Ok(s) => Some(Arc::new(s)),
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("{} error(s); the flows were not loaded", diags.len());
            None
        }
    }
}

/// `guichet flows check [--audio DIR]`: every problem, then the time-to-person report.
pub fn cli_check(dir: &Path, audio_dir: Option<&Path>) -> ExitCode {
    let report = check::check_dir(dir, audio_dir);
    let mut errors = 0;
    let mut warnings = 0;
    for d in &report.diagnostics {
        match d.severity {
            Severity::Error => {
                errors += 1;
                eprintln!("{d}");
            }
            Severity::Warning => {
                warnings += 1;
                eprintln!("{d}");
            }
            Severity::Note => {}
        }
    }
    if !report.entries.is_empty() {
        println!("Time to a person:");
        for e in &report.entries {
            println!("  {e}");
        }
    }
    println!("{errors} error(s), {warnings} warning(s)");
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `guichet flows test [--audio DIR]`: run `flows/tests/*.yaml`.
pub fn cli_test(dir: &Path, audio_dir: Option<&Path>, origin: Instant) -> ExitCode {
    let report = testing::run_flow_tests_with(dir, audio_dir, origin);
    print!("{report}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `guichet graph [FLOW] --format mermaid|dot`: the menu tree on stdout, of every flow or
/// of one (`only`).
pub fn cli_graph(dir: &Path, only: Option<&str>, format: GraphFormat) -> ExitCode {
    let Some(set) = load_or_print(dir) else {
        return ExitCode::FAILURE;
    };
    if let Some(flow) = only
        && !set.flows().iter().any(|f| f.id == flow)
    {
        let known: Vec<&str> = set.flows().iter().map(|f| f.id.as_str()).collect();
        eprintln!("no flow `{flow}`; the flows are: {}", known.join(", "));
        return ExitCode::FAILURE;
    }
    match format {
        GraphFormat::Mermaid => print!("{}", graph::mermaid_of(&set, only)),
        GraphFormat::Dot => print!("{}", graph::dot_of(&set, only)),
    }
    ExitCode::SUCCESS
}

/// `guichet schema`: the JSON Schema of flow files.
pub fn cli_schema() -> ExitCode {
    match serde_json::to_string_pretty(&schema::json_schema()) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Parse `"1 +3s 4 91012 1"`: digits are pressed as soon as the flow waits, `+3s` waits
/// that long before the next key (which may then cut a message short).
pub fn parse_keys(s: &str) -> Result<Vec<(Option<Duration>, char)>, String> {
    let mut keys = Vec::new();
    let mut wait = None;
    for token in s.split_whitespace() {
        if let Some(d) = token.strip_prefix('+') {
            wait = Some(parse_duration(d).ok_or_else(|| format!("`{token}`: expected +3s"))?);
            continue;
        }
        for c in token.chars() {
            if !is_phone_key(c) {
                return Err(format!("`{c}` is not a phone key (0-9, *, #)"));
            }
            keys.push((wait.take(), c));
        }
    }
    Ok(keys)
}

/// `guichet flows simulate [ENTRY] [--keys "1 +3s 0"] [--at TIME] [--caller NUM]`.
/// Without `keys`, interactive: each line read from `input` is a set of keys; an empty line
/// stays silent until the flow's timeout; `q` hangs up. `at` defaults to Monday
/// 2026-12-07 10:00 Paris (the clap layer may pass the current time).
#[allow(clippy::too_many_arguments)]
pub fn cli_simulate(
    dir: &Path,
    entry: &str,
    keys: Option<&str>,
    at: Option<&str>,
    caller: Option<&str>,
    audio_dir: Option<&Path>,
    origin: Instant,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> ExitCode {
    let Some(set) = load_or_print(dir) else {
        return ExitCode::FAILURE;
    };
    let at = match at
        .map(parse_at)
        .unwrap_or_else(|| parse_at("2026-12-07T10:00"))
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let caller = CallerInfo {
        number: caller.map(str::to_owned),
        recent_calls: 0,
    };
    if let Some(keys) = keys {
        let keys = match parse_keys(keys) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let opts = SimOptions {
            audio_dir: audio_dir.map(Path::to_owned),
            caller,
            ..SimOptions::default()
        };
        return match simulate_with(&set, entry, &keys, at, origin, &opts) {
            Ok(t) => {
                let _ = write!(output, "{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    interactive(&set, entry, caller, at, origin, audio_dir, input, output)
}

/// Play what the run asks to the end (printing it) and answer its actions with "no adviser
/// available", until it waits for a key or ends. Returns the new virtual time.
fn play_out(
    run: &mut FlowRun,
    set: &FlowSet,
    times: &PromptTimes,
    origin: Instant,
    mut now: Instant,
    out: &mut dyn Write,
) -> Instant {
    let at = |now: Instant| (now - origin).as_secs_f64();
    while let Some(o) = run.poll_output() {
        match o {
            Output::Play { prompts, .. } => {
                for p in &prompts {
                    let text = set.prompt_text(p).unwrap_or_else(|| format!("<{p}>"));
                    let _ = writeln!(out, "{:7.1}s  « {text} »", at(now));
                    now += times.of_id(set, p);
                }
                run.handle_input(Input::PromptFinished(now));
            }
            Output::Enqueue { queue, .. } => {
                let _ = writeln!(
                    out,
                    "{:7.1}s  -> file d'attente {queue} (aucun conseiller dans la simulation)",
                    at(now)
                );
                run.handle_input(Input::QueueResult(now, QueueResult::Unavailable));
            }
            Output::Callback { .. } | Output::Voicemail { .. } | Output::Transfer { .. } => {
                let _ = writeln!(
                    out,
                    "{:7.1}s  -> {o:?} (indisponible dans la simulation)",
                    at(now)
                );
                run.handle_input(Input::QueueResult(now, QueueResult::Unavailable));
            }
            Output::Hangup => {
                let _ = writeln!(out, "{:7.1}s  -> raccroché", at(now));
            }
            Output::StopPlayback | Output::StartCollect { .. } | Output::Event(_) => {}
        }
    }
    now
}

#[allow(clippy::too_many_arguments)]
fn interactive(
    set: &Arc<FlowSet>,
    entry: &str,
    caller: CallerInfo,
    at: jiff::ZonedDateTime,
    origin: Instant,
    audio_dir: Option<&Path>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> ExitCode {
    let times = PromptTimes::new(set, audio_dir);
    // Virtual time from the caller's origin; only durations are added to it.
    let mut run = match FlowRun::new(set.clone(), entry, caller, origin, at) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = writeln!(
        out,
        "Appel simulé. Tapez des touches puis Entrée ; Entrée seule = silence ; q = raccrocher."
    );
    let mut now = play_out(&mut run, set, &times, origin, origin, out);
    loop {
        if run.is_done() {
            return ExitCode::SUCCESS;
        }
        let Some(deadline) = run.poll_timeout() else {
            return ExitCode::SUCCESS;
        };
        let _ = write!(out, "touches> ");
        let _ = out.flush();
        let mut line = String::new();
        if matches!(input.read_line(&mut line), Ok(0) | Err(_)) || line.trim() == "q" {
            run.handle_input(Input::Hangup);
            return ExitCode::SUCCESS;
        }
        let keys: Vec<char> = line.chars().filter(|c| !c.is_whitespace()).collect();
        if keys.is_empty() {
            let _ = writeln!(
                out,
                "          … silence {:.0}s",
                (deadline - now).as_secs_f64()
            );
            now = deadline;
            run.handle_input(Input::Timeout(now));
            now = play_out(&mut run, set, &times, origin, now, out);
            continue;
        }
        // Each key is pressed once the previous one's prompts have finished.
        for c in keys {
            run.handle_input(Input::Digit(now, c));
            now = play_out(&mut run, set, &times, origin, now, out);
            if run.is_done() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_times_parse() {
        assert_eq!(
            parse_keys("1 +3s 0").unwrap(),
            vec![(None, '1'), (Some(Duration::from_secs(3)), '0')]
        );
        assert_eq!(parse_keys("91012").unwrap().len(), 5);
        assert!(parse_keys("a").is_err());
        assert!(parse_keys("+x 1").is_err());
        assert_eq!(parse_at("2026-12-07T10:00").unwrap().hour(), 10);
        assert!(parse_at("demain").is_err());
    }

    #[test]
    fn interactive_session_over_shipped_flows() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
        let mut input = std::io::Cursor::new("2\n\n1\n0\n");
        let mut out = Vec::new();
        let code = cli_simulate(
            &dir,
            "main",
            None,
            None,
            None,
            None,
            Instant::now(),
            &mut input,
            &mut out,
        );
        assert_eq!(code, ExitCode::SUCCESS);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("« trente-deux »"), "{text}");
        assert!(text.contains("silence"), "{text}");
        assert!(text.contains("file d'attente accueil"), "{text}");
    }

    #[test]
    fn scripted_session_prints_a_transcript() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
        let mut out = Vec::new();
        let code = cli_simulate(
            &dir,
            "main",
            Some("3 0"),
            Some("2026-12-07T11:00"),
            None,
            None,
            Instant::now(),
            &mut std::io::empty(),
            &mut out,
        );
        assert_eq!(code, ExitCode::SUCCESS);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("« trente-neuf »") && text.contains("« quarante-neuf »"),
            "{text}"
        );
        assert!(text.contains("Enqueue"), "{text}");
    }
}
