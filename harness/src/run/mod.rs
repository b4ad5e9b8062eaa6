//! `harness run`: load one protocol with a workload, verify the invariants,
//! print a summary. Exit code 0 only when every invariant held.
//!
//! ```text
//!   stack up (or --target) ─► batch_init stock, payment, orders ─► closed-loop checkouts
//!   ─► wait until no protocol state is in flight (time to consistency)
//!   ─► read final state (databases, or the API with --target) ─► verify ─► summary
//! ```

pub mod breakdown;
pub mod ceiling;
pub mod dist;
pub mod faults;
pub mod final_state;
pub mod inject;
pub mod load;
pub mod local;
pub mod physical;
pub mod protocol_metrics;
pub mod resources;
pub mod verify;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use protocol_core::ProtocolKind;

use self::load::LoadResult;
use self::verify::{FinalState, Initial, Violation};
pub use self::workload::Workload;
use self::workload::course;
use crate::api::Api;
use crate::timeouts;

/// Connections an open loop keeps open for reuse (its checkouts in flight
/// are as many as the system's pace makes them).
const OPEN_LOOP_IDLE: usize = 256;

/// Sizes and settings of a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunSpec {
    /// Which workload.
    pub workload: Workload,
    /// Clients in the closed loop (and connections while creating data).
    pub concurrency: usize,
    /// Open loop: checkouts started per second, whatever the replies' pace
    /// (`None`: closed loop).
    pub rate: Option<f64>,
    /// Skew of the contention workloads (hot-item: share of orders with the hot
    /// item; zipf: exponent).
    pub skew: f64,
    /// Checkouts to send in total (with `duration`: the length of the plan,
    /// which the load cycles through).
    pub checkouts: u64,
    /// Load for this long instead of sending `checkouts` once: a closed loop
    /// stops starting checkouts at the deadline, an open loop starts
    /// `rate x duration` of them.
    pub duration: Option<Duration>,
    /// Orders (fewer orders than checkouts means repeats).
    pub orders: i64,
    /// Items `"0".."items-1"`.
    pub items: i64,
    /// Users `"0".."users-1"`.
    pub users: i64,
    /// Starting stock of every item.
    pub stock: i64,
    /// Starting credit of every user.
    pub credit: i64,
    /// Price of every item.
    pub price: i64,
    /// Seed of the order-id choices.
    pub seed: u64,
}

/// What a run measured and found.
#[derive(Debug)]
pub struct RunOutcome {
    /// The load phase.
    pub load: LoadResult,
    /// Time from the last reply until no protocol state was in flight.
    pub settled_in: Option<Duration>,
    /// Protocol state in flight when the load ended (in-doubt prepared
    /// transactions, running sagas, unsent messages).
    pub in_flight_at_end: Option<verify::Leftovers>,
    /// The faults injected during the load, with their times.
    pub faults: Vec<inject::FaultEvent>,
    /// CPU and memory per component during the load (local stack only).
    pub resources: BTreeMap<String, resources::Usage>,
    /// Broken invariants (empty: all held).
    pub violations: Vec<Violation>,
    /// What was checked, for the summary.
    pub checked: String,
    /// The protocols' own counters, summed per service.
    pub counters: protocol_metrics::Counters,
    /// `wdm-consistency` only: the course script's four numbers.
    pub course: Option<course::CourseCounts>,
    /// Contention workloads on the local stack: the stock database's WAL
    /// flush time, measured before the load (the hot row's physical limit).
    pub wal_flush: Option<physical::WalFlush>,
    /// Closed-loop stress and contention runs on the local stack: the
    /// protocol's raw ceilings, measured over the run's plan before the load.
    pub ceiling: Option<ceiling::Ceiling>,
    /// Where the median checkout's time went (local stack).
    pub breakdown: Option<breakdown::Breakdown>,
}

impl RunSpec {
    /// The spec with the sizes its workload fixes (a published test has its
    /// own); other workloads take the given ones.
    pub fn normalised(mut self) -> Self {
        self.workload.definition().normalise(&mut self);
        self
    }
}

