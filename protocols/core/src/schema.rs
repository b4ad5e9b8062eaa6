//! Protocol tables, installed by their protocol when a service starts.
//!
//! A service's migrations create its business tables (orders, items, users);
//! the tables of a protocol (the saga's outbox, inbox and state, 2PC's
//! decision log and branch records) belong to the protocol, which creates
//! them when a service starts with it: a service run with one protocol has
//! none of the other's tables, and a protocol's schema changes in one place,
//! next to the code that reads it. Both protocols install through
//! [`install`].
//!
//! A replica restarting beside live ones must not run the DDL again: even
//! `CREATE INDEX IF NOT EXISTS` locks its table before it looks for the
//! index, and that lock, taken table after table while live checkouts lock
//! the same tables in another order, is a deadlock (a checkout answered 503).
//! So the digest of the SQL installed is recorded in `protocol_schema`, and a
//! start that finds its own digest there touches no protocol table. The SQL
//! itself is idempotent (`IF NOT EXISTS`), so a database whose tables came
//! from an older release is brought up to date, not refused. The saga's
//! digests used to live in `saga_schema`: a matching record there counts
//! ([`ProtocolSchema::recorded_before`]). The 2PC tables used to come from
//! the services' migrations, with no digest: the first start on this release
//! runs their (idempotent) DDL once, which on the coordinator briefly holds
//! `twopc_decisions` in `SHARE` mode (one table: a stall, not a deadlock).

use sqlx::PgPool;

/// One protocol's tables for one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolSchema {
    /// Its row in `protocol_schema` (`saga-orchestrator`, `2pc-participant`).
    pub name: &'static str,
    /// The SQL, run in this order in one transaction; idempotent.
    pub sql: &'static [&'static str],
    /// The tables it creates that hold protocol state.
    pub tables: &'static [&'static str],
    /// Where an older release recorded the digest of this schema: (table,
    /// name). A database whose record there matches is taken as installed,
    /// so its first start on this release runs no DDL either.
    pub recorded_before: Option<(&'static str, &'static str)>,
}

/// The advisory lock that keeps replicas starting together from racing on the
/// DDL (one for every protocol schema: installs are rare and short).
const LOCK: i64 = 0x5a6a_0001;

/// Creates `schema`'s tables unless the same SQL is recorded as installed.
pub async fn install(pool: &PgPool, schema: &ProtocolSchema) -> sqlx::Result<()> {
    let digest = digest(schema.sql);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK).execute(&mut *tx).await?;
    // "already exists, skipping" notices on every start are noise in the logs.
    sqlx::query("SET LOCAL client_min_messages = warning").execute(&mut *tx).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS protocol_schema (name TEXT PRIMARY KEY, digest TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let mut installed: Option<String> = sqlx::query_scalar("SELECT digest FROM protocol_schema WHERE name = $1")
        .bind(schema.name)
        .fetch_optional(&mut *tx)
        .await?;
    if let (None, Some((table, name))) = (&installed, schema.recorded_before) {
        if has_table(&mut *tx, table).await? {
            installed = sqlx::query_scalar(&format!("SELECT digest FROM {table} WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        }
    }
    if installed.as_deref() == Some(digest.as_str()) {
        record(&mut tx, schema.name, &digest).await?;
        return tx.commit().await;
    }
    for sql in schema.sql {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
    }
    record(&mut tx, schema.name, &digest).await?;
    tx.commit().await
}

/// Whether `table` is in this database. For a protocol's readers of its
/// own state (the harness's verifier) on a database the protocol may never
/// have run on, each gating its query on the table it reads: a missing
/// table means "nothing of this protocol there", not an error. The
/// installer uses it too, on an older release's record table.
pub async fn has_table<'e>(db: impl sqlx::PgExecutor<'e>, table: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(db).await
}

/// Records `digest` as installed for `name` (a no-op when it already is).
async fn record(conn: &mut sqlx::PgConnection, name: &str, digest: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO protocol_schema (name, digest) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET digest = $2 WHERE protocol_schema.digest <> $2",
    )
    .bind(name)
    .bind(digest)
    .execute(conn)
    .await?;
    Ok(())
}

/// FNV-1a over the SQL texts, in hex: stable across builds and Rust
/// versions, so only a change of the SQL runs the DDL again.
fn digest(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.bytes().chain([0])) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_changes_with_the_sql_and_its_split() {
        assert_eq!(digest(&["a", "b"]), digest(&["a", "b"]));
        assert_ne!(digest(&["a", "b"]), digest(&["a", "c"]));
        assert_ne!(digest(&["ab"]), digest(&["a", "b"]));
        assert_eq!(digest(&[]).len(), 16);
    }
}
