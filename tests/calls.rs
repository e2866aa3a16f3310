//! Black-box call tests: the engine in-process on free loopback ports, driven by the
//! library's test caller over real UDP/TCP sockets. Each test has its own engine, so they
//! run in parallel.

mod common;

use std::time::Duration;

use common::{caller_for, start, test_config, wait_for};
use guichet::config::DurationValue;
use guichet::sip::endpoint::Transport;
use guichet::testcall::{AckMode, CallerEvent, Offer, TestCaller};

#[tokio::test]
async fn basic_call_answers_streams_silence_and_ends_with_bye() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();

    assert_eq!(caller.invite().await.unwrap(), 200);
    let answer = caller
        .remote_sdp()
        .expect("200 OK carries an SDP answer")
        .clone();
    assert!(
        answer.addr.is_some(),
        "answer has an RTP address: {answer:?}"
    );
    assert_eq!(answer.direction, "sendrecv");
    wait_for(&engine, "one active call", |s| {
        s.active_calls == 1 && s.call_tasks == 1
    })
    .await;

    caller.idle(Duration::from_millis(600)).await.unwrap();
    assert!(
        caller.rtp_received() >= 10,
        "silence RTP flows: {}",
        caller.rtp_received()
    );
    assert!(caller.rtp_sent() >= 10);

    assert_eq!(caller.bye().await.unwrap(), 200);
    wait_for(&engine, "the call to end", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.calls_started, 1);
    assert_eq!(snapshot.call_panics, 0);
    engine.shutdown().await;
}

