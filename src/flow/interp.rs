//! The per-call flow interpreter, sans-IO: it decides what the caller hears and where the
//! call goes, from keys, end-of-prompt notices, timeouts and queue answers.
//!
//! Inputs ([`Input`]) carry `now`; outputs ([`Output`]) are drained with
//! [`FlowRun::poll_output`]; [`FlowRun::poll_timeout`] is the next deadline. Wall-clock time
//! (for opening hours) is the `wall` given at the start, advanced by the virtual clock.
//!
//! A run holds the `Arc<FlowSet>` it started with: a hot reload changes new calls only, so
//! an edit never breaks a call in progress.
//!
//! Global keys work from every menu and message: the agent key (`0`) leads to the flow's
//! `agent:` route, `*` repeats the current node, `#` goes back to the previous menu. In a
//! `collect` node digits are data: `0` is a digit there, `*` restarts the entry and the
//! terminator (`#`) ends it; a silent caller still reaches the no-input route.
//!
//! ```
//! use std::{sync::Arc, time::{Duration, Instant}};
//! use guichet::flow::{interp::*, ir::FlowSet};
//! let yaml = r#"
//! id: main
//! language: fr
//! reviewed: 2026-12-05
//! entry: bye
//! prompts: { bye: "Au revoir." }
//! nodes:
//!   bye:
//!     hangup: { prompts: [bye] }
//! "#;
//! let set = Arc::new(FlowSet::from_texts(&[("main", yaml)]).unwrap());
//! let wall = jiff::civil::date(2026, 12, 7).at(10, 0, 0, 0).in_tz("Europe/Paris").unwrap();
//! let t0 = Instant::now(); // in real code: the engine's clock
//! let mut run = FlowRun::new(set, "main", CallerInfo::default(), t0, wall).unwrap();
//! let mut outs = Vec::new();
//! while let Some(o) = run.poll_output() { outs.push(o); }
//! assert!(outs.iter().any(|o| matches!(o, Output::Play { .. })));
//! run.handle_input(Input::PromptFinished(t0 + Duration::from_secs(1)));
//! assert!(std::iter::from_fn(|| run.poll_output()).any(|o| o == Output::Hangup));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flow::calendar::Status;
use crate::flow::ir::*;
use crate::ids::QueueId;

/// Most silent nodes (set, goto, switch...) run in a row before the run gives up.
const MAX_SILENT_STEPS: u32 = 256;

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    #[error("no flow or node `{0}`")]
    UnknownEntry(String),
}

/// Who is calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerInfo {
    /// The caller's number as presented (`+33160...` or `0160...`), if any.
    pub number: Option<String>,
    /// How many times this number called recently (as the engine counts).
    pub recent_calls: u32,
}

/// The answer to an `Enqueue`, `Callback`, `Voicemail` or `Transfer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueResult {
    /// A person answered (queue, transfer): the flow's work is done.
    Connected,
    /// A callback was registered or a message recorded.
    Done,
    /// No adviser available (the only answer until the agent queue exists): fallback route.
    Unavailable,
}

/// What happens to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Digit(Instant, char),
    PromptFinished(Instant),
    Timeout(Instant),
    QueueResult(Instant, QueueResult),
    /// The caller hung up.
    Hangup,
}

/// What the run asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Play these prompts in order, then send `PromptFinished`. With `interruptible`, a
    /// key may cut them short (the run then sends `StopPlayback`).
    Play {
        prompts: Vec<PromptId>,
        interruptible: bool,
    },
    StopPlayback,
    /// Digits are data from now on (buffer DTMF): up to `max_digits`, ended by `terminator`.
    StartCollect {
        max_digits: u32,
        terminator: Option<char>,
    },
    Enqueue {
        queue: QueueId,
        priority: u8,
    },
    Callback {
        queue: Option<QueueId>,
        number: Option<String>,
    },
    Voicemail {
        mailbox: String,
    },
    Transfer {
        uri: String,
    },
    Hangup,
    Event(FlowEvent),
}

/// Things that happened, for logs and call records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowEvent {
    NodeEntered {
        flow: String,
        node: String,
        version: String,
    },
    VariableSet {
        name: String,
        value: String,
    },
    /// The run is over.
    Finished(EndReason),
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A person answered.
    Connected,
    /// The flow hung up (goodbye message).
    FlowHangup,
    /// The caller hung up.
    CallerHangup,
    /// Too many silent steps in a row (a loop the checker should have caught).
    Stuck,
}

