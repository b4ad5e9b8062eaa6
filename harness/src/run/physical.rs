//! The machine's physical limit on a hot row: how long one WAL flush takes.
//!
//! A checkout that holds a row lock across a durable commit cannot let the
//! next checkout of that row in before the flush is on disk, and group commit
//! cannot help a queue on one row: the commits on it are serial. So the flush
//! time bounds the rate on a hot row, whatever the protocol does around it.
//!
//! Measured `pg_test_fsync`-style but through PostgreSQL itself, so it counts
//! exactly what a commit pays on this cluster with its settings: one
//! connection commits transactions that wrote WAL (a transactional logical
//! message, which needs no table and which nothing decodes; its commit is
//! flushed because `synchronous_commit` is on) and, in between, transactions
//! that wrote nothing (no flush, the round trip alone). The median difference
//! is the flush. An xid alone would not do: a transaction that wrote no WAL
//! but its commit record commits asynchronously.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

/// Medians of the two kinds of commit, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct WalFlush {
    /// A commit that flushes the WAL (round trip included).
    pub commit_ms: f64,
    /// A commit that writes nothing: the round trip.
    pub round_trip_ms: f64,
}

/// Row-lock holds across a flush per checkout of a hot row: 2PC holds the row
/// from its stock prepare through `PREPARE TRANSACTION` (a flush), the commit
/// decision in the order database (a flush) and `COMMIT PREPARED` (a flush); a
/// saga step holds it for its one local transaction (a flush).
pub const TWOPC_FLUSHES_UNDER_THE_LOCK: f64 = 3.0;
/// See [`TWOPC_FLUSHES_UNDER_THE_LOCK`].
pub const SAGA_FLUSHES_UNDER_THE_LOCK: f64 = 1.0;

impl WalFlush {
    /// The flush alone.
    pub fn flush_ms(&self) -> f64 {
        (self.commit_ms - self.round_trip_ms).max(0.0)
    }

    /// The most checkouts per second one hot row can commit when each holds
    /// it across `flushes` commits (round trips not counted: an upper bound).
    pub fn hot_row_bound(&self, flushes: f64) -> f64 {
        hot_row_bound(self.flush_ms(), flushes)
    }
}

/// [`WalFlush::hot_row_bound`] for a flush of `flush_ms`.
pub fn hot_row_bound(flush_ms: f64, flushes: f64) -> f64 {
    1000.0 / (flushes * flush_ms.max(1e-3))
}

/// Times `samples` commits of each kind on one connection of `pool`.
pub async fn measure(pool: &PgPool, samples: usize) -> sqlx::Result<WalFlush> {
    let mut conn = pool.acquire().await?;
    let (mut flushing, mut plain) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples.max(1) {
        let writes = "SELECT pg_logical_emit_message(true, 'saga2pc-harness', '')::text";
        for (sql, times) in [(writes, &mut flushing), ("SELECT '1'", &mut plain)] {
            let started = Instant::now();
            sqlx::query("BEGIN").execute(&mut *conn).await?;
            let _: String = sqlx::query_scalar(sql).fetch_one(&mut *conn).await?;
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            times.push(started.elapsed());
        }
    }
    Ok(WalFlush { commit_ms: median_ms(&mut flushing), round_trip_ms: median_ms(&mut plain) })
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort_unstable();
    times.get(times.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_follows_the_flush_alone() {
        let w = WalFlush { commit_ms: 2.5, round_trip_ms: 0.5 };
        assert!((w.flush_ms() - 2.0).abs() < 1e-9);
        assert!((w.hot_row_bound(TWOPC_FLUSHES_UNDER_THE_LOCK) - 1000.0 / 6.0).abs() < 1e-6);
        assert!((w.hot_row_bound(SAGA_FLUSHES_UNDER_THE_LOCK) - 500.0).abs() < 1e-6);
        let mut times = [Duration::from_millis(3), Duration::from_millis(1), Duration::from_millis(2)];
        assert!((median_ms(&mut times) - 2.0).abs() < 1e-9);
    }
}
