//! The SQL every saga service shares: the transactional outbox (outgoing
//! messages, written in the same local transaction as the state change they
//! announce) and the inbox (ids of messages already handled, written in the
//! same transaction as their effect, so a redelivery is recognised).

use std::time::Duration;

use protocol_core::schema::ProtocolSchema;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::messages::{Envelope, TOPIC_RETENTION};

/// How long inbox rows and step effects are kept: a day longer than a
/// message's topic retention, and longer than the retention plus one segment
/// (the longest a message stays in its topic). The guarantee this keeps: a
/// message redelivered or replayed from its topic always finds its inbox row
/// (so it is not applied twice), and every command of a saga finds the saga's
/// effect record, because the record is touched by every command handled for
/// it, and recovery re-sends a stalled saga's pending commands and the actions
/// whose effect is in place (`Saga::held`) every few seconds, so the records
/// of a saga in flight never age out while its participants run.
pub const DEDUP_RETENTION: Duration = TOPIC_RETENTION.saturating_add(Duration::from_secs(24 * 3600));

/// Rows deleted per statement, so a retention pass never holds long locks.
const RETENTION_CHUNK: i64 = 10_000;

/// The tables a saga service needs besides its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Outbox, inbox and the saga state (the order service).
    Orchestrator,
    /// Outbox, inbox and the step effects (stock, payment).
    Participant,
}

const ORCHESTRATOR: ProtocolSchema = ProtocolSchema {
    name: "saga-orchestrator",
    sql: &[include_str!("../sql/outbox_inbox.sql"), include_str!("../sql/orchestrator.sql")],
    tables: &["sagas", "saga_outbox", "saga_inbox", "saga_dead_letters"],
    recorded_before: Some(("saga_schema", "orchestrator")),
};

const PARTICIPANT: ProtocolSchema = ProtocolSchema {
    name: "saga-participant",
    sql: &[include_str!("../sql/outbox_inbox.sql"), include_str!("../sql/participant.sql")],
    tables: &["saga_effects", "saga_outbox", "saga_inbox", "saga_dead_letters"],
    recorded_before: Some(("saga_schema", "participant")),
};

impl Schema {
    /// Its SQL and tables.
    pub fn definition(self) -> &'static ProtocolSchema {
        match self {
            Schema::Orchestrator => &ORCHESTRATOR,
            Schema::Participant => &PARTICIPANT,
        }
    }

    /// The tables [`install`] creates for this schema that hold protocol
    /// state.
    pub fn tables(self) -> &'static [&'static str] {
        self.definition().tables
    }
}

/// Creates the saga tables if they do not exist: the protocol's, installed
/// by it at start-up rather than by each service's migrations, and skipped
/// when already in place ([`protocol_core::schema`]).
pub async fn install(pool: &PgPool, schema: Schema) -> sqlx::Result<()> {
    protocol_core::schema::install(pool, schema.definition()).await
}

/// An outbox row as written, for the relay to publish without reading it
/// back once its transaction committed ([`crate::relay::Outbox`]).
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The row's id (publication order).
    pub id: i64,
    /// Where it goes.
    pub topic: String,
    /// Its Kafka key: the order id.
    pub key: String,
    /// The encoded [`Envelope`].
    pub payload: Vec<u8>,
    /// When it was written (microseconds since the epoch), where its wait for
    /// the relay starts (`protocol_core::spans`).
    pub created_us: u64,
}

/// Adds `msgs` to the outbox in one statement (one round trip however many
/// an action list sends), inside the caller's transaction; they are published
/// in this order. Returns the rows, for [`crate::relay::Outbox::committed`]
/// once the transaction committed.
pub async fn enqueue(conn: &mut PgConnection, msgs: &[Envelope]) -> sqlx::Result<Vec<OutboxRow>> {
    if msgs.is_empty() {
        return Ok(Vec::new());
    }
    let created_us = protocol_core::spans::now_us();
    let message_ids: Vec<Uuid> = msgs.iter().map(|m| m.message_id).collect();
    let topics: Vec<&str> = msgs.iter().map(Envelope::topic).collect();
    let keys: Vec<&str> = msgs.iter().map(|m| m.order_id.as_str()).collect();
    let payloads: Vec<Vec<u8>> = msgs.iter().map(Envelope::encode).collect();
    // `created_at` is the insert's own time, not the transaction's: the relay's
    // poll leaves rows younger than its hand-over grace to the relay they were
    // handed to.
    let ids: Vec<(i64, Uuid)> = sqlx::query_as(
        "INSERT INTO saga_outbox (message_id, topic, msg_key, payload, created_at)
         SELECT id, topic, msg_key, payload, clock_timestamp()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY
              AS m (id, topic, msg_key, payload, n)
         ORDER BY n
         RETURNING id, message_id",
    )
    .bind(&message_ids)
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .fetch_all(conn)
    .await?;
    let mut rows = Vec::with_capacity(msgs.len());
    for (msg, payload) in msgs.iter().zip(payloads) {
        let (id, _) = ids
            .iter()
            .find(|(_, m)| *m == msg.message_id)
            .ok_or_else(|| sqlx::Error::Protocol(format!("outbox insert returned no id for {}", msg.message_id)))?;
        rows.push(OutboxRow { id: *id, topic: msg.topic().to_owned(), key: msg.order_id.clone(), payload, created_us });
    }
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}

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

/// Outbox rows not yet published.
pub async fn count_unsent(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM saga_outbox WHERE sent_at IS NULL").fetch_one(pool).await
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
pub async fn forget_old(pool: &PgPool, keep: Duration) -> sqlx::Result<u64> {
    let secs = keep.as_secs_f64();
    let mut deleted = 0;
    let mut tables = vec![("saga_inbox", "message_id", "received_at")];
    let has_effects: bool =
        sqlx::query_scalar("SELECT to_regclass('saga_effects') IS NOT NULL").fetch_one(pool).await?;
    if has_effects {
        tables.push(("saga_effects", "saga_id", "updated_at"));
    }
    for (table, key, at) in tables {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN
             (SELECT {key} FROM {table} WHERE {at} < now() - make_interval(secs => $1) LIMIT $2)"
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
