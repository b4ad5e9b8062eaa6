//! `batch_init` on a live system.
//!
//! `batch_init` overwrites the state of ids `"0".."n-1"` (`docs/design.md` section 5)
//! and the course benchmark calls it on a running system, so it can meet
//! protocol state that still refers to those ids. The rule, for both protocols:
//! a reset runs in one transaction that holds the row locks of every id it
//! resets, and it commits only when no protocol state in flight depends on
//! the value it overwrites; otherwise it rolls back, waits and tries again, and
//! after [`RESET_WAIT`] answers 409 naming what is in flight. Nothing is
//! created, lost or left unpayable either way:
//!
//! - a 2PC branch holds its rows locked from prepare to phase two, so a reset
//!   of those rows waits for the decision (the lock wait of each attempt is
//!   bounded, so a branch in doubt makes the reset answer 409, never hang);
//! - the order service also waits until no reset order has a saga in flight or
//!   a 2PC commit whose phase two is unfinished (each protocol names its own);
//! - a saga step's effect is committed before the saga ends, so stock and
//!   payment cannot wait for it; their rows carry a generation that a reset
//!   bumps, and a compensation gives back only to the generation it took from
//!   (the reset overwrote the value the step took from, so there is nothing to
//!   give back to);
//! - a checkout's forward steps (a 2PC prepare, a saga action) refuse a row
//!   reset after the checkout began ([`RESET_AFTER`], answered 400
//!   "reset by batch_init while the checkout ran"): otherwise a step delayed
//!   past a reset would take from the new values for an order whose own reset,
//!   waiting for the checkout, then makes it unpaid again.
//!
//! What "after the checkout began" compares: the row's `reset_at`, stamped by
//! the reset's *last* statement with `clock_timestamp()` ([`stamp_reset`]),
//! after every row is written and locked, so a reset that ran for seconds is
//! dated by its end, not its start; and the checkout's `as_of`, read after
//! the checkout holds its order's row lock. A step that queued on a row the
//! reset held therefore sees the reset's stamp later than its `as_of` and
//! refuses. The window left: a checkout whose `as_of` is read between the
//! stamp and the moment the reset's commit becomes visible (the stamp's reply,
//! the `COMMIT` round trip and its WAL flush: a few milliseconds on a busy
//! host) is taken for one that began after the reset; and
//! the checkout's start is read from the order database's clock and the stamp
//! from the participant's, so across hosts the window widens by their skew.

use std::time::Duration;

use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};

/// SQL condition: the row was reset by a `batch_init` after the checkout began
/// (`$2`: the checkout's `as_of`, microseconds since the epoch, or NULL for no
/// check). Needs a `reset_at` column.
pub const RESET_AFTER: &str = "COALESCE(reset_at > to_timestamp($2::bigint / 1000000.0), FALSE)";

/// How long a `batch_init` waits for protocol state in flight before it answers
/// 409: longer than a checkout takes under load, shorter than a client timeout.
pub const RESET_WAIT: Duration = Duration::from_secs(10);

/// How long one attempt waits for a row lock before it starts over.
const ATTEMPT_LOCK_TIMEOUT_MS: u64 = 1_000;

/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The retry loop of one reset: call [`ResetWait::begin`] at the start of each
/// attempt's transaction and [`ResetWait::retry`] when the attempt found
/// something in flight.
#[derive(Debug)]
pub struct ResetWait {
    what: &'static str,
    deadline: Instant,
}

impl ResetWait {
    /// A reset of `what` (for messages: "items", "users", "orders").
    pub fn new(what: &'static str) -> Self {
        ResetWait { what, deadline: Instant::now() + RESET_WAIT }
    }

    /// Bounds the lock waits of the attempt in `conn`'s transaction.
    pub async fn begin(&self, conn: &mut PgConnection) -> sqlx::Result<()> {
        sqlx::query(&format!("SET LOCAL lock_timeout = {ATTEMPT_LOCK_TIMEOUT_MS}")).execute(conn).await?;
        Ok(())
    }

    /// Classifies a failed attempt: a lock wait that timed out is something in
    /// flight (retried); anything else is returned as it is.
    pub fn in_flight(err: sqlx::Error) -> Result<String, sqlx::Error> {
        // A lock wait past the attempt's timeout, or a deadlock with a branch
        // locking in another order (PostgreSQL broke it by failing us).
        let locked = err.as_database_error().and_then(|db| db.code()).is_some_and(|c| c == "55P03" || c == "40P01");
        if locked { Ok("a row is locked by a transaction in flight (a 2PC branch)".to_owned()) } else { Err(err) }
    }

    /// After an attempt found `busy` in flight (and rolled back): waits and
    /// returns `Ok` to try again, or the 409 once the deadline has passed.
    pub async fn retry(&self, busy: &str) -> ApiResult<()> {
        if Instant::now() + RETRY_PAUSE >= self.deadline {
            return Err(ApiError::Conflict(format!(
                "batch_init of {} waited {} s for protocol state in flight: {busy}; nothing was changed, retry later",
                self.what,
                RESET_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }
}

/// Runs the single-statement reset `upsert` (built anew for each attempt) of
/// ids `"0".."n-1"` of `table` (keyed by the text column `id_column`) in the
/// retry loop of [`ResetWait`], then stamps the rows ([`stamp_reset`]) as the
/// attempt's last statement: stock's and payment's `batch_init`.
pub async fn reset_rows<F>(
    pool: &PgPool,
    what: &'static str,
    (table, id_column): (&str, &str),
    n: i64,
    upsert: F,
) -> ApiResult<()>
where
    F: Fn() -> sqlx::query::Query<'static, Postgres, PgArguments>,
{
    let wait = ResetWait::new(what);
    loop {
        let mut tx = pool.begin().await?;
        wait.begin(&mut tx).await?;
        match upsert().execute(&mut *tx).await {
            Ok(_) => {
                stamp_reset(&mut tx, table, id_column, n).await?;
                return Ok(tx.commit().await?);
            }
            Err(err) => {
                let busy = ResetWait::in_flight(err)?;
                drop(tx);
                wait.retry(&busy).await?;
            }
        }
    }
}

/// Sets `reset_at` of ids `"0".."n-1"` of `table` to one `clock_timestamp()`
/// taken now: the last statement of a reset, whose transaction already holds
/// every one of those rows (so this waits for nothing). One value for the
/// whole batch, so the rows of the latest batch share it (the harness's
/// verifier finds the batch by it).
pub async fn stamp_reset(conn: &mut PgConnection, table: &str, id_column: &str, n: i64) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "UPDATE {table} SET reset_at = stamp.at
         FROM (SELECT clock_timestamp() AS at) AS stamp
         WHERE {id_column} IN (SELECT g::text FROM generate_series(0, $1 - 1) AS g)"
    ))
    .bind(n)
    .execute(conn)
    .await?;
    Ok(())
}
