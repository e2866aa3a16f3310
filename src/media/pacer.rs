//! One pacing loop for many media streams: a binary heap of absolute deadlines.
//!
//! Each stream has a period (20 ms for G.711 at ptime 20) and a deadline on an absolute grid
//! `first_deadline + k * period`. [`Pacer::due`] hands out every stream whose deadline is
//! `<= now` and moves that deadline on by exactly one period from the previous deadline,
//! never from `now`, so a late wake-up does not shift the schedule and there is no drift over
//! a call of any length (`Instant + Duration` is integer nanoseconds: exact).
//!
//! After a stall (the worker was descheduled, a GC-like pause, a slow disk), a stream that is
//! several periods behind is handed out again within the same `due` call, back to back,
//! but at most `max_catch_up` times (default 3); the older slots are skipped (counted) by
//! moving the deadline on by whole periods, so the grid, and with it the RTP timestamp
//! derived from the slot deadline, stays exact.
//!
//! Cost: O(log n) per due stream (one heap pop and one push), O(1) hash lookups, no
//! allocation in `due` once the heap and the caller's vector have grown. Removal is lazy:
//! the stale heap entry is dropped when it surfaces (within one period).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use guichet::media::pacer::{Pacer, StreamId};
//!
//! let t0 = Instant::now();
//! let ptime = Duration::from_millis(20);
//! let mut pacer = Pacer::new();
//! pacer.add(StreamId(1), t0, ptime).unwrap();
//! pacer.add(StreamId(2), t0 + Duration::from_millis(5), ptime).unwrap();
//! let mut due = Vec::new();
//! // The worker sleeps until next_deadline(), wakes 1 ms late, sends what is due.
//! let wake = pacer.next_deadline().unwrap() + Duration::from_millis(1);
//! pacer.due(wake, &mut due);
//! assert_eq!(due, vec![StreamId(1)]);
//! assert_eq!(pacer.deadline(StreamId(1)), Some(t0 + ptime)); // not wake + ptime
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Default bound on back-to-back sends for one stream after a stall.
pub const DEFAULT_MAX_CATCH_UP: u32 = 3;

/// Longest period accepted; with it, no deadline arithmetic can overflow an `Instant`.
pub const MAX_PERIOD: Duration = Duration::from_secs(3600);

/// A paced stream, as the media worker numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacerError {
    #[error("a pacing period must be longer than zero")]
    ZeroPeriod,
    #[error("a pacing period of {0:?} is longer than the one hour limit")]
    PeriodTooLong(Duration),
}

/// One due slot: the stream, the grid deadline it is due for (use this, not `now`, to
/// derive the media timestamp), and how many slots were skipped just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due<K> {
    pub stream: K,
    pub deadline: Instant,
    pub skipped: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    period: Duration,
    deadline: Instant,
    generation: u64,
    skipped: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry<K> {
    deadline: Instant,
    /// Unique per `add`: breaks ties in add order and tells stale entries apart.
    generation: u64,
    stream: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K> Eq for Entry<K> {}
impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.generation).cmp(&(other.deadline, other.generation))
    }
}

/// Deadlines for many periodic streams, keyed by `K` (a [`StreamId`] by default).
#[derive(Debug)]
pub struct Pacer<K = StreamId> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    streams: HashMap<K, Slot>,
    max_catch_up: u32,
    next_generation: u64,
    skipped_total: u64,
}

impl<K: Copy + Eq + Hash> Default for Pacer<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash> Pacer<K> {
    pub fn new() -> Self {
        Self::with_max_catch_up(DEFAULT_MAX_CATCH_UP)
    }

    /// A pacer that sends at most `max_catch_up` (at least 1) slots back to back per
    /// stream after a stall.
    pub fn with_max_catch_up(max_catch_up: u32) -> Self {
        Pacer {
            heap: BinaryHeap::new(),
            streams: HashMap::new(),
            max_catch_up: max_catch_up.max(1),
            next_generation: 0,
            skipped_total: 0,
        }
    }

    /// Pre-size for `n` streams so steady state never allocates.
    pub fn reserve(&mut self, n: usize) {
        self.heap.reserve(n);
        self.streams.reserve(n);
    }

