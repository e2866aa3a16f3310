//! What calls leave behind: one [`CallRecord`] per call, appended as a JSON line to
//! `<paths.data>/calls.jsonl` by a single writer task (the SQLite store is a later issue),
//! and a broadcast of live [`CallEvent`]s (nodes entered, digits, records) that tests and,
//! later, the dashboard subscribe to.
//!
//! Input: records from call tasks ([`Records::write`], never blocks). Output: the file, the
//! broadcast. The writer appends through `tokio::fs` (its blocking pool), so the runtime
//! never waits on the disk; a write error is logged and the record is dropped.
//!
//! ```no_run
//! # async fn demo() {
//! use guichet::engine::records::Records;
//! let records = Records::start("./data".into());
//! let mut events = records.subscribe();
//! # }
//! ```

use std::path::PathBuf;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};

/// Events kept for slow subscribers before they miss some.
const EVENT_CAPACITY: usize = 1024;

/// One call, as written to `calls.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// Start (answer time), RFC 3339 in Europe/Paris.
    pub start: String,
    pub duration_ms: u64,
    /// `caller_hangup`, `flow_hangup`, `media_timeout`, `engine`...
    pub end_reason: String,
    /// Flow set version (content hash) the call ran on.
    pub flow_version: Option<String>,
    pub nodes_visited: u32,
    /// Keys pressed, in order.
    pub digits: String,
    /// The caller's last RTCP report about our stream (None when it sent none).
    pub quality: Option<QualityRecord>,
    /// Our own figures of the call's RTP, both ways (None when media never started).
    pub media: Option<crate::engine::media::MediaStats>,
}

/// The last RTCP report the caller's side sent about our stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityRecord {
    pub fraction_lost: f64,
    pub cumulative_lost: i32,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
}

/// A live event of one call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    NodeEntered {
        call_id: String,
        flow: String,
        node: String,
        version: String,
    },
    Digit {
        call_id: String,
        digit: char,
    },
    /// The call ended.
    Ended(Box<CallRecord>),
}

/// The record writer and the event broadcast (cheap to clone).
#[derive(Debug, Clone)]
pub struct Records {
    writer: mpsc::UnboundedSender<CallRecord>,
    events: broadcast::Sender<CallEvent>,
}

impl Records {
    /// Start the writer task (on the current runtime) appending to `<data>/calls.jsonl`.
    pub fn start(data_dir: PathBuf) -> Records {
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        tokio::spawn(writer(data_dir, rx));
        Records { writer: tx, events }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CallEvent> {
        self.events.subscribe()
    }

    /// Publish a live event (dropped when nobody listens).
    pub fn publish(&self, event: CallEvent) {
        let _ = self.events.send(event);
    }

    /// Queue a record for the file and publish it.
    pub fn write(&self, record: CallRecord) {
        self.publish(CallEvent::Ended(Box::new(record.clone())));
        if self.writer.send(record).is_err() {
            tracing::warn!("call record writer stopped: record dropped");
        }
    }
}

async fn writer(dir: PathBuf, mut rx: mpsc::UnboundedReceiver<CallRecord>) {
    let path = dir.join("calls.jsonl");
    let mut file: Option<tokio::fs::File> = None;
    while let Some(record) = rx.recv().await {
        let mut line = match serde_json::to_vec(&record) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "call record not serialisable");
                continue;
            }
        };
        line.push(b'\n');
        if file.is_none() {
            if let Err(e) = tokio::fs::create_dir_all(&dir).await {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot create the data directory");
                continue;
            }
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
            {
                Ok(f) => file = Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "cannot open calls.jsonl");
                    continue;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            let result = async {
                f.write_all(&line).await?;
                f.flush().await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "call record not written");
                file = None;
            }
        }
    }
}
