//! Runs on the local stack: start it once, run one or more workloads on it
//! (each with its own fault schedule) while the supervisor watches the
//! processes, stop it.

use std::collections::BTreeMap;

use protocol_core::ProtocolKind;
use tokio::sync::mpsc::UnboundedSender;

use super::ceiling;
use super::faults::Fault;
use super::inject::{self, Injector};
use super::{Extras, RunOutcome, RunSpec, execute, final_state};
use crate::stack::supervisor::Request;
use crate::stack::{Role, Stack, StackConfig};

use crate::timeouts::WARM_UP_AT_MOST;
/// The warm-up ends when two rounds in a row are this close (relative).
pub const STEADY_WITHIN: f64 = 0.05;

/// Whether the last two of `rates` agree within [`STEADY_WITHIN`].
fn steady(rates: &[f64]) -> bool {
    match rates {
        [.., a, b] => (a - b).abs() <= STEADY_WITHIN * a.max(*b),
        _ => false,
    }
}

/// How a stack's warm-up went.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmedUp {
    /// Throughput of each warm-up round, in order.
    pub throughputs: Vec<f64>,
    /// Whether two rounds in a row agreed within [`STEADY_WITHIN`] before the
    /// cap ([`WARM_UP_AT_MOST`]); `false`: the stack was measured while its
    /// throughput still moved, and the verdicts on its cases say so.
    pub steady: bool,
}

/// A started local stack that workloads run on.
#[derive(Debug)]
pub struct LocalStack {
    stack: Stack,
    config: StackConfig,
    /// The bare broker, measured once per stack (SAGA): the measurement's
    /// burst and its topic would disturb a load right after it.
    kafka_bare: Option<ceiling::kafka::Bare>,
}

impl LocalStack {
    /// Starts the stack. The message faults of `faults` (SAGA duplicates and
    /// delays) are settings of the services, so they are given here.
    pub async fn start(mut config: StackConfig, faults: &[Fault]) -> anyhow::Result<LocalStack> {
        inject::validate(faults, &config)?;
        for fault in faults {
            match fault.kind {
                super::faults::FaultKind::DuplicateMessages => config.duplicate_messages = true,
                super::faults::FaultKind::DelayMessages(delay) => config.message_delay = delay,
                _ => {}
            }
        }
        crate::stack::ensure_not_running(&config.run_dir)?;
        let stack = Stack::start(config.clone()).await?;
        Ok(LocalStack { stack, config, kafka_bare: None })
    }

    /// The stack's settings.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The three databases.
    pub fn databases(&self) -> final_state::Databases {
        final_state::Databases {
            order: self.config.database_url(Role::Order),
            stock: self.config.database_url(Role::Stock),
            payment: self.config.database_url(Role::Payment),
        }
    }

    /// Runs `spec` (without faults or yardsticks) round after round until
    /// the stack is warm, and returns each round's throughput: rounds go on
    /// until they have loaded the stack for `at_least` and the last two
    /// agree within [`STEADY_WITHIN`], or for [`WARM_UP_AT_MOST`] in all.
    ///
    /// The broker runs on a JVM: on a fresh stack its just-in-time compiler
    /// takes most of a core through the first half minute to a minute of
    /// load, and a saga's throughput climbs from about half its steady value
    /// in steps (measured here: 301, 339, 381, 503, 542, 552 checkouts/s in
    /// 5-8 s rounds, the broker's CPU from 69% to 19% of a core), so two
    /// rounds that agree early prove nothing; 2PC's Rust and PostgreSQL are
    /// steady at once but get the same minimum. Every round's
    /// invariants must hold like any other run's.
    pub async fn warm_up(&mut self, spec: &RunSpec, at_least: std::time::Duration) -> anyhow::Result<WarmedUp> {
        let mut rates: Vec<f64> = Vec::new();
        let mut loaded = std::time::Duration::ZERO;
        let steady = loop {
            loaded += self.warm_up_round(spec, &mut rates).await?;
            if loaded >= at_least && steady(&rates) {
                break true;
            }
            if loaded >= WARM_UP_AT_MOST.max(at_least) {
                break false;
            }
        };
        // The bare broker on the warm JVM, then one more round, so that the
        // first measured load does not follow its burst.
        if self.config.protocol == ProtocolKind::Saga && self.kafka_bare.is_none() {
            self.measure_kafka_bare().await;
            self.warm_up_round(spec, &mut rates).await?;
        }
        Ok(WarmedUp { throughputs: rates, steady })
    }

