//! A per-call playlist player: prompts, silences and music on hold, as G.711 frames.
//!
//! Sans-IO and clock-free: the owner (the media pacer) asks for one frame per packet time
//! with [`Playback::next_frame`], which fills the buffer (its length is the frame size:
//! 160 bytes = 20 ms at 8 kHz) and says whether it holds audio or silence; `None` means the
//! playlist is over. Prompt bytes are read straight from the shared [`Prompt`] buffers
//! (`Arc<[u8]>`), one frame at a time: no prompt is copied per call.
//!
//! Playlist rules:
//! - every prompt starts on a frame boundary; its last partial frame is padded with
//!   silence;
//! - two prompts that follow each other are separated by a short gap (default 300 ms,
//!   [`PlaybackConfig::gap`]); an explicit [`Item::Silence`] replaces the gap;
//! - [`Item::MusicOnHold`] loops over its tracks until [`Playback::stop`] (or a barge-in);
//! - [`Playback::is_talkspurt_start`] is true right after the first frame of each prompt
//!   (and the start of the music): the RTP marker bit;
//! - [`Playback::barge_in`] stops the current item when it is interruptible, together
//!   with the interruptible items that follow it (silences and gaps count as
//!   interruptible, music on hold too); a non-interruptible prompt (legal notice) plays on.
//!
//! ```
//! use guichet::media::g711::Law;
//! use guichet::media::playback::{Item, Playback};
//! use guichet::media::prompts::Prompt;
//!
//! let hello = Prompt::from_linear("fr/bonjour", &[1000i16; 400]); // 50 ms
//! let mut pb = Playback::new(vec![Item::prompt(hello), Item::silence_ms(40)], Law::Alaw);
//! let mut frame = [0u8; 160];
//! let mut frames = 0;
//! while pb.next_frame(&mut frame).is_some() {
//!     frames += 1;
//! }
//! assert_eq!(frames, 3 + 2); // 50 ms padded to 60, then 40 ms
//! assert!(pb.finished());
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::g711::Law;
use super::prompts::Prompt;

/// Samples per millisecond at 8 kHz.
const SAMPLES_PER_MS: u64 = 8;

/// One entry of a playlist.
#[derive(Debug, Clone)]
pub enum Item {
    /// A prompt; `interruptible` lets [`Playback::barge_in`] stop it.
    Prompt { prompt: Prompt, interruptible: bool },
    /// Silence for this long (rounded up to whole frames).
    Silence(Duration),
    /// Music on hold: these tracks in a loop, until stopped.
    MusicOnHold(Vec<Prompt>),
}

impl Item {
    /// An interruptible prompt (the usual menu prompt).
    pub fn prompt(prompt: Prompt) -> Item {
        Item::Prompt {
            prompt,
            interruptible: true,
        }
    }

    /// A prompt that always plays to its end.
    pub fn prompt_uninterruptible(prompt: Prompt) -> Item {
        Item::Prompt {
            prompt,
            interruptible: false,
        }
    }

    /// Silence of `ms` milliseconds.
    pub fn silence_ms(ms: u64) -> Item {
        Item::Silence(Duration::from_millis(ms))
    }
}

/// Player settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaybackConfig {
    /// Silence inserted between two consecutive prompts (default 300 ms).
    pub gap: Duration,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        PlaybackConfig {
            gap: Duration::from_millis(300),
        }
    }
}

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Prompt or music audio (possibly padded at its end).
    Audio,
    /// Silence (an explicit silence or the gap between prompts).
    Silence,
}

#[derive(Debug)]
enum Step {
    Prompt {
        id: Arc<str>,
        audio: Arc<[u8]>,
        pos: usize,
        interruptible: bool,
    },
    Silence {
        remaining: u64,
        interruptible: bool,
    },
    Music {
        tracks: Vec<Arc<[u8]>>,
        track: usize,
        pos: usize,
        started: bool,
    },
}

