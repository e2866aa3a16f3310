//! Voice-menu flows: YAML to typed IR, checker, interpreter, simulator. Sans-IO (only
//! [`load`] reads files and [`cli`] talks to the terminal).
//!
//! - [`model`]: the raw YAML shape (serde structs with source locations).
//! - [`load`]: a directory -> [`ir::FlowSet`], or every problem as located
//!   [`diagnostic::Diagnostic`]s (with "did you mean").
//! - [`ir`]: the compiled flow set (indices, parsed durations and digit patterns),
//!   `version()` and `diff_summary` for hot reload.
//! - [`check`]: structural and accessibility rules, and the time-to-a-person report.
//! - [`timing`]: prompt lengths from WAV headers or estimated from text.
//! - [`interp`]: the per-call interpreter ([`interp::FlowRun`]).
//! - [`simulate`], [`testing`]: virtual-time calls, transcripts, flow tests.
//! - [`graph`], [`schema`], [`cli`]: Mermaid/dot drawings, JSON Schema, operator commands.
//! - [`calendar`]: opening hours, closures, French public holidays.
//! - [`say`]: numbers, dates and times in French from fragment prompts.
//! - [`table`]: lookup tables for `lookup` nodes.
//! - [`prompts`]: the catalogue of every prompt text, for rendering.
//! - [`recent`]: calls per number over the last day, for `switch` on call counts.
//!
//! The language is documented in `docs/flows.md`.
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use guichet::flow::{check, ir::FlowSet, simulate};
//! let set = Arc::new(FlowSet::load(Path::new("flows")).map_err(|d| d.len()).unwrap());
//! assert!(!check::check(&set, None).has_errors());
//! let at = jiff::civil::date(2026, 12, 7).at(10, 0, 0, 0).in_tz("Europe/Paris").unwrap();
//! let origin = std::time::Instant::now(); // virtual time starts here
//! println!("{}", simulate::simulate(&set, "main", &[(None, '2')], at, origin));
//! ```

pub mod calendar;
pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod graph;
pub mod interp;
pub mod ir;
pub mod load;
pub mod model;
pub mod prompts;
pub mod recent;
pub mod say;
pub mod schema;
pub mod simulate;
pub mod table;
pub mod testing;
pub mod timing;
