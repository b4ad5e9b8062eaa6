//! The stock service: items with a stock count and a price, each item a row in
//! the service's own PostgreSQL database.
//!
//! Every stock change is one conditional `UPDATE` (`stock >= amount` in the
//! `WHERE`), so concurrent subtractions serialise on the row lock and can never
//! drive stock below zero or lose an update; the `CHECK (stock >= 0)` constraint
//! backs that up.

use clap::Parser;
use service_common::config::CommonConfig;
use service_common::price_cache::PriceCache;
use service_common::server::Application;

mod participant;
mod routes;
mod store;

pub use participant::StockResource;

pub use store::Store;

/// Embedded schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Configuration of the stock service binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "stock-service", about = "Stock service of the checkout benchmark")]
pub struct Config {
    /// Settings shared by all services.
    #[command(flatten)]
    pub common: CommonConfig,

    /// Settings of this service as a 2PC participant.
    #[command(flatten)]
    pub twopc: service_common::twopc::ParticipantConfig,

    /// Settings of this service as a saga participant.
    #[command(flatten)]
    pub saga: service_common::saga::SagaArgs,

    /// Deadline of one call to another service, in milliseconds.
    #[arg(long, env = "PEER_TIMEOUT_MS", default_value_t = 5_000)]
    pub peer_timeout_ms: u64,

    /// Largest `n` accepted by `batch_init`.
    #[arg(long, env = "MAX_BATCH", default_value_t = service_common::params::MAX_BATCH)]
    pub max_batch: i64,
}

/// Connects to the database and Redis, runs migrations and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let pool = service_common::db::connect(&config.common.database_url, config.common.db_pool_size, &MIGRATOR).await?;
    let cache = PriceCache::new(config.common.redis_url.as_deref())?;
    let state = routes::AppState { store: Store::new(pool.clone()), cache, max_batch: config.max_batch };
    let participant = service_common::twopc::Participant::new(
        twopc::Participant::Stock,
        &pool,
        config.common.db_protocol_pool_size,
        std::sync::Arc::new(StockResource),
        &config.twopc,
        std::time::Duration::from_millis(config.peer_timeout_ms),
    )?;
    let step = saga::Step::ReserveStock;
    let saga_side = service_common::saga::Participant::new(
        "stock",
        step,
        config.common.instance.as_deref(),
        &pool,
        std::sync::Arc::new(StockResource),
        &config.saga,
    )
    .await?;
    let routes = saga_side.mount(participant.mount(routes::router(state)), step);
    let app = Application::bind(config.common.listen, routes, pool).await?;
    saga_side.attach(participant.with_recovery(app), step)
}
