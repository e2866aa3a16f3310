//! Voice-menu flows: YAML to typed IR, checker, interpreter, simulator. Sans-IO.
//!
//! - [`model`]: the raw YAML shape (serde structs with source locations).
//! - [`ir`]: the compiled flow set (indices, parsed durations, patterns).
//! - [`load`]: directory -> [`ir::FlowSet`] or located [`diagnostic::Diagnostic`]s.
//! - [`calendar`]: opening hours, closures, French public holidays.
//! - [`say`]: numbers, dates and times in French from fragment prompts.
//! - [`table`]: lookup tables for `lookup` nodes.
//!
//! The language is documented in `docs/flows.md`.

pub mod calendar;
pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod graph;
pub mod interp;
pub mod ir;
pub mod load;
pub mod model;
pub mod say;
pub mod schema;
pub mod simulate;
pub mod table;
pub mod testing;
pub mod timing;
