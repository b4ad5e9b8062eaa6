//! Raw ceilings: how fast each protocol's database work and broker could go on
//! this machine with nothing of the implementation around them, measured in
//! the same run as the protocol, at the same concurrency, over the same plan
//! of checkouts.
//!
//! The database ceiling replays the run's plan against a scratch database in
//! each of the three PostgreSQL clusters (same servers, same WAL, same disk),
//! holding a copy of the run's data: `concurrency` workers, each running one
//! checkout at a time through the protocol's own code in this process
//! (`engine.rs`: the order service's checkout, the coordinator or the
//! orchestrator, the participants with the services' resources, all with the
//! settings the stack's services run with) and nothing else — no HTTP, no
//! Kafka, no service process. What the network carried is handed over in
//! memory; what only the network and the broker do (the relay's publication
//! and delete of a batch, the consumers' offsets) is left out, and the
//! scratch tables start empty where the services' have accumulated earlier
//! runs' rows; the replay's pools have a connection per worker and two more. The services are paused
//! (`SIGSTOP`) during the replay, so their idle loops take nothing from it;
//! the replay's first second warms up and is not counted (`CEILING_WARM_UP`), and it
//! starts no checkout after 3 s more; the broker
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
//! `efficiency = throughput through the services / ceiling`, the services'
//! throughput taken over the same positions of the plan as the replay counted
//! ([`Ceiling::against`]): a plan's mix changes along it (repeats of an
//! order, answered at once, grow more frequent towards its end), so its first
//! seconds are compared with the load's own first part, not its average.

mod engine;
pub mod kafka;
mod scratch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::final_state::Databases;
use super::workload::Ids;
use crate::timeouts::{CEILING_ABANDON, CEILING_REPLAY, CEILING_WARM_UP};
pub use scratch::SCRATCH_DATABASE;

/// Commands and replies of one saga that pays: a command and a reply per step.
pub const SAGA_MESSAGES_PER_CHECKOUT: f64 = 4.0;

/// What a run's ceilings measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Ceiling {
    /// Checkouts per second of the protocol's database work alone.
    pub database_per_s: f64,
    /// Checkouts of that replay that paid (so a ceiling that only refused is
    /// visible as such).
    pub database_paid: u64,
    /// Checkouts the replay counted: those that ended after its warm-up
    /// (or the whole plan, if it ended within it).
    pub replayed: u64,
    /// The bare broker (SAGA only).
    pub kafka: Option<kafka::Bare>,
    /// The plan position of the first checkout counted: the counted ones
    /// are `first..first + replayed`.
    pub first: u64,
    /// The services' throughput over the same positions of the plan in the
    /// load that followed ([`Ceiling::against`]); `None` until then.
    pub services_per_s: Option<f64>,
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

    /// The services' throughput as a share of the ceiling: over the same
    /// checkouts of the plan as the replay counted, when known
    /// ([`Ceiling::against`]), else `throughput` (the whole load's).
    pub fn efficiency(&self, throughput: f64) -> f64 {
        self.services_per_s.unwrap_or(throughput) / self.checkouts_per_s().max(1e-9)
    }

    /// This ceiling with the throughput `load` had over the plan positions
    /// the replay counted: a plan's mix changes along it (repeats of an
    /// order, answered at once, grow more frequent towards its end), so the
    /// replay's part is compared with the same part of the load.
    pub fn against(self, load: &super::load::LoadResult) -> Self {
        let at = |p: u64| usize::try_from(p).unwrap_or(usize::MAX);
        let range = at(self.first)..at(self.first + self.replayed);
        Ceiling { services_per_s: load.throughput_over(range), ..self }
    }
}

/// The command lines of the stack's services (their first replicas), from
/// which the replay takes the protocol and every setting of it.
#[derive(Debug, Clone, Default)]
pub struct Commands {
    /// The order service's arguments.
    pub order: Vec<String>,
    /// The stock service's arguments.
    pub stock: Vec<String>,
    /// The payment service's arguments.
    pub payment: Vec<String>,
}

