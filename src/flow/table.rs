//! Lookup tables for `lookup` nodes: CSV or YAML files under `flows/data/`, one row per key.
//!
//! Input: a file. Output: rows as column -> value maps, found by exact key or, with
//! [`Table::lookup_prefix`], by the longest matching key prefix (a postal code falling back
//! to its département). Loaded once; no IO after `load`.
//!
//! API CONTRACT: `flow::check` and `flow::interp` code against these signatures.
//!
//! # Formats
//!
//! CSV (`.csv`), UTF-8, RFC 4180: the first line names the columns, one of which must be
//! `key`; fields are separated by commas (or by semicolons when the header has more `;` than
//! `,`, as French spreadsheets export); a field in double quotes may hold commas, line breaks
//! and doubled quotes (`""`). Unquoted fields are trimmed of spaces; blank lines are skipped;
//! a UTF-8 byte order mark is ignored. Several rows may share a key.
//!
//! ```text
//! key,nom,telephone
//! 91000,"CAF de l'Essonne, Évry",01 23 45 67 89
//! 91000,Point d'accueil Courcouronnes,01 23 45 67 00
//! 91,CAF de l'Essonne (département),01 23 45 67 99
//! ```
//!
//! YAML (`.yaml`, `.yml`): a list of maps with scalar values, each with a `key`. Values are
//! kept as written (`01000` stays `01000`); null is the empty string. A row missing a column
//! that another row has gets `""` for it, so every row has every column.
//!
//! ```yaml
//! - { key: "91000", nom: "CAF de l'Essonne", telephone: "01 23 45 67 89" }
//! - { key: "91", nom: "CAF (département)", telephone: "01 23 45 67 99" }
//! ```
//!
//! # Example
//!
//! ```
//! use guichet::flow::table::Table;
//! let t = Table::parse_csv("key,nom\n91,Essonne\n91000,Évry\n", "t.csv".as_ref()).unwrap();
//! assert_eq!(t.lookup_prefix("91000")[0]["nom"], "Évry");
//! assert_eq!(t.lookup_prefix("91220")[0]["nom"], "Essonne");
//! assert!(t.lookup("75001").is_empty());
//! ```
//!
//! Errors name the file and line ([`TableError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// The name of the column that holds the key.
pub const KEY_COLUMN: &str = "key";

/// What is wrong with the quotes of a CSV field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteProblem {
    /// A quoted field is never closed (the line is where it opens).
    Unterminated,
    /// A `"` inside a field that does not start with one.
    QuoteInUnquotedField,
    /// Something other than a separator or the end of the line after a closing quote.
    TextAfterClosingQuote,
}

impl fmt::Display for QuoteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuoteProblem::Unterminated => {
                write!(f, "a quoted field is never closed; add the closing `\"`")
            }
            QuoteProblem::QuoteInUnquotedField => write!(
                f,
                "a `\"` inside an unquoted field; quote the whole field and double the inner quotes (`\"\"`)"
            ),
            QuoteProblem::TextAfterClosingQuote => write!(
                f,
                "text after a closing `\"`; double quotes inside a quoted field (`\"\"`)"
            ),
        }
    }
}

