//! The order service: orders and their lines in the service's own PostgreSQL
//! database, item prices from the stock service (cached in Redis), users
//! checked with the payment service, and checkout delegated to the
//! distributed-transaction protocol chosen at start-up.
//!
//! ```text
//!   create  ──► payment service GET /payment/find_user
//!   addItem ──► price cache (Redis) ──miss──► stock service GET /stock/find
//!   checkout ──► load order ──► checkout::Checkout (saga | 2pc) ──► reply
//! ```

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use protocol_core::ProtocolKind;
use protocol_core::timeouts::{self, Budget, Relation};
use service_common::config::CommonConfig;
use service_common::price_cache::PriceCache;
use service_common::server::Application;

mod checkout;
mod peers;
mod request_id;
mod routes;
mod store;

pub use checkout::Checkout;
pub use peers::Peers;
pub use store::{Order, Store};

/// Embedded schema migrations (the service's own tables; each protocol
/// installs its own when the service starts with it).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Configuration of the order service binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "order-service", about = "Order service of the checkout benchmark")]
pub struct Config {
    /// Settings shared by all services.
    #[command(flatten)]
    pub common: CommonConfig,

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

    /// 2PC: the order of the prepares: `payment-first` or `stock-first` (one
    /// after the other, free of distributed deadlock) or `parallel`.
    #[arg(long, env = "TWOPC_PREPARE_ORDER", default_value = "payment-first")]
    pub prepare_order: twopc::PrepareOrder,

    /// 2PC: how long (ms) a checkout's prepares may wait for row locks in all;
    /// a checkout that cannot win its rows within it is refused (409, nothing
    /// charged) instead of queueing until a timeout.
    #[arg(long, env = "TWOPC_LOCK_BUDGET_MS", default_value_t = 1_000)]
    pub lock_budget_ms: u64,

    /// SAGA: Kafka settings (the broker, the client profile, fault injection).
    #[command(flatten)]
    pub saga: service_common::saga_side::SagaArgs,

    /// SAGA: `sequential` (reserve stock, then debit credit) or `parallel`.
    #[arg(long, env = "SAGA_MODE", default_value = "sequential")]
    pub saga_mode: saga::Mode,

    /// SAGA: how long (ms) a checkout waits for its saga to end before
    /// answering 503 (the saga goes on; the final state decides).
    #[arg(long, env = "SAGA_CHECKOUT_TIMEOUT_MS", default_value_t = 30_000)]
    pub saga_checkout_timeout_ms: u64,

    /// SAGA: a saga without progress for this long (ms) has its pending
    /// commands re-sent (participants answer re-sent commands idempotently).
    #[arg(long, env = "SAGA_RESEND_AFTER_MS", default_value_t = 15_000)]
    pub saga_resend_after_ms: u64,

    /// SAGA: how often (ms) recovery looks for sagas without progress.
    #[arg(long, env = "SAGA_RECOVERY_INTERVAL_MS", default_value_t = 1_000)]
    pub saga_recovery_interval_ms: u64,

    /// Largest `n` accepted by `batch_init`.
    #[arg(long, env = "MAX_BATCH", default_value_t = service_common::params::MAX_BATCH)]
    pub max_batch: i64,

    /// Deliberate bugs for the verifier's mutation tests, for example
    /// `refuse-after-paid=100` (every 100th paid checkout answers 400). Never
    /// set outside those tests.
    #[arg(long, env = "SAGA2PC_MUTATIONS", default_value = "")]
    pub mutations: String,
}

impl Config {
    /// The 2PC coordinator's settings.
    pub fn coordinator_settings(&self) -> twopc::CoordinatorSettings {
        twopc::CoordinatorSettings {
            prepare_timeout: Duration::from_millis(self.prepare_timeout_ms),
            phase_two_deadline: Duration::from_millis(self.phase_two_deadline_ms),
            recovery_interval: Duration::from_millis(self.recovery_interval_ms),
            prepare_order: self.prepare_order,
            lock_budget: Duration::from_millis(self.lock_budget_ms),
        }
    }

    /// The saga orchestrator's settings.
    pub fn orchestrator_settings(&self) -> saga::OrchestratorSettings {
        saga::OrchestratorSettings {
            mode: self.saga_mode,
            checkout_timeout: Duration::from_millis(self.saga_checkout_timeout_ms),
            resend_after: Duration::from_millis(self.saga_resend_after_ms),
            recovery_interval: Duration::from_millis(self.saga_recovery_interval_ms),
        }
    }
}

/// The order service's waits and how they nest, checked before it starts.
fn budgets(config: &Config) -> Vec<Relation> {
    let ms = |name, ms| Budget::new(name, Duration::from_millis(ms));
    let client = Budget::new("the client's wait", timeouts::CLIENT_WAIT);
    let prepare = ms("--prepare-timeout-ms", config.prepare_timeout_ms);
    let mut relations = vec![
        Relation {
            inner: service_common::db::ACQUIRE,
            outer: client,
            why: "a checkout queued for a connection answers 503 before its client gives up",
        },
        Relation {
            inner: ms("--peer-timeout-ms", config.peer_timeout_ms),
            outer: client,
            why: "a call to another service ends before the checkout's client gives up",
        },
        Relation {
            inner: checkout::ORDER_LOCK,
            outer: client,
            why: "a checkout queued behind another checkout of its order answers before its client gives up",
        },
    ];
    match config.common.protocol {
        ProtocolKind::TwoPc => relations.extend([
            Relation {
                inner: ms("--lock-budget-ms", config.lock_budget_ms),
                outer: prepare,
                why: "a prepare that waits its whole lock budget still answers its own vote, not a timeout",
            },
            Relation {
                inner: prepare,
                outer: client,
                why: "a prepare ends (vote or abort) before the checkout's client gives up",
            },
            Relation {
                inner: ms("--phase-two-deadline-ms", config.phase_two_deadline_ms),
                outer: client,
                why: "a decided checkout answers before its client gives up; recovery finishes phase two",
            },
        ]),
        ProtocolKind::Saga => relations.push(Relation {
            inner: ms("--saga-checkout-timeout-ms", config.saga_checkout_timeout_ms),
            outer: client,
            why: "a checkout waiting on a stalled saga answers 503 before its client gives up",
        }),
    }
    relations
}

