//! What the saga leaves in its databases, read by the services' gauges and by
//! the harness's verifier, so that no caller re-knows the saga's tables.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use protocol_core::schema::has_table;

use crate::in_flight_sql;
use crate::outbox;
use crate::participant::Recorded;

/// Saga state still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Sagas in the orchestrator's database that are not terminal.
    pub sagas: i64,
    /// Outbox rows not yet published, over every database.
    pub unsent_outbox: i64,
}

/// Whether the saga ran on the orchestrator database behind `pool` (its
/// state table is there).
pub async fn ran_on(pool: &PgPool) -> sqlx::Result<bool> {
    has_table(pool, "sagas").await
}

/// Saga state in flight in the orchestrator's and the participants'
/// databases. A database the saga never ran on counts nothing.
pub async fn in_flight(orchestrator: &PgPool, participants: &[&PgPool]) -> sqlx::Result<InFlight> {
    let mut left = InFlight::default();
    if ran_on(orchestrator).await? {
        left.sagas = count_in_flight(orchestrator).await?;
    }
    for &pool in std::iter::once(&orchestrator).chain(participants) {
        if has_table(pool, "saga_outbox").await? {
            left.unsent_outbox += outbox::count_unsent(pool).await?;
        }
    }
    Ok(left)
}

/// Sagas in the order database that are not terminal yet.
pub async fn count_in_flight(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(concat!("SELECT count(*) FROM sagas WHERE ", in_flight_sql!())).fetch_one(pool).await
}

/// The sagas of `orders` (saga id to order id) started at or after `since`
/// (seconds since the epoch on the order database's clock), or, without it,
/// only the latest saga of each order.
pub async fn sagas_of(pool: &PgPool, orders: &[String], since: Option<f64>) -> sqlx::Result<HashMap<Uuid, String>> {
    let sql = match since {
        Some(_) => "SELECT saga_id, order_id FROM sagas WHERE created_at >= to_timestamp($2) AND order_id = ANY($1)",
        None => {
            "SELECT DISTINCT ON (order_id) saga_id, order_id FROM sagas
             WHERE created_at >= to_timestamp($2) AND order_id = ANY($1)
             ORDER BY order_id, created_at DESC"
        }
    };
    let rows: Vec<(Uuid, String)> = sqlx::query_as(sql).bind(orders).bind(since.unwrap_or(0.0)).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// Of `sagas`, those whose step effect is in place in this participant's
/// database (applied and not compensated); none where the saga never ran.
pub async fn with_effect_in_place(pool: &PgPool, sagas: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    if !has_table(pool, "saga_effects").await? {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT saga_id FROM saga_effects WHERE state = $2 AND saga_id = ANY($1)")
        .bind(sagas)
        .bind(Recorded::Applied.as_str())
        .fetch_all(pool)
        .await
}
