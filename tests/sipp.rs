//! SIPp against the engine: the scenarios in `tests/sipp/` run with the real `sipp` binary
//! (Debian package `sip-tester`) against an engine started in-process on free ports.
//! Each test asserts SIPp's exit status and its final successful/failed call counts (read
//! from its `-trace_stat` CSV).
//!
//! Without `sipp`: the tests fail when `CI` is set, otherwise they print a skip notice.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{start, test_config, wait_for};
use guichet::config::{Config, DurationValue};

/// What one SIPp run reported.
#[derive(Debug)]
struct SippResult {
    exit_code: Option<i32>,
    successful: u64,
    failed: u64,
    output: String,
}

/// Whether `sipp` is available; panics under CI when it is not.
fn sipp_available() -> bool {
    let found = Command::new("sipp").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "sipp is required in CI (apt-get install sip-tester)"
        );
        println!("skipped: sipp not installed (apt-get install sip-tester)");
    }
    found
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A port free right now for UDP (and TCP when `tcp`).
fn free_port(tcp: bool) -> u16 {
    for _ in 0..50 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if !tcp || TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port");
}

/// A free even port with the next three free too (SIPp's media sockets).
fn free_media_port() -> u16 {
    for _ in 0..100 {
        let port = free_port(false);
        let base = port - port % 2;
        if !(1024..=65530).contains(&base) {
            continue;
        }
        let all_free = (0..4).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free media port");
}

/// Run SIPp with `args` against `target`; blocking, so call it from `spawn_blocking`.
fn run_sipp(
    scenario_file: &Path,
    target: SocketAddr,
    transport: &str,
    args: &[&str],
) -> SippResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = dir.path().join("stats.csv");
    let errors = dir.path().join("errors.log");
    let tcp = transport.starts_with('t');
    let local_port = free_port(tcp).to_string();
    let media_port = free_media_port().to_string();
    let output = Command::new("sipp")
        .current_dir(dir.path())
        .arg("-sf")
        .arg(scenario_file)
        .args(["-s", "1000", "-t", transport, "-i", "127.0.0.1"])
        .args(["-p", &local_port, "-mp", &media_port])
        .args(["-nostdin", "-timeout", "90s", "-timeout_error"])
        .arg("-trace_stat")
        .arg("-stf")
        .arg(&stats)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .args(args)
        .arg(target.to_string())
        .output()
        .expect("sipp runs");
    let csv = std::fs::read_to_string(&stats).unwrap_or_default();
    let (successful, failed) = final_counts(&csv);
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if let Ok(errs) = std::fs::read_to_string(&errors) {
        text.push_str("\n--- sipp errors ---\n");
        text.push_str(&errs.chars().take(4000).collect::<String>());
    }
    SippResult {
        exit_code: output.status.code(),
        successful,
        failed,
        output: text,
    }
}

/// Cumulative SuccessfulCall(C) and FailedCall(C) from the last line of SIPp's stat CSV.
fn final_counts(csv: &str) -> (u64, u64) {
    let lines: Vec<&str> = csv.lines().filter(|l| !l.trim().is_empty()).collect();
    let (Some(header), Some(last)) = (lines.first(), lines.get(1..).and_then(<[&str]>::last))
    else {
        return (0, 0);
    };
    let columns: Vec<&str> = header.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    let value = |name: &str| -> u64 {
        columns
            .iter()
            .position(|c| *c == name)
            .and_then(|i| values.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (value("SuccessfulCall(C)"), value("FailedCall(C)"))
}

async fn run(
    config: Config,
    file: &str,
    transport: &'static str,
    args: &'static [&'static str],
) -> SippResult {
    let engine = start(config).await;
    let target = engine.sip_addr();
    let path = scenario(file);
    let result = tokio::task::spawn_blocking(move || run_sipp(&path, target, transport, args))
        .await
        .expect("sipp thread");
    wait_for(&engine, "every call to end", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    engine.shutdown().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_basic_call_udp() {
    if !sipp_available() {
        return;
    }
    let r = run(
        test_config(),
        "uac_basic.xml",
        "u1",
        &["-m", "3", "-r", "3", "-d", "1000"],
    )
    .await;
    assert_eq!(r.exit_code, Some(0), "{}", r.output);
    assert_eq!((r.successful, r.failed), (3, 0), "{}", r.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_basic_call_tcp() {
    if !sipp_available() {
        return;
    }
    let r = run(
        test_config(),
        "uac_basic.xml",
        "t1",
        &["-m", "2", "-r", "2", "-d", "500"],
    )
    .await;
    assert_eq!(r.exit_code, Some(0), "{}", r.output);
    assert_eq!((r.successful, r.failed), (2, 0), "{}", r.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_cancel_before_answer() {
    if !sipp_available() {
        return;
    }
    let mut config = test_config();
    config.sip.answer_delay = DurationValue(Duration::from_secs(30));
    let r = run(config, "uac_cancel.xml", "u1", &["-m", "3", "-r", "3"]).await;
    assert_eq!(r.exit_code, Some(0), "{}", r.output);
    assert_eq!((r.successful, r.failed), (3, 0), "{}", r.output);
}

/// 500 calls at 50 calls/s, at most 100 at once, each up 1.5 s: all must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_load_500_calls_at_50_cps() {
    if !sipp_available() {
        return;
    }
    let mut config = test_config();
    // One source sends every call: lift the per-source limit (it guards against floods,
    // not against a declared load test), and give the calls enough RTP ports.
    config.limits.rate_per_source = 1000.0;
    config.limits.rate_burst = 1000;
    config.rtp.ports = "42000-43999".parse().expect("range");
    let r = run(
        config,
        "uac_basic.xml",
        "u1",
        &["-m", "500", "-r", "50", "-l", "100", "-d", "1500"],
    )
    .await;
    assert_eq!(r.exit_code, Some(0), "{}", r.output);
    assert_eq!((r.successful, r.failed), (500, 0), "{}", r.output);
}

#[test]
fn stat_csv_parsing_reads_the_last_line() {
    let csv = "StartTime;SuccessfulCall(C);FailedCall(C)\nx;0;0\ny;497;3\n";
    assert_eq!(final_counts(csv), (497, 3));
    assert_eq!(final_counts(""), (0, 0));
}
