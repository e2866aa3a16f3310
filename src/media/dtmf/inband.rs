//! In-band DTMF detection: a Goertzel detector over 8 kHz linear PCM.
//!
//! The owner pushes decoded audio (any chunk size, e.g. one 20 ms RTP frame) with the time
//! of its first sample; the detector cuts it into blocks of `block_size` samples (default
//! 102, 12.75 ms) and, per block, evaluates the eight DTMF frequencies with the Goertzel
//! algorithm (exact frequencies, not FFT bins). A block holds a digit when all of these hold:
//! - **level**: both the best row and best column tone are above `min_level_dbm0`
//!   (default -36 dBm0 per tone);
//! - **twist**: high minus low level within `-normal_twist_db ..= reverse_twist_db`
//!   (default -8 ..= +4 dB);
//! - **relative peak**: each tone stands `relative_peak_db` (8 dB) above the other tones of
//!   its group;
//! - **tone to total energy**: the two tones carry at least `min_tone_ratio` (0.8) of the
//!   block's energy: speech and music spread energy elsewhere, and a tone off its nominal
//!   frequency loses Goertzel energy, so this also gives the ITU-T Q.24 frequency tolerance
//!   (1.5 % deviation accepted, 3 % and more rejected: tested);
//! - **second harmonic**: the energy at twice each tone frequency is at least
//!   `max_harmonic_db` (10 dB) below that tone: real voices and instruments have harmonics,
//!   DTMF has none. (The row harmonic is skipped when it lies within 120 Hz of the column
//!   tone, whose leakage would mask it, e.g. 2 x 697 = 1394 Hz next to 1336 Hz.)
//!
//! A digit is reported once `min_blocks` (2) consecutive blocks agree, which a tone of
//! 40 ms always gives whatever its alignment and a tone under 25 ms never does; it is
//! reported with the start time of its first block. The detector then waits for a pause of
//! `min_pause_blocks` (2) blocks without that digit before another digit can start, so a long
//! tone is one digit. While a digit is on, a block keeps it on with looser checks (its two
//! tones the strongest of their groups and above a quarter of the level threshold), so a
//! 10 ms dropout inside a tone does not split it; a 40 ms pause always ends it.
//!
//! ```
//! use std::time::Instant;
//! use guichet::media::dtmf::Digit;
//! use guichet::media::dtmf::inband::InbandDetector;
//! use guichet::media::dtmf::tones::{dtmf_sequence, ToneLevel};
//!
//! let t0 = Instant::now();
//! let mut det = InbandDetector::default();
//! det.push_samples(t0, &dtmf_sequence(&[Digit::D4, Digit::D2], 80, 80, ToneLevel::default()));
//! let digits: Vec<Digit> = std::iter::from_fn(|| det.poll_output()).map(|d| d.digit).collect();
//! assert_eq!(digits, vec![Digit::D4, Digit::D2]);
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::tones::{SAMPLE_RATE, dbm0_to_amplitude};
use super::{COL_FREQS, Digit, ROW_FREQS};

/// Detector settings (see the module docs for what each check does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InbandConfig {
    /// Samples per analysis block (default 102).
    pub block_size: usize,
    /// Minimum level of each tone, dBm0 (default -36).
    pub min_level_dbm0: f64,
    /// How much weaker the high tone may be than the low one, dB (default 8).
    pub normal_twist_db: f64,
    /// How much stronger the high tone may be than the low one, dB (default 4).
    pub reverse_twist_db: f64,
    /// How far each tone must stand above the others of its group, dB (default 8).
    pub relative_peak_db: f64,
    /// Minimum share of the block energy in the two tones (default 0.8).
    pub min_tone_ratio: f64,
    /// How far below its tone a second harmonic must be, dB (default 10).
    pub max_harmonic_db: f64,
    /// Consecutive blocks needed to report a digit (default 2).
    pub min_blocks: u32,
    /// Blocks without the digit that end it (default 2).
    pub min_pause_blocks: u32,
}

impl Default for InbandConfig {
    fn default() -> Self {
        InbandConfig {
            block_size: 102,
            min_level_dbm0: -36.0,
            normal_twist_db: 8.0,
            reverse_twist_db: 4.0,
            relative_peak_db: 8.0,
            min_tone_ratio: 0.8,
            max_harmonic_db: 10.0,
            min_blocks: 2,
            min_pause_blocks: 2,
        }
    }
}

