//! The async shell: sockets, tokio tasks, the clock, and the wiring between layers.
//! The only module that does IO.

pub mod media;
