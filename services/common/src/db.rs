//! PostgreSQL connection pools.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// How long a request waits for a pooled connection before the service answers
/// 503: long enough to ride out a burst on a hot row (2PC branches hold their
/// connection while queued on a row lock), short enough not to hide an outage.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled connection idle at least this long is pinged before it is handed
/// out. sqlx pings every connection on acquire by default: one more round trip
/// per transaction, a few tenths of a millisecond of a one-client saga's 9 ms
/// (its spans put it under "connection pool"). The ping only matters for a
/// connection whose server went away while it sat idle (one broken in use is
/// dropped on release, where sqlx pings it anyway). The price: in the second
/// after its server died, a recently used connection fails its one request
/// with an I/O error (a 503, or an aborted 2PC prepare) where the ping would
/// have opened a new connection, which while the server is down fails too.
/// The kill-postgres faults measure it for every contender.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The options every service pool shares.
fn options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_IF_IDLE_FOR {
                    return Ok(true);
                }
                // A dead connection is closed and replaced, without the
                // warning sqlx logs for a hook's error.
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
}

/// The pool's budget, for the services' [`protocol_core::timeouts`] checks.
pub const ACQUIRE: protocol_core::timeouts::Budget =
    protocol_core::timeouts::Budget::new("pool acquire", ACQUIRE_TIMEOUT);

/// Connects a pool of `size` connections and brings the schema up to date.
///
/// Migrations take an advisory lock, so replicas starting together are safe.
pub async fn connect(url: &str, size: u32, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let pool = options(size).connect(url).await.with_context(|| format!("connecting to {}", redact(url)))?;
    forget_moved_migrations(&pool).await.context("updating the migration history")?;
    migrator.run(&pool).await.context("running migrations")?;
    Ok(pool)
}

/// Migration 0002 of every service made the 2PC tables; they moved to the
/// `twopc` crate, which installs them itself (`twopc::schema`). A database
/// made before lists 0002 as applied, which sqlx would refuse as missing:
/// that one entry is forgotten (its tables stay, and the protocol adopts
/// them). Version 0002 is never to be used again: an older database keeps
/// its entry until it starts here once.
async fn forget_moved_migrations(pool: &PgPool) -> sqlx::Result<()> {
    let history: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    if history {
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 2 AND description LIKE 'twopc %'")
            .execute(pool)
            .await?;
    }
    Ok(())
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
    options(size).connect_lazy_with((*pool.connect_options()).clone())
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
