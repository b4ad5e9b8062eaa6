use serde_json::json;

use crate::helpers::spawn_order;

const BAD_IDS: &[&str] =
    &["abc", "-1", "007", "1.5", "%27%3B%20DROP%20TABLE%20orders%3B", "6f9619ff8b86d011b42d00cf4fc964ff"];
const BAD_QUANTITIES: &[&str] = &["0", "-5", "abc", "1.5", "9223372036854775808"];

#[tokio::test]
async fn malformed_parameters_are_400_and_change_nothing() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    let item = app.item(5).await;
    app.order.post(&format!("/orders/addItem/{order_id}/{item}/1")).await;
    let before = app.order.get(&format!("/orders/find/{order_id}")).await;

    let long_id = "9".repeat(10_000);
    let mut posts = Vec::new();
    let mut gets = Vec::new();
    for bad in BAD_IDS.iter().copied().chain([long_id.as_str()]) {
        posts.push(format!("/orders/create/{bad}"));
        posts.push(format!("/orders/addItem/{bad}/{item}/1"));
        posts.push(format!("/orders/addItem/{order_id}/{bad}/1"));
        posts.push(format!("/orders/checkout/{bad}"));
        gets.push(format!("/orders/find/{bad}"));
    }
    for bad in BAD_QUANTITIES {
        posts.push(format!("/orders/addItem/{order_id}/{item}/{bad}"));
    }
    for bad in [
        "0/1/1/1",
        "5/0/1/1",
        "5/1/0/1",
        "5/1/1/-1",
        "1001/1/1/1",
        "5/1/1/4611686018427387904",
        "5/1/1/4503599627370496",
    ] {
        posts.push(format!("/orders/batch_init/{bad}"));
    }
    for path in &posts {
        let resp = app.order.post(path).await;
        assert!((400..500).contains(&resp.0), "{path} answered {resp:?}");
        assert!(resp.1["error"].is_string(), "{path} answered {resp:?}");
    }
    for path in &gets {
        assert_eq!(app.order.get(path).await.0, 400, "{path}");
    }
    assert_eq!(app.order.get(&format!("/orders/find/{order_id}")).await, before);
    assert_eq!(app.order.get("/orders/find/0").await.0, 400, "no batch was created");
}

#[tokio::test]
async fn totals_above_the_maximum_are_400_and_change_nothing() {
    const MAX: i64 = (1 << 53) - 1;
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    let pricey = app.item(MAX / 2).await;
    // quantity x price passes the maximum
    assert_eq!(
        app.order.post(&format!("/orders/addItem/{order_id}/{pricey}/3")).await,
        (400, json!({"error": format!("quantity x price must be at most {MAX}")}))
    );
    // each line fits, the total does not
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{pricey}/2")).await.0, 200);
    assert_eq!(
        app.order.post(&format!("/orders/addItem/{order_id}/{pricey}/1")).await,
        (400, json!({"error": format!("an order's total_cost must be at most {MAX}")}))
    );
    // free items: the units of one order are bounded too, so every stock line fits
    let free = app.item(0).await;
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{free}/{}", MAX - 2)).await.0, 200);
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{free}/1")).await.0, 400);
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{free}/{}", MAX + 1)).await.0, 400);
    let (_, order) = app.order.get(&format!("/orders/find/{order_id}")).await;
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert_eq!(order["total_cost"], (MAX / 2) * 2);
}
