//! A fixed-bucket, log-linear histogram of microsecond values (HDR-like, no allocation
//! after creation, mergeable).
//!
//! Values below 64 have their own bucket; above, each power of two is split into 32
//! buckets, so a reported percentile is within 1/32 (about 3 %) of the true value. Values
//! above [`MAX_VALUE`] are clamped into the last bucket (and `max` keeps the true maximum).
//!
//! ```
//! use guichet::loadgen::histogram::Histogram;
//! let mut h = Histogram::new();
//! for v in 1..=1000 { h.record(v); }
//! let p99 = h.percentile(99.0);
//! assert!((960..=1024).contains(&p99));
//! assert_eq!(h.max(), 1000);
//! ```

/// Values below this have exact buckets.
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above [`LINEAR`].
const SUB: u64 = 32;
/// Largest exponent tracked (2^40 µs is about 12 days).
const MAX_EXP: u32 = 40;
/// Values are clamped to this before bucketing.
pub const MAX_VALUE: u64 = (1 << (MAX_EXP + 1)) - 1;
const BUCKETS: usize = (LINEAR + (MAX_EXP as u64 - 5) * SUB) as usize;

/// A histogram of `u64` values (microseconds, by convention).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(v: u64) -> usize {
    let v = v.min(MAX_VALUE);
    if v < LINEAR {
        return v as usize;
    }
    // v >= 64, so the exponent is at least 6 and at most MAX_EXP.
    let exp = 63 - v.leading_zeros();
    let shift = exp - 5;
    let mantissa = v >> shift; // in [32, 64)
    (LINEAR + u64::from(exp - 6) * SUB + (mantissa - SUB)) as usize
}

/// The highest value that lands in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + 6;
    let mantissa = (i - LINEAR) % SUB + SUB;
    let shift = exp - 5;
    ((mantissa + 1) << shift) - 1
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            min: u64::MAX,
            sum: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        // bucket_of returns < BUCKETS for every value (clamped to MAX_VALUE).
        if let Some(c) = self.counts.get_mut(bucket_of(value)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(value);
        self.min = self.min.min(value);
        self.sum += u128::from(value);
    }

    /// Add every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at percentile `p` (0..=100): the upper bound of the bucket holding the
    /// sample of that rank, never above the true maximum. 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = if p.is_finite() {
            p.clamp(0.0, 100.0)
        } else {
            100.0
        };
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_increasing() {
        let mut prev = None;
        for i in 0..BUCKETS {
            let hi = bucket_high(i);
            if let Some(p) = prev {
                assert!(hi > p, "bucket {i}");
            }
            assert_eq!(bucket_of(hi), i);
            prev = Some(hi);
            if hi >= MAX_VALUE {
                assert_eq!(i, BUCKETS - 1, "the last bucket ends at MAX_VALUE");
                break;
            }
            assert_eq!(bucket_of(hi + 1), i + 1, "bucket {i} ends at {hi}");
        }
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert_eq!(
            (h.percentile(99.0), h.max(), h.min(), h.count()),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn huge_values_are_clamped_but_max_is_exact() {
        let mut h = Histogram::new();
        h.record(u64::MAX);
        assert_eq!(h.max(), u64::MAX);
        assert!(h.percentile(50.0) >= MAX_VALUE / 2);
    }

    proptest! {
        #[test]
        fn percentile_within_three_percent(mut values in proptest::collection::vec(0u64..5_000_000, 1..400), p in 0.0f64..100.0) {
            let mut h = Histogram::new();
            for &v in &values { h.record(v); }
            values.sort_unstable();
            let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
            let exact = values[rank - 1];
            let got = h.percentile(p);
            prop_assert!(got >= exact, "got {got} exact {exact}");
            prop_assert!(got <= exact + exact / 32 + 1, "got {got} exact {exact}");
        }

        #[test]
        fn merge_equals_recording_all(a in proptest::collection::vec(0u64..100_000, 0..100), b in proptest::collection::vec(0u64..100_000, 0..100)) {
            let (mut ha, mut hb, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
            for &v in &a { ha.record(v); all.record(v); }
            for &v in &b { hb.record(v); all.record(v); }
            ha.merge(&hb);
            prop_assert_eq!(ha.count(), all.count());
            prop_assert_eq!(ha.max(), all.max());
            for p in [1.0, 50.0, 99.0, 100.0] { prop_assert_eq!(ha.percentile(p), all.percentile(p)); }
        }
    }
}
