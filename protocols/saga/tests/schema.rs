//! The saga tables' installation against a real PostgreSQL database
//! (`SAGA2PC_TEST_PG_URL`): a replica starting beside live ones must not
//! take the locks of DDL on tables that checkouts are writing.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use std::time::Duration;

use saga::schema::Schema;
use sqlx::Connection;

mod common;

/// With every saga table held by a live transaction in `ROW EXCLUSIVE`
/// mode (what an `INSERT` takes), a second install returns at once: it finds
/// its digest recorded and runs no DDL. `CREATE INDEX IF NOT EXISTS` would
/// wait for `SHARE` on the table behind the writer (and, with writers taking
/// the tables in another order, deadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_again_takes_no_lock_on_a_table_in_use() {
    // Bounded as a whole: a hang here must fail this test, not stall the suite.
    tokio::time::timeout(Duration::from_secs(60), install_twice_beside_a_writer()).await.expect("the test hung");
}

async fn install_twice_beside_a_writer() {
    for (schema, tables) in [
        (Schema::Orchestrator, "saga_outbox, saga_inbox, sagas"),
        (Schema::Participant, "saga_outbox, saga_inbox, saga_effects"),
    ] {
        let pool = common::fresh_pool("schema").await;
        saga::schema::install(&pool, schema).await.unwrap();
        let mut writer = pool.acquire().await.unwrap();
        let mut tx = writer.begin().await.unwrap();
        sqlx::query(&format!("LOCK TABLE {tables} IN ROW EXCLUSIVE MODE")).execute(&mut *tx).await.unwrap();
        let again = tokio::time::timeout(Duration::from_secs(10), saga::schema::install(&pool, schema)).await;
        assert!(matches!(again, Ok(Ok(()))), "{schema:?}: a second install waited on a table in use: {again:?}");
        tx.rollback().await.unwrap();
        // `close` waits for every connection to come back: hand this one back first.
        drop(writer);
        let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM protocol_schema").fetch_one(&pool).await.unwrap();
        assert_eq!(recorded, 1);
        pool.close().await;
    }
}

/// A database installed by a release that recorded the saga's digest in
/// `saga_schema`: the first install on this release finds the same digest
/// there, records it in `protocol_schema` and runs no DDL, so it returns at
/// once beside a writer holding every saga table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_recorded_by_an_older_release_counts() {
    tokio::time::timeout(Duration::from_secs(60), adopt_the_old_record()).await.expect("the test hung");
}

async fn adopt_the_old_record() {
    let pool = common::fresh_pool("schema-old-record").await;
    saga::schema::install(&pool, Schema::Participant).await.unwrap();
    // What the older release left: its record, under its own names, and no other.
    sqlx::raw_sql(
        "CREATE TABLE saga_schema (name TEXT PRIMARY KEY, digest TEXT NOT NULL);
         INSERT INTO saga_schema SELECT 'participant', digest FROM protocol_schema;
         DELETE FROM protocol_schema;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut writer = pool.acquire().await.unwrap();
    let mut tx = writer.begin().await.unwrap();
    sqlx::query("LOCK TABLE saga_outbox, saga_inbox, saga_effects IN ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), saga::schema::install(&pool, Schema::Participant)).await;
    assert!(matches!(again, Ok(Ok(()))), "an install with the old record waited on a table in use: {again:?}");
    tx.rollback().await.unwrap();
    drop(writer);
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM protocol_schema").fetch_all(&pool).await.unwrap();
    assert_eq!(names, ["saga-participant"], "the old record is carried over");
    pool.close().await;
}
