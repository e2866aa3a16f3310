//! The compiled, typed form of a flow set: every node reference resolved to a [`NodeIdx`],
//! every prompt to a [`PromptIdx`], every duration parsed. Built once by
//! [`crate::flow::load`]; read by the checker, the interpreter, the simulator and the graph
//! printer. Immutable after loading (share it in an `Arc`).
//!
//! Indices are only meaningful inside the [`FlowSet`] that made them; `FlowSet` accessors
//! return `Option` so a stale index can never panic.
//!
//! ```no_run
//! use guichet::flow::ir::FlowSet;
//! let set = FlowSet::load(std::path::Path::new("flows")).unwrap();
//! let entry = set.entry("main").unwrap();
//! println!("{} starts at {}", set.version(), set.node_name(entry));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::flow::calendar::Calendar;
use crate::flow::table::Table;

/// Index of a flow (file) in a [`FlowSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowIdx(pub u32);

/// Index of a node in a [`FlowSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIdx(pub u32);

/// Index of a catalogue prompt in a [`FlowSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptIdx(pub u32);

/// What the media layer plays: a path relative to the audio directory, without `.wav`.
/// Catalogue prompts are `<lang>/<flow>/<prompt>` (`fr/main/bienvenue`); fragments said by
/// `say` nodes are `<lang>/<fragment id>` (`fr/num/vingt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub String);

impl PromptId {
    /// The WAV file under `audio_dir`.
    pub fn wav_path(&self, audio_dir: &Path) -> PathBuf {
        audio_dir.join(format!("{}.wav", self.0))
    }
}

impl std::fmt::Display for PromptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` is a key of a phone keypad (`0`-`9`, `*`, `#`).
pub fn is_phone_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

/// A place in a flow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub fn of(location: &serde_saphyr::Location) -> Loc {
        Loc {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        }
    }
}

/// One flow file.
#[derive(Debug, Clone)]
pub struct Flow {
    pub id: String,
    pub language: String,
    pub reviewed: jiff::civil::Date,
    pub file: PathBuf,
    pub entry: NodeIdx,
    /// Where the agent key leads from inside this flow.
    pub agent: Option<NodeIdx>,
    pub defaults: Defaults,
    pub keys: Keys,
    pub queues: Vec<String>,
    pub max_seconds_to_human: Option<u32>,
    pub relax: Vec<Relax>,
    /// Where `entry:` is written.
    pub loc: Loc,
}

impl Flow {
    /// Whether `rule` is relaxed in this file.
    pub fn relaxed(&self, rule: &str) -> bool {
        self.relax.iter().any(|r| r.rule == rule)
    }
}

/// Defaults of a flow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub no_input_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub retries: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            no_input_timeout: Duration::from_secs(6),
            inter_digit_timeout: Duration::from_secs(3),
            retries: 2,
        }
    }
}

/// The global keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    pub agent: char,
    pub repeat: char,
    pub back: char,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            agent: '0',
            repeat: '*',
            back: '#',
        }
    }
}

/// A relaxed accessibility rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relax {
    pub rule: String,
    pub reason: String,
}

/// A catalogue prompt.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub flow: FlowIdx,
    pub name: String,
    pub text: String,
    pub id: PromptId,
    pub loc: Loc,
}

/// A prompt to play: from the catalogue, or named at run time by a variable (a table column
/// holding a prompt name of the same flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptRef {
    Static(PromptIdx),
    Var { flow: FlowIdx, var: String },
}

/// A literal or a `$variable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Literal(String),
    Var(String),
}

/// A node of a flow.
#[derive(Debug, Clone)]
pub struct Node {
    pub flow: FlowIdx,
    pub name: String,
    pub loc: Loc,
    pub kind: NodeKind,
}

