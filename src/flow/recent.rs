//! How many times a number called recently: the figure behind `switch` conditions on call
//! counts (`calls_at_least`), so a caller who tried three times today can be sent straight
//! to a person.
//!
//! Input: `(number, now)` for each new call. Output: how many earlier calls from that number
//! fall within the window. Memory is bounded: at most `capacity` calls are remembered, the
//! oldest forgotten first. Sans-IO: the engine passes `now` and holds it behind a tiny lock.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::flow::recent::RecentCalls;
//! let mut recent = RecentCalls::new(Duration::from_secs(24 * 3600), 1000);
//! let t0 = Instant::now(); // in real code: the engine's clock
//! assert_eq!(recent.record("0160000000", t0), 0);
//! assert_eq!(recent.record("0160000000", t0 + Duration::from_secs(60)), 1);
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Calls remembered at most by default (about 5 MB).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The default window: a day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Recent calls per number within a sliding window.
#[derive(Debug)]
pub struct RecentCalls {
    window: Duration,
    capacity: usize,
    /// Calls in arrival order (the eviction order).
    order: VecDeque<(Instant, String)>,
    /// Calls remembered per number.
    counts: HashMap<String, u32>,
}

impl Default for RecentCalls {
    fn default() -> Self {
        RecentCalls::new(DEFAULT_WINDOW, DEFAULT_CAPACITY)
    }
}

impl RecentCalls {
    /// Remember calls for `window`, at most `capacity` of them (at least one).
    pub fn new(window: Duration, capacity: usize) -> Self {
        RecentCalls {
            window,
            capacity: capacity.max(1),
            order: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    /// Record a call from `number` at `now`; returns how many earlier calls from the same
    /// number are still within the window.
    pub fn record(&mut self, number: &str, now: Instant) -> u32 {
        self.forget_before(now.checked_sub(self.window));
        while self.order.len() >= self.capacity {
            self.pop_oldest();
        }
        let earlier = self.counts.get(number).copied().unwrap_or(0);
        self.order.push_back((now, number.to_owned()));
        *self.counts.entry(number.to_owned()).or_insert(0) += 1;
        earlier
    }

    /// Calls remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no call is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn forget_before(&mut self, cutoff: Option<Instant>) {
        let Some(cutoff) = cutoff else { return };
        while self.order.front().is_some_and(|(at, _)| *at < cutoff) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, number)) = self.order.pop_front() else {
            return;
        };
        if let Some(n) = self.counts.get_mut(&number) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&number);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn counts_earlier_calls_of_the_same_number_within_the_window() {
        let t0 = Instant::now();
        let mut r = RecentCalls::new(24 * HOUR, 100);
        assert_eq!(r.record("a", t0), 0);
        assert_eq!(r.record("b", t0 + HOUR), 0);
        assert_eq!(r.record("a", t0 + 2 * HOUR), 1);
        assert_eq!(r.record("a", t0 + 3 * HOUR), 2);
        // 25 h after the first call, that one has left the window.
        assert_eq!(r.record("a", t0 + 25 * HOUR), 2);
        // Much later, everything has.
        assert_eq!(r.record("a", t0 + 100 * HOUR), 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn capacity_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut r = RecentCalls::new(24 * HOUR, 3);
        r.record("a", t0);
        r.record("b", t0);
        r.record("c", t0);
        // "a" is forgotten to make room.
        assert_eq!(r.record("a", t0), 0);
        assert_eq!(r.record("c", t0), 1);
        assert_eq!(r.len(), 3);
    }

    proptest! {
        #[test]
        fn memory_stays_bounded_and_counts_match_a_naive_model(
            calls in proptest::collection::vec((0u8..5, 0u64..200), 1..300)
        ) {
            let t0 = Instant::now();
            let window = Duration::from_secs(50);
            let mut r = RecentCalls::new(window, 1_000);
            let mut seen: Vec<(u64, u8)> = Vec::new();
            let mut t = 0u64;
            for (number, step) in calls {
                t += step;
                let now = t0 + Duration::from_secs(t);
                let expected = seen
                    .iter()
                    .filter(|(at, n)| *n == number && t - at <= window.as_secs())
                    .count() as u32;
                prop_assert_eq!(r.record(&number.to_string(), now), expected);
                seen.push((t, number));
                prop_assert!(r.len() <= 1_000);
            }
        }
    }
}
