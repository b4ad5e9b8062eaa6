//! The payment service as a 2PC participant, driven directly through its
//! internal endpoints.

use serde_json::{Value, json};
use service_testkit::TestServer;

use crate::helpers::spawn_payment_with_db;

async fn post_json(app: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let resp = app.client.post(format!("{}{path}", app.base_url)).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A checkout dated while a `batch_init` runs: the reset holds user "0" and
/// waits for user "1" (locked by another session for 0.8 s), and the
/// checkout's debit queues on user "0" behind it. Once the reset commits, the
/// debit must refuse (the reset ended after the checkout began), not take
/// from the credit the reset wrote.
#[tokio::test]
async fn a_debit_dated_while_a_reset_ran_refuses_the_rows_it_wrote() {
    let (app, db) = spawn_payment_with_db().await;
    assert_eq!(app.post("/payment/batch_init/2/100").await.0, 200);
    let gid = format!("s2pc:test-coordinator:{}:payment", uuid::Uuid::new_v4());
    let work = |as_of_us| json!({"kind": "payment", "user_id": "0", "amount": 7, "as_of_us": as_of_us});
    let (status, vote) = service_testkit::prepare_dated_during_a_reset(
        &app,
        (&db, ("users", "user_id")),
        "/payment/batch_init/2/100",
        &gid,
        work,
    )
    .await;
    assert_eq!(app.get("/payment/find_user/0").await.1["credit"], 100, "the debit took from the reset's batch: {vote}");
    let refused = json!({"vote": "no", "reason": {"ResetDuringCheckout": {"what": "user 0"}}});
    assert_eq!((status, vote), (200, refused));
}

/// What checkouts debited from a user counts against the maximum until the
/// user's next reset, so no refund can overflow the credit.
#[tokio::test]
async fn what_checkouts_debited_counts_against_the_maximum_until_a_reset() {
    const MAX: i64 = 9_007_199_254_740_991;
    let (app, _) = spawn_payment_with_db().await;
    assert_eq!(app.post(&format!("/payment/batch_init/1/{MAX}")).await.0, 200);
    let gid = format!("s2pc:test-coordinator:{}:payment", uuid::Uuid::new_v4());
    let body = json!({"gid": gid, "work": {"kind": "payment", "user_id": "0", "amount": MAX}});
    assert_eq!(post_json(&app, "/internal/2pc/prepare", &body).await, (200, json!({"vote": "yes"})));
    assert_eq!(app.post(&format!("/internal/2pc/commit/{gid}")).await.0, 200);
    let (status, body) = app.post("/payment/add_funds/0/1").await;
    assert_eq!((status, body), (400, json!({"error": "credit of user 0 would exceed the maximum"})));
    assert_eq!(app.get("/payment/find_user/0").await.1["credit"], 0);
    assert_eq!(app.post("/payment/batch_init/1/5").await.0, 200);
    assert_eq!(app.post("/payment/add_funds/0/1").await.1["credit"], 6);
}
