use futures::future::join_all;

use crate::helpers::spawn_order;

/// Concurrent `addItem` calls on one order all land: one line each, and the
/// total is their sum (the order row lock serialises them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_add_items_all_land_once() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    let item = app.item(3).await;
    let path = format!("/orders/addItem/{order_id}/{item}/2");
    let replies = join_all((0..200).map(|_| app.order.post(&path))).await;
    assert!(replies.iter().all(|(s, _)| *s == 200), "{:?}", replies.iter().find(|(s, _)| *s != 200));
    let (_, order) = app.order.get(&format!("/orders/find/{order_id}")).await;
    assert_eq!(order["items"].as_array().unwrap().len(), 200);
    assert_eq!(order["total_cost"], 200 * 6);
}
