//! Raw ceilings: how fast each protocol's database work and broker could go on
//! this machine with nothing of the implementation around them, measured in
//! the same run as the protocol, at the same concurrency, over the same plan
//! of checkouts.
//!
//! The database ceiling replays the run's plan against a scratch database in
//! each of the three PostgreSQL clusters (same servers, same WAL, same disk),
//! holding a copy of the run's data: `concurrency` workers, each running one
//! checkout at a time as the protocol's statements and nothing else — no
//! HTTP, no Kafka, no service process. A checkout issues the statements on
//! its critical path (the reply waits for them); bookkeeping the protocol
//! does after the reply or in batches (2PC's finished mark, the relay's
//! sent mark) is left out, so the ceiling is if anything too high. The
//! services and the broker are paused (`SIGSTOP`) during the replay, so
//! their idle loops take nothing from it, and the replay stops starting
//! checkouts after [`REPLAY_LIMIT`].
//!
//! The SAGA's broker gets its own yardstick ([`kafka`]): a bare
//! produce-to-consume round trip and a bare throughput run with the services'
//! client settings. A saga moves [`SAGA_MESSAGES_PER_CHECKOUT`] messages, so
//! its ceiling is the lower of the database ceiling and the broker's
//! messages per second divided by that.
//!
//! `efficiency = throughput through the services / ceiling`.

pub mod kafka;
mod saga_work;
mod scratch;
mod twopc_work;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use protocol_core::CheckoutRequest;
use serde::Serialize;

use super::dataset::Ids;
use super::state::Databases;
pub use scratch::SCRATCH_DATABASE;

/// Commands and replies of one saga that pays: a command and a reply per step.
pub const SAGA_MESSAGES_PER_CHECKOUT: f64 = 4.0;

/// What a run's ceilings measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ceiling {
    /// Checkouts per second of the protocol's database work alone.
    pub database_per_s: f64,
    /// Checkouts of that replay that paid (so a ceiling that only refused is
    /// visible as such).
    pub database_paid: u64,
    /// The bare broker (SAGA only).
    pub kafka: Option<kafka::Bare>,
}

impl Ceiling {
    /// The protocol's ceiling in checkouts per second: the database's, or for
    /// a SAGA the broker's if that is lower.
    pub fn checkouts_per_s(&self) -> f64 {
        match &self.kafka {
            Some(k) => self.database_per_s.min(k.messages_per_s / SAGA_MESSAGES_PER_CHECKOUT),
            None => self.database_per_s,
        }
    }

    /// `throughput` (through the services) as a share of the ceiling.
    pub fn efficiency(&self, throughput: f64) -> f64 {
        throughput / self.checkouts_per_s().max(1e-9)
    }
}

/// Which protocol's work the ceiling replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// 2PC, preparing in this order.
    TwoPc(twopc::PrepareOrder),
    /// A SAGA in this mode.
    Saga(saga::Mode),
}

/// What the ceiling needs to know about the stack under test.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The protocol's work.
    pub work: Work,
    /// The broker and the services' client settings (SAGA).
    pub kafka: Option<kafka::Target>,
    /// The stack's supervisor, to pause the services and the broker while
    /// the database work is replayed: their idle loops (consumers' fetches,
    /// relays' polls, the JVM) would take CPU from the replay.
    pub quiet: Option<Quiet>,
}

/// Pauses components through the stack's supervisor.
#[derive(Debug, Clone)]
pub struct Quiet {
    /// The supervisor's control channel.
    pub control: tokio::sync::mpsc::UnboundedSender<crate::stack::supervisor::Request>,
    /// The service replicas, as `stack.json` names them.
    pub services: Vec<String>,
}

/// The broker's name in `stack.json`.
const BROKER: &str = "kafka";

impl Quiet {
    /// Pauses (`SIGSTOP`) or resumes (`SIGCONT`) `components`; one that
    /// cannot be signalled (down, restarting) is logged and skipped.
    async fn signal(&self, components: &[String], pause: bool) {
        use crate::stack::supervisor::{Control, Request};
        for component in components {
            let control = if pause {
                Control::Pause { component: component.clone() }
            } else {
                Control::Resume { component: component.clone() }
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            if self.control.send(Request { control, reply }).is_err() {
                return;
            }
            if let Ok(Err(why)) = answer.await {
                tracing::warn!(component, why, "could not quiet the component for the ceiling");
            }
        }
    }
}

/// How one replayed checkout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Paid,
    /// Refused by the business rules, already paid, or unknown.
    NotPaid,
}

/// Measures the ceilings of `setup` over `plan`, whose data (`ids`) the
/// service databases `dbs` hold right now (they are copied, not changed),
/// with the services paused meanwhile (see [`Setup::quiet`]).
pub async fn measure(
    dbs: &Databases,
    ids: &Ids,
    plan: &[String],
    concurrency: usize,
    setup: &Setup,
) -> anyhow::Result<Ceiling> {
    let scratch = scratch::Scratch::open(dbs, concurrency + 2).await?;
    scratch.copy_data(dbs, ids).await?;
    let mut paused = setup.quiet.as_ref().map(|q| q.services.clone()).unwrap_or_default();
    paused.push(BROKER.to_owned());
    if let Some(quiet) = &setup.quiet {
        quiet.signal(&paused, true).await;
    }
    let replayed = replay(&scratch, plan, concurrency, setup.work).await;
    // Resumed together and well within the consumers' session timeout, so
    // the broker never sees a member as gone.
    if let Some(quiet) = &setup.quiet {
        quiet.signal(&paused, false).await;
    }
    scratch.close().await;
    let (database_per_s, database_paid) = replayed?;
    let kafka = match &setup.kafka {
        Some(target) => Some(kafka::measure(target).await?),
        None => None,
    };
    Ok(Ceiling { database_per_s, database_paid, kafka })
}

