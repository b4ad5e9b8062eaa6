//! Counters of one service's saga side, served at `GET /internal/saga/metrics`
//! and read by the harness for its reports. They are the service's own view;
//! the harness verifies correctness independently.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sagas started (orchestrator).
    pub started: AtomicU64,
    /// Sagas that ended paid (orchestrator).
    pub paid: AtomicU64,
    /// Sagas that ended rejected (orchestrator).
    pub rejected: AtomicU64,
    /// Compensation commands issued (orchestrator).
    pub compensations: AtomicU64,
    /// Commands re-sent by recovery for sagas that made no progress.
    pub resent: AtomicU64,
    /// Checkouts that joined a saga already in flight for their order.
    pub joined: AtomicU64,
    /// Messages handled (their local transaction committed).
    pub handled: AtomicU64,
    /// Deliveries recognised as duplicates by the inbox and skipped.
    pub duplicates: AtomicU64,
    /// Replies that no longer matched their saga's state (answers to re-sent
    /// commands, replies after the end) and changed nothing (orchestrator).
    pub ignored: AtomicU64,
    /// Actions applied (participant).
    pub applied: AtomicU64,
    /// Actions refused for a business reason (participant).
    pub refused: AtomicU64,
    /// Effects undone (participant).
    pub compensated: AtomicU64,
    /// Compensations that arrived before their action (participant).
    pub tombstones: AtomicU64,
    /// Actions refused because a tombstone was there first (participant).
    pub late_actions: AtomicU64,
    /// Handler attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Messages that could not be decoded and were skipped.
    pub malformed: AtomicU64,
    /// Messages moved to the dead-letter table after failing deterministically.
    pub dead_lettered: AtomicU64,
    /// Outbox rows published by the relay and deleted (a row sent twice, by
    /// two paths or after a crash, counts once here).
    pub published: AtomicU64,
    /// Relay rounds that failed.
    pub relay_errors: AtomicU64,
    /// Producers the relay replaced after a fatal error.
    pub producers_renewed: AtomicU64,
}

impl Metrics {
    /// Adds one.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters by name, plus gauges read from the database. A flat map of
    /// numbers, so the harness can sum it across replicas.
    pub fn snapshot(&self, gauges: Gauges) -> BTreeMap<&'static str, u64> {
        let counters: [(&'static str, &AtomicU64); 20] = [
            ("started", &self.started),
            ("paid", &self.paid),
            ("rejected", &self.rejected),
            ("compensations", &self.compensations),
            ("resent", &self.resent),
            ("joined", &self.joined),
            ("handled", &self.handled),
            ("duplicates", &self.duplicates),
            ("ignored", &self.ignored),
            ("applied", &self.applied),
            ("refused", &self.refused),
            ("compensated", &self.compensated),
            ("tombstones", &self.tombstones),
            ("late_actions", &self.late_actions),
            ("retries", &self.retries),
            ("malformed", &self.malformed),
            ("dead_lettered", &self.dead_lettered),
            ("published", &self.published),
            ("relay_errors", &self.relay_errors),
            ("producers_renewed", &self.producers_renewed),
        ];
        let mut out: BTreeMap<_, _> = counters.into_iter().map(|(k, c)| (k, c.load(Ordering::Relaxed))).collect();
        out.insert("in_flight", gauges.in_flight);
        out.insert("unsent_outbox", gauges.unsent_outbox);
        out.insert("dead_letters", gauges.dead_letters);
        out
    }
}

/// Values read from the database at snapshot time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Sagas not terminal (orchestrator; 0 elsewhere).
    pub in_flight: u64,
    /// Outbox rows not published yet.
    pub unsent_outbox: u64,
    /// Messages in the dead-letter table.
    pub dead_letters: u64,
}
