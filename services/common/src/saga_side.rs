//! The SAGA side of the services: Kafka settings from the command line, a
//! participant's relay and command consumer, and the internal endpoints the
//! harness reads. The protocol itself lives in the `saga` crate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use protocol_core::Resource;
use saga::metrics::Gauges;
use saga::schema::Schema;
use saga::{KafkaSettings, Profile, RelayFaults, RelaySettings, Runtime, Step};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::server::Application;

/// Counters of a service's saga side (summable numbers only).
pub const METRICS_PATH: &str = "/internal/saga/metrics";
/// Settings a report must name: mode, Kafka profile, consumer group.
pub const SETTINGS_PATH: &str = "/internal/saga/settings";

/// SAGA messaging settings shared by every service.
#[derive(Debug, Clone, Args)]
pub struct SagaArgs {
    /// Kafka bootstrap servers (`host:port`); required by `--protocol saga`.
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,

    /// Kafka client settings: `low-latency`, `no-linger` or `defaults` (see `saga::kafka`).
    #[arg(long, env = "KAFKA_PROFILE", default_value = "low-latency")]
    pub kafka_profile: Profile,

    /// Extra Kafka client settings, `key=value;...`, applied after the
    /// profile's (settings durability or the offset discipline rest on are
    /// refused; see `saga::kafka::ClientProperties`).
    #[arg(long, env = "KAFKA_CLIENT_PROPERTIES", default_value = "")]
    pub kafka_client_properties: saga::kafka::ClientProperties,

    /// Consumer group (default: `saga-<service>`); a new group replays its
    /// topics from the beginning.
    #[arg(long, env = "SAGA_CONSUMER_GROUP")]
    pub consumer_group: Option<String>,

    /// Messages handled at once (each in its own transaction, ordered per order id).
    #[arg(long, env = "SAGA_WORKERS", default_value_t = saga::consumer::DEFAULT_WORKERS)]
    pub workers: usize,

    /// How often (ms) the relay looks for unsent outbox rows nobody handed it.
    #[arg(long, env = "SAGA_RELAY_POLL_MS", default_value_t = 200)]
    pub relay_poll_ms: u64,

    /// Fault injection: publish every outgoing message twice.
    #[arg(long, env = "SAGA_DUPLICATE_MESSAGES", default_value_t = false)]
    pub duplicate_messages: bool,

    /// Fault injection: hold every outgoing batch this long (ms) before publishing.
    #[arg(long, env = "SAGA_MESSAGE_DELAY_MS", default_value_t = 0)]
    pub message_delay_ms: u64,
}

impl SagaArgs {
    /// The saga runtime of service `service` over `pool`.
    ///
    /// # Errors
    /// When no broker is configured, or the runtime cannot be built.
    pub async fn runtime(
        &self,
        service: &str,
        instance: Option<&str>,
        pool: &sqlx::PgPool,
        schema: Schema,
    ) -> anyhow::Result<Runtime> {
        let Some(bootstrap) = self.kafka_bootstrap.clone() else {
            anyhow::bail!("--protocol saga needs --kafka-bootstrap (KAFKA_BOOTSTRAP)");
        };
        let kafka = KafkaSettings {
            bootstrap,
            profile: self.kafka_profile,
            group: self.consumer_group.clone().unwrap_or_else(|| format!("saga-{service}")),
            instance: instance.map(str::to_owned),
            extra: self.kafka_client_properties.clone(),
        };
        let relay = RelaySettings {
            poll_interval: Duration::from_millis(self.relay_poll_ms.max(1)),
            handover_grace: saga::relay::HANDOVER_GRACE,
            cleanup_every: Duration::from_secs(60),
            faults: RelayFaults {
                duplicate: self.duplicate_messages,
                delay: Duration::from_millis(self.message_delay_ms),
            },
        };
        Runtime::new(pool.clone(), schema, kafka, relay, self.workers).await
    }
}

/// A participant service's saga side: the relay and the consumer of its step's commands.
#[derive(Debug)]
pub struct SagaParticipant {
    step: Step,
    runtime: Runtime,
    handler: Arc<saga::participant::ParticipantHandler>,
}

impl SagaParticipant {
    /// The participant of `step` in service `service`, applying `resource`.
    pub async fn new(
        service: &str,
        step: Step,
        instance: Option<&str>,
        pool: &sqlx::PgPool,
        resource: Arc<dyn Resource>,
        args: &SagaArgs,
    ) -> anyhow::Result<Self> {
        let runtime = args.runtime(service, instance, pool, Schema::Participant).await?;
        let handler = saga::participant::ParticipantHandler::new(
            step,
            pool.clone(),
            resource,
            runtime.outbox(),
            runtime.metrics(),
        );
        Ok(SagaParticipant { step, runtime, handler: Arc::new(handler) })
    }

    /// `routes` plus the internal saga endpoints.
    pub fn mount(&self, routes: Router) -> Router {
        routes.merge(routes_for(self.runtime.clone(), Role::Participant(self.step)))
    }

    /// `app` with the relay and the command consumer; ready once the consumer joined its group.
    pub fn attach(self, app: Application) -> anyhow::Result<Application> {
        let topics: &'static [&'static str] = match self.step {
            Step::ReserveStock => &[saga::messages::STOCK_COMMANDS],
            Step::DebitCredit => &[saga::messages::PAYMENT_COMMANDS],
        };
        Ok(app
            .require_ready("saga consumer group", self.runtime.joined())
            .with_background("saga-relay", self.runtime.relay_task()?)
            .with_background("saga-consumer", self.runtime.consumer_task(topics, self.handler)))
    }
}

/// Which side of the saga a service plays, for its endpoints.
#[derive(Debug, Clone)]
pub enum Role {
    /// The order service.
    Orchestrator(Arc<saga::Orchestrator>),
    /// Stock or payment.
    Participant(Step),
}

#[derive(Debug, Clone)]
struct EndpointState {
    runtime: Runtime,
    role: Role,
}

/// The internal saga endpoints of a service.
pub fn routes_for(runtime: Runtime, role: Role) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .route(SETTINGS_PATH, get(settings))
        .with_state(EndpointState { runtime, role })
}

async fn metrics(State(state): State<EndpointState>) -> ApiResult<Json<Value>> {
    let gauges = match &state.role {
        Role::Orchestrator(orchestrator) => orchestrator.gauges().await?,
        Role::Participant(_) => Gauges {
            in_flight: 0,
            unsent_outbox: u64::try_from(state.runtime.unsent().await?).unwrap_or(0),
            dead_letters: u64::try_from(state.runtime.dead_letters().await?).unwrap_or(0),
        },
    };
    Ok(Json(json!(state.runtime.metrics().snapshot(gauges))))
}

async fn settings(State(state): State<EndpointState>) -> Json<Value> {
    let kafka = state.runtime.kafka();
    let (role, mode) = match &state.role {
        Role::Orchestrator(o) => ("orchestrator".to_owned(), Some(o.mode().as_str())),
        Role::Participant(step) => (format!("participant:{}", step.as_str()), None),
    };
    Json(json!({
        "role": role,
        "mode": mode,
        "kafka_profile": kafka.profile.as_str(),
        "consumer_group": kafka.group,
    }))
}
