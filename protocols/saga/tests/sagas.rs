//! The orchestrator's claim of a reply (`sagas::claim_and_lock`) on a real
//! PostgreSQL database (`SAGA2PC_TEST_PG_URL`, started by
//! `harness/scripts/test.sh`): one statement claims the reply's message id in
//! the inbox and locks the saga's row. What the orchestrator relies on:
//! a repeated reply is a duplicate and locks nothing; a reply for an unknown
//! saga is claimed (so it is not looked up again) and finds nothing; two
//! replies of one saga are handled one at a time; and two deliveries of one
//! reply racing on two connections apply it once.

#![allow(clippy::unwrap_used)] // a failed set-up should panic loudly

mod common;

use std::time::Duration;

use protocol_core::{CheckoutRequest, LineItem};
use saga::inbox::Claimed;
use saga::machine::Saga;
use saga::schema::Schema;
use saga::{Metrics, Mode, sagas};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use common::fresh_pool;

fn request(order: &str) -> CheckoutRequest {
    CheckoutRequest {
        order_id: order.into(),
        user_id: "u1".into(),
        items: vec![LineItem { item_id: "i1".into(), quantity: 2 }],
        total_cost: 10,
        as_of_us: None,
    }
}

/// An orchestrator database holding one saga in its first state.
async fn one_saga() -> (PgPool, Uuid, Saga, CheckoutRequest) {
    let pool = fresh_pool("sagas").await;
    saga::schema::install(&pool, Schema::Orchestrator).await.unwrap();
    let (saga, _) = Saga::start(Mode::Sequential);
    let (saga_id, request) = (Uuid::new_v4(), request("o1"));
    let mut conn = pool.acquire().await.unwrap();
    sagas::insert(&mut conn, saga_id, &saga, &request).await.unwrap();
    (pool, saga_id, saga, request)
}

/// A connection of its own (not from the pool), for a second transaction.
async fn connect(pool: &PgPool) -> PgConnection {
    let options = pool.connect_options();
    PgConnection::connect_with(&options).await.unwrap()
}

#[tokio::test]
async fn a_reply_is_claimed_once_and_reads_its_saga() {
    let (pool, saga_id, saga, request) = one_saga().await;
    let metrics = Metrics::default();
    let reply = Uuid::new_v4();
    let mut conn = pool.acquire().await.unwrap();

    let first = sagas::claim_and_lock(&mut conn, reply, saga_id, &metrics).await.unwrap();
    assert_eq!(first, Claimed::First(Some((saga.clone(), request.clone()))));
    let again = sagas::claim_and_lock(&mut conn, reply, saga_id, &metrics).await.unwrap();
    assert_eq!(again, Claimed::Duplicate);
    assert_eq!(metrics.duplicates.load(std::sync::atomic::Ordering::Relaxed), 1);

    // Another reply of the same saga is new, and finds the saga.
    let other = sagas::claim_and_lock(&mut conn, Uuid::new_v4(), saga_id, &metrics).await.unwrap();
    assert_eq!(other, Claimed::First(Some((saga, request))));
}

#[tokio::test]
async fn a_reply_for_an_unknown_saga_is_claimed_and_finds_nothing() {
    let (pool, _, _, _) = one_saga().await;
    let metrics = Metrics::default();
    let (reply, unknown) = (Uuid::new_v4(), Uuid::new_v4());
    let mut conn = pool.acquire().await.unwrap();

    assert_eq!(sagas::claim_and_lock(&mut conn, reply, unknown, &metrics).await.unwrap(), Claimed::First(None));
    // Its inbox record stays: the same reply again is a duplicate.
    assert_eq!(sagas::claim_and_lock(&mut conn, reply, unknown, &metrics).await.unwrap(), Claimed::Duplicate);
}

/// While one transaction holds a saga's claim, a second reply of that saga
/// waits for its row lock (here: runs out of a short lock timeout), and gets
/// the row once the first transaction ends.
#[tokio::test]
async fn two_replies_of_one_saga_are_handled_one_at_a_time() {
    let (pool, saga_id, saga, request) = one_saga().await;
    let metrics = Metrics::default();
    let mut a = connect(&pool).await;
    let mut b = connect(&pool).await;

    let mut first = a.begin().await.unwrap();
    let claimed = sagas::claim_and_lock(&mut first, Uuid::new_v4(), saga_id, &metrics).await.unwrap();
    assert_eq!(claimed, Claimed::First(Some((saga.clone(), request.clone()))));

    let mut second = b.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '200ms'").execute(&mut *second).await.unwrap();
    let blocked = sagas::claim_and_lock(&mut second, Uuid::new_v4(), saga_id, &metrics).await.unwrap_err();
    let code = blocked.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("55P03"), "expected a lock timeout, got {blocked}");
    second.rollback().await.unwrap();

    first.commit().await.unwrap();
    let mut second = b.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *second).await.unwrap();
    let claimed = sagas::claim_and_lock(&mut second, Uuid::new_v4(), saga_id, &metrics).await.unwrap();
    assert_eq!(claimed, Claimed::First(Some((saga, request))));
    second.commit().await.unwrap();
}

/// One reply delivered twice at once (a redelivery racing the first copy on
/// another replica): the second claim waits for the first transaction's
/// uncommitted inbox row and, once that commits, is a duplicate. A first
/// claim that rolls back (its handler failed) leaves the reply to the next
/// copy, which handles it.
#[tokio::test]
async fn one_reply_delivered_twice_at_once_is_handled_once() {
    let (pool, saga_id, saga, request) = one_saga().await;
    let metrics = Metrics::default();
    let reply = Uuid::new_v4();
    let mut a = connect(&pool).await;
    let b = connect(&pool).await;

    let mut first = a.begin().await.unwrap();
    let claimed = sagas::claim_and_lock(&mut first, reply, saga_id, &metrics).await.unwrap();
    assert!(matches!(claimed, Claimed::First(Some(_))));

    let racing = tokio::spawn(async move {
        let mut b = b;
        let metrics = Metrics::default();
        let mut tx = b.begin().await.unwrap();
        let claimed = sagas::claim_and_lock(&mut tx, reply, saga_id, &metrics).await.unwrap();
        tx.commit().await.unwrap();
        claimed
    });
    // The racing claim is waiting on the first transaction's inbox row.
    wait_for_a_lock_waiter(&pool).await;
    first.commit().await.unwrap();
    assert_eq!(racing.await.unwrap(), Claimed::Duplicate);

    // And a copy whose first claim rolled back is handled by the next one.
    let reply = Uuid::new_v4();
    let mut first = a.begin().await.unwrap();
    let _ = sagas::claim_and_lock(&mut first, reply, saga_id, &metrics).await.unwrap();
    first.rollback().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        sagas::claim_and_lock(&mut conn, reply, saga_id, &metrics).await.unwrap(),
        Claimed::First(Some((saga, request)))
    );
}

/// Waits until some session of this database waits for a lock.
async fn wait_for_a_lock_waiter(pool: &PgPool) {
    protocol_core::wait::until("a claim waiting for a lock", Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await?;
        Ok(if waiting > 0 {
            protocol_core::wait::Probe::Ready(())
        } else {
            protocol_core::wait::Probe::NotYet("no session waits for a lock".into())
        })
    })
    .await
    .unwrap();
}
