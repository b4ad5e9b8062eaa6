//! Router layers, health check and the server lifecycle shared by the services.
//!
//! A service crate builds its routes and hands them to [`Application::bind`],
//! which adds what every service has: `GET /health`, a JSON 404 for unknown
//! paths, a bound on request bodies, and graceful shutdown injected as a future
//! (so tests stop a server without signals).

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::error::{ApiError, ApiResult};

/// No endpoint takes a body; anything beyond this is refused before routing.
pub const MAX_BODY_BYTES: u64 = 4 * 1024;

/// A bound listener and its router, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `addr` and wraps `routes` with the shared layers; `pool` backs the
    /// health check.
    pub async fn bind(addr: SocketAddr, routes: Router, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let router = routes
            .route("/health", get(health).with_state(pool))
            .fallback(|| async { ApiError::NoRoute })
            .layer(middleware::from_fn(limit_body));
        Ok(Application { listener, router })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}

async fn health(State(pool): State<PgPool>) -> ApiResult<Response> {
    sqlx::query("SELECT 1").execute(&pool).await?;
    Ok(axum::Json(serde_json::json!({ "status": "ok" })).into_response())
}

/// Refuses bodies declared larger than [`MAX_BODY_BYTES`] with a JSON 413.
async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
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
