//! `harness compare`: both protocols (SAGA in both modes) on identical data
//! and seeds, interleaved, repeated, then a report.
//!
//! ```text
//!   for round in 1..=rounds:                      (full: 3 rounds x 1 repeat)
//!     for contender in the round's drawn order:   (quick: 1 round x 3 repeats)
//!       fresh stack ─► warm-up until steady (not recorded) ─► every case x repeats
//!       ─► the round's share of the fault cases ─► stop
//!       ─► (first round) the same on a 3-node Kafka cluster for the replication cases ─► stop
//!       ─► (first round) on a stack with links, the distance sweep in passes, each pass over
//!          every point in a drawn order, each case's delay set on every link before it ─► stop
//!   ─► run.json ─► read back ─► report (results/<run-id>/report.md, SVG charts, results/README.md)
//! ```
//!
//! Interleaving the contenders round by round, in an order drawn anew for
//! each round and balanced over the rounds ([`plan::RoundOrder`]), spreads
//! slow drifts of a shared, noisy machine (other tenants, thermal state, page
//! cache) over all of them instead of charging them to whichever protocol ran
//! last. Every contender
//! runs each case with the same seed, so the same data and the same checkout
//! sequence. A fresh stack per contender and round means no run inherits
//! another protocol's tables, connections or Kafka offsets.

pub mod plan;
pub mod sample;

use std::time::Instant;

use anyhow::Context;

pub use self::plan::{Case, Contender, Layout, Plan, RoundOrder};
pub use self::sample::Sample;
use crate::run::local::LocalStack;
use crate::stack::StackConfig;

/// The warm-up of one stack.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WarmUp {
    /// Whose stack.
    pub contender: String,
    /// Which round (0-based).
    pub round: usize,
    /// Nodes of the stack's Kafka cluster.
    pub brokers: u16,
    /// Whether the stack's components talk through links (the distance cases).
    pub links: bool,
    /// Throughput of each warm-up round, in order.
    pub throughputs: Vec<f64>,
    /// Whether the warm-up became steady before its cap.
    pub steady: bool,
}

impl WarmUp {
    /// Whether `case` ran on this stack (the contender's, in this round, on
    /// this layout; `default`: the compare's own cluster).
    pub fn hosted(&self, case: &Case, contender: &str, round: usize, default: u16) -> bool {
        let layout = case.layout(default);
        self.contender == contender
            && self.round == round
            && self.brokers == layout.brokers
            && self.links == layout.links
    }
}

/// Everything a compare run measured, in plan order.
#[derive(Debug)]
pub struct Comparison {
    /// What was run.
    pub plan: Plan,
    /// One per (case, contender, round, repeat) that ran.
    pub samples: Vec<Sample>,
    /// One per stack, in the order they ran.
    pub warm_ups: Vec<WarmUp>,
    /// Wall time of the whole comparison.
    pub elapsed_s: f64,
    /// Nodes of the compare's own Kafka cluster (`--brokers`), for the cases
    /// that name none.
    pub brokers: u16,
}

impl Comparison {
    /// Whether every invariant held in every sample, and every course test
    /// has its four counts (a run without them is not a pass).
    pub fn all_consistent(&self) -> bool {
        let course: Vec<&str> =
            self.plan.cases.iter().filter(|c| c.group == plan::Group::Course).map(|c| c.id.as_str()).collect();
        self.samples
            .iter()
            .all(|s| s.violations.is_empty() && (s.course.is_some() || !course.contains(&s.case.as_str())))
    }
}

/// Runs `plan`; `base` gives the stack settings shared by all contenders.
pub async fn execute(mut plan: Plan, base: &StackConfig) -> anyhow::Result<Comparison> {
    let started = Instant::now();
    anyhow::ensure!(
        plan.cases.iter().all(|c| c.passes <= 1) || !plan.order.passes.is_empty(),
        "the plan has cases in passes but no drawn order for them (Plan::ordered)"
    );
    // A case mirrored onto the cluster the compare runs anyway repeats its
    // original on the same stack: nothing to compare.
    plan.cases.retain(|c| !(c.mirrors.is_some() && c.brokers == Some(base.brokers)));
    let mut samples = Vec::new();
    let mut warm_ups = Vec::new();
    let total_runs = plan.run_count();
    let bar = crate::run::load::progress(total_runs as u64, "compare");
    bar.set_position(0);
    for round in 0..plan.rounds {
        for contender in plan.contenders_in(round) {
            for layout in plan.layouts(round, base.brokers) {
                let brokers = layout.brokers;
                let mut config = base.clone();
                config.protocol = contender.protocol;
                config.saga_mode = contender.saga_mode;
                config.twopc_order = contender.twopc_order;
                config.brokers = brokers;
                if layout.links {
                    // Every link starts at no added delay; each case sets its own.
                    config.links = Some(crate::stack::links::Network::default());
                }
                if let Some(profile) = contender.kafka_profile {
                    config.kafka_profile = profile;
                }
                tracing::info!(
                    round = round + 1,
                    contender = contender.name,
                    brokers,
                    links = layout.links,
                    "starting a stack"
                );
                let mut stack = LocalStack::start(config, &[])
                    .await
                    .with_context(|| format!("starting the stack for {}", contender.name))?;
                let run = Stint { plan: &plan, contender, round, layout, default: base.brokers };
                let result = run.execute(&mut stack, &mut samples, &mut warm_ups, &bar).await;
                stack.stop().await;
                result?;
            }
        }
    }
    bar.finish_and_clear();
    Ok(Comparison { plan, samples, warm_ups, elapsed_s: started.elapsed().as_secs_f64(), brokers: base.brokers })
}

