use serde_json::json;

use crate::helpers::{spawn_payment, user_with};

const BAD_IDS: &[&str] =
    &["abc", "-1", "007", "1.5", "%27%3B%20DROP%20TABLE%20users%3B", "6f9619ff8b86d011b42d00cf4fc964ff"];
const BAD_AMOUNTS: &[&str] = &["0", "-5", "abc", "1.5", "1e3", "9223372036854775808", "99999999999999999999999"];

#[tokio::test]
async fn malformed_ids_and_amounts_are_400_and_change_nothing() {
    let app = spawn_payment().await;
    let id = user_with(&app, 10).await;
    let before = app.get(&format!("/payment/find_user/{id}")).await;

    let long_id = "9".repeat(10_000);
    let mut paths = Vec::new();
    for bad in BAD_IDS.iter().copied().chain([long_id.as_str()]) {
        paths.push(format!("/payment/find_user/{bad}"));
        paths.push(format!("/payment/add_funds/{bad}/1"));
        paths.push(format!("/payment/pay/{bad}/1"));
    }
    for bad in BAD_AMOUNTS {
        paths.push(format!("/payment/add_funds/{id}/{bad}"));
        paths.push(format!("/payment/pay/{id}/{bad}"));
    }
    for path in paths {
        let resp = if path.contains("/find_user/") { app.get(&path).await } else { app.post(&path).await };
        assert!((400..500).contains(&resp.0), "{path} answered {resp:?}");
        assert!(resp.1["error"].is_string(), "{path} answered {resp:?}");
    }
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await, before);
}

#[tokio::test]
async fn adding_past_the_maximum_is_400_and_changes_nothing() {
    const MAX: i64 = (1 << 53) - 1;
    let app = spawn_payment().await;
    let id = user_with(&app, 10).await;
    for amount in [i64::MAX, MAX + 1] {
        let (status, body) = app.post(&format!("/payment/add_funds/{id}/{amount}")).await;
        assert_eq!((status, body), (400, json!({"error": format!("amount must be at most {MAX}")})));
    }
    // Each amount fits, the sum does not: a compensation always has headroom.
    assert_eq!(app.post(&format!("/payment/add_funds/{id}/{}", MAX - 10)).await.0, 200);
    let (status, body) = app.post(&format!("/payment/add_funds/{id}/1")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("would exceed the maximum"), "{body}");
    assert_eq!(app.get(&format!("/payment/find_user/{id}")).await.1["credit"], MAX);
}

#[tokio::test]
async fn batch_init_bounds_are_enforced() {
    let app = spawn_payment().await;
    for path in [
        "/payment/batch_init/0/1",
        "/payment/batch_init/1001/1",
        "/payment/batch_init/5/-1",
        "/payment/batch_init/x/1",
        "/payment/batch_init/5/9007199254740992",
    ] {
        assert_eq!(app.post(path).await.0, 400, "{path}");
    }
    assert_eq!(app.get("/payment/find_user/0").await.0, 400, "nothing was created");
}
