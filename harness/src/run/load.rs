//! The load drivers. Both send a precomputed plan of checkouts (order ids in
//! sending order, drawn from the run's seed, so every protocol gets the same
//! sequence):
//!
//! - closed loop: `concurrency` clients, each sending its next checkout as soon
//!   as its previous one answered;
//! - open loop: checkout `i` starts at `start + i / rate` whether or not earlier
//!   ones answered, and its latency is measured from that scheduled time, so a
//!   system that falls behind shows its queueing in the latency instead of
//!   silently lowering the offered load (coordinated omission).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::verify::Answer;

/// What one run of the driver saw.
#[derive(Debug)]
pub struct LoadResult {
    /// Answers per order id.
    pub answers: HashMap<String, Vec<Answer>>,
    /// Replies per status (`"200"`, `"400"`, `"503"`, `"error"`).
    pub statuses: BTreeMap<String, u64>,
    /// Latency of every checkout to its reply, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Wall time of the load phase.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Checkouts answered per second.
    pub fn throughput(&self) -> f64 {
        self.latency_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(concurrency).timeout(Duration::from_secs(60)).build()?)
}

async fn checkout(http: &reqwest::Client, gateway: &str, order: &str) -> Option<u16> {
    http.post(format!("{gateway}/orders/checkout/{order}")).send().await.ok().map(|r| r.status().as_u16())
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Sends every checkout of `plan` from `concurrency` clients in a closed loop.
pub async fn closed_loop(gateway: &str, plan: Arc<Vec<String>>, concurrency: usize) -> anyhow::Result<LoadResult> {
    let http = client(concurrency)?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (http, next, plan, gateway) =
                (http.clone(), next.clone(), plan.clone(), gateway.trim_end_matches('/').to_owned());
            tokio::spawn(async move {
                let mut seen: Vec<(String, Option<u16>, u64)> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(order) = plan.get(i) else { break };
                    let sent = Instant::now();
                    let status = checkout(&http, &gateway, order).await;
                    seen.push((order.clone(), status, micros(sent)));
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for worker in workers {
        seen.extend(worker.await?);
    }
    collect(seen, started.elapsed())
}

/// Starts the checkouts of `plan` at `rate` per second, each in its own task.
pub async fn open_loop(gateway: &str, plan: Arc<Vec<String>>, rate: f64) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of checkouts per second");
    let http = client(256)?;
    let started = Instant::now();
    let gateway = gateway.trim_end_matches('/').to_owned();
    let mut tasks = Vec::with_capacity(plan.len());
    for (i, order) in plan.iter().enumerate() {
        let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (http, gateway, order) = (http.clone(), gateway.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let status = checkout(&http, &gateway, &order).await;
            (order, status, micros(scheduled))
        }));
    }
    let mut seen = Vec::with_capacity(tasks.len());
    for task in tasks {
        seen.push(task.await?);
    }
    collect(seen, started.elapsed())
}

fn collect(seen: Vec<(String, Option<u16>, u64)>, elapsed: Duration) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult {
        answers: HashMap::new(),
        statuses: BTreeMap::new(),
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        elapsed,
    };
    for (order, status, micros) in seen {
        result.answers.entry(order).or_default().push(Answer::from_status(status));
        let key = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        *result.statuses.entry(key).or_default() += 1;
        result.latency_us.saturating_record(micros);
    }
    Ok(result)
}
