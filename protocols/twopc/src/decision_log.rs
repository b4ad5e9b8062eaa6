//! The coordinator's decision log, a table in the order database.
//!
//! One row per transaction that reached a decision; the primary key makes the
//! decision unique, so a commit and an abort can never both be recorded. The
//! commit row is inserted in the same local transaction that marks the order
//! paid (the caller's transaction), before any `COMMIT PREPARED` is sent.
//! Presumed abort: a transaction without a row is aborted, and the first
//! participant to ask about it records that abort ([`resolve`]); a coordinator
//! still preparing then finds the abort when it tries to commit.
//!
//! `decided_at` is the wall-clock time of the insert, not the start of the
//! order transaction (which opened before the prepares, possibly seconds
//! earlier): recovery only picks decisions older than its minimum age, so it
//! does not race the live phase two of a decision taken a moment ago.
//!
//! Required schema (`sql/coordinator.sql`, installed by [`crate::schema`]):
//!
//! ```sql
//! CREATE TABLE twopc_decisions (
//!     txn_id      UUID PRIMARY KEY,
//!     coordinator TEXT NOT NULL,
//!     order_id    TEXT,
//!     decision    TEXT NOT NULL CHECK (decision IN ('commit', 'abort')),
//!     finished    BOOLEAN NOT NULL DEFAULT FALSE,
//!     decided_at  TIMESTAMPTZ NOT NULL DEFAULT now()
//! );
//! ```

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::gid::InstanceName;
use crate::machine::Decision;

/// A decision as stored; anything else is a decode error, never taken for an abort.
fn parse(decision: &str) -> sqlx::Result<Decision> {
    decision.parse().map_err(|err: String| sqlx::Error::Decode(err.into()))
}

/// Inserts the commit decision inside the caller's transaction. Returns the
/// decision now on record: `Abort` if recovery got there first.
/// The decision log's table ([`crate::schema`] installs it).
pub const TABLE: &str = "twopc_decisions";

pub async fn record_commit(
    conn: &mut PgConnection,
    txn: Uuid,
    coordinator: &InstanceName,
    order_id: &str,
) -> sqlx::Result<Decision> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO twopc_decisions (txn_id, coordinator, order_id, decision, decided_at)
         VALUES ($1, $2, $3, 'commit', clock_timestamp())
         ON CONFLICT (txn_id) DO NOTHING RETURNING decision",
    )
    .bind(txn)
    .bind(coordinator.as_str())
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(_) => Ok(Decision::Commit),
        None => current(&mut *conn, txn).await.map(|d| d.unwrap_or(Decision::Abort)),
    }
}

/// Records an abort unless a decision exists; returns the decision on record.
///
/// Losing this write in a crash is harmless (no row means abort), so it is
/// committed without waiting for the WAL flush.
pub async fn record_abort(
    pool: &PgPool,
    txn: Uuid,
    coordinator: &InstanceName,
    order_id: Option<&str>,
) -> sqlx::Result<Decision> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO twopc_decisions (txn_id, coordinator, order_id, decision) VALUES ($1, $2, $3, 'abort')
         ON CONFLICT (txn_id) DO NOTHING",
    )
    .bind(txn)
    .bind(coordinator.as_str())
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    let decision = current(&mut tx, txn).await?.unwrap_or(Decision::Abort);
    tx.commit().await?;
    Ok(decision)
}

/// The answer to a participant asking about `txn`: the recorded decision, or a
/// newly recorded abort. If the coordinator is inserting its commit at this
/// moment, the insert here waits for that transaction and then sees the commit.
pub async fn resolve(pool: &PgPool, txn: Uuid, coordinator: &InstanceName) -> sqlx::Result<Decision> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO twopc_decisions (txn_id, coordinator, decision) VALUES ($1, $2, 'abort')
         ON CONFLICT (txn_id) DO NOTHING",
    )
    .bind(txn)
    .bind(coordinator.as_str())
    .execute(&mut *tx)
    .await?;
    let decision = current(&mut tx, txn).await?.unwrap_or(Decision::Abort);
    tx.commit().await?;
    Ok(decision)
}

async fn current(conn: &mut PgConnection, txn: Uuid) -> sqlx::Result<Option<Decision>> {
    let row: Option<String> = sqlx::query_scalar("SELECT decision FROM twopc_decisions WHERE txn_id = $1")
        .bind(txn)
        .fetch_optional(conn)
        .await?;
    row.as_deref().map(parse).transpose()
}