/// Reads the final state through the public API (for `--target`, where the
/// databases are not reachable). Cannot see protocol internals.
pub async fn read_via_api(api: &Api, ids: &workload::Ids) -> anyhow::Result<FinalState> {
    const IN_FLIGHT: usize = 64;
    let mut state = FinalState::default();
    let credit: Vec<_> =
        futures::stream::iter(ids.users.iter().map(|u| api.credit_of(u))).buffered(IN_FLIGHT).collect().await;
    for (u, credit) in ids.users.iter().zip(credit) {
        state.credit.insert(u.clone(), credit?);
    }
    let stock: Vec<_> =
        futures::stream::iter(ids.items.iter().map(|i| api.stock_of(i))).buffered(IN_FLIGHT).collect().await;
    for (i, stock) in ids.items.iter().zip(stock) {
        state.stock.insert(i.clone(), stock?);
    }
    let orders: Vec<_> =
        futures::stream::iter(ids.orders.iter().map(|o| api.order(o))).buffered(IN_FLIGHT).collect().await;
    for (o, row) in ids.orders.iter().zip(orders) {
        state.orders.insert(o.clone(), row?);
    }
    Ok(state)
}

/// What `execute` can do besides driving the API, when it runs the local stack.
#[derive(Debug, Default)]
pub struct Extras {
    /// Injects the run's fault schedule, its clock starting with the load.
    pub injector: Option<inject::Injector>,
    /// `stack.json` of the stack, to sample its processes' CPU and memory.
    pub state_file: Option<PathBuf>,
    /// The protocol under test, for its raw ceilings.
    pub ceiling: Option<ceiling::Setup>,
}

