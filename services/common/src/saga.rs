//! The SAGA side of the services: Kafka settings from the command line, the
//! participants' wiring (relay + command consumer), and the internal endpoints
//! the harness reads. The protocol itself lives in the `saga` crate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use saga::metrics::Gauges;
use saga::store::Schema;
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
    /// Kafka bootstrap servers (`host:port`); the SAGA side runs only when set.
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,

    /// Kafka client settings: `low-latency`, `no-linger` or `defaults` (see `saga::kafka`).
    #[arg(long, env = "KAFKA_PROFILE", default_value = "low-latency")]
    pub kafka_profile: Profile,

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
    /// The saga runtime of service `service` over `pool`, or `None` when no
    /// broker is configured.
    pub async fn runtime(
        &self,
        service: &str,
        instance: Option<&str>,
        pool: &sqlx::PgPool,
        schema: Schema,
    ) -> anyhow::Result<Option<Runtime>> {
        let Some(bootstrap) = self.kafka_bootstrap.clone() else { return Ok(None) };
        let kafka = KafkaSettings {
            bootstrap,
            profile: self.kafka_profile,
            group: self.consumer_group.clone().unwrap_or_else(|| format!("saga-{service}")),
            instance: instance.map(str::to_owned),
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
        Ok(Some(Runtime::new(pool.clone(), schema, kafka, relay, self.workers).await?))
    }
}

/// A participant service's saga side (enabled when a broker is configured).
#[derive(Debug)]
pub struct Participant(Option<(Runtime, Arc<saga::participant::ParticipantHandler>)>);

impl Participant {
    /// The participant of `step` in service `service`, applying `resource`.
    pub async fn new(
        service: &str,
        step: Step,
        instance: Option<&str>,
        pool: &sqlx::PgPool,
        resource: Arc<dyn saga::Resource>,
        args: &SagaArgs,
    ) -> anyhow::Result<Self> {
        let Some(runtime) = args.runtime(service, instance, pool, Schema::Participant).await? else {
            return Ok(Participant(None));
        };
        let handler = saga::participant::ParticipantHandler::new(
            step,
            pool.clone(),
            resource,
            runtime.outbox(),
            runtime.metrics(),
        );
        Ok(Participant(Some((runtime, Arc::new(handler)))))
    }

    /// `routes` plus the internal saga endpoints (if enabled).
    pub fn mount(&self, routes: Router, step: Step) -> Router {
        match &self.0 {
            Some((runtime, _)) => routes.merge(routes_for(runtime.clone(), Role::Participant(step))),
            None => routes,
        }
    }

    /// `app` with the relay and the command consumer (if enabled).
    pub fn attach(self, app: Application, step: Step) -> anyhow::Result<Application> {
        let Some((runtime, handler)) = self.0 else { return Ok(app) };
        let topics: &'static [&'static str] = match step {
            Step::ReserveStock => &[saga::messages::STOCK_COMMANDS],
            Step::DebitCredit => &[saga::messages::PAYMENT_COMMANDS],
        };
        Ok(app
            .require_ready("saga consumer group", runtime.joined())
            .with_background("saga-relay", runtime.relay_task()?)
            .with_background("saga-consumer", runtime.consumer_task(topics, handler)))
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
