//! The workloads: what data a run creates, which checkouts it sends, and
//! what it scores beyond the invariants. Each workload is one
//! [`Definition`] in its own file; [`Workload`] names them on the command
//! line, and the run ([`super::execute`]) asks the definition instead of
//! matching on the name. A new workload is a file here and a variant of
//! [`Workload`].
//!
//! Every choice comes from one RNG seeded with the run's seed, so the same
//! seed gives the same orders and the same checkout sequence, whichever
//! protocol runs. Workloads that need orders with chosen items create them
//! through the API (`create` + `addItem`), like any client would.

pub mod contention;
pub mod course;
pub mod stress;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::RunSpec;
use super::load::{self, LoadResult};
use super::verify::FinalState;
use crate::api::Api;

/// The workloads `harness run` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Batch-initialised data, checkouts of random order ids (repeats included).
    Stress,
    /// The course consistency test, as its script runs it: 1 item x 100 stock
    /// at 1, 1000 users x 1 credit, 1000 one-unit orders of users drawn with
    /// replacement, checked out at once over 100 connections, counted as the
    /// script counts ([`course`]).
    WdmConsistency,
    /// Contention on one item: a `--skew` share of the orders contain item 0.
    HotItem,
    /// Contention by popularity: order items drawn from Zipf(`--skew`).
    Zipf,
}

impl Workload {
    /// What the workload does.
    pub fn definition(self) -> &'static dyn Definition {
        match self {
            Workload::Stress => &stress::Stress,
            Workload::WdmConsistency => &course::WdmConsistency,
            Workload::HotItem => &contention::HOT_ITEM,
            Workload::Zipf => &contention::ZIPF,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        self.definition().name()
    }
}

/// A workload: its data and plan, and what the run measures and scores for
/// it. Only [`Definition::prepare`] is required; the rest says where a
/// workload differs from plain stress.
pub trait Definition: Sync {
    /// The name on the command line and in reports.
    fn name(&self) -> &'static str;

    /// Sizes the workload fixes whatever the flags say (a published test
    /// has its own), applied to `spec` before anything runs.
    fn normalise(&self, _spec: &mut RunSpec) {}

    /// Creates the data through the API and draws the checkout plan.
    fn prepare<'a>(&'a self, api: &'a Api, spec: &'a RunSpec) -> BoxFuture<'a, anyhow::Result<Dataset>>;

    /// How long a client waits for a checkout's reply.
    fn reply_timeout(&self) -> Duration {
        crate::timeouts::REPLY
    }

    /// Whether the workload contends on rows by design, so the run measures
    /// the hot row's physical limit (the WAL flush time) as its yardstick.
    fn contended(&self) -> bool {
        false
    }

    /// Whether the protocol's raw ceilings are measured on its plan (a
    /// closed-loop run's; a one-shot test has no steady state to compare).
    fn has_ceiling(&self) -> bool {
        true
    }

    /// The workload's own score, computed from what the run saw and left,
    /// the way its namesake computes it.
    fn score(&self, _spec: &RunSpec, _state: &FinalState, _load: &LoadResult) -> Option<course::CourseCounts> {
        None
    }
}

/// The ids a run created, which the verifier reads back.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    /// User ids.
    pub users: Vec<String>,
    /// Item ids.
    pub items: Vec<String>,
    /// Order ids.
    pub orders: Vec<String>,
}

impl Ids {
    /// The batch-initialised users and items of `spec`, and `orders`.
    fn with_orders(spec: &RunSpec, orders: Vec<String>) -> Ids {
        Ids { users: batch_ids(spec.users), items: batch_ids(spec.items), orders }
    }
}

/// A prepared run: its data and the order ids to check out, in sending order.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Everything created.
    pub ids: Ids,
    /// Order ids to check out, one per checkout (repeats included).
    pub plan: Arc<Vec<String>>,
}

/// Share of a plan's checkouts that check out an order the plan already
/// checked out (a client's retry, a double click): answered `already_paid`
/// after a lock and a read, or joining the checkout in flight.
pub const REPEAT_SHARE: f64 = 0.25;

