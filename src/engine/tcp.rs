//! One task per SIP TCP connection: frames the byte stream into messages and forwards them
//! to the SIP task; writes what the SIP task sends back.
//!
//! Input: the stream, a [`ConnId`], the bounded channel into the SIP task, and a channel of
//! bytes to write. Output: [`SipCommand::TcpMessage`] for every framed message, then
//! [`SipCommand::TcpClosed`] when the connection ends (peer close, read/write error, a
//! framing error such as an oversized message, idle timeout, or the SIP task dropping the
//! write channel after everything queued was written).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant as TokioInstant, sleep_until};

use crate::engine::sip::SipCommand;
use crate::sip::endpoint::ConnId;
use crate::sip::message::StreamFramer;

/// Settings shared by every connection task.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub idle_timeout: Duration,
    pub max_message: usize,
}

/// How long an outbound connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Open a connection to `peer` (for requests we send to a TCP peer with no open
/// connection), then run it like an accepted one.
pub async fn connect_and_run(
    conn: ConnId,
    peer: SocketAddr,
    to_sip: mpsc::Sender<SipCommand>,
    writes: mpsc::Receiver<Bytes>,
    limits: ConnLimits,
) {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => run(stream, conn, peer, to_sip, writes, limits).await,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "SIP TCP connect failed");
            let _ = to_sip.send(SipCommand::TcpClosed { conn }).await;
        }
        Err(_) => {
            tracing::warn!(%peer, "SIP TCP connect timed out");
            let _ = to_sip.send(SipCommand::TcpClosed { conn }).await;
        }
    }
}

/// Serve one connection until it closes; always ends by sending `TcpClosed`.
pub async fn run(
    stream: TcpStream,
    conn: ConnId,
    peer: SocketAddr,
    to_sip: mpsc::Sender<SipCommand>,
    mut writes: mpsc::Receiver<Bytes>,
    limits: ConnLimits,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut framer = StreamFramer::new(limits.max_message);
    let mut buf = vec![0u8; 16 * 1024];
    let mut idle_deadline = TokioInstant::now() + limits.idle_timeout;
    let reason = 'conn: loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break 'conn "closed by peer",
                    Ok(n) => n,
                    Err(_) => break 'conn "read error",
                };
                idle_deadline = TokioInstant::now() + limits.idle_timeout;
                // n <= buf.len() by the contract of `read`.
                framer.push(&buf[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(bytes)) => {
                            let msg = SipCommand::TcpMessage { conn, from: peer, bytes };
                            if to_sip.send(msg).await.is_err() {
                                break 'conn "engine stopped";
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "closing SIP TCP connection");
                            break 'conn "framing error";
                        }
                    }
                }
            }
            write = writes.recv() => match write {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break 'conn "write error";
                    }
                    idle_deadline = TokioInstant::now() + limits.idle_timeout;
                }
                None => break 'conn "closed by engine",
            },
            _ = sleep_until(idle_deadline) => break 'conn "idle timeout",
        }
    };
    tracing::debug!(%peer, conn = conn.0, reason, "SIP TCP connection closed");
    let _ = writer.shutdown().await;
    let _ = to_sip.send(SipCommand::TcpClosed { conn }).await;
}
