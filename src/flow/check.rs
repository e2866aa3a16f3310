//! The flow checker: every problem of a flow set in one run, sorted by file and line, plus
//! a static report of how long a caller waits before reaching a person.
//!
//! Input: a loaded [`FlowSet`] and optionally the audio directory. Output: a
//! [`CheckReport`] with [`Diagnostic`]s and one [`EntryReport`] per flow entry.
//!
//! Structural rules (always errors): `missing-wav`, `unreachable-node`, `endless-loop`,
//! `menu-no-input-route`, `agent-key-taken`, `global-key-taken`, `unknown-queue`,
//! `unknown-table`, `unknown-service`, `no-agent-route`. Accessibility rules (errors unless
//! the file relaxes them with `relax: [{rule, reason}]`, then warnings): `agent-offered`,
//! `silence-reaches-human`, `max-options`, `subject-before-key`, `min-no-input-timeout`,
//! `max-seconds-to-human`.
//!
//! ```no_run
//! use guichet::flow::{check, ir::FlowSet};
//! let set = FlowSet::load(std::path::Path::new("flows")).unwrap();
//! let report = check::check(&set, None);
//! for d in &report.diagnostics { eprintln!("{d}"); }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::flow::diagnostic::{self, Diagnostic, Severity};
use crate::flow::ir::*;
use crate::flow::timing::PromptTimes;

/// Shortest allowed no-input timeout.
pub const MIN_NO_INPUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most options a menu may offer.
pub const MAX_OPTIONS: usize = 5;
/// Assumed length of a `say` node's value.
const SAY_VALUE: Duration = Duration::from_secs(3);

/// Everything the checker found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub diagnostics: Vec<Diagnostic>,
    pub entries: Vec<EntryReport>,
}

impl CheckReport {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Where a silent caller ends up from one entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    /// Worst-case time before a person answers (queue or transfer), over paths reaching one.
    pub human: Option<Duration>,
    /// Some path ends with an explicit closed message instead.
    pub closed: bool,
    /// Some path ends nowhere useful (silent hang-up, endless loop, too deep).
    pub stuck: bool,
    /// A duration on the way was estimated from text.
    pub estimated: bool,
}

/// The static report for one flow entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryReport {
    pub flow: String,
    pub entry: String,
    /// A caller who presses nothing.
    pub silent: Reach,
    /// A caller who presses the agent key as soon as the call starts.
    pub agent_key: Reach,
}

impl std::fmt::Display for EntryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |r: &Reach| {
            let mut s = match r.human {
                Some(d) => format!("{} s to a person", d.as_secs()),
                None => "never a person".to_owned(),
            };
            if r.closed {
                s.push_str(" (or a closed message)");
            }
            if r.stuck {
                s.push_str(" (some paths get stuck)");
            }
            if r.estimated {
                s.push_str(" [estimated from text at 140 words/min]");
            }
            s
        };
        write!(
            f,
            "{} ({}): silent caller {}; agent key {}",
            self.flow,
            self.entry,
            show(&self.silent),
            show(&self.agent_key)
        )
    }
}

/// Load `dir` and check it; load errors come back as the report's diagnostics.
pub fn check_dir(dir: &Path, audio_dir: Option<&Path>) -> CheckReport {
    match FlowSet::load(dir) {
        Ok(set) => check(&set, audio_dir),
        Err(diagnostics) => CheckReport {
            diagnostics,
            entries: Vec::new(),
        },
    }
}

/// Check a loaded set.
pub fn check(set: &FlowSet, audio_dir: Option<&Path>) -> CheckReport {
    let times = PromptTimes::new(set, audio_dir);
    let mut c = Checker {
        set,
        times: &times,
        diags: Vec::new(),
    };
    if let Some(dir) = audio_dir {
        c.missing_wavs(dir);
        c.missing_fragments(dir);
    }
    c.unreachable();
    c.loops();
    c.nodes();
    c.dynamic_prompts();
    let entries = c.report();
    let mut diagnostics = c.diags;
    diagnostic::sort(&mut diagnostics);
    CheckReport {
        diagnostics,
        entries,
    }
}

/// Words that introduce a key in French prompts.
const KEY_VERBS: &[&str] = &[
    "tapez",
    "appuyez sur",
    "appuyez",
    "composez",
    "faites le",
    "faites",
];

/// Spoken forms of each key.
fn key_words(key: char) -> Vec<String> {
    let word = match key {
        '0' => "zéro",
        '1' => "un",
        '2' => "deux",
        '3' => "trois",
        '4' => "quatre",
        '5' => "cinq",
        '6' => "six",
        '7' => "sept",
        '8' => "huit",
        '9' => "neuf",
        '*' => "étoile",
        '#' => "dièse",
        _ => "",
    };
    let mut v = vec![key.to_string()];
    if !word.is_empty() {
        v.push(word.to_owned());
    }
    v
}