/// Connects to the database and Redis, runs migrations and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    timeouts::check(&budgets(&config))?;
    let pool = service_common::db::connect(&config.common.database_url, config.common.db_pool_size, &MIGRATOR).await?;
    let cache = PriceCache::new(config.common.redis_url.as_deref())?;
    let timeout = Duration::from_millis(config.peer_timeout_ms);
    let peers = Peers::new(config.stock_urls.clone(), config.payment_urls.clone(), timeout)?;
    let store = Store::new(pool.clone());
    let extra_routes;
    let mut recovery = None;
    let mut saga_side = None;
    let checkout = match config.common.protocol {
        ProtocolKind::TwoPc => {
            twopc::schema::install(&pool, twopc::schema::Schema::Coordinator).await?;
            let prepare_timeout = Duration::from_millis(config.prepare_timeout_ms);
            let token = config.common.required_peer_token()?;
            let instance = twopc::InstanceName::sanitize(config.common.instance.as_deref().unwrap_or("order"))?;
            let coordinator = twopc::Coordinator::new(
                instance,
                service_common::db::side_pool(&pool, config.common.db_protocol_pool_size),
                Arc::new(twopc::transport::Http {
                    stock: twopc::client::PeerClient::new(
                        config.stock_urls.clone(),
                        prepare_timeout.max(timeout),
                        token,
                    )?,
                    payment: twopc::client::PeerClient::new(
                        config.payment_urls.clone(),
                        prepare_timeout.max(timeout),
                        token,
                    )?,
                }),
                Arc::new(store.clone()),
                config.coordinator_settings(),
            );
            extra_routes = service_common::twopc_side::coordinator_routes(coordinator.clone(), token.clone());
            recovery = Some(coordinator.clone());
            Checkout::two_pc(coordinator, store.clone())
        }
        ProtocolKind::Saga => {
            let instance = config.common.instance.as_deref();
            let schema = saga::schema::Schema::Orchestrator;
            let runtime = config.saga.runtime("order", instance, &pool, schema).await?;
            let orchestrator = saga::Orchestrator::new(
                pool.clone(),
                Arc::new(store.clone()),
                runtime.outbox(),
                config.orchestrator_settings(),
                runtime.metrics(),
            );
            let role = service_common::saga_side::Role::Orchestrator(orchestrator.clone());
            extra_routes = service_common::saga_side::routes_for(runtime.clone(), role);
            saga_side = Some((runtime, orchestrator.clone()));
            Checkout::saga(orchestrator, store.clone())
        }
    };
    let mutations = routes::Mutations::parse(&config.mutations)?;
    let state = routes::AppState { store, cache, peers, checkout, max_batch: config.max_batch, mutations };
    let mut app = Application::bind(&config.common, routes::router(state).merge(extra_routes), pool).await?;
    if let Some(coordinator) = recovery {
        app = app.with_background("2pc-coordinator-recovery", move |stop| coordinator.run_recovery(stop));
    }
    if let Some((runtime, orchestrator)) = saga_side {
        let replies = Arc::new(saga::orchestrator::ReplyHandler(orchestrator.clone()));
        let listener = orchestrator.clone();
        app = app
            .require_ready("saga consumer group", runtime.joined())
            .with_background("saga-relay", runtime.relay_task()?)
            .with_background("saga-reply-consumer", runtime.consumer_task(&[saga::messages::REPLIES], replies))
            .with_background("saga-listener", move |stop| listener.run_listener(stop))
            .with_background("saga-recovery", move |stop| orchestrator.run_recovery(stop));
    }
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> Config {
        let base = ["order", "--database-url=postgres://x", "--stock-urls=http://s", "--payment-urls=http://p"];
        Config::try_parse_from(base.iter().chain(extra)).unwrap()
    }

    #[test]
    fn the_default_budgets_nest_for_both_protocols() {
        for protocol in ["2pc", "saga"] {
            let protocol = format!("--protocol={protocol}");
            assert_eq!(timeouts::check(&budgets(&config(&[&protocol]))), Ok(()));
        }
    }

    #[test]
    fn a_budget_that_outgrows_the_one_around_it_stops_the_service() {
        let config = config(&["--protocol=2pc", "--lock-budget-ms=20000"]);
        let err = timeouts::check(&budgets(&config)).unwrap_err().to_string();
        assert!(err.starts_with("--lock-budget-ms (20000 ms) must be shorter than --prepare-timeout-ms"), "{err}");
        let config = super::tests::config(&["--protocol=saga", "--saga-checkout-timeout-ms=60000"]);
        let err = timeouts::check(&budgets(&config)).unwrap_err().to_string();
        assert!(
            err.starts_with("--saga-checkout-timeout-ms (60000 ms) must be shorter than the client's wait"),
            "{err}"
        );
    }
}