impl Step {
    fn interruptible(&self) -> bool {
        match self {
            Step::Prompt { interruptible, .. } | Step::Silence { interruptible, .. } => {
                *interruptible
            }
            Step::Music { .. } => true,
        }
    }
}

/// The player (see the module docs).
#[derive(Debug)]
pub struct Playback {
    law: Law,
    config: PlaybackConfig,
    steps: VecDeque<Step>,
    /// Interruptibility of the last pushed item, when it was a prompt (a gap goes next).
    last_was_prompt: Option<bool>,
    talkspurt_start: bool,
}

impl Playback {
    /// A player for these items, in this law, with the default 300 ms gap.
    pub fn new(items: Vec<Item>, law: Law) -> Playback {
        Playback::with_config(items, law, PlaybackConfig::default())
    }

    /// A player with explicit settings.
    pub fn with_config(items: Vec<Item>, law: Law, config: PlaybackConfig) -> Playback {
        let mut pb = Playback {
            law,
            config,
            steps: VecDeque::new(),
            last_was_prompt: None,
            talkspurt_start: false,
        };
        for item in items {
            pb.push(item);
        }
        pb
    }

    /// Append an item to the playlist.
    pub fn push(&mut self, item: Item) {
        match item {
            Item::Prompt {
                prompt,
                interruptible,
            } => {
                if let Some(prev_interruptible) = self.last_was_prompt {
                    let gap = samples_of(self.config.gap);
                    if gap > 0 {
                        self.steps.push_back(Step::Silence {
                            remaining: gap,
                            interruptible: prev_interruptible,
                        });
                    }
                }
                self.steps.push_back(Step::Prompt {
                    id: Arc::from(prompt.id()),
                    audio: prompt.audio(self.law).clone(),
                    pos: 0,
                    interruptible,
                });
                self.last_was_prompt = Some(interruptible);
            }
            Item::Silence(d) => {
                self.steps.push_back(Step::Silence {
                    remaining: samples_of(d),
                    interruptible: true,
                });
                self.last_was_prompt = None;
            }
            Item::MusicOnHold(tracks) => {
                self.steps.push_back(Step::Music {
                    tracks: tracks.iter().map(|p| p.audio(self.law).clone()).collect(),
                    track: 0,
                    pos: 0,
                    started: false,
                });
                self.last_was_prompt = None;
            }
        }
    }

    /// Fill `out` with the next frame (its length is the frame size); `None` when the
    /// playlist is over (`out` is then left untouched).
    pub fn next_frame(&mut self, out: &mut [u8]) -> Option<FrameKind> {
        self.talkspurt_start = false;
        let silence = self.law.silence();
        loop {
            let step = self.steps.front_mut()?;
            match step {
                Step::Prompt { audio, pos, .. } => {
                    if *pos >= audio.len() {
                        self.steps.pop_front();
                        continue;
                    }
                    self.talkspurt_start = *pos == 0;
                    *pos = copy_padded(audio, *pos, out, silence);
                    return Some(FrameKind::Audio);
                }
                Step::Silence { remaining, .. } => {
                    if *remaining == 0 {
                        self.steps.pop_front();
                        continue;
                    }
                    *remaining = remaining.saturating_sub(out.len() as u64);
                    out.fill(silence);
                    return Some(FrameKind::Silence);
                }
                Step::Music {
                    tracks,
                    track,
                    pos,
                    started,
                } => {
                    if tracks.iter().all(|t| t.is_empty()) {
                        out.fill(silence);
                        return Some(FrameKind::Silence);
                    }
                    // `tracks` is not empty (checked above), so the modulo is defined.
                    let audio = &tracks[*track % tracks.len()];
                    if *pos >= audio.len() {
                        *track = (*track + 1) % tracks.len();
                        *pos = 0;
                        continue;
                    }
                    self.talkspurt_start = !*started;
                    *started = true;
                    *pos = copy_padded(audio, *pos, out, silence);
                    return Some(FrameKind::Audio);
                }
            }
        }
    }

    /// Was the frame just returned the first of a talkspurt (set the RTP marker)?
    pub fn is_talkspurt_start(&self) -> bool {
        self.talkspurt_start
    }

