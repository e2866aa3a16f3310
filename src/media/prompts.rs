//! The prompt store: every `.wav` under the audio directory, decoded once, shared by calls.
//!
//! [`PromptStore::load_dir`] walks the directory recursively. A prompt's id is its path
//! relative to the directory without the extension, with `/` separators (`fr/accueil` for
//! `audio/fr/accueil.wav`). Each file is read with [`wav::read_wav`] (any rate, 8/16/24-bit
//! int, float, A-law, mu-law, mono or stereo mixed down), resampled to 8 kHz when needed,
//! and encoded **once** to both PCMU and PCMA. The encoded bytes are `Arc<[u8]>`: playing a
//! prompt on a thousand calls shares one copy.
//!
//! Loading is operator-facing: a missing directory or a bad file is a [`PromptError`] that
//! names the path and the reason. [`PromptStore::load_dir`] stops at the first bad file (so
//! a reload can be refused and the previous store kept); [`PromptStore::load_dir_lenient`]
//! loads what it can and returns the errors beside the store.
//!
//! Reading files here is load-time work for the engine or the CLI, never per-call work.
//!
//! ```no_run
//! use guichet::media::g711::Law;
//! use guichet::media::prompts::PromptStore;
//!
//! let store = PromptStore::load_dir("audio".as_ref()).unwrap();
//! let accueil = store.get("fr/accueil").unwrap();
//! let bytes = accueil.audio(Law::Alaw); // 8000 bytes per second, shared
//! println!("{} s", store.duration("fr/accueil").unwrap().as_secs_f64());
//! # let _ = bytes;
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::g711::Law;
use super::wav::{self, WavError};

/// The rate every prompt is stored at.
pub const PROMPT_RATE: u32 = 8000;

/// The directory under the audio directory that holds music-on-hold prompts.
pub const MOH_PREFIX: &str = "moh/";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The audio directory does not exist or is not a directory.
    #[error("audio directory {0} does not exist or is not a directory")]
    MissingDir(PathBuf),
    /// A directory could not be listed or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not a usable WAV.
    #[error("bad prompt file {path}: {source}")]
    BadFile {
        path: PathBuf,
        #[source]
        source: WavError,
    },
    /// A file name that is not UTF-8 cannot be a prompt id.
    #[error("prompt file name {0} is not UTF-8")]
    NonUtf8Name(PathBuf),
}

/// One prompt, 8 kHz, in both laws.
#[derive(Debug, Clone)]
pub struct Prompt {
    id: Arc<str>,
    ulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
}

impl Prompt {
    /// A prompt from 8 kHz linear samples (encoded once to both laws).
    pub fn from_linear(id: &str, pcm: &[i16]) -> Prompt {
        let mut ulaw = Vec::with_capacity(pcm.len());
        Law::Ulaw.encode(pcm, &mut ulaw);
        let mut alaw = Vec::with_capacity(pcm.len());
        Law::Alaw.encode(pcm, &mut alaw);
        Prompt {
            id: Arc::from(id),
            ulaw: Arc::from(ulaw),
            alaw: Arc::from(alaw),
        }
    }

    /// The prompt id (`fr/accueil`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The encoded audio, one byte per 8 kHz sample; cloning the `Arc` copies no audio.
    pub fn audio(&self, law: Law) -> &Arc<[u8]> {
        match law {
            Law::Ulaw => &self.ulaw,
            Law::Alaw => &self.alaw,
        }
    }

    /// Number of 8 kHz samples.
    pub fn samples(&self) -> usize {
        self.ulaw.len()
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.ulaw.len() as u64 * 1_000_000 / u64::from(PROMPT_RATE))
    }
}

/// All prompts by id.
#[derive(Debug, Clone, Default)]
pub struct PromptStore {
    prompts: BTreeMap<String, Prompt>,
}

impl PromptStore {
    /// Load every `.wav` under `dir`; the first bad file fails the load.
    pub fn load_dir(dir: &Path) -> Result<PromptStore, PromptError> {
        let (store, mut errors) = Self::load(dir, true)?;
        match errors.pop() {
            Some(e) => Err(e),
            None => Ok(store),
        }
    }

    /// Load every readable `.wav` under `dir`, returning the errors of the others.
    pub fn load_dir_lenient(dir: &Path) -> Result<(PromptStore, Vec<PromptError>), PromptError> {
        Self::load(dir, false)
    }

    fn load(
        dir: &Path,
        stop_at_first: bool,
    ) -> Result<(PromptStore, Vec<PromptError>), PromptError> {
        if !dir.is_dir() {
            return Err(PromptError::MissingDir(dir.to_path_buf()));
        }
        let mut files = Vec::new();
        collect_wavs(dir, &mut files)?;
        files.sort();
        let mut store = PromptStore::default();
        let mut errors = Vec::new();
        for path in files {
            match load_file(dir, &path) {
                Ok(prompt) => {
                    store.prompts.insert(prompt.id.to_string(), prompt);
                }
                Err(e) => {
                    errors.push(e);
                    if stop_at_first {
                        break;
                    }
                }
            }
        }
        Ok((store, errors))
    }

