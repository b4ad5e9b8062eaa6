//! The order service: orders and their lines in the service's own PostgreSQL
//! database, item prices from the stock service (cached in Redis), and checkout
//! delegated to the distributed-transaction protocol chosen at start-up.
//!
//! ```text
//!   addItem ──► price cache (Redis) ──miss──► stock service GET /stock/find
//!   checkout ──► load order ──► checkout::Checkout (saga | 2pc) ──► reply
//! ```

use std::sync::Arc;
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

    /// 2PC: deadline of one prepare call, in milliseconds; a slower participant
    /// makes the coordinator abort. Keep it above the participants' lock timeout,
    /// so a prepare queued on a hot row gets its own answer rather than a timeout.
    #[arg(long, env = "TWOPC_PREPARE_TIMEOUT_MS", default_value_t = 20_000)]
    pub prepare_timeout_ms: u64,

    /// 2PC: how long (ms) phase two is retried before the checkout answers and
    /// recovery takes over.
    #[arg(long, env = "TWOPC_PHASE_TWO_DEADLINE_MS", default_value_t = 5_000)]
    pub phase_two_deadline_ms: u64,

    /// 2PC: how often (ms) recovery finishes decided-but-unfinished transactions.
    #[arg(long, env = "TWOPC_RECOVERY_INTERVAL_MS", default_value_t = 1_000)]
    pub recovery_interval_ms: u64,

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
    let mut extra_routes = axum::Router::new();
    let mut recovery = None;
    let checkout = match config.protocol {
        ProtocolKind::TwoPc => {
            let prepare_timeout = Duration::from_millis(config.prepare_timeout_ms);
            let instance = twopc::InstanceName::sanitize(config.common.instance.as_deref().unwrap_or("order"))?;
            let coordinator = twopc::Coordinator::new(
                instance,
                pool.clone(),
                twopc::client::PeerClient::new(config.stock_urls.clone(), prepare_timeout.max(timeout))?,
                twopc::client::PeerClient::new(config.payment_urls.clone(), prepare_timeout.max(timeout))?,
                Arc::new(store.clone()),
                twopc::CoordinatorSettings {
                    prepare_timeout,
                    phase_two_deadline: Duration::from_millis(config.phase_two_deadline_ms),
                    recovery_interval: Duration::from_millis(config.recovery_interval_ms),
                },
            );
            extra_routes = service_common::twopc::coordinator_routes(coordinator.clone());
            recovery = Some(coordinator.clone());
            Checkout::two_pc(coordinator, store.clone())
        }
        ProtocolKind::Saga => Checkout::unavailable(config.protocol, store.clone()),
    };
    let state = routes::AppState { store, cache, stock, checkout, max_batch: config.max_batch };
    let app = Application::bind(config.common.listen, routes::router(state).merge(extra_routes), pool).await?;
    Ok(match recovery {
        Some(coordinator) => {
            app.with_background("2pc-coordinator-recovery", move |stop| coordinator.run_recovery(stop))
        }
        None => app,
    })
}
