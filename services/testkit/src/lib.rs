//! Helpers for the services' integration tests.
//!
//! Tests run against real servers: `harness/scripts/test.sh` starts PostgreSQL and
//! Redis (through `harness up --infra-only`) and exports their URLs. Each test gets
//! a database of its own, created on that server under a random name, and starts
//! the service in-process on port 0, so tests run in parallel without sharing
//! state.

#![allow(clippy::unwrap_used)] // test support: a failed set-up should panic loudly

use std::net::SocketAddr;

use serde_json::Value;
use service_common::server::Application;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::oneshot;

/// Environment variable naming an admin URL of the test PostgreSQL server.
pub const PG_ENV: &str = "SAGA2PC_TEST_PG_URL";
/// Environment variable naming the test Redis server.
pub const REDIS_ENV: &str = "SAGA2PC_TEST_REDIS_URL";

/// The 2PC peers' shared secret in these tests; [`TestServer`]'s client
/// presents it on every call, as the stack's own services do.
pub const PEER_TOKEN: &str = "test-peer-token-0123456789abcdef";

/// Command-line settings that make a participant service (stock, payment) run
/// its 2PC side with a coordinator address nothing answers (nothing in these
/// tests stays in doubt long enough for its recovery to call it), with the
/// tests' peer token.
pub const TWOPC_PARTICIPANT_ARGS: [&str; 6] =
    ["--protocol", "2pc", "--coordinator-urls", "http://127.0.0.1:9", "--peer-token", PEER_TOKEN];

fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with harness/scripts/test.sh, which starts the real servers")
    })
}

/// Creates an empty database with a random name and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    let admin = require_env(PG_ENV);
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
    conn.close().await.unwrap();
    with_database(&admin, &name)
}

/// The test Redis URL.
pub fn redis_url() -> String {
    require_env(REDIS_ENV)
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_path(name);
    url.to_string()
}

/// A service running in this process; stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// An HTTP client for this server, presenting [`PEER_TOKEN`] as a peer
    /// of the stack would.
    pub client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    /// Serves `app` on a background task.
    pub fn spawn(app: Application) -> Self {
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {PEER_TOKEN}")).unwrap();
        auth.set_sensitive(true);
        let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, auth)]);
        let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
        TestServer { base_url: format!("http://{addr}"), addr, client, _stop: stop }
    }

    /// Sends `POST path` and returns the status and JSON body (`Null` if none).
    pub async fn post(&self, path: &str) -> (u16, Value) {
        let resp = self.client.post(format!("{}{path}", self.base_url)).send().await.unwrap();
        decode(resp).await
    }

    /// Sends `POST path` with the header `name: value`.
    pub async fn post_with_header(&self, path: &str, name: &str, value: &str) -> (u16, Value) {
        let resp = self.client.post(format!("{}{path}", self.base_url)).header(name, value).send().await.unwrap();
        decode(resp).await
    }

    /// Sends `GET path` and returns the status and JSON body (`Null` if none).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.base_url)).send().await.unwrap();
        decode(resp).await
    }
}

/// The clock of the database at `db_url` now (`clock_timestamp()`), in
/// microseconds since the epoch: a checkout's `as_of` as the order service
/// takes it, for tests that play the coordinator.
pub async fn database_clock_us(db_url: &str) -> i64 {
    let mut conn = PgConnection::connect(db_url).await.unwrap();
    let now: i64 = sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    now
}

/// Holds the row of `table` whose `id_column` is `id` locked (`FOR UPDATE`,
/// another session) for `hold`, then releases it. Returns once the lock is
/// taken; the returned task ends when it is released.
pub async fn hold_row_lock(
    db_url: &str,
    (table, id_column): (&str, &str),
    id: &str,
    hold: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let mut conn = PgConnection::connect(db_url).await.unwrap();
    conn.execute("BEGIN").await.unwrap();
    sqlx::query(&format!("SELECT 1 FROM {table} WHERE {id_column} = $1 FOR UPDATE"))
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        conn.execute("COMMIT").await.unwrap();
        conn.close().await.unwrap();
    })
}

/// Plays a coordinator whose checkout is dated while a `batch_init` runs on
/// participant `app` (database `db`, rows of `table` keyed by the text column
/// named beside it): a side session holds row "1" for 0.8 s, the reset
/// `reset_path` locks row "0" and waits on "1", and 0.25 s later a branch
/// dated then (`work`, given that `as_of_us`) is prepared as `gid` and queues
/// on row "0" behind the reset. Returns the prepare's status and vote once the
/// reset answered 200; a branch that voted yes is committed, so a test sees
/// what that vote costs in the reset's rows.
pub async fn prepare_dated_during_a_reset(
    app: &TestServer,
    (db, table): (&str, (&str, &str)),
    reset_path: &str,
    gid: &str,
    work: impl FnOnce(i64) -> Value,
) -> (u16, Value) {
    let held = hold_row_lock(db, table, "1", std::time::Duration::from_millis(800)).await;
    let (http, url) = (app.client.clone(), format!("{}{reset_path}", app.base_url));
    let reset = tokio::spawn(async move { http.post(url).send().await.unwrap().status().as_u16() });
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let body = serde_json::json!({"gid": gid, "work": work(database_clock_us(db).await), "lock_wait_ms": 5_000});
    let resp = app.client.post(format!("{}/internal/2pc/prepare", app.base_url)).json(&body).send().await.unwrap();
    let (status, vote) = decode(resp).await;
    held.await.unwrap();
    assert_eq!(reset.await.unwrap(), 200, "the reset went through");
    if vote["vote"] == "yes" {
        assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 200);
    }
    (status, vote)
}

async fn decode(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://u@h:1/db?sslmode=disable", "x"), "postgres://u@h:1/x?sslmode=disable");
    }
}
