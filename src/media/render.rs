//! Prompt rendering with `espeak-ng`: an operator tool, not call handling.
//!
//! [`render`] runs `espeak-ng -v <voice> -s <words per minute> -w <tmp.wav> --stdin` (the
//! text goes through stdin, so a text starting with `-` is never an option), resamples the
//! result to 8 kHz mono 16-bit with [`wav::resample`] and writes the WAV atomically (a
//! temporary file renamed into place, so a prompt reload never sees half a file). This is
//! the only function of the media layer that starts a process; the engine never calls it
//! while handling calls.
//!
//! [`render_catalogue`] renders a list of `(prompt id, text)` into the audio directory
//! (`<audio_dir>/<id>.wav`), beside each WAV a `<id>.sha256` file holding the SHA-256 of
//! text, voice and rate: an entry whose hash file matches and whose WAV exists is skipped.
//! It reports how many prompts were rendered and skipped.
//!
//! A missing `espeak-ng` is [`RenderError::NotInstalled`] with an installation hint.
//!
//! ```no_run
//! use guichet::media::render::render_catalogue;
//!
//! let report = render_catalogue(
//!     &[("fr/accueil", "Bonjour, bienvenue."), ("fr/menu", "Pour les impôts, tapez 1.")],
//!     "audio".as_ref(),
//!     "fr",
//! )
//! .unwrap();
//! println!("{} rendered, {} skipped", report.rendered, report.skipped);
//! ```

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::wav::{self, WavError};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The synthesiser program is not on the PATH.
    #[error("{program} is not installed (on Debian/Ubuntu: apt-get install espeak-ng)")]
    NotInstalled { program: String },
    /// The synthesiser ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Synthesis {
        program: String,
        status: String,
        stderr: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot write or read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The synthesiser's output is not a readable WAV.
    #[error("bad audio from the synthesiser in {path}: {source}")]
    Audio {
        path: PathBuf,
        #[source]
        source: WavError,
    },
    /// A prompt id that would escape the audio directory or is empty.
    #[error("invalid prompt id {0:?}: expected a relative path like fr/accueil")]
    BadId(String),
}

/// Voice settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// espeak-ng voice (default `fr`).
    pub voice: String,
    /// Speaking rate in words per minute (default 140).
    pub words_per_minute: u32,
    /// The program to run (default `espeak-ng`).
    pub program: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            voice: "fr".into(),
            words_per_minute: 140,
            program: "espeak-ng".into(),
        }
    }
}

/// What [`render_catalogue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenderReport {
    /// Prompts synthesised.
    pub rendered: usize,
    /// Prompts whose text, voice and rate did not change.
    pub skipped: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Render `text` with `voice` at `words_per_minute` to an 8 kHz mono 16-bit WAV at `out`.
pub fn render(
    text: &str,
    voice: &str,
    words_per_minute: u32,
    out: &Path,
) -> Result<(), RenderError> {
    let options = RenderOptions {
        voice: voice.to_owned(),
        words_per_minute,
        ..RenderOptions::default()
    };
    render_with(text, &options, out)
}

/// [`render`] with explicit options.
pub fn render_with(text: &str, options: &RenderOptions, out: &Path) -> Result<(), RenderError> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let raw = with_suffix(out, ".espeak.tmp");
    let result = synthesise(text, options, &raw).and_then(|()| convert(&raw, out));
    let _ = std::fs::remove_file(&raw);
    result
}

