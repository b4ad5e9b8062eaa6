//! Where a checkout's time goes: every process on a checkout's path records
//! the phases it spent time in as spans (wall-clock microseconds, so the
//! spans of the order service, the participants, the relays and the
//! consumers of one machine line up), keyed by the checkout's order id. The
//! harness drains every process's log after a load and lays each checkout's
//! spans over its client-side latency ([`Phase::PRIORITY`] decides overlaps);
//! what no span covers it reports as unattributed.
//!
//! Recording is off unless [`enable`]d (the services enable it with
//! `--spans`, which the harness's stack passes). The log is bounded
//! ([`CAPACITY`]): spans past it are counted, not kept, and the harness
//! reports both the count and the checkouts it could not cut.
//!
//! A participant of 2PC knows the transaction, not the order: it records
//! under the transaction id, and the coordinator [`alias`]es that to the
//! order id.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a span of a checkout's time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A durable commit: `COMMIT`, `PREPARE TRANSACTION`, `COMMIT PREPARED`
    /// (the WAL flush and its round trip).
    Flush,
    /// The business updates of stock and credit, which wait for row locks.
    RowLock,
    /// Every other statement.
    Sql,
    /// Getting a pooled connection and opening its transaction.
    Pool,
    /// A received saga message waiting for its partition's handler.
    Queue,
    /// A saga message from its produce call to its consumer.
    Kafka,
    /// A saga message in the outbox, from its insert to its produce call.
    Outbox,
    /// A saga's end: from its terminal state's commit to the waiting reply
    /// having it (handed over in memory on the replica that committed it; on
    /// another replica the `NOTIFY` and the outcome read, from the write).
    Notify,
    /// A 2PC call to a participant, as the coordinator sees it (what the
    /// participant's own spans do not cover is HTTP and network).
    Call,
    /// The order service's handling of the checkout request; time in it that
    /// no other span covers is unattributed.
    Handler,
}

impl Phase {
    /// Which phase an instant belongs to when spans overlap (parallel
    /// prepares or steps, a call and what the callee did meanwhile): the
    /// first in this list, the most specific. It is the declaration order,
    /// so `Ord` says the same (the harness takes the minimum).
    pub const PRIORITY: [Phase; 10] = [
        Phase::Flush,
        Phase::RowLock,
        Phase::Sql,
        Phase::Pool,
        Phase::Queue,
        Phase::Kafka,
        Phase::Outbox,
        Phase::Notify,
        Phase::Call,
        Phase::Handler,
    ];

    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Flush => "commit flush",
            Phase::RowLock => "row updates and lock waits",
            Phase::Sql => "other SQL",
            Phase::Pool => "connection pool",
            Phase::Queue => "consumer queue",
            Phase::Kafka => "Kafka hops",
            Phase::Outbox => "outbox to relay",
            Phase::Notify => "end notification",
            Phase::Call => "HTTP to participants",
            Phase::Handler => "order service, other",
        }
    }
}

/// One span of one checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The order id (or, for a 2PC participant, the transaction id).
    pub key: String,
    /// What the time went to.
    pub phase: Phase,
    /// Start, microseconds since the Unix epoch.
    pub start_us: u64,
    /// End, microseconds since the Unix epoch.
    pub end_us: u64,
}

/// What [`drain`] hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    /// The spans recorded since the last drain.
    pub spans: Vec<Span>,
    /// `(alias, key)`: spans recorded under `alias` belong to `key`.
    pub aliases: Vec<(String, String)>,
    /// Spans not kept because the log was full.
    pub dropped: u64,
}

/// Spans kept between two drains (about 100 bytes each, so at most about
/// 20 MB for a stack nobody drains, `harness up` by hand; a run drains before
/// and after every load, which records some 20 spans a checkout).
pub const CAPACITY: usize = 200_000;

static ENABLED: AtomicBool = AtomicBool::new(false);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The spans and the aliases recorded since the last drain.
type Log = (Vec<Span>, Vec<(String, String)>);

