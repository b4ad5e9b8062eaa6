#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_common::server::run_binary(
        "payment-service",
        "Payment service of the checkout benchmark",
        |config: &payment_service::Config| &config.common,
        payment_service::build,
    )
    .await
}
