//! The shipped flows under `flows/` load, pass the checker, and pass their flow tests
//! (`flows/tests/*.yaml`), run over the simulator in virtual time.

use std::path::Path;

use guichet::flow::{check, testing};

#[test]
fn shipped_flows_pass_the_checker() {
    let report = check::check_dir(Path::new("flows"), None);
    let text: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(!report.has_errors(), "{}", text.join("\n"));
    assert!(!report.entries.is_empty());
    for e in &report.entries {
        assert!(e.silent.human.is_some() || e.silent.closed, "{e}");
        assert!(e.agent_key.human.is_some(), "{e}");
    }
}

#[test]
fn shipped_flow_tests_pass() {
    let report = testing::run_flow_tests(Path::new("flows"));
    assert!(report.passed(), "{report}");
    assert!(report.results.len() >= 10, "{report}");
}
