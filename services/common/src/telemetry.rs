//! Structured logging set-up for the service binaries.

use tracing_subscriber::EnvFilter;

/// Installs a global `tracing` subscriber; `RUST_LOG` overrides the default
/// `info` level. JSON lines suit the harness, which keeps every replica's log.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second call (tests start several apps in one process) keeps the first.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