/// A checkout plan of `checkouts` over `orders` whose mix does not drift:
/// each checkout repeats an order planned before with probability
/// [`REPEAT_SHARE`], and otherwise takes the next fresh order (in a drawn
/// order); once every order was planned, the rest are repeats. Drawing ids at
/// random with replacement instead makes repeats ever more frequent along
/// the plan, so a sample's second half would do less protocol work than its
/// first, and no sample would be steady state.
fn stationary_plan(rng: &mut StdRng, orders: &[String], checkouts: u64) -> anyhow::Result<Vec<String>> {
    use rand::Rng;
    use rand::seq::SliceRandom;
    anyhow::ensure!(!orders.is_empty(), "a plan needs at least one order");
    let mut fresh: Vec<usize> = (0..orders.len()).collect();
    fresh.shuffle(rng);
    let mut fresh = fresh.into_iter();
    let mut plan: Vec<String> = Vec::with_capacity(usize::try_from(checkouts).unwrap_or(0));
    for _ in 0..checkouts {
        let repeat = !plan.is_empty() && rng.random::<f64>() < REPEAT_SHARE;
        let order = match if repeat { None } else { fresh.next() } {
            Some(i) => orders[i].clone(),
            None if plan.is_empty() => orders[0].clone(),
            None => plan[rng.random_range(0..plan.len())].clone(),
        };
        plan.push(order);
    }
    Ok(plan)
}

fn batch_ids(n: i64) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// Every workload's start: the stock and the users batch-initialised, and the
/// run's RNG.
async fn seeded(api: &Api, spec: &RunSpec) -> anyhow::Result<StdRng> {
    api.batch_init_stock(spec.items, spec.stock, spec.price).await?;
    api.batch_init_users(spec.users, spec.credit).await?;
    Ok(StdRng::seed_from_u64(spec.seed))
}

/// `(user, items)` of one order to create (one unit of each item).
type Line = (String, Vec<String>);

/// Creates one order per `(user, items)` (one unit of each item), `concurrency`
/// at a time; returns the order ids in the same order.
async fn create_orders(api: &Api, lines: Vec<Line>, concurrency: usize) -> anyhow::Result<Vec<String>> {
    let bar = load::progress(lines.len() as u64, "orders");
    let created: Vec<anyhow::Result<String>> = futures::stream::iter(lines.into_iter().map(|(user, items)| {
        let bar = bar.clone();
        async move {
            let lines: Vec<(&str, i64)> = items.iter().map(|item| (item.as_str(), 1)).collect();
            let order = api.new_order(&user, &lines).await?;
            bar.inc(1);
            Ok(order)
        }
    }))
    .buffered(concurrency.clamp(1, 128))
    .collect()
    .await;
    bar.finish_and_clear();
    created.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A spec of `workload` for unit tests of the data it draws.
    pub(crate) fn spec(workload: Workload, skew: f64) -> RunSpec {
        RunSpec {
            workload,
            concurrency: 4,
            rate: None,
            skew,
            checkouts: 100,
            duration: None,
            orders: 4000,
            items: 50,
            users: 30,
            stock: 10,
            credit: 10,
            price: 1,
            seed: 1,
        }
    }

    #[test]
    fn a_stationary_plan_repeats_at_the_same_share_all_along() {
        let orders = batch_ids(10_000);
        let plan = stationary_plan(&mut StdRng::seed_from_u64(3), &orders, 8_000).unwrap();
        assert_eq!(plan, stationary_plan(&mut StdRng::seed_from_u64(3), &orders, 8_000).unwrap());
        let mut seen = std::collections::HashSet::new();
        let repeats: Vec<bool> = plan.iter().map(|o| !seen.insert(o.clone())).collect();
        for half in repeats.chunks(4_000) {
            let share = half.iter().filter(|r| **r).count() as f64 / half.len() as f64;
            assert!((share - REPEAT_SHARE).abs() < 0.03, "repeat share {share} in a half");
        }
        // Fewer orders than fresh checkouts: every order once, then repeats only.
        let few = stationary_plan(&mut StdRng::seed_from_u64(3), &batch_ids(10), 100).unwrap();
        let distinct: std::collections::HashSet<&String> = few.iter().collect();
        assert_eq!(distinct.len(), 10);
        assert!(stationary_plan(&mut StdRng::seed_from_u64(3), &[], 5).is_err());
    }

    #[test]
    fn every_workload_is_named_as_on_the_command_line() {
        use clap::ValueEnum;
        for w in Workload::value_variants() {
            let flag = w.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), w.name());
        }
    }

    #[test]
    fn only_contention_workloads_measure_the_hot_row_and_only_the_course_test_scores() {
        let contended: Vec<_> = [Workload::Stress, Workload::WdmConsistency, Workload::HotItem, Workload::Zipf]
            .into_iter()
            .filter(|w| w.definition().contended())
            .collect();
        assert_eq!(contended, [Workload::HotItem, Workload::Zipf]);
        assert!(!Workload::WdmConsistency.definition().has_ceiling());
        assert!(Workload::Stress.definition().has_ceiling());
        assert_eq!(Workload::WdmConsistency.definition().reply_timeout(), course::CLIENT_TIMEOUT);
        assert_eq!(Workload::Zipf.definition().reply_timeout(), crate::timeouts::REPLY);
    }
}