/// One stack's share of a round: a contender on one Kafka cluster.
struct Stint<'a> {
    plan: &'a Plan,
    contender: &'a Contender,
    round: usize,
    /// This stack's cluster and links.
    layout: Layout,
    /// The compare's own cluster, for the cases that name none.
    default: u16,
}

impl Stint<'_> {
    /// Warms the stack up, then runs the round's cases that want this cluster.
    async fn execute(
        &self,
        stack: &mut LocalStack,
        samples: &mut Vec<Sample>,
        warm_ups: &mut Vec<WarmUp>,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        let Stint { plan, contender, round, layout, default } = *self;
        let brokers = layout.brokers;
        // Warm-up until steady: the broker's JIT, connection pools, caches.
        // Not recorded as samples, but shown in the report.
        let warmed = stack
            .warm_up(&plan.warmup, plan.warmup_at_least)
            .await
            .with_context(|| format!("warm-up of {}", contender.name))?;
        tracing::info!(contender = contender.name, brokers, throughputs = ?warmed.throughputs, steady = warmed.steady, "warmed up");
        warm_ups.push(WarmUp {
            contender: contender.name.to_owned(),
            round,
            brokers,
            links: layout.links,
            throughputs: warmed.throughputs,
            steady: warmed.steady,
        });
        let mine: Vec<&Case> = plan.cases_of(round).filter(|c| c.layout(default) == layout).collect();
        // The cases run in every round, or once: in plan order, repeats back
        // to back.
        for case in mine.iter().filter(|c| c.passes <= 1) {
            for repeat in 0..case.runs_in(round, plan.repeats) {
                self.sample(stack, case, repeat, samples, bar).await?;
            }
        }
        // The cases run in passes: every pass over all of them, in its drawn
        // order; a sample's repeat is its pass.
        for (pass, ids) in plan.order.passes.iter().enumerate() {
            for id in ids {
                if let Some(case) = mine.iter().find(|c| c.passes > 1 && c.id == *id) {
                    self.sample(stack, case, pass, samples, bar).await?;
                }
            }
        }
        Ok(())
    }

    /// Runs `case` once on `stack` and records it as sample `repeat`.
    async fn sample(
        &self,
        stack: &mut LocalStack,
        case: &Case,
        repeat: usize,
        samples: &mut Vec<Sample>,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        let contender = self.contender;
        if let Some(delay) = case.distance {
            set_every_link(stack, delay).await.with_context(|| format!("setting the links for {}", case.id))?;
        }
        let outcome = stack
            .run_with(&case.spec, &case.faults, case.distance.is_none())
            .await
            .with_context(|| format!("{} on {}", case.id, contender.name))?;
        let sample = Sample::new(case, contender, self.round, repeat, &outcome);
        tracing::info!(
            case = %case.id,
            contender = contender.name,
            throughput = format!("{:.1}", sample.throughput),
            p99_ms = format!("{:.1}", sample.latency_ms.p99),
            drift = format!("{:.3}", sample.drift()),
            violations = sample.violations.len(),
            "sample"
        );
        samples.push(sample);
        bar.inc(1);
        Ok(())
    }
}

/// Gives every link of `stack` the round trip `delay`.
async fn set_every_link(stack: &LocalStack, delay: crate::stack::links::Delay) -> anyhow::Result<()> {
    let config = stack.config();
    let api = crate::stack::links::Api::new(&config.toxiproxy_url())?;
    for link in crate::stack::links::links(config) {
        api.set_delay(&link.name, delay).await?;
    }
    Ok(())
}