/// A digit found in the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InbandDigit {
    /// The key.
    pub digit: Digit,
    /// Start of the first block holding the tone.
    pub at: Instant,
}

/// The Goertzel power of `samples` at `freq` Hz for a sample rate `rate`: about
/// `(A * N / 2)^2` for a sine of peak amplitude `A` over `N` samples.
pub fn goertzel_power(samples: &[f32], freq: f64, rate: u32) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate.max(1))).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Candidate {
        digit: Digit,
        blocks: u32,
        start: Instant,
    },
    Active {
        digit: Digit,
        misses: u32,
    },
}

/// The Goertzel DTMF detector (see the module docs).
#[derive(Debug)]
pub struct InbandDetector {
    config: InbandConfig,
    /// Per-tone power threshold, in Goertzel power units for one block.
    min_power: f64,
    block: Vec<f32>,
    block_start: Option<Instant>,
    state: State,
    out: VecDeque<InbandDigit>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        InbandDetector::new(InbandConfig::default())
    }
}

fn db_to_power_ratio(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}

impl InbandDetector {
    /// A detector with these settings (a zero block size is taken as 1).
    pub fn new(mut config: InbandConfig) -> Self {
        config.block_size = config.block_size.max(1);
        let n = config.block_size as f64;
        let amp = dbm0_to_amplitude(config.min_level_dbm0);
        InbandDetector {
            min_power: (amp * n / 2.0).powi(2),
            block: Vec::with_capacity(config.block_size),
            block_start: None,
            state: State::Idle,
            out: VecDeque::new(),
            config,
        }
    }

    /// Decoded 8 kHz samples; `now` is the time of `samples[0]`.
    pub fn push_samples(&mut self, now: Instant, samples: &[i16]) {
        for (i, s) in samples.iter().enumerate() {
            if self.block.is_empty() {
                let offset = Duration::from_micros(i as u64 * 1_000_000 / u64::from(SAMPLE_RATE));
                self.block_start = Some(now + offset);
            }
            self.block.push(f32::from(*s));
            if self.block.len() >= self.config.block_size {
                let found = match self.state {
                    // Hysteresis: once a digit is on, a block keeps it on when its two tones
                    // are still the strongest of their groups and above the level threshold,
                    // so a short dropout inside a long tone does not end it.
                    State::Active { digit, .. } if self.still_holds(digit) => Some(digit),
                    _ => self.classify_block(),
                };
                let start = self.block_start.unwrap_or(now);
                self.block.clear();
                self.step(found, start);
            }
        }
    }

    /// The next detected digit.
    pub fn poll_output(&mut self) -> Option<InbandDigit> {
        self.out.pop_front()
    }

    fn step(&mut self, found: Option<Digit>, block_start: Instant) {
        let cfg = self.config;
        self.state = match (self.state, found) {
            (State::Idle, Some(d)) => State::Candidate {
                digit: d,
                blocks: 1,
                start: block_start,
            },
            (State::Idle, None) => State::Idle,
            (
                State::Candidate {
                    digit,
                    blocks,
                    start,
                },
                Some(d),
            ) if d == digit => State::Candidate {
                digit,
                blocks: blocks.saturating_add(1),
                start,
            },
            (State::Candidate { .. }, Some(d)) => State::Candidate {
                digit: d,
                blocks: 1,
                start: block_start,
            },
            (State::Candidate { .. }, None) => State::Idle,
            (State::Active { digit, .. }, Some(d)) if d == digit => {
                State::Active { digit, misses: 0 }
            }
            (State::Active { digit, misses }, _) => {
                let misses = misses.saturating_add(1);
                if misses >= cfg.min_pause_blocks {
                    State::Idle
                } else {
                    State::Active { digit, misses }
                }
            }
        };
        if let State::Candidate {
            digit,
            blocks,
            start,
        } = self.state
            && blocks >= cfg.min_blocks
        {
            self.out.push_back(InbandDigit { digit, at: start });
            self.state = State::Active { digit, misses: 0 };
        }
    }

    /// Are the tones of `digit` still the strongest of their groups, above the threshold?
    fn still_holds(&self, digit: Digit) -> bool {
        let x = &self.block;
        let (r, c) = digit.keypad_position();
        let powers = |freqs: &[f64; 4]| -> Vec<f64> {
            freqs
                .iter()
                .map(|f| goertzel_power(x, *f, SAMPLE_RATE))
                .collect()
        };
        let (rows, cols) = (powers(&ROW_FREQS), powers(&COL_FREQS));
        // A weaker threshold than for a new digit: the tone may fill part of the block only.
        let floor = self.min_power / 4.0;
        matches!(best(&rows), Some((br, p)) if br == r && p >= floor)
            && matches!(best(&cols), Some((bc, p)) if bc == c && p >= floor)
    }

