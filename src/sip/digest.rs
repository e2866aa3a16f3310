//! HTTP digest authentication primitives for SIP (RFC 3261 section 22, RFC 2617, RFC 7616
//! for SHA-256, RFC 8760 for SIP's use of it).
//!
//! Owns: MD5 (RFC 1321, implemented here because the MD5 crate is only a transitive
//! dependency and rsipstack's `DigestGenerator` needs the plain password), SHA-256 hex
//! helpers over `sha2`, HMAC-SHA-256 for stateless nonces, a constant-time comparison, the
//! `Authorization: Digest ...` parameter parser and the request-digest computation from a
//! stored HA1. Pure functions, no state, no IO.
//!
//! ```
//! use guichet::sip::digest::{Algorithm, ha1, request_digest};
//! let ha1 = ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
//! let response = request_digest(
//!     Algorithm::Md5, &ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b",
//!     "auth", "GET", "/dir/index.html",
//! );
//! assert_eq!(response, "6629fae49393a05397450978507c4ef1");
//! ```

use sha2::{Digest, Sha256};

/// Why an `Authorization` header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The scheme is not `Digest`.
    #[error("authorization scheme {0:?} is not Digest")]
    UnsupportedScheme(String),
    /// The parameter list is not `name=value` pairs separated by commas.
    #[error("malformed digest parameter list")]
    Malformed,
    /// A required parameter is absent.
    #[error("digest parameter {0} missing")]
    Missing(&'static str),
    /// The `algorithm` parameter names one we do not challenge with.
    #[error("digest algorithm {0:?} not supported")]
    UnsupportedAlgorithm(String),
}

/// A digest hash algorithm we challenge with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617), the default when `algorithm` is absent.
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => to_hex(&md5(data)),
            Algorithm::Sha256 => to_hex(&Sha256::digest(data)),
        }
    }
}

/// HA1 = H(username ":" realm ":" password), lower-case hex.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hex(format!("{user}:{realm}:{password}").as_bytes())
}

/// The `response` value for qop=auth: H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)
/// with HA2 = H(method ":" uri) (RFC 2617 section 3.2.2.1).
#[allow(clippy::too_many_arguments)] // the RFC's own parameter list
pub fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex(format!("{method}:{uri}").as_bytes());
    algorithm.hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes())
}

/// The parameters of an `Authorization: Digest ...` header (RFC 2617 section 3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parse the value of an `Authorization` header.
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let value = value.trim_start();
        let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => value.split_at(i),
            None => (value, ""),
        };
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::UnsupportedScheme(
                scheme.chars().take(32).collect(),
            ));
        }
        let params = parse_params(rest)?;
        let find = |name: &str| -> Option<String> {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let algorithm = match find("algorithm") {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(a) => {
                return Err(DigestError::UnsupportedAlgorithm(
                    a.chars().take(32).collect(),
                ));
            }
        };
        Ok(Credentials {
            username: find("username").ok_or(DigestError::Missing("username"))?,
            realm: find("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: find("nonce").ok_or(DigestError::Missing("nonce"))?,
            uri: find("uri").ok_or(DigestError::Missing("uri"))?,
            response: find("response").ok_or(DigestError::Missing("response"))?,
            algorithm,
            qop: find("qop"),
            nc: find("nc"),
            cnonce: find("cnonce"),
            opaque: find("opaque"),
        })
    }
}

/// Parse `name=value, name="quoted \" value", ...` into pairs (values unquoted).
fn parse_params(input: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_ascii_whitespace() || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return Err(DigestError::Malformed);
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(DigestError::Malformed),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(DigestError::Malformed),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => return Err(DigestError::Malformed),
        }
        out.push((name, value));
    }
}

/// Quote a value for a header parameter (RFC 3261 quoted-string).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Compare two strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        // Invariant: key.len() <= 64 on this branch.
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// MD5 (RFC 1321). Used only inside digest authentication, as SIP requires.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32), RFC 1321 section 3.4.
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in message.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (word, bytes) in m.iter_mut().zip(chunk.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(K[i])
                .wrapping_add(m[g])
                .rotate_left(S[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (dst, word) in out.chunks_exact_mut(4).zip(state) {
        dst.copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn md5_rfc1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(to_hex(&md5(input.as_bytes())), expected, "MD5({input:?})");
        }
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let response = request_digest(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "auth",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256_example() {
        // RFC 7616 section 3.9.1 (SHA-256, qop=auth).
        let ha1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let response = request_digest(
            Algorithm::Sha256,
            &ha1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            "auth",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            to_hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn parses_rfc2617_authorization() {
        let value = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let c = Credentials::parse(value).expect("valid header");
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
    }

    #[test]
    fn refuses_other_schemes_and_algorithms() {
        assert!(matches!(
            Credentials::parse("NoOneKnowsThisScheme opaque-data=here"),
            Err(DigestError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            Credentials::parse(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=MD5-sess"#
            ),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            Credentials::parse(r#"Digest username="a", realm="r"#),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            Credentials::parse(r#"Digest username="a", realm="r""#),
            Err(DigestError::Missing("nonce"))
        );
    }

    #[test]
    fn quote_round_trips_through_parser() {
        let tricky = r#"we"ird\user"#;
        let header = format!(
            "Digest username={}, realm=r, nonce=n, uri=u, response=x",
            quote(tricky)
        );
        assert_eq!(
            Credentials::parse(&header).map(|c| c.username),
            Ok(tricky.to_string())
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = Credentials::parse(&s);
            let _ = Credentials::parse(&format!("Digest {s}"));
        }

        #[test]
        fn md5_is_deterministic_and_length_sensitive(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut longer = data.clone();
            longer.push(0);
            prop_assert_eq!(md5(&data), md5(&data));
            prop_assert_ne!(md5(&data), md5(&longer));
        }
    }
}
