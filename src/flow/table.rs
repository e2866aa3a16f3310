//! Lookup tables for `lookup` nodes: CSV or YAML files under `flows/data/`, one row per key.
//!
//! Input: a file. Output: rows as column -> value maps, found by exact key or, with
//! [`Table::lookup_prefix`], by the longest matching key prefix (a postal code falling back
//! to its département). Loaded once; no IO after `load`.
//!
//! API CONTRACT: `flow::check` and `flow::interp` code against these signatures.

use std::collections::BTreeMap;
use std::path::Path;

/// Why a table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// One row: column name to value.
pub type Row = BTreeMap<String, String>;

/// A loaded table.
#[derive(Debug, Clone, Default)]
pub struct Table {}

impl Table {
    /// Load a `.csv` (first line: column names; the key column is `key`) or `.yaml` table.
    pub fn load(path: &Path) -> Result<Table, TableError> {
        let _ = path;
        Ok(Table {})
    }

    /// The rows whose key equals `key` (a key may have several rows: several reception
    /// points for one postal code).
    pub fn lookup(&self, key: &str) -> Vec<&Row> {
        let _ = key;
        Vec::new()
    }

    /// Rows of the longest key that is a prefix of `key`, or rows for `key` itself.
    pub fn lookup_prefix(&self, key: &str) -> Vec<&Row> {
        let _ = key;
        Vec::new()
    }

    /// Column names.
    pub fn columns(&self) -> Vec<String> {
        Vec::new()
    }
}