    /// One warm-up round: its throughput goes to `rates`; returns its load time.
    async fn warm_up_round(&mut self, spec: &RunSpec, rates: &mut Vec<f64>) -> anyhow::Result<std::time::Duration> {
        let outcome = self.run_with(spec, &[], false).await?;
        anyhow::ensure!(outcome.violations.is_empty(), "invariants broken in the warm-up: {:?}", outcome.violations);
        rates.push(outcome.load.throughput());
        Ok(outcome.load.elapsed)
    }

    /// Measures the bare broker (see [`ceiling::kafka`]) once for this stack.
    async fn measure_kafka_bare(&mut self) {
        let target = ceiling::kafka::Target {
            bootstrap: self.config.kafka_bootstrap(),
            replication: crate::stack::kafka::Replication::of(&self.config),
            profile: self.config.kafka_profile,
            client_properties: self.config.kafka_client_properties.clone(),
            partitions: self.config.partitions,
        };
        match ceiling::kafka::measure(&target).await {
            Ok(bare) => self.kafka_bare = Some(bare),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "could not measure the bare broker"),
        }
    }

    /// Runs one workload with `faults` injected during its load, supervising
    /// the stack meanwhile (a killed process is restarted), with the
    /// yardsticks (raw ceilings) of a closed-loop run.
    pub async fn run(&mut self, spec: &RunSpec, faults: &[Fault]) -> anyhow::Result<RunOutcome> {
        self.run_with(spec, faults, true).await
    }

    /// Runs one workload like [`LocalStack::run`] when `yardsticks`, else
    /// without measuring the raw ceilings first (a case whose links add
    /// distance: the in-process ceiling has no links, so an efficiency
    /// against it would measure the links).
    pub async fn run_with(&mut self, spec: &RunSpec, faults: &[Fault], yardsticks: bool) -> anyhow::Result<RunOutcome> {
        if yardsticks && self.config.protocol == ProtocolKind::Saga && self.kafka_bare.is_none() {
            self.measure_kafka_bare().await;
        }
        inject::validate(faults, &self.config)?;
        let config = &self.config;
        let dbs = self.databases();
        let gateway = config.gateway_url();
        let replicas: Vec<(String, String)> = Role::ALL
            .iter()
            .flat_map(|role| (0..config.replicas).map(|r| (role.name().to_owned(), config.service_url(*role, r))))
            .collect();
        let services: BTreeMap<String, String> = Role::ALL
            .iter()
            .flat_map(|role| {
                (0..config.replicas).map(|r| (format!("{}#{r}", role.name()), config.service_url(*role, r)))
            })
            .collect();
        let (control, requests) = tokio::sync::mpsc::unbounded_channel();
        let network = match &config.links {
            Some(_) => Some(inject::Network {
                api: crate::stack::links::Api::new(&config.toxiproxy_url())?,
                links: crate::stack::links::links(config).into_iter().map(|l| l.name).collect(),
            }),
            None => None,
        };
        let extras = Extras {
            injector: (!faults.is_empty())
                .then(|| Injector::new(faults, control.clone(), services).with_network(network)),
            state_file: Some(config.state_file()),
            ceiling: yardsticks.then(|| self.ceiling_setup(control.clone())),
        };
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let work = async {
            let outcome = execute(&gateway, Some(&dbs), &replicas, spec, extras).await;
            let _ = done.send(());
            outcome
        };
        let (outcome, ()) = tokio::join!(
            work,
            self.stack.supervise_with(
                async {
                    let _ = finished.await;
                },
                requests
            )
        );
        outcome
    }

    /// What the raw ceilings replay for this stack's protocol.
    fn ceiling_setup(&self, control: UnboundedSender<Request>) -> ceiling::Setup {
        let config = &self.config;
        let services =
            Role::ALL.iter().flat_map(|role| (0..config.replicas).map(|r| format!("{}#{r}", role.name()))).collect();
        let quiet = Some(ceiling::Quiet { control, services });
        let args = |role| crate::stack::services::args(config, role, 0);
        let commands =
            ceiling::Commands { order: args(Role::Order), stock: args(Role::Stock), payment: args(Role::Payment) };
        let kafka = match config.protocol {
            ProtocolKind::TwoPc => None,
            ProtocolKind::Saga => self.kafka_bare,
        };
        ceiling::Setup { commands, kafka, quiet }
    }

    /// Stops every process.
    pub async fn stop(mut self) {
        self.stack.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::steady;

    #[test]
    fn steady_means_the_last_two_rounds_agree() {
        assert!(!steady(&[300.0]));
        assert!(!steady(&[300.0, 339.0, 381.0, 503.0]));
        assert!(steady(&[300.0, 503.0, 542.0, 552.0]));
        assert!(steady(&[1000.0, 960.0]));
        assert!(!steady(&[1000.0, 940.0]));
    }
}
