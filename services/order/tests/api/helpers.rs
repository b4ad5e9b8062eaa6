use clap::Parser;
use service_testkit::{TestServer, fresh_database, redis_url};

/// An order service, the stock service it prices items with and the payment
/// service it checks users with, each on port 0 with a database of its own.
pub struct OrderApp {
    pub order: TestServer,
    pub stock: TestServer,
    pub order_db: String,
    // Kept running for `create`'s user check.
    _payment: TestServer,
}

/// Users `"0".."99"` exist in the payment service (with no credit): these
/// tests check orders out only as far as the order service decides alone.
const USERS: u32 = 100;

/// Starts the stock, the payment and the order service (2PC), sharing the
/// Redis at `redis` (default: the test Redis).
pub async fn spawn_with_redis(redis: Option<String>) -> OrderApp {
    let redis = redis.unwrap_or_else(redis_url);
    let stock_db = fresh_database("stock").await;
    let mut stock_args = vec!["stock-service", "--database-url", &stock_db, "--redis-url", &redis];
    stock_args.extend(service_testkit::TWOPC_PARTICIPANT_ARGS);
    let stock_config = stock_service::Config::parse_from(stock_args);
    let stock = TestServer::spawn(stock_service::build(stock_config).await.expect("stock starts"));
    let payment_db = fresh_database("payment").await;
    let mut payment_args = vec!["payment-service", "--database-url", &payment_db];
    payment_args.extend(service_testkit::TWOPC_PARTICIPANT_ARGS);
    let payment_config = payment_service::Config::parse_from(payment_args);
    let payment = TestServer::spawn(payment_service::build(payment_config).await.expect("payment starts"));
    assert_eq!(payment.post(&format!("/payment/batch_init/{USERS}/0")).await.0, 200);
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
        &payment.base_url,
        "--max-batch",
        "1000",
        "--peer-token",
        service_testkit::PEER_TOKEN,
    ]);
    let order = TestServer::spawn(order_service::build(order_config).await.expect("order starts"));
    OrderApp { order, stock, order_db, _payment: payment }
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