/// What a node does.
#[derive(Debug, Clone)]
pub enum NodeKind {
    Play {
        prompts: Vec<PromptRef>,
        next: NodeIdx,
        interruptible: bool,
    },
    Menu(Menu),
    Collect(Collect),
    Say {
        value: Value,
        as_: SayAs,
        before: Vec<PromptRef>,
        after: Vec<PromptRef>,
        next: NodeIdx,
    },
    Switch {
        cases: Vec<(Condition, NodeIdx)>,
        default: NodeIdx,
    },
    Set {
        values: Vec<(String, String)>,
        next: NodeIdx,
    },
    Lookup {
        table: String,
        key: Value,
        prefix: bool,
        into: String,
        found: NodeIdx,
        not_found: NodeIdx,
    },
    Queue {
        name: String,
        priority: u8,
        prompts: Vec<PromptRef>,
        fallback: NodeIdx,
    },
    Callback {
        queue: Option<String>,
        prompts: Vec<PromptRef>,
        next: NodeIdx,
        fallback: NodeIdx,
    },
    Voicemail {
        mailbox: String,
        prompts: Vec<PromptRef>,
        next: NodeIdx,
        fallback: NodeIdx,
    },
    Transfer {
        uri: String,
        prompts: Vec<PromptRef>,
        fallback: NodeIdx,
    },
    Goto(NodeIdx),
    Call {
        node: NodeIdx,
        next: NodeIdx,
    },
    Return,
    Hangup {
        prompts: Vec<PromptRef>,
    },
}

/// Why a route out of a node is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// After the node's prompts or action (`next`, `goto`, the callee of a `call`...).
    Next,
    /// A menu option.
    Key(char),
    /// Silence after the last retry.
    NoInput,
    /// Wrong keys after the last retry.
    Invalid,
    /// Digits collected and accepted.
    Collected,
    /// The switch case at this index holds.
    Case(usize),
    /// No switch case holds.
    Default,
    Found,
    NotFound,
    /// No adviser available (queue, transfer, callback, voicemail).
    Fallback,
    /// The sub-menu run by a `call`.
    Callee,
    /// Where a `call` continues after the sub-menu's `return`.
    AfterCall,
}

impl Via {
    /// Whether a caller who presses nothing can take this route.
    pub fn without_caller(self) -> bool {
        !matches!(self, Via::Key(_) | Via::Invalid | Via::Collected)
    }
}

impl NodeKind {
    /// Every route out of the node, with why it is taken.
    pub fn routes(&self) -> Vec<(Via, NodeIdx)> {
        let mut v = Vec::new();
        match self {
            NodeKind::Play { next, .. }
            | NodeKind::Say { next, .. }
            | NodeKind::Set { next, .. } => v.push((Via::Next, *next)),
            NodeKind::Menu(m) => {
                v.extend(m.options.iter().map(|o| (Via::Key(o.key), o.goto)));
                v.extend(m.no_input.then.map(|t| (Via::NoInput, t)));
                v.extend(m.invalid.then.map(|t| (Via::Invalid, t)));
            }
            NodeKind::Collect(c) => {
                v.push((Via::Collected, c.next));
                v.extend(c.no_input.then.map(|t| (Via::NoInput, t)));
                v.extend(c.invalid.then.map(|t| (Via::Invalid, t)));
            }
            NodeKind::Switch { cases, default } => {
                v.extend(
                    cases
                        .iter()
                        .enumerate()
                        .map(|(i, (_, n))| (Via::Case(i), *n)),
                );
                v.push((Via::Default, *default));
            }
            NodeKind::Lookup {
                found, not_found, ..
            } => {
                v.push((Via::Found, *found));
                v.push((Via::NotFound, *not_found));
            }
            NodeKind::Queue { fallback, .. } | NodeKind::Transfer { fallback, .. } => {
                v.push((Via::Fallback, *fallback))
            }
            NodeKind::Callback { next, fallback, .. }
            | NodeKind::Voicemail { next, fallback, .. } => {
                v.push((Via::Next, *next));
                v.push((Via::Fallback, *fallback));
            }
            NodeKind::Goto(n) => v.push((Via::Next, *n)),
            NodeKind::Call { node, next } => {
                v.push((Via::Callee, *node));
                v.push((Via::AfterCall, *next));
            }
            NodeKind::Return | NodeKind::Hangup { .. } => {}
        }
        v
    }
}

/// A menu node.
#[derive(Debug, Clone)]
pub struct Menu {
    pub prompts: Vec<PromptRef>,
    /// In key order.
    pub options: Vec<MenuOption>,
    pub footer: Vec<PromptRef>,
    pub no_input: Retry,
    pub invalid: Retry,
    pub timeout: Duration,
    pub retries: u32,
}

