//! PostgreSQL connection pools.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// How long a request waits for a pooled connection before the service answers
/// 503: long enough to ride out a burst on a hot row (2PC branches hold their
/// connection while queued on a row lock), short enough not to hide an outage.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects a pool of `size` connections and brings the schema up to date.
///
/// Migrations take an advisory lock, so replicas starting together are safe.
pub async fn connect(url: &str, size: u32, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    migrator.run(&pool).await.context("running migrations")?;
    Ok(pool)
}

/// A second pool of `size` connections to the database of `pool`, for work
/// that must never queue behind requests holding `pool`'s connections (2PC
/// phase two and the decision log, see the `twopc` crate). Connections open
/// on first use, so a service that never needs it holds none. Size 0 shares
/// `pool` instead: the behaviour this replaced, kept to measure its cost.
pub fn side_pool(pool: &PgPool, size: u32) -> PgPool {
    if size == 0 {
        return pool.clone();
    }
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// The URL without its password, for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redact("postgres://u@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
