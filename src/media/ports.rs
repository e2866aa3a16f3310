//! RTP port pool: hands out even RTP ports (RTCP is the odd port above) from the configured
//! range, takes them back at hang-up, and keeps each released port in quarantine before
//! handing it out again, so late packets of an old call never reach a new one. Sans-IO.
//!
//! Input: `allocate(now)` and `release(pair, now)`, where `now` is the engine's clock.
//! Output: a [`PortPair`] or [`PortsError`]; counters for supervision.
//!
//! Order: ports never used come first (ascending); a released port goes to the back of the
//! queue and comes out again, oldest-released first, no earlier than `quarantine` after its
//! release. So a port is reused as late as the pool allows, never before its quarantine.
//! The pool does not bind sockets: when the engine cannot bind a pair (taken by another
//! program), it releases it and allocates again.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::media::ports::{PortPool, DEFAULT_QUARANTINE};
//! let mut pool = PortPool::new(20000, 20003, DEFAULT_QUARANTINE).unwrap();
//! let t0 = Instant::now(); // in the engine: its clock; in tests: a fixed start
//! let a = pool.allocate(t0).unwrap();
//! assert_eq!((a.rtp(), a.rtcp()), (20000, 20001));
//! let b = pool.allocate(t0).unwrap();
//! assert_eq!(b.rtp(), 20002);
//! assert!(pool.allocate(t0).is_err()); // two pairs in 20000-20003
//! pool.release(a, t0).unwrap();
//! assert!(pool.allocate(t0 + Duration::from_secs(1)).is_err()); // still in quarantine
//! assert_eq!(pool.allocate(t0 + DEFAULT_QUARANTINE).unwrap(), a);
//! ```

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// How long a released port waits before it is handed out again.
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(2);

/// An RTP port (even) and its RTCP port (the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortPair {
    rtp: u16,
}

impl PortPair {
    /// The even RTP port.
    pub fn rtp(self) -> u16 {
        self.rtp
    }

    /// The RTCP port, `rtp + 1`.
    pub fn rtcp(self) -> u16 {
        // The pool only makes pairs whose rtp + 1 is within its range, so within u16.
        self.rtp.saturating_add(1)
    }
}

impl fmt::Display for PortPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.rtp, self.rtcp())
    }
}

/// Why the pool could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortsError {
    /// Every pair is in use or in quarantine (answer the call with 503 and count it).
    #[error(
        "no free RTP port pair: {in_use} in use, {quarantined} in quarantine; next free at {next_free_at:?}"
    )]
    Exhausted {
        in_use: usize,
        quarantined: usize,
        /// When a quarantined pair becomes free, if any is in quarantine.
        next_free_at: Option<Instant>,
    },
    /// The configured range holds no even port with its odd neighbour.
    #[error("RTP port range {first}-{last} holds no even/odd port pair (e.g. use 20000-29999)")]
    EmptyRange { first: u16, last: u16 },
    /// Released a pair that this pool had not handed out (or released it twice).
    #[error("RTP port pair {0} is not in use")]
    NotInUse(PortPair),
}

/// The pool of RTP/RTCP port pairs of one range.
#[derive(Debug, Clone)]
pub struct PortPool {
    first: u16,
    last: u16,
    quarantine: Duration,
    /// Pairs not in use, in the order they will be handed out, each with the instant from
    /// which it may be (`None`: never used). Ready-times never decrease front to back.
    available: VecDeque<(Option<Instant>, PortPair)>,
    in_use: HashSet<PortPair>,
}

impl PortPool {
    /// A pool for the ports `first..=last` (both bounds included, either may be odd).
    /// The pairs are (even, even + 1) with both ports inside the range; port 0 is never used.
    pub fn new(first: u16, last: u16, quarantine: Duration) -> Result<PortPool, PortsError> {
        let lowest = u32::from(first.max(1));
        let lowest_even = lowest + lowest % 2;
        let available: VecDeque<_> = (lowest_even..u32::from(last))
            .step_by(2)
            .filter_map(|rtp| u16::try_from(rtp).ok())
            .map(|rtp| (None, PortPair { rtp }))
            .collect();
        if available.is_empty() {
            return Err(PortsError::EmptyRange { first, last });
        }
        Ok(PortPool {
            first,
            last,
            quarantine,
            in_use: HashSet::with_capacity(available.len()),
            available,
        })
    }

