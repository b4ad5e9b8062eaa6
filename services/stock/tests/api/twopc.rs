//! The stock service as a 2PC participant, driven directly through its internal
//! endpoints: votes, idempotent phase two, tombstones.

use serde_json::{Value, json};
use service_testkit::TestServer;

use crate::helpers::{item_with, spawn_stock, spawn_stock_with, spawn_stock_with_db};

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

/// A prepare of one unit the coordinator lets wait at most `lock_wait_ms`
/// for its row.
async fn prepare_within(app: &TestServer, gid: &str, item: &str, lock_wait_ms: u64) -> Value {
    prepare_on(&app.client, &app.base_url, gid, item, lock_wait_ms).await
}

async fn prepare_on(http: &reqwest::Client, base: &str, gid: &str, item: &str, lock_wait_ms: u64) -> Value {
    let body = json!({
        "gid": gid,
        "work": {"kind": "stock", "items": [{"item_id": item, "quantity": 1}]},
        "lock_wait_ms": lock_wait_ms,
    });
    let resp = http.post(format!("{base}/internal/2pc/prepare")).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

/// Prepares `queued` branches of one unit of one item at once while another
/// branch holds it, and plays the coordinator: each branch is committed as
/// soon as it votes yes, which lets the next one in. Returns the votes.
async fn queue_prepares_behind_a_held_row(app: &TestServer, queued: usize) -> Vec<Value> {
    let item = item_with(app, 1, 100).await;
    let first = gid();
    assert_eq!(prepare(app, &first, &item, 1).await.1["vote"], "yes");
    let (votes_tx, mut votes) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..queued {
        let (http, base, item, votes_tx) = (app.client.clone(), app.base_url.clone(), item.clone(), votes_tx.clone());
        tokio::spawn(async move {
            let gid = gid();
            let vote = prepare_on(&http, &base, &gid, &item, 3_000).await;
            votes_tx.send((gid, vote)).unwrap();
        });
    }
    // Let every prepare reach the row lock (or the pool) before the holder's
    // phase two is sent.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.post(&format!("/internal/2pc/commit/{first}")).await.0, 200);
    let mut seen = Vec::new();
    while seen.len() < queued {
        let (gid, vote) = votes.recv().await.unwrap();
        if vote["vote"] == "yes" {
            assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 200);
        }
        seen.push(vote);
    }
    assert_eq!(prepared_count(app).await, 0);
    seen
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

/// A prepare that cannot win its row within the lock budget the coordinator
/// sent votes no (busy) at once, prepares nothing, and takes nothing.
#[tokio::test]
async fn a_prepare_that_cannot_win_its_row_within_the_budget_votes_busy() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 10).await;
    let holder = gid();
    assert_eq!(prepare(&app, &holder, &item, 2).await.1["vote"], "yes");
    let vote = prepare_within(&app, &gid(), &item, 200).await;
    assert_eq!(vote["vote"], "no", "{vote}");
    assert_eq!(vote["reason"]["Busy"]["what"], "stock", "{vote}");
    assert!(vote["reason"]["Busy"]["waited_ms"].as_u64().unwrap() >= 200, "{vote}");
    assert_eq!(prepared_count(&app).await, 1, "only the holder is prepared");
    assert_eq!(app.get("/internal/2pc/metrics").await.1["busy"], 1);
    assert_eq!(app.post(&format!("/internal/2pc/rollback/{holder}")).await.0, 200);
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 10);
}

/// More prepares queued on one row than the pool has connections: phase two
/// of the branch holding the row runs on connections of its own, so every
/// queued prepare gets its turn. With one shared pool (protocol pool size 0,
/// how this used to be) the holder's commit waits for a connection that only
/// the queued prepares' lock budget frees, and they all vote busy: the
/// scenario does provoke the starvation it guards against.
#[tokio::test]
async fn prepares_queued_on_a_row_never_starve_the_phase_two_that_frees_it() {
    let app = spawn_stock_with(&["--db-pool-size", "2", "--db-protocol-pool-size", "2"]).await;
    let votes = queue_prepares_behind_a_held_row(&app, 6).await;
    assert!(votes.iter().all(|v| v["vote"] == "yes"), "{votes:?}");
    assert_eq!(app.get("/internal/2pc/metrics").await.1["busy"], 0);

    let shared = spawn_stock_with(&["--db-pool-size", "2", "--db-protocol-pool-size", "0"]).await;
    let votes = queue_prepares_behind_a_held_row(&shared, 6).await;
    assert!(votes.iter().any(|v| v["reason"]["Busy"].is_object()), "no starvation with a shared pool: {votes:?}");
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
    twopc::schema::install(&pool, twopc::schema::Schema::Participant).await.unwrap();
    saga::schema::install(&pool, saga::schema::Schema::Participant).await.unwrap();
    let branch_days = twopc::participant::BRANCH_RETENTION.as_secs_f64() / 86_400.0;
    let dedup_days = saga::inbox::DEDUP_RETENTION.as_secs_f64() / 86_400.0;
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
    assert_eq!(saga::inbox::forget_old(&pool, saga::inbox::DEDUP_RETENTION).await.unwrap(), 2);
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

/// The protocol's calls are for the stack's own peers: without the peer
/// token (or with another) prepare, commit and rollback are refused with 401
/// and change nothing; the metrics stay open to observers.
#[tokio::test]
async fn protocol_calls_without_the_peer_token_are_refused_and_change_nothing() {
    let app = spawn_stock().await;
    let item = item_with(&app, 1, 10).await;
    let held = gid();
    assert_eq!(prepare(&app, &held, &item, 2).await.1["vote"], "yes");
    let stranger = reqwest::Client::new();
    let forged = "Bearer not-the-token-0123456789";
    let body = json!({"gid": gid(), "work": {"kind": "stock", "items": [{"item_id": item, "quantity": 1}]}});
    for auth in [None, Some(forged)] {
        let call = |path: String| {
            let mut req = stranger.post(format!("{}{path}", app.base_url));
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            req
        };
        let prepared = call("/internal/2pc/prepare".to_owned()).json(&body).send().await.unwrap();
        assert_eq!(prepared.status().as_u16(), 401);
        for phase_two in ["commit", "rollback"] {
            let resp = call(format!("/internal/2pc/{phase_two}/{held}")).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{phase_two}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body, json!({"error": "this endpoint is for the stack's own services"}));
        }
    }
    assert_eq!(stranger.get(format!("{}/internal/2pc/metrics", app.base_url)).send().await.unwrap().status(), 200);
    assert_eq!(prepared_count(&app).await, 1, "the held branch is still prepared, no other was");
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 10);
    assert_eq!(app.post(&format!("/internal/2pc/commit/{held}")).await.0, 200, "the peer's own call goes through");
    assert_eq!(app.get(&format!("/stock/find/{item}")).await.1["stock"], 8);
}

