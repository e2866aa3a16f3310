//! The simulator: drives a [`FlowRun`] with a virtual clock, real or estimated prompt
//! durations and a scripted caller, and writes down what the caller heard and did.
//!
//! Input: a flow set, an entry, key presses with optional timings, the wall-clock time of
//! the call. Output: a [`Transcript`] (prompt texts with their times, keys, waits, actions).
//! Queues, callbacks, voicemail and transfers answer [`QueueResult::Unavailable`] by default
//! (no adviser module yet), so their fallback routes run.
//!
//! A key `(Some(d), k)` is pressed `d` after the previous key (or the start of the call),
//! cutting a message short if needed; `(None, k)` is pressed as soon as the flow waits for a
//! key (the prompts have finished).
//!
//! ```
//! use std::sync::Arc;
//! use guichet::flow::{ir::FlowSet, simulate::simulate};
//! let yaml = "id: main\nlanguage: fr\nreviewed: 2026-12-05\nentry: bye\n\
//!             prompts: { bye: \"Au revoir.\" }\nnodes:\n  bye:\n    hangup: { prompts: [bye] }\n";
//! let set = Arc::new(FlowSet::from_texts(&[("main", yaml)]).unwrap());
//! let at = jiff::civil::date(2026, 12, 7).at(10, 0, 0, 0).in_tz("Europe/Paris").unwrap();
//! let t = simulate(&set, "main", &[], at);
//! assert!(t.heard_text().contains("Au revoir."));
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flow::interp::*;
use crate::flow::ir::{FlowSet, PromptId};
use crate::flow::timing::PromptTimes;

/// Options of a simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where recordings are (for real durations); `None` estimates from text.
    pub audio_dir: Option<PathBuf>,
    pub caller: CallerInfo,
    /// How queues, transfers, callbacks and voicemail answer.
    pub queue_answer: QueueResult,
    /// Stop after this much virtual time.
    pub max_time: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            audio_dir: None,
            caller: CallerInfo::default(),
            queue_answer: QueueResult::Unavailable,
            max_time: Duration::from_secs(3600),
        }
    }
}

/// One thing that happened in a simulated call, at a time from the start of the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Node {
        at: Duration,
        name: String,
    },
    Heard {
        at: Duration,
        prompt: PromptId,
        text: String,
        cut: bool,
    },
    Pressed {
        at: Duration,
        key: char,
    },
    Silence {
        at: Duration,
        length: Duration,
    },
    Action {
        at: Duration,
        action: Action,
    },
    Var {
        at: Duration,
        name: String,
        value: String,
    },
    End {
        at: Duration,
        reason: Ending,
    },
}

/// What the flow asked of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Enqueue { queue: String, priority: u8 },
    Callback,
    Voicemail { mailbox: String },
    Transfer { uri: String },
    Hangup,
}

/// How a simulated call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Finished(EndReason),
    /// The virtual time limit passed.
    TimeLimit,
    /// The caller had keys left but the flow stopped waiting (kept for the record).
    Stalled,
}

/// A simulated call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub lines: Vec<Line>,
}

impl Transcript {
    /// Every prompt heard, in order: (time, id, text).
    pub fn heard(&self) -> impl Iterator<Item = (Duration, &PromptId, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Heard {
                at, prompt, text, ..
            } => Some((*at, prompt, text.as_str())),
            _ => None,
        })
    }

    /// All the text heard, joined by spaces.
    pub fn heard_text(&self) -> String {
        self.heard()
            .map(|(_, _, t)| t)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The first time a queue was reached.
    pub fn queue_reached(&self) -> Option<(Duration, &str)> {
        self.lines.iter().find_map(|l| match l {
            Line::Action {
                at,
                action: Action::Enqueue { queue, .. },
            } => Some((*at, queue.as_str())),
            _ => None,
        })
    }

    /// How the call ended.
    pub fn ending(&self) -> Option<(Duration, Ending)> {
        self.lines.iter().find_map(|l| match l {
            Line::End { at, reason } => Some((*at, *reason)),
            _ => None,
        })
    }

    /// Nodes entered, qualified.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Node { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }
}

