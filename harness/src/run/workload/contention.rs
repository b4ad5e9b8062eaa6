//! The contention workloads, on orders created through the API: `hot-item`
//! puts item `"0"` in a `--skew` share of the orders (plus one uniform other
//! item); `zipf` draws two items per order from Zipf(`--skew`). Checkouts are
//! of orders drawn uniformly, repeats included.

use std::sync::Arc;

use anyhow::bail;
use futures::future::BoxFuture;
use rand::Rng;
use rand::rngs::StdRng;

use super::{Dataset, Definition, Ids, Line, create_orders, seeded, stationary_plan};
use crate::api::Api;
use crate::run::RunSpec;
use crate::run::dist::Zipf as ZipfDist;

/// A contention workload: how it fills an order is its only difference.
#[derive(Debug)]
pub struct Contention(Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HotItem,
    Zipf,
}

/// The `hot-item` workload.
pub const HOT_ITEM: Contention = Contention(Kind::HotItem);

/// The `zipf` workload.
pub const ZIPF: Contention = Contention(Kind::Zipf);

impl Definition for Contention {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::HotItem => "hot-item",
            Kind::Zipf => "zipf",
        }
    }

    fn prepare<'a>(&'a self, api: &'a Api, spec: &'a RunSpec) -> BoxFuture<'a, anyhow::Result<Dataset>> {
        Box::pin(async move {
            let mut rng = seeded(api, spec).await?;
            let lines = self.lines(spec, &mut rng)?;
            let orders = create_orders(api, lines, spec.concurrency).await?;
            let plan = stationary_plan(&mut rng, &orders, spec.checkouts)?;
            Ok(Dataset { ids: Ids::with_orders(spec, orders), plan: Arc::new(plan) })
        })
    }

    fn contended(&self) -> bool {
        true
    }
}

impl Contention {
    /// `(user, items)` of each order: a user drawn uniformly, then its items
    /// (hot-item: the hot item `"0"` in a `skew` share of orders, plus one
    /// uniform other item; zipf: two items drawn from Zipf(`skew`)).
    fn lines(&self, spec: &RunSpec, rng: &mut StdRng) -> anyhow::Result<Vec<Line>> {
        if spec.items < 2 {
            bail!("{} needs at least 2 items", self.name());
        }
        let zipf = ZipfDist::new(spec.items as usize, spec.skew).map_err(anyhow::Error::msg)?;
        if self.0 == Kind::HotItem && !(0.0..=1.0).contains(&spec.skew) {
            bail!("hot-item's --skew is the share of orders with the hot item, between 0 and 1");
        }
        Ok((0..spec.orders)
            .map(|_| {
                let user = rng.random_range(0..spec.users).to_string();
                let items = match self.0 {
                    Kind::HotItem => {
                        let other = rng.random_range(1..spec.items).to_string();
                        if rng.random::<f64>() < spec.skew { vec!["0".to_owned(), other] } else { vec![other] }
                    }
                    Kind::Zipf => vec![zipf.sample(rng).to_string(), zipf.sample(rng).to_string()],
                };
                (user, items)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::run::workload::Workload;
    use crate::run::workload::tests::spec;

    #[test]
    fn hot_item_puts_the_hot_item_in_its_share_of_orders() {
        let drawn = HOT_ITEM.lines(&spec(Workload::HotItem, 0.25), &mut StdRng::seed_from_u64(1)).unwrap();
        let hot = drawn.iter().filter(|(_, items)| items.contains(&"0".to_owned())).count();
        assert!((800..1200).contains(&hot), "{hot} of 4000 orders hold the hot item");
        for (user, items) in &drawn {
            assert!(user.parse::<i64>().unwrap() < 30);
            assert!(items.iter().all(|i| i.parse::<i64>().unwrap() < 50));
        }
        assert!(HOT_ITEM.lines(&spec(Workload::HotItem, 1.5), &mut StdRng::seed_from_u64(1)).is_err());
    }

    #[test]
    fn zipf_orders_favour_low_ranks_and_are_reproducible() {
        let draw = |seed| ZIPF.lines(&spec(Workload::Zipf, 1.2), &mut StdRng::seed_from_u64(seed)).unwrap();
        let drawn = draw(5);
        let top = drawn.iter().flat_map(|(_, items)| items).filter(|i| *i == "0").count();
        let tail = drawn.iter().flat_map(|(_, items)| items).filter(|i| *i == "49").count();
        assert!(top > 10 * tail.max(1), "rank 0 drawn {top} times, rank 49 {tail} times");
        assert_eq!(draw(5), drawn);
        let mut one_item = spec(Workload::Zipf, 1.0);
        one_item.items = 1;
        assert!(ZIPF.lines(&one_item, &mut StdRng::seed_from_u64(1)).is_err());
    }
}
