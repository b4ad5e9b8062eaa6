//! Starting, supervising and stopping the whole local stack.
//!
//! ```text
//!   start:  initdb x3 + Kafka format ─► postgres x3, redis, kafka nodes ─► databases, topics
//!           ─► service replicas (health) ─► nginx gateway ─► stack.json "ready"
//!   run:    every 250 ms: a process that exited is restarted (logged, counted), as an
//!           orchestrator would; databases come back through their own crash recovery
//!   stop:   gateway ─► services ─► kafka, redis ─► postgres   (reverse dependency order)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::future::BoxFuture;
use protocol_core::Backoff;
use tokio::sync::watch;

use super::config::{Role, StackConfig};
use super::process::{Proc, Spec};
use super::status_file::{ComponentState, StackState};
use super::{kafka, links, nginx, postgres, redis, services};
use crate::wait;

use crate::timeouts::{
    FIRST_RESTART_BACKOFF, INFRA_START, MAX_RESTART_BACKOFF, PROBE_ATTEMPT, SERVICE_START, SERVING_AFTER_RESTART,
    STABLE_AFTER,
};

const POLL: Duration = Duration::from_millis(250);

/// One readiness check of a component: whether it serves (a database accepts
/// connections, the broker answers its admin API, a replica's `/health` is
/// 200). An attempt that takes longer than [`crate::timeouts::PROBE_CAP`]
/// counts as a no.
#[derive(Clone)]
struct Probe(Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>);

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

/// A supervised process and what the supervisor knows about it.
#[derive(Debug)]
struct Member {
    proc: Proc,
    url: String,
    restarts: u32,
    /// A service replica (answers `GET /health`).
    service: bool,
    /// When the current process was started.
    started: Instant,
    /// Delay before the next restart; grows while the process keeps dying
    /// right after starting (a crash loop), starts over once it stays up.
    backoff: Backoff,
    /// When a pending restart is due.
    restart_at: Option<Instant>,
    /// A fault asked to keep the process down until then.
    hold_until: Option<Instant>,
    /// Whether the component serves.
    probe: Probe,
    /// The current process's pid, for waiting on a restart.
    pid: watch::Sender<u32>,
}

impl Member {
    fn is_kafka_node(&self) -> bool {
        kafka::is_member_name(&self.proc.spec.name)
    }
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    config: StackConfig,
    /// In start order; stopped in reverse.
    members: Vec<Member>,
    started_at: u64,
    /// Tasks answering [`Control::AwaitServing`]; stopped with the stack.
    waiters: tokio::task::JoinSet<()>,
}