/// Byte range of "tapez <key>" in `text` (lower-cased), if the key is announced.
fn key_mention(text: &str, key: char) -> Option<(usize, usize)> {
    let lower = text.to_lowercase();
    for verb in KEY_VERBS {
        let mut from = 0;
        while let Some(p) = lower.get(from..).and_then(|s| s.find(verb)) {
            let start = from + p;
            let after = start + verb.len();
            let rest = lower.get(after..).unwrap_or("");
            let trimmed = rest.trim_start();
            let skipped = rest.len() - trimmed.len();
            for w in key_words(key) {
                if let Some(tail) = trimmed.strip_prefix(w.as_str())
                    && !tail.chars().next().is_some_and(char::is_alphanumeric)
                {
                    return Some((start, after + skipped + w.len()));
                }
            }
            from = after;
        }
    }
    None
}

/// Whether any key is announced as "tapez X pour ..." (key before subject) in `text`.
fn key_before_subject(text: &str) -> Option<String> {
    for sentence in text.split(['.', '!', '?', ';']) {
        for key in "0123456789*#".chars() {
            if let Some((_, end)) = key_mention(sentence, key) {
                let after = sentence.to_lowercase();
                let tail = after
                    .get(end..)
                    .unwrap_or("")
                    .trim_matches(|c: char| !c.is_alphanumeric());
                if !tail.is_empty() {
                    return Some(sentence.trim().to_owned());
                }
            }
        }
    }
    None
}