/// Why a table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The file is not UTF-8 (line of the first bad byte).
    #[error("{path}:{line}: not UTF-8 text; save the file as UTF-8", path = path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    /// Neither `.csv` nor `.yaml`/`.yml`.
    #[error("{path}: unknown table format; use a .csv or .yaml file", path = path.display())]
    UnknownFormat { path: PathBuf },
    /// No header line.
    #[error("{path}: empty table; the first line must name the columns, one of them `key`", path = path.display())]
    Empty { path: PathBuf },
    /// The header has no `key` column.
    #[error("{path}:{line}: no `key` column (columns: {}); name the key column `key`", columns.join(", "), path = path.display())]
    MissingKeyColumn {
        path: PathBuf,
        line: usize,
        columns: Vec<String>,
    },
    /// A column name used twice, or empty.
    #[error("{path}:{line}: column `{column}` is empty or named twice", path = path.display())]
    BadColumn {
        path: PathBuf,
        line: usize,
        column: String,
    },
    /// A row with more or fewer fields than the header.
    #[error("{path}:{line}: {found} fields but the header has {expected}; quote fields that contain the separator", path = path.display())]
    FieldCount {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    /// Bad quoting in a CSV field.
    #[error("{path}:{line}: {problem}", path = path.display())]
    BadQuoting {
        path: PathBuf,
        line: usize,
        problem: QuoteProblem,
    },
    /// A row whose key is empty.
    #[error("{path}:{line}: empty key", path = path.display())]
    EmptyKey { path: PathBuf, line: usize },
    /// The YAML does not parse or is not a list of maps of scalars.
    #[error("{path}:{line}:{column}: {message}", path = path.display())]
    Yaml {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
}

/// One row: column name to value.
pub type Row = BTreeMap<String, String>;

/// A loaded table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Row>,
    /// Key to row indices, in file order.
    index: BTreeMap<String, Vec<usize>>,
}

