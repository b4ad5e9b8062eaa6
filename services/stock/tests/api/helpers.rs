use clap::Parser;
use service_testkit::{TWOPC_PARTICIPANT_ARGS, TestServer, fresh_database, redis_url};
use stock_service::Config;

/// A stock service on port 0 with a database of its own.
pub async fn spawn_stock() -> TestServer {
    spawn_stock_with(&["--db-pool-size", "16"]).await
}

/// [`spawn_stock`] with extra command-line settings.
pub async fn spawn_stock_with(extra: &[&str]) -> TestServer {
    spawn_stock_with_db(extra).await.0
}

/// [`spawn_stock_with`], also returning the URL of the service's database.
pub async fn spawn_stock_with_db(extra: &[&str]) -> (TestServer, String) {
    let db = fresh_database("stock").await;
    let redis = redis_url();
    let mut args = vec!["stock-service", "--database-url", &db, "--redis-url", &redis, "--max-batch", "1000"];
    args.extend(TWOPC_PARTICIPANT_ARGS);
    args.extend_from_slice(extra);
    let config = Config::parse_from(args);
    (TestServer::spawn(stock_service::build(config).await.expect("stock service starts")), db.clone())
}

/// Creates an item with `stock` units at `price`, returning its id.
pub async fn item_with(app: &TestServer, price: i64, stock: i64) -> String {
    let (status, body) = app.post(&format!("/stock/item/create/{price}")).await;
    assert_eq!(status, 200, "{body}");
    let id = body["item_id"].as_str().expect("item_id").to_owned();
    if stock > 0 {
        let (status, body) = app.post(&format!("/stock/add/{id}/{stock}")).await;
        assert_eq!(status, 200, "{body}");
    }
    id
}
