#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_common::server::run_binary(
        "order-service",
        "Order service of the checkout benchmark",
        |config: &order_service::Config| &config.common,
        order_service::build,
    )
    .await
}
