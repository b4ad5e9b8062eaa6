//! The ceiling's scratch databases: one per PostgreSQL cluster, beside the
//! service's own, with the services' schema (their migrations and both
//! protocols' tables, installed by the same code the services run) and a copy of the
//! run's data. The service databases are only read, so the verifier judges
//! exactly what the protocol did.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::run::final_state::Databases;
use crate::run::workload::Ids;

/// Name of the scratch database in each cluster.
pub const SCRATCH_DATABASE: &str = "saga2pc_ceiling";

/// Pools to the three scratch databases.
#[derive(Debug, Clone)]
pub(super) struct Scratch {
    pub order: PgPool,
    pub stock: PgPool,
    pub payment: PgPool,
}

#[derive(Clone, Copy)]
enum Role {
    Order,
    Stock,
    Payment,
}

impl Role {
    fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Role::Order => &order_service::MIGRATOR,
            Role::Stock => &stock_service::MIGRATOR,
            Role::Payment => &payment_service::MIGRATOR,
        }
    }

    fn twopc_schema(self) -> twopc::schema::Schema {
        match self {
            Role::Order => twopc::schema::Schema::Coordinator,
            Role::Stock | Role::Payment => twopc::schema::Schema::Participant,
        }
    }

    fn saga_schema(self) -> saga::schema::Schema {
        match self {
            Role::Order => saga::schema::Schema::Orchestrator,
            Role::Stock | Role::Payment => saga::schema::Schema::Participant,
        }
    }

    /// Every table a checkout writes, emptied before each replay: the
    /// service's own and those each protocol names as its state.
    fn tables(self) -> String {
        let service: &[&str] = match self {
            Role::Order => &["orders", "order_items"],
            Role::Stock => &["items"],
            Role::Payment => &["users"],
        };
        let mut tables: Vec<&str> = service.to_vec();
        tables.extend(self.twopc_schema().tables());
        tables.extend(self.saga_schema().tables());
        tables.join(", ")
    }
}

impl Scratch {
    /// Creates (if needed) and opens the scratch database of each cluster,
    /// with `connections` per pool.
    pub async fn open(dbs: &Databases, connections: usize) -> anyhow::Result<Scratch> {
        let open = |url: &str, role| open_one(url.to_owned(), role, connections);
        let (order, stock, payment) = tokio::try_join!(
            open(&dbs.order, Role::Order),
            open(&dbs.stock, Role::Stock),
            open(&dbs.payment, Role::Payment)
        )?;
        Ok(Scratch { order, stock, payment })
    }