    /// The digit held by the current block, if every check passes.
    fn classify_block(&self) -> Option<Digit> {
        let cfg = &self.config;
        let x = &self.block;
        let n = x.len() as f64;
        let rows: Vec<f64> = ROW_FREQS
            .iter()
            .map(|f| goertzel_power(x, *f, SAMPLE_RATE))
            .collect();
        let cols: Vec<f64> = COL_FREQS
            .iter()
            .map(|f| goertzel_power(x, *f, SAMPLE_RATE))
            .collect();
        let (r, row) = best(&rows)?;
        let (c, col) = best(&cols)?;
        // Level.
        if row < self.min_power || col < self.min_power {
            return None;
        }
        // Twist: col/row within [-normal, +reverse] dB.
        if col > row * db_to_power_ratio(cfg.reverse_twist_db)
            || col < row * db_to_power_ratio(-cfg.normal_twist_db)
        {
            return None;
        }
        // Relative peak within each group.
        let peak = db_to_power_ratio(cfg.relative_peak_db);
        let stands_out = |all: &[f64], i: usize, p: f64| {
            all.iter().enumerate().all(|(j, q)| j == i || p >= q * peak)
        };
        if !stands_out(&rows, r, row) || !stands_out(&cols, c, col) {
            return None;
        }
        // Tone to total energy: tone mean square is 2 * power / N^2, block mean square is
        // sum(x^2) / N.
        let total: f64 = x.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
        let tones = 2.0 * (row + col) / n;
        if tones < cfg.min_tone_ratio * total {
            return None;
        }
        // Second harmonics.
        let harm = db_to_power_ratio(-cfg.max_harmonic_db);
        let (f_row, f_col) = (ROW_FREQS[r], COL_FREQS[c]);
        if goertzel_power(x, 2.0 * f_col, SAMPLE_RATE) > col * harm {
            return None;
        }
        if (2.0 * f_row - f_col).abs() > 120.0
            && goertzel_power(x, 2.0 * f_row, SAMPLE_RATE) > row * harm
        {
            return None;
        }
        Digit::from_keypad(r, c)
    }
}

