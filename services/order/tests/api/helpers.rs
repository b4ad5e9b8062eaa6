use clap::Parser;
use service_testkit::{TestServer, fresh_database, redis_url};

/// An order service and the stock service it prices items with, each on port 0
/// with a database of its own.
pub struct OrderApp {
    pub order: TestServer,
    pub stock: TestServer,
    pub order_db: String,
}

/// Starts the stock and the order service (2PC), sharing the Redis at `redis`
/// (default: the test Redis). No payment service runs: these tests never get
/// as far as a participant.
pub async fn spawn_with_redis(redis: Option<String>) -> OrderApp {
    let redis = redis.unwrap_or_else(redis_url);
    let stock_db = fresh_database("stock").await;
    let mut stock_args = vec!["stock-service", "--database-url", &stock_db, "--redis-url", &redis];
    stock_args.extend(service_testkit::TWOPC_PARTICIPANT_ARGS);
    let stock_config = stock_service::Config::parse_from(stock_args);
    let stock = TestServer::spawn(stock_service::build(stock_config).await.expect("stock starts"));
    let order_db = fresh_database("orders").await;
    let order_config = order_service::Config::parse_from([
        "order-service",
        "--database-url",
        &order_db,
        "--redis-url",
        &redis,
        "--protocol",
        "2pc",
        "--stock-urls",
        &stock.base_url,
        "--payment-urls",
        "http://127.0.0.1:9",
        "--max-batch",
        "1000",
    ]);
    let order = TestServer::spawn(order_service::build(order_config).await.expect("order starts"));
    OrderApp { order, stock, order_db }
}

/// Starts both services on the test Redis.
pub async fn spawn_order() -> OrderApp {
    spawn_with_redis(None).await
}

impl OrderApp {
    /// Creates an order for `user`, returning its id.
    pub async fn order_for(&self, user: &str) -> String {
        let (status, body) = self.order.post(&format!("/orders/create/{user}")).await;
        assert_eq!(status, 200, "{body}");
        body["order_id"].as_str().expect("order_id").to_owned()
    }

    /// Creates an item at `price` in the stock service, returning its id.
    pub async fn item(&self, price: i64) -> String {
        let (status, body) = self.stock.post(&format!("/stock/item/create/{price}")).await;
        assert_eq!(status, 200, "{body}");
        body["item_id"].as_str().expect("item_id").to_owned()
    }

    /// Marks an order paid directly in its database (a checkout's end state).
    pub async fn mark_paid(&self, order_id: &str) {
        self.mark_paid_by(order_id, None).await;
    }

    /// Marks an order paid by a checkout that the call with request id
    /// `request` started.
    pub async fn mark_paid_by(&self, order_id: &str, request: Option<&str>) {
        let pool = sqlx::PgPool::connect(&self.order_db).await.expect("order db");
        sqlx::query("UPDATE orders SET paid = TRUE, checkout_request = $2 WHERE order_id = $1")
            .bind(order_id)
            .bind(request)
            .execute(&pool)
            .await
            .expect("update");
        pool.close().await;
    }
}
