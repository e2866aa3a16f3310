//! CI guard for the sans-IO rule: outside `src/engine/`, `src/cli.rs`, `src/main.rs` and the
//! test caller (`src/testcall.rs`), no source file may use tokio, a UDP socket, or read the
//! clock. Comment lines (doc examples included) and the `#[cfg(test)]` tail of a file (unit
//! tests start from a fixed `Instant`) are not checked. A line may opt out with a trailing
//! `// sans-io: allow(<reason>)` comment; known exceptions are listed in [`KNOWN`] and the
//! guard fails when one of them disappears (so the list only shrinks).

use std::path::{Path, PathBuf};

/// What may not appear in sans-IO code.
const FORBIDDEN: &[&str] = &[
    "tokio::",
    "std::net::UdpSocket",
    "Instant::now",
    "SystemTime::now",
];

/// Known exceptions: (file under `src/`, item, why). Each must still occur.
const KNOWN: &[(&str, &str, &str)] = &[];

/// Paths (relative to `src/`) allowed to do IO.
const ALLOWED: &[&str] = &["engine/", "cli.rs", "main.rs", "testcall.rs", "loadgen/"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Violations in one file's text: (line number, forbidden item, line).
fn violations(text: &str) -> Vec<(usize, &'static str, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim();
        if code == "#[cfg(test)]" {
            break;
        }
        if code.starts_with("//") || code.contains("// sans-io: allow(") {
            continue;
        }
        // Drop a trailing comment.
        let code = code.split("//").next().unwrap_or(code);
        for item in FORBIDDEN {
            if code.contains(item) {
                found.push((i + 1, *item, line.trim().to_string()));
            }
        }
    }
    found
}

#[test]
fn sans_io_modules_use_no_tokio_sockets_or_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "found the sources under {}", src.display());
    let mut report = Vec::new();
    let mut known_seen = vec![false; KNOWN.len()];
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        if ALLOWED
            .iter()
            .any(|a| rel == *a || (a.ends_with('/') && rel.starts_with(a)))
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (line, item, code) in violations(&text) {
            if let Some(i) = KNOWN.iter().position(|(f, it, _)| *f == rel && *it == item) {
                known_seen[i] = true;
                continue;
            }
            report.push(format!("src/{rel}:{line}: `{item}` in: {code}"));
        }
    }
    for (seen, (file, item, why)) in known_seen.iter().zip(KNOWN) {
        if !seen {
            report.push(format!(
                "src/{file}: known exception `{item}` ({why}) is gone: remove it from KNOWN"
            ));
        }
    }
    assert!(
        report.is_empty(),
        "IO or clock reads outside engine/ (move them into the engine and pass `now` in):\n{}",
        report.join("\n")
    );
}

#[test]
fn the_guard_sees_what_it_must() {
    let bad = "use tokio::net::UdpSocket;\nlet t = std::time::Instant::now();\nlet s = std::net::UdpSocket::bind(a);\nlet w = SystemTime::now();\n";
    let items: Vec<&str> = violations(bad).iter().map(|v| v.1).collect();
    assert_eq!(
        items,
        vec![
            "tokio::",
            "Instant::now",
            "std::net::UdpSocket",
            "SystemTime::now"
        ]
    );
    let fine = "//! let now = Instant::now(); // example\n/// tokio::spawn\nlet x = 1; // Instant::now\nlet t = Instant::now(); // sans-io: allow(origin)\n#[cfg(test)]\nmod tests { fn t() { let t0 = Instant::now(); } }\n";
    assert!(violations(fine).is_empty());
}
