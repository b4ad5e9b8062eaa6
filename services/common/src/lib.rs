//! Plumbing shared by the three services, so each service crate holds only its
//! routes and its SQL:
//!
//! - [`error`]: the one HTTP error type, mapping every failure to a status code and
//!   logging internals without leaking them;
//! - [`params`]: validated path parameters (ids, amounts, counts) — the only way
//!   request input reaches SQL;
//! - [`server`]: router layers, health check, graceful shutdown, a binary's `main`;
//! - [`counter`]: the atomic, never-negative counter updates of stock and credit;
//! - [`reset`]: `batch_init` on a live system (waits for protocol state in flight);
//! - [`db`], [`price_cache`], [`config`], [`telemetry`]: connections and settings.
//! - [`participant`]: a participant service's whole wiring (stock and payment
//!   are a `Spec`, a `Resource` and their routes);
//! - [`saga_side`], [`twopc_side`]: each protocol's side of a service (its
//!   settings, background tasks and internal endpoints; the protocols
//!   themselves live in the `saga` and `twopc` crates).

pub mod config;
pub mod counter;
pub mod db;
pub mod error;
pub mod params;
pub mod participant;
pub mod price_cache;
pub mod reset;
pub mod saga_side;
pub mod server;
pub mod telemetry;
pub mod twopc_side;

pub use error::{ApiError, ApiResult};