/// What checkouts took from a row counts against the maximum until the
/// row's next reset: a row refilled while a saga's reservation of it is
/// outstanding could otherwise be given back past `bigint` by enough such
/// compensations (each then failing with 22003 and dead-lettered).
#[tokio::test]
async fn what_checkouts_took_counts_against_the_maximum_until_a_reset() {
    const MAX: i64 = 9_007_199_254_740_991;
    let app = spawn_stock().await;
    assert_eq!(app.post(&format!("/stock/batch_init/1/{MAX}/1")).await.0, 200);
    let gid = gid();
    assert_eq!(prepare(&app, &gid, "0", MAX).await.1["vote"], "yes");
    assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 200);
    assert_eq!(app.get("/stock/find/0").await.1["stock"], 0);
    for amount in [1, MAX] {
        let (status, body) = app.post(&format!("/stock/add/0/{amount}")).await;
        assert_eq!((status, body), (400, json!({"error": "stock of item 0 would exceed the maximum"})));
    }
    assert_eq!(app.get("/stock/find/0").await.1["stock"], 0, "the refused adds changed nothing");
    // A reset starts the count again.
    assert_eq!(app.post("/stock/batch_init/1/5/1").await.0, 200);
    assert_eq!(app.post("/stock/add/0/1").await.1["stock"], 6);
}

/// A checkout dated while a `batch_init` runs: the reset holds item "0" and
/// waits for item "1" (locked by another session for 0.8 s), and the
/// checkout's branch queues on item "0" behind the reset. Once the reset
/// commits, the branch must refuse (the reset ended after the checkout began),
/// not take from the batch the reset wrote: that unit would be gone with no
/// paid order behind it once the order's own reset made the order unpaid.
#[tokio::test]
async fn a_branch_dated_while_a_reset_ran_refuses_the_rows_it_wrote() {
    let (app, db) = spawn_stock_with_db(&["--db-pool-size", "16"]).await;
    assert_eq!(app.post("/stock/batch_init/2/10/1").await.0, 200);
    let work = |as_of_us| json!({"kind": "stock", "items": [{"item_id": "0", "quantity": 1}], "as_of_us": as_of_us});
    let (status, vote) = service_testkit::prepare_dated_during_a_reset(
        &app,
        (&db, ("items", "item_id")),
        "/stock/batch_init/2/10/1",
        &gid(),
        work,
    )
    .await;
    assert_eq!(app.get("/stock/find/0").await.1["stock"], 10, "the branch took from the reset's batch: {vote}");
    let refused = json!({"vote": "no", "reason": {"ResetDuringCheckout": {"what": "item 0"}}});
    assert_eq!((status, vote), (200, refused));
}

/// A database made before the 2PC tables moved from the services' migrations
/// (0002) to the protocol: its migration history lists 0002 and it holds the
/// table as that migration made it. The service connects (the moved entry is
/// forgotten, so sqlx does not refuse it as missing), and the protocol's
/// install adopts the table and its rows.
#[tokio::test]
async fn a_database_from_before_the_2pc_tables_moved_still_starts() {
    let db = service_testkit::fresh_database("schema-upgrade").await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    stock_service::MIGRATOR.run(&pool).await.unwrap();
    // What migration 0002 did, and its entry in the history.
    sqlx::raw_sql(
        "CREATE TABLE twopc_branches (
             gid TEXT PRIMARY KEY,
             outcome TEXT NOT NULL CHECK (outcome IN ('committed', 'aborted')),
             recorded_at TIMESTAMPTZ NOT NULL DEFAULT now());
         INSERT INTO twopc_branches (gid, outcome) VALUES ('s2pc:c:old:stock', 'aborted');
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (2, 'twopc branches', true, '\\x00', 1);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let pool =
        service_common::db::connect(&db, 2, &stock_service::MIGRATOR).await.expect("the moved entry is forgotten");
    for _ in 0..2 {
        twopc::schema::install(&pool, twopc::schema::Schema::Participant).await.unwrap();
    }
    let gids: Vec<String> = sqlx::query_scalar("SELECT gid FROM twopc_branches").fetch_all(&pool).await.unwrap();
    assert_eq!(gids, ["s2pc:c:old:stock"]);
    let recorded: Vec<String> = sqlx::query_scalar("SELECT name FROM protocol_schema").fetch_all(&pool).await.unwrap();
    assert_eq!(recorded, ["2pc-participant"]);
}