impl Menu {
    /// Everything the menu says on first entry: intro, options, footer.
    pub fn all_prompts(&self) -> Vec<PromptRef> {
        let mut v = self.prompts.clone();
        v.extend(self.options.iter().filter_map(|o| o.prompt.clone()));
        v.extend(self.footer.iter().cloned());
        v
    }
}

/// A menu option.
#[derive(Debug, Clone)]
pub struct MenuOption {
    pub key: char,
    pub prompt: Option<PromptRef>,
    pub goto: NodeIdx,
    pub loc: Loc,
}

/// Re-prompts and the route after the last one.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    pub prompts: Vec<PromptRef>,
    pub then: Option<NodeIdx>,
}

impl Retry {
    /// The re-prompt for attempt `n` (0-based), escalating then repeating the last.
    pub fn prompt_for(&self, n: u32) -> Option<&PromptRef> {
        let i = (n as usize).min(self.prompts.len().saturating_sub(1));
        self.prompts.get(i)
    }
}

/// A collect node.
#[derive(Debug, Clone)]
pub struct Collect {
    pub prompts: Vec<PromptRef>,
    pub into: String,
    pub min: u32,
    pub max: u32,
    pub pattern: Option<DigitPattern>,
    pub terminator: Option<char>,
    pub inter_digit_timeout: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub read_back: bool,
    pub confirm: Option<Confirm>,
    pub no_input: Retry,
    pub invalid: Retry,
    pub next: NodeIdx,
}

/// Confirmation of collected digits.
#[derive(Debug, Clone)]
pub struct Confirm {
    pub before: Vec<PromptRef>,
    pub question: Vec<PromptRef>,
    pub yes: char,
    pub no: char,
}

/// How a `say` node says its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SayAs {
    Digits,
    Number,
    Date,
    Time,
    Duration,
    Phone,
}

impl SayAs {
    pub const NAMES: &'static [&'static str] =
        &["digits", "number", "date", "time", "duration", "phone"];

    pub fn parse(s: &str) -> Option<SayAs> {
        Some(match s {
            "digits" => SayAs::Digits,
            "number" => SayAs::Number,
            "date" => SayAs::Date,
            "time" => SayAs::Time,
            "duration" => SayAs::Duration,
            "phone" => SayAs::Phone,
            _ => return None,
        })
    }
}

/// A switch condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Open(String),
    Closed(String),
    Dates {
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    },
    CallerPrefix(Vec<String>),
    VarEquals(String, String),
    VarPrefix(String, String),
    VarSet(String, bool),
    CallsAtLeast(u32),
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

/// A digit pattern: a tiny regular language over digits.
///
/// `postal_code` is `[0-9]{5}`, `tax_number` is `[0-9]{13}`; otherwise a sequence of atoms
/// (`0`-`9`, `\d`, `.`, or a class `[0-9]`, `[13-5]`), each optionally followed by
/// `{n}`, `{n,m}`, `?`, `*` or `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitPattern {
    pub source: String,
    items: Vec<PatternItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PatternItem {
    /// Bit i set: digit i accepted.
    set: u16,
    min: u32,
    max: u32,
}

