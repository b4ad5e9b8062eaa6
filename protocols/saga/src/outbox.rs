//! The transactional outbox: outgoing messages, written in the same local
//! transaction as the state change they announce, and published by the relay
//! ([`crate::relay`]) once that transaction committed.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::messages::Envelope;

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

/// Outbox rows not yet published.
pub async fn count_unsent(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM saga_outbox WHERE sent_at IS NULL").fetch_one(pool).await
}
