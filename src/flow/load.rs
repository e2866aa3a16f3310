//! Loading a flow directory: every `*.yaml` file directly under it (except `calendar.yaml`)
//! is a flow; `calendar.yaml` is the opening-hours calendar; `data/*.csv` and `data/*.yaml`
//! are lookup tables named by file stem; `tests/` holds flow tests and is skipped here.
//!
//! Input: a directory (or in-memory texts with [`compile`]). Output: a [`FlowSet`] or every
//! problem found, as [`Diagnostic`]s with file:line:column, sorted. Nothing is half-loaded: a
//! set with an error is never returned, so a bad edit never reaches live calls.
//!
//! ```no_run
//! use guichet::flow::ir::FlowSet;
//! match FlowSet::load(std::path::Path::new("flows")) {
//!     Ok(set) => println!("loaded {}", set.version()),
//!     Err(diags) => diags.iter().for_each(|d| eprintln!("{d}")),
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

use crate::flow::calendar::Calendar;
use crate::flow::diagnostic::{self, Diagnostic, did_you_mean};
use crate::flow::ir::*;
use crate::flow::model::*;
use crate::flow::table::Table;

/// Why a flow directory could not be loaded; the loader reports these as diagnostics.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One source file given to [`compile`].
#[derive(Debug, Clone)]
pub struct Source {
    /// Path as printed in diagnostics (`flows/main.yaml`).
    pub path: PathBuf,
    pub text: String,
}

impl FlowSet {
    /// Load and compile every flow under `dir`, its calendar and its tables.
    pub fn load(dir: &Path) -> Result<FlowSet, Vec<Diagnostic>> {
        load(dir)
    }

    /// Compile flows given as `(flow id, yaml)` pairs, with an empty calendar and no tables.
    pub fn from_texts(texts: &[(&str, &str)]) -> Result<FlowSet, Vec<Diagnostic>> {
        let sources: Vec<Source> = texts
            .iter()
            .map(|(id, text)| Source {
                path: PathBuf::from(format!("flows/{id}.yaml")),
                text: (*text).to_owned(),
            })
            .collect();
        compile(
            Path::new("flows"),
            &sources,
            Calendar::default(),
            BTreeMap::new(),
            &[],
        )
    }
}

/// Load and compile a flow directory.
pub fn load(dir: &Path) -> Result<FlowSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let io_diag = |path: &Path, e: &dyn std::fmt::Display| {
        Diagnostic::error(path, 0, 0, "io", format!("cannot read: {e}"))
    };
    let mut sources = Vec::new();
    let mut extra_hashed: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if !path.is_file() || !is_yaml {
                    continue;
                }
                if path.file_stem().is_some_and(|s| s == "calendar") {
                    continue;
                }
                match std::fs::read_to_string(&path) {
                    Ok(text) => sources.push(Source { path, text }),
                    Err(e) => diags.push(io_diag(&path, &e)),
                }
            }
        }
        Err(e) => {
            return Err(vec![io_diag(dir, &e)]);
        }
    }
    let cal_path = dir.join("calendar.yaml");
    let calendar = if cal_path.exists() {
        if let Ok(bytes) = std::fs::read(&cal_path) {
            extra_hashed.push((cal_path.clone(), bytes));
        }
        match Calendar::load(&cal_path) {
            Ok(c) => c,
            Err(e) => {
                diags.push(located(&cal_path, "calendar", &e.to_string()));
                Calendar::default()
            }
        }
    } else {
        Calendar::default()
    };
    let mut tables = BTreeMap::new();
    let data = dir.join("data");
    if let Ok(entries) = std::fs::read_dir(&data) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let ok_ext = path
                .extension()
                .is_some_and(|e| e == "csv" || e == "yaml" || e == "yml");
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !path.is_file() || !ok_ext {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path) {
                extra_hashed.push((path.clone(), bytes));
            }
            match Table::load(&path) {
                Ok(t) => {
                    tables.insert(stem.to_owned(), t);
                }
                Err(e) => diags.push(located(&path, "table", &e.to_string())),
            }
        }
    }
    match compile(dir, &sources, calendar, tables, &extra_hashed) {
        Ok(set) if diags.is_empty() => Ok(set),
        Ok(_) => {
            diagnostic::sort(&mut diags);
            Err(diags)
        }
        Err(more) => {
            diags.extend(more);
            diagnostic::sort(&mut diags);
            Err(diags)
        }
    }
}