impl DigitPattern {
    /// Named patterns.
    pub const NAMED: &'static [&'static str] = &["postal_code", "tax_number"];

    /// Parse a named pattern or a digit regex; `Err` says what is wrong.
    pub fn parse(source: &str) -> Result<DigitPattern, String> {
        let body = match source {
            "postal_code" => "[0-9]{5}",
            "tax_number" => "[0-9]{13}",
            other => other,
        };
        let chars: Vec<char> = body.chars().collect();
        let mut items = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            let set: u16 = match c {
                '0'..='9' => 1 << (c as u32 - '0' as u32),
                '.' => 0x3ff,
                '\\' => match chars.get(i) {
                    Some('d') => {
                        i += 1;
                        0x3ff
                    }
                    _ => return Err("`\\` must be followed by `d`".into()),
                },
                '[' => {
                    let mut set = 0u16;
                    loop {
                        match chars.get(i) {
                            None => return Err("unclosed `[`".into()),
                            Some(']') => {
                                i += 1;
                                break;
                            }
                            Some(&a @ '0'..='9') => {
                                if chars.get(i + 1) == Some(&'-') {
                                    match chars.get(i + 2) {
                                        Some(&b @ '0'..='9') if b >= a => {
                                            for d in a..=b {
                                                set |= 1 << (d as u32 - '0' as u32);
                                            }
                                            i += 3;
                                        }
                                        _ => return Err(format!("bad range after `{a}-`")),
                                    }
                                } else {
                                    set |= 1 << (a as u32 - '0' as u32);
                                    i += 1;
                                }
                            }
                            Some(o) => return Err(format!("`{o}` in a class: only digits")),
                        }
                    }
                    set
                }
                o => {
                    return Err(format!("`{o}` is not a digit, `.`, `\\d` or `[...]` class"));
                }
            };
            let (min, max) = match chars.get(i) {
                Some('?') => {
                    i += 1;
                    (0, 1)
                }
                Some('*') => {
                    i += 1;
                    (0, 32)
                }
                Some('+') => {
                    i += 1;
                    (1, 32)
                }
                Some('{') => {
                    // chars[i] is `{`, so `close >= 1` and both slices below are in bounds.
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .ok_or("unclosed `{`")?;
                    let inner: String = chars[i + 1..i + close].iter().collect();
                    i += close + 1;
                    let parse = |s: &str| {
                        s.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("`{{{inner}}}`: expected {{n}} or {{n,m}}"))
                    };
                    match inner.split_once(',') {
                        Some((a, b)) => (parse(a)?, parse(b)?),
                        None => {
                            let n = parse(&inner)?;
                            (n, n)
                        }
                    }
                }
                _ => (1, 1),
            };
            if min > max || max > 64 {
                return Err(format!("repeat {{{min},{max}}} is out of range"));
            }
            items.push(PatternItem { set, min, max });
        }
        if items.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(DigitPattern {
            source: source.to_owned(),
            items,
        })
    }

    /// Whether `digits` matches the whole pattern.
    pub fn matches(&self, digits: &str) -> bool {
        let d: Vec<u8> = digits.bytes().collect();
        if d.iter().any(|b| !b.is_ascii_digit()) {
            return false;
        }
        Self::match_from(&self.items, &d)
    }

    fn match_from(items: &[PatternItem], d: &[u8]) -> bool {
        let Some((first, rest)) = items.split_first() else {
            return d.is_empty();
        };
        let mut taken = 0usize;
        // Greedy count of how many leading digits the item can take.
        while taken < first.max as usize
            && d.get(taken)
                .is_some_and(|b| first.set & (1 << (b - b'0')) != 0)
        {
            taken += 1;
        }
        (first.min as usize..=taken)
            .rev()
            .any(|n| d.get(n..).is_some_and(|tail| Self::match_from(rest, tail)))
    }

    /// Shortest and longest digit strings the pattern accepts.
    pub fn length_range(&self) -> (u32, u32) {
        self.items.iter().fold((0, 0), |(a, b), it| {
            (a.saturating_add(it.min), b.saturating_add(it.max))
        })
    }
}

/// Every flow, node and prompt of a directory, compiled. Built by [`FlowSet::load`].
#[derive(Debug, Clone)]
pub struct FlowSet {
    pub(crate) dir: PathBuf,
    pub(crate) flows: Vec<Flow>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) prompts: Vec<Prompt>,
    pub(crate) calendar: Calendar,
    pub(crate) tables: BTreeMap<String, Table>,
    pub(crate) version: String,
    pub(crate) prompt_by_id: BTreeMap<PromptId, PromptIdx>,
}

