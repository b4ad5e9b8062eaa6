//! A participant's handler against a real database (`SAGA2PC_TEST_PG_URL`,
//! started by `harness/scripts/test.sh`), with a resource that writes before
//! it decides: the refusal paths and the inbox claim that the end-to-end tests
//! reach only by chance (a stock pre-check that passed, then an update that
//! lost a race; a redelivery).

#![allow(clippy::unwrap_used)] // a failed set-up should panic loudly

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::BoxFuture;
use protocol_core::{LineItem, Receipt, RejectReason, Resource, Work};
use saga::Metrics;
use saga::consumer::Handler;
use saga::messages::{Body, Envelope, Step};
use saga::participant::ParticipantHandler;
use saga::relay::Outbox;
use saga::schema::Schema;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

mod common;
use common::fresh_pool;

/// Takes the quantity first and refuses when that left the count below
/// zero: a refusal after a write, which the handler must roll back.
struct TakeThenCheck;

impl Resource for TakeThenCheck {
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
    ) -> BoxFuture<'a, sqlx::Result<Result<Receipt, RejectReason>>> {
        Box::pin(async move {
            let Work::Stock { items, .. } = work else { unreachable!("stock work only") };
            let line = &items[0];
            let left: i64 = sqlx::query_scalar("UPDATE counts SET n = n - $2 WHERE id = $1 RETURNING n")
                .bind(&line.item_id)
                .bind(line.quantity)
                .fetch_one(&mut *conn)
                .await?;
            Ok(if left < 0 {
                Err(RejectReason::OutOfStock { item_id: line.item_id.clone() })
            } else {
                Ok(Receipt::default())
            })
        })
    }

    fn undo<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
        _: Option<&'a Receipt>,
    ) -> BoxFuture<'a, sqlx::Result<()>> {
        Box::pin(async move {
            let Work::Stock { items, .. } = work else { unreachable!("stock work only") };
            sqlx::query("UPDATE counts SET n = n + $2 WHERE id = $1")
                .bind(&items[0].item_id)
                .bind(items[0].quantity)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }
}

struct Setup {
    pool: PgPool,
    handler: ParticipantHandler,
    metrics: Arc<Metrics>,
    // Keeps the hand-over open, as the relay would.
    _handed: saga::relay::Handed,
}

async fn setup(prefix: &str, count: i64) -> Setup {
    let pool = fresh_pool(prefix).await;
    saga::schema::install(&pool, Schema::Participant).await.unwrap();
    sqlx::query("CREATE TABLE counts (id TEXT PRIMARY KEY, n BIGINT NOT NULL)").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO counts VALUES ('item', $1)").bind(count).execute(&pool).await.unwrap();
    let (outbox, handed) = Outbox::channel();
    let metrics = Arc::new(Metrics::default());
    let handler = ParticipantHandler::new(
        Step::ReserveStock,
        pool.clone(),
        Arc::new(TakeThenCheck),
        outbox,
        Arc::clone(&metrics),
    );
    Setup { pool, handler, metrics, _handed: handed }
}

fn take(quantity: i64) -> Envelope {
    let work = Work::Stock { items: vec![LineItem { item_id: "item".into(), quantity }], as_of_us: None };
    Envelope::new(Uuid::new_v4(), "order-1", Step::ReserveStock, Body::Action { work })
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT n FROM counts").fetch_one(pool).await.unwrap()
}

/// The replies waiting in the outbox, decoded, oldest first.
async fn replies(pool: &PgPool) -> Vec<Body> {
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM saga_outbox ORDER BY id").fetch_all(pool).await.unwrap();
    payloads.iter().map(|p| Envelope::decode(p).unwrap().body).collect()
}

async fn effect(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT state FROM saga_effects").fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn a_refusal_after_a_write_leaves_the_rows_as_they_were() {
    let s = setup("participant-refusal", 1).await;
    s.handler.handle(take(2)).await.unwrap();
    assert_eq!(count(&s.pool).await, 1, "the refused step's write is rolled back");
    assert_eq!(effect(&s.pool).await, ["refused"]);
    assert_eq!(replies(&s.pool).await, [Body::Refused { reason: RejectReason::OutOfStock { item_id: "item".into() } }]);
    assert_eq!(s.metrics.refused.load(Ordering::Relaxed), 1);
    // The refused record and reply above show the transaction went on after
    // the rollback to the savepoint; a later step that fits is applied.
    s.handler.handle(take(1)).await.unwrap();
    assert_eq!(count(&s.pool).await, 0);
    s.pool.close().await;
}