    /// Add or replace a prompt (tests, generated prompts).
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.id.to_string(), prompt);
    }

    /// The prompt with this id.
    pub fn get(&self, id: &str) -> Option<&Prompt> {
        self.prompts.get(id)
    }

    /// Does the store hold this prompt?
    pub fn contains(&self, id: &str) -> bool {
        self.prompts.contains_key(id)
    }

    /// The playing time of a prompt, for the flow checker.
    pub fn duration(&self, id: &str) -> Option<Duration> {
        self.get(id).map(Prompt::duration)
    }

    /// All ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    /// The prompts whose id starts with `prefix` (e.g. [`MOH_PREFIX`]), sorted by id.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Prompt> {
        self.prompts
            .range(prefix.to_owned()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// How many prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// No prompts at all?
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

fn collect_wavs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PromptError> {
    let io = |source| PromptError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_wavs(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The prompt id of `path` under `root`: relative, no extension, `/` separators.
fn prompt_id(root: &Path, path: &Path) -> Result<String, PromptError> {
    let rel = path.strip_prefix(root).unwrap_or(path).with_extension("");
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| PromptError::NonUtf8Name(path.to_path_buf()))
}

/// Read, decode, resample and encode one file.
pub fn load_file(root: &Path, path: &Path) -> Result<Prompt, PromptError> {
    let id = prompt_id(root, path)?;
    let bytes = std::fs::read(path).map_err(|source| PromptError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |source| PromptError::BadFile {
        path: path.to_path_buf(),
        source,
    };
    let audio = wav::read_wav(&bytes).map_err(bad)?;
    let samples = wav::resample(&audio.samples, audio.sample_rate, PROMPT_RATE).map_err(bad)?;
    Ok(Prompt::from_linear(&id, &wav::to_i16(&samples)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::inband::goertzel_power;
    use crate::media::wav::g711_wav_bytes;

    fn write_hound(path: &Path, rate: u32, channels: u16, bits: u16, float: bool, frames: &[f32]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in frames {
            for ch in 0..channels {
                // Stereo: the right channel carries the opposite offset, so the mix is `s`.
                let v = if channels == 2 {
                    if ch == 0 { s + 0.25 } else { s - 0.25 }
                } else {
                    *s
                };
                if float {
                    w.write_sample(v).unwrap();
                } else {
                    let scale = (1i64 << (bits - 1)) as f32;
                    let iv = (v * scale).round().clamp(-scale, scale - 1.0) as i32;
                    match bits {
                        8 => w.write_sample(iv as i8).unwrap(),
                        16 => w.write_sample(iv as i16).unwrap(),
                        _ => w.write_sample(iv).unwrap(),
                    }
                }
            }
        }
        w.finalize().unwrap();
    }

    fn tone(freq: f64, rate: u32, seconds: f64, amp: f32) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
            })
            .collect()
    }

    fn linear(p: &Prompt, law: Law) -> Vec<i16> {
        let mut out = Vec::new();
        law.decode(p.audio(law), &mut out);
        out
    }

    fn level_at(pcm: &[i16], freq: f64) -> f64 {
        let x: Vec<f32> = pcm[pcm.len() / 4..pcm.len() * 3 / 4]
            .iter()
            .map(|s| f32::from(*s))
            .collect();
        2.0 * goertzel_power(&x, freq, 8000).sqrt() / x.len() as f64
    }

    #[test]
    fn loads_every_format_with_ids_durations_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ramp: Vec<f32> = (0..8000)
            .map(|i| ((i % 100) as f32 - 50.0) / 200.0)
            .collect();
        write_hound(&root.join("fr/pcm16.wav"), 8000, 1, 16, false, &ramp);
        write_hound(&root.join("fr/pcm8.wav"), 8000, 1, 8, false, &ramp);
        write_hound(&root.join("fr/pcm24.wav"), 8000, 1, 24, false, &ramp);
        write_hound(&root.join("fr/float.wav"), 8000, 1, 32, true, &ramp);
        write_hound(&root.join("fr/stereo.wav"), 8000, 2, 16, false, &ramp);
        write_hound(
            &root.join("hi/16k.wav"),
            16_000,
            1,
            16,
            false,
            &tone(1000.0, 16_000, 1.5, 0.5),
        );
        write_hound(
            &root.join("hi/44k.WAV"),
            44_100,
            2,
            16,
            false,
            &tone(1000.0, 44_100, 0.5, 0.5),
        );
        let pcm: Vec<i16> = ramp.iter().map(|s| (s * 32768.0) as i16).collect();
        for (law, name) in [(Law::Ulaw, "mulaw"), (Law::Alaw, "alaw")] {
            let mut enc = Vec::new();
            law.encode(&pcm, &mut enc);
            std::fs::write(
                root.join(format!("{name}.wav")),
                g711_wav_bytes(law, 8000, 1, &enc),
            )
            .unwrap();
        }
        std::fs::write(root.join("notes.txt"), "ignored").unwrap();

        let store = PromptStore::load_dir(root).unwrap();
        let ids: Vec<&str> = store.ids().collect();
        assert_eq!(
            ids,
            vec![
                "alaw",
                "fr/float",
                "fr/pcm16",
                "fr/pcm24",
                "fr/pcm8",
                "fr/stereo",
                "hi/16k",
                "hi/44k",
                "mulaw"
            ]
        );
        for id in [
            "alaw",
            "mulaw",
            "fr/float",
            "fr/pcm16",
            "fr/pcm24",
            "fr/pcm8",
            "fr/stereo",
        ] {
            assert_eq!(store.duration(id), Some(Duration::from_secs(1)), "{id}");
            let p = store.get(id).unwrap();
            assert_eq!(p.samples(), 8000);
            // Values survive within G.711 (and 8-bit) quantisation.
            for law in [Law::Ulaw, Law::Alaw] {
                let got = linear(p, law);
                for (i, (g, want)) in got.iter().zip(&pcm).enumerate() {
                    let tol = i32::from(*want).abs() / 16 + 300;
                    assert!(
                        (i32::from(*g) - i32::from(*want)).abs() <= tol,
                        "{id} {law:?} [{i}]: {g} vs {want}"
                    );
                }
            }
        }
        assert_eq!(store.duration("hi/16k"), Some(Duration::from_millis(1500)));
        assert_eq!(store.duration("hi/44k"), Some(Duration::from_millis(500)));
        // The 1 kHz tone keeps its frequency and level after resampling.
        for id in ["hi/16k", "hi/44k"] {
            let pcm = linear(store.get(id).unwrap(), Law::Ulaw);
            let a = level_at(&pcm, 1000.0);
            assert!((a / 16384.0 - 1.0).abs() < 0.05, "{id}: {a}");
            assert!(level_at(&pcm, 1200.0) < 0.02 * a, "{id}");
        }
        // Shared, not copied.
        let a = store.get("fr/pcm16").unwrap().audio(Law::Ulaw).clone();
        assert!(Arc::ptr_eq(
            &a,
            store.get("fr/pcm16").unwrap().audio(Law::Ulaw)
        ));
    }

    #[test]
    fn six_khz_in_a_16k_file_is_attenuated() {
        let dir = tempfile::tempdir().unwrap();
        write_hound(
            &dir.path().join("hf.wav"),
            16_000,
            1,
            16,
            false,
            &tone(6000.0, 16_000, 1.0, 0.5),
        );
        let store = PromptStore::load_dir(dir.path()).unwrap();
        let pcm = linear(store.get("hf").unwrap(), Law::Alaw);
        let rms =
            (pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
        let src_rms = 0.5 * 32768.0 / 2f64.sqrt();
        // A-law decodes silence to +-8: the floor is at -66 dB of this tone anyway.
        assert!(20.0 * (src_rms / rms).log10() > 40.0, "rms {rms}");
    }

    #[test]
    fn bad_files_and_dirs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            PromptStore::load_dir(&root.join("nope")),
            Err(PromptError::MissingDir(p)) if p.ends_with("nope")
        ));
        write_hound(&root.join("good.wav"), 8000, 1, 16, false, &[0.1; 800]);
        std::fs::write(root.join("text.wav"), "this is not audio at all").unwrap();
        let mut enc = Vec::new();
        Law::Ulaw.encode(&[0; 1000], &mut enc);
        let full = g711_wav_bytes(Law::Ulaw, 8000, 1, &enc);
        std::fs::write(root.join("trunc.wav"), &full[..full.len() / 2]).unwrap();
        let err = PromptStore::load_dir(root).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("text.wav") && msg.contains("not a WAV"),
            "{msg}"
        );

        let (store, errors) = PromptStore::load_dir_lenient(root).unwrap();
        assert_eq!(store.ids().collect::<Vec<_>>(), vec!["good"]);
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().any(|e| matches!(e,
            PromptError::BadFile { path, source: WavError::Truncated("data") } if path.ends_with("trunc.wav"))));
    }

    #[test]
    fn moh_prefix_lists_music_in_order() {
        let mut store = PromptStore::default();
        for id in ["moh/b", "fr/x", "moh/a", "mohx"] {
            store.insert(Prompt::from_linear(id, &[0; 10]));
        }
        let ids: Vec<String> = store
            .with_prefix(MOH_PREFIX)
            .iter()
            .map(|p| p.id().to_owned())
            .collect();
        assert_eq!(ids, vec!["moh/a", "moh/b"]);
    }
}
