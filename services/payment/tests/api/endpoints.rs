use serde_json::json;

use crate::helpers::{spawn_payment, user_with};

#[tokio::test]
async fn create_user_then_find_shows_zero_credit() {
    let app = spawn_payment().await;
    let (status, body) = app.post("/payment/create_user").await;
    assert_eq!(status, 200);
    let id = body["user_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await, (200, json!({"user_id": id, "credit": 0})));
}

#[tokio::test]
async fn add_funds_and_pay_change_credit_and_report_it() {
    let app = spawn_payment().await;
    let id = user_with(&app, 0).await;
    assert_eq!(app.post(&format!("/payment/add_funds/{id}/20")).await, (200, json!({"user_id": id, "credit": 20})));
    assert_eq!(app.post(&format!("/payment/pay/{id}/15")).await, (200, json!({"user_id": id, "credit": 5})));
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await.1["credit"], 5);
}

#[tokio::test]
async fn overpay_is_refused_and_changes_nothing() {
    let app = spawn_payment().await;
    let id = user_with(&app, 10).await;
    let (status, body) = app.post(&format!("/payment/pay/{id}/11")).await;
    assert_eq!((status, body), (400, json!({"error": format!("insufficient credit for user {id}")})));
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await.1["credit"], 10);
    assert_eq!(app.post(&format!("/payment/pay/{id}/10")).await.0, 200);
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await.1["credit"], 0);
}

#[tokio::test]
async fn unknown_users_are_400_not_found() {
    let app = spawn_payment().await;
    let expected = json!({"error": "user 12345 not found"});
    assert_eq!(app.get("/payment/find_user/12345").await, (400, expected.clone()));
    assert_eq!(app.post("/payment/add_funds/12345/1").await, (400, expected.clone()));
    assert_eq!(app.post("/payment/pay/12345/1").await, (400, expected));
}

#[tokio::test]
async fn batch_init_creates_decimal_ids_and_overwrites_them() {
    let app = spawn_payment().await;
    assert_eq!(app.post("/payment/batch_init/3/100").await, (200, json!({"msg": "Batch init for users successful"})));
    for id in 0..3 {
        assert_eq!(
            app.get(&format!("/payment/find_user/{id}")).await.1,
            json!({"user_id": id.to_string(), "credit": 100})
        );
    }
    assert_eq!(app.get("/payment/find_user/3").await.0, 400);
    app.post("/payment/pay/0/60").await;
    assert_eq!(app.post("/payment/batch_init/1/5").await.0, 200);
    assert_eq!(app.get("/payment/find_user/0").await.1["credit"], 5);
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let app = spawn_payment().await;
    assert_eq!(app.get("/health").await, (200, json!({"status": "ok"})));
    assert_eq!(app.post("/payment/refund/1/1").await, (404, json!({"error": "no such endpoint"})));
}