fn secs(d: Duration) -> String {
    format!("{:6.1}s", d.as_secs_f64())
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            match l {
                Line::Node { at, name } => writeln!(f, "{} [{name}]", secs(*at))?,
                Line::Heard {
                    at,
                    prompt,
                    text,
                    cut,
                } => writeln!(
                    f,
                    "{}   « {text} »{} ({prompt})",
                    secs(*at),
                    if *cut { " [interrompu]" } else { "" }
                )?,
                Line::Pressed { at, key } => writeln!(f, "{}   touche {key}", secs(*at))?,
                Line::Silence { at, length } => {
                    writeln!(f, "{}   … silence {:.1}s", secs(*at), length.as_secs_f64())?
                }
                Line::Action { at, action } => writeln!(f, "{}   -> {action:?}", secs(*at))?,
                Line::Var { at, name, value } => writeln!(f, "{}   {name} = {value}", secs(*at))?,
                Line::End { at, reason } => writeln!(f, "{}   fin: {reason:?}", secs(*at))?,
            }
        }
        Ok(())
    }
}

/// Parse the time of a simulated call: `2026-12-07T10:00` (or with a space) in
/// Europe/Paris, or a full zoned time such as `2026-12-07T10:00+01:00[Europe/Paris]`.
pub fn parse_at(s: &str) -> Result<jiff::ZonedDateTime, String> {
    let s = s.trim();
    if let Ok(z) = s.parse::<jiff::ZonedDateTime>() {
        return Ok(z);
    }
    s.replace(' ', "T")
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.in_tz("Europe/Paris").ok())
        .ok_or_else(|| format!("`{s}`: expected a date and time like 2026-12-07T10:00"))
}

/// Simulate a call with default options; an unknown entry gives an empty transcript.
pub fn simulate(
    set: &Arc<FlowSet>,
    entry: &str,
    keys: &[(Option<Duration>, char)],
    at: jiff::ZonedDateTime,
) -> Transcript {
    simulate_with(set, entry, keys, at, &SimOptions::default()).unwrap_or_default()
}

struct Playback {
    started: Duration,
    prompts: Vec<(PromptId, Duration)>,
}

impl Playback {
    fn end(&self) -> Duration {
        self.started + self.prompts.iter().map(|(_, d)| *d).sum::<Duration>()
    }

    /// Lines for what was heard up to `until`.
    fn heard(&self, set: &FlowSet, until: Duration) -> Vec<Line> {
        let mut t = self.started;
        let mut out = Vec::new();
        for (p, d) in &self.prompts {
            if t >= until && !out.is_empty() {
                break;
            }
            out.push(Line::Heard {
                at: t,
                prompt: p.clone(),
                text: set.prompt_text(p).unwrap_or_else(|| format!("<{p}>")),
                cut: t + *d > until,
            });
            t += *d;
        }
        out
    }
}