/// A diagnostic from an error text that may start with `path:line[:column]: `.
fn located(path: &Path, rule: &str, text: &str) -> Diagnostic {
    let prefix = format!("{}:", path.display());
    if let Some(rest) = text.strip_prefix(&prefix) {
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().and_then(|l| l.trim().parse::<u32>().ok());
        let second = parts.next();
        let third = parts.next();
        match (
            line,
            second.and_then(|c| c.trim().parse::<u32>().ok()),
            third,
        ) {
            (Some(l), Some(c), Some(msg)) => {
                return Diagnostic::error(path, l, c, rule, msg.trim());
            }
            (Some(l), None, _) => {
                let msg = rest.split_once(':').map(|(_, m)| m).unwrap_or(rest);
                return Diagnostic::error(path, l, 0, rule, msg.trim());
            }
            _ => {}
        }
    }
    Diagnostic::error(path, 0, 0, rule, text)
}

/// Parse "5s", "1m30s", "500ms", "2h" into a duration.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return None;
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
        rest = rest.get(len..)?;
    }
    Some(total)
}

/// Turn a YAML error into a diagnostic with a "did you mean".
fn yaml_diagnostic(path: &Path, err: &serde_saphyr::Error) -> Diagnostic {
    let err = err.without_snippet();
    let loc = err.location().map(|l| Loc::of(&l)).unwrap_or_default();
    let at = |rule: &str, msg: String| Diagnostic::error(path, loc.line, loc.column, rule, msg);
    match err {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => {
            let d = at("unknown-field", format!("unknown field `{field}`"));
            let list = expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ");
            match did_you_mean(field, expected.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`? expected one of {list}")),
                None => d.with_help(format!("expected one of {list}")),
            }
        }
        serde_saphyr::Error::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let d = at("unknown-kind", format!("unknown kind `{variant}`"));
            let list = expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ");
            match did_you_mean(variant, expected.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`? expected one of {list}")),
                None => d.with_help(format!("expected one of {list}")),
            }
        }
        serde_saphyr::Error::SerdeMissingField { field, .. } => {
            at("missing-field", format!("missing field `{field}`"))
                .with_help(format!("add `{field}:` here (see docs/flows.md)"))
        }
        other => {
            let text = other.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML");
            // The location is already in front of the message.
            let first = match first.rfind(" at line ") {
                Some(p) => first.get(..p).unwrap_or(first),
                None => first,
            };
            let (message, help) = explain(first);
            at("yaml", message).with_help(help)
        }
    }
}

/// Plain words for the YAML library's most common messages.
fn explain(message: &str) -> (String, &'static str) {
    const KNOWN: &[(&str, &str, &str)] = &[
        (
            "invalid u",
            "expected a whole number",
            "write digits only, like `2`",
        ),
        (
            "invalid i",
            "expected a whole number",
            "write digits only, like `2`",
        ),
        (
            "invalid bool",
            "expected true or false",
            "write `true` or `false`",
        ),
        (
            "expected sequence start",
            "expected a list",
            "write a list like `[bienvenue, menu_intro]`",
        ),
        (
            "expected mapping start",
            "expected a map",
            "write a map like `{ next: menu }` (an empty one is `{}`)",
        ),
        (
            "expected end of mapping after enum variant",
            "a node has exactly one kind, and this one has more",
            "split it into two nodes linked by `next:`",
        ),
    ];
    for (prefix, plain, help) in KNOWN {
        if message.starts_with(prefix) {
            return (format!("{plain} ({message})"), help);
        }
    }
    (
        message.to_owned(),
        "check the indentation and the value's type (see docs/flows.md)",
    )
}

struct Parsed {
    path: PathBuf,
    raw: RawFlow,
}

