//! The HTTP side of 2PC in the services: the participants' and the
//! coordinator's internal endpoints (not routed by the gateway), and the
//! participants' settings. The protocol itself lives in the `twopc` crate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use protocol_core::Resource;
use serde_json::{Value, json};
use twopc::client::PeerToken;
use twopc::messages::{
    COMMIT_PATH, METRICS_PATH, PREPARE_PATH, PrepareRequest, RESOLVE_PATH, ROLLBACK_PATH, VoteReply,
};
use twopc::participant::PhaseTwoError;
use twopc::{Coordinator, ParticipantRunner, ParticipantSettings};

use crate::error::{ApiError, ApiResult};
use crate::params::PathParams;
use crate::server::Application;

/// 2PC settings of a participant service (stock, payment).
#[derive(Debug, Clone, Args)]
pub struct ParticipantConfig {
    /// Base URLs of the coordinator (order service) replicas, comma-separated;
    /// asked about branches left in doubt. Required by `--protocol 2pc`.
    #[arg(long, env = "COORDINATOR_URLS", value_delimiter = ',')]
    pub coordinator_urls: Vec<String>,

    /// Longest wait for a row lock during prepare, in milliseconds, whatever
    /// lock budget the coordinator sends (which is normally shorter).
    #[arg(long, env = "TWOPC_LOCK_TIMEOUT_MS", default_value_t = 10_000)]
    pub lock_timeout_ms: u64,

    /// A branch prepared longer ago than this (ms) is resolved by asking the coordinator.
    #[arg(long, env = "TWOPC_IN_DOUBT_TIMEOUT_MS", default_value_t = 10_000)]
    pub in_doubt_timeout_ms: u64,

    /// How often (ms) to look for branches in doubt.
    #[arg(long, env = "TWOPC_RECOVERY_INTERVAL_MS", default_value_t = 1_000)]
    pub recovery_interval_ms: u64,
}

impl ParticipantConfig {
    /// The protocol's view of these settings.
    pub fn settings(&self) -> ParticipantSettings {
        ParticipantSettings {
            lock_timeout: Duration::from_millis(self.lock_timeout_ms),
            in_doubt_timeout: Duration::from_millis(self.in_doubt_timeout_ms),
            recovery_interval: Duration::from_millis(self.recovery_interval_ms),
        }
    }
}

impl From<PhaseTwoError> for ApiError {
    fn from(err: PhaseTwoError) -> Self {
        match err {
            PhaseTwoError::Conflict(msg) => ApiError::Conflict(msg),
            PhaseTwoError::BadRequest(msg) => ApiError::BadRequest(msg),
            PhaseTwoError::Database(err) => err.into(),
        }
    }
}

/// A participant service's 2PC side: its internal endpoints and its recovery
/// of branches left in doubt.
#[derive(Debug)]
pub struct TwoPcParticipant {
    runner: Arc<ParticipantRunner>,
    /// The coordinator's replicas, asked about branches left in doubt.
    coordinator: twopc::client::PeerClient,
    /// What the coordinator presents on this participant's endpoints.
    token: PeerToken,
}

impl TwoPcParticipant {
    /// Builds the participant `me` over `pool` (prepares) plus a side pool of
    /// `phase_two_connections` (phase two, recovery), doing `resource`'s
    /// business update.
    ///
    /// # Errors
    /// When no coordinator URL is configured (nothing could resolve a branch
    /// left in doubt) or no peer token (nothing could call the coordinator,
    /// and anyone could call this participant).
    pub fn new(
        me: twopc::ParticipantId,
        pool: &sqlx::PgPool,
        phase_two_connections: u32,
        resource: Arc<dyn Resource>,
        (config, token): (&ParticipantConfig, Option<&PeerToken>),
        peer_timeout: Duration,
    ) -> anyhow::Result<Self> {
        if config.coordinator_urls.is_empty() {
            anyhow::bail!("--protocol 2pc needs --coordinator-urls (COORDINATOR_URLS)");
        }
        let token = crate::config::require_peer_token(token)?.clone();
        let coordinator = twopc::client::PeerClient::new(config.coordinator_urls.clone(), peer_timeout, &token)?;
        let pools = twopc::participant::Pools {
            prepare: pool.clone(),
            phase_two: crate::db::side_pool(pool, phase_two_connections),
        };
        let runner = ParticipantRunner::new(me, pools, resource, config.settings());
        Ok(TwoPcParticipant { runner, coordinator, token })
    }

