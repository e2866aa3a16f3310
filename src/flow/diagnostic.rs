//! Operator-facing problems found in flow files: where, which rule, what, and a likely fix.
//!
//! A [`Diagnostic`] prints as `flows/main.yaml:12:5: error[dangling-node]: message`, followed
//! by an indented `help:` line when there is one. Lists of diagnostics are sorted by file,
//! line and column with [`sort`].
//!
//! ```
//! use guichet::flow::diagnostic::Diagnostic;
//! let d = Diagnostic::error("flows/main.yaml", 12, 5, "dangling-node", "no node `menu`")
//!     .with_help("did you mean `menu_principal`?");
//! assert!(d.to_string().starts_with("flows/main.yaml:12:5: error[dangling-node]: no node"));
//! ```

use std::fmt;
use std::path::PathBuf;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Blocks loading or checking.
    Error,
    /// Reported, does not block (a relaxed rule, an estimated duration).
    Warning,
    /// Information (the static report).
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: u32,
    /// 1-based; 0 when unknown.
    pub column: u32,
    pub severity: Severity,
    /// The rule's stable name (`dangling-node`, `max-options`...), usable in `relax:`.
    pub rule: String,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `file:line:column`.
    pub fn error(
        file: impl Into<PathBuf>,
        line: u32,
        column: u32,
        rule: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line,
            column,
            severity: Severity::Error,
            rule: rule.to_owned(),
            message: message.into(),
            help: None,
        }
    }

    /// The same diagnostic with a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The same diagnostic with another severity.
    pub fn with_severity(mut self, severity: Severity) -> Diagnostic {
        self.severity = severity;
        self
    }

    /// Whether this is an error (blocks loading or makes `check` fail).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            self.file.display(),
            self.line,
            self.column,
            self.severity,
            self.rule,
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Sort by file, line, column, then rule, and drop exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.rule, &a.message)
            .cmp(&(&b.file, b.line, b.column, &b.rule, &b.message))
    });
    diagnostics.dedup();
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            // `prev` and `cur` have b.len() + 1 entries; j + 1 <= b.len().
            let best = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(best);
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestion() {
        assert_eq!(edit_distance("promt", "prompts"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("promts", ["prompts", "next"]), Some("prompts"));
        assert_eq!(did_you_mean("zzzzzz", ["prompts", "next"]), None);
    }

    #[test]
    fn display_has_location_rule_and_help() {
        let d = Diagnostic::error("flows/main.yaml", 3, 7, "max-options", "too many")
            .with_help("split the menu");
        assert_eq!(
            d.to_string(),
            "flows/main.yaml:3:7: error[max-options]: too many\n  help: split the menu"
        );
    }

    #[test]
    fn sorted_by_file_then_line() {
        let mut v = vec![
            Diagnostic::error("b.yaml", 1, 1, "x", "m"),
            Diagnostic::error("a.yaml", 9, 1, "x", "m"),
            Diagnostic::error("a.yaml", 2, 1, "x", "m"),
        ];
        sort(&mut v);
        let order: Vec<_> = v.iter().map(|d| (d.file.clone(), d.line)).collect();
        assert_eq!(
            order,
            vec![
                ("a.yaml".into(), 2),
                ("a.yaml".into(), 9),
                ("b.yaml".into(), 1)
            ]
        );
    }
}