    /// Replaces the scratch data with a copy of the run's: its users, items
    /// and orders as the service databases hold them now.
    pub async fn copy_data(&self, dbs: &Databases, ids: &Ids) -> anyhow::Result<()> {
        for (pool, role) in [(&self.order, Role::Order), (&self.stock, Role::Stock), (&self.payment, Role::Payment)] {
            reset(pool, role).await?;
        }
        let mut source = PgConnection::connect(&dbs.stock).await?;
        let items: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT item_id, stock, price FROM items WHERE item_id = ANY($1)")
                .bind(&ids.items)
                .fetch_all(&mut source)
                .await?;
        source.close().await?;
        sqlx::query(
            "INSERT INTO items (item_id, stock, price) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])",
        )
        .bind(items.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind(items.iter().map(|r| r.2).collect::<Vec<_>>())
        .execute(&self.stock)
        .await?;
        let mut source = PgConnection::connect(&dbs.payment).await?;
        let users: Vec<(String, i64)> = sqlx::query_as("SELECT user_id, credit FROM users WHERE user_id = ANY($1)")
            .bind(&ids.users)
            .fetch_all(&mut source)
            .await?;
        source.close().await?;
        sqlx::query("INSERT INTO users (user_id, credit) SELECT * FROM UNNEST($1::text[], $2::bigint[])")
            .bind(users.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
            .bind(users.iter().map(|r| r.1).collect::<Vec<_>>())
            .execute(&self.payment)
            .await?;
        let mut source = PgConnection::connect(&dbs.order).await?;
        let orders: Vec<(String, String, bool, i64)> =
            sqlx::query_as("SELECT order_id, user_id, paid, total_cost FROM orders WHERE order_id = ANY($1)")
                .bind(&ids.orders)
                .fetch_all(&mut source)
                .await?;
        let lines: Vec<(String, i32, String, i64, i64)> = sqlx::query_as(
            "SELECT order_id, seq, item_id, quantity, unit_price FROM order_items WHERE order_id = ANY($1)",
        )
        .bind(&ids.orders)
        .fetch_all(&mut source)
        .await?;
        source.close().await?;
        sqlx::query(
            "INSERT INTO orders (order_id, user_id, paid, total_cost)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::bigint[])",
        )
        .bind(orders.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
        .bind(orders.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
        .bind(orders.iter().map(|r| r.2).collect::<Vec<_>>())
        .bind(orders.iter().map(|r| r.3).collect::<Vec<_>>())
        .execute(&self.order)
        .await?;
        sqlx::query(
            "INSERT INTO order_items (order_id, seq, item_id, quantity, unit_price)
             SELECT * FROM UNNEST($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[])",
        )
        .bind(lines.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
        .bind(lines.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind(lines.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
        .bind(lines.iter().map(|r| r.3).collect::<Vec<_>>())
        .bind(lines.iter().map(|r| r.4).collect::<Vec<_>>())
        .execute(&self.order)
        .await?;
        for pool in [&self.order, &self.stock, &self.payment] {
            // Fresh statistics, as the service tables have after their load.
            pool.execute("ANALYZE").await?;
        }
        Ok(())
    }

    /// Opens `n` connections in every pool (and keeps them), so that no
    /// backend starts inside the timed replay.
    pub async fn connect_all(&self, n: usize) -> anyhow::Result<()> {
        for pool in [&self.order, &self.stock, &self.payment] {
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                let mut conn = pool.acquire().await?;
                conn.execute("SELECT 1").await?;
                held.push(conn);
            }
        }
        Ok(())
    }

    /// Closes the pools, first rolling back whatever a failed replay left
    /// prepared.
    pub async fn close(self) {
        for pool in [&self.order, &self.stock, &self.payment] {
            if let Err(err) = rollback_prepared(pool).await {
                tracing::warn!(error = %err, "could not clean the ceiling's scratch database");
            }
            pool.close().await;
        }
    }
}

async fn open_one(service_url: String, role: Role, connections: usize) -> anyhow::Result<PgPool> {
    let service = PgConnectOptions::from_str(&service_url)?;
    let scratch = service.clone().database(SCRATCH_DATABASE);
    let mut admin = PgConnection::connect_with(&service).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(SCRATCH_DATABASE)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        admin.execute(format!("CREATE DATABASE {SCRATCH_DATABASE}").as_str()).await?;
    }
    let pool = options(connections).connect_with(scratch.clone()).await?;
    if let Err(err) = install(&pool, role).await {
        // Migrations of an older build: start the scratch database over.
        tracing::info!(error = %err, "recreating the ceiling's scratch database");
        pool.close().await;
        rollback_prepared_with(&scratch).await?;
        admin.execute(format!("DROP DATABASE {SCRATCH_DATABASE} WITH (FORCE)").as_str()).await?;
        admin.execute(format!("CREATE DATABASE {SCRATCH_DATABASE}").as_str()).await?;
        let pool = options(connections).connect_with(scratch).await?;
        install(&pool, role).await.context("installing the ceiling's schema")?;
        admin.close().await?;
        return Ok(pool);
    }
    admin.close().await?;
    Ok(pool)
}

/// Pools that keep their connections (no idle timeout within a replay) and
/// hand them out without a ping (a scratch database does not restart during a
/// replay; the services ping only connections idle for a second).
fn options(connections: usize) -> PgPoolOptions {
    let n = u32::try_from(connections).unwrap_or(u32::MAX);
    PgPoolOptions::new().max_connections(n).idle_timeout(None).max_lifetime(None).test_before_acquire(false)
}

async fn install(pool: &PgPool, role: Role) -> anyhow::Result<()> {
    role.migrator().run(pool).await?;
    twopc::schema::install(pool, role.twopc_schema()).await?;
    saga::schema::install(pool, role.saga_schema()).await?;
    Ok(())
}

async fn reset(pool: &PgPool, role: Role) -> anyhow::Result<()> {
    rollback_prepared(pool).await?;
    pool.execute(format!("TRUNCATE {}", role.tables()).as_str()).await?;
    Ok(())
}

/// Prepared transactions keep their locks across sessions: a drop or a
/// truncate would wait for them forever.
async fn rollback_prepared(pool: &PgPool) -> anyhow::Result<()> {
    twopc::participant::discard_prepared(pool).await?;
    Ok(())
}

async fn rollback_prepared_with(options: &PgConnectOptions) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    let result = rollback_prepared(&pool).await;
    pool.close().await;
    result
}
