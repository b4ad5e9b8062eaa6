//! The payment service: users with a credit balance, each user a row in the
//! service's own PostgreSQL database.
//!
//! Payments are single conditional `UPDATE`s (see `service_common::counter`), so
//! concurrent payments by one user can never overdraw or lose an update.

use std::sync::Arc;

use service_common::participant::Spec;
use service_common::server::Application;

mod participant;
mod routes;
mod store;

pub use participant::PaymentResource;
pub use service_common::participant::Config;
pub use store::Store;

/// Embedded schema migrations (the service's own tables; each protocol
/// installs its own when the service starts with it).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What the payment service is to the protocols.
pub fn spec() -> Spec {
    Spec {
        name: "payment",
        branch: twopc::ParticipantId::Payment,
        step: saga::Step::DebitCredit,
        resource: Arc::new(PaymentResource),
        migrator: &MIGRATOR,
    }
}

/// Connects to the database, runs migrations and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let max_batch = config.max_batch;
    service_common::participant::build(spec(), &config, |pool| {
        Ok(routes::router(routes::AppState { store: Store::new(pool.clone()), max_batch }))
    })
    .await
}