/// Simulate a call.
pub fn simulate_with(
    set: &Arc<FlowSet>,
    entry: &str,
    keys: &[(Option<Duration>, char)],
    at: jiff::ZonedDateTime,
    opts: &SimOptions,
) -> Result<Transcript, InterpError> {
    let times = PromptTimes::new(set, opts.audio_dir.as_deref());
    // Virtual time: one real instant as the origin, never read again; every later instant
    // is the origin plus a simulated duration.
    let origin = Instant::now();
    let mut run = FlowRun::new(set.clone(), entry, opts.caller.clone(), origin, at)?;
    let mut lines = Vec::new();
    let mut now = Duration::ZERO;
    let mut playing: Option<Playback> = None;
    let mut pending_result = false;
    let mut next_key = 0usize;
    let mut last_key_at = Duration::ZERO;
    let mut waiting_since: Option<Duration> = None;
    for _ in 0..100_000 {
        // Drain outputs.
        while let Some(o) = run.poll_output() {
            match o {
                Output::Play { prompts, .. } => {
                    let prompts = prompts
                        .into_iter()
                        .map(|p| {
                            let d = times.of_id(set, &p);
                            (p, d)
                        })
                        .collect();
                    playing = Some(Playback {
                        started: now,
                        prompts,
                    });
                }
                Output::StopPlayback => {
                    if let Some(p) = playing.take() {
                        // What was heard comes before the key that cut it short.
                        let at = lines
                            .iter()
                            .rposition(|l| matches!(l, Line::Pressed { at, .. } if *at == now))
                            .unwrap_or(lines.len());
                        let heard = p.heard(set, now);
                        lines.splice(at..at, heard);
                    }
                }
                Output::StartCollect { .. } => {}
                Output::Enqueue { queue, priority } => {
                    lines.push(Line::Action {
                        at: now,
                        action: Action::Enqueue {
                            queue: queue.0,
                            priority,
                        },
                    });
                    pending_result = true;
                }
                Output::Callback { .. } => {
                    lines.push(Line::Action {
                        at: now,
                        action: Action::Callback,
                    });
                    pending_result = true;
                }
                Output::Voicemail { mailbox } => {
                    lines.push(Line::Action {
                        at: now,
                        action: Action::Voicemail { mailbox },
                    });
                    pending_result = true;
                }
                Output::Transfer { uri } => {
                    lines.push(Line::Action {
                        at: now,
                        action: Action::Transfer { uri },
                    });
                    pending_result = true;
                }
                Output::Hangup => lines.push(Line::Action {
                    at: now,
                    action: Action::Hangup,
                }),
                Output::Event(FlowEvent::NodeEntered { flow, node, .. }) => {
                    lines.push(Line::Node {
                        at: now,
                        name: format!("{flow}.{node}"),
                    })
                }
                Output::Event(FlowEvent::VariableSet { name, value }) => lines.push(Line::Var {
                    at: now,
                    name,
                    value,
                }),
                Output::Event(FlowEvent::Finished(reason)) => {
                    lines.push(Line::End {
                        at: now,
                        reason: Ending::Finished(reason),
                    });
                }
            }
        }
        if run.is_done() {
            return Ok(Transcript { lines });
        }
        if now > opts.max_time {
            lines.push(Line::End {
                at: now,
                reason: Ending::TimeLimit,
            });
            return Ok(Transcript { lines });
        }
        if pending_result {
            pending_result = false;
            run.handle_input(Input::QueueResult(origin + now, opts.queue_answer));
            continue;
        }
        let deadline = run
            .poll_timeout()
            .map(|d| d.saturating_duration_since(origin));
        let waiting = deadline.is_some() && playing.is_none();
        if waiting && waiting_since.is_none() {
            waiting_since = Some(now);
        }
        let key_at = keys.get(next_key).and_then(|(after, _)| match after {
            Some(d) => Some((last_key_at + *d).max(now)),
            None if waiting => Some(now),
            None => None,
        });
        let play_end = playing.as_ref().map(Playback::end);
        // The earliest event; a key wins a tie (it was pressed before the deadline fired).
        let candidates = [key_at, play_end, deadline];
        let Some(t) = candidates.iter().flatten().min().copied() else {
            lines.push(Line::End {
                at: now,
                reason: Ending::Stalled,
            });
            return Ok(Transcript { lines });
        };
        let t = t.max(now);
        if let Some(since) = waiting_since.take()
            && t > since
        {
            lines.push(Line::Silence {
                at: since,
                length: t - since,
            });
        }
        now = t;
        if key_at == Some(t) {
            let Some(&(_, key)) = keys.get(next_key) else {
                continue;
            };
            next_key += 1;
            last_key_at = now;
            // The key cuts the message: record what was heard first, once the run answers.
            lines.push(Line::Pressed { at: now, key });
            run.handle_input(Input::Digit(origin + now, key));
        } else if play_end == Some(t) {
            if let Some(p) = playing.take() {
                lines.extend(p.heard(set, now));
            }
            run.handle_input(Input::PromptFinished(origin + now));
        } else {
            run.handle_input(Input::Timeout(origin + now));
        }
    }
    lines.push(Line::End {
        at: now,
        reason: Ending::TimeLimit,
    });
    Ok(Transcript { lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: menu
agent: conseiller
queues: [accueil]
prompts:
  impots: "Pour les impôts, tapez 1."
  conseiller: "Pour parler à un conseiller, tapez 0."
  attente: "Un conseiller va vous répondre."
  ferme: "Rappelez-nous demain."
  info: "La déclaration de revenus se fait au printemps."
nodes:
  menu:
    menu:
      options:
        "1": { prompt: impots, goto: info }
      footer: [conseiller]
      no_input: { then: conseiller }
  info:
    play: { prompts: [info], next: menu }
  conseiller:
    queue: { name: accueil, prompts: [attente], fallback: ferme }
  ferme:
    hangup: { prompts: [ferme] }
"#;

    fn at() -> jiff::ZonedDateTime {
        jiff::civil::date(2026, 12, 7)
            .at(10, 0, 0, 0)
            .in_tz("Europe/Paris")
            .unwrap()
    }

    #[test]
    fn silent_caller_reaches_queue_then_closed_message() {
        let set = Arc::new(FlowSet::from_texts(&[("main", FLOW)]).unwrap());
        let t = simulate(&set, "main", &[], at());
        let (q_at, q) = t.queue_reached().unwrap();
        assert_eq!(q, "accueil");
        // Menu (two prompts) + 6 s, three times (default 2 retries).
        let menu = crate::flow::timing::estimate_from_text("Pour les impôts, tapez 1.")
            + crate::flow::timing::estimate_from_text("Pour parler à un conseiller, tapez 0.");
        let att = crate::flow::timing::estimate_from_text("Un conseiller va vous répondre.");
        assert_eq!(q_at, (menu + Duration::from_secs(6)) * 3 + att);
        assert!(t.heard_text().ends_with("Rappelez-nous demain."));
        assert_eq!(
            t.ending().map(|(_, e)| e),
            Some(Ending::Finished(EndReason::FlowHangup))
        );
    }

    #[test]
    fn keys_navigate_and_barge_in() {
        let set = Arc::new(FlowSet::from_texts(&[("main", FLOW)]).unwrap());
        let t = simulate(
            &set,
            "main",
            &[(None, '1'), (Some(Duration::from_millis(500)), '0')],
            at(),
        );
        let text = t.heard_text();
        assert!(text.contains("La déclaration"), "{t}");
        assert!(
            t.lines
                .iter()
                .any(|l| matches!(l, Line::Heard { cut: true, .. })),
            "{t}"
        );
        assert!(t.queue_reached().is_some());
        assert!(t.nodes().any(|n| n == "main.info"));
    }

    #[test]
    fn connected_queue_ends_the_call() {
        let set = Arc::new(FlowSet::from_texts(&[("main", FLOW)]).unwrap());
        let opts = SimOptions {
            queue_answer: QueueResult::Connected,
            ..SimOptions::default()
        };
        let t = simulate_with(&set, "main", &[(None, '0')], at(), &opts).unwrap();
        assert_eq!(
            t.ending().map(|(_, e)| e),
            Some(Ending::Finished(EndReason::Connected))
        );
        assert!(!t.to_string().is_empty());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn shipped() -> Arc<FlowSet> {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
            Arc::new(FlowSet::load(&dir).unwrap())
        }

        fn key() -> impl Strategy<Value = (Option<Duration>, char)> {
            (
                proptest::option::of(0u64..12_000).prop_map(|o| o.map(Duration::from_millis)),
                proptest::sample::select("0123456789*#".chars().collect::<Vec<_>>()),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// Whatever a caller presses, and then silence: the call always ends (a person,
            /// a closed message or goodbye), never stuck, in bounded time.
            #[test]
            fn every_key_sequence_has_a_way_out(keys in proptest::collection::vec(key(), 0..14)) {
                let set = shipped();
                let t = simulate(&set, "main", &keys, at());
                let ending = t.ending();
                prop_assert!(
                    matches!(ending, Some((_, Ending::Finished(r))) if r != EndReason::Stuck),
                    "{t}"
                );
                prop_assert!(ending.is_some_and(|(d, _)| d < Duration::from_secs(1800)), "{t}");
            }
        }
    }
}