impl Stack {
    /// Starts every component and waits until each answers. On failure, whatever
    /// was started is stopped again.
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut stack = Stack { config, members: Vec::new(), started_at, waiters: tokio::task::JoinSet::new() };
        match stack.start_all().await {
            Ok(()) => {
                stack.write_state("ready")?;
                Ok(stack)
            }
            Err(err) => {
                stack.stop().await;
                Err(err)
            }
        }
    }

    async fn start_all(&mut self) -> anyhow::Result<()> {
        let config = self.config.clone();
        check_ports_free(&config)?;
        prepare_run_dir(&config)?;
        self.write_state("starting")?;

        // initdb and Kafka's storage format are slow, blocking and independent.
        let mut prep = Vec::new();
        for role in Role::ALL {
            let c = config.clone();
            prep.push(tokio::task::spawn_blocking(move || postgres::init_cluster(&c, role)));
        }
        let c = config.clone();
        prep.push(tokio::task::spawn_blocking(move || kafka::prepare(&c)));
        for task in prep {
            task.await.context("preparation task panicked")??;
        }

        // The links first: every connection between components goes through them.
        if let Some(network) = &config.links {
            let api = links::Api::new(&config.toxiproxy_url())?;
            let answers = api.clone();
            let probe = probe(&config, move |_| {
                let api = answers.clone();
                async move { api.answers().await }
            });
            self.spawn(links::spec(&config)?, config.toxiproxy_url(), false, probe)?;
            crate::wait::until("toxiproxy", INFRA_START, || async {
                Ok(if api.answers().await {
                    crate::wait::Probe::Ready(())
                } else {
                    crate::wait::Probe::NotYet("no answer".into())
                })
            })
            .await?;
            links::apply(&config, network).await?;
        }
        for role in Role::ALL {
            let probe = probe(&config, move |c| async move { postgres::serves(&c, role).await });
            self.spawn(postgres::spec(&config, role)?, config.database_url(role), false, probe)?;
        }
        let redis_probe = probe(&config, |c| async move { redis::wait_ready(&c, PROBE_ATTEMPT).await.is_ok() });
        self.spawn(redis::spec(&config)?, config.redis_url(), false, redis_probe)?;
        for node in 0..config.brokers {
            let kafka_probe = Probe(Arc::new(kafka::serving_check(&config, node)));
            self.spawn(kafka::spec(&config, node)?, config.kafka_address(node), false, kafka_probe)?;
        }
        self.write_state("starting")?;

        let databases = Role::ALL.map(|role| postgres::wait_and_create_database(&config, role, INFRA_START));
        tokio::try_join!(
            futures::future::try_join_all(databases),
            redis::wait_ready(&config, INFRA_START),
            kafka::wait_and_create_topics(&config, INFRA_START),
        )?;
        tracing::info!("infrastructure ready");
        if config.infra_only {
            return Ok(());
        }

        // Participants first, so the order service finds them.
        for role in Role::ALL {
            for replica in 0..config.replicas {
                let health = format!("{}{}", config.service_url(role, replica), crate::api::path::HEALTH);
                let probe = probe(&config, move |_| {
                    let health = health.clone();
                    async move { services::wait_http_ok(&health, PROBE_ATTEMPT).await.is_ok() }
                });
                self.spawn(services::spec(&config, role, replica)?, config.service_url(role, replica), true, probe)?;
            }
        }
        self.write_state("starting")?;
        let health: Vec<_> = self
            .members
            .iter()
            .filter(|m| m.service)
            .map(|m| services::wait_http_ok_owned(format!("{}{}", m.url, crate::api::path::HEALTH), SERVICE_START))
            .collect();
        futures::future::try_join_all(health).await?;
        tracing::info!("services ready");

        let gateway_probe = probe(&config, |c| async move { nginx::wait_ready(&c, PROBE_ATTEMPT).await.is_ok() });
        self.spawn(nginx::spec(&config)?, config.gateway_url(), false, gateway_probe)?;
        nginx::wait_ready(&config, SERVICE_START).await?;
        Ok(())
    }

    fn spawn(&mut self, spec: Spec, url: String, service: bool, probe: Probe) -> anyhow::Result<()> {
        let proc = spec.spawn()?;
        tracing::info!(name = %proc.spec.name, pid = proc.pid(), "started");
        let pid = watch::Sender::new(proc.pid());
        self.members.push(Member {
            proc,
            url,
            restarts: 0,
            service,
            started: Instant::now(),
            backoff: Backoff::new(FIRST_RESTART_BACKOFF, MAX_RESTART_BACKOFF),
            restart_at: None,
            hold_until: None,
            probe,
            pid,
        });
        Ok(())
    }

    /// Watches the processes until `shutdown` completes: any process that dies
    /// is restarted, and the restart is logged and counted in `stack.json`.
    pub async fn supervise(&mut self, shutdown: impl std::future::Future<Output = ()>) {
        let (_keep, control) = tokio::sync::mpsc::unbounded_channel();
        self.supervise_with(shutdown, control).await;
    }

    /// [`Stack::supervise`], also carrying out the fault injector's requests
    /// (kill, pause, resume a component) as they arrive. The supervisor owns
    /// the processes, so faults go through it: a killed process is restarted
    /// by the same loop (after the requested hold), like any other crash.
    pub async fn supervise_with(
        &mut self,
        shutdown: impl std::future::Future<Output = ()>,
        mut control: tokio::sync::mpsc::UnboundedReceiver<Request>,
    ) {
        tokio::pin!(shutdown);
        let mut control_open = true;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                request = control.recv(), if control_open => match request {
                    Some(request) => self.apply(request),
                    None => control_open = false,
                },
                () = tokio::time::sleep(POLL) => {}
            }
            while self.waiters.try_join_next().is_some() {}
            let mut changed = false;
            for member in &mut self.members {
                changed |= restart_if_dead(member);
            }
            if changed && let Err(err) = self.write_state("ready") {
                tracing::error!(error = %err, "cannot update stack.json");
            }
        }
    }

    fn apply(&mut self, Request { control, reply }: Request) {
        let name = control.component().to_owned();
        if let Control::AwaitServing { killed, .. } = control {
            match self.members.iter().find(|m| m.proc.spec.name == name) {
                None => {
                    let _ = reply.send(Err(format!("no component {name} in this stack")));
                }
                Some(member) => {
                    // The restart comes after the fault's hold (and any
                    // crash-loop back-off); the wait for serving starts then.
                    let now = Instant::now();
                    let restart = member.restart_at.or(member.hold_until).map_or(now, |at| at.max(now));
                    let deadline = restart + SERVING_AFTER_RESTART;
                    let probe = member.probe.clone();
                    self.waiters.spawn(await_serving(member.pid.subscribe(), killed, probe, deadline, reply));
                }
            }
            return;
        }
        let result = match self.members.iter_mut().find(|m| m.proc.spec.name == name) {
            None => Err(format!("no component {name} in this stack")),
            Some(member) => control_member(member, &control),
        };
        if let Err(why) = &result {
            tracing::warn!(component = %name, error = %why, "fault not applied");
        }
        let _ = reply.send(result);
    }

    /// Stops every process in reverse start order and removes `stack.json`.
    pub async fn stop(&mut self) {
        self.waiters.abort_all();
        let _ = self.write_state("stopping");
        while let Some(member) = self.members.pop() {
            // A KRaft quorum stops together: stopped one by one, the last
            // nodes' controlled shutdown waits for a majority that has gone.
            let mut batch = vec![member];
            while batch[0].is_kafka_node() && self.members.last().is_some_and(Member::is_kafka_node) {
                batch.extend(self.members.pop());
            }
            let stopped = futures::future::join_all(batch.iter_mut().map(|m| m.proc.stop())).await;
            for (member, status) in batch.iter().zip(stopped) {
                tracing::info!(name = %member.proc.spec.name, ?status, "stopped");
            }
        }
        let _ = std::fs::remove_file(self.config.state_file());
    }

    /// The state as `stack.json` shows it.
    pub fn state(&self, phase: &str) -> StackState {
        let c = &self.config;
        StackState {
            phase: phase.to_owned(),
            protocol: c.protocol.to_string(),
            supervisor_pid: std::process::id(),
            started_at: self.started_at,
            run_dir: c.run_dir.display().to_string(),
            gateway: (!c.infra_only).then(|| c.gateway_url()),
            databases: Role::ALL.iter().map(|r| (r.name().to_owned(), c.database_url(*r))).collect::<BTreeMap<_, _>>(),
            kafka_bootstrap: c.kafka_bootstrap(),
            redis_url: c.redis_url(),
            links_api: c.links.is_some().then(|| c.toxiproxy_url()),
            components: self
                .members
                .iter()
                .map(|m| ComponentState {
                    name: m.proc.spec.name.clone(),
                    url: m.url.clone(),
                    pid: m.proc.pid(),
                    program: m.proc.spec.program.display().to_string(),
                    restarts: m.restarts,
                    log: m.proc.spec.log.display().to_string(),
                })
                .collect(),
        }
    }

    fn write_state(&self, phase: &str) -> anyhow::Result<()> {
        self.state(phase).write(&self.config.state_file())
    }
}

