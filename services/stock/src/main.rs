#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_common::server::run_binary(
        "stock-service",
        "Stock service of the checkout benchmark",
        |config: &stock_service::Config| &config.common,
        stock_service::build,
    )
    .await
}
