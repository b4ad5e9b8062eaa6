//! Orchestrated SAGA over Apache Kafka.
//!
//! The order service orchestrates; stock and payment are participants. Every
//! service writes its outgoing messages to a transactional outbox in the same
//! local transaction as its state change, and a relay publishes them with an
//! idempotent producer; consumers deduplicate by message id inside the
//! transaction that applies the message and store their offset only after it
//! committed. So a duplicated, replayed or reordered delivery takes effect once,
//! and a crash anywhere leaves either nothing or something the relay and the
//! consumers finish.
//!
//! ```text
//!  order DB: sagas + outbox ──relay──► saga-{stock,payment}-commands ──► participant
//!      ▲                                                                    │
//!      └── orchestrator ◄── saga-replies ◄──relay── outbox + saga_effects ◄─┘
//! ```
//!
//! Modules: [`machine`] (the orchestrator's I/O-free state machine),
//! [`messages`] (the versioned wire format), [`offsets`] (which offsets may be
//! stored), [`orchestrator`] and [`participant`] (the handlers), [`relay`],
//! [`consumer`], [`outbox`], [`inbox`] (and dead letters), [`schema`] (the tables), [`kafka`] (client profiles),
//! [`in_process`] (the messages delivered without a broker, for the harness's ceiling),
//! [`inspect`] (what the saga leaves in its databases, for gauges and the verifier).

pub mod consumer;
pub mod in_process;
pub mod inbox;
pub mod inspect;
pub mod kafka;
pub mod machine;
pub mod messages;
pub mod metrics;
pub mod offsets;
pub mod orchestrator;
pub mod outbox;
pub mod participant;
pub mod relay;
pub mod sagas;
pub mod schema;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::watch;

pub use kafka::{KafkaSettings, Profile};
pub use machine::Mode;
pub use messages::Step;
pub use metrics::Metrics;
pub use orchestrator::{Orchestrator, OrchestratorSettings};
pub use relay::{Outbox, RelayFaults, RelaySettings};

/// The pieces every saga service runs: the outbox relay and one consumer, over
/// one database, sharing counters and the hand-over of committed outbox rows.
#[derive(Debug, Clone)]
pub struct Runtime {
    pool: PgPool,
    kafka: KafkaSettings,
    relay: RelaySettings,
    workers: usize,
    outbox: Outbox,
    /// The relay's end of `outbox`, taken by [`Runtime::relay_task`].
    handed: Arc<Mutex<Option<relay::Handed>>>,
    metrics: Arc<Metrics>,
    joined: Arc<AtomicBool>,
}

impl Runtime {
    /// Installs the saga tables of `schema` and prepares the runtime.
    pub async fn new(
        pool: PgPool,
        schema: schema::Schema,
        kafka: KafkaSettings,
        relay: RelaySettings,
        workers: usize,
    ) -> anyhow::Result<Self> {
        schema::install(&pool, schema).await?;
        let (outbox, handed) = Outbox::channel();
        let handed = Arc::new(Mutex::new(Some(handed)));
        let (metrics, joined) = (Arc::default(), Arc::default());
        Ok(Runtime { pool, kafka, relay, workers, outbox, handed, metrics, joined })
    }

    /// Where handlers hand their committed outbox rows to the relay.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// The shared counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Turns true once the consumer has joined its group: before that, nothing
    /// this service should handle can be handled.
    pub fn joined(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.joined)
    }

    /// The Kafka settings (profile, group) in use.
    pub fn kafka(&self) -> &KafkaSettings {
        &self.kafka
    }

    /// The relay task (one per runtime: it takes the hand-over's receiver).
    pub fn relay_task(&self) -> anyhow::Result<impl FnOnce(watch::Receiver<bool>) -> relay::RelayFuture + use<>> {
        let handed = self
            .handed
            .lock()
            .map_err(|_| anyhow::anyhow!("outbox hand-over lock poisoned"))?
            .take()
            .ok_or_else(|| anyhow::anyhow!("this runtime's relay task was already created"))?;
        let relay =
            relay::Relay::new(self.pool.clone(), self.kafka.producer(), handed, self.relay.clone(), self.metrics())?;
        Ok(move |stop| -> relay::RelayFuture { Box::pin(relay.run(stop)) })
    }

    /// The consumer task for `topics`, handing messages to `handler`.
    pub fn consumer_task(
        &self,
        topics: &'static [&'static str],
        handler: Arc<dyn consumer::Handler>,
    ) -> impl FnOnce(watch::Receiver<bool>) -> relay::RelayFuture + use<> {
        let setup = consumer::ConsumerSetup {
            settings: self.kafka.clone(),
            topics,
            handler,
            workers: self.workers,
            metrics: self.metrics(),
            joined: self.joined(),
            dead_letters: self.pool.clone(),
        };
        move |stop| -> relay::RelayFuture {
            Box::pin(async move {
                if let Err(err) = consumer::run(setup, stop).await {
                    tracing::error!(error = %err, "saga consumer could not start");
                }
            })
        }
    }

    /// Unsent outbox rows of this service's database.
    pub async fn unsent(&self) -> sqlx::Result<i64> {
        outbox::count_unsent(&self.pool).await
    }

    /// Messages in this service's dead-letter table.
    pub async fn dead_letters(&self) -> sqlx::Result<i64> {
        inbox::count_dead_letters(&self.pool).await
    }
}
