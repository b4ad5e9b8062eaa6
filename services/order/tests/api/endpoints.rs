use clap::Parser;
use serde_json::json;

use crate::helpers::{spawn_order, spawn_with_redis};

#[tokio::test]
async fn create_then_find_shows_an_empty_unpaid_order() {
    let app = spawn_order().await;
    let order_id = app.order_for("42").await;
    assert_eq!(order_id.len(), 36, "a UUID: {order_id}");
    assert_eq!(
        app.order.get(&format!("/orders/find/{order_id}")).await,
        (200, json!({"order_id": order_id, "paid": false, "items": [], "user_id": "42", "total_cost": 0}))
    );
}

#[tokio::test]
async fn add_item_prices_from_stock_and_keeps_lines_in_order() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    let a = app.item(5).await;
    let b = app.item(7).await;
    assert_eq!(
        app.order.post(&format!("/orders/addItem/{order_id}/{a}/2")).await,
        (200, json!({"order_id": order_id, "total_cost": 10}))
    );
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{b}/1")).await.1["total_cost"], 17);
    // The same item again is a second line, as in the course template.
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{a}/1")).await.1["total_cost"], 22);
    let (_, order) = app.order.get(&format!("/orders/find/{order_id}")).await;
    assert_eq!(order["items"], json!([[a, 2], [b, 1], [a, 1]]));
    assert_eq!(order["total_cost"], 22);
}

#[tokio::test]
async fn add_item_refuses_unknown_items_and_orders() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    let item = app.item(5).await;
    assert_eq!(
        app.order.post(&format!("/orders/addItem/{order_id}/999999/1")).await,
        (400, json!({"error": "item 999999 not found"}))
    );
    assert_eq!(
        app.order.post(&format!("/orders/addItem/123/{item}/1")).await,
        (400, json!({"error": "order 123 not found"}))
    );
    assert_eq!(app.order.get(&format!("/orders/find/{order_id}")).await.1["total_cost"], 0);
}

#[tokio::test]
async fn add_item_to_a_paid_order_is_refused_and_changes_nothing() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    let item = app.item(5).await;
    app.order.post(&format!("/orders/addItem/{order_id}/{item}/1")).await;
    app.mark_paid(&order_id).await;
    assert_eq!(
        app.order.post(&format!("/orders/addItem/{order_id}/{item}/1")).await,
        (400, json!({"error": format!("order {order_id} is already paid")}))
    );
    let (_, order) = app.order.get(&format!("/orders/find/{order_id}")).await;
    assert_eq!((order["total_cost"].clone(), order["items"].clone()), (json!(5), json!([[item, 1]])));
}

#[tokio::test]
async fn unknown_orders_are_400_not_found() {
    let app = spawn_order().await;
    let expected = json!({"error": "order 77 not found"});
    assert_eq!(app.order.get("/orders/find/77").await, (400, expected.clone()));
    assert_eq!(app.order.post("/orders/checkout/77").await, (400, expected));
}

#[tokio::test]
async fn batch_init_makes_two_line_orders_over_the_given_ranges() {
    let app = spawn_order().await;
    assert_eq!(
        app.order.post("/orders/batch_init/50/4/3/6").await,
        (200, json!({"msg": "Batch init for orders successful"}))
    );
    for id in 0..50 {
        let (status, order) = app.order.get(&format!("/orders/find/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(order["paid"], false);
        assert_eq!(order["total_cost"], 12);
        let user: u32 = order["user_id"].as_str().unwrap().parse().unwrap();
        assert!(user < 3);
        let items = order["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        for line in items {
            let item: u32 = line[0].as_str().unwrap().parse().unwrap();
            assert!(item < 4);
            assert_eq!(line[1], 1);
        }
    }
    assert_eq!(app.order.get("/orders/find/50").await.0, 400);
    // Running it again overwrites: still two lines, unpaid.
    app.mark_paid("3").await;
    assert_eq!(app.order.post("/orders/batch_init/10/4/3/1").await.0, 200);
    let (_, order) = app.order.get("/orders/find/3").await;
    assert_eq!((order["paid"].clone(), order["total_cost"].clone()), (json!(false), json!(2)));
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn saga_without_a_broker_refuses_to_start_with_a_clear_error() {
    let config = order_service::Config::parse_from([
        "order-service",
        "--database-url",
        &service_testkit::fresh_database("orders").await,
        "--protocol",
        "saga",
        "--stock-urls",
        "http://127.0.0.1:9",
        "--payment-urls",
        "http://127.0.0.1:9",
    ]);
    let err = order_service::build(config).await.expect_err("a saga needs a broker").to_string();
    assert!(err.contains("--kafka-bootstrap"), "{err}");
}

#[tokio::test]
async fn checkout_of_a_paid_order_is_200_and_charges_nothing() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    app.mark_paid(&order_id).await;
    assert_eq!(
        app.order.post(&format!("/orders/checkout/{order_id}")).await,
        (200, json!({"order_id": order_id, "paid": true, "outcome": "already_paid"}))
    );
}

/// The call whose own earlier try started the checkout that paid the order
/// (a gateway retry keeps the gateway's id) is told "paid"; every other call
/// "already_paid", whatever `X-Request-Id` it chose (a client's own id claims
/// nothing). A malformed gateway id is a 400 that changes nothing.
#[tokio::test]
async fn a_paid_order_answers_paid_to_the_request_that_paid_it() {
    let app = spawn_order().await;
    let order_id = app.order_for("1").await;
    app.mark_paid_by(&order_id, Some("req-1")).await;
    let path = format!("/orders/checkout/{order_id}");
    let answer = |outcome| (200, json!({"order_id": order_id, "paid": true, "outcome": outcome}));
    assert_eq!(app.order.post_with_header(&path, "X-Gateway-Request-Id", "req-1").await, answer("paid"));
    assert_eq!(app.order.post_with_header(&path, "X-Gateway-Request-Id", "req-2").await, answer("already_paid"));
    assert_eq!(app.order.post_with_header(&path, "X-Request-Id", "req-1").await, answer("already_paid"));
    assert_eq!(app.order.post(&path).await, answer("already_paid"));
    let (status, body) = app.order.post_with_header(&path, "X-Gateway-Request-Id", &"x".repeat(65)).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "X-Gateway-Request-Id must be 1 to 64 visible ASCII characters")
    );
}