/// What comes after the prompts being played.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    Goto(NodeIdx),
    MenuWait,
    CollectWait,
    ConfirmWait { digits: String },
    Store { digits: String },
    Action(Output),
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Playing { after: After, interruptible: bool },
    MenuWait { deadline: Instant },
    CollectWait { deadline: Instant, digits: String },
    ConfirmWait { deadline: Instant, digits: String },
    WaitingResult,
    Done,
}

/// One call's run through the flows.
#[derive(Debug)]
pub struct FlowRun {
    set: Arc<FlowSet>,
    caller: CallerInfo,
    start: Instant,
    wall: jiff::ZonedDateTime,
    current: NodeIdx,
    state: State,
    vars: BTreeMap<String, String>,
    no_input: u32,
    invalid: u32,
    menus: Vec<NodeIdx>,
    calls: Vec<NodeIdx>,
    out: VecDeque<Output>,
}

impl FlowRun {
    /// Start at `entry` (a flow id such as `main`, or `flow.node`).
    pub fn new(
        set: Arc<FlowSet>,
        entry: &str,
        caller: CallerInfo,
        now: Instant,
        wall: jiff::ZonedDateTime,
    ) -> Result<FlowRun, InterpError> {
        let node = set
            .entry(entry)
            .ok_or_else(|| InterpError::UnknownEntry(entry.to_owned()))?;
        let mut vars = BTreeMap::new();
        if let Some(n) = &caller.number {
            vars.insert("caller".to_owned(), n.clone());
        }
        let mut run = FlowRun {
            set,
            caller,
            start: now,
            wall,
            current: node,
            state: State::Done,
            vars,
            no_input: 0,
            invalid: 0,
            menus: Vec::new(),
            calls: Vec::new(),
            out: VecDeque::new(),
        };
        run.enter(node, now);
        Ok(run)
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to send `Timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::MenuWait { deadline }
            | State::CollectWait { deadline, .. }
            | State::ConfirmWait { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// Whether the run has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The node the caller is at.
    pub fn current_node(&self) -> NodeIdx {
        self.current
    }

    /// A variable's value.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Feed one input.
    pub fn handle_input(&mut self, input: Input) {
        if self.state == State::Done {
            return;
        }
        match input {
            Input::Hangup => self.finish(EndReason::CallerHangup),
            Input::PromptFinished(now) => {
                if let State::Playing { after, .. } = &self.state {
                    let after = after.clone();
                    self.after_play(after, now);
                }
            }
            Input::Timeout(now) => self.timeout(now),
            Input::Digit(now, key) => self.digit(now, key),
            Input::QueueResult(now, result) => {
                if self.state == State::WaitingResult {
                    self.queue_result(now, result);
                }
            }
        }
    }

    fn node(&self) -> Option<&Node> {
        self.set.node(self.current)
    }

    fn flow(&self) -> Option<&Flow> {
        self.node().and_then(|n| self.set.flow(n.flow))
    }

    fn keys(&self) -> Keys {
        self.flow().map(|f| f.keys).unwrap_or_default()
    }

    fn finish(&mut self, reason: EndReason) {
        if self.state != State::Done {
            self.state = State::Done;
            self.out
                .push_back(Output::Event(FlowEvent::Finished(reason)));
        }
    }

    fn wall_at(&self, now: Instant) -> jiff::ZonedDateTime {
        self.wall
            .saturating_add(now.saturating_duration_since(self.start))
    }

    fn resolve(&self, refs: &[PromptRef]) -> Vec<PromptId> {
        refs.iter()
            .filter_map(|r| match r {
                PromptRef::Static(i) => self.set.prompt(*i).map(|p| p.id.clone()),
                PromptRef::Var { flow, var } => {
                    let name = self.vars.get(var)?;
                    self.set
                        .prompt_in_flow(*flow, name)
                        .and_then(|i| self.set.prompt(i))
                        .map(|p| p.id.clone())
                }
            })
            .collect()
    }

    fn fragments(&self, ids: Vec<String>) -> Vec<PromptId> {
        let lang = self
            .flow()
            .map(|f| f.language.clone())
            .unwrap_or_else(|| "fr".into());
        ids.into_iter()
            .map(|f| PromptId(format!("{lang}/{f}")))
            .collect()
    }

    /// Play prompts then continue with `after` (at once if there is nothing to play).
    fn play(&mut self, prompts: Vec<PromptId>, interruptible: bool, after: After, now: Instant) {
        if prompts.is_empty() {
            self.after_play(after, now);
            return;
        }
        self.out.push_back(Output::Play {
            prompts,
            interruptible,
        });
        self.state = State::Playing {
            after,
            interruptible,
        };
    }

    fn enter(&mut self, first: NodeIdx, now: Instant) {
        let mut idx = first;
        for _ in 0..MAX_SILENT_STEPS {
            let Some(node) = self.set.node(idx).cloned() else {
                self.finish(EndReason::Stuck);
                return;
            };
            if !matches!(node.kind, NodeKind::Menu(_) | NodeKind::Collect(_)) || idx != self.current
            {
                self.no_input = 0;
                self.invalid = 0;
            }
            self.current = idx;
            let flow = self
                .set
                .flow(node.flow)
                .map(|f| f.id.clone())
                .unwrap_or_default();
            self.out.push_back(Output::Event(FlowEvent::NodeEntered {
                flow,
                node: node.name.clone(),
                version: self.set.version().to_owned(),
            }));
            match self.step(&node.kind, now) {
                Some(next) => idx = next,
                None => return,
            }
        }
        self.out.push_back(Output::Hangup);
        self.finish(EndReason::Stuck);
    }

    /// Run a node; `Some(next)` for nodes that pass on at once.
    fn step(&mut self, kind: &NodeKind, now: Instant) -> Option<NodeIdx> {
        match kind {
            NodeKind::Play {
                prompts,
                next,
                interruptible,
            } => {
                let p = self.resolve(prompts);
                self.play(p, *interruptible, After::Goto(*next), now);
                None
            }
            NodeKind::Menu(m) => {
                if self.menus.last() != Some(&self.current) {
                    self.menus.push(self.current);
                }
                let p = self.resolve(&m.all_prompts());
                self.play(p, true, After::MenuWait, now);
                None
            }
            NodeKind::Collect(c) => {
                self.out.push_back(Output::StartCollect {
                    max_digits: c.max,
                    terminator: c.terminator,
                });
                let p = self.resolve(&c.prompts);
                self.play(p, true, After::CollectWait, now);
                None
            }
            NodeKind::Say {
                value,
                as_,
                before,
                after,
                next,
            } => {
                let v = match value {
                    Value::Literal(s) => s.clone(),
                    Value::Var(name) => self.vars.get(name).cloned().unwrap_or_default(),
                };
                let mut p = self.resolve(before);
                p.extend(self.fragments(say_value(*as_, &v)));
                p.extend(self.resolve(after));
                self.play(p, true, After::Goto(*next), now);
                None
            }
            NodeKind::Switch { cases, default } => {
                let wall = self.wall_at(now);
                Some(
                    cases
                        .iter()
                        .find(|(c, _)| self.holds(c, &wall))
                        .map(|(_, n)| *n)
                        .unwrap_or(*default),
                )
            }
            NodeKind::Set { values, next } => {
                for (k, v) in values {
                    self.set_var(k, v.clone());
                }
                Some(*next)
            }
            NodeKind::Lookup {
                table,
                key,
                prefix,
                into,
                found,
                not_found,
            } => {
                let k = match key {
                    Value::Literal(s) => s.clone(),
                    Value::Var(name) => self.vars.get(name).cloned().unwrap_or_default(),
                };
                let row = self.set.table(table).and_then(|t| {
                    let rows = if *prefix {
                        t.lookup_prefix(&k)
                    } else {
                        t.lookup(&k)
                    };
                    rows.first().map(|r| (*r).clone())
                });
                match row {
                    Some(row) if !k.is_empty() => {
                        for (col, val) in row {
                            self.set_var(&format!("{into}.{col}"), val);
                        }
                        Some(*found)
                    }
                    _ => Some(*not_found),
                }
            }
            NodeKind::Queue {
                name,
                priority,
                prompts,
                ..
            } => {
                let p = self.resolve(prompts);
                let action = Output::Enqueue {
                    queue: QueueId(name.clone()),
                    priority: *priority,
                };
                self.play(p, false, After::Action(action), now);
                None
            }
            NodeKind::Callback { queue, prompts, .. } => {
                let p = self.resolve(prompts);
                let action = Output::Callback {
                    queue: queue.clone().map(QueueId),
                    number: self.caller.number.clone(),
                };
                self.play(p, false, After::Action(action), now);
                None
            }
            NodeKind::Voicemail {
                mailbox, prompts, ..
            } => {
                let p = self.resolve(prompts);
                let action = Output::Voicemail {
                    mailbox: mailbox.clone(),
                };
                self.play(p, false, After::Action(action), now);
                None
            }
            NodeKind::Transfer { uri, prompts, .. } => {
                let p = self.resolve(prompts);
                let action = Output::Transfer { uri: uri.clone() };
                self.play(p, false, After::Action(action), now);
                None
            }
            NodeKind::Goto(n) => Some(*n),
            NodeKind::Call { node, next } => {
                self.calls.push(*next);
                Some(*node)
            }
            NodeKind::Return => match self.calls.pop() {
                Some(n) => Some(n),
                None => match self.flow().and_then(|f| f.agent) {
                    Some(a) => Some(a),
                    None => {
                        self.out.push_back(Output::Hangup);
                        self.finish(EndReason::FlowHangup);
                        None
                    }
                },
            },
            NodeKind::Hangup { prompts } => {
                let p = self.resolve(prompts);
                self.play(p, false, After::Hangup, now);
                None
            }
        }
    }

    fn set_var(&mut self, name: &str, value: String) {
        self.out.push_back(Output::Event(FlowEvent::VariableSet {
            name: name.to_owned(),
            value: value.clone(),
        }));
        self.vars.insert(name.to_owned(), value);
    }

    fn holds(&self, c: &Condition, wall: &jiff::ZonedDateTime) -> bool {
        let cal = self.set.calendar();
        match c {
            Condition::Open(s) => matches!(cal.status(s, wall), Ok(Status::Open { .. })),
            Condition::Closed(s) => !matches!(cal.status(s, wall), Ok(Status::Open { .. })),
            Condition::Dates { from, to } => {
                let d = wall.date();
                *from <= d && d <= *to
            }
            Condition::CallerPrefix(prefixes) => {
                let Some(n) = &self.caller.number else {
                    return false;
                };
                let national = n.strip_prefix("+33").map(|r| format!("0{r}"));
                prefixes.iter().any(|p| {
                    n.starts_with(p.as_str())
                        || national
                            .as_deref()
                            .is_some_and(|m| m.starts_with(p.as_str()))
                })
            }
            Condition::VarEquals(k, v) => self.vars.get(k) == Some(v),
            Condition::VarPrefix(k, p) => {
                self.vars.get(k).is_some_and(|x| x.starts_with(p.as_str()))
            }
            Condition::VarSet(k, set) => self.vars.contains_key(k) == *set,
            Condition::CallsAtLeast(n) => self.caller.recent_calls >= *n,
            Condition::All(v) => v.iter().all(|c| self.holds(c, wall)),
            Condition::Any(v) => v.iter().any(|c| self.holds(c, wall)),
        }
    }

    fn after_play(&mut self, after: After, now: Instant) {
        let Some(kind) = self.node().map(|n| n.kind.clone()) else {
            self.finish(EndReason::Stuck);
            return;
        };
        match after {
            After::Goto(n) => self.enter(n, now),
            After::MenuWait => {
                let t = match &kind {
                    NodeKind::Menu(m) => m.timeout,
                    _ => Duration::from_secs(6),
                };
                self.state = State::MenuWait { deadline: now + t };
            }
            After::CollectWait => {
                let t = match &kind {
                    NodeKind::Collect(c) => c.timeout,
                    _ => Duration::from_secs(6),
                };
                self.state = State::CollectWait {
                    deadline: now + t,
                    digits: String::new(),
                };
            }
            After::ConfirmWait { digits } => {
                let t = match &kind {
                    NodeKind::Collect(c) => c.timeout,
                    _ => Duration::from_secs(6),
                };
                self.state = State::ConfirmWait {
                    deadline: now + t,
                    digits,
                };
            }
            After::Store { digits } => self.store(digits, now),
            After::Action(action) => {
                self.out.push_back(action);
                self.state = State::WaitingResult;
            }
            After::Hangup => {
                self.out.push_back(Output::Hangup);
                self.finish(EndReason::FlowHangup);
            }
        }
    }

    fn store(&mut self, digits: String, now: Instant) {
        if let Some(NodeKind::Collect(c)) = self.node().map(|n| n.kind.clone()) {
            self.set_var(&c.into, digits);
            self.enter(c.next, now);
        }
    }

    fn queue_result(&mut self, now: Instant, result: QueueResult) {
        let Some(kind) = self.node().map(|n| n.kind.clone()) else {
            return;
        };
        match (result, &kind) {
            (QueueResult::Connected, _) => self.finish(EndReason::Connected),
            (
                QueueResult::Done,
                NodeKind::Callback { next, .. } | NodeKind::Voicemail { next, .. },
            ) => self.enter(*next, now),
            (QueueResult::Done, _) => self.finish(EndReason::Connected),
            (
                QueueResult::Unavailable,
                NodeKind::Queue { fallback, .. }
                | NodeKind::Transfer { fallback, .. }
                | NodeKind::Callback { fallback, .. }
                | NodeKind::Voicemail { fallback, .. },
            ) => self.enter(*fallback, now),
            (QueueResult::Unavailable, _) => {}
        }
    }

    /// Replay the current node's prompts with an optional re-prompt first.
    fn reprompt(&mut self, extra: Option<PromptRef>, now: Instant) {
        let Some(kind) = self.node().map(|n| n.kind.clone()) else {
            return;
        };
        let mut refs: Vec<PromptRef> = extra.into_iter().collect();
        let after = match &kind {
            NodeKind::Menu(m) => {
                refs.extend(m.all_prompts());
                After::MenuWait
            }
            NodeKind::Collect(c) => {
                refs.extend(c.prompts.iter().cloned());
                After::CollectWait
            }
            _ => return self.enter(self.current, now),
        };
        let p = self.resolve(&refs);
        self.play(p, true, after, now);
    }

    /// A failed attempt (no input or invalid): re-prompt, or route after the last retry.
    fn failed(&mut self, no_input: bool, now: Instant) {
        let Some(kind) = self.node().map(|n| n.kind.clone()) else {
            return;
        };
        let (retries, ni, inv) = match &kind {
            NodeKind::Menu(m) => (m.retries, m.no_input.clone(), m.invalid.clone()),
            NodeKind::Collect(c) => (c.retries, c.no_input.clone(), c.invalid.clone()),
            _ => return,
        };
        let (count, retry) = if no_input {
            self.no_input += 1;
            (self.no_input, &ni)
        } else {
            self.invalid += 1;
            (self.invalid, &inv)
        };
        if count > retries {
            let route = retry
                .then
                .or(ni.then)
                .or_else(|| self.flow().and_then(|f| f.agent));
            match route {
                Some(r) => self.enter(r, now),
                None => {
                    self.out.push_back(Output::Hangup);
                    self.finish(EndReason::FlowHangup);
                }
            }
        } else {
            let extra = retry.prompt_for(count - 1).cloned();
            self.reprompt(extra, now);
        }
    }

    fn timeout(&mut self, now: Instant) {
        match &self.state {
            State::MenuWait { deadline } if now >= *deadline => self.failed(true, now),
            State::CollectWait { deadline, digits } if now >= *deadline => {
                if digits.is_empty() {
                    self.failed(true, now);
                } else {
                    let d = digits.clone();
                    self.collected(d, now);
                }
            }
            State::ConfirmWait { deadline, digits } if now >= *deadline => {
                let digits = digits.clone();
                self.no_input += 1;
                let retries = match self.node().map(|n| &n.kind) {
                    Some(NodeKind::Collect(c)) => c.retries,
                    _ => 0,
                };
                if self.no_input > retries {
                    self.failed(true, now);
                } else {
                    self.ask_confirm(digits, false, now);
                }
            }
            _ => {}
        }
    }

    fn ask_confirm(&mut self, digits: String, with_value: bool, now: Instant) {
        let Some(NodeKind::Collect(c)) = self.node().map(|n| n.kind.clone()) else {
            return;
        };
        let mut p = Vec::new();
        if let Some(cf) = &c.confirm {
            if with_value {
                p.extend(self.resolve(&cf.before));
                p.extend(self.fragments(crate::flow::say::digits(&digits)));
            }
            p.extend(self.resolve(&cf.question));
        }
        self.play(p, true, After::ConfirmWait { digits }, now);
    }

    /// Digits entered: validate, then confirm, read back or store.
    fn collected(&mut self, digits: String, now: Instant) {
        let Some(NodeKind::Collect(c)) = self.node().map(|n| n.kind.clone()) else {
            return;
        };
        let len = digits.chars().count() as u32;
        let ok =
            len >= c.min && len <= c.max && c.pattern.as_ref().is_none_or(|p| p.matches(&digits));
        if !ok {
            self.failed(false, now);
        } else if c.confirm.is_some() {
            self.ask_confirm(digits, true, now);
        } else if c.read_back {
            let p = self.fragments(crate::flow::say::digits(&digits));
            self.play(p, true, After::Store { digits }, now);
        } else {
            self.store(digits, now);
        }
    }

    fn go_agent(&mut self, now: Instant) {
        match self.flow().and_then(|f| f.agent) {
            Some(a) => self.enter(a, now),
            None => self.reprompt(None, now),
        }
    }

    fn go_back(&mut self, now: Instant) {
        if self.menus.last() == Some(&self.current) {
            self.menus.pop();
        }
        match self.menus.pop() {
            Some(m) => self.enter(m, now),
            None => self.enter(self.current, now),
        }
    }

    fn digit(&mut self, now: Instant, key: char) {
        let keys = self.keys();
        let (waiting, playing_after) = match &self.state {
            State::Playing {
                after,
                interruptible: true,
            } => (false, Some(after.clone())),
            State::Playing { .. } | State::WaitingResult | State::Done => return,
            _ => (true, None),
        };
        let in_collect = matches!(
            (&self.state, &playing_after),
            (State::CollectWait { .. }, _) | (_, Some(After::CollectWait))
        );
        let in_confirm = matches!(
            (&self.state, &playing_after),
            (State::ConfirmWait { .. }, _) | (_, Some(After::ConfirmWait { .. }))
        );
        let in_menu = matches!(
            (&self.state, &playing_after),
            (State::MenuWait { .. }, _) | (_, Some(After::MenuWait))
        );
        let stop = |s: &mut Self| {
            if !waiting {
                s.out.push_back(Output::StopPlayback);
            }
        };
        if in_collect {
            let Some(NodeKind::Collect(c)) = self.node().map(|n| n.kind.clone()) else {
                return;
            };
            stop(self);
            let mut digits = match &self.state {
                State::CollectWait { digits, .. } => digits.clone(),
                _ => String::new(),
            };
            if key == keys.repeat {
                return self.reprompt(None, now);
            }
            if Some(key) == c.terminator {
                return self.collected(digits, now);
            }
            if !key.is_ascii_digit() {
                return self.failed(false, now);
            }
            digits.push(key);
            if digits.chars().count() as u32 >= c.max {
                return self.collected(digits, now);
            }
            self.state = State::CollectWait {
                deadline: now + c.inter_digit_timeout,
                digits,
            };
            return;
        }
        if key == keys.agent {
            stop(self);
            return self.go_agent(now);
        }
        if key == keys.repeat {
            stop(self);
            return match playing_after.or(match &self.state {
                State::ConfirmWait { digits, .. } => Some(After::ConfirmWait {
                    digits: digits.clone(),
                }),
                _ => None,
            }) {
                Some(After::ConfirmWait { digits }) => self.ask_confirm(digits, true, now),
                _ => self.enter(self.current, now),
            };
        }
        if key == keys.back {
            stop(self);
            return self.go_back(now);
        }
        if in_confirm {
            let Some(NodeKind::Collect(c)) = self.node().map(|n| n.kind.clone()) else {
                return;
            };
            let Some(cf) = &c.confirm else { return };
            let digits = match (&self.state, &playing_after) {
                (State::ConfirmWait { digits, .. }, _) => digits.clone(),
                (_, Some(After::ConfirmWait { digits })) => digits.clone(),
                _ => String::new(),
            };
            if key == cf.yes {
                stop(self);
                self.store(digits, now);
            } else if key == cf.no {
                stop(self);
                self.enter(self.current, now);
            }
            return;
        }
        if in_menu {
            let Some(NodeKind::Menu(m)) = self.node().map(|n| n.kind.clone()) else {
                return;
            };
            stop(self);
            match m.options.iter().find(|o| o.key == key) {
                Some(o) => self.enter(o.goto, now),
                None => self.failed(false, now),
            }
        }
        // Other keys during a plain message are ignored.
    }
}

/// Fragment ids for a value said `as_`; an unparsable value is said digit by digit.
pub fn say_value(as_: SayAs, v: &str) -> Vec<String> {
    use crate::flow::say;
    match as_ {
        SayAs::Digits => say::digits(v),
        SayAs::Phone => say::phone_number(v),
        SayAs::Number => v
            .trim()
            .parse::<i64>()
            .map(say::number)
            .unwrap_or_else(|_| say::digits(v)),
        SayAs::Date => v
            .trim()
            .parse::<jiff::civil::Date>()
            .map(say::date)
            .unwrap_or_else(|_| say::digits(v)),
        SayAs::Time => v
            .trim()
            .parse::<jiff::civil::Time>()
            .map(say::time)
            .unwrap_or_else(|_| say::digits(v)),
        SayAs::Duration => crate::flow::load::parse_duration(v)
            .map(say::duration)
            .unwrap_or_else(|| say::digits(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: accueil
agent: conseiller
queues: [accueil]
prompts:
  bienvenue: "Bienvenue."
  impots: "Pour les impôts, tapez 1."
  cp: "Pour votre code postal, tapez-le."
  conseiller: "Pour parler à un conseiller, tapez 0."
  silence: "Je n'ai rien entendu."
  erreur: "Ce choix n'existe pas."
  attente: "Un conseiller va vous répondre."
  ferme: "Rappelez-nous demain."
  merci: "Merci."
  question: "Si c'est juste, tapez 1. Sinon, tapez 2."
nodes:
  accueil:
    play: { prompts: [bienvenue], next: menu }
  menu:
    menu:
      options:
        "1": { prompt: impots, goto: sous }
        "2": { prompt: cp, goto: code }
      footer: [conseiller]
      no_input: { prompts: [silence], then: conseiller }
      invalid: { prompts: [erreur] }
  sous:
    menu:
      options:
        "1": { prompt: impots, goto: fin }
      footer: [conseiller]
      no_input: { then: conseiller }
  code:
    collect:
      prompts: [cp]
      into: cp
      pattern: postal_code
      confirm: { question: [question] }
      no_input: { then: conseiller }
      next: fin
  conseiller:
    queue: { name: accueil, prompts: [attente], fallback: ferme }
  ferme:
    hangup: { prompts: [ferme] }
  fin:
    hangup: { prompts: [merci] }
"#;

    fn start() -> (FlowRun, Instant) {
        let set = Arc::new(FlowSet::from_texts(&[("main", FLOW)]).unwrap());
        let wall = jiff::civil::date(2026, 12, 7)
            .at(10, 0, 0, 0)
            .in_tz("Europe/Paris")
            .unwrap();
        // Tests only: a fixed origin for virtual time.
        let t0 = Instant::now();
        (
            FlowRun::new(set, "main", CallerInfo::default(), t0, wall).unwrap(),
            t0,
        )
    }

    fn drain(run: &mut FlowRun) -> Vec<Output> {
        std::iter::from_fn(|| run.poll_output())
            .filter(|o| {
                !matches!(
                    o,
                    Output::Event(FlowEvent::NodeEntered { .. } | FlowEvent::VariableSet { .. })
                )
            })
            .collect()
    }

    fn played(outs: &[Output]) -> Vec<String> {
        outs.iter()
            .flat_map(|o| match o {
                Output::Play { prompts, .. } => prompts.iter().map(|p| p.0.clone()).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn silence_escalates_then_reaches_the_queue_then_fallback() {
        let (mut run, t0) = start();
        assert_eq!(played(&drain(&mut run)), vec!["fr/main/bienvenue"]);
        let mut t = t0 + Duration::from_secs(1);
        run.handle_input(Input::PromptFinished(t));
        assert_eq!(played(&drain(&mut run)).len(), 3);
        t += Duration::from_secs(5);
        run.handle_input(Input::PromptFinished(t));
        assert_eq!(run.poll_timeout(), Some(t + Duration::from_secs(6)));
        // An early timeout is harmless.
        run.handle_input(Input::Timeout(t + Duration::from_secs(1)));
        assert!(drain(&mut run).is_empty());
        for _ in 0..2 {
            t += Duration::from_secs(6);
            run.handle_input(Input::Timeout(t));
            let p = played(&drain(&mut run));
            assert_eq!(p.first().map(String::as_str), Some("fr/main/silence"));
            run.handle_input(Input::PromptFinished(t));
        }
        t += Duration::from_secs(6);
        run.handle_input(Input::Timeout(t));
        assert_eq!(played(&drain(&mut run)), vec!["fr/main/attente"]);
        run.handle_input(Input::PromptFinished(t));
        let outs = drain(&mut run);
        assert_eq!(
            outs,
            vec![Output::Enqueue {
                queue: QueueId("accueil".into()),
                priority: 0
            }]
        );
        run.handle_input(Input::QueueResult(t, QueueResult::Unavailable));
        assert_eq!(played(&drain(&mut run)), vec!["fr/main/ferme"]);
        run.handle_input(Input::PromptFinished(t));
        let outs = drain(&mut run);
        assert!(outs.contains(&Output::Hangup));
        assert!(run.is_done());
    }

    #[test]
    fn agent_key_interrupts_and_back_returns() {
        let (mut run, t0) = start();
        drain(&mut run);
        run.handle_input(Input::Digit(t0, '0'));
        let outs = drain(&mut run);
        assert_eq!(outs[0], Output::StopPlayback);
        assert_eq!(played(&outs), vec!["fr/main/attente"]);

        let (mut run, t0) = start();
        run.handle_input(Input::PromptFinished(t0));
        run.handle_input(Input::Digit(t0, '1'));
        assert_eq!(run.set.node_name(run.current_node()), "main.sous");
        run.handle_input(Input::Digit(t0, '#'));
        assert_eq!(run.set.node_name(run.current_node()), "main.menu");
        drain(&mut run);
        run.handle_input(Input::Digit(t0, '*'));
        assert_eq!(played(&drain(&mut run)).len(), 3);
    }

    #[test]
    fn invalid_keys_escalate() {
        let (mut run, t0) = start();
        run.handle_input(Input::PromptFinished(t0));
        drain(&mut run);
        run.handle_input(Input::PromptFinished(t0));
        for _ in 0..2 {
            run.handle_input(Input::Digit(t0, '7'));
            assert_eq!(played(&drain(&mut run))[0], "fr/main/erreur");
            run.handle_input(Input::PromptFinished(t0));
        }
        // Third invalid: the invalid route is absent, so the no-input route (queue) runs.
        run.handle_input(Input::Digit(t0, '7'));
        assert_eq!(played(&drain(&mut run)), vec!["fr/main/attente"]);
    }

    #[test]
    fn collect_validates_confirms_and_stores() {
        let (mut run, t0) = start();
        run.handle_input(Input::PromptFinished(t0));
        run.handle_input(Input::Digit(t0, '2'));
        let outs = drain(&mut run);
        assert!(outs.contains(&Output::StartCollect {
            max_digits: 5,
            terminator: Some('#')
        }));
        // Zero is a digit here, not the agent key; a short entry is invalid.
        for k in "910".chars() {
            run.handle_input(Input::Digit(t0, k));
        }
        run.handle_input(Input::Digit(t0, '#'));
        assert_eq!(run.set.node_name(run.current_node()), "main.code");
        assert!(played(&drain(&mut run)).contains(&"fr/main/cp".to_owned()));
        for k in "91012".chars() {
            run.handle_input(Input::Digit(t0, k));
        }
        assert!(played(&drain(&mut run)).contains(&"fr/main/question".to_owned()));
        run.handle_input(Input::Digit(t0, '1'));
        assert_eq!(run.var("cp"), Some("91012"));
        assert_eq!(run.set.node_name(run.current_node()), "main.fin");
    }

    #[test]
    fn caller_hangup_ends_the_run() {
        let (mut run, _) = start();
        run.handle_input(Input::Hangup);
        assert!(run.is_done());
        assert!(
            std::iter::from_fn(|| run.poll_output())
                .any(|o| o == Output::Event(FlowEvent::Finished(EndReason::CallerHangup)))
        );
    }
}
