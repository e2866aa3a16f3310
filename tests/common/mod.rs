//! Shared helpers for the black-box tests: start the engine in-process on free ports.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use guichet::config::{Config, DurationValue, PortRange};
use guichet::engine::{self, EngineHandle, Snapshot};
use guichet::testcall::{CallerConfig, SipUri};

/// A distinct RTP range per engine in this process (the pool skips ports taken by others).
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

/// A config for tests: SIP on 127.0.0.1 with a free port, a private RTP range, fast
/// shutdown, a generous rate limit (tests send many requests from one source).
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.sip.listen = "127.0.0.1:0".parse().unwrap();
    let slot = NEXT_RANGE.fetch_add(1, Ordering::Relaxed) % 100;
    let pid_offset = (std::process::id() % 20) as u16;
    let first = 30000 + ((slot + pid_offset * 5) % 100) * 200;
    c.rtp.ports = PortRange::new(first, first + 199).unwrap();
    c.limits.rate_per_source = 1000.0;
    c.limits.rate_burst = 1000;
    c.limits.shutdown_grace = DurationValue(Duration::from_secs(2));
    c.log.level = "debug".into();
    // No prompts: loading the shipped audio/ takes seconds in a debug build, and these
    // tests only need silence.
    c.paths.audio = "tests/no-audio-here".into();
    c
}

/// Start an engine; logs go to the test's captured output when `RUST_LOG` is set.
pub async fn start(config: Config) -> EngineHandle {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    engine::start(config).await.expect("engine starts")
}

/// A caller config aimed at `engine`, calling number 1000.
pub fn caller_for(addr: SocketAddr) -> CallerConfig {
    let uri: SipUri = format!("sip:1000@{addr}").parse().unwrap();
    CallerConfig::new(uri, addr)
}

/// Wait (bounded) until `pred` holds on the engine's snapshot.
pub async fn wait_for(engine: &EngineHandle, what: &str, pred: impl Fn(&Snapshot) -> bool) {
    let mut rx = engine.watch();
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "timed out waiting for {what}: {:?}",
        engine.snapshot()
    );
}

/// A 16-bit 8 kHz mono WAV of a 440 Hz tone (a test prompt), parent folders created.
pub fn tone(path: &std::path::Path, millis: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(8 * millis) {
        let t = f64::from(i) / 8000.0;
        let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
}