/// What the fault injector can ask of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Kill the component (PostgreSQL: immediate shutdown, which skips the
    /// checkpoint and needs crash recovery, like a power cut) and keep it down
    /// for `hold` before the usual restart.
    Kill {
        /// Name as in `stack.json` (`order#0`, `postgres-stock`, `kafka#0`).
        component: String,
        /// Extra time before the restart.
        hold: Duration,
    },
    /// `SIGSTOP` the component: it keeps its sockets but answers nothing.
    Pause {
        /// Name as in `stack.json`.
        component: String,
    },
    /// `SIGCONT` a paused component.
    Resume {
        /// Name as in `stack.json`.
        component: String,
    },
    /// Answer (with the new pid) once the component, just killed, runs again
    /// in a new process and serves: the time its own restart takes, which a
    /// protocol cannot be faster than.
    AwaitServing {
        /// Name as in `stack.json`.
        component: String,
        /// The pid the kill hit.
        killed: u32,
    },
}

impl Control {
    /// The component it is about.
    pub fn component(&self) -> &str {
        match self {
            Control::Kill { component, .. }
            | Control::Pause { component }
            | Control::Resume { component }
            | Control::AwaitServing { component, .. } => component,
        }
    }
}

/// A [`Control`] and where to send the outcome (the pid it hit, or why not).
#[derive(Debug)]
pub struct Request {
    /// What to do.
    pub control: Control,
    /// Receives the signalled pid or the reason it was not applied.
    pub reply: tokio::sync::oneshot::Sender<Result<u32, String>>,
}

