//! The stock service as a 2PC participant, driven directly through its internal
//! endpoints: votes, idempotent phase two, tombstones.

use serde_json::{Value, json};
use service_testkit::TestServer;

use crate::helpers::{item_with, spawn_stock};

fn gid() -> String {
    format!("s2pc:test-coordinator:{}:stock", uuid::Uuid::new_v4())
}

async fn post_json(app: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let resp = app.client.post(format!("{}{path}", app.base_url)).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn prepare(app: &TestServer, gid: &str, item: &str, quantity: i64) -> (u16, Value) {
    let body = json!({"gid": gid, "work": {"kind": "stock", "items": [{"item_id": item, "quantity": quantity}]}});
    post_json(app, "/internal/2pc/prepare", &body).await
}

async fn prepared_count(app: &TestServer) -> u64 {
    app.get("/internal/2pc/metrics").await.1["in_doubt"].as_u64().unwrap()
}

#[tokio::test]
async fn prepare_then_commit_takes_stock_once_even_if_commit_repeats() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 10).await;
    let gid = gid();
    assert_eq!(prepare(&app, &gid, &item, 3).await, (200, json!({"vote": "yes"})));
    assert_eq!(prepared_count(&app).await, 1);
    // Prepared but not committed: the committed value is unchanged.
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 10);
    for _ in 0..3 {
        assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 200);
    }
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 7);
    assert_eq!(prepared_count(&app).await, 0);
    // A committed branch cannot be rolled back.
    assert_eq!(app.post(&format!("/internal/2pc/rollback/{gid}")).await.0, 409);
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 7);
}

#[tokio::test]
async fn rollback_restores_and_repeats_harmlessly() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 10).await;
    let gid = gid();
    assert_eq!(prepare(&app, &gid, &item, 4).await.1["vote"], "yes");
    for _ in 0..3 {
        assert_eq!(app.post(&format!("/internal/2pc/rollback/{gid}")).await.0, 200);
    }
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 10);
    assert_eq!(prepared_count(&app).await, 0);
    assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 409, "a rolled-back branch cannot commit");
}

#[tokio::test]
async fn a_prepare_arriving_after_its_rollback_is_refused() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 10).await;
    let gid = gid();
    // The rollback overtakes the prepare and leaves a tombstone.
    assert_eq!(app.post(&format!("/internal/2pc/rollback/{gid}")).await.0, 200);
    let (status, vote) = prepare(&app, &gid, &item, 1).await;
    assert_eq!(status, 200);
    assert_eq!(vote["vote"], "refused", "{vote}");
    assert_eq!(prepared_count(&app).await, 0);
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 10);
}

#[tokio::test]
async fn business_refusals_vote_no_and_prepare_nothing() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 2).await;
    let (status, vote) = prepare(&app, &gid(), &item, 3).await;
    assert_eq!((status, vote), (200, json!({"vote": "no", "reason": {"OutOfStock": {"item_id": item}}})));
    let (_, vote) = prepare(&app, &gid(), "424242", 1).await;
    assert_eq!(vote, json!({"vote": "no", "reason": {"UnknownItem": {"item_id": "424242"}}}));
    assert_eq!(prepared_count(&app).await, 0);
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 2);
}

#[tokio::test]
async fn malformed_gids_never_reach_sql() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 10).await;
    let injected = format!("s2pc:x:{}:stock'; COMMIT PREPARED 'y", uuid::Uuid::new_v4());
    for bad in [injected.as_str(), "s2pc:x:not-a-uuid:stock", &format!("s2pc:x:{}:payment", uuid::Uuid::new_v4())] {
        assert_eq!(prepare(&app, bad, &item, 1).await.0, 400, "{bad}");
        let encoded = bad.replace('\'', "%27").replace(' ', "%20").replace(';', "%3B");
        assert_eq!(app.post(&format!("/internal/2pc/commit/{encoded}")).await.0, 400, "{bad}");
        assert_eq!(app.post(&format!("/internal/2pc/rollback/{encoded}")).await.0, 400, "{bad}");
    }
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 10);
}

/// Retention forgets only rows no guarantee needs any more: branch outcomes
/// older than the branch retention, inbox rows and untouched step effects
/// older than the dedup retention (a week past the topics' retention).
#[tokio::test]
async fn retention_deletes_only_rows_older_than_their_guarantee() {
    let db = service_testkit::fresh_database("retention").await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    stock_service::MIGRATOR.run(&pool).await.unwrap();
    saga::store::install(&pool, saga::store::Schema::Participant).await.unwrap();
    let branch_days = twopc::participant::BRANCH_RETENTION.as_secs_f64() / 86_400.0;
    let dedup_days = saga::store::DEDUP_RETENTION.as_secs_f64() / 86_400.0;
    for (tag, days) in [("old", branch_days + 1.0), ("young", branch_days - 1.0)] {
        sqlx::query(
            "INSERT INTO twopc_branches (gid, outcome, recorded_at) VALUES ($1, 'aborted', now() - make_interval(days => $2))",
        )
        .bind(format!("s2pc:c:{}:stock-{tag}", uuid::Uuid::new_v4()))
        .bind(days as i32)
        .execute(&pool)
        .await
        .unwrap();
    }
    for days in [dedup_days + 1.0, dedup_days - 1.0] {
        sqlx::query("INSERT INTO saga_inbox (message_id, received_at) VALUES ($1, now() - make_interval(days => $2))")
            .bind(uuid::Uuid::new_v4())
            .bind(days as i32)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO saga_effects (saga_id, order_id, state, updated_at)
             VALUES ($1, 'o', 'tombstone', now() - make_interval(days => $2))",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(days as i32)
        .execute(&pool)
        .await
        .unwrap();
    }
    let keep = twopc::participant::BRANCH_RETENTION;
    assert_eq!(twopc::participant::forget_old_branches(&pool, keep).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT gid FROM twopc_branches").fetch_all(&pool).await.unwrap();
    assert!(left.len() == 1 && left[0].ends_with("stock-young"), "{left:?}");
    assert_eq!(saga::store::forget_old(&pool, saga::store::DEDUP_RETENTION).await.unwrap(), 2);
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool);
    assert_eq!(count("SELECT count(*) FROM saga_inbox").await.unwrap(), 1);
    assert_eq!(count("SELECT count(*) FROM saga_effects").await.unwrap(), 1);
}

/// `batch_init` of an item a prepared branch holds waits for phase two and,
/// when it does not come, answers 409 and changes nothing; after the commit
/// the reset goes through.
#[tokio::test]
async fn batch_init_refuses_with_409_while_a_branch_holds_an_item() {
    let app = spawn_stock().await;
    assert_eq!(app.post("/stock/batch_init/2/10/1").await.0, 200);
    let gid = gid();
    assert_eq!(prepare(&app, &gid, "0", 3).await, (200, json!({"vote": "yes"})));
    let (status, body) = app.post("/stock/batch_init/2/50/1").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("locked by a transaction in flight"), "{body}");
    assert_eq!(app.get("/stock/find/1").await.1["stock"], 10, "the refused reset changed nothing");
    assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 200);
    assert_eq!(app.get("/stock/find/0").await.1["stock"], 7);
    assert_eq!(app.post("/stock/batch_init/2/50/1").await.0, 200);
    assert_eq!(app.get("/stock/find/0").await.1["stock"], 50);
}
