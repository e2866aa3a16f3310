//! A small fixed-delay jitter buffer for received audio that is recorded or bridged.
//!
//! [`JitterBuffer::push`] stores a packet by sequence number (wrap-safe) in a ring of
//! `capacity` slots whose byte buffers are reused (no allocation per packet once warm).
//! [`JitterBuffer::pop`] is called once per 20 ms tick and always yields one frame:
//! - `Buffering`: silence while the first packet waits out the target delay (e.g. 3 frames
//!   = 60 ms, counted in ticks, so the delay is fixed in time whatever the arrival pattern);
//! - `Audio`: the packet due at this tick;
//! - `Concealed`: that packet is missing, the previous frame is repeated once (the simplest
//!   packet loss concealment, good enough for speech over a short gap);
//! - `Silence`: a longer gap, or the stream went quiet.
//!
//! Late packets (their tick has passed) and duplicates are dropped and counted. A packet
//! whose sequence number is too far ahead for the ring, or whose timestamp disagrees with
//! its sequence number by more than `resync_after` samples (the sender restarted, a
//! re-INVITE switched streams), flushes the buffer and starts buffering again from it.
//!
//! ```
//! use guichet::media::jitter::{FrameKind, JitterBuffer, JitterConfig};
//!
//! let mut jb = JitterBuffer::new(JitterConfig::default()); // 60 ms, PCMU silence
//! jb.push(1000, 160_000, &[1; 160]);
//! jb.push(1001, 160_160, &[2; 160]);
//! for _ in 0..3 {
//!     assert_eq!(jb.pop().kind, FrameKind::Buffering);
//! }
//! assert_eq!(jb.pop().payload, &[1; 160]);
//! assert_eq!(jb.pop().payload, &[2; 160]);
//! assert_eq!(jb.pop().kind, FrameKind::Concealed); // 1002 never came: repeat 1001
//! ```

/// How to build a [`JitterBuffer`].
#[derive(Debug, Clone)]
pub struct JitterConfig {
    /// Fixed playout delay, in frames (3 frames of 20 ms = 60 ms).
    pub target_frames: u16,
    /// Ring size in frames; packets further ahead than this resync the buffer.
    pub capacity: u16,
    /// RTP timestamp units per frame (160 for 20 ms at 8 kHz).
    pub samples_per_frame: u32,
    /// Byte of silence for the codec (0xFF for PCMU, 0xD5 for PCMA).
    pub silence_byte: u8,
    /// Bytes in one frame of silence (160 for 20 ms of G.711).
    pub frame_bytes: usize,
    /// Timestamp disagreement (in samples) that forces a resync (8000 = 1 s).
    pub resync_after: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            target_frames: 3,
            capacity: 32,
            samples_per_frame: 160,
            silence_byte: 0xFF,
            frame_bytes: 160,
            resync_after: 8000,
        }
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Stored,
    /// Its playout tick has passed.
    Late,
    Duplicate,
    /// The buffer was flushed and restarts from this packet.
    Resynced,
}

/// What kind of frame [`JitterBuffer::pop`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Buffering,
    Audio,
    Concealed,
    Silence,
}

/// One 20 ms frame of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: FrameKind,
    /// Sequence number of the packet played (or of the slot concealed).
    pub seq: Option<u16>,
    pub payload: &'a [u8],
}

/// Counters of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub stored: u64,
    pub played: u64,
    pub concealed: u64,
    pub silence: u64,
    pub late: u64,
    pub duplicates: u64,
    pub resyncs: u64,
    /// Times the stream went quiet for longer than the ring and playout stopped.
    pub stops: u64,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    filled: bool,
    seq: u16,
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Playout {
    Idle,
    Buffering {
        base_seq: u16,
        base_ts: u32,
        highest: u16,
        ticks: u16,
    },
    Playing {
        next_seq: u16,
        next_ts: u32,
        missing_run: u32,
    },
}