/// The longest the replay runs (the services are paused meanwhile, and must
/// be back well within their consumer session timeout of 10 s): past it no
/// new checkout starts, and the rate counts the checkouts that ran.
const REPLAY_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Replays `plan` on `scratch` with `concurrency` workers; returns
/// checkouts per second and how many paid.
async fn replay(
    scratch: &scratch::Scratch,
    plan: &[String],
    concurrency: usize,
    work: Work,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let plan: Arc<[String]> = plan.into();
    let workers = (0..concurrency.max(1)).map(|_| {
        let (scratch, next, done, plan) = (scratch.clone(), Arc::clone(&next), Arc::clone(&done), Arc::clone(&plan));
        tokio::spawn(async move {
            let mut paid = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(order_id) = plan.get(i) else { return anyhow::Ok(paid) };
                if started.elapsed() > REPLAY_LIMIT {
                    return anyhow::Ok(paid);
                }
                let ended = match work {
                    Work::TwoPc(order) => twopc_work::checkout(&scratch, order_id, order).await?,
                    Work::Saga(mode) => saga_work::checkout(&scratch, order_id, mode).await?,
                };
                paid += u64::from(ended == Ended::Paid);
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let mut paid = 0;
    for result in futures::future::join_all(workers).await {
        paid += result??;
    }
    Ok((done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(1e-9), paid))
}

/// Opens the order transaction as both protocols start a checkout: the
/// order's row lock, its lines read under it. `None` (transaction rolled
/// back) when there is nothing to run: no such order, paid, or empty.
async fn lock_order(
    pool: &sqlx::PgPool,
    order_id: &str,
) -> sqlx::Result<Option<(sqlx::Transaction<'static, sqlx::Postgres>, CheckoutRequest)>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = 30000").execute(&mut *tx).await?;
    let head: Option<(String, bool, i64, i64)> = sqlx::query_as(
        "SELECT user_id, paid, total_cost, (extract(epoch FROM now()) * 1000000)::bigint
         FROM orders WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, false, total_cost, as_of_us)) = head else { return Ok(None) };
    let lines: Vec<(String, i64)> =
        sqlx::query_as("SELECT item_id, quantity FROM order_items WHERE order_id = $1 ORDER BY seq")
            .bind(order_id)
            .fetch_all(&mut *tx)
            .await?;
    let Ok(items) = protocol_core::merge_items(lines) else { return Ok(None) };
    if items.is_empty() {
        return Ok(None);
    }
    let request =
        CheckoutRequest { order_id: order_id.to_owned(), user_id, items, total_cost, as_of_us: Some(as_of_us) };
    Ok(Some((tx, request)))
}

/// The stock rows of a branch or step: checked without waiting (the
/// committed stock), then taken in item order. `false`: refused (the caller
/// rolls back).
async fn take_stock(conn: &mut sqlx::PgConnection, request: &CheckoutRequest) -> sqlx::Result<bool> {
    for line in &request.items {
        let stock: Option<i64> = sqlx::query_scalar("SELECT stock FROM items WHERE item_id = $1")
            .bind(&line.item_id)
            .fetch_optional(&mut *conn)
            .await?;
        if stock.is_none_or(|s| s < line.quantity) {
            return Ok(false);
        }
    }
    for line in &request.items {
        let taken: Option<i64> = sqlx::query_scalar(
            "UPDATE items SET stock = stock - $2 WHERE item_id = $1 AND stock >= $2 RETURNING generation",
        )
        .bind(&line.item_id)
        .bind(line.quantity)
        .fetch_optional(&mut *conn)
        .await?;
        if taken.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The debit of a branch or step, checked first like [`take_stock`].
async fn debit(conn: &mut sqlx::PgConnection, request: &CheckoutRequest) -> sqlx::Result<bool> {
    let credit: Option<i64> = sqlx::query_scalar("SELECT credit FROM users WHERE user_id = $1")
        .bind(&request.user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if credit.is_none_or(|c| c < request.total_cost) {
        return Ok(false);
    }
    let paid: Option<i64> = sqlx::query_scalar(
        "UPDATE users SET credit = credit - $2 WHERE user_id = $1 AND credit >= $2 RETURNING generation",
    )
    .bind(&request.user_id)
    .bind(request.total_cost)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(paid.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saga_is_bounded_by_the_slower_of_its_database_and_its_broker() {
        let bare = |messages_per_s| Some(kafka::Bare { round_trip_ms: 2.0, messages_per_s });
        let db = Ceiling { database_per_s: 1000.0, database_paid: 1, kafka: None };
        assert!((db.checkouts_per_s() - 1000.0).abs() < 1e-9);
        assert!((Ceiling { kafka: bare(2000.0), ..db }.checkouts_per_s() - 500.0).abs() < 1e-9);
        assert!((Ceiling { kafka: bare(40_000.0), ..db }.checkouts_per_s() - 1000.0).abs() < 1e-9);
        assert!((db.efficiency(250.0) - 0.25).abs() < 1e-9);
    }
}