/// Runs the workload against `gateway`; `dbs` enables database-level checks
/// and the time to consistency; `replicas` (service name, base URL) are asked
/// for the protocols' counters.
pub async fn execute(
    gateway: &str,
    dbs: Option<&final_state::Databases>,
    replicas: &[(String, String)],
    spec: &RunSpec,
    extras: Extras,
) -> anyhow::Result<RunOutcome> {
    let http = reqwest::Client::builder().timeout(timeouts::ADMIN_CALL).build()?;
    let api = Api::new(gateway, timeouts::ADMIN_CALL, spec.concurrency)?;
    let workload = spec.workload.definition();
    let data = workload.prepare(&api, spec).await?;
    tracing::info!(workload = spec.workload.name(), checkouts = data.plan.len(), "load phase");
    let since = match dbs {
        Some(dbs) => final_state::now(dbs).await?,
        None => 0.0,
    };
    let wal_flush = match dbs {
        Some(dbs) if workload.contended() => {
            let pool = sqlx::PgPool::connect(&dbs.stock).await?;
            let measured = physical::measure(&pool, 100).await;
            pool.close().await;
            // A yardstick, not part of the verdict: a cluster that refuses the
            // probe still gets its run.
            measured.inspect_err(|err| tracing::warn!(error = %err, "could not measure the WAL flush time")).ok()
        }
        _ => None,
    };
    let ceiling = match (dbs, &extras.ceiling) {
        (Some(dbs), Some(setup)) if spec.rate.is_none() && workload.has_ceiling() => {
            let measured = ceiling::measure(dbs, &data.ids, &data.plan, spec.concurrency, setup).await;
            measured
                .inspect_err(|err| tracing::warn!(error = format!("{err:#}"), "could not measure the raw ceilings"))
                .ok()
        }
        _ => None,
    };
    let counters_before = protocol_metrics::collect(&http, replicas).await;
    // Spans of the data set-up and the ceilings are not the load's.
    drop(breakdown::drain(&http, replicas).await);
    let sampler = extras.state_file.map(resources::Sampler::start);
    let faults = extras.injector.map(|injector| injector.start(Instant::now()));
    let load = match spec.rate {
        Some(rate) => {
            let api = Api::new(gateway, timeouts::REPLY, OPEN_LOOP_IDLE)?;
            load::open_loop(&api, Arc::clone(&data.plan), rate, spec.duration).await?
        }
        None => {
            let api = Api::new(gateway, workload.reply_timeout(), spec.concurrency)?;
            load::closed_loop(&api, Arc::clone(&data.plan), spec.concurrency, spec.duration).await?
        }
    };
    let resources = match sampler {
        Some(sampler) => sampler.finish().await,
        None => BTreeMap::new(),
    };
    // After the sampler: serialising the span logs is not the load's CPU.
    // Closed loop only: an open loop's latency starts at the scheduled time,
    // which no span can cut.
    let spans = breakdown::drain(&http, replicas).await;
    let breakdown = if spec.rate.is_none() { breakdown::of(&load, spans) } else { None };
    // A fault scheduled after the last reply still happens (a pause ends,
    // a kill restarts) before the state is judged.
    let faults = match faults {
        Some(task) => task.await.context("the fault injector panicked")?,
        None => Vec::new(),
    };
    let (settled, final_state) = match dbs {
        Some(dbs) => {
            let order_urls: Vec<String> =
                replicas.iter().filter(|(service, _)| service == "order").map(|(_, url)| url.clone()).collect();
            let settled = final_state::settle(dbs, &order_urls, timeouts::SETTLE).await?;
            let mut state = final_state::read_stable(dbs, &data.ids, Some(since)).await?;
            settled.carry_into(&mut state);
            (Some(settled), state)
        }
        None => (None, read_via_api(&api, &data.ids).await?),
    };
    let initial = Initial { credit: spec.credit, stock: spec.stock };
    let violations = verify::check(initial, &final_state, &load.answers);
    let course = workload.score(spec, &final_state, &load);
    let checked = format!(
        "credit of {} users, stock of {} items, {} orders ({} paid){}",
        final_state.credit.len(),
        final_state.stock.len(),
        final_state.orders.len(),
        final_state.orders.values().filter(|o| o.paid).count(),
        match (dbs, &final_state.saga_effects) {
            (Some(_), Some(_)) => ", one effect per saga step, no saga in flight or unsent outbox row",
            (Some(_), None) => ", no prepared transactions or unfinished decisions",
            (None, _) => " (API level only)",
        }
    );
    let counters = protocol_metrics::since(&protocol_metrics::collect(&http, replicas).await, &counters_before);
    let ceiling = ceiling.map(|c| c.against(&load));
    Ok(RunOutcome {
        load,
        settled_in: settled.map(|s| s.after),
        in_flight_at_end: settled.map(|s| s.at_end_of_load),
        faults,
        resources,
        violations,
        checked,
        counters,
        course,
        wal_flush,
        ceiling,
        breakdown,
    })
}

/// How a run names what it drove: the protocol of the local stack, or
/// `target` for a system at `--target`, whose protocol the harness does not
/// know.
pub fn driven(protocol: Option<ProtocolKind>) -> String {
    protocol.map_or_else(|| "target".to_owned(), |p| p.to_string())
}

