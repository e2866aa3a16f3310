//! Recording the caller: decoded 8 kHz frames in, an 8 kHz mono 16-bit WAV out.
//!
//! The owner pushes the caller's decoded audio (any chunk size) with
//! [`Recorder::push`] and calls [`Recorder::finish`] at the end (hang-up, key press, or
//! when `push` reported a stop). The WAV goes to any `Write + Seek` (the engine opens the
//! file). Time is counted in samples, so the recorder needs no clock.
//!
//! Behaviour:
//! - audio is classified in 20 ms windows: speech when the RMS level is above
//!   `silence_threshold_dbfs` (default -40 dBFS), silence otherwise;
//! - **stop on silence**: after some speech, `silence_timeout` (default 5 s) of continuous
//!   silence stops the recording ([`StopReason::Silence`]);
//! - **no speech**: with `no_speech_timeout` (default 10 s) and no speech at all, it stops
//!   with [`StopReason::NoSpeech`];
//! - **max length**: at most `max_length` (default 120 s) of audio is taken
//!   ([`StopReason::MaxLength`]);
//! - **trimming**: leading and trailing silence are kept up to `max_edge_silence`
//!   (default 0.5 s); pauses between words are kept whole.
//!
//! ```
//! use std::io::Cursor;
//! use guichet::media::recorder::{Recorder, RecorderConfig, StopReason};
//!
//! let mut rec = Recorder::new(Cursor::new(Vec::new()), RecorderConfig::default()).unwrap();
//! let speech: Vec<i16> = (0..8000).map(|i| if i % 20 < 10 { 3000 } else { -3000 }).collect();
//! rec.push(&vec![0; 16_000]).unwrap(); // 2 s of silence: trimmed to 0.5 s
//! rec.push(&speech).unwrap();          // 1 s of speech
//! let done = rec.finish().unwrap();    // the caller hung up
//! assert_eq!(done.reason, StopReason::Finished);
//! assert_eq!(done.duration.as_millis(), 1500);
//! ```

use std::collections::VecDeque;
use std::io::{Seek, Write};
use std::time::Duration;

const RATE: u32 = 8000;
const WINDOW: usize = 160;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// Writing the WAV failed.
    #[error("writing the recording failed: {0}")]
    Write(#[from] hound::Error),
}

/// Why a recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Silence for `silence_timeout` after some speech.
    Silence,
    /// No speech at all within `no_speech_timeout`.
    NoSpeech,
    /// `max_length` reached.
    MaxLength,
    /// The owner finished it (hang-up, key press) before any of the above.
    Finished,
}

/// Recorder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecorderConfig {
    /// Longest recording, counted on the audio received (default 120 s).
    pub max_length: Duration,
    /// Silence after speech that stops the recording (default 5 s).
    pub silence_timeout: Duration,
    /// Stop when no speech at all came within this time (default 10 s; `None`: never).
    pub no_speech_timeout: Option<Duration>,
    /// RMS level under which a 20 ms window is silence, dBFS (default -40).
    pub silence_threshold_dbfs: f64,
    /// Silence kept at the start and at the end (default 0.5 s).
    pub max_edge_silence: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            max_length: Duration::from_secs(120),
            silence_timeout: Duration::from_secs(5),
            no_speech_timeout: Some(Duration::from_secs(10)),
            silence_threshold_dbfs: -40.0,
            max_edge_silence: Duration::from_millis(500),
        }
    }
}

/// The outcome of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recording {
    /// Why it stopped.
    pub reason: StopReason,
    /// Length of the written audio.
    pub duration: Duration,
    /// Whether any speech was heard.
    pub heard_speech: bool,
}

fn samples_of(d: Duration) -> u64 {
    (d.as_micros() * u128::from(RATE) / 1_000_000).min(u128::from(u64::MAX)) as u64
}

/// Records one caller (see the module docs).
pub struct Recorder<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    config: RecorderConfig,
    /// Mean-square level (on i16 samples) above which a window is speech.
    threshold_ms: f64,
    window: Vec<i16>,
    /// Silence before the first speech: at most `max_edge_silence` of it.
    lead: VecDeque<i16>,
    /// Silence after the last speech, not yet written.
    pending: Vec<i16>,
    heard_speech: bool,
    silence_run: u64,
    received: u64,
    written: u64,
    stopped: Option<StopReason>,
}

