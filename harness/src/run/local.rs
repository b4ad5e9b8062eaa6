//! Runs on the local stack: start it once, run one or more workloads on it
//! (each with its own fault schedule) while the supervisor watches the
//! processes, stop it.

use std::collections::BTreeMap;

use protocol_core::ProtocolKind;

use super::ceiling;
use super::faults::Fault;
use super::inject::{self, Injector};
use super::{Extras, RunOutcome, RunSpec, execute, state};
use crate::stack::{Role, Stack, StackConfig};

/// A started local stack that workloads run on.
#[derive(Debug)]
pub struct LocalStack {
    stack: Stack,
    config: StackConfig,
}

impl LocalStack {
    /// Starts the stack. The message faults of `faults` (SAGA duplicates and
    /// delays) are settings of the services, so they are given here.
    pub async fn start(mut config: StackConfig, faults: &[Fault]) -> anyhow::Result<LocalStack> {
        inject::validate(faults, config.protocol, config.replicas)?;
        for fault in faults {
            match fault.kind {
                super::faults::FaultKind::DuplicateMessages => config.duplicate_messages = true,
                super::faults::FaultKind::DelayMessages(delay) => config.message_delay = delay,
                _ => {}
            }
        }
        crate::stack::ensure_not_running(&config.run_dir)?;
        let stack = Stack::start(config.clone()).await?;
        Ok(LocalStack { stack, config })
    }

    /// The stack's settings.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The three databases.
    pub fn databases(&self) -> state::Databases {
        state::Databases {
            order: self.config.database_url(Role::Order),
            stock: self.config.database_url(Role::Stock),
            payment: self.config.database_url(Role::Payment),
        }
    }

    /// Runs one workload with `faults` injected during its load, supervising
    /// the stack meanwhile (a killed process is restarted).
    pub async fn run(&mut self, spec: &RunSpec, faults: &[Fault]) -> anyhow::Result<RunOutcome> {
        inject::validate(faults, self.config.protocol, self.config.replicas)?;
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
        let extras = Extras {
            injector: (!faults.is_empty()).then(|| Injector::new(faults, control, services)),
            state_file: Some(config.state_file()),
            ceiling: Some(self.ceiling_setup()),
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
    fn ceiling_setup(&self) -> ceiling::Setup {
        let config = &self.config;
        match config.protocol {
            ProtocolKind::TwoPc => ceiling::Setup { work: ceiling::Work::TwoPc(config.twopc_order), kafka: None },
            ProtocolKind::Saga => ceiling::Setup {
                work: ceiling::Work::Saga(config.saga_mode),
                kafka: Some(ceiling::kafka::Target {
                    bootstrap: config.kafka_bootstrap(),
                    profile: config.kafka_profile,
                    partitions: config.partitions,
                }),
            },
        }
    }

    /// Stops every process.
    pub async fn stop(mut self) {
        self.stack.stop().await;
    }
}