/// What the ceiling needs to know about the stack under test.
#[derive(Debug, Clone)]
pub struct Setup {
    /// How the services run: the protocol and its settings.
    pub commands: Commands,
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
    /// Refused by the business rules, already paid, or failed.
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
    let engine = engine::Engine::start(&scratch, &setup.commands, workers + 2).await?;
    let replayed = tokio::time::timeout(CEILING_ABANDON, replay(&engine, plan, workers)).await;
    // The services first: they must be back within their consumer session
    // timeout, however long a given-up replay takes to wind down.
    if let Some(paused) = paused {
        paused.resume().await;
    }
    engine.close().await;
    scratch.close().await;
    let Replayed { per_s: database_per_s, paid: database_paid, first, counted: replayed } =
        replayed.map_err(|_| anyhow::anyhow!("the replay overran {} s", CEILING_ABANDON.as_secs()))??;
    Ok(Ceiling { database_per_s, database_paid, replayed, kafka: setup.kafka, first, services_per_s: None })
}

/// The fewest checkouts counted after the warm-up for the count to stand
/// (else the whole replay counts): a few per worker.
fn min_counted(workers: usize) -> u64 {
    4 * workers as u64
}

/// What a replay counted, after its warm-up ([`CEILING_WARM_UP`]). The count is
/// approximate at both ends: checkouts running at the mark are counted
/// without the time they ran before it (the ceiling errs high by about
/// `workers / counted`), and their plan positions are taken to be the
/// counted number from the first one not done at the mark.
struct Replayed {
    /// Checkouts per second.
    per_s: f64,
    /// How many paid.
    paid: u64,
    /// The plan position of the first one.
    first: u64,
    /// How many: positions `first..first + counted`.
    counted: u64,
}

/// Replays `plan` through `engine` with `workers` concurrent checkouts.
async fn replay(engine: &engine::Engine, plan: &[String], workers: usize) -> anyhow::Result<Replayed> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let paid = Arc::new(AtomicU64::new(0));
    let plan: Arc<[String]> = plan.into();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (engine, next, plan) = (engine.clone(), Arc::clone(&next), Arc::clone(&plan));
            let (done, paid) = (Arc::clone(&done), Arc::clone(&paid));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(order_id) = plan.get(i) else { return anyhow::Ok(()) };
                    if started.elapsed() > CEILING_WARM_UP + CEILING_REPLAY {
                        return anyhow::Ok(());
                    }
                    if engine.checkout(order_id).await? == Ended::Paid {
                        paid.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Aborted if this future is dropped (the caller's timeout).
    let guards: Vec<AbortOnDrop> = tasks.iter().map(|t| AbortOnDrop(t.abort_handle())).collect();
    let mut all = Box::pin(futures::future::join_all(tasks));
    // The checkouts that end after the warm-up are counted; those are about
    // the positions from the next one to start after it (the ones running
    // then end soon after, and as many others are still running at the end).
    let (results, (from, done_before, paid_before)) = tokio::select! {
        biased;
        results = &mut all => (results, (started, 0, 0)),
        () = tokio::time::sleep(CEILING_WARM_UP) => {
            let mark = (Instant::now(), done.load(Ordering::Relaxed), paid.load(Ordering::Relaxed));
            (all.await, mark)
        }
    };
    for result in results {
        result??;
    }
    drop(guards);
    let (mut from, mut done_before, mut paid_before) = (from, done_before, paid_before);
    if done.load(Ordering::Relaxed) - done_before < min_counted(workers) {
        // A plan that ended just after the warm-up: its tail alone (the
        // workers running out) would say little; count it whole.
        (from, done_before, paid_before) = (started, 0, 0);
    }
    let ran = done.load(Ordering::Relaxed) - done_before;
    let paid = paid.load(Ordering::Relaxed) - paid_before;
    let first = done_before;
    Ok(Replayed { per_s: ran as f64 / from.elapsed().as_secs_f64().max(1e-9), paid, first, counted: ran })
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saga_is_bounded_by_the_slower_of_its_database_and_its_broker() {
        let bare = |messages_per_s| Some(kafka::Bare { round_trip_ms: 2.0, messages_per_s });
        let db = Ceiling {
            database_per_s: 1000.0,
            database_paid: 1,
            replayed: 1,
            kafka: None,
            first: 0,
            services_per_s: None,
        };
        assert!((db.checkouts_per_s() - 1000.0).abs() < 1e-9);
        assert!((Ceiling { kafka: bare(2000.0), ..db }.checkouts_per_s() - 500.0).abs() < 1e-9);
        assert!((Ceiling { kafka: bare(40_000.0), ..db }.checkouts_per_s() - 1000.0).abs() < 1e-9);
        assert!((db.efficiency(250.0) - 0.25).abs() < 1e-9);
        // Known over the replay's own part of the plan, that throughput wins.
        let compared = Ceiling { services_per_s: Some(500.0), ..db };
        assert!((compared.efficiency(250.0) - 0.5).abs() < 1e-9);
    }
}