#[tokio::test]
async fn cancel_before_answer_gets_487() {
    let mut config = test_config();
    config.sip.answer_delay = DurationValue(Duration::from_secs(30));
    let engine = start(config).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();

    caller.start_invite().await.unwrap();
    assert_eq!(caller.wait_provisional().await.unwrap(), 180);
    let (cancel_code, invite_code) = caller.cancel().await.unwrap();
    assert_eq!(cancel_code, 200);
    assert_eq!(invite_code, 487);
    wait_for(&engine, "the cancelled call to end", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn reinvite_holds_and_resumes() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    caller.idle(Duration::from_millis(300)).await.unwrap();
    assert!(caller.rtp_received() > 0);

    // Hold: we only send; the engine must answer recvonly and stop sending.
    assert_eq!(caller.reinvite("sendonly").await.unwrap(), 200);
    assert_eq!(caller.remote_sdp().unwrap().direction, "recvonly");
    caller.idle(Duration::from_millis(200)).await.unwrap(); // packets in flight settle
    let on_hold = caller.rtp_received();
    caller.idle(Duration::from_millis(400)).await.unwrap();
    assert!(
        caller.rtp_received() <= on_hold + 1,
        "engine kept sending on hold: {} -> {}",
        on_hold,
        caller.rtp_received()
    );

    // Resume.
    assert_eq!(caller.reinvite("sendrecv").await.unwrap(), 200);
    assert_eq!(caller.remote_sdp().unwrap().direction, "sendrecv");
    caller.idle(Duration::from_millis(400)).await.unwrap();
    assert!(
        caller.rtp_received() >= on_hold + 10,
        "RTP resumes after hold"
    );

    assert_eq!(caller.bye().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn engine_hangs_up_at_max_call_duration() {
    let mut config = test_config();
    config.limits.max_call_duration = DurationValue(Duration::from_secs(1));
    let engine = start(config).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);

    assert!(
        caller.wait_for_bye(Duration::from_secs(5)).await.unwrap(),
        "engine sends BYE"
    );
    assert!(caller.events().contains(&CallerEvent::Request {
        method: "BYE".into(),
        answered: 200
    }));
    wait_for(&engine, "the call to end", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn lost_ack_makes_engine_retransmit_then_bye() {
    let mut config = test_config();
    config.sip.t1 = DurationValue(Duration::from_millis(50)); // 64*T1 = 3.2 s
    config.sip.t2 = DurationValue(Duration::from_millis(400));
    let engine = start(config).await;
    let mut caller_config = caller_for(engine.sip_addr());
    caller_config.ack = AckMode::Drop;
    let mut caller = TestCaller::new(caller_config).await.unwrap();

    assert_eq!(caller.invite().await.unwrap(), 200);
    assert!(
        caller.wait_for_bye(Duration::from_secs(8)).await.unwrap(),
        "BYE after 64*T1"
    );
    assert!(
        caller.ok_retransmissions() >= 3,
        "2xx retransmitted while unacknowledged: {}",
        caller.ok_retransmissions()
    );
    assert!(
        !caller
            .events()
            .iter()
            .any(|e| matches!(e, CallerEvent::Sent { method } if method == "ACK"))
    );
    wait_for(&engine, "the call to end", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn options_is_answered_200() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.options().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn bye_for_unknown_dialog_gets_481() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.out_of_dialog("BYE").await.unwrap(), 481);
    engine.shutdown().await;
}

#[tokio::test]
async fn unknown_method_gets_405() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.out_of_dialog("PUBLISH").await.unwrap(), 405);
    engine.shutdown().await;
}

#[tokio::test]
async fn offer_with_only_g729_gets_488() {
    let engine = start(test_config()).await;
    let mut caller_config = caller_for(engine.sip_addr());
    caller_config.offer = Offer::Only(vec![(18, "G729/8000".into())]);
    let mut caller = TestCaller::new(caller_config).await.unwrap();
    assert_eq!(caller.invite().await.unwrap(), 488);
    wait_for(&engine, "no call left", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn call_over_tcp() {
    let engine = start(test_config()).await;
    let mut caller_config = caller_for(engine.sip_addr());
    caller_config.transport = Transport::Tcp;
    let mut caller = TestCaller::new(caller_config).await.unwrap();

    assert_eq!(caller.invite().await.unwrap(), 200);
    wait_for(&engine, "a TCP connection and a call", |s| {
        s.tcp_connections == 1 && s.active_calls == 1
    })
    .await;
    caller.idle(Duration::from_millis(300)).await.unwrap();
    assert!(caller.rtp_received() > 0);
    assert_eq!(caller.bye().await.unwrap(), 200);
    wait_for(&engine, "the call to end", |s| s.active_calls == 0).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn engine_bye_reaches_tcp_caller() {
    let mut config = test_config();
    config.limits.max_call_duration = DurationValue(Duration::from_secs(1));
    let engine = start(config).await;
    let mut caller_config = caller_for(engine.sip_addr());
    caller_config.transport = Transport::Tcp;
    let mut caller = TestCaller::new(caller_config).await.unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    assert!(caller.wait_for_bye(Duration::from_secs(5)).await.unwrap());
    engine.shutdown().await;
}

#[tokio::test]
async fn over_capacity_gets_503() {
    let mut config = test_config();
    config.limits.max_calls = 1;
    let engine = start(config).await;
    let mut first = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(first.invite().await.unwrap(), 200);

    let mut second = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(second.invite().await.unwrap(), 503);
    wait_for(&engine, "the 503 to be counted", |s| {
        s.sip.over_capacity == 1
    })
    .await;

    assert_eq!(first.bye().await.unwrap(), 200);
    wait_for(&engine, "the call to end", |s| s.active_calls == 0).await;
    // Capacity is back.
    let mut third = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(third.invite().await.unwrap(), 200);
    assert_eq!(third.bye().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn shutdown_hangs_up_active_calls() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    wait_for(&engine, "one call", |s| s.active_calls == 1).await;

    let shutdown = tokio::spawn(engine.shutdown());
    assert!(
        caller.wait_for_bye(Duration::from_secs(3)).await.unwrap(),
        "BYE on shutdown"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown is bounded")
        .unwrap();
}

#[tokio::test]
async fn garbage_does_not_disturb_calls() {
    let mut config = test_config();
    config.limits.max_message_size = 4096;
    let engine = start(config).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);

    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for payload in [
        &b"\x00\x01garbage"[..],
        b"INVITE\r\n\r\n",
        &[0xffu8; 2000][..],
    ] {
        junk.send_to(payload, engine.sip_addr()).await.unwrap();
    }
    let oversized = vec![b'A'; 5000];
    junk.send_to(&oversized, engine.sip_addr()).await.unwrap();
    wait_for(&engine, "the junk to be counted", |s| {
        s.oversized_datagrams == 1 && s.sip.dropped_malformed + s.sip.refused >= 1
    })
    .await;

    caller.idle(Duration::from_millis(200)).await.unwrap();
    assert_eq!(caller.bye().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_panicking_call_task_ends_only_its_call() {
    let hooks = guichet::engine::Hooks {
        panic_on_number: Some("6666".into()),
    };
    let engine = guichet::engine::start_with(test_config(), hooks)
        .await
        .unwrap();
    let mut healthy = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(healthy.invite().await.unwrap(), 200);

    let mut doomed_config = caller_for(engine.sip_addr());
    doomed_config.uri = format!("sip:6666@{}", engine.sip_addr()).parse().unwrap();
    let mut doomed = TestCaller::new(doomed_config).await.unwrap();
    assert_eq!(doomed.invite().await.unwrap(), 200);
    assert!(
        doomed.wait_for_bye(Duration::from_secs(5)).await.unwrap(),
        "its call is ended with BYE"
    );
    wait_for(&engine, "the panic to be counted", |s| {
        s.call_panics == 1 && s.active_calls == 1
    })
    .await;

    // The other call is untouched and the engine still takes calls.
    let before = healthy.rtp_received();
    healthy.idle(Duration::from_millis(300)).await.unwrap();
    assert!(healthy.rtp_received() > before);
    assert!(!healthy.bye_received());
    let mut next = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(next.invite().await.unwrap(), 200);
    assert_eq!(next.bye().await.unwrap(), 200);
    assert_eq!(healthy.bye().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn silent_caller_is_hung_up_after_no_rtp_timeout() {
    let mut config = test_config();
    config.limits.no_rtp_timeout = DurationValue(Duration::from_millis(800));
    let engine = start(config).await;
    let mut caller_config = caller_for(engine.sip_addr());
    caller_config.send_rtp = false;
    let mut caller = TestCaller::new(caller_config).await.unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    assert!(
        caller.wait_for_bye(Duration::from_secs(5)).await.unwrap(),
        "BYE after no RTP"
    );
    assert_eq!(caller.rtp_sent(), 0);
    engine.shutdown().await;
}

#[tokio::test]
async fn talking_caller_is_not_hung_up_by_the_rtp_watchdog() {
    let mut config = test_config();
    config.limits.no_rtp_timeout = DurationValue(Duration::from_millis(500));
    let engine = start(config).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    caller.idle(Duration::from_millis(1200)).await.unwrap();
    assert!(!caller.bye_received());
    assert_eq!(caller.bye().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn invite_without_sdp_gets_an_offer_answered_in_the_ack() {
    let engine = start(test_config()).await;
    let mut caller_config = caller_for(engine.sip_addr());
    caller_config.offer = Offer::None;
    let mut caller = TestCaller::new(caller_config).await.unwrap();
    assert_eq!(caller.invite().await.unwrap(), 200);
    let offer = caller
        .remote_sdp()
        .expect("the 200 carries the engine's offer")
        .clone();
    assert!(
        offer.payload_types.contains(&0) && offer.payload_types.contains(&8),
        "{offer:?}"
    );
    caller.idle(Duration::from_millis(400)).await.unwrap();
    assert!(
        caller.rtp_received() > 0,
        "media flows once the ACK carried our answer"
    );
    assert_eq!(caller.bye().await.unwrap(), 200);
    engine.shutdown().await;
}

#[tokio::test]
async fn no_free_rtp_port_gets_503() {
    let mut config = test_config();
    config.rtp.ports = "29990-29991".parse().unwrap(); // one RTP/RTCP pair
    let engine = start(config).await;
    let mut first = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(first.invite().await.unwrap(), 200);
    assert_eq!(
        first.remote_sdp().and_then(|s| s.addr).map(|a| a.port()),
        Some(29990)
    );

    let mut second = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(second.invite().await.unwrap(), 503);
    assert_eq!(first.bye().await.unwrap(), 200);
    wait_for(&engine, "both calls to end", |s| {
        s.active_calls == 0 && s.call_tasks == 0
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn register_is_challenged_and_405_when_the_registrar_is_off() {
    let mut config = test_config();
    config.registrar.users = vec![guichet::config::RegistrarUser {
        user: "agent1".into(),
        password: guichet::config::Secret("s3cret".into()),
    }];
    let engine = start(config).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.out_of_dialog("REGISTER").await.unwrap(), 401);
    engine.shutdown().await;

    let mut config = test_config();
    config.registrar.enabled = false;
    let engine = start(config).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    assert_eq!(caller.out_of_dialog("REGISTER").await.unwrap(), 405);
    engine.shutdown().await;
}

/// RFC 3261 section 8.2.1: a request with a method the UAS does not know gets 405 (with
/// Allow) or 501.
#[tokio::test]
async fn extension_method_gets_405_or_501() {
    let engine = start(test_config()).await;
    let mut caller = TestCaller::new(caller_for(engine.sip_addr()))
        .await
        .unwrap();
    let code = caller.out_of_dialog("FOO").await.unwrap();
    assert!(code == 405 || code == 501, "{code}");
    engine.shutdown().await;
}