impl FlowSet {
    /// The directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Content hash (sha-256, hex) of every file the set was built from.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    pub fn flow(&self, idx: FlowIdx) -> Option<&Flow> {
        self.flows.get(idx.0 as usize)
    }

    pub fn flow_by_id(&self, id: &str) -> Option<(FlowIdx, &Flow)> {
        self.flows
            .iter()
            .enumerate()
            .find(|(_, f)| f.id == id)
            .map(|(i, f)| (FlowIdx(i as u32), f))
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, idx: NodeIdx) -> Option<&Node> {
        self.nodes.get(idx.0 as usize)
    }

    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }

    pub fn prompt(&self, idx: PromptIdx) -> Option<&Prompt> {
        self.prompts.get(idx.0 as usize)
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// `flow.node` for a node, or `?` for a stale index.
    pub fn node_name(&self, idx: NodeIdx) -> String {
        match self.node(idx) {
            Some(n) => format!(
                "{}.{}",
                self.flow(n.flow).map(|f| f.id.as_str()).unwrap_or("?"),
                n.name
            ),
            None => "?".to_owned(),
        }
    }

    /// Resolve `flow.node` (or `node` in the `main` flow).
    pub fn find_node(&self, qualified: &str) -> Option<NodeIdx> {
        let (flow, node) = qualified.split_once('.').unwrap_or(("main", qualified));
        let (fi, _) = self.flow_by_id(flow)?;
        self.nodes
            .iter()
            .position(|n| n.flow == fi && n.name == node)
            .map(|i| NodeIdx(i as u32))
    }

    /// The entry node of a flow (`main`), or of a node named `flow.node`.
    pub fn entry(&self, name: &str) -> Option<NodeIdx> {
        if name.contains('.') {
            return self.find_node(name);
        }
        self.flow_by_id(name).map(|(_, f)| f.entry)
    }

    /// The catalogue prompt with this id, if any.
    pub fn prompt_by_id(&self, id: &PromptId) -> Option<&Prompt> {
        self.prompt_by_id.get(id).and_then(|&i| self.prompt(i))
    }

    /// The French text of a prompt: catalogue text, or fragment text from `flow::say`.
    pub fn prompt_text(&self, id: &PromptId) -> Option<String> {
        if let Some(p) = self.prompt_by_id(id) {
            return Some(p.text.clone());
        }
        let frag = id.0.split_once('/').map(|(_, f)| f)?;
        crate::flow::say::fragment_text(frag).map(str::to_owned)
    }

    /// Resolve a prompt by name in a flow (for dynamic `$var` prompts).
    pub fn prompt_in_flow(&self, flow: FlowIdx, name: &str) -> Option<PromptIdx> {
        self.prompts
            .iter()
            .position(|p| p.flow == flow && p.name == name)
            .map(|i| PromptIdx(i as u32))
    }
}

/// Node described with names instead of indices, to compare nodes across two sets.
fn node_signature(set: &FlowSet, node: &Node) -> String {
    let raw = format!("{:?}", node.kind);
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw.as_str();
    loop {
        let next = ["NodeIdx(", "PromptIdx(", "FlowIdx("]
            .iter()
            .filter_map(|pat| rest.find(pat).map(|p| (p, *pat)))
            .min_by_key(|(p, _)| *p);
        let Some((pos, pat)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..pos]);
        let after = &rest[pos + pat.len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let n: u32 = after[..digits].parse().unwrap_or(u32::MAX);
        let name = match pat {
            "NodeIdx(" => set.node_name(NodeIdx(n)),
            "PromptIdx(" => set
                .prompt(PromptIdx(n))
                .map(|p| format!("{}={:?}", p.id, p.text))
                .unwrap_or_default(),
            _ => set
                .flow(FlowIdx(n))
                .map(|f| f.id.clone())
                .unwrap_or_default(),
        };
        out.push_str(&name);
        rest = after.get(digits + 1..).unwrap_or("");
    }
    out
}