impl Table {
    /// Load a `.csv` (first line: column names; the key column is `key`) or `.yaml` table.
    pub fn load(path: &Path) -> Result<Table, TableError> {
        let bytes = std::fs::read(path).map_err(|source| TableError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = e
                .as_bytes()
                .get(..e.utf8_error().valid_up_to())
                .unwrap_or(&[]);
            TableError::NotUtf8 {
                path: path.to_owned(),
                line: 1 + good.iter().filter(|b| **b == b'\n').count(),
            }
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Table::parse_csv(&text, path),
            Some("yaml" | "yml") => Table::parse_yaml(&text, path),
            _ => Err(TableError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }

    /// Parse CSV text; `path` is used in error messages.
    pub fn parse_csv(text: &str, path: &Path) -> Result<Table, TableError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let separator = guess_separator(text);
        let mut records = Records {
            chars: text.chars().peekable(),
            line: 1,
            separator,
            path,
        };
        let (header_line, header) = loop {
            match records.next_record()? {
                None => {
                    return Err(TableError::Empty {
                        path: path.to_owned(),
                    });
                }
                Some((_, fields)) if is_blank(&fields) => continue,
                Some(found) => break found,
            }
        };
        let mut builder = Builder::new(path, header, header_line)?;
        while let Some((line, fields)) = records.next_record()? {
            if is_blank(&fields) {
                continue;
            }
            if fields.len() != builder.columns.len() {
                return Err(TableError::FieldCount {
                    path: path.to_owned(),
                    line,
                    expected: builder.columns.len(),
                    found: fields.len(),
                });
            }
            let row = builder.columns.iter().cloned().zip(fields).collect();
            builder.push(row, line)?;
        }
        Ok(builder.finish())
    }

    /// Parse YAML text (a list of maps, each with a `key`); `path` is used in error messages.
    pub fn parse_yaml(text: &str, path: &Path) -> Result<Table, TableError> {
        let raw: Option<Vec<Spanned<OrderedRow>>> = serde_saphyr::from_str(text).map_err(|e| {
            let location = e.location().unwrap_or(serde_saphyr::Location::UNKNOWN);
            TableError::Yaml {
                path: path.to_owned(),
                line: location.line(),
                column: location.column(),
                message: strip_location(&e.without_snippet().to_string()),
            }
        })?;
        let raw = raw.unwrap_or_default();
        // Columns in order of first appearance, `key` first.
        let mut columns = vec![KEY_COLUMN.to_owned()];
        for row in &raw {
            for (name, _) in &row.value.0 {
                if !columns.contains(name) {
                    columns.push(name.clone());
                }
            }
        }
        let mut builder = Builder {
            path,
            columns,
            rows: Vec::with_capacity(raw.len()),
            index: BTreeMap::new(),
        };
        for row in raw {
            // Line numbers of a text file fit in usize.
            let line = usize::try_from(row.referenced.line()).unwrap_or(usize::MAX);
            let mut values: Row = row.value.0.into_iter().collect();
            if !values.contains_key(KEY_COLUMN) {
                return Err(TableError::Yaml {
                    path: path.to_owned(),
                    line: row.referenced.line(),
                    column: row.referenced.column(),
                    message: "row without `key`; every row needs `key: ...`".to_owned(),
                });
            }
            for column in &builder.columns {
                values.entry(column.clone()).or_default();
            }
            builder.push(values, line)?;
        }
        Ok(builder.finish())
    }

    /// The rows whose key equals `key` (a key may have several rows: several reception
    /// points for one postal code).
    pub fn lookup(&self, key: &str) -> Vec<&Row> {
        self.index
            .get(key)
            .map(|indices| indices.iter().filter_map(|i| self.rows.get(*i)).collect())
            .unwrap_or_default()
    }

    /// Rows of the longest key that is a prefix of `key`, or rows for `key` itself.
    pub fn lookup_prefix(&self, key: &str) -> Vec<&Row> {
        let mut ends: Vec<usize> = key.char_indices().map(|(i, _)| i).skip(1).collect();
        ends.push(key.len());
        for end in ends.into_iter().rev() {
            if let Some(prefix) = key.get(..end) {
                let rows = self.lookup(prefix);
                if !rows.is_empty() {
                    return rows;
                }
            }
        }
        Vec::new()
    }

    /// Column names (in file order for CSV; `key` first, then first appearance, for YAML).
    pub fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    /// Whether the table has a column named `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }

    /// All rows, in file order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Drop serde-saphyr's " at line L, column C" suffix: the error already names the place.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

/// Collects rows and checks keys.
struct Builder<'a> {
    path: &'a Path,
    columns: Vec<String>,
    rows: Vec<Row>,
    index: BTreeMap<String, Vec<usize>>,
}

impl<'a> Builder<'a> {
    fn new(path: &'a Path, header: Vec<String>, line: usize) -> Result<Builder<'a>, TableError> {
        let mut seen = std::collections::BTreeSet::new();
        for column in &header {
            if column.is_empty() || !seen.insert(column.as_str()) {
                return Err(TableError::BadColumn {
                    path: path.to_owned(),
                    line,
                    column: column.clone(),
                });
            }
        }
        if !seen.contains(KEY_COLUMN) {
            return Err(TableError::MissingKeyColumn {
                path: path.to_owned(),
                line,
                columns: header,
            });
        }
        Ok(Builder {
            path,
            columns: header,
            rows: Vec::new(),
            index: BTreeMap::new(),
        })
    }

    fn push(&mut self, row: Row, line: usize) -> Result<(), TableError> {
        let key = row.get(KEY_COLUMN).cloned().unwrap_or_default();
        if key.is_empty() {
            return Err(TableError::EmptyKey {
                path: self.path.to_owned(),
                line,
            });
        }
        self.index.entry(key).or_default().push(self.rows.len());
        self.rows.push(row);
        Ok(())
    }

    fn finish(self) -> Table {
        Table {
            columns: self.columns,
            rows: self.rows,
            index: self.index,
        }
    }
}

fn is_blank(fields: &[String]) -> bool {
    matches!(fields, [only] if only.is_empty())
}

/// `;` when the first line has more unquoted semicolons than commas, else `,`.
fn guess_separator(text: &str) -> char {
    let (mut commas, mut semicolons, mut quoted) = (0usize, 0usize, false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => break,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { ';' } else { ',' }
}

/// An RFC 4180 record reader over the text.
struct Records<'a, I: Iterator<Item = char>> {
    chars: std::iter::Peekable<I>,
    line: usize,
    separator: char,
    path: &'a Path,
}

impl<I: Iterator<Item = char>> Records<'_, I> {
    fn quote_error(&self, line: usize, problem: QuoteProblem) -> TableError {
        TableError::BadQuoting {
            path: self.path.to_owned(),
            line,
            problem,
        }
    }

