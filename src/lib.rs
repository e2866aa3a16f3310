//! Guichet: a phone reception engine for public services.
//!
//! Layers, dependencies pointing one way (see ARCHITECTURE.md):
//!
//! ```text
//! engine  (sockets, tokio tasks, the clock, wiring)      <- the only async / IO layer
//!   |-> flow    (YAML menus -> typed IR, checker, interpreter, simulator)
//!   |-> media   (RTP/RTCP, G.711, prompts, pacing, DTMF, recording)
//!   |-> sip, sdp (messages, transactions, dialogs, offer/answer)
//!   `-> config, ids
//! ```
//!
//! Everything below `engine` is sans-IO: state machines take inputs stamped with
//! `now: Instant`, return outputs, and expose their next deadline.

pub mod cli;
pub mod config;
pub mod engine;
pub mod flow;
pub mod ids;
pub mod loadgen;
pub mod media;
pub mod sdp;
pub mod sip;
pub mod testcall;