/// What changed between two versions of a flow set, one line per change: `+ node
/// main.x`, `- node main.y`, `~ node main.menu`, `~ prompt fr/main/bienvenue`, and the
/// same for flows. Empty when nothing changed.
pub fn diff_summary(old: &FlowSet, new: &FlowSet) -> Vec<String> {
    let mut out = Vec::new();
    let flows = |s: &FlowSet| {
        s.flows()
            .iter()
            .map(|f| f.id.clone())
            .collect::<BTreeSet<_>>()
    };
    let (fo, fnew) = (flows(old), flows(new));
    out.extend(fnew.difference(&fo).map(|f| format!("+ flow {f}")));
    out.extend(fo.difference(&fnew).map(|f| format!("- flow {f}")));
    let nodes = |s: &FlowSet| {
        s.nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| (s.node_name(NodeIdx(i as u32)), node_signature(s, n)))
            .collect::<BTreeMap<_, _>>()
    };
    let (no, nn) = (nodes(old), nodes(new));
    for (name, sig) in &nn {
        match no.get(name) {
            None => out.push(format!("+ node {name}")),
            Some(o) if o != sig => out.push(format!("~ node {name}")),
            Some(_) => {}
        }
    }
    out.extend(
        no.keys()
            .filter(|k| !nn.contains_key(*k))
            .map(|k| format!("- node {k}")),
    );
    let prompts = |s: &FlowSet| {
        s.prompts()
            .iter()
            .map(|p| (p.id.clone(), p.text.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (po, pn) = (prompts(old), prompts(new));
    for (id, text) in &pn {
        match po.get(id) {
            None => out.push(format!("+ prompt {id}")),
            Some(t) if t != text => out.push(format!("~ prompt {id}")),
            Some(_) => {}
        }
    }
    out.extend(
        po.keys()
            .filter(|k| !pn.contains_key(*k))
            .map(|k| format!("- prompt {k}")),
    );
    if out.is_empty() && old.version() != new.version() {
        out.push("~ calendar, tables or formatting".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn named_patterns() {
        let cp = DigitPattern::parse("postal_code").unwrap();
        assert!(cp.matches("91012"));
        assert!(cp.matches("01000"));
        assert!(!cp.matches("9101"));
        assert!(!cp.matches("910123"));
        assert_eq!(cp.length_range(), (5, 5));
        let tax = DigitPattern::parse("tax_number").unwrap();
        assert!(tax.matches("1234567890123"));
        assert!(!tax.matches("123456789012"));
    }

    #[test]
    fn custom_patterns() {
        let p = DigitPattern::parse("0[1-9]\\d{8}").unwrap();
        assert!(p.matches("0160000000"));
        assert!(!p.matches("0060000000"));
        let p = DigitPattern::parse("9[1-5]?[0-9]{2,3}").unwrap();
        assert!(p.matches("9100"));
        assert!(p.matches("912"));
        assert!(!p.matches("9"));
        assert!(DigitPattern::parse("[0-").is_err());
        assert!(DigitPattern::parse("a").is_err());
        assert!(DigitPattern::parse("1{3,1}").is_err());
        assert!(DigitPattern::parse("").is_err());
    }

    proptest! {
        #[test]
        fn pattern_parse_never_panics(s in "[0-9\\[\\]{},.?*+d\\\\-]{0,12}") {
            if let Ok(p) = DigitPattern::parse(&s) {
                let _ = p.matches("0123456789");
            }
        }

        #[test]
        fn exact_digits_match_themselves(s in "[0-9]{1,10}") {
            let p = DigitPattern::parse(&s).unwrap();
            prop_assert!(p.matches(&s));
            let longer = format!("{s}0");
            prop_assert!(!p.matches(&longer));
        }
    }

    #[test]
    fn diff_names_what_changed() {
        let a = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: a
prompts: { p: "Bonjour.", q: "Au revoir." }
nodes:
  a:
    play: { prompts: [p], next: b }
  b:
    hangup: { prompts: [q] }
"#;
        let b = a
            .replace("Au revoir.", "Au revoir et merci.")
            .replace("next: b }", "next: c }\n  c:\n    goto: b");
        let old = FlowSet::from_texts(&[("main", a)]).unwrap();
        let new = FlowSet::from_texts(&[("main", &b)]).unwrap();
        let d = diff_summary(&old, &new);
        assert!(d.contains(&"~ node main.a".to_owned()), "{d:?}");
        assert!(d.contains(&"+ node main.c".to_owned()), "{d:?}");
        assert!(d.contains(&"~ prompt fr/main/q".to_owned()), "{d:?}");
        // The hang-up plays a changed prompt: its node changed too.
        assert!(d.contains(&"~ node main.b".to_owned()), "{d:?}");
        assert!(diff_summary(&old, &old).is_empty());
        assert_ne!(old.version(), new.version());
    }
}