    /// The next record and the line it starts on; `None` at the end of the text.
    fn next_record(&mut self) -> Result<Option<(usize, Vec<String>)>, TableError> {
        if self.chars.peek().is_none() {
            return Ok(None);
        }
        let start_line = self.line;
        let mut fields = Vec::new();
        loop {
            let (field, end_of_record) = self.next_field()?;
            fields.push(field);
            if end_of_record {
                return Ok(Some((start_line, fields)));
            }
        }
    }

    /// The next field, and whether it ended its record.
    fn next_field(&mut self) -> Result<(String, bool), TableError> {
        while let Some(' ' | '\t') = self.chars.peek() {
            self.chars.next();
        }
        if self.chars.peek() == Some(&'"') {
            self.chars.next();
            return self.quoted_field();
        }
        let mut field = String::new();
        loop {
            match self.chars.next() {
                None => return Ok((field.trim_end().to_owned(), true)),
                Some('\n') => {
                    self.line += 1;
                    return Ok((field.trim_end().to_owned(), true));
                }
                Some('\r') if self.chars.peek() == Some(&'\n') => {}
                Some('"') => {
                    return Err(self.quote_error(self.line, QuoteProblem::QuoteInUnquotedField));
                }
                Some(c) if c == self.separator => return Ok((field.trim_end().to_owned(), false)),
                Some(c) => field.push(c),
            }
        }
    }

    /// A field after its opening quote.
    fn quoted_field(&mut self) -> Result<(String, bool), TableError> {
        let open_line = self.line;
        let mut field = String::new();
        loop {
            match self.chars.next() {
                None => return Err(self.quote_error(open_line, QuoteProblem::Unterminated)),
                Some('"') if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    field.push('"');
                }
                Some('"') => break,
                Some('\n') => {
                    self.line += 1;
                    field.push('\n');
                }
                Some('\r') if self.chars.peek() == Some(&'\n') => {}
                Some(c) => field.push(c),
            }
        }
        // After the closing quote: spaces, then a separator or the end of the record.
        loop {
            match self.chars.next() {
                None => return Ok((field, true)),
                Some('\n') => {
                    self.line += 1;
                    return Ok((field, true));
                }
                Some(' ' | '\t') => {}
                Some('\r') if self.chars.peek() == Some(&'\n') => {}
                Some(c) if c == self.separator => return Ok((field, false)),
                Some(_) => {
                    return Err(self.quote_error(self.line, QuoteProblem::TextAfterClosingQuote));
                }
            }
        }
    }
}