fn control_member(member: &mut Member, control: &Control) -> Result<u32, String> {
    use nix::sys::signal::Signal;
    if member.proc.exited().is_some() || member.restart_at.is_some() {
        return Err("it is not running (down or restarting)".to_owned());
    }
    let signal = match control {
        // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its
        // backends down without a checkpoint. A SIGKILL would orphan them
        // and block the restart on their shared memory.
        Control::Kill { .. } if member.proc.spec.name.starts_with("postgres-") => Signal::SIGQUIT,
        Control::Kill { .. } => Signal::SIGKILL,
        Control::Pause { .. } => Signal::SIGSTOP,
        Control::Resume { .. } => Signal::SIGCONT,
        Control::AwaitServing { .. } => return Err("not a signal".to_owned()),
    };
    if let Control::Kill { hold, .. } = control {
        member.hold_until = Some(Instant::now() + *hold);
    }
    let pid = member.proc.pid();
    member.proc.signal(signal).map_err(|err| err.to_string())?;
    tracing::warn!(component = %member.proc.spec.name, pid, %signal, "fault injected");
    Ok(pid)
}

/// Restarts `member` if it exited and its back-off has passed; returns whether
/// it was restarted. A process that dies within [`STABLE_AFTER`] of starting
/// waits twice as long each time (up to [`MAX_RESTART_BACKOFF`]), so a crash loop does
/// not spin.
fn restart_if_dead(member: &mut Member) -> bool {
    let name = member.proc.spec.name.clone();
    if member.restart_at.is_none() {
        let Some(status) = member.proc.exited() else {
            if member.started.elapsed() >= STABLE_AFTER {
                member.backoff.reset();
            }
            return false;
        };
        // A process that ran stably restarts at once; one in a crash loop
        // waits longer each time.
        let wait = if member.started.elapsed() < STABLE_AFTER {
            member.backoff.advance()
        } else {
            // Stable, though it died before a check saw it so: its next crash
            // loop starts at the first wait again.
            member.backoff.reset();
            Duration::ZERO
        };
        tracing::warn!(%name, %status, backoff_ms = wait.as_millis() as u64, "process exited; restarting");
        let due = Instant::now() + wait;
        member.restart_at = Some(member.hold_until.take().map_or(due, |held| held.max(due)));
    }
    if member.restart_at.is_some_and(|at| Instant::now() < at) {
        return false;
    }
    member.restart_at = None;
    member.restarts += 1;
    member.started = Instant::now();
    match member.proc.spec.spawn() {
        Ok(proc) => {
            tracing::info!(%name, pid = proc.pid(), restarts = member.restarts, "restarted");
            member.pid.send_replace(proc.pid());
            member.proc = proc;
        }
        Err(err) => {
            tracing::error!(%name, error = %err, "restart failed; will retry");
            member.restart_at = Some(Instant::now() + MAX_RESTART_BACKOFF);
        }
    }
    true
}