fn synthesise(text: &str, options: &RenderOptions, raw: &Path) -> Result<(), RenderError> {
    let program = options.program.clone();
    let mut child = Command::new(&options.program)
        .arg("-v")
        .arg(&options.voice)
        .arg("-s")
        .arg(options.words_per_minute.to_string())
        .arg("-w")
        .arg(raw)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RenderError::NotInstalled {
                program: program.clone(),
            },
            _ => RenderError::Io {
                path: PathBuf::from(&program),
                source: e,
            },
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(io_err(Path::new(&options.program)))?;
    } // stdin dropped: end of text
    let output = child
        .wait_with_output()
        .map_err(io_err(Path::new(&options.program)))?;
    if !output.status.success() {
        return Err(RenderError::Synthesis {
            program,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Read the synthesiser's WAV, resample to 8 kHz, write `out` atomically.
fn convert(raw: &Path, out: &Path) -> Result<(), RenderError> {
    let bytes = std::fs::read(raw).map_err(io_err(raw))?;
    let bad = |source| RenderError::Audio {
        path: raw.to_path_buf(),
        source,
    };
    let audio = wav::read_wav(&bytes).map_err(bad)?;
    let samples = wav::resample(&audio.samples, audio.sample_rate, 8000).map_err(bad)?;
    write_atomically(out, &wav::to_i16(&samples))
}

fn write_atomically(out: &Path, pcm: &[i16]) -> Result<(), RenderError> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = with_suffix(out, ".tmp");
    let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    wav::write_wav_8k(std::io::BufWriter::new(file), pcm).map_err(|source| RenderError::Audio {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, out).map_err(io_err(out))
}

/// The hash stored beside a rendered prompt: SHA-256 of voice, rate and text, in hex.
pub fn text_hash(text: &str, options: &RenderOptions) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "voice={}\nrate={}\ntext=",
        options.voice, options.words_per_minute
    ));
    h.update(text.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The WAV path of a prompt id under `audio_dir`, refusing ids that would escape it.
pub fn prompt_path(audio_dir: &Path, id: &str) -> Result<PathBuf, RenderError> {
    let rel = Path::new(id);
    let ok = !id.is_empty()
        && !id.contains('\\')
        && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(RenderError::BadId(id.to_owned()));
    }
    Ok(with_suffix(&audio_dir.join(rel), ".wav"))
}

/// Render every `(id, text)` with voice `lang` at 140 words per minute into `audio_dir`,
/// skipping the unchanged ones.
pub fn render_catalogue<I: AsRef<str>, T: AsRef<str>>(
    entries: &[(I, T)],
    audio_dir: &Path,
    lang: &str,
) -> Result<RenderReport, RenderError> {
    let options = RenderOptions {
        voice: lang.to_owned(),
        ..RenderOptions::default()
    };
    render_catalogue_with(entries, audio_dir, &options)
}

/// [`render_catalogue`] with explicit options.
pub fn render_catalogue_with<I: AsRef<str>, T: AsRef<str>>(
    entries: &[(I, T)],
    audio_dir: &Path,
    options: &RenderOptions,
) -> Result<RenderReport, RenderError> {
    catalogue(entries, audio_dir, options, render_with)
}

/// The catalogue logic with the synthesiser as a parameter (tests run without espeak-ng).
fn catalogue<I: AsRef<str>, T: AsRef<str>>(
    entries: &[(I, T)],
    audio_dir: &Path,
    options: &RenderOptions,
    mut render_one: impl FnMut(&str, &RenderOptions, &Path) -> Result<(), RenderError>,
) -> Result<RenderReport, RenderError> {
    let mut report = RenderReport::default();
    for (id, text) in entries {
        let (id, text) = (id.as_ref(), text.as_ref());
        let wav_path = prompt_path(audio_dir, id)?;
        let hash_path = wav_path.with_extension("sha256");
        let hash = text_hash(text, options);
        let unchanged = wav_path.is_file()
            && std::fs::read_to_string(&hash_path).is_ok_and(|h| h.trim() == hash);
        if unchanged {
            report.skipped += 1;
            continue;
        }
        render_one(text, options, &wav_path)?;
        std::fs::write(&hash_path, format!("{hash}\n")).map_err(io_err(&hash_path))?;
        report.rendered += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in synthesiser: one 8 kHz sample per text byte.
    fn fake(
        calls: &mut Vec<String>,
    ) -> impl FnMut(&str, &RenderOptions, &Path) -> Result<(), RenderError> + '_ {
        move |text, _opts, out| {
            calls.push(text.to_owned());
            write_atomically(out, &vec![100i16; text.len()])
        }
    }

    #[test]
    fn catalogue_skips_unchanged_and_rerenders_changes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RenderOptions::default();
        let mut calls = Vec::new();
        let entries = [("fr/accueil", "Bonjour"), ("fr/menu", "Tapez 1")];
        let r = catalogue(&entries, dir.path(), &opts, fake(&mut calls)).unwrap();
        assert_eq!(
            r,
            RenderReport {
                rendered: 2,
                skipped: 0
            }
        );
        assert!(dir.path().join("fr/accueil.wav").is_file());
        let stored = std::fs::read_to_string(dir.path().join("fr/accueil.sha256")).unwrap();
        assert_eq!(stored.trim(), text_hash("Bonjour", &opts));

        // Same again: nothing rendered.
        let r = catalogue(&entries, dir.path(), &opts, fake(&mut calls)).unwrap();
        assert_eq!(
            r,
            RenderReport {
                rendered: 0,
                skipped: 2
            }
        );

        // Changed text, deleted WAV, other voice or rate: rendered again.
        std::fs::remove_file(dir.path().join("fr/menu.wav")).unwrap();
        let entries2 = [("fr/accueil", "Bonjour !"), ("fr/menu", "Tapez 1")];
        let r = catalogue(&entries2, dir.path(), &opts, fake(&mut calls)).unwrap();
        assert_eq!(
            r,
            RenderReport {
                rendered: 2,
                skipped: 0
            }
        );
        let slow = RenderOptions {
            words_per_minute: 120,
            ..opts.clone()
        };
        let r = catalogue(&entries2[..1], dir.path(), &slow, fake(&mut calls)).unwrap();
        assert_eq!(r.rendered, 1);
        assert_eq!(calls.len(), 5);
    }

    #[test]
    fn catalogue_takes_owned_entries() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<(String, String)> = (0..3)
            .map(|n| (format!("num/{n}"), format!("nombre {n}")))
            .collect();
        let mut calls = Vec::new();
        let r = catalogue(
            &entries,
            dir.path(),
            &RenderOptions::default(),
            fake(&mut calls),
        )
        .unwrap();
        assert_eq!(r.rendered, 3);
        for (id, _) in &entries {
            assert!(prompt_path(dir.path(), id).unwrap().is_file(), "{id}");
        }
    }

    #[test]
    fn hash_depends_on_text_voice_and_rate() {
        let a = RenderOptions::default();
        let b = RenderOptions {
            voice: "fr+f3".into(),
            ..a.clone()
        };
        let h = text_hash("x", &a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, text_hash("x", &a));
        assert_ne!(h, text_hash("y", &a));
        assert_ne!(h, text_hash("x", &b));
    }

    #[test]
    fn ids_cannot_escape_the_audio_dir() {
        let root = Path::new("/srv/audio");
        assert_eq!(
            prompt_path(root, "fr/accueil").unwrap(),
            Path::new("/srv/audio/fr/accueil.wav")
        );
        assert_eq!(
            prompt_path(root, "v1.2").unwrap(),
            Path::new("/srv/audio/v1.2.wav")
        );
        for bad in ["", "../x", "/etc/passwd", "fr/../../x", "a\\b"] {
            assert!(
                matches!(prompt_path(root, bad), Err(RenderError::BadId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RenderOptions {
            program: "espeak-ng-definitely-not-here".into(),
            ..RenderOptions::default()
        };
        let err = render_with("Bonjour", &opts, &dir.path().join("x.wav")).unwrap_err();
        assert!(matches!(err, RenderError::NotInstalled { .. }));
        assert!(err.to_string().contains("apt-get install espeak-ng"));
    }

    fn espeak_installed() -> bool {
        Command::new("espeak-ng")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn real_render_with_espeak() {
        if !espeak_installed() {
            println!("skipped: espeak-ng not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fr/bonjour.wav");
        let r =
            render_catalogue(&[("fr/bonjour", "-Bonjour, tapez un.")], dir.path(), "fr").unwrap();
        assert_eq!(r.rendered, 1);
        let mut reader = hound::WavReader::open(&out).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16)
        );
        let pcm: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert!(pcm.len() > 4000, "at least half a second: {}", pcm.len());
        assert!(pcm.iter().any(|s| s.abs() > 1000), "audible");
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("fr"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, vec!["bonjour.sha256", "bonjour.wav"]);
        let again =
            render_catalogue(&[("fr/bonjour", "-Bonjour, tapez un.")], dir.path(), "fr").unwrap();
        assert_eq!(
            again,
            RenderReport {
                rendered: 0,
                skipped: 1
            }
        );
    }
}
