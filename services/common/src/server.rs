//! Router layers, health check and the server lifecycle shared by the services.
//!
//! A service crate builds its routes and hands them to [`Application::bind`],
//! which adds what every service has: `GET /health`, a JSON 404 for unknown
//! paths, a bound on request bodies, and graceful shutdown injected as a future
//! (so tests stop a server without signals).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::future::BoxFuture;
use protocol_core::crashpoint;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::CommonConfig;
use crate::error::{ApiError, ApiResult};
use crate::params::PathParams;

/// Public endpoints take no body and internal ones small JSON documents;
/// anything beyond this is refused before routing.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// A background task: given a receiver that flips to `true` at shutdown, runs
/// until then.
pub type Background = Box<dyn FnOnce(watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send>;

/// Conditions `GET /health` waits for besides the database, such as a Kafka
/// consumer that has joined its group: a replica that cannot yet process its
/// protocol's messages is not ready, so `harness up` (and a load balancer) do
/// not send it work it would only queue.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Mutex<Vec<Condition>>>);

/// A named readiness condition, met once its flag is true.
type Condition = (String, Arc<AtomicBool>);

impl Readiness {
    /// Adds a condition named `what`, met once `flag` is true.
    pub fn require(&self, what: &str, flag: Arc<AtomicBool>) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((what.to_owned(), flag));
    }

    /// Names of the conditions not met yet.
    fn waiting_for(&self) -> Vec<String> {
        let conditions = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        conditions.iter().filter(|(_, flag)| !flag.load(Ordering::Acquire)).map(|(name, _)| name.clone()).collect()
    }
}

/// A bound listener, its router and its background tasks, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    readiness: Readiness,
    background: Vec<(String, Background)>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.background.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Application").field("listener", &self.listener).field("background", &names).finish()
    }
}

impl Application {
    /// Binds `common.listen` and wraps `routes` with the shared layers; `pool`
    /// backs the health check. The crash-point endpoints are served only with
    /// `--enable-crashpoints`; without it they answer 404 like any unknown path.
    ///
    /// A listening socket inherited from the supervisor
    /// ([`protocol_core::listen`]) is used instead of binding; it must be
    /// bound to `common.listen` (unless its port is 0).
    pub async fn bind(common: &CommonConfig, routes: Router, pool: PgPool) -> anyhow::Result<Self> {
        let addr = common.listen;
        let listener = match protocol_core::listen::inherited().context("inheriting the listening socket")? {
            Some(inherited) => {
                let bound = inherited.local_addr()?;
                anyhow::ensure!(
                    addr.port() == 0 || bound == addr,
                    "the inherited socket is bound to {bound}, not to --listen={addr}"
                );
                TcpListener::from_std(inherited)?
            }
            None => TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?,
        };
        let readiness = Readiness::default();
        let mut routes = routes.route("/health", get(health).with_state((pool, readiness.clone())));
        if common.enable_crashpoints {
            routes = routes
                .route("/internal/crashpoints/{name}", post(arm_crashpoint))
                .route("/internal/crashpoints", delete(disarm_crashpoints));
        }
        let router = routes
            .route("/internal/spans", get(drain_spans))
            .fallback(|| async { ApiError::NoRoute })
            .layer(middleware::from_fn(limit_body));
        Ok(Application { listener, router, readiness, background: Vec::new() })
    }

    /// Adds a task that runs beside the server (recovery loops, relays) and is
    /// told to stop, then awaited, when the server shuts down.
    pub fn with_background<F, Fut>(mut self, name: &str, task: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background.push((name.to_owned(), Box::new(move |rx| Box::pin(task(rx)))));
        self
    }

    /// Makes `GET /health` answer 503 until `flag` is true.
    pub fn require_ready(self, what: &str, flag: Arc<AtomicBool>) -> Self {
        self.readiness.require(what, flag);
        self
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let tasks: Vec<_> =
            self.background.into_iter().map(|(name, task)| (name, tokio::spawn(task(stopped.clone())))).collect();
        let served =
            axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown).await.context("serving HTTP");
        let _ = stop.send(true);
        for (name, task) in tasks {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(())) => tracing::info!(task = %name, "background task stopped"),
                Ok(Err(err)) => tracing::error!(task = %name, error = %err, "background task failed"),
                Err(_) => tracing::warn!(task = %name, "background task did not stop in time"),
            }
        }
        served
    }
}

async fn health(State((pool, readiness)): State<(PgPool, Readiness)>) -> ApiResult<Response> {
    sqlx::query("SELECT 1").execute(&pool).await?;
    let waiting = readiness.waiting_for();
    if !waiting.is_empty() {
        let body = Json(json!({ "status": "starting", "waiting_for": waiting }));
        return Ok((axum::http::StatusCode::SERVICE_UNAVAILABLE, body).into_response());
    }
    Ok(Json(json!({ "status": "ok" })).into_response())
}

/// Arms a crash point of this process (see `protocol_core::crashpoint`). Only
/// served with `--enable-crashpoints`, and only on the replica's own port: the
/// gateway does not route `/internal`.
async fn arm_crashpoint(PathParams(name): PathParams<String>) -> ApiResult<Json<Value>> {
    let point = crashpoint::lookup(&name).map_err(|err| ApiError::bad_request(err.to_string()))?;
    crashpoint::arm(point);
    tracing::warn!(crashpoint = point.name, "crash point armed");
    Ok(Json(json!({ "armed": point.name })))
}

/// Hands the spans recorded since the last call to the harness (the gateway
/// does not route `/internal`).
async fn drain_spans() -> Json<protocol_core::spans::Drained> {
    Json(protocol_core::spans::drain())
}

async fn disarm_crashpoints() -> Json<Value> {
    crashpoint::disarm_all();
    Json(json!({ "armed": [] }))
}

/// Refuses bodies declared larger than [`MAX_BODY_BYTES`] with a JSON 413.
async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req).await
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// The `main` of a service binary: parses its command line (`C`, shown as
/// `name` with `about` in `--help`), sets up logging, builds the service with
/// `build` and serves until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the service cannot be built or its server fails.
pub async fn run_binary<C, F, Fut>(
    name: &'static str,
    about: &'static str,
    common: fn(&C) -> &crate::config::CommonConfig,
    build: F,
) -> anyhow::Result<()>
where
    C: clap::Parser,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<Application>>,
{
    let matches = C::command().name(name).about(about).get_matches();
    let config = C::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let settings = common(&config);
    crate::telemetry::init(settings.log_json);
    anyhow::ensure!(
        settings.crashpoints.is_empty() || settings.enable_crashpoints,
        "--crashpoints (CRASHPOINTS) arms crashes only with --enable-crashpoints"
    );
    crashpoint::arm_all(&settings.crashpoints)?;
    if settings.spans {
        protocol_core::spans::enable();
    }
    let app = build(config).await?;
    tracing::info!(addr = %app.local_addr(), "{name} listening");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("{name} stopped");
    Ok(())
}
