//! What the saga's database tests share: a fresh database per test.

#![allow(clippy::unwrap_used)] // a failed set-up should panic loudly
#![allow(dead_code)] // each test binary uses its own part

use sqlx::{Connection, Executor, PgConnection, PgPool};

/// A new, empty database on the server of `SAGA2PC_TEST_PG_URL` (started by
/// `harness/scripts/test.sh`), named `<prefix>_<uuid>`.
pub async fn fresh_pool(prefix: &str) -> PgPool {
    let admin = std::env::var("SAGA2PC_TEST_PG_URL")
        .expect("SAGA2PC_TEST_PG_URL is not set: run the tests with harness/scripts/test.sh");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
    conn.close().await.unwrap();
    let mut url = url_without_database(&admin);
    url.push_str(&name);
    PgPool::connect(&url).await.unwrap()
}

/// `postgres://u@h:p/db?x` → `postgres://u@h:p/`.
fn url_without_database(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let path = url[scheme_end..].find('/').map_or(url.len(), |i| scheme_end + i);
    format!("{}/", &url[..path])
}
