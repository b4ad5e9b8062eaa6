//! The stock service: items with a stock count and a price, each item a row in
//! the service's own PostgreSQL database.
//!
//! Every stock change is one conditional `UPDATE` (`stock >= amount` in the
//! `WHERE`), so concurrent subtractions serialise on the row lock and can never
//! drive stock below zero or lose an update; the `CHECK (stock >= 0)` constraint
//! backs that up.

use std::sync::Arc;

use service_common::participant::Spec;
use service_common::price_cache::PriceCache;
use service_common::server::Application;

mod participant;
mod routes;
mod store;

pub use participant::StockResource;
pub use service_common::participant::Config;
pub use store::Store;

/// Embedded schema migrations (the service's own tables; each protocol
/// installs its own when the service starts with it).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What the stock service is to the protocols.
pub fn spec() -> Spec {
    Spec {
        name: "stock",
        branch: twopc::ParticipantId::Stock,
        step: saga::Step::ReserveStock,
        resource: Arc::new(StockResource),
        migrator: &MIGRATOR,
    }
}

/// Connects to the database and Redis, runs migrations and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let max_batch = config.max_batch;
    service_common::participant::build(spec(), &config, |pool| {
        let cache = PriceCache::new(config.common.redis_url.as_deref())?;
        Ok(routes::router(routes::AppState { store: Store::new(pool.clone()), cache, max_batch }))
    })
    .await
}
