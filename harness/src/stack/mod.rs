//! The local stack: three PostgreSQL clusters, a Kafka broker, Redis, the
//! service replicas and the nginx gateway, all child processes of `harness up`
//! with their data and logs under one run directory.
//!
//! - [`config`]: settings and the port layout;
//! - [`postgres`], [`kafka`], [`redis`], [`services`], [`nginx`]: one component each;
//! - [`links`]: the network between them, through Toxiproxy when links are on;
//! - [`process`]: spawning and stopping children;
//! - [`supervisor`]: start order, restarts, shutdown;
//! - [`status_file`]: `stack.json`, read by `status` and `down`.

pub mod class_archive;
pub mod config;
pub mod kafka;
pub mod links;
pub mod nginx;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod services;
pub mod status_file;
pub mod supervisor;

pub use config::{Role, StackConfig};
pub use status_file::StackState;
pub use supervisor::{Control, Request, Stack};

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::wait::Probe;

/// Fails if a stack is already running in `run_dir`; cleans up after one whose
/// supervisor died without stopping its children.
pub fn ensure_not_running(run_dir: &Path) -> anyhow::Result<()> {
    let path = run_dir.join("stack.json");
    let Some(state) = StackState::read(&path)? else {
        return Ok(());
    };
    if state.supervisor_alive() {
        bail!(
            "a stack is already running in {} (harness pid {}, protocol {}, gateway {}); run `harness down` first",
            run_dir.display(),
            state.supervisor_pid,
            state.protocol,
            state.gateway.as_deref().unwrap_or("none"),
        );
    }
    kill_leftovers(&state);
    std::fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
    Ok(())
}

/// Kills the processes of a stack whose supervisor is gone. A pid is only
/// signalled if it still runs the program recorded for it (pids are reused).
fn kill_leftovers(state: &StackState) {
    for c in &state.components {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.pid)).unwrap_or_default();
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if process::alive(c.pid) && program == c.program.as_bytes() {
            tracing::warn!(name = %c.name, pid = c.pid, "killing a leftover process of a dead stack");
            let _ = process::signal_pid(c.pid, Signal::SIGKILL);
        }
    }
}

/// Stops the stack running in `run_dir`. Returns `false` if there was none.
pub async fn down(run_dir: &Path, timeout: Duration) -> anyhow::Result<bool> {
    let path = run_dir.join("stack.json");
    let Some(state) = StackState::read(&path)? else {
        return Ok(false);
    };
    if !state.supervisor_alive() {
        kill_leftovers(&state);
        let _ = std::fs::remove_file(&path);
        return Ok(true);
    }
    process::signal_pid(state.supervisor_pid, Signal::SIGTERM)?;
    let pid = state.supervisor_pid;
    let what = format!("the stack supervisor (pid {pid}) stopping");
    crate::wait::until(&what, timeout, || async {
        Ok(if process::alive(pid) { Probe::NotYet("still running".into()) } else { Probe::Ready(()) })
    })
    .await?;
    Ok(true)
}

/// The state of the stack running in `run_dir`, if one is running.
pub fn status(run_dir: &Path) -> anyhow::Result<Option<StackState>> {
    Ok(StackState::read(&run_dir.join("stack.json"))?.filter(StackState::supervisor_alive))
}
