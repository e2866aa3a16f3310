//! Flows in live calls, over real sockets: the engine in-process on free loopback ports, a
//! small flow set and tone prompts in a temp dir, the library's test caller pressing keys
//! with RFC 4733 or SIP INFO. What the engine did is read from its call events (nodes
//! entered, digits, the call record). One test runs the shipped `flows/` and `audio/`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{caller_for, start, test_config, tone};
use guichet::config::Config;
use guichet::engine::EngineHandle;
use guichet::engine::records::{CallEvent, CallRecord};
use guichet::testcall::TestCaller;
use tokio::sync::broadcast;

pub const TEST_FLOW: &str = r#"
id: main
language: fr
reviewed: 2026-12-05
entry: accueil
agent: conseiller
queues: [accueil]
defaults:
  no_input_timeout: 5s
prompts:
  bienvenue: "Bienvenue."
  menu: "Pour les impôts, tapez 1. Pour la CAF, tapez 2. Pour un conseiller, tapez 0."
  impots: "Voici les impôts."
  caf: "Voici la CAF."
  attente: "Un conseiller va vous répondre."
  au_revoir: "Au revoir."
nodes:
  accueil:
    play: { prompts: [bienvenue], next: menu }
  menu:
    menu:
      prompts: [menu]
      options:
        "1": { goto: impots }
        "2": { goto: caf }
      no_input: { then: conseiller }
      invalid: { then: conseiller }
  impots:
    play: { prompts: [impots], next: menu }
  caf:
    hangup: { prompts: [caf, au_revoir] }
  conseiller:
    queue: { name: accueil, priority: 0, prompts: [attente], fallback: au_revoir }
  au_revoir:
    hangup: { prompts: [au_revoir] }
"#;

/// A temp dir with `flows/main.yaml` (`flow`), tone prompts under `audio/` and `data/`.
pub fn setup(flow: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/main.yaml"), flow).unwrap();
    let audio = dir.path().join("audio");
    for (name, ms) in [
        ("bienvenue", 300),
        ("menu", 300),
        ("impots", 200),
        ("caf", 200),
        ("attente", 200),
        ("au_revoir", 200),
    ] {
        tone(&audio.join(format!("fr/main/{name}.wav")), ms);
    }
    tone(&audio.join("fr/system/indisponible.wav"), 600);
    dir
}

pub fn config_in(dir: &Path) -> Config {
    let mut c = test_config();
    c.paths.flows = dir.join("flows");
    c.paths.audio = dir.join("audio");
    c.paths.data = dir.join("data");
    c
}

/// Events of one call until `done` says stop (bounded by 15 s).
async fn events_until(
    rx: &mut broadcast::Receiver<CallEvent>,
    call_id: &str,
    mut done: impl FnMut(&CallEvent) -> bool,
) -> Vec<CallEvent> {
    let mut out = Vec::new();
    let result = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ev = rx.recv().await.expect("engine events");
            let mine = match &ev {
                CallEvent::NodeEntered { call_id: c, .. } | CallEvent::Digit { call_id: c, .. } => {
                    c == call_id
                }
                CallEvent::Ended(r) => r.call_id == call_id,
            };
            if mine {
                let stop = done(&ev);
                out.push(ev);
                if stop {
                    return;
                }
            }
        }
    })
    .await;
    assert!(result.is_ok(), "timed out; events so far: {out:?}");
    out
}

fn nodes(events: &[CallEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            CallEvent::NodeEntered { flow, node, .. } => Some(format!("{flow}.{node}")),
            _ => None,
        })
        .collect()
}

fn record(events: &[CallEvent]) -> CallRecord {
    events
        .iter()
        .find_map(|e| match e {
            CallEvent::Ended(r) => Some((**r).clone()),
            _ => None,
        })
        .expect("a call record")
}

fn entered(node: &'static str) -> impl FnMut(&CallEvent) -> bool {
    move |e| matches!(e, CallEvent::NodeEntered { node: n, .. } if n == node)
}

