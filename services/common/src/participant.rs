//! A participant service (stock, payment) as one piece of wiring: its command
//! line, its database, its own routes, and the side of the checkout protocol
//! chosen by `--protocol`. A new participant is one [`Spec`], one
//! [`protocol_core::Resource`] and its routes; nothing else is per service.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use clap::Parser;
use protocol_core::{ProtocolKind, Resource};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::config::CommonConfig;
use crate::server::Application;

/// What tells one participant service from another.
pub struct Spec {
    /// The service's name (`stock`, `payment`): its saga consumer group.
    pub name: &'static str,
    /// Its branch in a 2PC transaction.
    pub branch: twopc::Participant,
    /// Its step in a saga.
    pub step: saga::Step,
    /// Its business step, run by either protocol.
    pub resource: Arc<dyn Resource>,
    /// Its schema.
    pub migrator: &'static Migrator,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec").field("name", &self.name).field("step", &self.step).finish_non_exhaustive()
    }
}

/// Command line of a participant service binary.
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// Settings shared by all services.
    #[command(flatten)]
    pub common: CommonConfig,

    /// Settings of this service as a 2PC participant (`--protocol 2pc`).
    #[command(flatten)]
    pub twopc: crate::twopc_side::ParticipantConfig,

    /// Settings of this service as a saga participant (`--protocol saga`).
    #[command(flatten)]
    pub saga: crate::saga_side::SagaArgs,

    /// Deadline of one call to another service, in milliseconds.
    #[arg(long, env = "PEER_TIMEOUT_MS", default_value_t = 5_000)]
    pub peer_timeout_ms: u64,

    /// Largest `n` accepted by `batch_init`.
    #[arg(long, env = "MAX_BATCH", default_value_t = crate::params::MAX_BATCH)]
    pub max_batch: i64,
}

/// Connects to the database (running `spec`'s migrations), mounts the routes
/// `routes` builds over the pool next to the protocol's internal endpoints,
/// and binds the listener, with the protocol's background tasks attached.
///
/// # Errors
/// When the database cannot be reached, the routes cannot be built, or the
/// chosen protocol lacks its settings (2PC: `--coordinator-urls`; saga:
/// `--kafka-bootstrap`).
pub async fn build(
    spec: Spec,
    config: &Config,
    routes: impl FnOnce(&PgPool) -> anyhow::Result<Router>,
) -> anyhow::Result<Application> {
    let common = &config.common;
    let pool = crate::db::connect(&common.database_url, common.db_pool_size, spec.migrator).await?;
    let own = routes(&pool)?;
    match common.protocol {
        ProtocolKind::TwoPc => {
            let side = crate::twopc_side::Participant::new(
                spec.branch,
                &pool,
                common.db_protocol_pool_size,
                spec.resource,
                &config.twopc,
                Duration::from_millis(config.peer_timeout_ms),
            )?;
            let app = Application::bind(common.listen, side.mount(own), pool).await?;
            Ok(side.with_recovery(app))
        }
        ProtocolKind::Saga => {
            let side = crate::saga_side::Participant::new(
                spec.name,
                spec.step,
                common.instance.as_deref(),
                &pool,
                spec.resource,
                &config.saga,
            )
            .await?;
            let app = Application::bind(common.listen, side.mount(own), pool).await?;
            side.attach(app)
        }
    }
}
