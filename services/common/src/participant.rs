//! A participant service (stock, payment) as one piece of wiring: its command
//! line, its database, its own routes, and the side of the checkout protocol
//! chosen by `--protocol`. A new participant is one [`Spec`], one
//! [`protocol_core::Resource`] and its routes; nothing else is per service.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use clap::Parser;
use protocol_core::timeouts::{self, Budget, Relation};
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
    pub branch: twopc::ParticipantId,
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

/// A participant's waits and how they nest, checked before it starts.
fn budgets(config: &Config) -> Vec<Relation> {
    let client = Budget::new("the client's wait", timeouts::CLIENT_WAIT);
    let mut relations = vec![
        Relation {
            inner: crate::db::ACQUIRE,
            outer: client,
            why: "a request queued for a connection answers 503 before its client gives up",
        },
        Relation {
            inner: Budget::new("--peer-timeout-ms", Duration::from_millis(config.peer_timeout_ms)),
            outer: client,
            why: "a question to the coordinator ends before a client's request gives up",
        },
    ];
    if config.common.protocol == ProtocolKind::TwoPc {
        relations.push(Relation {
            inner: Budget::new("--lock-timeout-ms", Duration::from_millis(config.twopc.lock_timeout_ms)),
            outer: client,
            why: "a prepare queued on a row lock votes before the checkout's client gives up",
        });
    }
    relations
}

/// Connects to the database (running `spec`'s migrations), mounts the routes
/// `routes` builds over the pool next to the protocol's internal endpoints,
/// and binds the listener, with the protocol's background tasks attached.
///
/// # Errors
/// When a time budget does not fit the one around it
/// ([`protocol_core::timeouts`]), the database cannot be reached, the routes cannot be built, or the
/// chosen protocol lacks its settings (2PC: `--coordinator-urls` and `--peer-token`; saga:
/// `--kafka-bootstrap`).
pub async fn build(
    spec: Spec,
    config: &Config,
    routes: impl FnOnce(&PgPool) -> anyhow::Result<Router>,
) -> anyhow::Result<Application> {
    timeouts::check(&budgets(config))?;
    let common = &config.common;
    let pool = crate::db::connect(&common.database_url, common.db_pool_size, spec.migrator).await?;
    let own = routes(&pool)?;
    match common.protocol {
        ProtocolKind::TwoPc => {
            twopc::schema::install(&pool, twopc::schema::Schema::Participant).await?;
            let side = crate::twopc_side::TwoPcParticipant::new(
                spec.branch,
                &pool,
                common.db_protocol_pool_size,
                spec.resource,
                (&config.twopc, common.peer_token.as_ref()),
                Duration::from_millis(config.peer_timeout_ms),
            )?;
            let app = Application::bind(common, side.mount(own), pool).await?;
            Ok(side.with_recovery(app))
        }
        ProtocolKind::Saga => {
            let side = crate::saga_side::SagaParticipant::new(
                spec.name,
                spec.step,
                common.instance.as_deref(),
                &pool,
                spec.resource,
                &config.saga,
            )
            .await?;
            let app = Application::bind(common, side.mount(own), pool).await?;
            side.attach(app)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> Config {
        Config::try_parse_from(["stock", "--database-url=postgres://x"].iter().chain(extra)).unwrap()
    }

    #[test]
    fn the_default_budgets_nest_and_a_longer_lock_wait_is_refused() {
        assert_eq!(timeouts::check(&budgets(&config(&["--protocol=2pc"]))), Ok(()));
        assert_eq!(timeouts::check(&budgets(&config(&["--protocol=saga"]))), Ok(()));
        let err = timeouts::check(&budgets(&config(&["--protocol=2pc", "--lock-timeout-ms=90000"]))).unwrap_err();
        assert!(err.to_string().starts_with("--lock-timeout-ms (90000 ms) must be shorter"), "{err}");
    }
}