/// The summary table printed after a run.
pub fn summary(protocol: Option<ProtocolKind>, spec: &RunSpec, outcome: &RunOutcome) -> String {
    let h = &outcome.load.latency_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut out = String::new();
    let protocol = driven(protocol);
    let _ = writeln!(
        out,
        "workload {} | protocol {protocol} | {} | {} over {} orders | seed {}",
        spec.workload.name(),
        match spec.rate {
            Some(rate) => format!("open loop at {rate}/s"),
            None => format!("{} clients", spec.concurrency),
        },
        match spec.duration {
            Some(d) => format!("{} s of checkouts", d.as_secs_f64()),
            None => format!("{} checkouts", spec.checkouts),
        },
        spec.orders,
        spec.seed
    );
    let _ = writeln!(
        out,
        "throughput   {:.1} checkouts/s (elapsed {:.2} s)",
        outcome.load.throughput(),
        outcome.load.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "latency ms   p50 {:.2} | p90 {:.2} | p99 {:.2} | p99.9 {:.2} | max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    let statuses: Vec<String> = outcome.load.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(out, "replies      {}", statuses.join(" | "));
    if !outcome.load.aborts.is_empty() {
        let aborts: Vec<String> = outcome.load.aborts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "not paid     {}", aborts.join(" | "));
    }
    for event in &outcome.faults {
        let _ = writeln!(out, "fault        {:>6.2} s  {} ({})", event.at_s, event.what, event.outcome);
    }
    if let Some(settled) = outcome.settled_in {
        let left = outcome.in_flight_at_end.unwrap_or_default();
        let _ = writeln!(
            out,
            "settled in   {:.3} s (in flight at the end of the load: {} prepared, {} undecided, {} sagas, {} unsent, {} checkouts)",
            settled.as_secs_f64(),
            left.prepared_transactions,
            left.unfinished_decisions,
            left.sagas_in_flight,
            left.unsent_outbox,
            left.checkouts_in_flight
        );
    }
    if !outcome.resources.is_empty() {
        let usage: Vec<String> = outcome
            .resources
            .iter()
            .map(|(name, u)| format!("{name} {:.0}% {:.0} MiB", u.cpu_percent, u.peak_rss_mib))
            .collect();
        let _ = writeln!(out, "cpu, peak rss {}", usage.join(" | "));
    }
    out.push_str(&protocol_metrics::describe(&outcome.counters));
    if let Some(w) = &outcome.wal_flush {
        let _ = writeln!(
            out,
            "wal flush    {:.2} ms on the stock database (commit {:.2} ms, round trip {:.2} ms): one hot row commits \
             at most {:.0}/s over 2PC, {:.0}/s over a saga",
            w.flush_ms(),
            w.commit_ms,
            w.round_trip_ms,
            w.hot_row_bound(physical::TWOPC_FLUSHES_UNDER_THE_LOCK),
            w.hot_row_bound(physical::SAGA_FLUSHES_UNDER_THE_LOCK)
        );
    }
    if let Some(c) = &outcome.ceiling {
        let _ = write!(
            out,
            "ceiling      {:.0} checkouts/s of the protocol's code without the network ({} replayed, {} paid)",
            c.database_per_s, c.replayed, c.database_paid
        );
        if let Some(k) = &c.kafka {
            let _ = write!(
                out,
                "; bare Kafka {:.2} ms round trip, {:.0} messages/s ({:.0} checkouts/s)",
                k.round_trip_ms,
                k.messages_per_s,
                k.messages_per_s / ceiling::SAGA_MESSAGES_PER_CHECKOUT
            );
        }
        let over = if c.services_per_s.is_some() { "over the same checkouts" } else { "over the whole load" };
        let _ = writeln!(out, ": efficiency {:.2} ({over})", c.efficiency(outcome.load.throughput()));
    }
    if let Some(b) = &outcome.breakdown {
        let parts: Vec<String> = breakdown::Breakdown::order()
            .into_iter()
            .filter_map(|name| Some(format!("{name} {:.2}", b.ms.get(name).filter(|ms| **ms > 0.0)?)))
            .collect();
        let _ = writeln!(
            out,
            "median ms    {:.2} over {} checkouts ({:.0}% attributed{}): {}",
            b.total_ms,
            b.checkouts,
            100.0 * b.attributed(),
            if b.without_spans + b.dropped as usize > 0 {
                format!("; {} checkouts without spans left out, {} spans dropped", b.without_spans, b.dropped)
            } else {
                String::new()
            },
            parts.join(" | ")
        );
    }
    if let Some(course) = &outcome.course {
        let _ = writeln!(out, "{course}");
    }
    if outcome.violations.is_empty() {
        let _ = writeln!(out, "invariants   OK: {}", outcome.checked);
    } else {
        let _ = writeln!(out, "invariants   {} VIOLATIONS ({})", outcome.violations.len(), outcome.checked);
        for v in outcome.violations.iter().take(20) {
            let _ = writeln!(out, "  {v:?}");
        }
    }
    out
}
