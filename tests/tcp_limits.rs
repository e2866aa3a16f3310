//! SIP over TCP limits: connection cap, idle timeout, oversized messages.

mod common;

use std::time::Duration;

use common::{start, test_config, wait_for};
use guichet::config::DurationValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// True when the engine closes `stream` within `within`.
async fn closed_by_engine(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn connections_past_the_cap_are_refused() {
    let mut config = test_config();
    config.limits.tcp_max_connections = 2;
    let engine = start(config).await;
    let mut a = TcpStream::connect(engine.sip_addr()).await.unwrap();
    let mut b = TcpStream::connect(engine.sip_addr()).await.unwrap();
    wait_for(&engine, "two connections", |s| s.tcp_connections == 2).await;
    let mut c = TcpStream::connect(engine.sip_addr()).await.unwrap();
    assert!(
        closed_by_engine(&mut c, Duration::from_secs(2)).await,
        "third connection closed"
    );
    wait_for(&engine, "the refusal counted", |s| s.tcp_refused == 1).await;
    assert!(!closed_by_engine(&mut a, Duration::from_millis(100)).await);
    assert!(!closed_by_engine(&mut b, Duration::from_millis(100)).await);

    // Once one closes, a new connection is accepted again.
    drop(a);
    wait_for(&engine, "one connection", |s| s.tcp_connections == 1).await;
    let mut d = TcpStream::connect(engine.sip_addr()).await.unwrap();
    assert!(!closed_by_engine(&mut d, Duration::from_millis(200)).await);
    engine.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut config = test_config();
    config.limits.tcp_idle_timeout = DurationValue(Duration::from_millis(300));
    let engine = start(config).await;
    let mut s = TcpStream::connect(engine.sip_addr()).await.unwrap();
    assert!(closed_by_engine(&mut s, Duration::from_secs(3)).await);
    wait_for(&engine, "no connection", |s| s.tcp_connections == 0).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn oversized_stream_message_closes_the_connection() {
    let mut config = test_config();
    config.limits.max_message_size = 2048;
    let engine = start(config).await;
    let mut s = TcpStream::connect(engine.sip_addr()).await.unwrap();
    let head = "OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\nContent-Length: 100000\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    assert!(closed_by_engine(&mut s, Duration::from_secs(3)).await);
    engine.shutdown().await;
}
