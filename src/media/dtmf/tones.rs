//! DTMF tone generation (8 kHz, 16-bit linear), for tests and the test caller.
//!
//! Levels are in dBm0 per frequency, with the G.711 convention that a full-scale sine is
//! +3.17 dBm0. Twist is the level of the high tone minus the level of the low tone, in dB.
//!
//! ```
//! use guichet::media::dtmf::Digit;
//! use guichet::media::dtmf::tones::{dtmf_tone, dtmf_sequence, ToneLevel};
//!
//! let pcm = dtmf_tone(Digit::D5, 800, ToneLevel::new(-10.0, 0.0)); // 100 ms
//! assert_eq!(pcm.len(), 800);
//! let dial = dtmf_sequence(&[Digit::D1, Digit::Hash], 80, 80, ToneLevel::default());
//! assert_eq!(dial.len(), 4 * 640);
//! ```

use std::f64::consts::PI;

use super::Digit;

/// Sample rate of everything generated here.
pub const SAMPLE_RATE: u32 = 8000;

/// Peak amplitude (16-bit linear) of a sine at `dbm0` dBm0.
pub fn dbm0_to_amplitude(dbm0: f64) -> f64 {
    32768.0 * 10f64.powf((dbm0 - 3.17) / 20.0)
}

/// The level of a DTMF tone pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneLevel {
    /// Level of the low (row) tone, dBm0.
    pub low_dbm0: f64,
    /// High minus low, dB (positive: reverse twist).
    pub twist_db: f64,
}

impl ToneLevel {
    /// A level: the low tone at `low_dbm0`, the high tone `twist_db` above it.
    pub fn new(low_dbm0: f64, twist_db: f64) -> Self {
        ToneLevel { low_dbm0, twist_db }
    }
}

impl Default for ToneLevel {
    /// -10 dBm0 per tone, no twist.
    fn default() -> Self {
        ToneLevel::new(-10.0, 0.0)
    }
}

/// The sum of sines `(frequency Hz, peak amplitude, phase rad)` over `n` samples at 8 kHz,
/// clipped to 16 bits.
pub fn sines(components: &[(f64, f64, f64)], n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            let v: f64 = components
                .iter()
                .map(|(f, a, ph)| a * (2.0 * PI * f * t + ph).sin())
                .sum();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// One DTMF tone of `n` samples.
pub fn dtmf_tone(digit: Digit, n: usize, level: ToneLevel) -> Vec<i16> {
    let (lo, hi) = digit.frequencies();
    sines(
        &[
            (lo, dbm0_to_amplitude(level.low_dbm0), 0.0),
            (hi, dbm0_to_amplitude(level.low_dbm0 + level.twist_db), 0.3),
        ],
        n,
    )
}

/// Digits dialled one after the other: each tone `on_ms`, followed by `off_ms` of silence.
pub fn dtmf_sequence(digits: &[Digit], on_ms: u32, off_ms: u32, level: ToneLevel) -> Vec<i16> {
    let on = (u64::from(on_ms) * u64::from(SAMPLE_RATE) / 1000) as usize;
    let off = (u64::from(off_ms) * u64::from(SAMPLE_RATE) / 1000) as usize;
    let mut out = Vec::with_capacity(digits.len() * (on + off));
    for d in digits {
        out.extend(dtmf_tone(*d, on, level));
        out.extend(std::iter::repeat_n(0i16, off));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_g711_convention() {
        assert!((dbm0_to_amplitude(3.17) - 32768.0).abs() < 1e-6);
        let a0 = dbm0_to_amplitude(0.0);
        let a20 = dbm0_to_amplitude(-20.0);
        assert!((a0 / a20 - 10.0).abs() < 1e-9);
        let pcm = dtmf_tone(Digit::D1, 8000, ToneLevel::new(-10.0, 0.0));
        let peak = pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap();
        // Two equal tones: the peak approaches twice one amplitude.
        let a = dbm0_to_amplitude(-10.0);
        assert!(f64::from(peak) > 1.9 * a && f64::from(peak) <= 2.0 * a + 1.0);
    }
}
