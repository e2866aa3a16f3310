//! WAV reading (any common format, mixed down to mono), resampling and 8 kHz writing.
//!
//! [`read_wav`] takes the bytes of a WAV file and returns mono samples in `-1.0..=1.0` with
//! their sample rate. Integer PCM (8/16/24/32-bit), IEEE float and WAVE_FORMAT_EXTENSIBLE are
//! read with `hound`; G.711 files (format tag 6 = A-law, 7 = mu-law, which hound refuses)
//! with our own small RIFF reader. Stereo and multi-channel audio is averaged to mono.
//!
//! [`resample`] converts a whole clip between rates with rubato's FFT resampler (a proper
//! anti-aliasing filter: a 6 kHz tone in a 16 kHz file is attenuated far more than 40 dB
//! when going to 8 kHz). [`write_wav_8k`] writes 8 kHz mono 16-bit PCM with hound.
//!
//! Everything here works on bytes in memory or a `Write + Seek`; opening files is the
//! caller's business (prompt loading, the render tool).
//!
//! ```
//! use guichet::media::wav::{read_wav, resample, write_wav_8k, to_i16};
//!
//! let mut bytes = std::io::Cursor::new(Vec::new());
//! write_wav_8k(&mut bytes, &[0, 1000, -1000, 0]).unwrap();
//! let audio = read_wav(bytes.get_ref()).unwrap();
//! assert_eq!((audio.sample_rate, audio.samples.len()), (8000, 4));
//! assert_eq!(to_i16(&audio.samples), vec![0, 1000, -1000, 0]);
//! let up = resample(&audio.samples, 8000, 16000).unwrap();
//! assert_eq!(up.len(), 8);
//! ```

use std::io::{Cursor, Seek, Write};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::g711::{ALAW_TABLE, ULAW_TABLE};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file does not start with `RIFF....WAVE`.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A required chunk is missing.
    #[error("WAV file has no {0:?} chunk")]
    MissingChunk(&'static str),
    /// A chunk claims more bytes than the file has.
    #[error("WAV file is truncated in its {0:?} chunk")]
    Truncated(&'static str),
    /// A G.711 WAV with an unusual layout.
    #[error("unsupported G.711 WAV layout: {bits} bits per sample, {channels} channels")]
    UnsupportedG711 { bits: u16, channels: u16 },
    /// Zero channels or a zero sample rate.
    #[error("WAV file declares {channels} channels at {sample_rate} Hz")]
    BadFormat { channels: u16, sample_rate: u32 },
    /// What hound says about a PCM/float file it cannot read.
    #[error("WAV decoding failed: {0}")]
    Decode(#[from] hound::Error),
    /// The resampler refused the rates.
    #[error("cannot resample {from} Hz to {to} Hz: {reason}")]
    Resample { from: u32, to: u32, reason: String },
}

/// Mono audio in `-1.0..=1.0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono samples.
    pub samples: Vec<f32>,
}

impl Audio {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

const TAG_ALAW: u16 = 6;
const TAG_ULAW: u16 = 7;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

struct Fmt {
    tag: u16,
    channels: u16,
    sample_rate: u32,
    bits: u16,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Walk the RIFF chunks: the `fmt ` chunk and the `data` chunk (possibly truncated: `None`).
fn riff_chunks(bytes: &[u8]) -> Result<(Fmt, Option<&[u8]>), WavError> {
    // Indexing below 12 is safe: the length is checked first.
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut fmt = None;
    let mut pos = 12usize;
    while pos + 8 <= bytes.len() {
        // In bounds: the loop condition keeps 8 bytes after `pos`.
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4).unwrap_or(0) as usize;
        let body_start = pos + 8;
        let body = bytes.get(body_start..body_start.saturating_add(size));
        match id {
            b"fmt " => {
                let b = body.ok_or(WavError::Truncated("fmt "))?;
                let field = |i| u16_at(b, i).ok_or(WavError::Truncated("fmt "));
                let mut tag = field(0)?;
                if tag == TAG_EXTENSIBLE {
                    // The sub-format GUID starts with the real format tag (offset 24).
                    tag = u16_at(b, 24).unwrap_or(tag);
                }
                fmt = Some(Fmt {
                    tag,
                    channels: field(2)?,
                    sample_rate: u32_at(b, 4).ok_or(WavError::Truncated("fmt "))?,
                    bits: field(14)?,
                });
            }
            b"data" => {
                let fmt = fmt.ok_or(WavError::MissingChunk("fmt "))?;
                return Ok((fmt, body));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = body_start.saturating_add(size).saturating_add(size & 1);
    }
    match fmt {
        None => Err(WavError::MissingChunk("fmt ")),
        Some(_) => Err(WavError::MissingChunk("data")),
    }
}

/// Decode a WAV file held in memory to mono samples.
pub fn read_wav(bytes: &[u8]) -> Result<Audio, WavError> {
    let (fmt, data) = riff_chunks(bytes)?;
    if fmt.channels == 0 || fmt.sample_rate == 0 {
        return Err(WavError::BadFormat {
            channels: fmt.channels,
            sample_rate: fmt.sample_rate,
        });
    }
    if fmt.tag == TAG_ALAW || fmt.tag == TAG_ULAW {
        if fmt.bits != 8 {
            return Err(WavError::UnsupportedG711 {
                bits: fmt.bits,
                channels: fmt.channels,
            });
        }
        let data = data.ok_or(WavError::Truncated("data"))?;
        let table = if fmt.tag == TAG_ALAW {
            &ALAW_TABLE
        } else {
            &ULAW_TABLE
        };
        let channels = usize::from(fmt.channels);
        let samples = data
            .chunks_exact(channels)
            .map(|frame| {
                let sum: f32 = frame
                    .iter()
                    .map(|b| f32::from(table[usize::from(*b)]) / 32768.0)
                    .sum();
                sum / channels as f32
            })
            .collect();
        return Ok(Audio {
            sample_rate: fmt.sample_rate,
            samples,
        });
    }
    read_with_hound(bytes)
}

fn read_with_hound(bytes: &[u8]) -> Result<Audio, WavError> {
    let mut reader = hound::WavReader::new(Cursor::new(bytes))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let bits = u32::from(spec.bits_per_sample.clamp(1, 32));
            let scale = (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()?
        }
    };
    let samples = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Audio {
        sample_rate: spec.sample_rate,
        samples,
    })
}

/// Resample a whole mono clip from `from` Hz to `to` Hz (a copy when equal).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, WavError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |reason: String| WavError::Resample { from, to, reason };
    let input: Vec<f64> = samples.iter().map(|s| f64::from(*s)).collect();
    let mut resampler = Fft::<f64>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| err(e.to_string()))?;
    let adapter =
        InterleavedSlice::new(&input[..], 1, input.len()).map_err(|e| err(e.to_string()))?;
    let out = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data().into_iter().map(|s| s as f32).collect())
}