    /// Start pacing `stream`: first due at `first_deadline`, then every `period`.
    /// Adding a stream that is already paced replaces its schedule.
    pub fn add(
        &mut self,
        stream: K,
        first_deadline: Instant,
        period: Duration,
    ) -> Result<(), PacerError> {
        if period.is_zero() {
            return Err(PacerError::ZeroPeriod);
        }
        if period > MAX_PERIOD {
            return Err(PacerError::PeriodTooLong(period));
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.streams.insert(
            stream,
            Slot {
                period,
                deadline: first_deadline,
                generation,
                skipped: 0,
            },
        );
        self.heap.push(Reverse(Entry {
            deadline: first_deadline,
            generation,
            stream,
        }));
        Ok(())
    }

    /// Stop pacing `stream`. Returns whether it was paced.
    pub fn remove(&mut self, stream: K) -> bool {
        self.streams.remove(&stream).is_some()
    }

    pub fn contains(&self, stream: K) -> bool {
        self.streams.contains_key(&stream)
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The next deadline of `stream`.
    pub fn deadline(&self, stream: K) -> Option<Instant> {
        self.streams.get(&stream).map(|s| s.deadline)
    }

    /// Slots skipped for `stream` by the catch-up bound.
    pub fn skipped(&self, stream: K) -> Option<u64> {
        self.streams.get(&stream).map(|s| s.skipped)
    }

    /// Slots skipped over all streams since the pacer was created.
    pub fn skipped_total(&self) -> u64 {
        self.skipped_total
    }

    /// The earliest deadline of any stream: the worker sleeps until then.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse(e)| e.deadline)
    }

    /// Push onto `out` every stream due at `now` (a stream may appear up to
    /// `max_catch_up` times after a stall), in the order the heap holds their deadlines.
    pub fn due(&mut self, now: Instant, out: &mut Vec<K>) {
        while let Some(d) = self.pop_due(now) {
            out.push(d.stream);
        }
    }

    /// Like [`Pacer::due`], with each slot's grid deadline and skip count.
    pub fn due_slots(&mut self, now: Instant, out: &mut Vec<Due<K>>) {
        while let Some(d) = self.pop_due(now) {
            out.push(d);
        }
    }

    /// The next due slot at `now`, if any; advances that stream by one period.
    pub fn pop_due(&mut self, now: Instant) -> Option<Due<K>> {
        loop {
            let Reverse(top) = *self.heap.peek()?;
            if top.deadline > now {
                return None;
            }
            self.heap.pop();
            let Some(slot) = self.streams.get_mut(&top.stream) else {
                continue; // removed
            };
            if slot.generation != top.generation || slot.deadline != top.deadline {
                continue; // re-added since
            }
            // Number of grid slots at or before `now`, counting this one.
            let behind =
                now.saturating_duration_since(slot.deadline).as_nanos() / slot.period.as_nanos();
            let backlog = behind.saturating_add(1);
            let mut skipped = 0u32;
            if backlog > u128::from(self.max_catch_up) {
                skipped =
                    u32::try_from(backlog - u128::from(self.max_catch_up)).unwrap_or(u32::MAX);
                // Whole periods: the deadline stays on the grid.
                slot.deadline += slot.period * skipped;
                slot.skipped += u64::from(skipped);
                self.skipped_total += u64::from(skipped);
            }
            let deadline = slot.deadline;
            slot.deadline = deadline + slot.period;
            self.heap.push(Reverse(Entry {
                deadline: slot.deadline,
                generation: slot.generation,
                stream: top.stream,
            }));
            return Some(Due {
                stream: top.stream,
                deadline,
                skipped,
            });
        }
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            match self.streams.get(&top.stream) {
                Some(s) if s.generation == top.generation && s.deadline == top.deadline => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);

    #[test]
    fn thirty_thousand_periods_land_exactly_on_the_grid() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new();
        pacer.add(StreamId(7), t0, P).unwrap();
        let mut out = Vec::new();
        // Wake up 0-4.9 ms late each time (a jittery OS timer): the grid must not move.
        for k in 0..30_000u32 {
            let deadline = pacer.next_deadline().unwrap();
            assert_eq!(deadline, t0 + P * k);
            let lateness = Duration::from_micros(u64::from(k * 7919 % 4900));
            out.clear();
            pacer.due(deadline + lateness, &mut out);
            assert_eq!(out, vec![StreamId(7)]);
        }
        assert_eq!(
            pacer.deadline(StreamId(7)),
            Some(t0 + Duration::from_secs(600))
        );
        assert_eq!(pacer.skipped_total(), 0);
    }

    #[test]
    fn many_streams_each_due_once_per_period() {
        let t0 = Instant::now();
        let n = 5_000u32;
        let mut pacer = Pacer::new();
        pacer.reserve(n as usize);
        for i in 0..n {
            // Spread the streams over the 20 ms period.
            let offset = Duration::from_micros(u64::from(i * 20_000 / n));
            pacer.add(StreamId(i), t0 + offset, P).unwrap();
        }
        let mut counts = vec![0u32; n as usize];
        let mut slots = Vec::with_capacity(n as usize);
        let end = t0 + Duration::from_secs(1);
        let mut wakeups = 0;
        while let Some(next) = pacer.next_deadline() {
            if next >= end {
                break;
            }
            // Wake in 1 ms batches, like a worker with a 1 ms timer resolution.
            let now = next + Duration::from_micros(999);
            slots.clear();
            pacer.due_slots(now, &mut slots);
            wakeups += 1;
            for d in &slots {
                let i = d.stream.0 as usize;
                let offset = Duration::from_micros(u64::from(d.stream.0 * 20_000 / n));
                assert_eq!(d.deadline, t0 + offset + P * counts[i]);
                assert!(d.deadline <= now && now - d.deadline < Duration::from_millis(1));
                assert_eq!(d.skipped, 0);
                counts[i] += 1;
            }
        }
        assert!(
            counts.iter().all(|&c| c == 50),
            "each stream 50 times in 1 s"
        );
        assert!(wakeups <= 1000);
    }

    #[test]
    fn stall_sends_at_most_three_back_to_back_and_skips_the_rest() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new();
        pacer.add(StreamId(1), t0, P).unwrap();
        pacer
            .add(StreamId(2), t0 + Duration::from_millis(150), P)
            .unwrap();
        let mut slots = Vec::new();
        // Stall: nothing ran until t0 + 200 ms. Stream 1 has 11 slots due (0, 20, ... 200).
        pacer.due_slots(t0 + Duration::from_millis(200), &mut slots);
        let s1: Vec<_> = slots.iter().filter(|d| d.stream == StreamId(1)).collect();
        let s2: Vec<_> = slots.iter().filter(|d| d.stream == StreamId(2)).collect();
        assert_eq!(s1.len(), 3);
        assert_eq!(s1[0].skipped, 8);
        assert_eq!(
            s1.iter().map(|d| d.deadline).collect::<Vec<_>>(),
            vec![t0 + P * 8, t0 + P * 9, t0 + P * 10]
        );
        // Stream 2 is 3 slots behind (150, 170, 190): no skip.
        assert_eq!(s2.len(), 3);
        assert_eq!(s2[0].skipped, 0);
        assert_eq!(pacer.skipped(StreamId(1)), Some(8));
        assert_eq!(pacer.skipped_total(), 8);
        // Back on the grid afterwards.
        assert_eq!(pacer.deadline(StreamId(1)), Some(t0 + P * 11));
        assert_eq!(
            pacer.deadline(StreamId(2)),
            Some(t0 + Duration::from_millis(210))
        );
        // Each stream's slots come out in order.
        assert!(s1.windows(2).all(|w| w[0].deadline < w[1].deadline));
        assert!(s2.windows(2).all(|w| w[0].deadline < w[1].deadline));
    }