static LOG: Mutex<Log> = Mutex::new((Vec::new(), Vec::new()));

fn log() -> std::sync::MutexGuard<'static, Log> {
    LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Turns recording on for this process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The wall clock in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Records that `key` spent `start_us..end_us` in `phase`.
pub fn record(key: &str, phase: Phase, start_us: u64, end_us: u64) {
    if !enabled() {
        return;
    }
    let mut log = log();
    if log.0.len() >= CAPACITY {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    log.0.push(Span { key: key.to_owned(), phase, start_us, end_us: end_us.max(start_us) });
}

/// Records that spans under `alias` belong to the checkout `key`.
pub fn alias(alias: &str, key: &str) {
    if !enabled() {
        return;
    }
    let mut log = log();
    if log.1.len() < CAPACITY {
        log.1.push((alias.to_owned(), key.to_owned()));
    }
}

/// Takes every span recorded since the last drain.
pub fn drain() -> Drained {
    let (spans, aliases) = std::mem::take(&mut *log());
    Drained { spans, aliases, dropped: DROPPED.swap(0, Ordering::Relaxed) }
}

/// Tiles a stretch of sequential work into spans: each [`Tiles::mark`] ends
/// the current span with the phase of the work just done and starts the
/// next, so the stretch is covered without gaps. Does nothing (and reads no
/// clock) while recording is off.
#[derive(Debug)]
pub struct Tiles<'a> {
    key: &'a str,
    last_us: Option<u64>,
}

impl<'a> Tiles<'a> {
    /// Starts tiling for `key` now.
    pub fn start(key: &'a str) -> Self {
        Tiles { key, last_us: enabled().then(now_us) }
    }

    /// The work since the previous mark was `phase`.
    pub fn mark(&mut self, phase: Phase) {
        if let Some(last) = self.last_us {
            let now = now_us();
            record(self.key, phase, last, now);
            self.last_us = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_kept_only_while_enabled_and_drained_once() {
        // One test owns the global log: enabling is for the process.
        record("before", Phase::Sql, 1, 2);
        let mut tiles = Tiles::start("before");
        tiles.mark(Phase::Sql);
        assert!(drain().spans.is_empty(), "nothing is recorded before enable()");
        enable();
        record("o1", Phase::Flush, 10, 5);
        alias("txn-1", "o1");
        let mut tiles = Tiles::start("o2");
        tiles.mark(Phase::Pool);
        tiles.mark(Phase::Sql);
        let drained = drain();
        assert_eq!(drained.spans.len(), 3);
        assert_eq!(drained.spans[0], Span { key: "o1".into(), phase: Phase::Flush, start_us: 10, end_us: 10 });
        assert_eq!(drained.spans[1].end_us, drained.spans[2].start_us, "tiles leave no gap");
        assert_eq!(drained.aliases, vec![("txn-1".to_owned(), "o1".to_owned())]);
        assert!(drain().spans.is_empty());
    }

    #[test]
    fn every_phase_has_a_priority_in_declaration_order() {
        // Overlaps are resolved with `Ord` (the harness takes the minimum),
        // so the documented list must be exactly the declaration order.
        assert!(Phase::PRIORITY.windows(2).all(|w| w[0] < w[1]));
        // Exhaustive: a new phase does not compile until it is listed here,
        // and must then be in PRIORITY too.
        let listed = |p: Phase| match p {
            Phase::Flush
            | Phase::RowLock
            | Phase::Sql
            | Phase::Pool
            | Phase::Queue
            | Phase::Kafka
            | Phase::Outbox
            | Phase::Notify
            | Phase::Call
            | Phase::Handler => Phase::PRIORITY.contains(&p),
        };
        assert!(Phase::PRIORITY.iter().all(|p| listed(*p)));
        assert_eq!(Phase::PRIORITY.len(), 10, "every variant of the match above");
    }
}