    /// The configured range, as given to [`PortPool::new`].
    pub fn range(&self) -> (u16, u16) {
        (self.first, self.last)
    }

    /// The quarantine time.
    pub fn quarantine(&self) -> Duration {
        self.quarantine
    }

    /// Hand out a pair: a never-used one if any, else the one released longest ago whose
    /// quarantine is over.
    pub fn allocate(&mut self, now: Instant) -> Result<PortPair, PortsError> {
        match self.available.front() {
            Some(&(ready_at, pair)) if ready_at.is_none_or(|at| at <= now) => {
                self.available.pop_front();
                self.in_use.insert(pair);
                Ok(pair)
            }
            _ => Err(PortsError::Exhausted {
                in_use: self.in_use.len(),
                quarantined: self.quarantined(now),
                next_free_at: self.next_free_at(now),
            }),
        }
    }

    /// Take a pair back at hang-up; it is handed out again no earlier than
    /// `now + quarantine`.
    pub fn release(&mut self, pair: PortPair, now: Instant) -> Result<(), PortsError> {
        if !self.in_use.remove(&pair) {
            return Err(PortsError::NotInUse(pair));
        }
        let mut ready_at = now.checked_add(self.quarantine).unwrap_or(now);
        // Keep ready-times ordered even if the caller's `now` went backwards.
        if let Some(&(Some(back), _)) = self.available.back() {
            ready_at = ready_at.max(back);
        }
        self.available.push_back((Some(ready_at), pair));
        Ok(())
    }

    /// Whether `pair` is currently handed out.
    pub fn is_in_use(&self, pair: PortPair) -> bool {
        self.in_use.contains(&pair)
    }

    /// Pairs handed out and not released.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Pairs that [`PortPool::allocate`] could hand out at `now`.
    pub fn free(&self, now: Instant) -> usize {
        self.available.len() - self.quarantined(now)
    }

    /// Pairs released but still in quarantine at `now`.
    pub fn quarantined(&self, now: Instant) -> usize {
        // Ready-times are ordered, so the quarantined pairs are a suffix.
        let ready = self
            .available
            .partition_point(|(ready_at, _)| ready_at.is_none_or(|at| at <= now));
        self.available.len() - ready
    }

    /// All pairs of the range.
    pub fn capacity(&self) -> usize {
        self.available.len() + self.in_use.len()
    }