/// Convert `-1.0..=1.0` samples to 16-bit linear, rounding and clipping.
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Write 8 kHz mono 16-bit PCM.
pub fn write_wav_8k<W: Write + Seek>(out: W, samples: &[i16]) -> Result<(), WavError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::new(out, spec)?;
    let mut w16 = writer.get_i16_writer(samples.len() as u32);
    for s in samples {
        w16.write_sample(*s);
    }
    w16.flush()?;
    writer.finalize()?;
    Ok(())
}

/// Build a G.711 WAV (format tag 6 or 7, 8-bit) in memory: used by tests and tools.
pub fn g711_wav_bytes(
    law: super::g711::Law,
    sample_rate: u32,
    channels: u16,
    data: &[u8],
) -> Vec<u8> {
    let tag = match law {
        super::g711::Law::Alaw => TAG_ALAW,
        super::g711::Law::Ulaw => TAG_ULAW,
    };
    let mut b = Vec::with_capacity(58 + data.len());
    let data_len = data.len() as u32;
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(
        &(50u32.saturating_add(data_len).saturating_add(data_len & 1)).to_le_bytes(),
    );
    b.extend_from_slice(b"WAVE");
    b.extend_from_slice(b"fmt ");
    b.extend_from_slice(&18u32.to_le_bytes());
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&sample_rate.to_le_bytes());
    b.extend_from_slice(
        &sample_rate
            .saturating_mul(u32::from(channels))
            .to_le_bytes(),
    );
    b.extend_from_slice(&channels.to_le_bytes()); // block align
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes()); // cbSize
    b.extend_from_slice(b"fact");
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&(data_len / u32::from(channels.max(1))).to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(data);
    if data_len & 1 == 1 {
        b.push(0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::inband::goertzel_power;
    use crate::media::g711::Law;

    fn tone(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    /// Amplitude of `freq` in the middle part of a clip (edges skipped).
    fn amplitude(samples: &[f32], freq: f64, rate: u32) -> f64 {
        let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
        2.0 * goertzel_power(mid, freq, rate).sqrt() / mid.len() as f64
    }

    #[test]
    fn g711_wav_round_trip() {
        let pcm: Vec<i16> = (0..800).map(|i| ((i % 50) * 400 - 10_000) as i16).collect();
        for law in [Law::Ulaw, Law::Alaw] {
            let mut enc = Vec::new();
            law.encode(&pcm, &mut enc);
            let audio = read_wav(&g711_wav_bytes(law, 8000, 1, &enc)).unwrap();
            assert_eq!(audio.sample_rate, 8000);
            let mut dec = Vec::new();
            law.decode(&enc, &mut dec);
            assert_eq!(to_i16(&audio.samples), dec);
        }
    }

    #[test]
    fn odd_sized_extra_chunks_and_stereo_g711() {
        // Stereo A-law: left 1000, right -3000 -> mono -1000 (within A-law steps).
        let mut frame = Vec::new();
        Law::Alaw.encode(&[1000, -3000], &mut frame);
        let data: Vec<u8> = frame.iter().copied().cycle().take(200).collect();
        let plain = g711_wav_bytes(Law::Alaw, 8000, 2, &data);
        // Insert an odd-sized LIST chunk (padded to even) before "fmt ".
        let mut bytes = plain[..12].to_vec();
        bytes.extend_from_slice(b"LIST");
        bytes.extend_from_slice(&5u32.to_le_bytes());
        bytes.extend_from_slice(b"INFOx\0");
        bytes.extend_from_slice(&plain[12..]);
        let audio = read_wav(&bytes).unwrap();
        assert_eq!(audio.samples.len(), 100);
        let v = to_i16(&audio.samples);
        assert!(v.iter().all(|s| (s + 1000).abs() < 40), "{:?}", &v[..4]);
    }

    #[test]
    fn bad_files_are_typed_errors() {
        assert!(matches!(
            read_wav(b"hello world, not a wav"),
            Err(WavError::NotWav)
        ));
        assert!(matches!(read_wav(b""), Err(WavError::NotWav)));
        let mut enc = Vec::new();
        Law::Ulaw.encode(&[0; 100], &mut enc);
        let full = g711_wav_bytes(Law::Ulaw, 8000, 1, &enc);
        assert!(matches!(
            read_wav(&full[..full.len() - 10]),
            Err(WavError::Truncated("data"))
        ));
        assert!(matches!(
            read_wav(&full[..20]),
            Err(WavError::Truncated("fmt "))
        ));
        assert!(matches!(
            read_wav(&full[..12]),
            Err(WavError::MissingChunk("fmt "))
        ));
        let mut pcm16 = Cursor::new(Vec::new());
        write_wav_8k(&mut pcm16, &[1; 1000]).unwrap();
        let bytes = pcm16.into_inner();
        assert!(read_wav(&bytes[..bytes.len() - 101]).is_err());
    }

    proptest::proptest! {
        /// Garbage and damaged files give errors, never panics.
        #[test]
        fn read_wav_never_panics(
            cut in 0usize..200,
            flips in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 0..6),
            ulaw: bool,
        ) {
            let mut bytes = if ulaw {
                g711_wav_bytes(Law::Ulaw, 8000, 2, &[0x55; 64])
            } else {
                let mut c = Cursor::new(Vec::new());
                write_wav_8k(&mut c, &[100; 32]).unwrap();
                c.into_inner()
            };
            for (i, b) in flips {
                if let Some(x) = bytes.get_mut(i) {
                    *x = b;
                }
            }
            bytes.truncate(cut);
            let _ = read_wav(&bytes);
        }
    }

    #[test]
    fn resampling_keeps_frequency_and_rejects_aliases() {
        // 1 kHz at 16 kHz and 44.1 kHz stays 1 kHz at 8 kHz, with its level.
        for rate in [16_000u32, 44_100, 48_000, 11_025] {
            let src = tone(1000.0, rate, rate as usize, 0.5);
            let out = resample(&src, rate, 8000).unwrap();
            assert!(
                (out.len() as i64 - 8000).abs() <= 1,
                "{rate}: {}",
                out.len()
            );
            let a = amplitude(&out, 1000.0, 8000);
            assert!((a - 0.5).abs() < 0.02, "{rate}: amplitude {a}");
            assert!(amplitude(&out, 1300.0, 8000) < 0.01);
        }
        // 6 kHz in a 16 kHz file would alias to 2 kHz: attenuated by more than 40 dB.
        let src = tone(6000.0, 16_000, 16_000, 0.5);
        let out = resample(&src, 16_000, 8000).unwrap();
        let rms =
            (out.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / out.len() as f64).sqrt();
        let src_rms = 0.5 / 2f64.sqrt();
        let atten_db = 20.0 * (src_rms / rms.max(1e-12)).log10();
        assert!(atten_db > 40.0, "attenuation {atten_db} dB");
    }
}
