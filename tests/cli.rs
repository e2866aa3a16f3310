//! The `guichet` binary itself: help, config errors with locations, and `serve` stopping
//! gracefully on SIGTERM with a call up.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use guichet::testcall::{CallerConfig, TestCaller};

fn guichet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_guichet"));
    // Only the variables a test sets reach the binary's config.
    for (k, _) in std::env::vars() {
        if k.starts_with("GUICHET_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn help_documents_every_subcommand() {
    let out = guichet().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "config", "call"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn config_prints_defaults_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let out = guichet()
        .current_dir(dir.path())
        .env("GUICHET_LIMITS_MAX_CALLS", "12")
        .args(["config", "--sip-listen", "127.0.0.1:5099"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("listen: 127.0.0.1:5099"), "{yaml}");
    assert!(yaml.contains("max_calls: 12"), "{yaml}");
    assert!(yaml.contains("ports: 20000-29999"), "{yaml}");
}

#[test]
fn bad_config_file_is_a_startup_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guichet.yaml");
    std::fs::write(&file, "limits:\n  max_calls: 5\n  max_cals: 6\n").unwrap();
    let out = guichet()
        .current_dir(dir.path())
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("guichet.yaml:3:3:"), "{err}");
    assert!(err.contains("max_cals"), "{err}");

    let out = guichet()
        .current_dir(dir.path())
        .env("GUICHET_SIP_LISTEN", "not-an-address")
        .args(["--config", "/nonexistent/guichet.yaml", "config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/guichet.yaml"));

    let out = guichet()
        .current_dir(dir.path())
        .env("GUICHET_SIP_LISTEN", "not-an-address")
        .args(["--config", file.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn bad_env_value_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = guichet()
        .current_dir(dir.path())
        .env("GUICHET_SIP_LISTEN", "nowhere")
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GUICHET_SIP_LISTEN"));
}

fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_ends_calls_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = guichet()
        .current_dir(dir.path())
        .env("GUICHET_LIMITS_SHUTDOWN_GRACE", "2s")
        .args([
            "--log-format",
            "json",
            "serve",
            "--sip-listen",
            &addr.to_string(),
        ])
        .args(["--rtp-ports", "47000-47099"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until it answers OPTIONS.
    let uri: guichet::testcall::SipUri = format!("sip:1000@{addr}").parse().unwrap();
    let mut caller = None;
    for _ in 0..50 {
        let mut config = CallerConfig::new(uri.clone(), addr);
        config.response_timeout = Duration::from_millis(200);
        let mut c = TestCaller::new(config).await.unwrap();
        if c.options().await.ok() == Some(200) {
            caller = Some(c);
            break;
        }
    }
    let mut caller = caller.expect("guichet serve answers OPTIONS");
    assert_eq!(caller.invite().await.unwrap(), 200);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        caller.wait_for_bye(Duration::from_secs(5)).await.unwrap(),
        "BYE on SIGTERM"
    );

    let status = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                let mut log = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut log);
                }
                return Some((s, log));
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let (status, log) = status.expect("guichet exits within 10 s of SIGTERM");
    assert!(status.success(), "{log}");
    // JSON log lines, with the call's span.
    let first = log.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    assert!(log.contains("\"call_id\""), "{log}");
    assert!(log.contains("guichet stopped"), "{log}");
}

#[test]
fn operator_tools_are_wired_to_the_flows() {
    let flows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
    let flows = flows.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let out = guichet()
        .current_dir(dir.path())
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON schema");
    assert!(schema.is_object());

    let out = guichet()
        .current_dir(dir.path())
        .args(["graph", "--dot", "--flows", flows])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("digraph"));

    let out = guichet()
        .current_dir(dir.path())
        .args(["simulate", "main", "--keys", "0", "--flows", flows])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("main.accueil"));

    // A flow directory with a mistake: located error, exit status 1.
    let bad = dir.path().join("flows");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("main.yaml"),
        "flow: main\nentry: nowhere\nnodes: {}\n",
    )
    .unwrap();
    let out = guichet()
        .current_dir(dir.path())
        .args(["check", "--flows", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("main.yaml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
