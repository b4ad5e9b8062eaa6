use clap::Parser;
use serde_json::json;

use crate::helpers::{item_with, spawn_stock, spawn_stock_with};

#[tokio::test]
async fn create_then_find_shows_zero_stock_and_the_price() {
    let app = spawn_stock().await;
    let (status, body) = app.post("/stock/item/create/7").await;
    assert_eq!(status, 200);
    let id = body["item_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(app.get(&format!("/stock/find/{id}")).await, (200, json!({"stock": 0, "price": 7})));
}

#[tokio::test]
async fn add_and_subtract_change_stock_and_report_it() {
    let app = spawn_stock().await;
    let id = item_with(&app, 3, 0).await;
    assert_eq!(app.post(&format!("/stock/add/{id}/10")).await, (200, json!({"item_id": id, "stock": 10})));
    assert_eq!(app.post(&format!("/stock/subtract/{id}/4")).await, (200, json!({"item_id": id, "stock": 6})));
    assert_eq!(app.get(&format!("/stock/find/{id}")).await.1, json!({"stock": 6, "price": 3}));
}

#[tokio::test]
async fn over_subtract_is_refused_and_changes_nothing() {
    let app = spawn_stock().await;
    let id = item_with(&app, 3, 5).await;
    let (status, body) = app.post(&format!("/stock/subtract/{id}/6")).await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": format!("insufficient stock for item {id}")}));
    assert_eq!(app.get(&format!("/stock/find/{id}")).await.1["stock"], 5);
    // Exactly all of it is fine.
    assert_eq!(app.post(&format!("/stock/subtract/{id}/5")).await.0, 200);
}

#[tokio::test]
async fn unknown_items_are_400_not_found() {
    let app = spawn_stock().await;
    let missing = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
    let expected = json!({"error": format!("item {missing} not found")});
    assert_eq!(app.get(&format!("/stock/find/{missing}")).await, (400, expected.clone()));
    assert_eq!(app.post(&format!("/stock/add/{missing}/1")).await, (400, expected.clone()));
    assert_eq!(app.post(&format!("/stock/subtract/{missing}/1")).await, (400, expected));
}

#[tokio::test]
async fn batch_init_creates_decimal_ids_and_overwrites_them() {
    let app = spawn_stock().await;
    let (status, body) = app.post("/stock/batch_init/3/100/5").await;
    assert_eq!((status, body), (200, json!({"msg": "Batch init for stock successful"})));
    for id in 0..3 {
        assert_eq!(app.get(&format!("/stock/find/{id}")).await.1, json!({"stock": 100, "price": 5}));
    }
    assert_eq!(app.get("/stock/find/3").await.0, 400);
    app.post("/stock/subtract/1/30").await;
    // Running it again resets the state of those ids, as the course template does.
    assert_eq!(app.post("/stock/batch_init/2/7/9").await.0, 200);
    assert_eq!(app.get("/stock/find/1").await.1, json!({"stock": 7, "price": 9}));
    assert_eq!(app.get("/stock/find/2").await.1, json!({"stock": 100, "price": 5}));
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let app = spawn_stock().await;
    assert_eq!(app.get("/health").await, (200, json!({"status": "ok"})));
    assert_eq!(app.get("/stock/nope").await, (404, json!({"error": "no such endpoint"})));
}

#[tokio::test]
async fn a_protocol_without_its_settings_refuses_to_start_with_a_clear_error() {
    let coordinator = ["--coordinator-urls", "http://127.0.0.1:9"];
    for (protocol, extra, needs) in [
        ("2pc", &[][..], "--coordinator-urls"),
        ("2pc", &coordinator[..], "--peer-token"),
        ("saga", &[], "--kafka-bootstrap"),
    ] {
        let db = service_testkit::fresh_database("stock").await;
        let mut args = vec!["stock-service", "--database-url", &db, "--protocol", protocol];
        args.extend_from_slice(extra);
        let config = stock_service::Config::parse_from(args);
        let err = stock_service::build(config).await.expect_err("the protocol lacks its settings").to_string();
        assert!(err.contains(needs), "{protocol}: {err}");
    }
}

/// A service started without `--enable-crashpoints` (as deployed) serves no
/// crash-point endpoint: arming one is a 404 and arms nothing.
#[tokio::test]
async fn crash_points_are_off_without_the_flag() {
    let app = spawn_stock().await;
    let (status, body) = app.post("/internal/crashpoints/saga.orchestrator.after_stock_reserved").await;
    assert_eq!((status, body), (404, json!({"error": "no such endpoint"})));
    assert_eq!(app.client.delete(format!("{}/internal/crashpoints", app.base_url)).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn only_a_known_crash_point_can_be_armed() {
    let app = spawn_stock_with(&["--enable-crashpoints"]).await;
    let (status, body) = app.post("/internal/crashpoints/saga.relay.after_publsh").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("saga.relay.after_publish"), "names the known points: {body}");
    // A saga point: never reached by this 2PC service, nor by the tests
    // running next to this one in the process.
    let (status, body) = app.post("/internal/crashpoints/saga.orchestrator.after_stock_reserved").await;
    assert_eq!((status, body["armed"].as_str()), (200, Some("saga.orchestrator.after_stock_reserved")), "{body}");
    protocol_core::crashpoint::disarm_all();
}