#[tokio::test]
async fn a_redelivered_command_changes_nothing_and_counts_as_a_duplicate() {
    let s = setup("participant-duplicate", 5).await;
    let command = take(2);
    s.handler.handle(command.clone()).await.unwrap();
    s.handler.handle(command.clone()).await.unwrap();
    assert_eq!(count(&s.pool).await, 3, "taken once");
    assert_eq!(replies(&s.pool).await, [Body::Done], "one reply");
    assert_eq!(s.metrics.duplicates.load(Ordering::Relaxed), 1);
    // A compensation is a new message: the claim is new and it finds the
    // applied effect it undoes; its own redelivery again changes nothing.
    let compensate = command.reply(Body::Compensate);
    s.handler.handle(compensate.clone()).await.unwrap();
    s.handler.handle(compensate).await.unwrap();
    assert_eq!(count(&s.pool).await, 5, "given back once");
    assert_eq!(effect(&s.pool).await, ["compensated"]);
    assert_eq!(replies(&s.pool).await, [Body::Done, Body::Compensated]);
    assert_eq!(s.metrics.duplicates.load(Ordering::Relaxed), 2);
    s.pool.close().await;
}

#[tokio::test]
async fn a_compensation_before_its_action_leaves_a_tombstone_the_action_respects() {
    let s = setup("participant-tombstone", 5).await;
    let command = take(2);
    s.handler.handle(command.reply(Body::Compensate)).await.unwrap();
    s.handler.handle(command).await.unwrap();
    assert_eq!(count(&s.pool).await, 5, "a late action after its compensation takes nothing");
    assert_eq!(effect(&s.pool).await, ["tombstone"]);
    assert_eq!(replies(&s.pool).await, [Body::Compensated, Body::Compensated]);
    assert_eq!(s.metrics.late_actions.load(Ordering::Relaxed), 1);
    s.pool.close().await;
}

/// A compensation that keeps failing is dead-lettered (its undo overflows
/// `bigint`, a data exception no retry fixes). Its applied effect must outlive
/// the dedup retention, which would otherwise make the next re-sent
/// compensation find no record, write a tombstone and answer `Compensated`
/// with the reservation never given back. An aged effect of another saga,
/// with no dead letter, still goes.
#[tokio::test]
async fn a_dead_lettered_compensation_keeps_its_effect_past_retention() {
    use saga::inbox::{DEDUP_RETENTION, dead_letter, forget_old};
    let s = setup("participant-dead-letter-retention", 5).await;
    let command = take(2);
    s.handler.handle(command.clone()).await.unwrap();
    sqlx::query("UPDATE counts SET n = 9223372036854775807 - 1").execute(&s.pool).await.unwrap();
    let compensate = command.reply(Body::Compensate);
    let mut error = String::new();
    for _ in 0..saga::consumer::DEAD_LETTER_AFTER {
        let err = s.handler.handle(compensate.clone()).await.unwrap_err();
        assert!(saga::consumer::is_deterministic(&err), "{err:#}");
        error = format!("{err:#}");
    }
    // What the consumer does after the last failed attempt.
    let place = (saga::messages::STOCK_COMMANDS, 0, 0);
    assert!(dead_letter(&s.pool, &compensate, place, &error, saga::consumer::DEAD_LETTER_AFTER).await.unwrap());
    let aged = DEDUP_RETENTION.as_secs_f64() + 86_400.0;
    sqlx::query("UPDATE saga_effects SET updated_at = now() - make_interval(secs => $1)")
        .bind(aged)
        .execute(&s.pool)
        .await
        .unwrap();
    let other = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO saga_effects (saga_id, order_id, state, updated_at)
         VALUES ($1, 'paid', 'applied', now() - make_interval(secs => $2))",
    )
    .bind(other)
    .bind(aged)
    .execute(&s.pool)
    .await
    .unwrap();
    forget_old(&s.pool, DEDUP_RETENTION).await.unwrap();
    let kept: Vec<Uuid> = sqlx::query_scalar("SELECT saga_id FROM saga_effects").fetch_all(&s.pool).await.unwrap();
    assert_eq!(kept, [command.saga_id], "the dead-lettered effect stays, the other aged one goes");
    // Repaired; recovery's re-send (a new message id) undoes the effect.
    sqlx::query("UPDATE counts SET n = 3").execute(&s.pool).await.unwrap();
    s.handler.handle(command.reply(Body::Compensate)).await.unwrap();
    assert_eq!(count(&s.pool).await, 5, "the reservation is given back");
    assert_eq!(effect(&s.pool).await, ["compensated"]);
    assert_eq!(replies(&s.pool).await, [Body::Done, Body::Compensated]);
    s.pool.close().await;
}

/// A compensation whose undo fails still refreshes its effect record: the
/// refresh must not roll back with the failed attempt.
#[tokio::test]
async fn a_failing_compensation_keeps_its_effect_record_fresh() {
    let s = setup("participant-failing-undo-refresh", 5).await;
    let command = take(2);
    s.handler.handle(command.clone()).await.unwrap();
    sqlx::query("UPDATE saga_effects SET updated_at = now() - interval '3 days'").execute(&s.pool).await.unwrap();
    sqlx::query("UPDATE counts SET n = 9223372036854775807 - 1").execute(&s.pool).await.unwrap();
    s.handler.handle(command.reply(Body::Compensate)).await.unwrap_err();
    let age: f64 = sqlx::query_scalar("SELECT extract(epoch FROM now() - updated_at)::float8 FROM saga_effects")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert!(age < 60.0, "the record was refreshed by the failed attempt ({age} s old)");
    assert_eq!(effect(&s.pool).await, ["applied"]);
    s.pool.close().await;
}