/// Creates the run directory; without `--keep-data`, first removes the data and
/// logs of a previous run (only the sub-directories the stack owns).
fn prepare_run_dir(config: &StackConfig) -> anyhow::Result<()> {
    if !config.keep_data {
        for sub in ["postgres", "kafka", "redis", "nginx", "logs"] {
            let path = config.run_dir.join(sub);
            if path.exists() {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(config.run_dir.join("logs"))
        .with_context(|| format!("creating {}", config.run_dir.display()))?;
    Ok(())
}

/// Fails early, naming the component, if a port the stack needs is taken (by
/// another stack, or a system PostgreSQL/Redis/nginx), instead of letting one
/// component die with a bind error deep in its log.
fn check_ports_free(config: &StackConfig) -> anyhow::Result<()> {
    let taken: Vec<String> = config
        .ports()
        .into_iter()
        .filter(|(_, port)| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err())
        .map(|(name, port)| format!("{port} ({name})"))
        .collect();
    if let Some((low, high)) = ephemeral_range() {
        let clashing: Vec<String> = config
            .ports()
            .into_iter()
            .filter(|(_, p)| (low..=high).contains(p))
            .map(|(name, port)| format!("{port} ({name})"))
            .collect();
        if !clashing.is_empty() {
            tracing::warn!(
                ports = %clashing.join(", "),
                "ports in the kernel's ephemeral range {low}-{high}: outgoing connections may take them"
            );
        }
    }
    if !taken.is_empty() {
        anyhow::bail!(
            "ports in use: {}; choose others with --port-base / --gateway-port or stop what holds them",
            taken.join(", ")
        );
    }
    Ok(())
}

/// The kernel's range of ports for outgoing connections, if readable.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Waits until `pid` moves on from `killed` (the process was restarted) and
/// the new process passes `probe`, then replies with the new pid (or why not,
/// at `deadline`).
async fn await_serving(
    mut pid: watch::Receiver<u32>,
    killed: u32,
    probe: Probe,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Result<u32, String>>,
) {
    let late = || format!("not serving {} s after its restart was due", SERVING_AFTER_RESTART.as_secs());
    let waited = async {
        pid.wait_for(|current| *current != killed).await.map_err(|_| "the supervisor stopped".to_owned())?;
        let serving = || async {
            let up = matches!(tokio::time::timeout(crate::timeouts::PROBE_CAP, (probe.0)()).await, Ok(true));
            Ok(if up { wait::Probe::Ready(()) } else { wait::Probe::NotYet("its probe fails".to_owned()) })
        };
        wait::until_deadline("the restarted process", deadline, Duration::from_millis(50), serving)
            .await
            .map_err(|_| late())?;
        Ok(*pid.borrow())
    };
    let result = tokio::time::timeout_at(deadline.into(), waited).await.unwrap_or_else(|_| Err(late()));
    let _ = reply.send(result);
}

/// A [`Probe`] running `check` on its own copy of the stack's settings.
fn probe<F, Fut>(config: &StackConfig, check: F) -> Probe
where
    F: Fn(StackConfig) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let config = config.clone();
    Probe(Arc::new(move || Box::pin(check(config.clone()))))
}
