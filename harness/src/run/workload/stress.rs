//! `stress`: batch-initialised data (ids `"0".."n-1"`, two uniform random
//! items per order, chosen by the order service) and checkouts of the orders
//! in a drawn order, a steady share of them repeats
//! (`stationary_plan` in the parent module).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Dataset, Definition, Ids, batch_ids, seeded, stationary_plan};
use crate::api::Api;
use crate::run::RunSpec;

/// The `stress` workload.
#[derive(Debug)]
pub struct Stress;

impl Definition for Stress {
    fn name(&self) -> &'static str {
        "stress"
    }

    fn prepare<'a>(&'a self, api: &'a Api, spec: &'a RunSpec) -> BoxFuture<'a, anyhow::Result<Dataset>> {
        Box::pin(async move {
            let mut rng = seeded(api, spec).await?;
            api.batch_init_orders(spec.orders, spec.items, spec.users, spec.price).await?;
            let orders = batch_ids(spec.orders);
            let plan = stationary_plan(&mut rng, &orders, spec.checkouts)?;
            Ok(Dataset { ids: Ids::with_orders(spec, orders), plan: Arc::new(plan) })
        })
    }
}
