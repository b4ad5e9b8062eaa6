//! Child processes of the stack: spawning with logs in the run directory, and
//! stopping with a signal, a grace period and `SIGKILL` as the last resort.
//!
//! Every child runs in its own process group, so a Ctrl-C typed at `harness up`
//! reaches only the harness, which then stops the children in dependency order
//! (instead of every process racing to exit and services being restarted
//! against databases that are going away).

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use protocol_core::listen::{ENV as LISTEN_FD_ENV, FD as LISTEN_FD};

use crate::wait::Probe;

/// How to start one process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name in logs and in `stack.json` (for example `postgres-order`, `order#2`).
    pub name: String,
    /// Executable.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Run as this (uid, gid) instead of the harness's own user.
    pub user: Option<(u32, u32)>,
    /// File receiving stdout and stderr (appended, so restarts keep history).
    pub log: PathBuf,
    /// Signal asking for a clean, fast shutdown.
    pub stop_signal: Signal,
    /// How long a clean shutdown may take before `SIGKILL`.
    pub stop_timeout: Duration,
    /// A listening socket the process gets as file descriptor
    /// `protocol_core::listen::FD`, the same socket for every restart: connections made while the process is down wait in the
    /// socket's backlog instead of being refused.
    pub listener: Option<Arc<TcpListener>>,
}

/// A running child process.
#[derive(Debug)]
pub struct Proc {
    /// What it was started from (used to restart it).
    pub spec: Spec,
    child: std::process::Child,
}

impl Spec {
    /// Starts the process.
    pub fn spawn(&self) -> anyhow::Result<Proc> {
        let log = open_log(&self.log)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        if let Some(listener) = &self.listener {
            let fd = listener.as_raw_fd();
            cmd.env(LISTEN_FD_ENV, LISTEN_FD.to_string());
            // SAFETY: between fork and exec only async-signal-safe calls
            // (dup2, fcntl) run, touching no memory of the parent.
            #[allow(unsafe_code, reason = "passing a descriptor to a child needs a pre-exec hook")]
            unsafe {
                cmd.pre_exec(move || inherit_fd(fd));
            }
        }
        let child = cmd.spawn().with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        tracing::debug!(name = %self.name, pid = child.id(), "started");
        Ok(Proc { spec: self.clone(), child })
    }
}

/// Makes `fd` the child's [`LISTEN_FD`], open across `exec` (a `dup2` onto
/// another number clears close-on-exec; onto itself it must be cleared).
fn inherit_fd(fd: RawFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    if fd == LISTEN_FD {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    } else {
        nix::unistd::dup2(fd, LISTEN_FD)?;
    }
    Ok(())
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening log {}", path.display()))
}

impl Proc {
    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited, without blocking.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        signal_pid(self.pid(), signal)
    }

    /// Stops the process: its stop signal, then `SIGKILL` after the timeout.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let _ = self.signal(self.spec.stop_signal);
        let every = Duration::from_millis(50);
        let exited = crate::wait::until_deadline("exit", Instant::now() + self.spec.stop_timeout, every, || {
            let status = self.exited();
            std::future::ready(Ok(status.map_or_else(|| Probe::NotYet("running".into()), Probe::Ready)))
        });
        if let Ok(status) = exited.await {
            return Some(status);
        }
        tracing::warn!(name = %self.spec.name, "did not stop in time; killing");
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

/// Sends `signal` to `pid`.
pub fn signal_pid(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    kill(Pid::from_raw(pid), signal).with_context(|| format!("sending {signal} to {pid}"))
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Looks for `name` on `PATH`, then in `fallbacks`.
pub fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path.chain(fallbacks.iter().map(|dir| Path::new(dir).join(name))).find(|p| p.is_file())
}
