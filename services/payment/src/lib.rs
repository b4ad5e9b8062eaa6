//! The payment service: users with a credit balance, each user a row in the
//! service's own PostgreSQL database.
//!
//! Payments are single conditional `UPDATE`s (see `service_common::counter`), so
//! concurrent payments by one user can never overdraw or lose an update.

use clap::Parser;
use service_common::config::CommonConfig;
use service_common::server::Application;

mod participant;
mod routes;
mod store;

pub use participant::PaymentResource;

pub use store::Store;

/// Embedded schema migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Configuration of the payment service binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "payment-service", about = "Payment service of the checkout benchmark")]
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

/// Connects to the database, runs migrations and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let pool = service_common::db::connect(&config.common.database_url, config.common.db_pool_size, &MIGRATOR).await?;
    let state = routes::AppState { store: Store::new(pool.clone()), max_batch: config.max_batch };
    let participant = service_common::twopc::Participant::new(
        twopc::Participant::Payment,
        &pool,
        config.common.db_protocol_pool_size,
        std::sync::Arc::new(PaymentResource),
        &config.twopc,
        std::time::Duration::from_millis(config.peer_timeout_ms),
    )?;
    let step = saga::Step::DebitCredit;
    let saga_side = service_common::saga::Participant::new(
        "payment",
        step,
        config.common.instance.as_deref(),
        &pool,
        std::sync::Arc::new(PaymentResource),
        &config.saga,
    )
    .await?;
    let routes = saga_side.mount(participant.mount(routes::router(state)), step);
    let app = Application::bind(config.common.listen, routes, pool).await?;
    saga_side.attach(participant.with_recovery(app), step)
}
