//! The data a workload runs on, and the sequence of checkouts it sends.
//!
//! `stress` uses `batch_init` (ids `"0".."n-1"`, two uniform random items per
//! order, chosen by the order service). The course consistency test and the
//! contention workloads need orders with chosen items, so they create orders
//! through the API (`create` + `addItem`), like any client would. Every choice
//! comes from one seeded RNG: the same seed gives the same orders and the
//! same checkout sequence, whichever protocol runs.

use std::sync::Arc;

use anyhow::bail;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dist::Zipf;
use super::{RunSpec, Workload};
use crate::api::Api;

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

/// A prepared run: its data and the order ids to check out, in sending order.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Everything created.
    pub ids: Ids,
    /// Order ids to check out, one per checkout (repeats included).
    pub plan: Arc<Vec<String>>,
}

fn batch_ids(n: i64) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// Creates the workload's data through the API and draws the checkout plan.
pub async fn prepare(api: &Api, spec: &RunSpec) -> anyhow::Result<Dataset> {
    api.batch_init_stock(spec.items, spec.stock, spec.price).await?;
    api.batch_init_users(spec.users, spec.credit).await?;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let ids = |orders| Ids { users: batch_ids(spec.users), items: batch_ids(spec.items), orders };
    match spec.workload {
        Workload::Stress => {
            api.batch_init_orders(spec.orders, spec.items, spec.users, spec.price).await?;
            let plan = (0..spec.checkouts).map(|_| rng.random_range(0..spec.orders).to_string()).collect();
            Ok(Dataset { ids: ids(batch_ids(spec.orders)), plan: Arc::new(plan) })
        }
        Workload::WdmConsistency => {
            let orders = create_orders(api, course_lines(spec, &mut rng), spec.concurrency).await?;
            // Every order checked out once, in the order they were created,
            // as the course script sends them.
            Ok(Dataset { ids: ids(orders.clone()), plan: Arc::new(orders) })
        }
        Workload::HotItem | Workload::Zipf => {
            let lines = contention_lines(spec, &mut rng)?;
            let orders = create_orders(api, lines, spec.concurrency).await?;
            let plan = (0..spec.checkouts).map(|_| orders[rng.random_range(0..orders.len())].clone()).collect();
            Ok(Dataset { ids: ids(orders), plan: Arc::new(plan) })
        }
    }
}

/// `(user, items)` of each order of the course test: as the course script
/// does, each order's user is drawn at random *with replacement*
/// (`random.choice`), so many users own several orders but can pay for one,
/// and each order holds one unit of a random item (of the one there is).
fn course_lines(spec: &RunSpec, rng: &mut StdRng) -> Vec<(String, Vec<String>)> {
    (0..spec.orders)
        .map(|_| {
            let user = rng.random_range(0..spec.users).to_string();
            (user, vec![rng.random_range(0..spec.items).to_string()])
        })
        .collect()
}

/// `(user, items)` of each order of a contention workload: `hot-item` puts
/// item `"0"` in a `skew` share of the orders (plus one uniform other item);
/// `zipf` draws two items per order from Zipf(`skew`).
fn contention_lines(spec: &RunSpec, rng: &mut StdRng) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    if spec.items < 2 {
        bail!("{} needs at least 2 items", spec.workload.name());
    }
    let zipf = Zipf::new(spec.items as usize, spec.skew).map_err(anyhow::Error::msg)?;
    if spec.workload == Workload::HotItem && !(0.0..=1.0).contains(&spec.skew) {
        bail!("hot-item's --skew is the share of orders with the hot item, between 0 and 1");
    }
    Ok((0..spec.orders)
        .map(|_| {
            let user = rng.random_range(0..spec.users).to_string();
            let items = match spec.workload {
                Workload::HotItem => {
                    let other = rng.random_range(1..spec.items).to_string();
                    if rng.random::<f64>() < spec.skew { vec!["0".to_owned(), other] } else { vec![other] }
                }
                _ => vec![zipf.sample(rng).to_string(), zipf.sample(rng).to_string()],
            };
            (user, items)
        })
        .collect())
}

/// Creates one order per `(user, items)` (one unit of each item), `concurrency`
/// at a time; returns the order ids in the same order.
async fn create_orders(
    api: &Api,
    lines: Vec<(String, Vec<String>)>,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let bar = super::load::progress(lines.len() as u64, "orders");
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
mod tests {
    use super::*;

    fn spec(workload: Workload, skew: f64) -> RunSpec {
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
    fn hot_item_puts_the_hot_item_in_its_share_of_orders() {
        let lines = contention_lines(&spec(Workload::HotItem, 0.25), &mut StdRng::seed_from_u64(1)).unwrap();
        let hot = lines.iter().filter(|(_, items)| items.contains(&"0".to_owned())).count();
        assert!((800..1200).contains(&hot), "{hot} of 4000 orders hold the hot item");
        for (user, items) in &lines {
            assert!(user.parse::<i64>().unwrap() < 30);
            assert!(items.iter().all(|i| i.parse::<i64>().unwrap() < 50));
        }
        assert!(contention_lines(&spec(Workload::HotItem, 1.5), &mut StdRng::seed_from_u64(1)).is_err());
    }

    #[test]
    fn zipf_orders_favour_low_ranks_and_are_reproducible() {
        let draw = |seed| contention_lines(&spec(Workload::Zipf, 1.2), &mut StdRng::seed_from_u64(seed)).unwrap();
        let lines = draw(5);
        let top = lines.iter().flat_map(|(_, items)| items).filter(|i| *i == "0").count();
        let tail = lines.iter().flat_map(|(_, items)| items).filter(|i| *i == "49").count();
        assert!(top > 10 * tail.max(1), "rank 0 drawn {top} times, rank 49 {tail} times");
        assert_eq!(draw(5), lines);
        let mut one_item = spec(Workload::Zipf, 1.0);
        one_item.items = 1;
        assert!(contention_lines(&one_item, &mut StdRng::seed_from_u64(1)).is_err());
    }

    #[test]
    fn the_course_test_draws_users_with_replacement() {
        let s = spec(Workload::WdmConsistency, 0.0).normalised();
        let lines = course_lines(&s, &mut StdRng::seed_from_u64(5));
        assert_eq!(lines.len(), 1000);
        assert!(lines.iter().all(|(_, items)| items == &["0".to_owned()]));
        let users: std::collections::BTreeSet<&String> = lines.iter().map(|(u, _)| u).collect();
        // 1000 draws out of 1000 users: about 1000 (1 - 1/e) = 632 distinct.
        assert!((580..690).contains(&users.len()), "{} distinct users", users.len());
    }

    #[test]
    fn the_course_test_has_fixed_sizes() {
        let s = spec(Workload::WdmConsistency, 0.0).normalised();
        assert_eq!((s.items, s.stock, s.price, s.users, s.credit), (1, 100, 1, 1000, 1));
        assert_eq!((s.orders, s.checkouts, s.concurrency), (1000, 1000, 100));
        let s = spec(Workload::Stress, 0.0).normalised();
        assert_eq!(s.orders, 4000, "other workloads keep their sizes");
    }
}
