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
//! claim and delete of a batch) is left out, a second checkout of an order
//! whose saga is in flight returns at once (the service waits for the saga),
//! and the scratch tables start empty where the services' have accumulated
//! earlier runs' rows; the replay's pools have a connection per worker. The services are paused
//! (`SIGSTOP`) during the replay, so their idle loops take nothing from it,
//! and the replay starts no checkout after 3 s; the broker
//! keeps running (its idle load is small, and a paused broker could fence
//! itself out of its KRaft quorum).
//!
//! The SAGA's broker gets its own yardstick ([`kafka`]): a bare
//! produce-to-consume round trip and a bare throughput run with the services'
//! client settings, measured once per stack on the warm broker (its burst
//! and its topic would disturb a load right after it). A saga moves [`SAGA_MESSAGES_PER_CHECKOUT`] messages, so
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

use super::final_state::Databases;
use super::workload::Ids;
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
    /// Checkouts the replay ran: the plan, or the part of it that started
    /// within its time limit.
    pub replayed: u64,
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
    /// The bare broker, measured once per stack (SAGA; see
    /// [`crate::run::local::LocalStack::warm_up`]).
    pub kafka: Option<kafka::Bare>,
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

impl Quiet {
    /// Pauses (`SIGSTOP`) the services until the returned guard resumes them
    /// ([`Paused::resume`], or its drop on any other way out). One that cannot
    /// be signalled (down, restarting) is logged and skipped.
    async fn pause(&self) -> Paused {
        use crate::stack::supervisor::{Control, Request};
        for component in &self.services {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let control = Control::Pause { component: component.clone() };
            if self.control.send(Request { control, reply }).is_err() {
                break;
            }
            if let Ok(Err(why)) = answer.await {
                tracing::warn!(component, why, "could not pause the component for the ceiling");
            }
        }
        Paused(Some(self.clone()))
    }
}

/// Services paused for the replay; resumed when dropped.
#[derive(Debug)]
struct Paused(Option<Quiet>);

impl Paused {
    fn send_resume(quiet: &Quiet) -> Vec<tokio::sync::oneshot::Receiver<Result<u32, String>>> {
        use crate::stack::supervisor::{Control, Request};
        quiet
            .services
            .iter()
            .filter_map(|component| {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let control = Control::Resume { component: component.clone() };
                quiet.control.send(Request { control, reply }).ok().map(|()| answer)
            })
            .collect()
    }

    /// Resumes the services and waits until the supervisor has signalled them.
    async fn resume(mut self) {
        if let Some(quiet) = self.0.take() {
            for answer in Self::send_resume(&quiet) {
                let _ = answer.await;
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(quiet) = self.0.take() {
            drop(Self::send_resume(&quiet));
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
    let workers = concurrency.max(1);
    let scratch = scratch::Scratch::open(dbs, workers + 2).await?;
    scratch.copy_data(dbs, ids).await?;
    // Every connection open before the clock starts.
    scratch.connect_all(workers + 2).await?;
    let paused = match &setup.quiet {
        Some(quiet) => Some(quiet.pause().await),
        None => None,
    };
    let replayed = tokio::time::timeout(REPLAY_LIMIT * 3, replay(&scratch, plan, workers, setup.work)).await;
    scratch.close().await;
    if let Some(paused) = paused {
        paused.resume().await;
    }
    let (database_per_s, database_paid, replayed) =
        replayed.map_err(|_| anyhow::anyhow!("the replay overran {} s", (REPLAY_LIMIT * 3).as_secs()))??;
    Ok(Ceiling { database_per_s, database_paid, replayed, kafka: setup.kafka })
}

/// The longest the replay starts checkouts (the services are paused
/// meanwhile, and must be back well within their consumer session timeout of
/// 10 s): past it no new checkout starts, and the rate counts the checkouts
/// that ran. A replay still running at three times this is abandoned (its
/// tasks aborted), and the run has no ceiling.
const REPLAY_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Replays `plan` on `scratch` with `workers` concurrent checkouts; returns
/// checkouts per second, how many paid and how many ran.
async fn replay(
    scratch: &scratch::Scratch,
    plan: &[String],
    workers: usize,
    work: Work,
) -> anyhow::Result<(f64, u64, u64)> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let plan: Arc<[String]> = plan.into();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (scratch, next, done, plan) =
                (scratch.clone(), Arc::clone(&next), Arc::clone(&done), Arc::clone(&plan));
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
        })
        .collect();
    // Aborted if this future is dropped (the caller's timeout).
    let guards: Vec<AbortOnDrop> = tasks.iter().map(|t| AbortOnDrop(t.abort_handle())).collect();
    let mut paid = 0;
    for result in futures::future::join_all(tasks).await {
        paid += result??;
    }
    drop(guards);
    let ran = done.load(Ordering::Relaxed);
    Ok((ran as f64 / started.elapsed().as_secs_f64().max(1e-9), paid, ran as u64))
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        let db = Ceiling { database_per_s: 1000.0, database_paid: 1, replayed: 1, kafka: None };
        assert!((db.checkouts_per_s() - 1000.0).abs() < 1e-9);
        assert!((Ceiling { kafka: bare(2000.0), ..db }.checkouts_per_s() - 500.0).abs() < 1e-9);
        assert!((Ceiling { kafka: bare(40_000.0), ..db }.checkouts_per_s() - 1000.0).abs() < 1e-9);
        assert!((db.efficiency(250.0) - 0.25).abs() < 1e-9);
    }
}
