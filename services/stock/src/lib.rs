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
    let mut app_routes = routes::router(state);
    let mut recovery = None;
    if !config.twopc.coordinator_urls.is_empty() {
        let coordinator = twopc::client::PeerClient::new(
            config.twopc.coordinator_urls.clone(),
            std::time::Duration::from_millis(config.peer_timeout_ms),
        )?;
        let runner = twopc::ParticipantRunner::new(
            twopc::Participant::Stock,
            pool.clone(),
            std::sync::Arc::new(StockResource),
            coordinator,
            config.twopc.settings(),
        );
        app_routes = app_routes.merge(service_common::twopc::participant_routes(runner.clone()));
        recovery = Some(runner);
    } else {
        tracing::info!("no coordinator URLs: 2PC participant endpoints disabled");
    }
    let app = Application::bind(config.common.listen, app_routes, pool).await?;
    Ok(match recovery {
        Some(runner) => app.with_background("2pc-participant-recovery", move |stop| runner.run_recovery(stop)),
        None => app,
    })
}
