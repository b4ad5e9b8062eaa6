//! The orchestrator's `sagas` table, one function per statement. The
//! orchestrator runs them, and so does the harness's raw ceiling, which runs
//! the orchestrator and the participants over [`crate::in_process::Bus`]
//! (`harness/src/run/ceiling/engine.rs`) to replay a checkout's database
//! work without Kafka: the yardstick measures the protocol's own statements,
//! not a copy that could drift from them.

use protocol_core::CheckoutRequest;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::inbox::Claimed;
use crate::machine::Saga;
use crate::{Metrics, claim_then_lock, in_flight_sql};

/// The saga of `order_id` still in flight, if any (one per order at most).
pub async fn in_flight_of(conn: &mut PgConnection, order_id: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(concat!("SELECT saga_id FROM sagas WHERE order_id = $1 AND ", in_flight_sql!()))
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

/// Records a new saga of `request` in its first state.
pub async fn insert(
    conn: &mut PgConnection,
    saga_id: Uuid,
    saga: &Saga,
    request: &CheckoutRequest,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sagas (saga_id, order_id, status, state, request) VALUES ($1, $2, $3, $4, $5)")
        .bind(saga_id)
        .bind(&request.order_id)
        .bind(saga.status.as_str())
        .bind(Json(saga))
        .bind(Json(request))
        .execute(conn)
        .await
        .map(drop)
}

/// Claims reply `message_id` in the inbox and, when the claim is new, reads
/// the saga's state and request with its row locked until the transaction
/// ends (one reply of a saga at a time), in one round trip
/// ([`claim_then_lock!`]); `First(None)` for an unknown saga.
pub async fn claim_and_lock(
    conn: &mut PgConnection,
    message_id: Uuid,
    saga_id: Uuid,
    metrics: &Metrics,
) -> sqlx::Result<Claimed<(Saga, CheckoutRequest)>> {
    let (first, state, request): (bool, Option<Json<Saga>>, Option<Json<CheckoutRequest>>) = sqlx::query_as(
        claim_then_lock!("SELECT state, request FROM sagas WHERE saga_id = $2 AND claim.first FOR UPDATE"),
    )
    .bind(message_id)
    .bind(saga_id)
    .fetch_one(conn)
    .await?;
    let locked = state.zip(request).map(|(Json(saga), Json(request))| (saga, request));
    Ok(Claimed::of(first, locked, metrics))
}

/// Persists the saga's new state. A terminal state also records when it
/// ended and announces it on `done_channel`, delivered to every listener when
/// (and only if) the transaction commits.
pub async fn save(conn: &mut PgConnection, saga_id: Uuid, saga: &Saga, done_channel: &str) -> sqlx::Result<()> {
    let terminal = saga.status.is_terminal();
    let update = if terminal {
        sqlx::query(
            "WITH ended AS (
                 UPDATE sagas SET status = $2, state = $3, updated_at = now(), finished_at = clock_timestamp()
                 WHERE saga_id = $1 RETURNING saga_id)
             SELECT pg_notify($4, saga_id::text) FROM ended",
        )
    } else {
        sqlx::query("UPDATE sagas SET status = $2, state = $3, updated_at = now() WHERE saga_id = $1")
    };
    let update = update.bind(saga_id).bind(saga.status.as_str()).bind(Json(saga));
    if terminal { update.bind(done_channel) } else { update }.execute(conn).await.map(drop)
}
