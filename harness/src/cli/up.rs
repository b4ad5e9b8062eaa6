//! `harness up` (in the foreground or `--detach`ed) and `harness down`.

use std::process::{ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use protocol_core::ProtocolKind;

use super::parse_protocol;
use super::stack_args::{RunDirArg, StackArgs, absolute, stack_config};
use crate::stack::{self, Stack, StackConfig, StackState};
use crate::wait::{self, Probe};
#[derive(Debug, Args)]
pub(super) struct UpArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Checkout protocol of the order service.
    #[arg(long, value_parser = parse_protocol)]
    protocol: ProtocolKind,
    /// Return once the stack is ready and leave it running (stop it with `down`).
    #[arg(long)]
    detach: bool,
    /// Keep the databases of the previous run instead of starting empty.
    #[arg(long)]
    keep_data: bool,
    /// Start only PostgreSQL, Kafka and Redis (for tests and development).
    #[arg(long)]
    infra_only: bool,
}

/// Starts the stack and supervises it until a signal (or, detached, returns
/// once a background supervisor reports it ready).
impl UpArgs {
    /// Its stack flags (for the command-line tests).
    #[cfg(test)]
    pub(super) fn stack_args(&self) -> &StackArgs {
        &self.stack
    }
}

pub(super) async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let config = stack_config(&args.stack, args.protocol, args.keep_data, args.infra_only)?;
    stack::ensure_not_running(&config.run_dir)?;
    if args.detach {
        return detach(&config).await;
    }
    let mut stack = Stack::start(config.clone()).await?;
    println!("{}", ready_line(&config));
    stack.supervise(shutdown_signal()).await;
    tracing::info!("stopping the stack");
    stack.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn ready_line(config: &StackConfig) -> String {
    if config.infra_only {
        format!("ready: infrastructure only (run dir {})", config.run_dir.display())
    } else {
        format!(
            "ready: protocol {} at gateway {} (run dir {})",
            config.protocol,
            config.gateway_url(),
            config.run_dir.display()
        )
    }
}

/// Re-runs `up` without `--detach` as a background supervisor in its own process
/// group, and returns once it reports the stack ready.
async fn detach(config: &StackConfig) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;

    std::fs::create_dir_all(config.run_dir.join("logs"))?;
    let log_path = config.run_dir.join("harness.log");
    let log = std::fs::File::create(&log_path)?;
    let args: Vec<_> = std::env::args_os().skip(1).filter(|a| a != "--detach").collect();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the background supervisor")?;
    let what = format!("the stack (log: {})", log_path.display());
    let mut probe = || -> anyhow::Result<Probe<()>> {
        if let Some(state) = StackState::read(&config.state_file()).ok().flatten()
            && state.supervisor_pid == child.id()
            && state.phase == "ready"
        {
            return Ok(Probe::Ready(()));
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the stack failed to start ({status}); its log:\n{log}");
        }
        Ok(Probe::NotYet("starting".into()))
    };
    wait::until(&what, crate::timeouts::DETACHED_UP, || std::future::ready(probe())).await?;
    println!("{}", ready_line(config));
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(sig) => sig,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Stops the stack a detached `up` left running.
pub(super) async fn down(dir: RunDirArg) -> anyhow::Result<ExitCode> {
    let run_dir = absolute(&dir.run_dir)?;
    if stack::down(&run_dir, crate::timeouts::DOWN).await? {
        println!("stopped the stack in {}", run_dir.display());
    } else {
        println!("no stack running in {}", run_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
