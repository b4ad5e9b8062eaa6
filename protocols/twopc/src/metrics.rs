//! Counters the harness reads from `GET /internal/2pc/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Monotonic counters of one process (they restart from zero with it).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Branches prepared (participant) / yes votes received (coordinator).
    pub prepared: AtomicU64,
    /// Branches refused for a business reason / no votes received.
    pub refused: AtomicU64,
    /// Branches committed / transactions committed.
    pub committed: AtomicU64,
    /// Branches rolled back / transactions aborted.
    pub aborted: AtomicU64,
    /// Coordinator: checkouts answered without a known outcome.
    pub unknown: AtomicU64,
    /// Transactions or branches finished by recovery rather than the normal path.
    pub recovered: AtomicU64,
    /// Participant: microseconds spent in the business update of prepare
    /// (row-lock waits dominate it under contention).
    pub lock_wait_us: AtomicU64,
    /// Participant: prepares that ran out of lock budget (voted no, busy).
    pub busy: AtomicU64,
}

/// A point-in-time copy of [`Metrics`] plus gauges read when asked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Metrics::prepared`].
    pub prepared: u64,
    /// See [`Metrics::refused`].
    pub refused: u64,
    /// See [`Metrics::committed`].
    pub committed: u64,
    /// See [`Metrics::aborted`].
    pub aborted: u64,
    /// See [`Metrics::unknown`].
    pub unknown: u64,
    /// See [`Metrics::recovered`].
    pub recovered: u64,
    /// See [`Metrics::lock_wait_us`].
    pub lock_wait_us: u64,
    /// See [`Metrics::busy`].
    pub busy: u64,
    /// Prepared transactions of ours awaiting phase two right now
    /// (participant), or decided transactions not yet finished (coordinator).
    pub in_doubt: u64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters; `in_doubt` is supplied by the caller.
    pub fn snapshot(&self, in_doubt: u64) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            prepared: get(&self.prepared),
            refused: get(&self.refused),
            committed: get(&self.committed),
            aborted: get(&self.aborted),
            unknown: get(&self.unknown),
            recovered: get(&self.recovered),
            lock_wait_us: get(&self.lock_wait_us),
            busy: get(&self.busy),
            in_doubt,
        }
    }
}
