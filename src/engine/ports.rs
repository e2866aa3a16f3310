//! The engine's shared handle on the sans-IO [`PortPool`]: call tasks lease an RTP port
//! pair and the lease gives it back on drop (also when a call task panics, since drop runs
//! on unwind), stamped with the engine clock so the pool's quarantine applies.
//!
//! ```
//! # use guichet::engine::ports::PortAllocator;
//! # use guichet::config::PortRange;
//! let pool = PortAllocator::new("20000-20003".parse::<PortRange>().unwrap()).unwrap();
//! let a = pool.allocate().unwrap();
//! let b = pool.allocate().unwrap();
//! assert_ne!(a.port(), b.port());
//! assert!(pool.allocate().is_none());
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::PortRange;
use crate::engine::now;
use crate::media::ports::{DEFAULT_QUARANTINE, PortPair, PortPool, PortsError};

/// Shared pool of RTP port pairs (a `std` mutex: every critical section is a few
/// operations on the pool, never across an `.await`).
#[derive(Debug, Clone)]
pub struct PortAllocator {
    inner: Arc<Mutex<PortPool>>,
}

/// A port pair held by a call; returned to the pool on drop.
#[derive(Debug)]
pub struct PortLease {
    pair: PortPair,
    pool: Arc<Mutex<PortPool>>,
}

impl PortLease {
    /// The even RTP port.
    pub fn port(&self) -> u16 {
        self.pair.rtp()
    }
}

fn lock(pool: &Mutex<PortPool>) -> MutexGuard<'_, PortPool> {
    // A poisoned lock means a holder panicked between two pool operations; each operation
    // leaves the pool consistent, so it stays usable.
    pool.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Err(e) = lock(&self.pool).release(self.pair, now()) {
            tracing::error!(error = %e, "RTP port release failed");
        }
    }
}

impl PortAllocator {
    /// A pool over `range` with the default quarantine.
    pub fn new(range: PortRange) -> Result<Self, PortsError> {
        let pool = PortPool::new(range.first(), range.last(), DEFAULT_QUARANTINE)?;
        Ok(PortAllocator {
            inner: Arc::new(Mutex::new(pool)),
        })
    }

    /// A free pair, or `None` when every pair is in use or in quarantine.
    pub fn allocate(&self) -> Option<PortLease> {
        let pair = lock(&self.inner).allocate(now()).ok()?;
        Some(PortLease {
            pair,
            pool: Arc::clone(&self.inner),
        })
    }

    /// Pairs currently leased.
    pub fn in_use(&self) -> usize {
        lock(&self.inner).in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_return_to_the_pool_on_drop() {
        let pool = PortAllocator::new("30001-30010".parse().unwrap()).unwrap();
        let leases: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(ports, vec![30002, 30004, 30006, 30008]);
        assert_eq!(pool.in_use(), 4);
        drop(leases);
        assert_eq!(pool.in_use(), 0);
    }
}