/// Index and value of the largest element.
fn best(v: &[f64]) -> Option<(usize, f64)> {
    v.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::super::tones::{ToneLevel, dtmf_sequence, dtmf_tone, sines};
    use super::*;
    use crate::media::g711::Law;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn samples(ms: u32) -> usize {
        (ms * SAMPLE_RATE / 1000) as usize
    }

    fn through_g711(pcm: &[i16], law: Law) -> Vec<i16> {
        let mut enc = Vec::new();
        law.encode(pcm, &mut enc);
        let mut dec = Vec::new();
        law.decode(&enc, &mut dec);
        dec
    }

    /// Feed in 20 ms frames, as the media path does.
    fn detect_with(config: InbandConfig, pcm: &[i16]) -> Vec<InbandDigit> {
        let t0 = Instant::now();
        let mut det = InbandDetector::new(config);
        for (i, frame) in pcm.chunks(160).enumerate() {
            det.push_samples(t0 + ms(20 * i as u64), frame);
        }
        std::iter::from_fn(|| det.poll_output()).collect()
    }

    fn detect(pcm: &[i16]) -> Vec<Digit> {
        detect_with(InbandConfig::default(), pcm)
            .into_iter()
            .map(|d| d.digit)
            .collect()
    }

    /// Deterministic white noise (xorshift), uniform, of the given RMS.
    fn noise(n: usize, rms: f64, seed: u64) -> Vec<f64> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
                (u * 2.0 - 1.0) * rms * 3f64.sqrt()
            })
            .collect()
    }

    fn add(a: &[i16], b: &[f64]) -> Vec<i16> {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) + y).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    #[test]
    fn all_digits_at_all_levels_through_g711() {
        for law in [Law::Ulaw, Law::Alaw] {
            for level in [-3.0, -10.0, -20.0, -30.0] {
                let pcm = dtmf_sequence(&Digit::ALL, 60, 60, ToneLevel::new(level, 0.0));
                let got = detect(&through_g711(&pcm, law));
                assert_eq!(got, Digit::ALL.to_vec(), "{law:?} at {level} dBm0");
            }
        }
    }

    #[test]
    fn digit_time_is_tone_start() {
        let mut pcm = vec![0i16; samples(500)];
        pcm.extend(dtmf_tone(Digit::D8, samples(100), ToneLevel::default()));
        // The tone starts at 500 ms; the first full block holding it starts within one block.
        let t0 = Instant::now();
        let mut det = InbandDetector::default();
        det.push_samples(t0, &pcm);
        let at = det.poll_output().unwrap().at.duration_since(t0);
        assert!(at >= ms(487) && at <= ms(513), "{at:?}");
    }

    #[test]
    fn twist_limits() {
        let run = |twist: f64| {
            let pcm = dtmf_sequence(&Digit::ALL, 80, 80, ToneLevel::new(-12.0, twist));
            detect(&through_g711(&pcm, Law::Alaw))
        };
        // The estimate is within about 1 dB near the limits (leakage of the other tone).
        for twist in [-7.0, -4.0, 0.0, 2.0, 3.0] {
            assert_eq!(run(twist), Digit::ALL.to_vec(), "twist {twist} dB accepted");
        }
        for twist in [-10.0, -14.0, 6.0, 9.0] {
            assert!(run(twist).is_empty(), "twist {twist} dB rejected");
        }
    }

    #[test]
    fn frequency_deviation_limits() {
        let run = |dev: f64| {
            let mut pcm = Vec::new();
            for d in Digit::ALL {
                let (lo, hi) = d.frequencies();
                let a = dbm0_to_amplitude(-10.0);
                pcm.extend(sines(
                    &[(lo * (1.0 + dev), a, 0.0), (hi * (1.0 + dev), a, 0.3)],
                    samples(80),
                ));
                pcm.extend(vec![0i16; samples(80)]);
            }
            detect(&through_g711(&pcm, Law::Ulaw))
        };
        // ITU-T Q.24: accept a deviation of 1.5 %, reject 3.5 %.
        for dev in [-0.015, -0.01, 0.0, 0.01, 0.015] {
            assert_eq!(run(dev), Digit::ALL.to_vec(), "deviation {dev}");
        }
        for dev in [-0.035, -0.03, 0.03, 0.035] {
            assert!(run(dev).is_empty(), "deviation {dev}");
        }
    }

    #[test]
    fn below_the_level_threshold_is_ignored() {
        let pcm = dtmf_sequence(&Digit::ALL, 80, 80, ToneLevel::new(-42.0, 0.0));
        assert!(detect(&pcm).is_empty());
    }

    #[test]
    fn detected_in_noise() {
        for (level, snr_db) in [(-10.0, 15.0), (-20.0, 15.0), (-30.0, 20.0)] {
            let pcm = dtmf_sequence(&Digit::ALL, 80, 80, ToneLevel::new(level, 0.0));
            // Tone pair power = 2 * A^2 / 2.
            let a = dbm0_to_amplitude(level);
            let rms = (a * a).sqrt() / 10f64.powf(snr_db / 20.0);
            let noisy = add(&pcm, &noise(pcm.len(), rms, 42));
            let got = detect(&through_g711(&noisy, Law::Ulaw));
            assert_eq!(got, Digit::ALL.to_vec(), "{level} dBm0, SNR {snr_db} dB");
        }
        // Noise alone gives nothing.
        let quiet = vec![0i16; samples(5000)];
        let hiss = add(&quiet, &noise(quiet.len(), 3000.0, 7));
        assert!(detect(&hiss).is_empty());
    }

    #[test]
    fn short_tones_rejected_forty_ms_accepted_at_any_alignment() {
        for offset in [0usize, 13, 51, 77, 101] {
            let mut pcm = vec![0i16; samples(100) + offset];
            pcm.extend(dtmf_tone(Digit::D6, samples(20), ToneLevel::default()));
            pcm.extend(vec![0i16; samples(100)]);
            assert!(detect(&pcm).is_empty(), "20 ms tone at offset {offset}");

            let mut pcm = vec![0i16; samples(100) + offset];
            pcm.extend(dtmf_tone(Digit::D6, samples(40), ToneLevel::default()));
            pcm.extend(vec![0i16; samples(100)]);
            assert_eq!(
                detect(&pcm),
                vec![Digit::D6],
                "40 ms tone at offset {offset}"
            );
        }
    }

    #[test]
    fn long_tone_is_one_digit_and_a_short_dropout_does_not_split_it() {
        let pcm = dtmf_tone(Digit::Hash, samples(3000), ToneLevel::default());
        assert_eq!(detect(&pcm), vec![Digit::Hash]);

        // A 10 ms dropout (a lost stretch, the tone going on in phase after it).
        for at in [1600usize, 1630, 1660] {
            let mut pcm = dtmf_tone(Digit::D0, samples(400), ToneLevel::default());
            pcm[at..at + samples(10)].fill(0);
            assert_eq!(detect(&pcm), vec![Digit::D0], "dropout at {at}");
        }

        // The same digit twice with a 40 ms pause is two digits, whatever the alignment.
        for offset in [0usize, 25, 50, 75, 100] {
            let mut pcm = vec![0i16; offset];
            pcm.extend(dtmf_sequence(
                &[Digit::D0, Digit::D0],
                100,
                40,
                ToneLevel::default(),
            ));
            assert_eq!(detect(&pcm), vec![Digit::D0, Digit::D0], "offset {offset}");
        }
    }

    #[test]
    fn chunk_sizes_do_not_matter() {
        let pcm = dtmf_sequence(&Digit::ALL, 50, 50, ToneLevel::new(-15.0, -2.0));
        for chunk in [1usize, 7, 80, 160, 240, 1000] {
            let t0 = Instant::now();
            let mut det = InbandDetector::default();
            for (i, c) in pcm.chunks(chunk).enumerate() {
                det.push_samples(t0 + Duration::from_micros(125 * (i * chunk) as u64), c);
            }
            let got: Vec<Digit> = std::iter::from_fn(|| det.poll_output())
                .map(|d| d.digit)
                .collect();
            assert_eq!(got, Digit::ALL.to_vec(), "chunk {chunk}");
        }
    }

    fn load_speech() -> Vec<i16> {
        let bytes = include_bytes!("../../../tests/data/speech_fr_8k.wav");
        let mut reader = hound::WavReader::new(std::io::Cursor::new(&bytes[..])).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        reader.samples::<i16>().map(|s| s.unwrap()).collect()
    }

    #[test]
    fn talk_off_speech_gives_no_digit() {
        let speech = load_speech();
        assert!(speech.len() >= samples(10_000));
        for gain in [0.5, 1.0, 2.0] {
            let scaled: Vec<i16> = speech
                .iter()
                .map(|s| (f64::from(*s) * gain).clamp(-32768.0, 32767.0) as i16)
                .collect();
            for law in [Law::Ulaw, Law::Alaw] {
                let got = detect(&through_g711(&scaled, law));
                assert!(got.is_empty(), "speech x{gain} {law:?}: {got:?}");
            }
        }
        // The same speech does not hide a real digit dialled over it at a good level.
        let mut mixed = speech[..samples(2000)].to_vec();
        let tone = dtmf_tone(Digit::D9, samples(150), ToneLevel::new(-6.0, 0.0));
        for (m, t) in mixed[samples(1000)..].iter_mut().zip(&tone) {
            *m = ((i32::from(*m) / 8) + i32::from(*t)).clamp(-32768, 32767) as i16;
        }
        assert_eq!(detect(&mixed), vec![Digit::D9]);
    }

    /// A harmonic note: fundamental `f` with harmonics falling as 1/k.
    fn note(f: f64, amp: f64, harmonics: u32) -> Vec<(f64, f64, f64)> {
        (1..=harmonics)
            .map(|k| (f * f64::from(k), amp / f64::from(k), 0.7 * f64::from(k)))
            .filter(|(fk, _, _)| *fk < 3900.0)
            .collect()
    }

    #[test]
    fn talk_off_music_chords_give_no_digit() {
        // Chords over the piano range, including notes right on DTMF frequencies
        // (F5 = 698.5 Hz, E6 = 1318.5 Hz, A#5 = 932 Hz, G#6 = 1661 Hz ...).
        let mut pcm = Vec::new();
        for base in 40..80 {
            let midi = |m: i32| 440.0 * 2f64.powf(f64::from(m - 69) / 12.0);
            let mut comps = Vec::new();
            for interval in [0, 4, 7, 12, 19] {
                comps.extend(note(midi(base + interval), 2500.0, 6));
            }
            pcm.extend(sines(&comps, samples(250)));
        }
        // Two-note intervals with notes at DTMF frequencies, with harmonics.
        for (lo, hi) in [
            (697.0, 1209.0),
            (770.0, 1336.0),
            (852.0, 1477.0),
            (941.0, 1633.0),
        ] {
            let mut comps = note(lo, 6000.0, 5);
            comps.extend(note(hi, 6000.0, 3));
            pcm.extend(sines(&comps, samples(400)));
        }
        let got = detect(&through_g711(&pcm, Law::Ulaw));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn talk_off_voice_like_signals_give_no_digit() {
        // Glottal-pulse-like harmonic series with formant weighting and a pitch glide,
        // which sweeps harmonics across every DTMF frequency.
        let formants = [(700.0, 130.0), (1220.0, 150.0), (2600.0, 250.0)];
        let mut pcm = Vec::new();
        for pitch_start in [90.0, 120.0, 170.0, 230.0] {
            let n = samples(2000);
            let mut phase = vec![0f64; 40];
            for i in 0..n {
                let pitch = pitch_start * (1.0 + 0.3 * (i as f64 / n as f64));
                let mut v = 0.0;
                for (k, ph) in phase.iter_mut().enumerate() {
                    let f = pitch * (k + 1) as f64;
                    if f > 3800.0 {
                        break;
                    }
                    *ph += 2.0 * std::f64::consts::PI * f / f64::from(SAMPLE_RATE);
                    let gain: f64 = formants
                        .iter()
                        .map(|(fc, bw)| 1.0 / (1.0 + ((f - fc) / bw).powi(2)))
                        .sum::<f64>()
                        + 0.05;
                    v += 4000.0 * gain / (k + 1) as f64 * ph.sin();
                }
                pcm.push(v.clamp(-32768.0, 32767.0) as i16);
            }
        }
        let got = detect(&through_g711(&pcm, Law::Alaw));
        assert!(got.is_empty(), "{got:?}");
    }

    /// More talk-off material synthesised at test time: several voices and pitches
    /// (skipped without espeak-ng).
    #[test]
    fn talk_off_many_synthetic_voices_give_no_digit() {
        let text = "Bonjour madame, je voudrais savoir où en est mon dossier de retraite. \
                    J'ai envoyé les papiers il y a trois semaines, mais personne ne m'a répondu. \
                    Quatre, cinq, six, neuf, dièse, étoile. Merci beaucoup, au revoir.";
        let mut total = 0usize;
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("speech.wav");
        let voices = [
            ("fr", "50"),
            ("fr+f2", "95"),
            ("fr+m3", "10"),
            ("fr+f4", "70"),
            ("fr+m7", "30"),
            ("en+f3", "85"),
        ];
        for (voice, pitch) in voices {
            let out = std::process::Command::new("espeak-ng")
                .args(["-v", voice, "-p", pitch, "-s", "160", "-w"])
                .arg(&wav)
                .arg(text)
                .output();
            let Ok(out) = out else {
                println!("skipped: espeak-ng not installed");
                return;
            };
            assert!(out.status.success());
            let audio = crate::media::wav::read_wav(&std::fs::read(&wav).unwrap()).unwrap();
            let pcm8k =
                crate::media::wav::resample(&audio.samples, audio.sample_rate, 8000).unwrap();
            let pcm = crate::media::wav::to_i16(&pcm8k);
            total += pcm.len();
            let got = detect(&through_g711(&pcm, Law::Ulaw));
            assert!(got.is_empty(), "{voice} pitch {pitch}: {got:?}");
        }
        assert!(total > samples(40_000), "at least 40 s of speech: {total}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Any dialled sequence (tones and pauses of 45-200 ms, -32..-3 dBm0, twist -6..+3 dB,
        /// any alignment) through G.711 is detected exactly.
        #[test]
        fn any_dialled_sequence_is_detected_exactly(
            presses in proptest::collection::vec((0usize..16, 45u32..200, 45u32..200), 1..6),
            level in -30.0f64..-3.0,
            twist in -6.0f64..3.0,
            offset in 0usize..160,
            alaw: bool,
        ) {
            // Both tones at -32 dBm0 or more (the threshold is -36).
            proptest::prop_assume!(level + twist >= -32.0);
            let mut pcm = vec![0i16; offset];
            let mut want = Vec::new();
            for (d, on, off) in &presses {
                let digit = Digit::ALL[*d];
                want.push(digit);
                pcm.extend(dtmf_tone(digit, samples(*on), ToneLevel::new(level, twist)));
                pcm.extend(vec![0i16; samples(*off)]);
            }
            let law = if alaw { Law::Alaw } else { Law::Ulaw };
            proptest::prop_assert_eq!(detect(&through_g711(&pcm, law)), want);
        }
    }
}
