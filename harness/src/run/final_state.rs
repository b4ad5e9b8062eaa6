//! Reading the final state of the three databases for verification (only the
//! ids the workload created).

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use super::verify::{FinalState, Leftovers, OrderRow};
use super::workload::Ids;

/// The ids `harness verify` judges on a stack whose history it does not know:
/// the users and items the latest `batch_init` of their service wrote, and the
/// orders the latest order `batch_init` wrote plus the orders of those users
/// paid since that batch. Rows of earlier batches, which a later `batch_init`
/// partly overwrote, started from other values and are left out. Without any
/// `batch_init`, every id.
pub async fn latest_batch_ids(dbs: &Databases) -> anyhow::Result<Ids> {
    let ids = |url: String, sql: String| async move {
        let pool = PgPool::connect(&url).await?;
        let ids: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&pool).await?;
        pool.close().await;
        anyhow::Ok(ids)
    };
    let latest = |table: &str, id: &str| {
        format!(
            "SELECT {id} FROM {table}
             WHERE reset_at = (SELECT max(reset_at) FROM {table})
                OR NOT EXISTS (SELECT 1 FROM {table} WHERE reset_at IS NOT NULL)"
        )
    };
    let users = ids(dbs.payment.clone(), latest("users", "user_id")).await?;
    let items = ids(dbs.stock.clone(), latest("items", "item_id")).await?;
    let order_db = PgPool::connect(&dbs.order).await?;
    // Orders paid since the batch count only if their user and every item are
    // in it: the others took from rows this check does not judge.
    let orders: Vec<String> = sqlx::query_scalar(
        "WITH batch AS (SELECT max(reset_at) AS at FROM orders)
         SELECT o.order_id FROM orders o, batch
         WHERE batch.at IS NULL OR o.reset_at = batch.at
            OR (o.paid AND o.paid_at >= batch.at AND o.user_id = ANY($1)
                AND NOT EXISTS (SELECT 1 FROM order_items i
                                WHERE i.order_id = o.order_id AND NOT i.item_id = ANY($2)))",
    )
    .bind(&users)
    .bind(&items)
    .fetch_all(&order_db)
    .await?;
    order_db.close().await;
    Ok(Ids { users, items, orders })
}

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

/// The order database's clock, as seconds since the epoch: marks the start of
/// a run, so that protocol records of earlier runs on the same ids (which
/// `batch_init` reset) are not counted.
pub async fn now(dbs: &Databases) -> anyhow::Result<f64> {
    let pool = PgPool::connect(&dbs.order).await?;
    let now = sqlx::query_scalar("SELECT extract(epoch FROM now())::float8").fetch_one(&pool).await?;
    pool.close().await;
    Ok(now)
}