/// A YAML map of scalars, in file order.
struct OrderedRow(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedRow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OrderedRow, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a map of column names to values, such as {{key: \"91\", nom: Essonne}}"
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedRow, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Option<String>>()? {
                    if entries.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "column `{name}` twice in one row"
                        )));
                    }
                    entries.push((name, value.unwrap_or_default()));
                }
                Ok(OrderedRow(entries))
            }
        }
        deserializer.deserialize_map(RowVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Table, TableError> {
        Table::parse_csv(text, Path::new("t.csv"))
    }

    fn names<'a>(rows: &[&'a Row], column: &str) -> Vec<&'a str> {
        rows.iter()
            .map(|r| r.get(column).map(String::as_str).unwrap_or("?"))
            .collect()
    }

    const POSTAL: &str = "key,nom,telephone\r\n\
        91000,\"CAF de l'Essonne, Évry\",01 23 45 67 89\r\n\
        91000,Point d'accueil Courcouronnes,01 23 45 67 00\r\n\
        91,CAF de l'Essonne (département),01 23 45 67 99\r\n\
        9,Neuf,\r\n";

    #[test]
    fn lookup_and_prefix() {
        let t = csv(POSTAL).unwrap();
        assert_eq!(t.columns(), vec!["key", "nom", "telephone"]);
        assert_eq!(t.len(), 4);
        assert_eq!(
            names(&t.lookup("91000"), "nom"),
            vec!["CAF de l'Essonne, Évry", "Point d'accueil Courcouronnes"]
        );
        assert!(t.lookup("9100").is_empty());
        assert_eq!(names(&t.lookup_prefix("91000"), "nom").len(), 2);
        assert_eq!(
            names(&t.lookup_prefix("91220"), "nom"),
            vec!["CAF de l'Essonne (département)"]
        );
        assert_eq!(names(&t.lookup_prefix("95000"), "nom"), vec!["Neuf"]);
        assert!(t.lookup_prefix("75001").is_empty());
        assert!(t.lookup_prefix("").is_empty());
        assert_eq!(t.lookup("9")[0]["telephone"], "");
        // Multi-byte keys: prefixes cut on character boundaries.
        let u = csv("key,v\nÉv,1\n").unwrap();
        assert_eq!(names(&u.lookup_prefix("Évry"), "v"), vec!["1"]);
        assert!(u.lookup_prefix("É").is_empty());
    }

    #[test]
    fn rfc4180_quoting() {
        let t = csv("key,texte\na,\"il dit \"\"bonjour\"\"\"\nb,\"deux\nlignes\"\nc, espaces  \nd,  \"cité\"  \n").unwrap();
        assert_eq!(t.lookup("a")[0]["texte"], "il dit \"bonjour\"");
        assert_eq!(t.lookup("b")[0]["texte"], "deux\nlignes");
        assert_eq!(t.lookup("c")[0]["texte"], "espaces");
        assert_eq!(t.lookup("d")[0]["texte"], "cité");
        assert_eq!(t.lookup("e").len(), 0);
        // A quoted empty field and a missing final newline.
        let t = csv("key,v\nx,\"\"").unwrap();
        assert_eq!(t.lookup("x")[0]["v"], "");
    }

    #[test]
    fn semicolon_separator_bom_and_blank_lines() {
        let t = csv("\u{feff}key;nom;adresse\n\n75001;Paris 1er;\"1, place\"\n\n").unwrap();
        assert_eq!(t.columns(), vec!["key", "nom", "adresse"]);
        assert_eq!(t.lookup("75001")[0]["adresse"], "1, place");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn csv_errors_have_lines() {
        match csv("nom,tel\na,b\n") {
            Err(TableError::MissingKeyColumn { line, columns, .. }) => {
                assert_eq!(line, 1);
                assert_eq!(columns, vec!["nom", "tel"]);
            }
            other => panic!("{other:?}"),
        }
        match csv("key,nom\na,b\n\"multi\nline\",x\nc,d,e\n") {
            Err(e @ TableError::FieldCount { .. }) => {
                assert!(matches!(
                    e,
                    TableError::FieldCount {
                        line: 5,
                        expected: 2,
                        found: 3,
                        ..
                    }
                ));
                assert!(
                    e.to_string()
                        .starts_with("t.csv:5: 3 fields but the header has 2")
                );
            }
            other => panic!("{other:?}"),
        }
        match csv("key,nom\na,b\nc,\"never closed\nd,e\n") {
            Err(TableError::BadQuoting { line, problem, .. }) => {
                assert_eq!((line, problem), (3, QuoteProblem::Unterminated));
            }
            other => panic!("{other:?}"),
        }
        match csv("key,nom\na,b\"c\n") {
            Err(TableError::BadQuoting { line, problem, .. }) => {
                assert_eq!((line, problem), (2, QuoteProblem::QuoteInUnquotedField));
            }
            other => panic!("{other:?}"),
        }
        match csv("key,nom\na,\"b\"c\n") {
            Err(TableError::BadQuoting { line, problem, .. }) => {
                assert_eq!((line, problem), (2, QuoteProblem::TextAfterClosingQuote));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(csv(""), Err(TableError::Empty { .. })));
        assert!(matches!(csv("\n\n"), Err(TableError::Empty { .. })));
        assert!(matches!(
            csv("key,a,a\n"),
            Err(TableError::BadColumn { ref column, .. }) if column == "a"
        ));
        assert!(matches!(
            csv("key,nom\n,x\n"),
            Err(TableError::EmptyKey { line: 2, .. })
        ));
    }

    #[test]
    fn yaml_tables() {
        let text = "- { key: 01000, nom: \"Bourg\", tel: 04 74 }\n- key: \"91\"\n  nom: Essonne\n  ouvert: true\n- { key: 91000, nom: ~ }\n";
        let t = Table::parse_yaml(text, Path::new("t.yaml")).unwrap();
        assert_eq!(t.columns(), vec!["key", "nom", "tel", "ouvert"]);
        assert_eq!(t.lookup("01000")[0]["tel"], "04 74");
        assert_eq!(t.lookup("91")[0]["ouvert"], "true");
        assert_eq!(t.lookup("91")[0]["tel"], "");
        assert_eq!(t.lookup("91000")[0]["nom"], "");
        assert_eq!(names(&t.lookup_prefix("91300"), "nom"), vec!["Essonne"]);
        assert!(
            Table::parse_yaml("", Path::new("e.yaml"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn yaml_errors_have_lines() {
        match Table::parse_yaml("- { key: a }\n- { nom: b }\n", Path::new("t.yaml")) {
            Err(TableError::Yaml { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        match Table::parse_yaml("- { key: a }\n- { key: [1, 2] }\n", Path::new("t.yaml")) {
            Err(e @ TableError::Yaml { .. }) => {
                assert!(e.to_string().starts_with("t.yaml:2:"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Table::parse_yaml("key: a\n", Path::new("t.yaml")),
            Err(TableError::Yaml { line: 1, .. })
        ));
        assert!(matches!(
            Table::parse_yaml("- { key: \"\" }\n", Path::new("t.yaml")),
            Err(TableError::EmptyKey { line: 1, .. })
        ));
    }

    #[test]
    fn load_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("caf.csv");
        std::fs::write(&csv_path, POSTAL).unwrap();
        let t = Table::load(&csv_path).unwrap();
        assert_eq!(t.lookup("91000").len(), 2);

        let yaml_path = dir.path().join("caf.yml");
        std::fs::write(&yaml_path, "- {key: \"91\", nom: Essonne}\n").unwrap();
        assert_eq!(Table::load(&yaml_path).unwrap().lookup("91").len(), 1);

        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, b"key,nom\na,b\nc,\xff\n").unwrap();
        match Table::load(&bad) {
            Err(e @ TableError::NotUtf8 { line: 3, .. }) => {
                assert!(e.to_string().contains("bad.csv:3"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let txt = dir.path().join("caf.txt");
        std::fs::write(&txt, "key\n").unwrap();
        assert!(matches!(
            Table::load(&txt),
            Err(TableError::UnknownFormat { .. })
        ));
        assert!(matches!(
            Table::load(&dir.path().join("missing.csv")),
            Err(TableError::Io { .. })
        ));
    }

    /// Quote a field the RFC 4180 way.
    fn quote(field: &str) -> String {
        format!("\"{}\"", field.replace('"', "\"\""))
    }

    proptest::proptest! {
        #[test]
        fn csv_round_trip(rows in proptest::collection::vec(
            ("[a-z0-9]{1,6}", "[ -~éà\n\r]{0,12}", "[a-zÉ ,;\"]{0,8}"), 0..20)) {
            let mut text = String::from("key,a,b\n");
            for (k, a, b) in &rows {
                text.push_str(&format!("{},{},{}\r\n", quote(k), quote(a), quote(b)));
            }
            let t = csv(&text).unwrap();
            proptest::prop_assert_eq!(t.len(), rows.len());
            for (row, (k, a, b)) in t.rows().iter().zip(&rows) {
                proptest::prop_assert_eq!(&row["key"], k);
                // A lone \r is kept; \r\n inside quotes becomes \n.
                proptest::prop_assert_eq!(&row["a"], &a.replace("\r\n", "\n"));
                proptest::prop_assert_eq!(&row["b"], b);
            }
        }

        #[test]
        fn csv_never_panics(text in "[a-z,;\"\n\r ]{0,60}") {
            let _ = csv(&text);
        }
    }
}
