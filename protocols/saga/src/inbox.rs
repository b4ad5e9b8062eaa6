//! The inbox: ids of messages already handled, written in the same
//! transaction as their effect, so a redelivery is recognised; the dead
//! letters of messages whose handler kept failing; and their retention.

use std::time::Duration;

use sqlx::PgPool;

use crate::messages::{Envelope, TOPIC_RETENTION};

/// How long inbox rows and step effects are kept: a day longer than a
/// message's topic retention, and longer than the retention plus one segment
/// (the longest a message stays in its topic). The guarantee this keeps: a
/// message redelivered or replayed from its topic always finds its inbox row
/// (so it is not applied twice), and every command of a saga finds the saga's
/// effect record, because the record is touched by every command handled for
/// it, and recovery re-sends a stalled saga's pending commands and the actions
/// whose effect is in place (`Saga::held`) every few seconds, so the records
/// of a saga in flight never age out while its participants run. A
/// compensation that fails refreshes its record outside its failed
/// transaction, and one that was dead-lettered keeps it ([`forget_old`]).
pub const DEDUP_RETENTION: Duration = TOPIC_RETENTION.saturating_add(Duration::from_secs(24 * 3600));

/// Rows deleted per statement, so a retention pass never holds long locks.
const RETENTION_CHUNK: i64 = 10_000;

/// A statement that records message `$1` as handled (the inbox claim) and,
/// only when the claim is new, runs `$lock`: a `SELECT ... FOR UPDATE` of the
/// record the message acts on, which may use `claim.first` and the
/// statement's other parameters. One round trip where a claim and a read
/// would take two, on every hop of a saga's critical path.
///
/// The row is `(first, <the columns of $lock>)`, those `NULL` when `$lock`
/// found nothing or the claim was not new. The lateral join reads
/// `claim.first` before it runs `$lock`, so the claim always completes
/// before the lock is taken: every handler takes the inbox row first and
/// the record's lock second, as two statements would, and two deliveries of
/// one message cannot deadlock over the two. Unlike two statements, the
/// lock's read uses the snapshot taken before the claim waited on a
/// concurrent claim of the same id: a record inserted meanwhile is not seen
/// (one updated meanwhile is, at its newest version). Callers that find no
/// record insert one, and its primary key turns that race into a retry.
///
/// `first == false` means the message was handled before (or by a
/// transaction that committed first): the caller must not apply it again,
/// gets [`Claimed::Duplicate`] and ends its transaction having
/// written nothing.
#[macro_export]
macro_rules! claim_then_lock {
    ($lock:literal) => {
        concat!(
            "WITH claimed AS (INSERT INTO saga_inbox (message_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1),
                  claim AS (SELECT count(*) = 1 AS first FROM claimed)
             SELECT claim.first, locked.* FROM claim LEFT JOIN LATERAL (",
            $lock,
            ") AS locked ON true"
        )
    };
}

/// What a [`claim_then_lock!`] statement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed<T> {
    /// The message was handled before (or by a transaction that committed
    /// first): the caller must not apply it again, and ends its transaction
    /// having written nothing.
    Duplicate,
    /// The claim is new; the locked record, if there is one.
    First(Option<T>),
}

impl<T> Claimed<T> {
    /// `Duplicate` unless `first`, counting a duplicate in `metrics`; a new
    /// claim carries what `locked` found.
    pub fn of(first: bool, locked: Option<T>, metrics: &crate::Metrics) -> Self {
        if first {
            Claimed::First(locked)
        } else {
            crate::Metrics::incr(&metrics.duplicates);
            Claimed::Duplicate
        }
    }
}

/// Keeps `msg`, whose handler failed deterministically `attempts` times with
/// `error`, in the dead-letter table (once per message id). Returns whether it
/// is its saga's first dead letter.
pub async fn dead_letter(
    pool: &PgPool,
    msg: &Envelope,
    (topic, partition, offset): (&str, i32, i64),
    error: &str,
    attempts: u32,
) -> sqlx::Result<bool> {
    let earlier: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM saga_dead_letters WHERE saga_id = $1)")
        .bind(msg.saga_id)
        .fetch_one(pool)
        .await?;
    sqlx::query(
        "INSERT INTO saga_dead_letters (message_id, saga_id, topic, part, msg_offset, payload, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(msg.message_id)
    .bind(msg.saga_id)
    .bind(topic)
    .bind(partition)
    .bind(offset)
    .bind(sqlx::types::Json(msg))
    .bind(error)
    .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(!earlier)
}

/// Messages in the dead-letter table.
pub async fn count_dead_letters(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM saga_dead_letters").fetch_one(pool).await
}

/// Deletes inbox rows and step effects older than `keep` (see
/// [`DEDUP_RETENTION`]); returns how many rows went.
///
/// An applied effect whose saga has a dead letter here stays whatever its
/// age: its compensation kept failing, so the saga is still compensating and
/// the record is what the repaired compensation must undo. Forgetting it would
/// make the next re-sent compensation find no record, write a tombstone and
/// answer `Compensated` with the reservation never given back. Dead letters
/// are never deleted, so the record goes only once it is compensated and has
/// aged like any other (an applied effect of a saga that later ended paid,
/// after a dead letter of one of its messages, is kept for good: a few rows,
/// the price of never guessing which).
pub async fn forget_old(pool: &PgPool, keep: Duration) -> sqlx::Result<u64> {
    let secs = keep.as_secs_f64();
    let mut deleted = 0;
    let mut tables = vec![("saga_inbox", "message_id", "received_at", "")];
    let has_effects: bool =
        sqlx::query_scalar("SELECT to_regclass('saga_effects') IS NOT NULL").fetch_one(pool).await?;
    if has_effects {
        tables.push((
            "saga_effects",
            "saga_id",
            "updated_at",
            " AND NOT (state = 'applied'
                       AND EXISTS (SELECT 1 FROM saga_dead_letters AS d WHERE d.saga_id = saga_effects.saga_id))",
        ));
    }
    for (table, key, at, keep_if) in tables {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN
             (SELECT {key} FROM {table} WHERE {at} < now() - make_interval(secs => $1){keep_if} LIMIT $2)"
        );
        loop {
            let n = sqlx::query(&sql).bind(secs).bind(RETENTION_CHUNK).execute(pool).await?.rows_affected();
            deleted += n;
            if n < RETENTION_CHUNK as u64 {
                break;
            }
        }
    }
    Ok(deleted)
}
