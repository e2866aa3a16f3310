//! Hot reload of the flows over real sockets: a broken edit is refused (the last good set
//! keeps serving new calls), a good edit serves the next call while a call in progress
//! finishes on the version it started with; a broken set at startup is a startup error.

mod common;

use std::time::Duration;

use common::{caller_for, start, test_config, tone};
use guichet::config::Config;
use guichet::engine::flows::FlowStatus;
use guichet::engine::records::CallEvent;
use guichet::testcall::TestCaller;
use tokio::sync::broadcast;

const FLOW: &str = r#"
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
  menu: "Pour les impôts, tapez 1. Pour un conseiller, tapez 0."
  impots: "Voici les impôts."
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
      no_input: { then: conseiller }
      invalid: { then: conseiller }
  impots:
    play: { prompts: [impots], next: au_revoir }
  conseiller:
    queue: { name: accueil, priority: 0, prompts: [attente], fallback: au_revoir }
  au_revoir:
    hangup: { prompts: [au_revoir] }
"#;

fn setup() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/main.yaml"), FLOW).unwrap();
    for name in ["bienvenue", "menu", "impots", "attente", "au_revoir"] {
        tone(&dir.path().join(format!("audio/fr/main/{name}.wav")), 200);
    }
    tone(&dir.path().join("audio/fr/system/indisponible.wav"), 200);
    let mut c = test_config();
    c.paths.flows = dir.path().join("flows");
    c.paths.audio = dir.path().join("audio");
    c.paths.data = dir.path().join("data");
    (dir, c)
}

/// The version of the first node `call_id` enters named `node` (bounded wait).
async fn version_at(rx: &mut broadcast::Receiver<CallEvent>, call_id: &str, node: &str) -> String {
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let CallEvent::NodeEntered {
                call_id: c,
                node: n,
                version,
                ..
            } = rx.recv().await.expect("engine events")
                && c == call_id
                && n == node
            {
                return version;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("call {call_id} never entered {node}"))
}

async fn wait_status(
    rx: &mut tokio::sync::watch::Receiver<FlowStatus>,
    what: &str,
    pred: impl Fn(&FlowStatus) -> bool,
) -> FlowStatus {
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = rx.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            rx.changed().await.expect("flows status");
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", rx.borrow()))
}

#[tokio::test]
async fn edits_are_checked_swapped_for_new_calls_and_never_touch_calls_in_progress() {
    let (dir, config) = setup();
    let engine = start(config).await;
    let mut events = engine.call_events();
    let mut status = engine.flows().status();
    let v1 = engine.flows().version().to_owned();
    let main = dir.path().join("flows/main.yaml");

    // Call A starts on v1 and waits in the menu.
    let mut a = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(a.invite().await.unwrap(), 200);
    let a_id = a.call_id().to_owned();
    assert_eq!(version_at(&mut events, &a_id, "menu").await, v1);

    // A broken edit (dangling goto) is refused; v1 keeps serving.
    std::fs::write(&main, FLOW.replace("goto: impots", "goto: impot")).unwrap();
    let refused = wait_status(&mut status, "the broken set to be refused", |s| {
        s.refused == 1
    })
    .await;
    assert_eq!(refused.version, v1);
    assert_eq!(refused.reloads, 0);
    assert!(
        refused
            .last_errors
            .iter()
            .any(|e| e.contains("main.yaml:") && e.contains("impot")),
        "errors name file:line:column: {:?}",
        refused.last_errors
    );
    assert_eq!(engine.flows().version(), v1);

    // A new call still works, on v1.
    let mut b = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(b.invite().await.unwrap(), 200);
    let b_id = b.call_id().to_owned();
    assert_eq!(version_at(&mut events, &b_id, "accueil").await, v1);
    assert_eq!(b.bye().await.unwrap(), 200);

    // A good edit (a new option) is swapped in.
    let good = FLOW.replace(
        "\"1\": { goto: impots }",
        "\"1\": { goto: impots }\n        \"2\": { goto: au_revoir }",
    );
    let good = good.replace(
        "tapez 1. Pour un",
        "tapez 1. Pour terminer, tapez 2. Pour un",
    );
    std::fs::write(&main, good).unwrap();
    let swapped = wait_status(&mut status, "the good set to be swapped in", |s| {
        s.reloads == 1
    })
    .await;
    let v2 = swapped.version.clone();
    assert_ne!(v2, v1);
    assert_eq!(engine.flows().version(), v2);

    // The next call runs v2.
    let mut c = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(c.invite().await.unwrap(), 200);
    let c_id = c.call_id().to_owned();
    assert_eq!(version_at(&mut events, &c_id, "accueil").await, v2);
    assert_eq!(c.bye().await.unwrap(), 200);

    // Call A goes on with v1.
    a.press_rfc4733("1").unwrap();
    assert_eq!(version_at(&mut events, &a_id, "impots").await, v1);
    assert!(a.wait_for_bye(Duration::from_secs(10)).await.unwrap());
    engine.shutdown().await;
}

#[tokio::test]
async fn a_broken_flow_set_at_startup_is_an_error_with_its_location() {
    let (dir, config) = setup();
    std::fs::write(
        dir.path().join("flows/main.yaml"),
        FLOW.replace("next: menu", "next: menus"),
    )
    .unwrap();
    let err = guichet::engine::start(config)
        .await
        .expect_err("a broken flow set must not start");
    let text = err.to_string();
    assert!(text.contains("paths.flows"), "{text}");
    assert!(text.contains("main.yaml:"), "{text}");
    assert!(text.contains("menus"), "{text}");
}

#[tokio::test]
async fn an_unknown_flow_entry_is_a_startup_error_naming_the_flows() {
    let (_dir, mut config) = setup();
    config.flows.entry = "mian".to_owned();
    let err = guichet::engine::start(config)
        .await
        .expect_err("an entry that names nothing must not start");
    let text = err.to_string();
    assert!(text.contains("flows.entry"), "{text}");
    assert!(text.contains("`mian`") && text.contains("main"), "{text}");

    // A node of a flow is a valid entry.
    let (_dir, mut config) = setup();
    config.flows.entry = "main.menu".to_owned();
    let engine = guichet::engine::start(config)
        .await
        .expect("main.menu exists");
    engine.shutdown().await;
}
