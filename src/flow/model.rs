//! The raw shape of a flow file, exactly as written in YAML: serde structs with source
//! locations ([`Spanned`]) on everything the loader may need to point at. Unknown fields
//! are errors (`deny_unknown_fields`). Nothing here is resolved or validated beyond types:
//! [`crate::flow::load`] compiles these into [`crate::flow::ir`].
//!
//! A node is a one-key map whose key is its kind:
//!
//! ```yaml
//! nodes:
//!   accueil:
//!     play: { prompts: [bienvenue], next: menu_principal }
//! ```
//!
//! ```
//! use guichet::flow::model::{RawFlow, RawNode};
//! let yaml = "id: main\nlanguage: fr\nreviewed: 2026-12-05\nentry: a\n\
//!             nodes:\n  a:\n    hangup: {}\n";
//! let flow: RawFlow = serde_saphyr::from_str(yaml).unwrap();
//! assert!(matches!(flow.nodes["a"].value, RawNode::Hangup(_)));
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
pub use serde_saphyr::Spanned;

/// A string with the place it was written.
pub type SpannedStr = Spanned<String>;

/// Top-level fields of a flow file, for "did you mean" and the JSON schema.
pub const FLOW_FIELDS: &[&str] = &[
    "id", "language", "reviewed", "entry", "agent", "defaults", "keys", "queues", "limits",
    "relax", "prompts", "nodes",
];

/// Node kinds, for "did you mean" and the JSON schema.
pub const NODE_KINDS: &[&str] = &[
    "play",
    "menu",
    "collect",
    "say",
    "switch",
    "set",
    "lookup",
    "queue",
    "callback",
    "voicemail",
    "transfer",
    "goto",
    "call",
    "return",
    "hangup",
];

/// One flow file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    /// Must equal the file name without `.yaml`.
    pub id: SpannedStr,
    /// `fr`.
    pub language: SpannedStr,
    /// Date the content was last checked against its sources: `2026-12-05`.
    pub reviewed: SpannedStr,
    /// The node a call entering this flow starts at.
    pub entry: SpannedStr,
    /// Where the agent key leads; inherited from `main` when absent.
    #[serde(default)]
    pub agent: Option<SpannedStr>,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub keys: RawKeys,
    /// Agent queues that `queue` nodes may name (until the queue module owns them).
    #[serde(default)]
    pub queues: Vec<SpannedStr>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Accessibility rules relaxed in this file, each with a reason.
    #[serde(default)]
    pub relax: Vec<RawRelax>,
    /// Prompt id -> spoken text.
    #[serde(default)]
    pub prompts: BTreeMap<String, SpannedStr>,
    pub nodes: BTreeMap<String, Spanned<RawNode>>,
}

/// Timeouts and retries used when a node does not say otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub no_input_timeout: Option<SpannedStr>,
    pub inter_digit_timeout: Option<SpannedStr>,
    pub retries: Option<Spanned<u32>>,
}

/// The global keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub agent: Option<SpannedStr>,
    pub repeat: Option<SpannedStr>,
    pub back: Option<SpannedStr>,
}

/// Limits enforced by the checker.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_seconds_to_human: Option<Spanned<u32>>,
}

/// `{ rule: max-options, reason: "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelax {
    pub rule: SpannedStr,
    pub reason: SpannedStr,
}

/// A node: a one-key map whose key is the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // parsed once per file; boxing would only add noise
pub enum RawNode {
    Play(RawPlay),
    Menu(RawMenu),
    Collect(RawCollect),
    Say(RawSay),
    Switch(RawSwitch),
    Set(RawSet),
    Lookup(RawLookup),
    Queue(RawQueue),
    Callback(RawCallback),
    Voicemail(RawVoicemail),
    Transfer(RawTransfer),
    Goto(SpannedStr),
    Call(RawCall),
    Return(RawEmpty),
    Hangup(RawHangup),
}

/// `return: {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlay {
    pub prompts: Vec<SpannedStr>,
    pub next: SpannedStr,
    /// Whether the global keys cut the message short (default true).
    #[serde(default)]
    pub interruptible: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMenu {
    /// Played before the options (may be empty).
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
    /// Key -> option, played in key order after `prompts`.
    pub options: BTreeMap<String, Spanned<RawOption>>,
    /// Played after the options: the offer of an adviser and of repetition.
    #[serde(default)]
    pub footer: Vec<SpannedStr>,
    #[serde(default)]
    pub no_input: Option<RawRetry>,
    #[serde(default)]
    pub invalid: Option<RawRetry>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
}

