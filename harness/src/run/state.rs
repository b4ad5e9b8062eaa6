//! Reading the final state of the three databases for verification (only the
//! batch-initialised ids `"0".."n-1"` the workload created).

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::verify::{FinalState, Leftovers, OrderRow};

/// Database URLs of a stack.
#[derive(Debug, Clone)]
pub struct Databases {
    /// The order database.
    pub order: String,
    /// The stock database.
    pub stock: String,
    /// The payment database.
    pub payment: String,
}

const BATCH_ID: &str = "~ '^[0-9]+$'";

/// Reads the final state of ids below the given counts.
pub async fn read(dbs: &Databases, users: i64, items: i64, orders: i64) -> anyhow::Result<FinalState> {
    let (order_db, stock_db, payment_db) =
        (PgPool::connect(&dbs.order).await?, PgPool::connect(&dbs.stock).await?, PgPool::connect(&dbs.payment).await?);
    let mut state = FinalState::default();
    let sql = format!("SELECT user_id, credit FROM users WHERE user_id {BATCH_ID} AND user_id::numeric < $1");
    state.credit =
        sqlx::query_as::<_, (String, i64)>(&sql).bind(users).fetch_all(&payment_db).await?.into_iter().collect();
    let sql = format!("SELECT item_id, stock FROM items WHERE item_id {BATCH_ID} AND item_id::numeric < $1");
    state.stock =
        sqlx::query_as::<_, (String, i64)>(&sql).bind(items).fetch_all(&stock_db).await?.into_iter().collect();
    let sql = format!(
        "SELECT order_id, user_id, paid, total_cost FROM orders WHERE order_id {BATCH_ID} AND order_id::numeric < $1"
    );
    for (id, user_id, paid, total_cost) in
        sqlx::query_as::<_, (String, String, bool, i64)>(&sql).bind(orders).fetch_all(&order_db).await?
    {
        state.orders.insert(id, OrderRow { user_id, paid, total_cost, items: Vec::new() });
    }
    let sql = format!(
        "SELECT order_id, item_id, quantity FROM order_items WHERE order_id {BATCH_ID} AND order_id::numeric < $1 ORDER BY seq"
    );
    for (id, item, qty) in sqlx::query_as::<_, (String, String, i64)>(&sql).bind(orders).fetch_all(&order_db).await? {
        if let Some(order) = state.orders.get_mut(&id) {
            order.items.push((item, qty));
        }
    }
    state.leftovers = leftovers(&order_db, &stock_db, &payment_db).await?;
    if has_table(&order_db, "sagas").await? {
        state.saga_effects = Some(saga_effects(&stock_db, &payment_db, orders).await?);
    }
    Ok(state)
}

/// Per batch order, the step effects in place in the stock and payment databases.
async fn saga_effects(
    stock_db: &PgPool,
    payment_db: &PgPool,
    orders: i64,
) -> anyhow::Result<std::collections::BTreeMap<String, (i64, i64)>> {
    let sql = format!(
        "SELECT order_id, count(*) FROM saga_effects WHERE state = 'applied'
         AND order_id {BATCH_ID} AND order_id::numeric < $1 GROUP BY order_id"
    );
    let mut effects = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for (db, is_stock) in [(stock_db, true), (payment_db, false)] {
        if !has_table(db, "saga_effects").await? {
            continue;
        }
        for (order, n) in sqlx::query_as::<_, (String, i64)>(&sql).bind(orders).fetch_all(db).await? {
            let entry = effects.entry(order).or_default();
            if is_stock {
                entry.0 = n;
            } else {
                entry.1 = n;
            }
        }
    }
    Ok(effects)
}

async fn has_table(pool: &PgPool, table: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(pool).await
}

/// Protocol state still in flight across the three databases.
async fn leftovers(order_db: &PgPool, stock_db: &PgPool, payment_db: &PgPool) -> sqlx::Result<Leftovers> {
    let mut unsent_outbox = 0;
    for db in [order_db, stock_db, payment_db] {
        if has_table(db, "saga_outbox").await? {
            unsent_outbox += count(db, "SELECT count(*) FROM saga_outbox WHERE sent_at IS NULL").await?;
        }
    }
    let sagas_in_flight = if has_table(order_db, "sagas").await? {
        count(order_db, "SELECT count(*) FROM sagas WHERE status IN ('running', 'compensating')").await?
    } else {
        0
    };
    Ok(Leftovers {
        prepared_transactions: prepared(stock_db).await? + prepared(payment_db).await?,
        unfinished_decisions: unfinished(order_db).await?,
        sagas_in_flight,
        unsent_outbox,
    })
}

async fn count(pool: &PgPool, sql: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(sql).fetch_one(pool).await
}

async fn prepared(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 's2pc:%'").fetch_one(pool).await
}

async fn unfinished(pool: &PgPool) -> sqlx::Result<i64> {
    if !has_table(pool, "twopc_decisions").await? {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT count(*) FROM twopc_decisions WHERE NOT finished").fetch_one(pool).await
}

/// Waits until no protocol state is left in flight (or `timeout` passes) and
/// returns how long that took: the time to consistency.
pub async fn settle(dbs: &Databases, timeout: Duration) -> anyhow::Result<Duration> {
    let (order_db, stock_db, payment_db) =
        (PgPool::connect(&dbs.order).await?, PgPool::connect(&dbs.stock).await?, PgPool::connect(&dbs.payment).await?);
    let started = Instant::now();
    while started.elapsed() < timeout {
        if leftovers(&order_db, &stock_db, &payment_db).await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed())
}
