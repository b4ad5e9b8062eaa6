//! The order service: orders and their lines in the service's own PostgreSQL
//! database, item prices from the stock service (cached in Redis), and checkout
//! delegated to the distributed-transaction protocol chosen at start-up.
//!
//! ```text
//!   addItem ──► price cache (Redis) ──miss──► stock service GET /stock/find
//!   checkout ──► load order ──► checkout::Checkout (saga | 2pc) ──► reply
//! ```

use std::time::Duration;

use clap::Parser;
use protocol_core::ProtocolKind;
use service_common::config::CommonConfig;
use service_common::price_cache::PriceCache;
use service_common::server::Application;

mod checkout;
mod routes;
mod stock_client;
mod store;

pub use checkout::Checkout;
pub use stock_client::StockClient;
pub use store::{Order, Store};

/// Embedded schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Configuration of the order service binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "order-service", about = "Order service of the checkout benchmark")]
pub struct Config {
    /// Settings shared by all services.
    #[command(flatten)]
    pub common: CommonConfig,

    /// Distributed-transaction protocol used by checkout: `saga` or `2pc`.
    #[arg(long, env = "PROTOCOL", value_parser = parse_protocol)]
    pub protocol: ProtocolKind,

    /// Base URLs of the stock service replicas (comma-separated), used round-robin.
    #[arg(long, env = "STOCK_URLS", value_delimiter = ',', required = true)]
    pub stock_urls: Vec<String>,

    /// Base URLs of the payment service replicas (comma-separated), used round-robin.
    #[arg(long, env = "PAYMENT_URLS", value_delimiter = ',', required = true)]
    pub payment_urls: Vec<String>,

    /// Deadline for one call to another service, in milliseconds.
    #[arg(long, env = "PEER_TIMEOUT_MS", default_value_t = 5_000)]
    pub peer_timeout_ms: u64,

    /// Largest `n` accepted by `batch_init`.
    #[arg(long, env = "MAX_BATCH", default_value_t = service_common::params::MAX_BATCH)]
    pub max_batch: i64,
}

fn parse_protocol(raw: &str) -> Result<ProtocolKind, String> {
    raw.parse().map_err(|err: protocol_core::UnknownProtocol| err.to_string())
}

/// Connects to the database and Redis, runs migrations and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let pool = service_common::db::connect(&config.common.database_url, config.common.db_pool_size, &MIGRATOR).await?;
    let cache = PriceCache::new(config.common.redis_url.as_deref())?;
    let timeout = Duration::from_millis(config.peer_timeout_ms);
    let stock = StockClient::new(config.stock_urls.clone(), timeout)?;
    let store = Store::new(pool.clone());
    let checkout = Checkout::new(config.protocol, store.clone());
    let state = routes::AppState { store, cache, stock, checkout, max_batch: config.max_batch };
    Application::bind(config.common.listen, routes::router(state), pool).await
}
