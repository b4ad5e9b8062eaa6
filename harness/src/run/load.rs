//! The closed-loop load driver: `concurrency` clients, each sending its next
//! checkout as soon as the previous one answered, on order ids drawn from a
//! seeded RNG (so repeats of one order happen, and runs are reproducible).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// Sends `checkouts` checkouts of random orders `"0".."orders-1"` to `gateway`
/// from `concurrency` clients.
pub async fn closed_loop(
    gateway: &str,
    orders: u64,
    checkouts: u64,
    concurrency: usize,
    seed: u64,
) -> anyhow::Result<LoadResult> {
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(concurrency).timeout(Duration::from_secs(60)).build()?;
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (http, issued, gateway) = (http.clone(), issued.clone(), gateway.trim_end_matches('/').to_owned());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
                let mut seen: Vec<(String, Option<u16>, u64)> = Vec::new();
                while issued.fetch_add(1, Ordering::Relaxed) < checkouts {
                    let order = rng.random_range(0..orders).to_string();
                    let sent = Instant::now();
                    let status = http
                        .post(format!("{gateway}/orders/checkout/{order}"))
                        .send()
                        .await
                        .ok()
                        .map(|r| r.status().as_u16());
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    seen.push((order, status, micros));
                }
                seen
            })
        })
        .collect();
    let mut result = LoadResult {
        answers: HashMap::new(),
        statuses: BTreeMap::new(),
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        for (order, status, micros) in worker.await? {
            result.answers.entry(order).or_default().push(Answer::from_status(status));
            let key = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
            *result.statuses.entry(key).or_default() += 1;
            result.latency_us.saturating_record(micros);
        }
    }
    result.elapsed = started.elapsed();
    Ok(result)
}
