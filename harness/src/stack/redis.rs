//! Redis: the price cache and the checkout-completion notifications. Nothing in
//! it is a source of truth, so persistence is off.

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use super::config::StackConfig;
use super::process::{Spec, find_program};
use crate::wait::{self, Probe};

/// How to run Redis.
pub fn spec(config: &StackConfig) -> anyhow::Result<Spec> {
    let dir = config.run_dir.join("redis");
    std::fs::create_dir_all(&dir)?;
    let program = find_program("redis-server", &["/usr/bin", "/usr/sbin"])
        .context("redis-server not found (run harness/scripts/setup.sh)")?;
    let args = [
        "--bind",
        "127.0.0.1",
        "--port",
        &config.redis_port().to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        &dir.display().to_string(),
        "--maxclients",
        "10000",
    ]
    .map(str::to_owned)
    .to_vec();
    Ok(Spec {
        name: "redis".to_owned(),
        program,
        args,
        env: Vec::new(),
        cwd: None,
        user: None,
        log: config.run_dir.join("logs").join("redis.log"),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        listener: None,
    })
}

/// Waits until Redis answers `PING`.
pub async fn wait_ready(config: &StackConfig, timeout: Duration) -> anyhow::Result<()> {
    let client = redis::Client::open(config.redis_url())?;
    wait::until("redis", timeout, || async {
        let attempt = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        Ok(Probe::of(attempt.await.map(drop)))
    })
    .await
}