/// Marks phase two done. Asynchronous commit: if the mark is lost, recovery
/// repeats the (idempotent) phase two.
pub async fn mark_finished(pool: &PgPool, txn: Uuid) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    sqlx::query("UPDATE twopc_decisions SET finished = TRUE WHERE txn_id = $1").bind(txn).execute(&mut *tx).await?;
    tx.commit().await
}

/// A decided transaction whose phase two is not known to be finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The transaction.
    pub txn: Uuid,
    /// Who created it (part of its gids).
    pub coordinator: InstanceName,
    /// The decision.
    pub decision: Decision,
}

/// Decided transactions older than `min_age` whose phase two is unfinished.
pub async fn unfinished(pool: &PgPool, min_age: Duration, limit: i64) -> sqlx::Result<Vec<Unfinished>> {
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT txn_id, coordinator, decision FROM twopc_decisions
         WHERE NOT finished AND decided_at < now() - make_interval(secs => $1)
         ORDER BY decided_at LIMIT $2",
    )
    .bind(min_age.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(txn, coordinator, decision)| {
            let coordinator = InstanceName::new(&coordinator).ok()?;
            let decision = parse(&decision).ok()?;
            Some(Unfinished { txn, coordinator, decision })
        })
        .collect())
}

/// How many decided transactions are unfinished (a gauge for the harness).
pub async fn count_unfinished(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM twopc_decisions WHERE NOT finished").fetch_one(pool).await
}

/// SQL predicate: `order_id` is one of the batch ids `"0".."$1-1"`.
pub(crate) const IN_BATCH: &str =
    "CASE WHEN order_id ~ '^(0|[1-9][0-9]{0,19})$' THEN order_id::numeric < $1 ELSE FALSE END";

/// One of the batch orders `"0".."n-1"` with a commit whose phase two is
/// unfinished, if any: such an order must not be reset (`batch_init`) before
/// phase two ends, or it could never be paid again.
pub async fn unfinished_commit_in_batch(conn: &mut PgConnection, n: i64) -> sqlx::Result<Option<String>> {
    let sql = format!(
        "SELECT order_id FROM twopc_decisions WHERE NOT finished AND decision = 'commit' AND {IN_BATCH} LIMIT 1"
    );
    sqlx::query_scalar(&sql).bind(n).fetch_optional(conn).await
}

/// Forgets the finished decisions of the batch orders `"0".."n-1"`, which a
/// `batch_init` makes unpaid again: finished decisions are never read again
/// (every participant applied them), and the one-commit-per-order rule must
/// let the reset order be paid once more.
pub async fn forget_batch(conn: &mut PgConnection, n: i64) -> sqlx::Result<()> {
    let sql = format!("DELETE FROM twopc_decisions WHERE finished AND {IN_BATCH}");
    sqlx::query(&sql).bind(n).execute(conn).await?;
    Ok(())
}

/// How long a finished decision is kept. Nothing reads a finished decision
/// (every participant applied it; a participant asks only about branches still
/// prepared), so this only keeps the one-commit-per-order index meaningful for
/// a while after a payment, a safety net behind the order row lock and the
/// `paid` flag that already make a second payment impossible.
pub const FINISHED_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Deletes decisions finished more than `keep` ago (by their decision time);
/// returns how many.
pub async fn forget_finished(pool: &PgPool, keep: Duration) -> sqlx::Result<u64> {
    delete_in_chunks(
        pool,
        "DELETE FROM twopc_decisions WHERE txn_id IN
         (SELECT txn_id FROM twopc_decisions
          WHERE finished AND decided_at < now() - make_interval(secs => $1) LIMIT $2)",
        keep,
    )
    .await
}

/// Runs the retention `delete` (`$1`: age in seconds, `$2`: rows per
/// statement) until it deletes less than a chunk, so no statement holds many
/// locks; returns how many rows went.
pub(crate) async fn delete_in_chunks(pool: &PgPool, delete: &str, keep: Duration) -> sqlx::Result<u64> {
    const CHUNK: i64 = 10_000;
    let mut deleted = 0;
    loop {
        let n = sqlx::query(delete).bind(keep.as_secs_f64()).bind(CHUNK).execute(pool).await?.rows_affected();
        deleted += n;
        if n < CHUNK as u64 {
            return Ok(deleted);
        }
    }
}