    /// Stop the current item if it is interruptible, with the interruptible items right
    /// after it. Returns whether anything was stopped.
    pub fn barge_in(&mut self) -> bool {
        let mut stopped = false;
        while self.steps.front().is_some_and(Step::interruptible) {
            self.steps.pop_front();
            stopped = true;
        }
        stopped
    }

    /// Stop everything (music on hold included).
    pub fn stop(&mut self) {
        self.steps.clear();
        self.last_was_prompt = None;
    }

    /// Nothing left to play?
    pub fn finished(&self) -> bool {
        self.steps.is_empty()
    }

    /// The id of the prompt playing now, if a prompt is playing.
    pub fn current_prompt(&self) -> Option<&str> {
        match self.steps.front() {
            Some(Step::Prompt { id, .. }) => Some(id),
            _ => None,
        }
    }

    /// The law of the frames.
    pub fn law(&self) -> Law {
        self.law
    }
}

/// 8 kHz samples in `d`, saturating (durations come from operator files).
fn samples_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(SAMPLES_PER_MS)
}

/// Copy one frame from `audio[pos..]`, pad with silence, return the new position.
fn copy_padded(audio: &[u8], pos: usize, out: &mut [u8], silence: u8) -> usize {
    let end = pos.saturating_add(out.len()).min(audio.len());
    let src = audio.get(pos..end).unwrap_or(&[]);
    let (head, tail) = out.split_at_mut(src.len());
    head.copy_from_slice(src);
    tail.fill(silence);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(id: &str, ms: usize, value: i16) -> Prompt {
        Prompt::from_linear(id, &vec![value; ms * 8])
    }

    /// (kind, marker, first byte) of every frame until the end (or `limit` frames).
    fn run(pb: &mut Playback, limit: usize) -> Vec<(FrameKind, bool, u8, u8)> {
        let mut frame = [0u8; 160];
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(kind) = pb.next_frame(&mut frame) else {
                break;
            };
            out.push((kind, pb.is_talkspurt_start(), frame[0], frame[159]));
        }
        out
    }

    #[test]
    fn prompts_gap_padding_and_markers() {
        let a = prompt("a", 50, 1000);
        let b = prompt("b", 40, -1000);
        let law = Law::Ulaw;
        let (ab, bb) = (a.audio(law)[0], b.audio(law)[0]);
        let mut pb = Playback::new(vec![Item::prompt(a), Item::prompt(b)], law);
        assert_eq!(pb.current_prompt(), Some("a"));
        let frames = run(&mut pb, 1000);
        // a: 3 frames (last one padded), gap 300 ms = 15 frames, b: 2 frames.
        assert_eq!(frames.len(), 3 + 15 + 2);
        assert_eq!(frames[0], (FrameKind::Audio, true, ab, ab));
        assert_eq!(frames[1], (FrameKind::Audio, false, ab, ab));
        assert_eq!(frames[2], (FrameKind::Audio, false, ab, law.silence()));
        assert!(
            frames[3..18]
                .iter()
                .all(|f| f.0 == FrameKind::Silence && !f.1)
        );
        assert_eq!(frames[18], (FrameKind::Audio, true, bb, bb));
        assert!(pb.finished());
        assert_eq!(pb.next_frame(&mut [0u8; 160]), None);
    }

    #[test]
    fn explicit_silence_replaces_gap_and_gap_is_configurable() {
        let items = vec![
            Item::prompt(prompt("a", 20, 1)),
            Item::silence_ms(100),
            Item::prompt(prompt("b", 20, 1)),
            Item::prompt(prompt("c", 20, 1)),
        ];
        let mut pb = Playback::with_config(
            items,
            Law::Alaw,
            PlaybackConfig {
                gap: Duration::from_millis(60),
            },
        );
        let kinds: Vec<FrameKind> = run(&mut pb, 100).into_iter().map(|f| f.0).collect();
        use FrameKind::*;
        assert_eq!(
            kinds,
            vec![
                Audio, Silence, Silence, Silence, Silence, Silence, Audio, Silence, Silence,
                Silence, Audio
            ]
        );
    }

    #[test]
    fn huge_silence_does_not_overflow() {
        let mut pb = Playback::new(vec![Item::Silence(Duration::MAX)], Law::Ulaw);
        assert_eq!(pb.next_frame(&mut [0u8; 160]), Some(FrameKind::Silence));
        assert!(!pb.finished());
    }

    #[test]
    fn other_frame_sizes() {
        let mut pb = Playback::new(vec![Item::prompt(prompt("a", 100, 5))], Law::Ulaw);
        let mut frame = [0u8; 240]; // 30 ms
        let mut n = 0;
        while pb.next_frame(&mut frame).is_some() {
            n += 1;
        }
        assert_eq!(n, 4); // 800 samples = 3 x 240 + 80 padded
    }

    #[test]
    fn barge_in_stops_only_interruptible_items() {
        let notice = prompt("notice", 100, 7);
        let menu1 = prompt("menu1", 100, 8);
        let menu2 = prompt("menu2", 100, 9);
        let after = prompt("after", 40, 10);
        let mut pb = Playback::new(
            vec![
                Item::prompt_uninterruptible(notice),
                Item::prompt(menu1),
                Item::prompt(menu2),
                Item::prompt_uninterruptible(after),
            ],
            Law::Ulaw,
        );
        run(&mut pb, 2);
        assert!(!pb.barge_in(), "the legal notice plays on");
        assert_eq!(pb.current_prompt(), Some("notice"));
        run(&mut pb, 3 + 15 + 1); // rest of notice, gap, first frame of menu1
        assert_eq!(pb.current_prompt(), Some("menu1"));
        assert!(pb.barge_in());
        // menu1, the gap, menu2 and the gap after it (interruptible, follows menu2) are gone.
        assert_eq!(pb.current_prompt(), Some("after"));
        let frames = run(&mut pb, 100);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].1, "marker on the new talkspurt");
    }

    #[test]
    fn music_on_hold_loops_until_stopped() {
        let t1 = prompt("moh/1", 40, 100);
        let t2 = prompt("moh/2", 30, -100);
        let law = Law::Alaw;
        let (b1, b2) = (t1.audio(law)[0], t2.audio(law)[0]);
        let mut pb = Playback::new(
            vec![
                Item::prompt(prompt("wait", 20, 5)),
                Item::MusicOnHold(vec![t1, t2]),
            ],
            law,
        );
        let frames = run(&mut pb, 1 + 5 * 4);
        assert_eq!(frames.len(), 21, "music does not end by itself");
        // t1: 2 frames, t2: 2 frames (padded), then t1 again.
        let firsts: Vec<u8> = frames[1..9].iter().map(|f| f.2).collect();
        assert_eq!(firsts, vec![b1, b1, b2, b2, b1, b1, b2, b2]);
        assert!(frames[1].1 && !frames[3].1 && !frames[5].1);
        assert!(!pb.finished());
        pb.stop();
        assert!(pb.finished());
        assert_eq!(pb.next_frame(&mut [0u8; 160]), None);

        // A barge-in also ends the music; an empty set plays silence.
        let mut pb = Playback::new(vec![Item::MusicOnHold(vec![])], law);
        assert_eq!(pb.next_frame(&mut [0u8; 160]), Some(FrameKind::Silence));
        assert!(pb.barge_in());
        assert!(pb.finished());
    }

    #[test]
    fn frames_share_the_prompt_buffer() {
        let p = prompt("a", 1000, 3);
        let before = Arc::strong_count(p.audio(Law::Ulaw));
        let players: Vec<Playback> = (0..100)
            .map(|_| Playback::new(vec![Item::prompt(p.clone())], Law::Ulaw))
            .collect();
        // One reference per player (and one per clone of the prompt), never a copy.
        assert!(Arc::strong_count(p.audio(Law::Ulaw)) >= before + 100);
        drop(players);
    }
}
