use clap::Parser;
use stock_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    service_common::telemetry::init(config.common.log_json);
    let app = stock_service::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "stock service listening");
    app.run_until(service_common::server::shutdown_signal()).await?;
    tracing::info!("stock service stopped");
    Ok(())
}
