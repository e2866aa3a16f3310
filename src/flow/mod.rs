//! Voice-menu flows: YAML to typed IR, checker, interpreter, simulator. Sans-IO.
//!
//! - [`calendar`]: opening hours, closures, French public holidays.
//! - [`say`]: numbers, dates and times in French from fragment prompts.
//! - [`table`]: lookup tables for `lookup` nodes.

pub mod calendar;
pub mod say;
pub mod table;
