use clap::Parser;
use payment_service::Config;
use service_testkit::{TWOPC_PARTICIPANT_ARGS, TestServer, fresh_database};

/// A payment service on port 0 with a database of its own.
pub async fn spawn_payment() -> TestServer {
    spawn_payment_with_db().await.0
}

/// [`spawn_payment`], also returning the URL of the service's database.
pub async fn spawn_payment_with_db() -> (TestServer, String) {
    let db = fresh_database("payment").await;
    let mut args = vec!["payment-service", "--database-url", &db, "--db-pool-size", "16", "--max-batch", "1000"];
    args.extend(TWOPC_PARTICIPANT_ARGS);
    let config = Config::parse_from(args);
    (TestServer::spawn(payment_service::build(config).await.expect("payment service starts")), db.clone())
}

/// Creates a user with `credit`, returning its id.
pub async fn user_with(app: &TestServer, credit: i64) -> String {
    let (status, body) = app.post("/payment/create_user").await;
    assert_eq!(status, 200, "{body}");
    let id = body["user_id"].as_str().expect("user_id").to_owned();
    if credit > 0 {
        let (status, body) = app.post(&format!("/payment/add_funds/{id}/{credit}")).await;
        assert_eq!(status, 200, "{body}");
    }
    id
}