    /// When the next quarantined pair becomes free (after `now`), if any is quarantined.
    /// Useful to tell a supervisor when the pool recovers; the pool itself needs no timer.
    pub fn next_free_at(&self, now: Instant) -> Option<Instant> {
        self.available
            .iter()
            .filter_map(|(ready_at, _)| *ready_at)
            .find(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start() -> Instant {
        // A fixed origin; every test time is this plus a duration (virtual time).
        Instant::now()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn hands_out_even_pairs_in_order_then_exhausts() {
        let t0 = start();
        let mut pool = PortPool::new(20000, 20009, DEFAULT_QUARANTINE).unwrap();
        assert_eq!(pool.capacity(), 5);
        let pairs: Vec<PortPair> = (0..5).map(|_| pool.allocate(t0).unwrap()).collect();
        let rtp: Vec<u16> = pairs.iter().map(|p| p.rtp()).collect();
        assert_eq!(rtp, vec![20000, 20002, 20004, 20006, 20008]);
        assert!(pairs.iter().all(|p| p.rtcp() == p.rtp() + 1));
        assert_eq!(pool.in_use(), 5);
        assert_eq!(pool.free(t0), 0);
        assert_eq!(
            pool.allocate(t0),
            Err(PortsError::Exhausted {
                in_use: 5,
                quarantined: 0,
                next_free_at: None
            })
        );
    }

    #[test]
    fn released_port_waits_for_quarantine() {
        let t0 = start();
        let mut pool = PortPool::new(20000, 20003, DEFAULT_QUARANTINE).unwrap();
        let a = pool.allocate(t0).unwrap();
        let b = pool.allocate(t0).unwrap();
        pool.release(a, t0 + secs(1.0)).unwrap();
        assert!(!pool.is_in_use(a));
        assert!(pool.is_in_use(b));
        assert_eq!(pool.in_use(), 1);
        assert_eq!(pool.quarantined(t0 + secs(1.0)), 1);
        assert_eq!(pool.free(t0 + secs(1.0)), 0);
        assert_eq!(
            pool.allocate(t0 + secs(2.999)),
            Err(PortsError::Exhausted {
                in_use: 1,
                quarantined: 1,
                next_free_at: Some(t0 + secs(3.0)),
            })
        );
        assert_eq!(pool.next_free_at(t0 + secs(1.5)), Some(t0 + secs(3.0)));
        assert_eq!(pool.free(t0 + secs(3.0)), 1);
        assert_eq!(pool.quarantined(t0 + secs(3.0)), 0);
        assert_eq!(pool.allocate(t0 + secs(3.0)), Ok(a));
    }

    #[test]
    fn fresh_ports_before_released_ones_and_oldest_released_first() {
        let t0 = start();
        let mut pool = PortPool::new(20000, 20007, DEFAULT_QUARANTINE).unwrap();
        let a = pool.allocate(t0).unwrap();
        let b = pool.allocate(t0).unwrap();
        let c = pool.allocate(t0).unwrap();
        pool.release(c, t0 + secs(1.0)).unwrap();
        pool.release(a, t0 + secs(2.0)).unwrap();
        pool.release(b, t0 + secs(3.0)).unwrap();
        let late = t0 + secs(10.0);
        // The never-used pair first, even though the released ones are out of quarantine.
        assert_eq!(pool.allocate(late).unwrap().rtp(), 20006);
        assert_eq!(pool.allocate(late), Ok(c));
        assert_eq!(pool.allocate(late), Ok(a));
        assert_eq!(pool.allocate(late), Ok(b));
        assert!(pool.allocate(late).is_err());
    }

    #[test]
    fn quarantine_applies_in_release_order() {
        let t0 = start();
        let mut pool = PortPool::new(30000, 30005, Duration::from_millis(500)).unwrap();
        let pairs: Vec<_> = (0..3).map(|_| pool.allocate(t0).unwrap()).collect();
        for (i, pair) in pairs.iter().enumerate() {
            pool.release(*pair, t0 + secs(i as f64)).unwrap();
        }
        // At 1.6 s: the first two are out of quarantine (0.5 s and 1.5 s), the third not.
        let t = t0 + secs(1.6);
        assert_eq!(pool.free(t), 2);
        assert_eq!(pool.quarantined(t), 1);
        assert_eq!(pool.allocate(t), Ok(pairs[0]));
        assert_eq!(pool.allocate(t), Ok(pairs[1]));
        assert!(matches!(
            pool.allocate(t),
            Err(PortsError::Exhausted { .. })
        ));
        assert_eq!(pool.allocate(t0 + secs(2.5)), Ok(pairs[2]));
    }

    #[test]
    fn odd_range_bounds() {
        let t0 = start();
        let mut pool = PortPool::new(20001, 20010, DEFAULT_QUARANTINE).unwrap();
        let rtp: Vec<u16> = std::iter::from_fn(|| pool.allocate(t0).ok())
            .map(PortPair::rtp)
            .collect();
        // 20010 is even but its RTCP port 20011 is outside the range.
        assert_eq!(rtp, vec![20002, 20004, 20006, 20008]);

        let mut pool = PortPool::new(20001, 20011, DEFAULT_QUARANTINE).unwrap();
        assert_eq!(pool.capacity(), 5);
        let last = std::iter::from_fn(|| pool.allocate(t0).ok())
            .last()
            .unwrap();
        assert_eq!((last.rtp(), last.rtcp()), (20010, 20011));
    }

    #[test]
    fn range_of_one_pair() {
        let t0 = start();
        let mut pool = PortPool::new(40000, 40001, DEFAULT_QUARANTINE).unwrap();
        assert_eq!(pool.capacity(), 1);
        let p = pool.allocate(t0).unwrap();
        assert_eq!(p.to_string(), "40000/40001");
        assert!(pool.allocate(t0).is_err());
        pool.release(p, t0).unwrap();
        assert!(pool.allocate(t0 + secs(1.0)).is_err());
        assert_eq!(pool.allocate(t0 + DEFAULT_QUARANTINE), Ok(p));
    }

    #[test]
    fn empty_and_edge_ranges() {
        for (first, last) in [
            (20001, 20001),
            (20000, 20000),
            (20001, 20002),
            (30000, 20000),
        ] {
            assert_eq!(
                PortPool::new(first, last, DEFAULT_QUARANTINE).map(|p| p.capacity()),
                Err(PortsError::EmptyRange { first, last }),
                "{first}-{last}"
            );
        }
        // Port 0 is never handed out; the top of the port space is.
        let mut pool = PortPool::new(0, 3, DEFAULT_QUARANTINE).unwrap();
        assert_eq!(pool.allocate(start()).unwrap().rtp(), 2);
        let mut pool = PortPool::new(65534, 65535, DEFAULT_QUARANTINE).unwrap();
        let top = pool.allocate(start()).unwrap();
        assert_eq!((top.rtp(), top.rtcp()), (65534, 65535));
        assert_eq!(
            PortPool::new(0, u16::MAX, DEFAULT_QUARANTINE)
                .unwrap()
                .capacity(),
            32767
        );
    }

    #[test]
    fn release_of_unknown_or_twice_is_an_error() {
        let t0 = start();
        let mut pool = PortPool::new(20000, 20003, DEFAULT_QUARANTINE).unwrap();
        let a = pool.allocate(t0).unwrap();
        pool.release(a, t0).unwrap();
        assert_eq!(pool.release(a, t0), Err(PortsError::NotInUse(a)));
        let stranger = PortPair { rtp: 50000 };
        assert_eq!(
            pool.release(stranger, t0),
            Err(PortsError::NotInUse(stranger))
        );
        assert_eq!(pool.capacity(), 2);
    }

    #[test]
    fn clock_going_backwards_never_shortens_quarantine_order() {
        let t0 = start();
        let mut pool = PortPool::new(20000, 20003, DEFAULT_QUARANTINE).unwrap();
        let a = pool.allocate(t0).unwrap();
        let b = pool.allocate(t0).unwrap();
        pool.release(a, t0 + secs(5.0)).unwrap();
        pool.release(b, t0 + secs(1.0)).unwrap(); // an older `now`
        assert!(pool.allocate(t0 + secs(6.9)).is_err());
        assert_eq!(pool.allocate(t0 + secs(7.0)), Ok(a));
        assert_eq!(pool.allocate(t0 + secs(7.0)), Ok(b));
    }

    proptest! {
        /// Random allocate/release sequences in virtual time: counters add up, no pair is
        /// handed out twice at once, and a released pair never comes back within its
        /// quarantine.
        #[test]
        fn invariants_hold(
            first in 19990u16..20010,
            len in 1u16..24,
            steps in proptest::collection::vec((any::<bool>(), 0u64..1500, any::<prop::sample::Index>()), 1..200),
        ) {
            let quarantine = Duration::from_millis(2000);
            let last = first.saturating_add(len);
            let Ok(mut pool) = PortPool::new(first, last, quarantine) else {
                return Ok(());
            };
            let capacity = pool.capacity();
            let t0 = start();
            let mut now = t0;
            let mut held: Vec<PortPair> = Vec::new();
            let mut released_at: std::collections::HashMap<PortPair, Instant> = Default::default();
            for (alloc, advance_ms, pick) in steps {
                now += Duration::from_millis(advance_ms);
                if alloc || held.is_empty() {
                    match pool.allocate(now) {
                        Ok(pair) => {
                            prop_assert!(pair.rtp() % 2 == 0);
                            prop_assert!(pair.rtp() >= first && pair.rtcp() <= last);
                            prop_assert!(!held.contains(&pair));
                            if let Some(at) = released_at.get(&pair) {
                                prop_assert!(now >= *at + quarantine);
                            }
                            held.push(pair);
                        }
                        Err(PortsError::Exhausted { in_use, quarantined, .. }) => {
                            prop_assert_eq!(in_use + quarantined, capacity);
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                } else {
                    let pair = held.swap_remove(pick.index(held.len()));
                    pool.release(pair, now).unwrap();
                    released_at.insert(pair, now);
                }
                prop_assert_eq!(pool.in_use(), held.len());
                prop_assert_eq!(pool.in_use() + pool.free(now) + pool.quarantined(now), capacity);
            }
        }
    }
}