async fn wait_bye(caller: &mut TestCaller) {
    assert!(
        caller.wait_for_bye(Duration::from_secs(10)).await.unwrap(),
        "the flow hangs up"
    );
}

async fn start_in(dir: &Path) -> (EngineHandle, broadcast::Receiver<CallEvent>) {
    let engine = start(config_in(dir)).await;
    let events = engine.call_events();
    (engine, events)
}

#[tokio::test]
async fn rfc4733_keys_walk_the_menu_and_the_call_is_recorded() {
    let dir = setup(TEST_FLOW);
    let (engine, mut events) = start_in(dir.path()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    let id = caller.call_id().to_owned();

    let mut seen = events_until(&mut events, &id, entered("menu")).await;
    // The welcome prompt (300 ms of tone) is heard, paced at 20 ms.
    caller.idle(Duration::from_millis(500)).await.unwrap();
    let stats = caller.rtp_stats();
    assert!(stats.voiced >= 10, "the welcome prompt is heard: {stats:?}");
    let pacing = stats.voiced_pacing().unwrap();
    assert!(
        pacing >= Duration::from_millis(15) && pacing <= Duration::from_millis(25),
        "paced at 20 ms: {pacing:?}"
    );

    caller.press_rfc4733("1").unwrap();
    caller.idle(Duration::from_millis(200)).await.unwrap();
    seen.extend(events_until(&mut events, &id, entered("impots")).await);
    seen.extend(events_until(&mut events, &id, entered("menu")).await);
    // Pressed while the menu prompt plays: the key barges in, and the goodbye prompts of
    // `caf` (200 + 200 ms) still play in full before the BYE.
    caller.press_rfc4733("2").unwrap();
    seen.extend(events_until(&mut events, &id, entered("caf")).await);
    let voiced_at_caf = caller.rtp_stats().voiced;
    wait_bye(&mut caller).await;
    let goodbye = caller.rtp_stats().voiced - voiced_at_caf;
    assert!(
        goodbye >= 15,
        "the goodbye is heard before the BYE: {goodbye} packets"
    );
    seen.extend(events_until(&mut events, &id, |e| matches!(e, CallEvent::Ended(_))).await);

    assert_eq!(
        nodes(&seen),
        [
            "main.accueil",
            "main.menu",
            "main.impots",
            "main.menu",
            "main.caf"
        ]
    );
    let digits: String = seen
        .iter()
        .filter_map(|e| match e {
            CallEvent::Digit { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "12");
    let rec = record(&seen);
    assert_eq!(rec.digits, "12");
    assert_eq!(rec.end_reason, "flow_hangup");
    assert_eq!(rec.nodes_visited, 5);
    assert_eq!(
        rec.flow_version.as_deref(),
        Some(engine.flows().version().as_str())
    );
    // The engine's own RTP figures of this call: prompts and silence sent, the caller's
    // RFC 4733 key packets received, nothing lost on loopback.
    let media = rec.media.expect("media figures in the call record");
    assert!(media.packets_sent > 50, "{media:?}");
    assert!(media.packets_received >= 2, "{media:?}");
    assert_eq!(media.packets_lost, 0, "{media:?}");

    // The record reaches calls.jsonl (written by the writer task).
    let path = dir.path().join("data/calls.jsonl");
    let mut line = String::new();
    for _ in 0..100 {
        line = std::fs::read_to_string(&path).unwrap_or_default();
        if !line.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(json["call_id"], id.as_str());
    assert_eq!(json["digits"], "12");
    assert_eq!(json["end_reason"], "flow_hangup");
    assert!(
        json["media"]["packets_sent"].as_u64().unwrap_or(0) > 50,
        "{json}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn sip_info_keys_walk_the_menu() {
    let dir = setup(TEST_FLOW);
    let (engine, mut events) = start_in(dir.path()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    let id = caller.call_id().to_owned();

    let mut seen = events_until(&mut events, &id, entered("menu")).await;
    assert_eq!(caller.press_info('1').await.unwrap(), 200);
    seen.extend(events_until(&mut events, &id, entered("impots")).await);
    seen.extend(events_until(&mut events, &id, entered("menu")).await);
    assert_eq!(caller.press_info('2').await.unwrap(), 200);
    wait_bye(&mut caller).await;
    seen.extend(events_until(&mut events, &id, |e| matches!(e, CallEvent::Ended(_))).await);
    assert_eq!(
        nodes(&seen),
        [
            "main.accueil",
            "main.menu",
            "main.impots",
            "main.menu",
            "main.caf"
        ]
    );
    assert_eq!(record(&seen).digits, "12");
    engine.shutdown().await;
}

#[tokio::test]
async fn agent_key_hears_the_unavailable_message_then_the_fallback() {
    let dir = setup(TEST_FLOW);
    let (engine, mut events) = start_in(dir.path()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    let id = caller.call_id().to_owned();

    let mut seen = events_until(&mut events, &id, entered("menu")).await;
    caller.press_rfc4733("0").unwrap();
    seen.extend(events_until(&mut events, &id, entered("conseiller")).await);
    let asked = tokio::time::Instant::now();
    caller.idle(Duration::from_millis(100)).await.unwrap();
    let voiced_before = caller.rtp_stats().voiced;
    seen.extend(events_until(&mut events, &id, entered("au_revoir")).await);
    let waited = asked.elapsed();
    // `attente` (200 ms) then the system message (600 ms) play before the fallback.
    assert!(
        waited >= Duration::from_millis(700),
        "the unavailable message plays before the fallback: {waited:?}"
    );
    wait_bye(&mut caller).await;
    let stats = caller.rtp_stats();
    assert!(
        stats.voiced >= voiced_before + 30,
        "the unavailable message is heard: {stats:?}"
    );
    seen.extend(events_until(&mut events, &id, |e| matches!(e, CallEvent::Ended(_))).await);
    assert_eq!(
        nodes(&seen),
        [
            "main.accueil",
            "main.menu",
            "main.conseiller",
            "main.au_revoir"
        ]
    );
    assert_eq!(record(&seen).end_reason, "flow_hangup");
    engine.shutdown().await;
}

#[tokio::test]
async fn the_shipped_flows_and_prompts_serve_a_call() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.paths.flows = root.join("flows");
    config.paths.audio = root.join("audio");
    config.paths.data = data.path().to_owned();
    let engine = start(config).await;
    let mut events = engine.call_events();
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    let id = caller.call_id().to_owned();
    let mut seen = events_until(&mut events, &id, entered("accueil")).await;
    caller.idle(Duration::from_millis(800)).await.unwrap();
    let stats = caller.rtp_stats();
    assert!(
        stats.voiced >= 20,
        "the recorded welcome is heard: {stats:?}"
    );
    seen.extend(events_until(&mut events, &id, entered("menu")).await);
    // "5": opening hours, from the main menu (the key barges in).
    caller.press_rfc4733("5").unwrap();
    seen.extend(
        events_until(
            &mut events,
            &id,
            |e| matches!(e, CallEvent::NodeEntered { flow, .. } if flow == "horaires"),
        )
        .await,
    );
    let walked = nodes(&seen);
    assert_eq!(walked.first().map(String::as_str), Some("main.accueil"));
    assert!(walked.contains(&"main.menu".to_owned()), "{walked:?}");
    assert!(
        walked.last().is_some_and(|n| n.starts_with("horaires.")),
        "{walked:?}"
    );
    assert_eq!(caller.bye().await.unwrap(), 200);
    let end = events_until(&mut events, &id, |e| matches!(e, CallEvent::Ended(_))).await;
    assert_eq!(record(&end).end_reason, "remote_bye");
    engine.shutdown().await;
}