struct Checker<'a> {
    set: &'a FlowSet,
    times: &'a PromptTimes,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn flow_of(&self, node: &Node) -> Option<&Flow> {
        self.set.flow(node.flow)
    }

    fn push(&mut self, flow: FlowIdx, loc: Loc, rule: &str, msg: String, help: &str) {
        let Some(f) = self.set.flow(flow) else { return };
        let mut d = Diagnostic::error(&f.file, loc.line, loc.column, rule, msg);
        if let Some(r) = f.relax.iter().find(|r| r.rule == rule) {
            d = d
                .with_severity(Severity::Warning)
                .with_help(format!("relaxed in this file: {}", r.reason));
        } else if !help.is_empty() {
            d = d.with_help(help);
        }
        self.diags.push(d);
    }

    fn missing_wavs(&mut self, dir: &Path) {
        for p in self.set.prompts() {
            let path = p.id.wav_path(dir);
            if !path.is_file() {
                self.push(
                    p.flow,
                    p.loc,
                    "missing-wav",
                    format!("prompt `{}` has no recording at {}", p.name, path.display()),
                    "record it, or render it with `guichet prompts render`",
                );
            }
        }
    }

    /// Fragments that `say` nodes with a literal value and collect read-backs will play.
    fn missing_fragments(&mut self, dir: &Path) {
        let set = self.set;
        for node in set.nodes() {
            let Some(flow) = set.flow(node.flow) else {
                continue;
            };
            let fragments = match &node.kind {
                NodeKind::Say {
                    value: Value::Literal(v),
                    as_,
                    ..
                } => crate::flow::interp::say_value(*as_, v),
                NodeKind::Collect(c) if c.read_back => crate::flow::say::digits("0123456789"),
                _ => continue,
            };
            for f in fragments {
                let id = PromptId(format!("{}/{f}", flow.language));
                let path = id.wav_path(dir);
                if !path.is_file() {
                    self.push(
                        node.flow,
                        node.loc,
                        "missing-wav",
                        format!(
                            "fragment `{f}` said by `{}` has no recording at {}",
                            node.name,
                            path.display()
                        ),
                        "render the fragments with `guichet prompts render`",
                    );
                }
            }
        }
    }

    fn roots(&self) -> Vec<NodeIdx> {
        let mut r: Vec<NodeIdx> = self.set.flows().iter().map(|f| f.entry).collect();
        r.extend(self.set.flows().iter().filter_map(|f| f.agent));
        r
    }

    fn unreachable(&mut self) {
        let mut seen = BTreeSet::new();
        let mut stack = self.roots();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            if let Some(node) = self.set.node(n) {
                stack.extend(node.kind.routes().into_iter().map(|(_, to)| to));
            }
        }
        let set = self.set;
        for (i, node) in set.nodes().iter().enumerate() {
            if !seen.contains(&NodeIdx(i as u32)) {
                self.push(
                    node.flow,
                    node.loc,
                    "unreachable-node",
                    format!("node `{}` cannot be reached from any entry", node.name),
                    "link it from a menu or remove it",
                );
            }
        }
    }

    /// Cycles in the graph of edges taken without caller action.
    fn loops(&mut self) {
        let n = self.set.nodes().len();
        // 0 = new, 1 = on the stack, 2 = done. Indexed by node index (< n) only: `start`
        // ranges over 0..n, `v` is checked with `get`, `u` comes from the stack.
        let mut color = vec![0u8; n];
        let mut reported = BTreeSet::new();
        for start in 0..n {
            if color[start] != 0 {
                continue;
            }
            // Iterative DFS: (node, next edge index).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            color[start] = 1;
            while let Some(&mut (u, ref mut ei)) = stack.last_mut() {
                let silent: Vec<usize> = self
                    .set
                    .node(NodeIdx(u as u32))
                    .map(|node| {
                        node.kind
                            .routes()
                            .into_iter()
                            .filter(|(via, _)| via.without_caller())
                            .map(|(_, to)| to.0 as usize)
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(&v) = silent.get(*ei) {
                    *ei += 1;
                    match color.get(v).copied() {
                        Some(0) => {
                            color[v] = 1;
                            stack.push((v, 0));
                        }
                        Some(1) => {
                            let pos = stack.iter().position(|(x, _)| *x == v).unwrap_or(0);
                            let cycle: Vec<usize> = stack[pos..].iter().map(|(x, _)| *x).collect();
                            let key: BTreeSet<usize> = cycle.iter().copied().collect();
                            if reported.insert(key.into_iter().collect::<Vec<_>>()) {
                                let names: Vec<String> = cycle
                                    .iter()
                                    .chain(std::iter::once(&v))
                                    .map(|x| self.set.node_name(NodeIdx(*x as u32)))
                                    .collect();
                                if let Some(node) = self.set.node(NodeIdx(v as u32)) {
                                    let (flow, loc) = (node.flow, node.loc);
                                    self.push(flow, loc, "endless-loop",
                                        format!("a caller who does nothing goes round forever: {}", names.join(" -> ")),
                                        "end the loop at a queue, a transfer or a hang-up with a closed message");
                                }
                            }
                        }
                        _ => {}
                    }
                } else {
                    color[u] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn prompt_texts(&self, refs: &[PromptRef]) -> Vec<(String, Loc)> {
        refs.iter()
            .filter_map(|r| match r {
                PromptRef::Static(i) => self.set.prompt(*i).map(|p| (p.text.clone(), p.loc)),
                PromptRef::Var { .. } => None,
            })
            .collect()
    }

    fn nodes(&mut self) {
        let set = self.set;
        let mut declared_queues = BTreeSet::new();
        for f in set.flows() {
            declared_queues.extend(f.queues.iter().cloned());
        }
        let services: BTreeSet<String> = set.calendar().services().into_iter().collect();
        for node in set.nodes() {
            let Some(flow) = self.flow_of(node) else {
                continue;
            };
            let (fi, keys) = (node.flow, flow.keys);
            let has_agent = flow.agent.is_some();
            match &node.kind {
                NodeKind::Menu(m) => {
                    if !has_agent {
                        self.push(fi, node.loc, "no-agent-route",
                            "the agent key leads nowhere: no `agent:` route in this file or in main".into(),
                            "add `agent: conseiller` at the top of main.yaml");
                    }
                    if m.no_input.then.is_none() {
                        self.push(
                            fi,
                            node.loc,
                            "menu-no-input-route",
                            format!(
                                "menu `{}` has no route for a caller who presses nothing",
                                node.name
                            ),
                            "add `no_input: { then: conseiller }`",
                        );
                    }
                    for o in &m.options {
                        if o.key == keys.agent {
                            self.push(
                                fi,
                                o.loc,
                                "agent-key-taken",
                                format!(
                                    "key `{}` is the agent key and cannot be a menu option",
                                    o.key
                                ),
                                "use another key; the agent key always leads to a person",
                            );
                        } else if o.key == keys.repeat || o.key == keys.back {
                            self.push(
                                fi,
                                o.loc,
                                "global-key-taken",
                                format!("key `{}` is a global key (repeat or back)", o.key),
                                "use a digit from 1 to 9",
                            );
                        }
                    }
                    if m.options.len() > MAX_OPTIONS {
                        self.push(
                            fi,
                            node.loc,
                            "max-options",
                            format!(
                                "menu `{}` has {} options; callers remember at most {MAX_OPTIONS}",
                                node.name,
                                m.options.len()
                            ),
                            "split it into sub-menus",
                        );
                    }
                    let all = m.all_prompts();
                    let texts = self.prompt_texts(&all);
                    if has_agent
                        && !texts
                            .iter()
                            .any(|(t, _)| key_mention(t, keys.agent).is_some())
                    {
                        self.push(
                            fi,
                            node.loc,
                            "agent-offered",
                            format!("menu `{}` never says how to reach a person", node.name),
                            &format!(
                                "add a footer prompt: \"Pour parler à un conseiller, tapez {}.\"",
                                keys.agent
                            ),
                        );
                    }
                    for o in &m.options {
                        if let Some(PromptRef::Static(i)) = &o.prompt
                            && let Some(p) = set.prompt(*i)
                            && key_mention(&p.text, o.key).is_none()
                        {
                            self.push(
                                fi,
                                o.loc,
                                "subject-before-key",
                                format!(
                                    "the prompt of option `{}` does not say its key: \"{}\"",
                                    o.key, p.text
                                ),
                                &format!(
                                    "say the subject, then the key: \"Pour ..., tapez {}.\"",
                                    o.key
                                ),
                            );
                        }
                    }
                    let mut subject_refs = all.clone();
                    subject_refs.extend(m.no_input.prompts.iter().cloned());
                    subject_refs.extend(m.invalid.prompts.iter().cloned());
                    for (text, _) in self.prompt_texts(&subject_refs) {
                        if let Some(sentence) = key_before_subject(&text) {
                            self.push(
                                fi,
                                node.loc,
                                "subject-before-key",
                                format!("\"{sentence}\" says the key before the subject"),
                                "put the subject first: \"Pour les impôts, tapez 1.\"",
                            );
                        }
                    }
                    self.timeout(fi, node, m.timeout);
                }
                NodeKind::Collect(c) => {
                    if c.no_input.then.is_none() {
                        self.push(
                            fi,
                            node.loc,
                            "menu-no-input-route",
                            format!(
                                "collect `{}` has no route for a caller who presses nothing",
                                node.name
                            ),
                            "add `no_input: { then: conseiller }`",
                        );
                    }
                    self.timeout(fi, node, c.timeout);
                }
                NodeKind::Queue { name, .. } if !declared_queues.contains(name) => {
                    self.push(fi, node.loc, "unknown-queue", format!("no queue `{name}`"),
                        &match diagnostic::did_you_mean(name, declared_queues.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`? queues are declared under `queues:` in main.yaml"),
                            None => "declare it under `queues:` in main.yaml".to_owned(),
                        });
                }
                NodeKind::Callback {
                    queue: Some(name), ..
                } if !declared_queues.contains(name) => {
                    self.push(
                        fi,
                        node.loc,
                        "unknown-queue",
                        format!("no queue `{name}`"),
                        "declare it under `queues:` in main.yaml",
                    );
                }
                NodeKind::Lookup { table, .. } if set.table(table).is_none() => {
                    self.push(
                        fi,
                        node.loc,
                        "unknown-table",
                        format!("no table `{table}` under flows/data/"),
                        &match diagnostic::did_you_mean(table, set.table_names()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("add flows/data/{table}.csv"),
                        },
                    );
                }
                NodeKind::Switch { cases, .. } => {
                    let mut names = Vec::new();
                    for (cond, _) in cases {
                        services_of(cond, &mut names);
                    }
                    for s in names {
                        if !services.contains(&s) {
                            self.push(
                                fi,
                                node.loc,
                                "unknown-service",
                                format!("no service `{s}` in calendar.yaml"),
                                &match diagnostic::did_you_mean(
                                    &s,
                                    services.iter().map(String::as_str),
                                ) {
                                    Some(c) => format!("did you mean `{c}`?"),
                                    None => "define its hours in flows/calendar.yaml".to_owned(),
                                },
                            );
                        }
                    }
                }
                NodeKind::Hangup { prompts } if prompts.is_empty() => {
                    // Judged by `silence-reaches-human` where a silent caller can land here.
                }
                _ => {}
            }
        }
    }

    /// `$lieu.annonce` prompts: every row of the table behind `lieu` must name a prompt.
    fn dynamic_prompts(&mut self) {
        let set = self.set;
        let lookups: Vec<(&str, &str)> = set
            .nodes()
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Lookup { table, into, .. } => Some((into.as_str(), table.as_str())),
                _ => None,
            })
            .collect();
        for node in set.nodes() {
            for r in node_prompt_refs(&node.kind) {
                let PromptRef::Var { flow, var } = r else {
                    continue;
                };
                let Some((into, column)) = var.split_once('.') else {
                    continue;
                };
                for (_, table) in lookups.iter().filter(|(i, _)| *i == into) {
                    let Some(t) = set.table(table) else { continue };
                    if !t.has_column(column) {
                        self.push(
                            node.flow,
                            node.loc,
                            "dangling-prompt",
                            format!("`${var}`: table `{table}` has no column `{column}`"),
                            &format!("columns: {}", t.columns().join(", ")),
                        );
                        continue;
                    }
                    for row in t.rows() {
                        let value = row.get(column).map(String::as_str).unwrap_or("");
                        if set.prompt_in_flow(*flow, value).is_none() {
                            let key = row.get("key").map(String::as_str).unwrap_or("?");
                            self.push(node.flow, node.loc, "dangling-prompt",
                                format!("`${var}`: row `{key}` of table `{table}` names prompt `{value}`, which this file does not define"),
                                "add the prompt under `prompts:` or fix the table");
                        }
                    }
                }
            }
        }
    }

    fn timeout(&mut self, fi: FlowIdx, node: &Node, timeout: Duration) {
        if timeout < MIN_NO_INPUT_TIMEOUT {
            self.push(
                fi,
                node.loc,
                "min-no-input-timeout",
                format!(
                    "`{}` waits only {} ms for a key; many callers need more",
                    node.name,
                    timeout.as_millis()
                ),
                "wait at least 5s",
            );
        }
    }

    /// How long a silent caller stays at a menu or collect: the prompts and the timeout,
    /// then each re-prompt with the prompts and the timeout again. Whether it is estimated.
    fn silent_wait(
        &self,
        prompts: &[PromptRef],
        timeout: Duration,
        retries: u32,
        no_input: &Retry,
    ) -> (Duration, bool) {
        let (d, mut est) = self.times.sum(prompts);
        let mut total = d + timeout;
        for i in 0..retries {
            let (rd, re) = no_input
                .prompt_for(i)
                .map(|p| self.times.of_ref(p))
                .unwrap_or_default();
            total += rd + d + timeout;
            est |= re;
        }
        (total, est)
    }

    /// Worst case for a silent caller from `n`.
    fn reach(
        &self,
        n: NodeIdx,
        depth: u32,
        on_path: &mut BTreeSet<NodeIdx>,
        memo: &mut BTreeMap<NodeIdx, Reach>,
    ) -> Reach {
        if let Some(r) = memo.get(&n) {
            return r.clone();
        }
        if depth > 500 || on_path.contains(&n) {
            return Reach {
                stuck: true,
                ..Reach::default()
            };
        }
        let Some(node) = self.set.node(n) else {
            return Reach {
                stuck: true,
                ..Reach::default()
            };
        };
        on_path.insert(n);
        let t = self.times;
        let then = |cost: (Duration, bool), next: Reach| Reach {
            human: next.human.map(|h| h + cost.0),
            closed: next.closed,
            stuck: next.stuck,
            estimated: next.estimated || cost.1,
        };
        let go =
            |to: NodeIdx, on_path: &mut BTreeSet<NodeIdx>, memo: &mut BTreeMap<NodeIdx, Reach>| {
                self.reach(to, depth + 1, on_path, memo)
            };
        let worst = |a: Reach, b: Reach| Reach {
            human: match (a.human, b.human) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            },
            closed: a.closed || b.closed,
            stuck: a.stuck || b.stuck,
            estimated: a.estimated || b.estimated,
        };
        let r = match &node.kind {
            NodeKind::Play { prompts, next, .. } => then(t.sum(prompts), go(*next, on_path, memo)),
            NodeKind::Say {
                before,
                after,
                next,
                ..
            } => {
                let (d1, e1) = t.sum(before);
                let (d2, e2) = t.sum(after);
                then((d1 + d2 + SAY_VALUE, e1 || e2), go(*next, on_path, memo))
            }
            NodeKind::Set { next, .. } | NodeKind::Goto(next) => go(*next, on_path, memo),
            NodeKind::Menu(m) => {
                let wait = self.silent_wait(&m.all_prompts(), m.timeout, m.retries, &m.no_input);
                match m.no_input.then {
                    Some(to) => then(wait, go(to, on_path, memo)),
                    None => Reach {
                        stuck: true,
                        estimated: wait.1,
                        ..Reach::default()
                    },
                }
            }
            NodeKind::Collect(c) => {
                let wait = self.silent_wait(&c.prompts, c.timeout, c.retries, &c.no_input);
                match c.no_input.then {
                    Some(to) => then(wait, go(to, on_path, memo)),
                    None => Reach {
                        stuck: true,
                        estimated: wait.1,
                        ..Reach::default()
                    },
                }
            }
            NodeKind::Switch { cases, default } => {
                let mut r = go(*default, on_path, memo);
                for (_, to) in cases {
                    let other = go(*to, on_path, memo);
                    r = worst(r, other);
                }
                r
            }
            NodeKind::Lookup {
                found, not_found, ..
            } => {
                let a = go(*found, on_path, memo);
                let b = go(*not_found, on_path, memo);
                worst(a, b)
            }
            NodeKind::Queue { prompts, .. } | NodeKind::Transfer { prompts, .. } => {
                let (d, e) = t.sum(prompts);
                Reach {
                    human: Some(d),
                    estimated: e,
                    ..Reach::default()
                }
            }
            NodeKind::Callback {
                prompts,
                next,
                fallback,
                ..
            }
            | NodeKind::Voicemail {
                prompts,
                next,
                fallback,
                ..
            } => {
                let a = go(*next, on_path, memo);
                let b = go(*fallback, on_path, memo);
                let (_, e) = t.sum(prompts);
                Reach {
                    closed: true,
                    estimated: e,
                    ..worst(a, b)
                }
            }
            NodeKind::Call { node: callee, next } => {
                let a = go(*callee, on_path, memo);
                let b = go(*next, on_path, memo);
                worst(a, b)
            }
            NodeKind::Return => Reach::default(),
            NodeKind::Hangup { prompts } => {
                let (_, e) = t.sum(prompts);
                if prompts.is_empty() {
                    Reach {
                        stuck: true,
                        ..Reach::default()
                    }
                } else {
                    Reach {
                        closed: true,
                        estimated: e,
                        ..Reach::default()
                    }
                }
            }
        };
        on_path.remove(&n);
        memo.insert(n, r.clone());
        r
    }

    fn report(&mut self) -> Vec<EntryReport> {
        let set = self.set;
        let mut out = Vec::new();
        let limit_main = set
            .flow_by_id("main")
            .and_then(|(_, f)| f.max_seconds_to_human);
        // From every place a caller waits for a key, silence must lead somewhere useful.
        let mut memo = BTreeMap::new();
        for (i, node) in set.nodes().iter().enumerate() {
            if !matches!(node.kind, NodeKind::Menu(_) | NodeKind::Collect(_)) {
                continue;
            }
            let r = self.reach(NodeIdx(i as u32), 0, &mut BTreeSet::new(), &mut memo);
            if r.stuck {
                self.push(node.flow, node.loc, "silence-reaches-human",
                    format!("a caller who stays silent at `{}` can end without a person or a closed message", node.name),
                    "lead the no-input route to a queue, or to a hang-up that says when to call back");
            }
        }
        for (i, f) in set.flows().iter().enumerate() {
            let fi = FlowIdx(i as u32);
            let mut memo = BTreeMap::new();
            let silent = self.reach(f.entry, 0, &mut BTreeSet::new(), &mut memo);
            let agent_key = match f.agent {
                Some(a) => self.reach(a, 0, &mut BTreeSet::new(), &mut memo),
                None => Reach {
                    stuck: true,
                    ..Reach::default()
                },
            };
            if silent.stuck || (silent.human.is_none() && !silent.closed) {
                self.push(fi, f.loc, "silence-reaches-human",
                    format!("a caller who presses nothing from `{}` can end without a person or a closed message", set.node_name(f.entry)),
                    "lead every no-input route to a queue, or to a hang-up that says when to call back");
            }
            if agent_key.human.is_none() {
                self.push(
                    fi,
                    f.loc,
                    "silence-reaches-human",
                    "the agent key does not lead to a person (queue or transfer)".to_owned(),
                    "point `agent:` at a queue node",
                );
            }
            if let Some(limit) = f.max_seconds_to_human.or(limit_main)
                && let Some(h) = silent.human
                && h > Duration::from_secs(u64::from(limit))
            {
                self.push(fi, f.loc, "max-seconds-to-human",
                    format!("a silent caller waits up to {} s before reaching a person (limit {limit} s)", h.as_secs()),
                    "shorten the prompts, lower the retries, or send silence to the queue sooner");
            }
            let entry = EntryReport {
                flow: f.id.clone(),
                entry: set.node_name(f.entry),
                silent,
                agent_key,
            };
            let mut note = Diagnostic::error(
                &f.file,
                f.loc.line,
                f.loc.column,
                "report",
                entry.to_string(),
            );
            note.severity = Severity::Note;
            self.diags.push(note);
            out.push(entry);
        }
        out
    }
}

/// Every prompt reference a node may play.
pub fn node_prompt_refs(kind: &NodeKind) -> Vec<&PromptRef> {
    let mut v: Vec<&PromptRef> = Vec::new();
    match kind {
        NodeKind::Play { prompts, .. }
        | NodeKind::Queue { prompts, .. }
        | NodeKind::Callback { prompts, .. }
        | NodeKind::Voicemail { prompts, .. }
        | NodeKind::Transfer { prompts, .. }
        | NodeKind::Hangup { prompts } => v.extend(prompts),
        NodeKind::Menu(m) => {
            v.extend(&m.prompts);
            v.extend(m.options.iter().filter_map(|o| o.prompt.as_ref()));
            v.extend(&m.footer);
            v.extend(&m.no_input.prompts);
            v.extend(&m.invalid.prompts);
        }
        NodeKind::Collect(c) => {
            v.extend(&c.prompts);
            v.extend(&c.no_input.prompts);
            v.extend(&c.invalid.prompts);
            if let Some(cf) = &c.confirm {
                v.extend(&cf.before);
                v.extend(&cf.question);
            }
        }
        NodeKind::Say { before, after, .. } => {
            v.extend(before);
            v.extend(after);
        }
        NodeKind::Switch { .. }
        | NodeKind::Set { .. }
        | NodeKind::Lookup { .. }
        | NodeKind::Goto(_)
        | NodeKind::Call { .. }
        | NodeKind::Return => {}
    }
    v
}

fn services_of(c: &Condition, out: &mut Vec<String>) {
    match c {
        Condition::Open(s) | Condition::Closed(s) => out.push(s.clone()),
        Condition::All(v) | Condition::Any(v) => v.iter().for_each(|c| services_of(c, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(nodes: &str, extra_prompts: &str) -> String {
        format!(
            r#"
id: main
language: fr
reviewed: 2026-12-05
entry: menu
agent: conseiller
queues: [accueil]
prompts:
  impots: "Pour les impôts, tapez 1."
  caf: "Pour la Caisse d'allocations familiales, tapez 2."
  conseiller: "Pour parler à un conseiller, tapez 0."
  attente: "Un conseiller va vous répondre."
  ferme: "Nos conseillers sont absents. Rappelez-nous demain à partir de 9 heures."
{extra_prompts}
nodes:
{nodes}
  conseiller:
    queue: {{ name: accueil, prompts: [attente], fallback: ferme }}
  ferme:
    hangup: {{ prompts: [ferme] }}
"#
        )
    }

    const MENU: &str = r#"  menu:
    menu:
      options:
        "1": { prompt: impots, goto: conseiller }
        "2": { prompt: caf, goto: conseiller }
      footer: [conseiller]
      no_input: { then: conseiller }
"#;

    fn rules(text: &str) -> Vec<String> {
        let set = FlowSet::from_texts(&[("main", text)]).unwrap();
        check(&set, None)
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.rule)
            .collect()
    }

    #[test]
    fn a_good_menu_passes_with_a_report() {
        let set = FlowSet::from_texts(&[("main", &flow(MENU, ""))]).unwrap();
        let r = check(&set, None);
        assert!(!r.has_errors(), "{:#?}", r.diagnostics);
        let e = &r.entries[0];
        // Silent: 3 option prompts + 6 s, three times (2 retries), then the queue prompt.
        let (menu, _) = PromptTimes::new(&set, None).sum(&match &set.nodes()
            [set.find_node("menu").unwrap().0 as usize]
            .kind
        {
            NodeKind::Menu(m) => m.all_prompts(),
            _ => unreachable!(),
        });
        let expected = (menu + Duration::from_secs(6)) * 3
            + crate::flow::timing::estimate_from_text("Un conseiller va vous répondre.");
        assert_eq!(e.silent.human, Some(expected));
        assert!(e.silent.estimated);
        assert!(e.agent_key.human.unwrap() < Duration::from_secs(5));
    }

    #[test]
    fn key_before_subject_is_caught() {
        assert!(key_mention("Pour les impôts, tapez 1.", '1').is_some());
        assert!(key_mention("tapez un", '1').is_some());
        assert!(key_mention("tapez 10", '1').is_none());
        assert_eq!(key_before_subject("Pour les impôts, tapez 1."), None);
        assert!(key_before_subject("Tapez 1 pour les impôts.").is_some());
        let bad = flow(MENU, "").replace("Pour les impôts, tapez 1.", "Tapez 1 pour les impôts.");
        assert!(rules(&bad).contains(&"subject-before-key".to_owned()));
    }

    /// One node per structural or accessibility problem (see the two tests below).
    const BROKEN_NODES: &str = r#"  menu:
    menu:
      options:
        "0": { prompt: conseiller, goto: conseiller }
        "1": { prompt: impots, goto: boucle }
        "2": { prompt: caf, goto: nulle }
        "3": { prompt: caf, goto: conseiller }
        "4": { prompt: caf, goto: conseiller }
        "5": { prompt: caf, goto: conseiller }
      timeout: 3s
  boucle:
    play: { prompts: [impots], next: boucle2 }
  boucle2:
    goto: boucle
  nulle:
    lookup: { table: lieux, key: "91", into: lieu, found: conseiller, not_found: conseiller }
  orphelin:
    queue: { name: inconnue, fallback: ferme }
"#;

    #[test]
    fn structural_errors_all_listed() {
        let r = rules(&flow(BROKEN_NODES, ""));
        for want in [
            "agent-key-taken",
            "menu-no-input-route",
            "max-options",
            "min-no-input-timeout",
            "endless-loop",
            "unreachable-node",
            "unknown-queue",
            "unknown-table",
            "subject-before-key",
        ] {
            assert!(r.contains(&want.to_owned()), "missing {want} in {r:?}");
        }
    }

    #[test]
    fn each_broken_node_is_located_at_its_own_lines() {
        let text = flow(BROKEN_NODES, "");
        // 1-based line ranges of each node block (a node starts at a 2-space-indented key).
        let starts: Vec<(String, u32)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
            .filter(|(i, _)| *i > text.lines().position(|l| l == "nodes:").unwrap_or(0))
            .map(|(i, l)| (l.trim().trim_end_matches(':').to_owned(), i as u32 + 1))
            .collect();
        let range = |node: &str| {
            let i = starts.iter().position(|(n, _)| n == node).unwrap();
            let from = starts[i].1;
            let to = starts.get(i + 1).map_or(u32::MAX, |(_, l)| *l);
            from..to
        };
        let set = FlowSet::from_texts(&[("main", &text)]).unwrap();
        let diags = check(&set, None).diagnostics;
        for (rule, nodes) in [
            ("agent-key-taken", &["menu"][..]),
            ("menu-no-input-route", &["menu"]),
            ("max-options", &["menu"]),
            ("min-no-input-timeout", &["menu"]),
            ("endless-loop", &["boucle", "boucle2"]),
            ("unreachable-node", &["orphelin"]),
            ("unknown-queue", &["orphelin"]),
            ("unknown-table", &["nulle"]),
        ] {
            let d = diags
                .iter()
                .find(|d| d.rule == rule)
                .unwrap_or_else(|| panic!("no {rule} in {diags:?}"));
            assert!(
                nodes.iter().any(|n| range(n).contains(&d.line)),
                "{rule} at line {} is not inside {nodes:?} ({starts:?})",
                d.line
            );
            assert!(d.column > 0, "{rule} has no column: {d:?}");
            assert!(
                d.to_string()
                    .contains(&format!(":{}:{}:", d.line, d.column)),
                "{d}"
            );
        }
    }

    #[test]
    fn relaxed_rule_becomes_a_warning() {
        let nodes = MENU.replace(
            "      footer: [conseiller]\n",
            "      footer: [conseiller]\n      timeout: 4s\n",
        );
        let text = flow(&nodes, "");
        assert!(rules(&text).contains(&"min-no-input-timeout".to_owned()));
        let relaxed = text.replace(
            "queues: [accueil]",
            "queues: [accueil]\nrelax: [{ rule: min-no-input-timeout, reason: \"ligne interne des agents, qui connaissent le menu\" }]",
        );
        assert!(!rules(&relaxed).contains(&"min-no-input-timeout".to_owned()));
    }

    #[test]
    fn missing_agent_offer_and_limit() {
        let text = flow(&MENU.replace("      footer: [conseiller]\n", ""), "").replace(
            "queues: [accueil]",
            "queues: [accueil]\nlimits: { max_seconds_to_human: 10 }",
        );
        let r = rules(&text);
        assert!(r.contains(&"agent-offered".to_owned()), "{r:?}");
        assert!(r.contains(&"max-seconds-to-human".to_owned()), "{r:?}");
    }

    #[test]
    fn silence_deep_in_a_menu_is_checked() {
        let nodes = MENU.replace(
            "goto: conseiller }\n        \"2\"",
            "goto: sous }\n        \"2\"",
        ) + r#"  sous:
    menu:
      options: { "1": { prompt: impots, goto: conseiller } }
      footer: [conseiller]
      no_input: { then: fin }
  fin:
    hangup: {}
"#;
        let set = FlowSet::from_texts(&[("main", &flow(&nodes, ""))]).unwrap();
        let r = check(&set, None);
        let d = r
            .diagnostics
            .iter()
            .find(|d| d.rule == "silence-reaches-human")
            .unwrap();
        assert!(d.message.contains("`sous`"), "{d}");
    }

    #[test]
    fn silent_hangup_is_an_error() {
        let nodes = MENU.replace("no_input: { then: conseiller }", "no_input: { then: fin }")
            + "  fin:\n    hangup: {}\n";
        assert!(rules(&flow(&nodes, "")).contains(&"silence-reaches-human".to_owned()));
    }

    #[test]
    fn table_rows_must_name_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = MENU.replace(
            "goto: conseiller }\n        \"2\"",
            "goto: cherche }\n        \"2\"",
        ) + r#"  cherche:
    lookup: { table: lieux, key: "91000", prefix: true, into: lieu, found: dit, not_found: conseiller }
  dit:
    play: { prompts: [$lieu.annonce], next: conseiller }
"#;
        std::fs::write(
            dir.path().join("main.yaml"),
            flow(&nodes, "  lieu_a: \"Lieu A.\""),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(
            dir.path().join("data/lieux.csv"),
            "key,annonce\n91,lieu_a\n92,lieu_b\n",
        )
        .unwrap();
        let r = check_dir(dir.path(), None);
        let bad: Vec<&Diagnostic> = r.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert_eq!(bad.len(), 1, "{bad:#?}");
        assert_eq!(bad[0].rule, "dangling-prompt");
        assert!(bad[0].message.contains("lieu_b"), "{}", bad[0]);
    }

    #[test]
    fn missing_recordings_are_listed() {
        let set = FlowSet::from_texts(&[("main", &flow(MENU, ""))]).unwrap();
        let audio = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(audio.path().join("fr/main")).unwrap();
        std::fs::write(audio.path().join("fr/main/impots.wav"), b"not a wav").unwrap();
        let r = check(&set, Some(audio.path()));
        let missing: Vec<&str> = r
            .diagnostics
            .iter()
            .filter(|d| d.rule == "missing-wav")
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(missing.len(), set.prompts().len() - 1, "{missing:?}");
        assert!(!missing.iter().any(|m| m.contains("`impots`")));
    }
}