/// Prices come from the Redis cache after the first lookup, and stock's
/// `batch_init` (which may change prices) invalidates them.
#[tokio::test]
async fn cached_prices_are_used_and_invalidated_by_stock_batch_init() {
    // A Redis database of its own: batch ids "0".."n-1" are shared keys.
    let redis = format!("{}/7", service_testkit::redis_url().trim_end_matches('/'));
    let app = spawn_with_redis(Some(redis.clone())).await;
    assert_eq!(app.stock.post("/stock/batch_init/2/10/5").await.0, 200);
    let order_id = app.order_for("1").await;
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/0/1")).await.1["total_cost"], 5);

    let mut conn = redis::Client::open(redis).unwrap().get_multiplexed_async_connection().await.unwrap();
    let cached: Option<i64> = redis::cmd("GET").arg("price:0").query_async(&mut conn).await.unwrap();
    assert_eq!(cached, Some(5));

    assert_eq!(app.stock.post("/stock/batch_init/2/10/9").await.0, 200);
    let cached: Option<i64> = redis::cmd("GET").arg("price:0").query_async(&mut conn).await.unwrap();
    assert_eq!(cached, None, "batch_init invalidates the cached price");
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/0/1")).await.1["total_cost"], 14);
}

/// Redis is an optimisation: with it unreachable, services start and `addItem`
/// prices from the stock service.
#[tokio::test]
async fn add_item_works_without_redis() {
    let app = spawn_with_redis(Some("redis://127.0.0.1:9".to_owned())).await;
    let order_id = app.order_for("1").await;
    let item = app.item(4).await;
    assert_eq!(app.order.post(&format!("/orders/addItem/{order_id}/{item}/2")).await.1["total_cost"], 8);
    assert_eq!(app.stock.post("/stock/batch_init/2/1/1").await.0, 200);
}

/// An `addItem` that read a price just before a stock `batch_init` committed
/// cannot write that stale price back after the invalidation.
#[tokio::test]
async fn a_price_read_before_an_invalidation_is_not_cached_after_it() {
    use service_common::price_cache::PriceCache;
    let redis = format!("{}/8", service_testkit::redis_url().trim_end_matches('/'));
    let cache = PriceCache::new(Some(&redis)).unwrap();
    let item = format!("stale-{}", uuid_like());
    let before = cache.epoch().await.expect("redis reachable");
    cache.invalidate(vec![item.clone()]).await.unwrap(); // batch_init committed meanwhile
    cache.put(&item, 5, before).await;
    assert_eq!(cache.get(&item).await, None, "the stale price was cached");
    let now = cache.epoch().await.unwrap();
    cache.put(&item, 7, now).await;
    assert_eq!(cache.get(&item).await, Some(7));
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// The coordinator's resolve is for the stack's participants: without the
/// peer token (or with another) it is refused with 401 and decides nothing;
/// a participant presenting the token gets the presumed abort.
#[tokio::test]
async fn resolve_without_the_peer_token_is_refused_and_decides_nothing() {
    let app = spawn_order().await;
    let gid = "s2pc:order:6f9619ff-8b86-d011-b42d-00cf4fc964ff:stock";
    let url = format!("{}/internal/2pc/resolve/{gid}", app.order.base_url);
    let stranger = reqwest::Client::new();
    assert_eq!(stranger.post(&url).send().await.unwrap().status(), 401);
    let forged = stranger.post(&url).header("Authorization", "Bearer not-the-token-0123456789").send().await;
    assert_eq!(forged.unwrap().status(), 401);
    let pool = sqlx::PgPool::connect(&app.order_db).await.unwrap();
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM twopc_decisions").fetch_one(&pool).await.unwrap();
    assert_eq!(decisions, 0, "a refused resolve decided nothing");
    let (status, body) = app.order.post(&format!("/internal/2pc/resolve/{gid}")).await;
    assert_eq!((status, body), (200, json!({"decision": "abort"})));
    pool.close().await;
}