/// Compile sources into a flow set. `extra` are other files (calendar, tables) that count
/// in the version hash.
pub fn compile(
    dir: &Path,
    sources: &[Source],
    calendar: Calendar,
    tables: BTreeMap<String, Table>,
    extra: &[(PathBuf, Vec<u8>)],
) -> Result<FlowSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut hasher = sha2::Sha256::new();
    let mut hashed: Vec<(String, &[u8])> = sources
        .iter()
        .map(|s| (s.path.display().to_string(), s.text.as_bytes()))
        .chain(
            extra
                .iter()
                .map(|(p, b)| (p.display().to_string(), b.as_slice())),
        )
        .collect();
    hashed.sort();
    for (p, bytes) in &hashed {
        hasher.update(p.as_bytes());
        hasher.update([0u8]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let version: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let mut parsed = Vec::new();
    for s in sources {
        match serde_saphyr::from_str::<RawFlow>(&s.text) {
            Ok(raw) => parsed.push(Parsed {
                path: s.path.clone(),
                raw,
            }),
            Err(e) => diags.push(yaml_diagnostic(&s.path, &e)),
        }
    }
    if parsed.is_empty() && diags.is_empty() {
        diags.push(
            Diagnostic::error(dir, 0, 0, "no-flows", "no flow files (*.yaml) found")
                .with_help("create main.yaml (see docs/flows.md)"),
        );
    }

    // Pass 1: register flows, nodes and prompts.
    let mut flow_ids: BTreeMap<String, FlowIdx> = BTreeMap::new();
    let mut node_ids: BTreeMap<(FlowIdx, String), NodeIdx> = BTreeMap::new();
    let mut prompt_ids: BTreeMap<(FlowIdx, String), PromptIdx> = BTreeMap::new();
    let mut nodes_names: Vec<(FlowIdx, String, Loc)> = Vec::new();
    let mut prompts: Vec<Prompt> = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let fi = FlowIdx(i as u32);
        let id = &p.raw.id;
        let stem = p.path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if id.value != stem {
            diags.push(
                Diagnostic::error(
                    &p.path,
                    Loc::of(&id.referenced).line,
                    Loc::of(&id.referenced).column,
                    "flow-id",
                    format!(
                        "flow id `{}` differs from the file name `{stem}.yaml`",
                        id.value
                    ),
                )
                .with_help(format!("write `id: {stem}` or rename the file")),
            );
        }
        if !valid_name(&id.value) {
            diags.push(name_diag(&p.path, id, "flow id"));
        }
        if flow_ids.insert(id.value.clone(), fi).is_some() {
            diags.push(Diagnostic::error(
                &p.path,
                Loc::of(&id.referenced).line,
                Loc::of(&id.referenced).column,
                "duplicate-flow",
                format!("flow `{}` is defined twice", id.value),
            ));
        }
        let lang = &p.raw.language;
        for (name, text) in &p.raw.prompts {
            let loc = Loc::of(&text.referenced);
            if !valid_name(name) {
                diags.push(Diagnostic::error(
                    &p.path,
                    loc.line,
                    loc.column,
                    "bad-name",
                    format!("prompt id `{name}`: use letters, digits, `_` and `-`"),
                ));
            }
            prompt_ids.insert((fi, name.clone()), PromptIdx(prompts.len() as u32));
            prompts.push(Prompt {
                flow: fi,
                name: name.clone(),
                text: text.value.clone(),
                id: PromptId(format!("{}/{}/{}", lang.value, id.value, name)),
                loc,
            });
        }
        for (name, node) in &p.raw.nodes {
            let loc = Loc::of(&node.referenced);
            if !valid_name(name) {
                diags.push(Diagnostic::error(
                    &p.path,
                    loc.line,
                    loc.column,
                    "bad-name",
                    format!("node name `{name}`: use letters, digits, `_` and `-` (no `.`)"),
                ));
            }
            node_ids.insert((fi, name.clone()), NodeIdx(nodes_names.len() as u32));
            nodes_names.push((fi, name.clone(), loc));
        }
    }

    // Pass 2: flows and nodes.
    let mut flows = Vec::new();
    let mut nodes = Vec::new();
    let main_agent_raw = parsed
        .iter()
        .enumerate()
        .find(|(_, p)| p.raw.id.value == "main")
        .and_then(|(i, p)| p.raw.agent.clone().map(|a| (FlowIdx(i as u32), a)));
    for (i, p) in parsed.iter().enumerate() {
        let fi = FlowIdx(i as u32);
        let mut cx = Cx {
            path: &p.path,
            flow: fi,
            flow_ids: &flow_ids,
            node_ids: &node_ids,
            prompt_ids: &prompt_ids,
            diags: &mut diags,
        };
        let raw = &p.raw;
        let entry = cx.route(&raw.entry);
        let agent = match (&raw.agent, &main_agent_raw) {
            (Some(a), _) => Some(cx.route(a)),
            (None, Some((mfi, a))) => {
                let mut mcx = Cx {
                    flow: *mfi,
                    ..cx.reborrow()
                };
                Some(mcx.route_quiet(a))
            }
            (None, None) => None,
        };
        let base = Defaults::default();
        let defaults = Defaults {
            no_input_timeout: cx.duration_or(&raw.defaults.no_input_timeout, base.no_input_timeout),
            inter_digit_timeout: cx
                .duration_or(&raw.defaults.inter_digit_timeout, base.inter_digit_timeout),
            retries: raw
                .defaults
                .retries
                .as_ref()
                .map(|r| r.value)
                .unwrap_or(base.retries),
        };
        let kb = Keys::default();
        let keys = Keys {
            agent: cx.key_or(&raw.keys.agent, kb.agent),
            repeat: cx.key_or(&raw.keys.repeat, kb.repeat),
            back: cx.key_or(&raw.keys.back, kb.back),
        };
        let reviewed = match raw.reviewed.value.parse::<jiff::civil::Date>() {
            Ok(d) => d,
            Err(_) => {
                cx.err(
                    &raw.reviewed.referenced,
                    "bad-date",
                    format!("`{}` is not a date", raw.reviewed.value),
                    Some("write it as 2026-12-05"),
                );
                jiff::civil::Date::constant(2000, 1, 1)
            }
        };
        let mut relax = Vec::new();
        for r in &raw.relax {
            if !RELAXABLE.contains(&r.rule.value.as_str()) {
                let help = match did_you_mean(&r.rule.value, RELAXABLE.iter().copied()) {
                    Some(s) => format!(
                        "did you mean `{s}`? rules that can be relaxed: {}",
                        RELAXABLE.join(", ")
                    ),
                    None => format!("rules that can be relaxed: {}", RELAXABLE.join(", ")),
                };
                cx.err(
                    &r.rule.referenced,
                    "bad-relax",
                    format!("`{}` is not a rule that can be relaxed", r.rule.value),
                    Some(&help),
                );
            }
            if r.reason.value.trim().len() < 10 {
                cx.err(
                    &r.reason.referenced,
                    "bad-relax",
                    "a relaxed rule needs a real reason".to_owned(),
                    Some("say why callers are still served, in a sentence"),
                );
            }
            relax.push(Relax {
                rule: r.rule.value.clone(),
                reason: r.reason.value.clone(),
            });
        }
        flows.push(Flow {
            id: raw.id.value.clone(),
            language: raw.language.value.clone(),
            reviewed,
            file: p.path.clone(),
            entry,
            agent,
            defaults,
            keys,
            queues: raw.queues.iter().map(|q| q.value.clone()).collect(),
            max_seconds_to_human: raw.limits.max_seconds_to_human.as_ref().map(|m| m.value),
            relax,
            loc: Loc::of(&raw.entry.referenced),
        });
        for (name, node) in &raw.nodes {
            let kind = cx.node(&node.value, &defaults, &keys);
            nodes.push(Node {
                flow: fi,
                name: name.clone(),
                loc: Loc::of(&node.referenced),
                kind,
            });
        }
    }

    if !diags.is_empty() {
        diagnostic::sort(&mut diags);
        return Err(diags);
    }
    let prompt_by_id = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), PromptIdx(i as u32)))
        .collect();
    Ok(FlowSet {
        dir: dir.to_owned(),
        flows,
        nodes,
        prompts,
        calendar,
        tables,
        version,
        prompt_by_id,
    })
}