    #[test]
    fn removal_while_due_and_re_add() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new();
        for i in 0..10 {
            pacer.add(StreamId(i), t0, P).unwrap();
        }
        // Stall, then remove half before anyone polls: removed streams never come out.
        for i in (0..10).step_by(2) {
            assert!(pacer.remove(StreamId(i)));
        }
        assert!(!pacer.remove(StreamId(0)));
        let mut out = Vec::new();
        pacer.due(t0 + Duration::from_millis(45), &mut out);
        assert_eq!(out.len(), 5 * 3);
        assert!(out.iter().all(|s| s.0 % 2 == 1));
        // Drain one slot at a time and remove a stream mid-drain.
        pacer
            .add(StreamId(0), t0 + Duration::from_millis(60), P)
            .unwrap();
        let now = t0 + Duration::from_millis(60);
        let first = pacer.pop_due(now).unwrap();
        pacer.remove(StreamId(3));
        let mut rest = Vec::new();
        pacer.due(now, &mut rest);
        assert!(!rest.contains(&StreamId(3)) || first.stream == StreamId(3));
        assert_eq!(rest.len() + 1, 5);
        // Re-adding replaces the schedule; the old entry is stale.
        pacer
            .add(StreamId(1), t0 + Duration::from_millis(1000), P)
            .unwrap();
        out.clear();
        pacer.due(t0 + Duration::from_millis(999), &mut out);
        assert!(!out.contains(&StreamId(1)));
        assert_eq!(pacer.len(), 5);
        assert!(pacer.add(StreamId(9), t0, Duration::ZERO).is_err());
        assert!(
            pacer
                .add(StreamId(9), t0, Duration::from_secs(3601))
                .is_err()
        );
    }

    #[test]
    fn due_does_not_allocate_in_steady_state() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new();
        pacer.reserve(1000);
        for i in 0..1000 {
            pacer.add(StreamId(i), t0, P).unwrap();
        }
        let mut out = Vec::with_capacity(1000);
        let out_ptr = out.as_ptr();
        for k in 0..100u32 {
            out.clear();
            pacer.due(t0 + P * k, &mut out);
            assert_eq!(out.len(), 1000);
        }
        assert_eq!(out.as_ptr(), out_ptr);
        assert!(pacer.heap.len() <= 1000);
    }

    #[test]
    fn generic_keys() {
        let t0 = Instant::now();
        let mut pacer: Pacer<u64> = Pacer::with_max_catch_up(1);
        pacer.add(99, t0, P).unwrap();
        let mut out = Vec::new();
        pacer.due(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out, vec![99]);
        assert_eq!(pacer.skipped(99), Some(5));
    }
}
