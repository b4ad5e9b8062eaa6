//! `harness run`: load one protocol with a workload, verify the invariants,
//! print a summary. Exit code 0 only when every invariant held.
//!
//! ```text
//!   stack up (or --target) ─► batch_init stock, payment, orders ─► closed-loop checkouts
//!   ─► wait until no protocol state is in flight (time to consistency)
//!   ─► read final state (databases, or the API with --target) ─► verify ─► summary
//! ```

pub mod course;
pub mod dist;
pub mod faults;
pub mod load;
pub mod protocol_metrics;
pub mod state;
pub mod verify;

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use protocol_core::ProtocolKind;

use self::load::LoadResult;
use self::verify::{FinalState, Initial, OrderRow, Violation};

/// The workloads `harness run` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Batch-initialised data, checkouts of random order ids (repeats included)
    /// in a closed loop at fixed concurrency.
    Stress,
}

/// Sizes and settings of a stress run.
#[derive(Debug, Clone)]
pub struct StressSpec {
    /// Clients in the closed loop.
    pub concurrency: usize,
    /// Checkouts to send in total.
    pub checkouts: u64,
    /// Orders `"0".."orders-1"` (fewer orders than checkouts means repeats).
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
    /// Broken invariants (empty: all held).
    pub violations: Vec<Violation>,
    /// What was checked, for the summary.
    pub checked: String,
    /// The protocols' own counters, summed per service.
    pub counters: protocol_metrics::Counters,
}

/// Creates the workload's data through the API.
pub async fn initialise(http: &reqwest::Client, gateway: &str, spec: &StressSpec) -> anyhow::Result<()> {
    for path in [
        format!("/stock/batch_init/{}/{}/{}", spec.items, spec.stock, spec.price),
        format!("/payment/batch_init/{}/{}", spec.users, spec.credit),
        format!("/orders/batch_init/{}/{}/{}/{}", spec.orders, spec.items, spec.users, spec.price),
    ] {
        let resp = http.post(format!("{gateway}{path}")).send().await.with_context(|| format!("POST {path}"))?;
        if !resp.status().is_success() {
            bail!("POST {path} answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
    }
    Ok(())
}

/// Reads the final state through the public API (for `--target`, where the
/// databases are not reachable). Cannot see protocol internals.
pub async fn read_via_api(http: &reqwest::Client, gateway: &str, spec: &StressSpec) -> anyhow::Result<FinalState> {
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{gateway}{path}");
        async move {
            let value: serde_json::Value = http.get(&url).send().await?.error_for_status()?.json().await?;
            anyhow::Ok(value)
        }
    };
    let mut state = FinalState::default();
    let users: Vec<_> = futures::stream::iter((0..spec.users).map(|u| get(format!("/payment/find_user/{u}"))))
        .buffered(64)
        .collect()
        .await;
    for (u, v) in users.into_iter().enumerate() {
        state.credit.insert(u.to_string(), v?["credit"].as_i64().context("credit")?);
    }
    let items: Vec<_> =
        futures::stream::iter((0..spec.items).map(|i| get(format!("/stock/find/{i}")))).buffered(64).collect().await;
    for (i, v) in items.into_iter().enumerate() {
        state.stock.insert(i.to_string(), v?["stock"].as_i64().context("stock")?);
    }
    let orders: Vec<_> =
        futures::stream::iter((0..spec.orders).map(|o| get(format!("/orders/find/{o}")))).buffered(64).collect().await;
    for (o, v) in orders.into_iter().enumerate() {
        let v = v?;
        let items = v["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|l| Some((l[0].as_str()?.to_owned(), l[1].as_i64()?)))
            .collect();
        let row = OrderRow {
            user_id: v["user_id"].as_str().context("user_id")?.to_owned(),
            paid: v["paid"].as_bool().context("paid")?,
            total_cost: v["total_cost"].as_i64().context("total_cost")?,
            items,
        };
        state.orders.insert(o.to_string(), row);
    }
    Ok(state)
}

/// Runs the stress workload against `gateway`; `dbs` enables database-level
/// checks and the time to consistency; `replicas` (service name, base URL) are
/// asked for the protocols' counters.
pub async fn stress(
    gateway: &str,
    dbs: Option<&state::Databases>,
    replicas: &[(String, String)],
    spec: &StressSpec,
) -> anyhow::Result<RunOutcome> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    initialise(&http, gateway, spec).await?;
    tracing::info!(checkouts = spec.checkouts, concurrency = spec.concurrency, "load phase");
    let since = match dbs {
        Some(dbs) => state::now(dbs).await?,
        None => 0.0,
    };
    let load = load::closed_loop(gateway, spec.orders as u64, spec.checkouts, spec.concurrency, spec.seed).await?;
    let (settled_in, final_state) = match dbs {
        Some(dbs) => {
            let settled = state::settle(dbs, Duration::from_secs(120)).await?;
            (Some(settled), state::read(dbs, spec.users, spec.items, spec.orders, since).await?)
        }
        None => (None, read_via_api(&http, gateway, spec).await?),
    };
    let initial = Initial { credit: spec.credit, stock: spec.stock };
    let violations = verify::check(initial, &final_state, &load.answers);
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
    let counters = protocol_metrics::collect(&http, replicas).await;
    Ok(RunOutcome { load, settled_in, violations, checked, counters })
}

/// The summary table printed after a run.
pub fn summary(protocol: Option<ProtocolKind>, spec: &StressSpec, outcome: &RunOutcome) -> String {
    let h = &outcome.load.latency_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut out = String::new();
    let protocol = protocol.map_or_else(|| "target".to_owned(), |p| p.to_string());
    let _ = writeln!(
        out,
        "workload stress | protocol {protocol} | {} clients | {} checkouts over {} orders | seed {}",
        spec.concurrency, spec.checkouts, spec.orders, spec.seed
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
    if let Some(settled) = outcome.settled_in {
        let _ = writeln!(out, "settled in   {:.3} s", settled.as_secs_f64());
    }
    out.push_str(&protocol_metrics::describe(&outcome.counters));
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
