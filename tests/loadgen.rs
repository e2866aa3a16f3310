//! Functional tests of the load tool (`guichet::loadgen`), not timed: against a tiny fake
//! UAS written here (answers INVITE with 200 + SDP, echoes RTP, answers BYE), and against
//! the in-process engine once it has landed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use guichet::loadgen::{LoadConfig, parse_keys, run};
use guichet::sdp::{LocalMedia, answer};
use guichet::sip::message::{Header, Incoming, Method, build_response, read_datagram};
use tokio::net::UdpSocket;

/// What the fake UAS does with an INVITE.
#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    /// Answer, then hang up with our own BYE after this long.
    AnswerThenBye(Duration),
    Refuse(u16),
    /// Never answer (not even 100 Trying).
    Silent,
}

#[derive(Default)]
struct UasCounters {
    invites: AtomicU64,
    byes: AtomicU64,
    acks: AtomicU64,
    echoed: AtomicU64,
    responses: AtomicU64,
}

/// Start the fake UAS on a free loopback port.
async fn fake_uas(behaviour: Behaviour) -> (SocketAddr, Arc<UasCounters>) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    let counters = Arc::new(UasCounters::default());
    let c = counters.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut answered = std::collections::HashMap::<String, Vec<u8>>::new();
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let req = match read_datagram(&buf[..n]) {
                Incoming::Request(req) => req,
                Incoming::Response(_) => {
                    c.responses.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                _ => continue,
            };
            let call_id = guichet::sip::headers::call_id(&req.headers)
                .unwrap_or_default()
                .to_owned();
            match req.method {
                Method::Invite => {
                    c.invites.fetch_add(1, Ordering::Relaxed);
                    if let Behaviour::Silent = behaviour {
                        continue;
                    }
                    if let Behaviour::Refuse(code) = behaviour {
                        let resp = build_response(&req, code, Some("uas"), vec![], None);
                        let _ = sock.send_to(&resp.to_bytes(), from).await;
                        continue;
                    }
                    // A retransmitted INVITE gets the same 200 again.
                    if let Some(bytes) = answered.get(&call_id) {
                        let _ = sock.send_to(bytes, from).await;
                        continue;
                    }
                    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    let local = LocalMedia {
                        addr: "127.0.0.1".parse().unwrap(),
                        port: rtp.local_addr().unwrap().port(),
                        session_id: 1,
                        version: 1,
                    };
                    let ans = answer(&req.body, &local).unwrap();
                    let echoed = c.clone();
                    tokio::spawn(async move {
                        let mut b = vec![0u8; 2048];
                        while let Ok((n, src)) = rtp.recv_from(&mut b).await {
                            if rtp.send_to(&b[..n], src).await.is_ok() {
                                echoed.echoed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                    let contact = Header::Other("Contact".into(), format!("<sip:uas@{addr}>"));
                    let resp = build_response(
                        &req,
                        200,
                        Some("uas"),
                        vec![contact],
                        Some(("application/sdp", ans.sdp)),
                    );
                    let bytes = resp.to_bytes();
                    let _ = sock.send_to(&bytes, from).await;
                    answered.insert(call_id.clone(), bytes);
                    if let Behaviour::AnswerThenBye(after) = behaviour {
                        let header = |n: &str| {
                            guichet::sip::headers::first(&req.headers, n)
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let bye = format!(
                            "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKuasbye{}\r\n\
                             Max-Forwards: 70\r\nFrom: {};tag=uas\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
                             CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                            guichet::sip::headers::uri_of(&header("Contact")),
                            call_id.len(),
                            header("To"),
                            header("From"),
                        );
                        let sock = sock.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            let _ = sock.send_to(bye.as_bytes(), from).await;
                        });
                    }
                }
                Method::Bye => {
                    c.byes.fetch_add(1, Ordering::Relaxed);
                    let resp = build_response(&req, 200, None, vec![], None);
                    let _ = sock.send_to(&resp.to_bytes(), from).await;
                }
                Method::Ack => {
                    c.acks.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    (addr, counters)
}

fn config(target: SocketAddr) -> LoadConfig {
    let mut cfg = LoadConfig::new(target);
    cfg.calls = 20;
    cfg.rate = 200.0;
    cfg.hold = Duration::from_secs(2);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_calls_against_fake_uas_all_answered_with_audio() {
    let (target, uas) = fake_uas(Behaviour::Answer).await;
    let mut cfg = config(target);
    cfg.keys = parse_keys("500ms:1,1s:#").unwrap();
    cfg.engine_pid = Some(std::process::id()); // ourselves: exercises the /proc sampling
    let report = run(cfg).await;
    println!("{}", report.table());
    assert_eq!(report.error, None);
    assert_eq!(report.sip.attempted, 20);
    assert_eq!(report.sip.answered, 20, "{:?}", report.sip.failed_by_code);
    assert_eq!(report.sip.failed, 0);
    assert_eq!(report.sip.bye_sent, 20);
    assert_eq!(report.sip.bye_failed, 0);
    assert_eq!(report.sip.peak_concurrent, 20);
    assert_eq!(report.media.calls_measured, 20);
    assert_eq!(report.media.calls_without_audio, 0);
    // About 2 s of 20 ms packets each way per call (minus key presses).
    assert!(report.media.min_packets_per_call > 50, "{report:?}");
    assert!(report.media.packets_received >= 20 * 50);
    assert!(report.media.gap_error_us.samples > 0);
    assert_eq!(report.media.keys_sent, 40);
    assert_eq!(uas.invites.load(Ordering::Relaxed), 20);
    assert_eq!(uas.byes.load(Ordering::Relaxed), 20);
    assert!(uas.acks.load(Ordering::Relaxed) >= 20);
    assert!(uas.echoed.load(Ordering::Relaxed) >= report.media.packets_received);
    let engine = report.engine.as_ref().unwrap();
    assert!(engine.rss_idle_kib.unwrap() > 0);
    assert!(engine.cpu_seconds.is_some());
    let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(json["sip"]["answered"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_failures_by_code() {
    let (target, uas) = fake_uas(Behaviour::Refuse(486)).await;
    let mut cfg = config(target);
    cfg.calls = 5;
    let report = run(cfg).await;
    assert_eq!(report.sip.attempted, 5);
    assert_eq!(report.sip.answered, 0);
    assert_eq!(report.sip.failed, 5);
    assert_eq!(report.sip.failed_by_code.get(&486), Some(&5));
    assert_eq!(report.media.calls_measured, 0);
    assert!(!report.meets_bar());
    assert!(report.misses.iter().any(|m| m.contains("not answered")));
    // Each 486 was ACKed by the INVITE client transaction.
    assert_eq!(uas.invites.load(Ordering::Relaxed), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_calls_time_out_as_408() {
    let (target, uas) = fake_uas(Behaviour::Silent).await;
    let mut cfg = config(target);
    cfg.calls = 3;
    cfg.timers.t1 = Duration::from_millis(10); // Timer B = 640 ms
    let report = run(cfg).await;
    assert_eq!(report.sip.failed_by_code.get(&408), Some(&3));
    assert_eq!(report.sip.answered, 0);
    // INVITE retransmitted on Timer A (10, 20, 40... ms) until Timer B.
    assert!(uas.invites.load(Ordering::Relaxed) > 3 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_hang_up_is_answered_and_counted() {
    let (target, uas) = fake_uas(Behaviour::AnswerThenBye(Duration::from_millis(300))).await;
    let mut cfg = config(target);
    cfg.calls = 4;
    cfg.hold = Duration::from_secs(5);
    let report = run(cfg).await;
    assert_eq!(report.sip.answered, 4);
    assert_eq!(report.sip.remote_hangups, 4);
    assert_eq!(report.sip.bye_sent, 0);
    assert_eq!(report.media.calls_measured, 4);
    // Each of our BYE answers reached the UAS; the run ended long before the hold time.
    assert_eq!(uas.responses.load(Ordering::Relaxed), 4);
    assert!(report.elapsed_s < 3.0, "{}", report.elapsed_s);
}

/// Not a test: runs `guichet load` with the arguments in `GUICHET_LOAD_ARGS` (for
/// `bench/run.sh` until the binary has a `load` subcommand), e.g.
/// `GUICHET_LOAD_ARGS="--calls 500 --rate 250 --hold 20" cargo test --release --test loadgen -- --ignored --nocapture load_from_env`.
#[test]
#[ignore]
fn load_from_env() {
    use clap::Parser;
    #[derive(Parser)]
    struct Load {
        #[command(flatten)]
        args: guichet::loadgen::LoadArgs,
    }
    let line = std::env::var("GUICHET_LOAD_ARGS").unwrap_or_default();
    let argv = std::iter::once("load".to_owned()).chain(line.split_whitespace().map(str::to_owned));
    let load = Load::parse_from(argv);
    let code = guichet::loadgen::cli_load(load.args);
    assert_eq!(
        code,
        std::process::ExitCode::SUCCESS,
        "the run missed the quality bar (see the report)"
    );
}
/// The in-process engine on free ports (as the engine's own tests start it).
async fn start_engine() -> guichet::engine::EngineHandle {
    let mut c = guichet::config::Config::default();
    c.sip.listen = "127.0.0.1:0".parse().unwrap();
    let first = 40000 + (std::process::id() % 50) as u16 * 200;
    c.rtp.ports = guichet::config::PortRange::new(first, first + 199).unwrap();
    c.limits.rate_per_source = 1000.0;
    c.limits.rate_burst = 1000;
    c.limits.shutdown_grace = guichet::config::DurationValue(Duration::from_secs(2));
    guichet::engine::start(c).await.expect("engine starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_calls_against_the_engine_all_answered_with_audio() {
    let engine = start_engine().await;
    let mut cfg = config(engine.sip_addr());
    cfg.keys = parse_keys("700ms:1").unwrap();
    let report = run(cfg).await;
    println!("{}", report.table());
    assert_eq!(report.error, None);
    assert_eq!(report.sip.attempted, 20);
    assert_eq!(report.sip.answered, 20, "{:?}", report.sip.failed_by_code);
    assert_eq!(report.sip.failed, 0);
    assert_eq!(report.sip.bye_failed, 0);
    assert_eq!(report.media.calls_measured, 20);
    assert_eq!(report.media.calls_without_audio, 0);
    assert!(report.media.min_packets_per_call > 0);
    engine.shutdown().await;
}