/// Orders packets by sequence number and plays them out at a fixed delay.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Vec<Slot>,
    state: Playout,
    last: Vec<u8>,
    silence: Vec<u8>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let mut config = config;
        config.capacity = config.capacity.max(2);
        config.target_frames = config.target_frames.min(config.capacity - 1);
        let slots = (0..config.capacity)
            .map(|_| Slot {
                filled: false,
                seq: 0,
                data: Vec::with_capacity(config.frame_bytes),
            })
            .collect();
        let silence = vec![config.silence_byte; config.frame_bytes];
        JitterBuffer {
            slots,
            state: Playout::Idle,
            last: Vec::with_capacity(config.frame_bytes),
            silence,
            stats: JitterStats::default(),
            config,
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets stored and not yet played.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.filled).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index(&self, seq: u16) -> usize {
        usize::from(seq) % self.slots.len()
    }

    fn store(&mut self, seq: u16, payload: &[u8]) -> PushOutcome {
        let i = self.index(seq);
        // `i < slots.len()` by the modulo above.
        let slot = &mut self.slots[i];
        if slot.filled && slot.seq == seq {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        slot.filled = true;
        slot.seq = seq;
        slot.data.clear();
        slot.data.extend_from_slice(payload);
        self.stats.stored += 1;
        PushOutcome::Stored
    }

    fn flush(&mut self) {
        for s in &mut self.slots {
            s.filled = false;
        }
    }

    fn resync(&mut self, seq: u16, ts: u32, payload: &[u8]) -> PushOutcome {
        self.flush();
        self.stats.resyncs += 1;
        self.state = Playout::Buffering {
            base_seq: seq,
            base_ts: ts,
            highest: seq,
            ticks: 0,
        };
        self.store(seq, payload);
        PushOutcome::Resynced
    }

    fn ts_disagrees(&self, ref_seq: u16, ref_ts: u32, seq: u16, ts: u32) -> bool {
        let d = i64::from(seq.wrapping_sub(ref_seq) as i16);
        let expected = i64::from(ref_ts) + d * i64::from(self.config.samples_per_frame);
        // Compare on the 32-bit circle.
        let diff = (ts.wrapping_sub(expected as u32) as i32).unsigned_abs();
        diff > self.config.resync_after
    }

    /// Store one received packet.
    pub fn push(&mut self, seq: u16, ts: u32, payload: &[u8]) -> PushOutcome {
        let cap = i32::from(self.config.capacity);
        match self.state {
            Playout::Idle => {
                self.state = Playout::Buffering {
                    base_seq: seq,
                    base_ts: ts,
                    highest: seq,
                    ticks: 0,
                };
                self.store(seq, payload)
            }
            Playout::Buffering {
                base_seq,
                base_ts,
                highest,
                ticks,
            } => {
                if self.ts_disagrees(base_seq, base_ts, seq, ts) {
                    return self.resync(seq, ts, payload);
                }
                let from_base = i32::from(seq.wrapping_sub(base_seq) as i16);
                let span_high = i32::from(highest.wrapping_sub(base_seq) as i16);
                if from_base >= cap || (from_base < 0 && span_high - from_base >= cap) {
                    return self.resync(seq, ts, payload);
                }
                let (base_seq, base_ts) = if from_base < 0 {
                    // An earlier packet overtaken by a later one: play from it.
                    (seq, ts)
                } else {
                    (base_seq, base_ts)
                };
                let highest = if from_base > span_high { seq } else { highest };
                self.state = Playout::Buffering {
                    base_seq,
                    base_ts,
                    highest,
                    ticks,
                };
                self.store(seq, payload)
            }
            Playout::Playing {
                next_seq, next_ts, ..
            } => {
                let d = i32::from(seq.wrapping_sub(next_seq) as i16);
                if self.ts_disagrees(next_seq, next_ts, seq, ts) {
                    return self.resync(seq, ts, payload);
                }
                if d < 0 {
                    self.stats.late += 1;
                    return PushOutcome::Late;
                }
                if d >= cap {
                    return self.resync(seq, ts, payload);
                }
                self.store(seq, payload)
            }
        }
    }

    /// One frame for this tick. Call exactly once per frame period.
    pub fn pop(&mut self) -> Frame<'_> {
        match self.state {
            Playout::Idle => Frame {
                kind: FrameKind::Buffering,
                seq: None,
                payload: &self.silence,
            },
            Playout::Buffering {
                base_seq,
                base_ts,
                highest,
                ticks,
            } => {
                let ticks = ticks + 1;
                if ticks > self.config.target_frames {
                    self.state = Playout::Playing {
                        next_seq: base_seq,
                        next_ts: base_ts,
                        missing_run: 0,
                    };
                    return self.play();
                }
                self.state = Playout::Buffering {
                    base_seq,
                    base_ts,
                    highest,
                    ticks,
                };
                Frame {
                    kind: FrameKind::Buffering,
                    seq: None,
                    payload: &self.silence,
                }
            }
            Playout::Playing { .. } => self.play(),
        }
    }

    fn play(&mut self) -> Frame<'_> {
        let Playout::Playing {
            next_seq,
            next_ts,
            missing_run,
        } = self.state
        else {
            return Frame {
                kind: FrameKind::Silence,
                seq: None,
                payload: &self.silence,
            };
        };
        let spf = self.config.samples_per_frame;
        let i = self.index(next_seq);
        // `i < slots.len()` by the modulo in `index`.
        let slot = &mut self.slots[i];
        if slot.filled && slot.seq == next_seq {
            slot.filled = false;
            self.last.clear();
            self.last.extend_from_slice(&slot.data);
            self.state = Playout::Playing {
                next_seq: next_seq.wrapping_add(1),
                next_ts: next_ts.wrapping_add(spf),
                missing_run: 0,
            };
            self.stats.played += 1;
            return Frame {
                kind: FrameKind::Audio,
                seq: Some(next_seq),
                payload: &self.last,
            };
        }
        let missing_run = missing_run.saturating_add(1);
        if missing_run > u32::from(self.config.capacity) && self.is_empty() {
            // The stream stopped: wait for it to come back and buffer again.
            self.state = Playout::Idle;
            self.stats.stops += 1;
            self.stats.silence += 1;
            return Frame {
                kind: FrameKind::Silence,
                seq: None,
                payload: &self.silence,
            };
        }
        self.state = Playout::Playing {
            next_seq: next_seq.wrapping_add(1),
            next_ts: next_ts.wrapping_add(spf),
            missing_run,
        };
        if missing_run == 1 && !self.last.is_empty() {
            self.stats.concealed += 1;
            Frame {
                kind: FrameKind::Concealed,
                seq: Some(next_seq),
                payload: &self.last,
            }
        } else {
            self.stats.silence += 1;
            Frame {
                kind: FrameKind::Silence,
                seq: Some(next_seq),
                payload: &self.silence,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(tag: u8) -> [u8; 160] {
        [tag; 160]
    }

    /// Push then pop `n` ticks, returning (kind, first payload byte).
    fn drain(jb: &mut JitterBuffer, n: usize) -> Vec<(FrameKind, u8)> {
        (0..n)
            .map(|_| {
                let f = jb.pop();
                (f.kind, f.payload[0])
            })
            .collect()
    }

    #[test]
    fn reorders_and_delays_by_target() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // Arrivals out of order within the 60 ms window.
        assert_eq!(jb.push(11, 1760, &frame(11)), PushOutcome::Stored);
        assert_eq!(jb.push(10, 1600, &frame(10)), PushOutcome::Stored);
        assert_eq!(jb.push(13, 2080, &frame(13)), PushOutcome::Stored);
        assert_eq!(jb.push(12, 1920, &frame(12)), PushOutcome::Stored);
        let out = drain(&mut jb, 7);
        use FrameKind::*;
        assert_eq!(
            out,
            vec![
                (Buffering, 0xFF),
                (Buffering, 0xFF),
                (Buffering, 0xFF),
                (Audio, 10),
                (Audio, 11),
                (Audio, 12),
                (Audio, 13)
            ]
        );
    }

    #[test]
    fn loss_is_concealed_once_then_silence() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 1,
            ..Default::default()
        });
        jb.push(1, 160, &frame(1));
        jb.push(5, 800, &frame(5));
        use FrameKind::*;
        let out = drain(&mut jb, 6);
        assert_eq!(
            out,
            vec![
                (Buffering, 0xFF),
                (Audio, 1),
                (Concealed, 1),
                (Silence, 0xFF),
                (Silence, 0xFF),
                (Audio, 5)
            ]
        );
        let s = jb.stats();
        assert_eq!((s.played, s.concealed, s.silence), (2, 1, 2));
    }

    #[test]
    fn late_and_duplicate_are_dropped() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 1,
            ..Default::default()
        });
        jb.push(100, 0, &frame(1));
        assert_eq!(jb.push(100, 0, &frame(1)), PushOutcome::Duplicate);
        drain(&mut jb, 2); // buffering, then 100
        assert_eq!(jb.push(100, 0, &frame(1)), PushOutcome::Late);
        assert_eq!(
            jb.push(99, 160_u32.wrapping_neg(), &frame(1)),
            PushOutcome::Late
        );
        let s = jb.stats();
        assert_eq!((s.late, s.duplicates), (2, 1));
    }

    #[test]
    fn sequence_wrap() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 2,
            ..Default::default()
        });
        let mut ts = 5000u32;
        let seqs = [65533u16, 65534, 65535, 0, 1, 2];
        for s in seqs {
            assert_eq!(jb.push(s, ts, &[s as u8; 160]), PushOutcome::Stored);
            ts = ts.wrapping_add(160);
        }
        let out = drain(&mut jb, 8);
        let played: Vec<u8> = out
            .iter()
            .filter(|(k, _)| *k == FrameKind::Audio)
            .map(|(_, b)| *b)
            .collect();
        assert_eq!(played, seqs.iter().map(|s| *s as u8).collect::<Vec<_>>());
    }

    #[test]
    fn timestamp_jump_and_seq_jump_resync() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 1,
            ..Default::default()
        });
        jb.push(10, 1600, &frame(1));
        drain(&mut jb, 2);
        // Contiguous seq, timestamp 10 s later: a new stream. Flush and buffer again.
        assert_eq!(jb.push(11, 81_760, &frame(2)), PushOutcome::Resynced);
        assert_eq!(jb.push(12, 81_920, &frame(3)), PushOutcome::Stored);
        use FrameKind::*;
        assert_eq!(
            drain(&mut jb, 3),
            vec![(Buffering, 0xFF), (Audio, 2), (Audio, 3)]
        );
        // Sequence 1000 ahead: resync too.
        assert_eq!(
            jb.push(1013, 81_920 + 160 * 1001, &frame(4)),
            PushOutcome::Resynced
        );
        assert_eq!(drain(&mut jb, 2), vec![(Buffering, 0xFF), (Audio, 4)]);
        assert_eq!(jb.stats().resyncs, 2);
        // Small timestamp drift (silence suppression of 200 ms) does not resync.
        assert_eq!(
            jb.push(1014, 81_920 + 160 * 1002 + 1600, &frame(5)),
            PushOutcome::Stored
        );
    }

    #[test]
    fn stream_stop_returns_to_idle_and_rebuffers() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 1,
            capacity: 8,
            ..Default::default()
        });
        jb.push(1, 160, &frame(1));
        drain(&mut jb, 2);
        let out = drain(&mut jb, 20);
        assert!(
            out.iter()
                .skip(1)
                .all(|(k, _)| *k == FrameKind::Silence || *k == FrameKind::Buffering)
        );
        // Back after a long pause with new numbers: buffers again from it, no resync needed.
        assert_eq!(jb.push(500, 80_000, &frame(9)), PushOutcome::Stored);
        assert_eq!(
            drain(&mut jb, 2),
            vec![(FrameKind::Buffering, 0xFF), (FrameKind::Audio, 9)]
        );
    }

    proptest! {
        #[test]
        fn any_arrival_order_never_panics_and_plays_each_packet_at_most_once(
            ops in proptest::collection::vec((any::<bool>(), 0u16..40, any::<bool>()), 0..200),
            start in any::<u16>(),
        ) {
            let mut jb = JitterBuffer::new(JitterConfig::default());
            let mut played = std::collections::HashSet::new();
            for (is_push, offset, far) in ops {
                if is_push {
                    let seq = start.wrapping_add(offset).wrapping_add(if far { 30_000 } else { 0 });
                    let ts = u32::from(seq).wrapping_mul(160);
                    jb.push(seq, ts, &seq.to_be_bytes());
                } else {
                    let f = jb.pop();
                    prop_assert!(!f.payload.is_empty());
                    if f.kind == FrameKind::Audio {
                        let seq = f.seq.unwrap();
                        prop_assert_eq!(f.payload, &seq.to_be_bytes()[..]);
                        // After a resync or a stop, a number may legitimately play again.
                        let s = jb.stats();
                        prop_assert!(played.insert((s.resyncs, s.stops, seq)), "played twice");
                    }
                }
            }
            prop_assert!(jb.stats().played as usize == played.len());
        }
    }
}