/// One menu option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOption {
    /// Its announcement: "Pour les impôts, tapez 1."
    pub prompt: Option<SpannedStr>,
    pub goto: SpannedStr,
}

/// Escalating re-prompts and the route after the last retry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Re-prompt number i plays `prompts[min(i, len - 1)]` before the menu again.
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
    /// Where the caller goes after the last retry.
    pub then: Option<SpannedStr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollect {
    pub prompts: Vec<SpannedStr>,
    /// Variable that receives the digits.
    pub into: SpannedStr,
    #[serde(default)]
    pub min: Option<Spanned<u32>>,
    #[serde(default)]
    pub max: Option<Spanned<u32>>,
    /// `postal_code`, `tax_number`, or a digit pattern like `[0-9]{5}`.
    #[serde(default)]
    pub pattern: Option<SpannedStr>,
    /// Ends the entry early (default `#`).
    #[serde(default)]
    pub terminator: Option<SpannedStr>,
    #[serde(default)]
    pub inter_digit_timeout: Option<SpannedStr>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    /// Say the digits back before going on.
    #[serde(default)]
    pub read_back: Option<bool>,
    #[serde(default)]
    pub confirm: Option<RawConfirm>,
    #[serde(default)]
    pub no_input: Option<RawRetry>,
    #[serde(default)]
    pub invalid: Option<RawRetry>,
    pub next: SpannedStr,
}

/// Read-back and confirmation of collected digits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfirm {
    /// Played before the digits: "Vous avez tapé".
    #[serde(default)]
    pub before: Vec<SpannedStr>,
    /// Played after the digits: "Si c'est juste, tapez 1. Sinon, tapez 2."
    pub question: Vec<SpannedStr>,
    #[serde(default)]
    pub yes: Option<SpannedStr>,
    #[serde(default)]
    pub no: Option<SpannedStr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSay {
    /// `$variable` or a literal.
    pub value: SpannedStr,
    /// `digits`, `number`, `date`, `time`, `duration`, `phone`.
    #[serde(rename = "as")]
    pub as_: SpannedStr,
    #[serde(default)]
    pub before: Vec<SpannedStr>,
    #[serde(default)]
    pub after: Vec<SpannedStr>,
    pub next: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitch {
    pub cases: Vec<Spanned<RawCase>>,
    pub default: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCase {
    #[serde(rename = "if")]
    pub condition: RawCondition,
    pub goto: SpannedStr,
}

/// Switch conditions; each is a one-key map.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawCondition {
    /// The calendar service is open now.
    Open(SpannedStr),
    /// The calendar service is closed now.
    Closed(SpannedStr),
    /// Today is within these dates (inclusive).
    Dates(RawDates),
    /// The caller's number starts with one of these.
    CallerPrefix(Vec<String>),
    /// A test on a variable.
    Var(RawVarTest),
    /// The caller called at least this many times before (recently, as the engine counts).
    CallsAtLeast(u32),
    /// All of these hold.
    All(Vec<RawCondition>),
    /// Any of these holds.
    Any(Vec<RawCondition>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDates {
    pub from: SpannedStr,
    pub to: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVarTest {
    pub name: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// true: the variable is set; false: it is not.
    #[serde(default)]
    pub set: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSet {
    pub values: BTreeMap<String, String>,
    pub next: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLookup {
    /// A table under `flows/data/`, by file name without extension.
    pub table: SpannedStr,
    /// `$variable` or a literal.
    pub key: SpannedStr,
    /// Fall back to the longest key prefix (a postal code to its département).
    #[serde(default)]
    pub prefix: Option<bool>,
    /// Columns of the first row go to `<into>.<column>`.
    pub into: SpannedStr,
    pub found: SpannedStr,
    pub not_found: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub name: SpannedStr,
    #[serde(default)]
    pub priority: Option<u8>,
    /// Played before queueing: "Un conseiller va vous répondre."
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
    /// Where the caller goes when no adviser is available.
    pub fallback: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallback {
    #[serde(default)]
    pub queue: Option<SpannedStr>,
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
    /// After the callback is registered.
    pub next: SpannedStr,
    pub fallback: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVoicemail {
    pub mailbox: SpannedStr,
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
    pub next: SpannedStr,
    pub fallback: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransfer {
    /// `sip:accueil@example.org`.
    pub uri: SpannedStr,
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
    pub fallback: SpannedStr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    /// The sub-menu to run; its `return` comes back to `next`.
    pub node: SpannedStr,
    pub next: SpannedStr,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHangup {
    /// Goodbye message.
    #[serde(default)]
    pub prompts: Vec<SpannedStr>,
}
