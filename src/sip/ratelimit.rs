//! Per-source token buckets for new requests (INVITE, REGISTER, OPTIONS), with a bounded
//! table of sources so a flood from many addresses cannot grow memory: when the table is
//! full the oldest source is evicted (it restarts with a full bucket, which is harmless).
//!
//! Input: a source address and `now`. Output: allowed or not. No clock reads.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::sip::ratelimit::RateLimiter;
//! let t0 = Instant::now(); // tests use a fixed start
//! let mut rl = RateLimiter::new(1.0, 2, 100);
//! let ip = "192.0.2.1".parse().unwrap();
//! assert!(rl.allow(ip, t0));
//! assert!(rl.allow(ip, t0));
//! assert!(!rl.allow(ip, t0)); // burst of 2 spent
//! assert!(rl.allow(ip, t0 + Duration::from_secs(1))); // one token per second
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by source IP, at most `capacity` of them.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    capacity: usize,
    buckets: HashMap<IpAddr, Bucket>,
    /// Insertion order, for evicting the oldest source (each address appears once).
    order: VecDeque<IpAddr>,
}

impl RateLimiter {
    /// `rate` tokens per second, buckets of `burst` tokens, at most `capacity` sources.
    pub fn new(rate: f64, burst: u32, capacity: usize) -> Self {
        RateLimiter {
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                0.0
            },
            burst: f64::from(burst.max(1)),
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Take one token for `source` if it has one.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&source) {
            while self.buckets.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(old) => {
                        self.buckets.remove(&old);
                    }
                    None => break,
                }
            }
            self.buckets.insert(
                source,
                Bucket {
                    tokens: self.burst,
                    last: now,
                },
            );
            self.order.push_back(source);
        }
        let Some(b) = self.buckets.get_mut(&source) else {
            return false; // just inserted above
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now.max(b.last);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sources currently tracked (never more than the capacity).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn one_source_flood_does_not_touch_another() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(2.0, 5, 10);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let allowed = (0..100).filter(|_| rl.allow(a, t0)).count();
        assert_eq!(allowed, 5);
        assert!(rl.allow(b, t0));
        // Half a second refills one token at 2/s.
        assert!(rl.allow(a, t0 + Duration::from_millis(500)));
        assert!(!rl.allow(a, t0 + Duration::from_millis(500)));
    }

    proptest! {
        #[test]
        fn table_stays_bounded(ips in proptest::collection::vec(any::<u32>(), 1..500)) {
            let t0 = Instant::now();
            let mut rl = RateLimiter::new(1.0, 1, 16);
            for ip in ips {
                rl.allow(IpAddr::from(ip.to_be_bytes()), t0);
                prop_assert!(rl.tracked() <= 16);
                prop_assert!(rl.order.len() <= 16);
            }
        }
    }
}
