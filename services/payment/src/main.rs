use clap::Parser;
use payment_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    service_common::telemetry::init(config.common.log_json);
    let app = payment_service::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "payment service listening");
    app.run_until(service_common::server::shutdown_signal()).await?;
    tracing::info!("payment service stopped");
    Ok(())
}