    /// `routes` plus the participant's internal endpoints.
    pub fn mount(&self, routes: Router) -> Router {
        routes.merge(participant_routes(self.runner.clone(), self.token.clone()))
    }

    /// `app` with the participant's recovery loop.
    pub fn with_recovery(self, app: Application) -> Application {
        let TwoPcParticipant { runner, coordinator, .. } = self;
        app.with_background("2pc-participant-recovery", move |stop| runner.run_recovery(coordinator, stop))
    }
}

/// The participant's internal endpoints: the protocol calls, which only a
/// peer presenting `token` may make, and the metrics, open to observers.
pub fn participant_routes(runner: Arc<ParticipantRunner>, token: PeerToken) -> Router {
    Router::new()
        .route(PREPARE_PATH, post(prepare))
        .route(&format!("{COMMIT_PATH}/{{gid}}"), post(commit))
        .route(&format!("{ROLLBACK_PATH}/{{gid}}"), post(rollback))
        .route_layer(middleware::from_fn_with_state(token, require_peer))
        .route(METRICS_PATH, get(participant_metrics))
        .with_state(runner)
}

/// Lets through only a request presenting the stack's peer token; any other
/// is answered 401 before its handler runs, so it changes nothing. (Never a
/// 409: a coordinator takes 409 on phase two as a final answer.)
async fn require_peer(State(token): State<PeerToken>, req: Request, next: Next) -> Response {
    if token.accepts(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
        return next.run(req).await;
    }
    tracing::warn!(path = %req.uri().path(), "refused a 2PC call without the peer token");
    ApiError::Unauthorized.into_response()
}

async fn prepare(
    State(runner): State<Arc<ParticipantRunner>>,
    body: Result<Json<PrepareRequest>, JsonRejection>,
) -> ApiResult<Json<VoteReply>> {
    let Json(request) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(runner.prepare(request).await?))
}

async fn commit(
    State(runner): State<Arc<ParticipantRunner>>,
    PathParams(gid): PathParams<String>,
) -> ApiResult<Json<Value>> {
    runner.commit(&gid).await?;
    Ok(Json(json!({ "committed": gid })))
}

async fn rollback(
    State(runner): State<Arc<ParticipantRunner>>,
    PathParams(gid): PathParams<String>,
) -> ApiResult<Json<Value>> {
    runner.rollback(&gid).await?;
    Ok(Json(json!({ "rolled_back": gid })))
}

async fn participant_metrics(State(runner): State<Arc<ParticipantRunner>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(runner.metrics().await?)))
}

/// The coordinator's internal endpoints: resolve, which only a peer
/// presenting `token` may call, and the metrics, open to observers.
pub fn coordinator_routes(coordinator: Arc<Coordinator>, token: PeerToken) -> Router {
    Router::new()
        .route(&format!("{RESOLVE_PATH}/{{gid}}"), post(resolve))
        .route_layer(middleware::from_fn_with_state(token, require_peer))
        .route(METRICS_PATH, get(coordinator_metrics))
        .with_state(coordinator)
}

async fn resolve(
    State(coordinator): State<Arc<Coordinator>>,
    PathParams(gid): PathParams<String>,
) -> ApiResult<Json<twopc::messages::ResolveReply>> {
    let decision = coordinator.resolve(&gid).await.map_err(|err| match err {
        twopc::coordinator::ResolveError::BadRequest(msg) => ApiError::BadRequest(msg),
        twopc::coordinator::ResolveError::Database(err) => err.into(),
    })?;
    Ok(Json(twopc::messages::ResolveReply { decision }))
}

async fn coordinator_metrics(State(coordinator): State<Arc<Coordinator>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(coordinator.metrics().await?)))
}