/// Accessibility rules that a file may relax with a reason.
pub const RELAXABLE: &[&str] = &[
    "agent-offered",
    "silence-reaches-human",
    "max-options",
    "subject-before-key",
    "min-no-input-timeout",
    "max-seconds-to-human",
];

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

fn name_diag(path: &Path, s: &SpannedStr, what: &str) -> Diagnostic {
    Diagnostic::error(
        path,
        Loc::of(&s.referenced).line,
        Loc::of(&s.referenced).column,
        "bad-name",
        format!("{what} `{}`: use letters, digits, `_` and `-`", s.value),
    )
}

struct Cx<'a> {
    path: &'a Path,
    flow: FlowIdx,
    flow_ids: &'a BTreeMap<String, FlowIdx>,
    node_ids: &'a BTreeMap<(FlowIdx, String), NodeIdx>,
    prompt_ids: &'a BTreeMap<(FlowIdx, String), PromptIdx>,
    diags: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    fn reborrow(&mut self) -> Cx<'_> {
        Cx {
            path: self.path,
            flow: self.flow,
            flow_ids: self.flow_ids,
            node_ids: self.node_ids,
            prompt_ids: self.prompt_ids,
            diags: self.diags,
        }
    }

    fn err(&mut self, at: &serde_saphyr::Location, rule: &str, msg: String, help: Option<&str>) {
        let l = Loc::of(at);
        let mut d = Diagnostic::error(self.path, l.line, l.column, rule, msg);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.diags.push(d);
    }

    /// Split `flow.name` / `name` into a flow index and a name.
    fn qualify<'s>(&self, s: &'s str) -> Option<(FlowIdx, &'s str)> {
        match s.split_once('.') {
            Some((f, n)) => self.flow_ids.get(f).map(|&fi| (fi, n)),
            None => Some((self.flow, s)),
        }
    }

    fn route_quiet(&mut self, s: &SpannedStr) -> NodeIdx {
        self.qualify(&s.value)
            .and_then(|(fi, n)| self.node_ids.get(&(fi, n.to_owned())).copied())
            .unwrap_or(NodeIdx(0))
    }

    fn route(&mut self, s: &SpannedStr) -> NodeIdx {
        if let Some((fi, n)) = self.qualify(&s.value)
            && let Some(&idx) = self.node_ids.get(&(fi, n.to_owned()))
        {
            return idx;
        }
        // Suggest among this flow's nodes and every qualified name.
        let mut candidates: Vec<String> = self
            .node_ids
            .keys()
            .filter(|(f, _)| *f == self.flow)
            .map(|(_, n)| n.clone())
            .collect();
        for ((f, n), _) in self.node_ids.iter() {
            if let Some((fid, _)) = self.flow_ids.iter().find(|(_, v)| **v == *f) {
                candidates.push(format!("{fid}.{n}"));
            }
        }
        let help = match did_you_mean(&s.value, candidates.iter().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`?"),
            None => "name a node of this file, or `flow.node` for another file".to_owned(),
        };
        let msg = match s.value.split_once('.') {
            Some((f, _)) if !self.flow_ids.contains_key(f) => {
                format!("no flow `{f}` (in the reference `{}`)", s.value)
            }
            _ => format!("no node `{}`", s.value),
        };
        self.err(&s.referenced, "dangling-node", msg, Some(&help));
        NodeIdx(0)
    }

    fn prompt(&mut self, s: &SpannedStr) -> PromptRef {
        if let Some(var) = s.value.strip_prefix('$') {
            return PromptRef::Var {
                flow: self.flow,
                var: var.to_owned(),
            };
        }
        if let Some((fi, n)) = self.qualify(&s.value)
            && let Some(&idx) = self.prompt_ids.get(&(fi, n.to_owned()))
        {
            return PromptRef::Static(idx);
        }
        let candidates: Vec<&str> = self
            .prompt_ids
            .keys()
            .filter(|(f, _)| *f == self.flow)
            .map(|(_, n)| n.as_str())
            .collect();
        let help = match did_you_mean(&s.value, candidates) {
            Some(c) => format!("did you mean `{c}`?"),
            None => "add it under `prompts:` with its text".to_owned(),
        };
        self.err(
            &s.referenced,
            "dangling-prompt",
            format!("no prompt `{}`", s.value),
            Some(&help),
        );
        PromptRef::Static(PromptIdx(0))
    }

    fn prompts(&mut self, v: &[SpannedStr]) -> Vec<PromptRef> {
        v.iter().map(|s| self.prompt(s)).collect()
    }

    fn duration(&mut self, s: &SpannedStr) -> Duration {
        match parse_duration(&s.value) {
            Some(d) => d,
            None => {
                self.err(
                    &s.referenced,
                    "bad-duration",
                    format!("`{}` is not a duration", s.value),
                    Some("write a number and a unit: `5s`, `1m30s` or `500ms`"),
                );
                Duration::ZERO
            }
        }
    }

    fn duration_or(&mut self, s: &Option<SpannedStr>, default: Duration) -> Duration {
        match s {
            Some(s) => self.duration(s),
            None => default,
        }
    }

    fn key(&mut self, s: &SpannedStr) -> char {
        let mut chars = s.value.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if is_phone_key(c) => c,
            _ => {
                self.err(
                    &s.referenced,
                    "bad-key",
                    format!("`{}` is not a phone key", s.value),
                    Some("a key is one of 0-9, `*` or `#`, quoted: \"1\""),
                );
                '?'
            }
        }
    }

    fn key_or(&mut self, s: &Option<SpannedStr>, default: char) -> char {
        match s {
            Some(s) => self.key(s),
            None => default,
        }
    }

    fn value(s: &str) -> Value {
        match s.strip_prefix('$') {
            Some(v) => Value::Var(v.to_owned()),
            None => Value::Literal(s.to_owned()),
        }
    }

    fn retry(&mut self, r: &Option<RawRetry>) -> Retry {
        match r {
            Some(r) => Retry {
                prompts: self.prompts(&r.prompts),
                then: r.then.as_ref().map(|t| self.route(t)),
            },
            None => Retry::default(),
        }
    }

    fn date(&mut self, s: &SpannedStr) -> jiff::civil::Date {
        match s.value.parse::<jiff::civil::Date>() {
            Ok(d) => d,
            Err(_) => {
                self.err(
                    &s.referenced,
                    "bad-date",
                    format!("`{}` is not a date", s.value),
                    Some("write it as 2026-12-24"),
                );
                jiff::civil::Date::constant(2000, 1, 1)
            }
        }
    }

    fn condition(&mut self, c: &RawCondition, at: &serde_saphyr::Location) -> Condition {
        match c {
            RawCondition::Open(s) => Condition::Open(s.value.clone()),
            RawCondition::Closed(s) => Condition::Closed(s.value.clone()),
            RawCondition::Dates(d) => Condition::Dates {
                from: self.date(&d.from),
                to: self.date(&d.to),
            },
            RawCondition::CallerPrefix(p) => Condition::CallerPrefix(p.clone()),
            RawCondition::Var(v) => {
                let given = [v.equals.is_some(), v.prefix.is_some(), v.set.is_some()];
                if given.iter().filter(|g| **g).count() != 1 {
                    self.err(
                        at,
                        "bad-condition",
                        format!(
                            "the test on `{}` needs exactly one of equals, prefix, set",
                            v.name
                        ),
                        Some("e.g. `var: { name: code_postal, prefix: \"91\" }`"),
                    );
                }
                if let Some(e) = &v.equals {
                    Condition::VarEquals(v.name.clone(), e.clone())
                } else if let Some(p) = &v.prefix {
                    Condition::VarPrefix(v.name.clone(), p.clone())
                } else {
                    Condition::VarSet(v.name.clone(), v.set.unwrap_or(true))
                }
            }
            RawCondition::CallsAtLeast(n) => Condition::CallsAtLeast(*n),
            RawCondition::All(v) => {
                Condition::All(v.iter().map(|c| self.condition(c, at)).collect())
            }
            RawCondition::Any(v) => {
                Condition::Any(v.iter().map(|c| self.condition(c, at)).collect())
            }
        }
    }

    fn node(&mut self, n: &RawNode, defaults: &Defaults, keys: &Keys) -> NodeKind {
        let _ = keys;
        match n {
            RawNode::Play(p) => NodeKind::Play {
                prompts: self.prompts(&p.prompts),
                next: self.route(&p.next),
                interruptible: p.interruptible.unwrap_or(true),
            },
            RawNode::Menu(m) => {
                let mut options = Vec::new();
                let mut seen = BTreeSet::new();
                for (key, opt) in &m.options {
                    let k = self.key(&SpannedStr::new(key.clone(), opt.referenced, opt.defined));
                    if !seen.insert(k) {
                        self.err(
                            &opt.referenced,
                            "duplicate-key",
                            format!("key `{k}` is used twice"),
                            None,
                        );
                    }
                    options.push(MenuOption {
                        key: k,
                        prompt: opt.value.prompt.as_ref().map(|p| self.prompt(p)),
                        goto: self.route(&opt.value.goto),
                        loc: Loc::of(&opt.referenced),
                    });
                }
                NodeKind::Menu(Menu {
                    prompts: self.prompts(&m.prompts),
                    options,
                    footer: self.prompts(&m.footer),
                    no_input: self.retry(&m.no_input),
                    invalid: self.retry(&m.invalid),
                    timeout: self.duration_or(&m.timeout, defaults.no_input_timeout),
                    retries: m
                        .retries
                        .as_ref()
                        .map(|r| r.value)
                        .unwrap_or(defaults.retries),
                })
            }
            RawNode::Collect(c) => {
                let pattern = c.pattern.as_ref().and_then(|p| {
                    match DigitPattern::parse(&p.value) {
                        Ok(pat) => Some(pat),
                        Err(why) => {
                            let help = format!(
                                "{why}; use `postal_code`, `tax_number` or digits like `[0-9]{{5}}`"
                            );
                            self.err(
                                &p.referenced,
                                "bad-pattern",
                                format!("`{}` is not a digit pattern", p.value),
                                Some(&help),
                            );
                            None
                        }
                    }
                });
                let (pmin, pmax) = pattern
                    .as_ref()
                    .map(|p| p.length_range())
                    .unwrap_or((1, 20));
                let min = c.min.as_ref().map(|m| m.value).unwrap_or(pmin);
                let max = c.max.as_ref().map(|m| m.value).unwrap_or(pmax.min(32));
                if min > max || max == 0 {
                    let at = c
                        .min
                        .as_ref()
                        .map(|m| m.referenced)
                        .unwrap_or(c.into.referenced);
                    self.err(
                        &at,
                        "bad-length",
                        format!("min {min} is above max {max}"),
                        None,
                    );
                }
                let confirm = c.confirm.as_ref().map(|cf| Confirm {
                    before: self.prompts(&cf.before),
                    question: self.prompts(&cf.question),
                    yes: self.key_or(&cf.yes, '1'),
                    no: self.key_or(&cf.no, '2'),
                });
                NodeKind::Collect(Collect {
                    prompts: self.prompts(&c.prompts),
                    into: c.into.value.clone(),
                    min,
                    max,
                    pattern,
                    terminator: match &c.terminator {
                        Some(t) if t.value.is_empty() || t.value == "none" => None,
                        Some(t) => Some(self.key(t)),
                        None => Some('#'),
                    },
                    inter_digit_timeout: self
                        .duration_or(&c.inter_digit_timeout, defaults.inter_digit_timeout),
                    timeout: self.duration_or(&c.timeout, defaults.no_input_timeout),
                    retries: c
                        .retries
                        .as_ref()
                        .map(|r| r.value)
                        .unwrap_or(defaults.retries),
                    read_back: c.read_back.unwrap_or(false) || confirm.is_some(),
                    confirm,
                    no_input: self.retry(&c.no_input),
                    invalid: self.retry(&c.invalid),
                    next: self.route(&c.next),
                })
            }
            RawNode::Say(s) => {
                let as_ = match SayAs::parse(&s.as_.value) {
                    Some(a) => a,
                    None => {
                        let help = match did_you_mean(&s.as_.value, SayAs::NAMES.iter().copied()) {
                            Some(c) => {
                                format!("did you mean `{c}`? one of {}", SayAs::NAMES.join(", "))
                            }
                            None => format!("one of {}", SayAs::NAMES.join(", ")),
                        };
                        self.err(
                            &s.as_.referenced,
                            "bad-value",
                            format!("cannot say a value as `{}`", s.as_.value),
                            Some(&help),
                        );
                        SayAs::Digits
                    }
                };
                NodeKind::Say {
                    value: Self::value(&s.value.value),
                    as_,
                    before: self.prompts(&s.before),
                    after: self.prompts(&s.after),
                    next: self.route(&s.next),
                }
            }
            RawNode::Switch(s) => NodeKind::Switch {
                cases: s
                    .cases
                    .iter()
                    .map(|c| {
                        (
                            self.condition(&c.value.condition, &c.referenced),
                            self.route(&c.value.goto),
                        )
                    })
                    .collect(),
                default: self.route(&s.default),
            },
            RawNode::Set(s) => NodeKind::Set {
                values: s
                    .values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                next: self.route(&s.next),
            },
            RawNode::Lookup(l) => NodeKind::Lookup {
                table: l.table.value.clone(),
                key: Self::value(&l.key.value),
                prefix: l.prefix.unwrap_or(false),
                into: l.into.value.clone(),
                found: self.route(&l.found),
                not_found: self.route(&l.not_found),
            },
            RawNode::Queue(q) => NodeKind::Queue {
                name: q.name.value.clone(),
                priority: q.priority.unwrap_or(0),
                prompts: self.prompts(&q.prompts),
                fallback: self.route(&q.fallback),
            },
            RawNode::Callback(c) => NodeKind::Callback {
                queue: c.queue.as_ref().map(|q| q.value.clone()),
                prompts: self.prompts(&c.prompts),
                next: self.route(&c.next),
                fallback: self.route(&c.fallback),
            },
            RawNode::Voicemail(v) => NodeKind::Voicemail {
                mailbox: v.mailbox.value.clone(),
                prompts: self.prompts(&v.prompts),
                next: self.route(&v.next),
                fallback: self.route(&v.fallback),
            },
            RawNode::Transfer(t) => {
                if !(t.uri.value.starts_with("sip:") || t.uri.value.starts_with("sips:")) {
                    self.err(
                        &t.uri.referenced,
                        "bad-uri",
                        format!("`{}` is not a SIP URI", t.uri.value),
                        Some("write it as sip:accueil@example.org"),
                    );
                }
                NodeKind::Transfer {
                    uri: t.uri.value.clone(),
                    prompts: self.prompts(&t.prompts),
                    fallback: self.route(&t.fallback),
                }
            }
            RawNode::Goto(g) => NodeKind::Goto(self.route(g)),
            RawNode::Call(c) => NodeKind::Call {
                node: self.route(&c.node),
                next: self.route(&c.next),
            },
            RawNode::Return(_) => NodeKind::Return,
            RawNode::Hangup(h) => NodeKind::Hangup {
                prompts: self.prompts(&h.prompts),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: accueil
agent: conseiller
prompts:
  bienvenue: "Bienvenue."
  impots: "Pour les impôts, tapez 1."
  conseiller: "Pour parler à un conseiller, tapez 0."
nodes:
  accueil:
    play: { prompts: [bienvenue], next: menu }
  menu:
    menu:
      options:
        "1": { prompt: impots, goto: fin }
      footer: [conseiller]
      no_input: { then: conseiller }
  conseiller:
    queue: { name: accueil, fallback: fin }
  fin:
    hangup: {}
"#;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn loads_a_small_flow() {
        let set = FlowSet::from_texts(&[("main", OK)]).unwrap();
        let entry = set.entry("main").unwrap();
        assert_eq!(set.node_name(entry), "main.accueil");
        assert_eq!(set.version().len(), 64);
        let Some(Node {
            kind: NodeKind::Menu(m),
            ..
        }) = set.find_node("menu").and_then(|i| set.node(i))
        else {
            panic!("menu not compiled");
        };
        assert_eq!(m.options.len(), 1);
        assert_eq!(m.options[0].key, '1');
        assert_eq!(m.timeout, Duration::from_secs(6));
        assert!(m.no_input.then.is_some());
    }

    #[test]
    fn unknown_field_has_location_and_suggestion() {
        let bad = OK.replace(
            "play: { prompts: [bienvenue]",
            "play: { promts: [bienvenue]",
        );
        let diags = FlowSet::from_texts(&[("main", &bad)]).unwrap_err();
        let d = &diags[0];
        assert_eq!(d.rule, "unknown-field", "{d}");
        assert_eq!(d.line, 13, "{d}");
        assert!(
            d.help
                .as_deref()
                .unwrap_or("")
                .contains("did you mean `prompts`"),
            "{d}"
        );
    }

    #[test]
    fn unknown_node_kind_suggests() {
        let bad = OK.replace("hangup: {}", "hangpu: {}");
        let diags = FlowSet::from_texts(&[("main", &bad)]).unwrap_err();
        assert_eq!(diags[0].rule, "unknown-kind", "{}", diags[0]);
        assert!(
            diags[0].help.as_deref().unwrap_or("").contains("`hangup`"),
            "{}",
            diags[0]
        );
    }

    #[test]
    fn dangling_references_all_reported() {
        let bad = OK
            .replace("next: menu }", "next: mneu }")
            .replace("prompts: [bienvenue]", "prompts: [bienvenu]");
        let diags = FlowSet::from_texts(&[("main", &bad)]).unwrap_err();
        let rules: Vec<&str> = diags.iter().map(|d| d.rule.as_str()).collect();
        assert_eq!(rules, vec!["dangling-prompt", "dangling-node"], "{diags:?}");
        assert!(diags[1].help.as_deref().unwrap_or("").contains("`menu`"));
        assert_eq!(diags[0].line, 13);
    }

    #[test]
    fn bad_duration_is_located() {
        let bad = OK.replace(
            "no_input: { then: conseiller }",
            "no_input: { then: conseiller }\n      timeout: 5 secondes",
        );
        let diags = FlowSet::from_texts(&[("main", &bad)]).unwrap_err();
        assert_eq!(diags[0].rule, "bad-duration", "{}", diags[0]);
        assert_eq!(diags[0].line, 20);
        assert!(diags[0].help.as_deref().unwrap_or("").contains("1m30s"));
    }

    #[test]
    fn cross_file_references() {
        let sub = r#"
id: impots
language: fr
reviewed: 2026-12-05
entry: info
prompts:
  info: "Info."
nodes:
  info:
    play: { prompts: [info], next: main.fin }
"#;
        let main = OK.replace("goto: fin }", "goto: impots.info }");
        let set = FlowSet::from_texts(&[("main", &main), ("impots", sub)]).unwrap();
        let info = set.find_node("impots.info").unwrap();
        let Some(NodeKind::Play { next, .. }) = set.node(info).map(|n| &n.kind) else {
            panic!()
        };
        assert_eq!(set.node_name(*next), "main.fin");
        // The agent route is inherited from main.
        let (_, f) = set.flow_by_id("impots").unwrap();
        assert_eq!(
            f.agent.map(|a| set.node_name(a)).as_deref(),
            Some("main.conseiller")
        );
        assert_eq!(
            set.prompt(PromptIdx(0)).map(|p| p.id.0.clone()).as_deref(),
            Some("fr/main/bienvenue")
        );
    }

    #[test]
    fn type_errors_are_explained() {
        let base = "id: main\nlanguage: fr\nreviewed: 2026-12-05\nentry: a\nnodes:\n  a:\n    hangup: {}\n";
        let cases = [
            (
                base.replace("entry: a\n", "entry: a\ndefaults: { retries: deux }\n"),
                "whole number",
                5,
            ),
            (
                base.replace("hangup: {}", "hangup: { prompts: bye }"),
                "expected a list",
                7,
            ),
            (
                base.replace(
                    "    hangup: {}",
                    "    hangup: {}\n    play: { prompts: [], next: a }",
                ),
                "exactly one kind",
                8,
            ),
        ];
        for (text, want, line) in cases {
            let d = FlowSet::from_texts(&[("main", &text)]).unwrap_err();
            assert!(d[0].message.contains(want), "{}", d[0]);
            assert!(!d[0].message.contains("at line"), "{}", d[0]);
            assert_eq!(d[0].line, line, "{}", d[0]);
        }
    }

    #[test]
    fn calendar_and_table_errors_keep_their_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.yaml"),
            "id: main\nlanguage: fr\nreviewed: 2026-12-05\nentry: a\nnodes:\n  a:\n    hangup: {}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("calendar.yaml"),
            "services:\n  accueil:\n    hours:\n      lundi: [\"25:00-26:00\"]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/t.csv"), "key,a\n1,2,3\n").unwrap();
        let d = load(dir.path()).unwrap_err();
        let cal = d.iter().find(|d| d.rule == "calendar").unwrap();
        assert_eq!(cal.line, 4, "{cal}");
        assert!(cal.column > 0, "{cal}");
        let table = d.iter().find(|d| d.rule == "table").unwrap();
        assert_eq!(table.line, 2, "{table}");
    }
}
