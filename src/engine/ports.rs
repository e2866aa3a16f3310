//! A minimal RTP port allocator over the configured range (even ports; RTCP is +1).
//!
//! TODO(integrator): replace with `media::ports::PortPool` once it lands on main; this is a
//! private stand-in with the same job: hand out an even port not in use, take it back when
//! the lease is dropped (also when a call task panics, since drop runs on unwind).
//!
//! ```
//! # use guichet::engine::ports::PortAllocator;
//! # use guichet::config::PortRange;
//! let pool = PortAllocator::new("20000-20003".parse::<PortRange>().unwrap());
//! let a = pool.allocate().unwrap();
//! let b = pool.allocate().unwrap();
//! assert_ne!(a.port(), b.port());
//! assert!(pool.allocate().is_none());
//! drop(a);
//! assert!(pool.allocate().is_some());
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::config::PortRange;

/// Shared pool of even RTP ports.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    inner: Arc<Mutex<Pool>>,
}

#[derive(Debug)]
struct Pool {
    first: u16,
    /// Number of even ports in the range.
    slots: u16,
    next: u16,
    in_use: HashSet<u16>,
}

/// A port held by a call; returned to the pool on drop.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<Mutex<Pool>>,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        // A poisoned lock only means another holder panicked mid-update of a HashSet insert
        // or remove; the set itself stays usable.
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.in_use.remove(&self.port);
    }
}

impl PortAllocator {
    pub fn new(range: PortRange) -> Self {
        let first = range.first().saturating_add(range.first() % 2);
        // Even ports p with first <= p and p + 1 <= last.
        let slots = if first >= range.last() {
            0
        } else {
            u16::try_from((u32::from(range.last()) - u32::from(first)).div_ceil(2))
                .unwrap_or(u16::MAX)
        };
        PortAllocator {
            inner: Arc::new(Mutex::new(Pool {
                first,
                slots,
                next: 0,
                in_use: HashSet::new(),
            })),
        }
    }

    /// An even port not in use, or `None` when every port is taken.
    pub fn allocate(&self) -> Option<PortLease> {
        let mut pool = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if pool.slots == 0 {
            return None;
        }
        for _ in 0..pool.slots {
            let slot = pool.next;
            pool.next = (pool.next + 1) % pool.slots;
            // slot < slots, and first + 2 * (slots - 1) + 1 <= last <= u16::MAX.
            let port = pool.first + 2 * slot;
            if pool.in_use.insert(port) {
                return Some(PortLease {
                    port,
                    pool: Arc::clone(&self.inner),
                });
            }
        }
        None
    }

    /// Ports currently leased.
    pub fn in_use(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_use
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_ports_in_range_and_reuses_released() {
        let pool = PortAllocator::new("30001-30010".parse().unwrap());
        let leases: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(ports, vec![30002, 30004, 30006, 30008]);
        assert_eq!(pool.in_use(), 4);
        drop(leases);
        assert_eq!(pool.in_use(), 0);
        assert!(pool.allocate().is_some());
    }

    #[test]
    fn full_range_is_usable() {
        let pool = PortAllocator::new("65530-65535".parse().unwrap());
        let leases: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(ports, vec![65530, 65532, 65534]);
    }
}
