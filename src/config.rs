//! Typed configuration with embedded defaults, YAML file, environment and flag overrides.