/// Reads the final state until two consecutive reads agree (at most
/// `MAX_READS` reads), so a state still moving is never judged: the three
/// databases are read one after another, not in one snapshot.
pub async fn read_stable(dbs: &Databases, ids: &Ids, since: Option<f64>) -> anyhow::Result<FinalState> {
    const MAX_READS: usize = 10;
    let mut last = read(dbs, ids, since).await?;
    for _ in 1..MAX_READS {
        let next = read(dbs, ids, since).await?;
        if next == last {
            return Ok(next);
        }
        tracing::info!("the final state changed between two reads; reading again");
        last = next;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!("the final state was still changing after {MAX_READS} reads; judging the last one");
    Ok(last)
}

/// Reads the final state of the run's ids; saga records count only for sagas
/// started at or after `since` (see [`now`]), or, without it, only the latest
/// saga of each order (for `harness verify` on a system whose history is
/// unknown: `batch_init` may have reset orders that earlier sagas paid).
pub async fn read(dbs: &Databases, ids: &Ids, since: Option<f64>) -> anyhow::Result<FinalState> {
    let (order_db, stock_db, payment_db) =
        (PgPool::connect(&dbs.order).await?, PgPool::connect(&dbs.stock).await?, PgPool::connect(&dbs.payment).await?);
    let credit = sqlx::query_as::<_, (String, i64)>("SELECT user_id, credit FROM users WHERE user_id = ANY($1)")
        .bind(&ids.users)
        .fetch_all(&payment_db)
        .await?
        .into_iter()
        .collect();
    let stock = sqlx::query_as::<_, (String, i64)>("SELECT item_id, stock FROM items WHERE item_id = ANY($1)")
        .bind(&ids.items)
        .fetch_all(&stock_db)
        .await?
        .into_iter()
        .collect();
    let mut state = FinalState { credit, stock, ..FinalState::default() };
    let sql = "SELECT order_id, user_id, paid, total_cost FROM orders WHERE order_id = ANY($1)";
    for (id, user_id, paid, total_cost) in
        sqlx::query_as::<_, (String, String, bool, i64)>(sql).bind(&ids.orders).fetch_all(&order_db).await?
    {
        state.orders.insert(id, OrderRow { user_id, paid, total_cost, items: Vec::new() });
    }
    let sql = "SELECT order_id, item_id, quantity FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, seq";
    for (id, item, qty) in
        sqlx::query_as::<_, (String, String, i64)>(sql).bind(&ids.orders).fetch_all(&order_db).await?
    {
        if let Some(order) = state.orders.get_mut(&id) {
            order.items.push((item, qty));
        }
    }
    state.leftovers = leftovers(&order_db, &stock_db, &payment_db).await?;
    if saga::inspect::ran_on(&order_db).await? {
        state.saga_effects = Some(saga_effects(&order_db, &stock_db, &payment_db, &ids.orders, since).await?);
    }
    Ok(state)
}

/// Per batch order, the step effects in place in the stock and payment
/// databases, from the sagas started since `since`.
async fn saga_effects(
    order_db: &PgPool,
    stock_db: &PgPool,
    payment_db: &PgPool,
    orders: &[String],
    since: Option<f64>,
) -> anyhow::Result<std::collections::BTreeMap<String, (i64, i64)>> {
    let sagas = saga::inspect::sagas_of(order_db, orders, since).await?;
    let ids: Vec<uuid::Uuid> = sagas.keys().copied().collect();
    let mut effects = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for (db, is_stock) in [(stock_db, true), (payment_db, false)] {
        let applied = saga::inspect::with_effect_in_place(db, &ids).await?;
        for saga in applied {
            let Some(order) = sagas.get(&saga) else { continue };
            let entry = effects.entry(order.clone()).or_default();
            if is_stock {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    Ok(effects)
}

/// Protocol state still in flight in the stack's databases.
pub async fn pending(dbs: &Databases) -> anyhow::Result<Leftovers> {
    let (order_db, stock_db, payment_db) =
        (PgPool::connect(&dbs.order).await?, PgPool::connect(&dbs.stock).await?, PgPool::connect(&dbs.payment).await?);
    let left = leftovers(&order_db, &stock_db, &payment_db).await?;
    for pool in [order_db, stock_db, payment_db] {
        pool.close().await;
    }
    Ok(left)
}

/// Protocol state still in flight across the three databases, as each
/// protocol reads its own (`saga::inspect`, `twopc::inspect`).
async fn leftovers(order_db: &PgPool, stock_db: &PgPool, payment_db: &PgPool) -> sqlx::Result<Leftovers> {
    let saga = saga::inspect::in_flight(order_db, &[stock_db, payment_db]).await?;
    let twopc = twopc::inspect::in_flight(order_db, &[stock_db, payment_db]).await?;
    Ok(Leftovers {
        prepared_transactions: twopc.prepared,
        unfinished_decisions: twopc.unfinished_decisions,
        sagas_in_flight: saga.sagas,
        unsent_outbox: saga.unsent_outbox,
        checkouts_in_flight: 0,
    })
}

/// Checkouts still running in the order replicas at `order_urls`
/// (`GET /internal/checkouts`). A replica that refuses the connection has
/// none: a dead process runs nothing, and one that restarted starts from
/// zero. One that is reached but does not answer in time, or answers
/// anything but its count, may be running checkouts: an error, which a
/// settling loop takes as "not settled yet", never as zero.
pub async fn checkouts_in_flight(http: &reqwest::Client, order_urls: &[String]) -> anyhow::Result<i64> {
    let mut total = 0;
    for url in order_urls {
        let resp = match http.get(format!("{url}{}", crate::api::path::CHECKOUTS_IN_FLIGHT)).send().await {
            Ok(resp) => resp,
            Err(err) if err.is_connect() => continue,
            Err(err) => return Err(anyhow::Error::new(err).context(format!("asking {url} for its checkouts"))),
        };
        let body: serde_json::Value = resp
            .error_for_status()
            .with_context(|| format!("asking {url} for its checkouts"))?
            .json()
            .await
            .with_context(|| format!("reading the checkouts of {url}"))?;
        total += body["in_flight"].as_i64().with_context(|| format!("{url}: no in_flight count in {body}"))?;
    }
    Ok(total)
}

/// Waits until no protocol state is left in flight and no order replica of
/// `order_urls` runs a checkout (or `timeout` passes) and returns how long
/// that took: the time to consistency.
pub async fn settle(dbs: &Databases, order_urls: &[String], timeout: Duration) -> anyhow::Result<Settled> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    // Lazy pools, opened once: a database killed by a fault may still be in
    // crash recovery, so a failed query means "not settled yet", and the pool
    // reconnects by itself once the server is back.
    let lazy = |url: &str| {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(url)
    };
    let (order_db, stock_db, payment_db) = (lazy(&dbs.order)?, lazy(&dbs.stock)?, lazy(&dbs.payment)?);
    // Checkouts first: one that ends between the two reads has left its
    // protocol state in the databases before it stopped counting.
    let probe = || async {
        let running = checkouts_in_flight(&http, order_urls).await?;
        let mut left = leftovers(&order_db, &stock_db, &payment_db).await?;
        left.checkouts_in_flight = running;
        anyhow::Ok(left)
    };
    settle_with(probe, timeout).await
}

/// [`settle`]'s loop over any `probe` of what is left in flight.
async fn settle_with<F, Fut>(mut probe: F, timeout: Duration) -> anyhow::Result<Settled>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Leftovers>>,
{
    let started = Instant::now();
    let mut at_end_of_load = None;
    let mut last = None;
    let mut last_error = None;
    while started.elapsed() < timeout {
        match probe().await {
            Ok(left) => {
                let first = *at_end_of_load.get_or_insert(left);
                if left.is_empty() {
                    return Ok(Settled { after: started.elapsed(), at_end_of_load: first, left });
                }
                last = Some(left);
            }
            Err(err) => last_error = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match (at_end_of_load, last, last_error) {
        // Not settled in time: the verifier reports what is left.
        (Some(first), Some(left), _) => Ok(Settled { after: started.elapsed(), at_end_of_load: first, left }),
        (None, _, Some(err)) | (Some(_), None, Some(err)) => {
            Err(err.context("the databases or the order replicas stayed unreachable after the load"))
        }
        _ => anyhow::bail!("settle timeout of {timeout:?} is too short to read the databases once"),
    }
}

/// What [`settle`] found.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Time from the end of the load until no protocol state was left (or
    /// the timeout, if some stayed).
    pub after: Duration,
    /// Protocol state in flight when the load ended (first successful read).
    pub at_end_of_load: Leftovers,
    /// What the last successful read still found in flight: empty exactly
    /// when the run settled.
    pub left: Leftovers,
}

impl Settled {
    /// Whether nothing was left in flight when settling ended.
    pub fn settled(&self) -> bool {
        self.left.is_empty()
    }

    /// Carries into `state`, read from the databases after settling, the
    /// checkouts the order replicas still ran when settling ended: a 2PC
    /// checkout before its first prepare has no database state, so only this
    /// count shows it, and a verdict taken while it runs must not pass (its
    /// commit may land after the verdict). The load is over, so no checkout
    /// starts after the count: a count of 0 still holds at the final read.
    pub fn carry_into(&self, state: &mut FinalState) {
        state.leftovers.checkouts_in_flight = self.left.checkouts_in_flight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An order replica's `/internal/checkouts` that reports one checkout in
    /// flight until `busy_for` has passed, then none.
    async fn fake_order_replica(busy_for: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let started = Instant::now();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let body = format!(r#"{{"in_flight":{}}}"#, u8::from(started.elapsed() < busy_for));
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        url
    }

    /// A checkout still running in a replica (no database state yet, as a 2PC
    /// checkout before its first prepare) keeps the run from settling.
    #[tokio::test]
    async fn settling_waits_for_checkouts_running_in_the_order_replicas() {
        let urls = vec![fake_order_replica(Duration::from_millis(600)).await, "http://127.0.0.1:9".to_owned()];
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        assert_eq!(checkouts_in_flight(&http, &urls).await.unwrap(), 1, "an unreachable replica counts none");
        let probe = || async {
            let left =
                Leftovers { checkouts_in_flight: checkouts_in_flight(&http, &urls).await?, ..Leftovers::default() };
            anyhow::Ok(left)
        };
        let settled = settle_with(probe, Duration::from_secs(10)).await.unwrap();
        assert_eq!(settled.at_end_of_load.checkouts_in_flight, 1);
        assert!(settled.after >= Duration::from_millis(500), "settled after {:?}", settled.after);
        assert!(settled.settled());
    }

    /// Settling that runs out while a checkout still runs in a replica (with
    /// nothing in the databases yet) makes the verdict fail: the run is not
    /// settled, whatever the final read of the databases shows.
    #[tokio::test]
    async fn a_checkout_still_running_when_settling_gives_up_fails_the_verdict() {
        use crate::run::verify::{Initial, Violation, check};
        let probe = || async { anyhow::Ok(Leftovers { checkouts_in_flight: 1, ..Leftovers::default() }) };
        let settled = settle_with(probe, Duration::from_millis(300)).await.unwrap();
        assert!(!settled.settled());
        let mut state = FinalState::default();
        settled.carry_into(&mut state);
        let violations = check(Initial { credit: 0, stock: 0 }, &state, &Default::default());
        let left = Leftovers { checkouts_in_flight: 1, ..Leftovers::default() };
        assert_eq!(violations, vec![Violation::Unsettled(left)]);
    }

    /// A replica that is reached but does not answer its count may be running
    /// checkouts: not settled, never counted as none.
    #[tokio::test]
    async fn a_replica_that_does_not_answer_its_count_is_not_counted_as_idle() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket); // accepts, never answers
            }
        });
        let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        assert!(checkouts_in_flight(&http, &[url]).await.is_err());
    }
}
