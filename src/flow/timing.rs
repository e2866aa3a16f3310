//! How long prompts last: the WAV header when the file exists (`hound`, or the RIFF header
//! for mu-law/A-law files hound refuses), else an estimate from the text at 140 words per
//! minute. Used by the checker's static report and by the simulator's virtual clock.
//!
//! ```
//! use guichet::flow::timing::estimate_from_text;
//! // 7 words at 140 words/min = 3 s.
//! assert_eq!(estimate_from_text("Pour les impôts, tapez 1 ou 2.").as_secs(), 3);
//! ```

use std::path::Path;
use std::time::Duration;

use crate::flow::ir::{FlowSet, PromptId, PromptRef};

/// Words per minute for prompts that have no recording yet.
pub const WORDS_PER_MINUTE: u64 = 140;

/// Assumed length of a prompt chosen at run time (`$var`).
pub const DYNAMIC_PROMPT: Duration = Duration::from_secs(5);

/// Estimated speaking time of French text.
pub fn estimate_from_text(text: &str) -> Duration {
    let words = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count() as u64;
    Duration::from_millis(words * 60_000 / WORDS_PER_MINUTE)
}

/// Length of a WAV file from its header, or `None` if it cannot be read.
pub fn wav_duration(path: &Path) -> Option<Duration> {
    if let Ok(reader) = hound::WavReader::open(path) {
        let rate = reader.spec().sample_rate;
        if rate > 0 {
            return Some(Duration::from_secs_f64(
                f64::from(reader.duration()) / f64::from(rate),
            ));
        }
    }
    riff_duration(&std::fs::read(path).ok()?)
}

/// Length from a RIFF/WAVE header: data chunk size over byte rate (any format tag).
fn riff_duration(bytes: &[u8]) -> Option<Duration> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12usize;
    let mut byte_rate = None;
    while let Some(header) = bytes.get(pos..pos.checked_add(8)?) {
        let id = header.get(0..4)?;
        let size = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let rate = bytes.get(body + 8..body + 12)?;
            byte_rate = Some(u32::from_le_bytes(rate.try_into().ok()?));
        } else if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0)?;
            let available = bytes.len().saturating_sub(body).min(size);
            return Some(Duration::from_secs_f64(available as f64 / f64::from(rate)));
        }
        pos = body.checked_add(size)?.checked_add(size % 2)?;
    }
    None
}

/// Durations of every prompt of a set, measured once.
#[derive(Debug, Clone)]
pub struct PromptTimes {
    /// Per catalogue prompt (same order as `FlowSet::prompts`): length, and whether estimated.
    catalogue: Vec<(Duration, bool)>,
    audio_dir: Option<std::path::PathBuf>,
}

impl PromptTimes {
    /// Measure from `audio_dir` (WAV headers) or estimate from text.
    pub fn new(set: &FlowSet, audio_dir: Option<&Path>) -> PromptTimes {
        let catalogue = set
            .prompts()
            .iter()
            .map(
                |p| match audio_dir.and_then(|dir| wav_duration(&p.id.wav_path(dir))) {
                    Some(d) => (d, false),
                    None => (estimate_from_text(&p.text), true),
                },
            )
            .collect();
        PromptTimes {
            catalogue,
            audio_dir: audio_dir.map(Path::to_owned),
        }
    }

    /// Length of a prompt reference, and whether it is an estimate.
    pub fn of_ref(&self, r: &PromptRef) -> (Duration, bool) {
        match r {
            PromptRef::Static(i) => self
                .catalogue
                .get(i.0 as usize)
                .copied()
                .unwrap_or((Duration::ZERO, true)),
            PromptRef::Var { .. } => (DYNAMIC_PROMPT, true),
        }
    }

    /// Total length of several references.
    pub fn sum(&self, refs: &[PromptRef]) -> (Duration, bool) {
        refs.iter().fold((Duration::ZERO, false), |(d, e), r| {
            let (d2, e2) = self.of_ref(r);
            (d + d2, e || e2)
        })
    }

    /// Length of a prompt id as played (catalogue or `say` fragment).
    pub fn of_id(&self, set: &FlowSet, id: &PromptId) -> Duration {
        if let Some(p) = set.prompt_by_id(id)
            && let Some(i) = set.prompts().iter().position(|q| q.id == p.id)
            && let Some((d, _)) = self.catalogue.get(i)
        {
            return *d;
        }
        if let Some(d) = self
            .audio_dir
            .as_deref()
            .and_then(|dir| wav_duration(&id.wav_path(dir)))
        {
            return d;
        }
        match set.prompt_text(id) {
            Some(t) => estimate_from_text(&t).max(Duration::from_millis(400)),
            None => Duration::from_millis(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_words() {
        assert_eq!(estimate_from_text(""), Duration::ZERO);
        // 14 words: 6 s.
        let t = "un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze";
        assert_eq!(estimate_from_text(t), Duration::from_secs(6));
        // Punctuation alone is not a word.
        assert_eq!(estimate_from_text("- , ."), Duration::ZERO);
    }

    #[test]
    fn reads_pcm_and_mulaw_headers() {
        let dir = tempfile::tempdir().unwrap();
        let pcm = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&pcm, spec).unwrap();
        for _ in 0..12000 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(wav_duration(&pcm), Some(Duration::from_millis(1500)));

        // A mu-law file (format tag 7), 8000 bytes/s, 4000 bytes of data: 0.5 s.
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(4 + 8 + 16 + 8 + 4000u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&7u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&4000u32.to_le_bytes());
        b.extend(std::iter::repeat_n(0xffu8, 4000));
        let ulaw = dir.path().join("u.wav");
        std::fs::write(&ulaw, &b).unwrap();
        assert_eq!(wav_duration(&ulaw), Some(Duration::from_millis(500)));
        assert_eq!(riff_duration(b"RIFF"), None);
    }
}
