//! Voice-menu flows: YAML to typed IR, checker, interpreter, simulator. Sans-IO.