impl<W: Write + Seek> Recorder<W> {
    /// Start a recording into `out` (the WAV header is written at once).
    pub fn new(out: W, config: RecorderConfig) -> Result<Self, RecorderError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let full = 32768.0 * 10f64.powf(config.silence_threshold_dbfs / 20.0);
        Ok(Recorder {
            writer: hound::WavWriter::new(out, spec)?,
            config,
            threshold_ms: full * full,
            window: Vec::with_capacity(WINDOW),
            lead: VecDeque::new(),
            pending: Vec::new(),
            heard_speech: false,
            silence_run: 0,
            received: 0,
            written: 0,
            stopped: None,
        })
    }

    /// Push decoded 8 kHz samples. Returns the stop reason once the recording has stopped
    /// (samples after the stop are ignored); the owner then calls [`finish`](Self::finish).
    pub fn push(&mut self, samples: &[i16]) -> Result<Option<StopReason>, RecorderError> {
        let max = samples_of(self.config.max_length);
        for s in samples {
            if self.stopped.is_some() {
                break;
            }
            if self.received >= max {
                self.stopped = Some(StopReason::MaxLength);
                break;
            }
            self.received += 1;
            self.window.push(*s);
            if self.window.len() == WINDOW {
                self.end_window()?;
            }
        }
        if self.stopped.is_none() && self.received >= max {
            self.stopped = Some(StopReason::MaxLength);
        }
        Ok(self.stopped)
    }

    /// The stop reason, once stopped.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped
    }

    /// Flush (trailing silence trimmed) and finalise the WAV.
    pub fn finish(mut self) -> Result<Recording, RecorderError> {
        let rest = std::mem::take(&mut self.window);
        let edge = samples_of(self.config.max_edge_silence) as usize;
        if self.heard_speech {
            // A last partial window counts as trailing silence: it cannot be classified.
            self.pending.extend(rest);
            let keep = self.pending.len().min(edge);
            let tail = std::mem::take(&mut self.pending);
            self.write(&tail[..keep])?;
        } else {
            self.lead.extend(rest);
            while self.lead.len() > edge {
                self.lead.pop_front();
            }
            let lead: Vec<i16> = self.lead.drain(..).collect();
            self.write(&lead)?;
        }
        self.writer.finalize()?;
        Ok(Recording {
            reason: self.stopped.unwrap_or(StopReason::Finished),
            duration: Duration::from_micros(self.written * 1_000_000 / u64::from(RATE)),
            heard_speech: self.heard_speech,
        })
    }

    fn write(&mut self, samples: &[i16]) -> Result<(), RecorderError> {
        for s in samples {
            self.writer.write_sample(*s)?;
        }
        self.written += samples.len() as u64;
        Ok(())
    }

    fn end_window(&mut self) -> Result<(), RecorderError> {
        let window = std::mem::take(&mut self.window);
        let mean_square = window
            .iter()
            .map(|s| f64::from(*s) * f64::from(*s))
            .sum::<f64>()
            / window.len().max(1) as f64;
        let speech = mean_square > self.threshold_ms;
        if speech {
            if !self.heard_speech {
                let lead: Vec<i16> = self.lead.drain(..).collect();
                self.write(&lead)?;
                self.heard_speech = true;
            }
            let pending = std::mem::take(&mut self.pending);
            self.write(&pending)?;
            self.write(&window)?;
            self.silence_run = 0;
        } else {
            self.silence_run += window.len() as u64;
            if self.heard_speech {
                self.pending.extend_from_slice(&window);
                if self.silence_run >= samples_of(self.config.silence_timeout) {
                    self.stopped = Some(StopReason::Silence);
                }
            } else {
                let edge = samples_of(self.config.max_edge_silence) as usize;
                self.lead.extend(window.iter().copied());
                while self.lead.len() > edge {
                    self.lead.pop_front();
                }
                if let Some(limit) = self.config.no_speech_timeout
                    && self.silence_run >= samples_of(limit)
                {
                    self.stopped = Some(StopReason::NoSpeech);
                }
            }
        }
        self.window = window;
        self.window.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const SEC: usize = 8000;

    /// Speech-like: a 200 Hz square wave with a changing amplitude, about -16 dBFS.
    fn speech(n: usize, seed: i16) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let amp = 4000 + ((i / 400) % 5) as i16 * 500 + seed;
                if (i / 20) % 2 == 0 { amp } else { -amp }
            })
            .collect()
    }

    /// Line noise around -60 dBFS.
    fn hiss(n: usize) -> Vec<i16> {
        (0..n).map(|i| [12i16, -9, 30, -25, 4][i % 5]).collect()
    }

    fn record(config: RecorderConfig, parts: &[Vec<i16>], chunk: usize) -> (Recording, Vec<i16>) {
        let mut cursor = Cursor::new(Vec::new());
        let mut rec = Recorder::new(&mut cursor, config).unwrap();
        'outer: for part in parts {
            for c in part.chunks(chunk) {
                if rec.push(c).unwrap().is_some() {
                    break 'outer;
                }
            }
        }
        let done = rec.finish().unwrap();
        let bytes = cursor.into_inner();
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16)
        );
        let samples = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        (done, samples)
    }

    #[test]
    fn stops_on_silence_after_speech_and_trims_edges() {
        let words1 = speech(SEC * 3 / 2, 0);
        let pause = hiss(SEC);
        let words2 = speech(SEC * 3 / 2, 300);
        let parts = vec![
            hiss(2 * SEC),
            words1.clone(),
            pause.clone(),
            words2.clone(),
            hiss(8 * SEC),
        ];
        for chunk in [160, 7, 1000] {
            let (done, wav) = record(RecorderConfig::default(), &parts, chunk);
            assert_eq!(done.reason, StopReason::Silence, "chunk {chunk}");
            assert!(done.heard_speech);
            // 0.5 s lead + 1.5 s + 1 s pause (kept) + 1.5 s + 0.5 s trailing.
            assert_eq!(wav.len(), 5 * SEC, "chunk {chunk}");
            assert_eq!(done.duration, Duration::from_secs(5));
            assert_eq!(&wav[SEC / 2..2 * SEC], &words1[..]);
            assert_eq!(&wav[2 * SEC..3 * SEC], &pause[..]);
            assert_eq!(&wav[3 * SEC..9 * SEC / 2], &words2[..]);
            assert!(wav[..SEC / 2].iter().all(|s| s.abs() < 40));
            assert!(wav[9 * SEC / 2..].iter().all(|s| s.abs() < 40));
        }
    }

    #[test]
    fn silence_timeout_is_configurable() {
        let config = RecorderConfig {
            silence_timeout: Duration::from_secs(2),
            ..RecorderConfig::default()
        };
        let mut rec = Recorder::new(Cursor::new(Vec::new()), config).unwrap();
        assert_eq!(rec.push(&speech(SEC, 0)).unwrap(), None);
        assert_eq!(rec.push(&hiss(SEC * 19 / 10)).unwrap(), None);
        assert_eq!(rec.push(&hiss(SEC / 5)).unwrap(), Some(StopReason::Silence));
        assert_eq!(
            rec.push(&speech(SEC, 0)).unwrap(),
            Some(StopReason::Silence)
        );
        let done = rec.finish().unwrap();
        assert_eq!(done.duration, Duration::from_millis(1500));
    }

    #[test]
    fn max_length_caps_the_recording() {
        let config = RecorderConfig {
            max_length: Duration::from_secs(3),
            ..RecorderConfig::default()
        };
        let talk = speech(10 * SEC, 0);
        let (done, wav) = record(config, std::slice::from_ref(&talk), 160);
        assert_eq!(done.reason, StopReason::MaxLength);
        assert_eq!(wav, talk[..3 * SEC].to_vec());
    }

    #[test]
    fn no_speech_stops_and_keeps_half_a_second() {
        let (done, wav) = record(RecorderConfig::default(), &[hiss(30 * SEC)], 160);
        assert_eq!(done.reason, StopReason::NoSpeech);
        assert!(!done.heard_speech);
        assert_eq!(wav.len(), SEC / 2);

        let config = RecorderConfig {
            no_speech_timeout: None,
            ..RecorderConfig::default()
        };
        let (done, _) = record(config, &[hiss(30 * SEC)], 160);
        assert_eq!(done.reason, StopReason::Finished);
    }

    #[test]
    fn hang_up_mid_pause_trims_the_tail() {
        let talk = speech(2 * SEC, 0);
        let (done, wav) = record(
            RecorderConfig::default(),
            &[talk.clone(), hiss(3 * SEC + 55)],
            160,
        );
        assert_eq!(done.reason, StopReason::Finished);
        assert_eq!(wav.len(), 2 * SEC + SEC / 2);
        assert_eq!(&wav[..2 * SEC], &talk[..]);
    }
}
