//! `harness run`: one workload against one protocol (or `--target`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use protocol_core::ProtocolKind;

use super::parse_protocol;
use super::stack_args::{StackArgs, stack_config};
use crate::run::{self, RunSpec, Workload};
#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Checkout protocol to run (ignored with --target).
    #[arg(long, value_parser = parse_protocol, required_unless_present = "target")]
    protocol: Option<ProtocolKind>,
    /// The workload.
    #[arg(long, value_enum, default_value = "stress")]
    workload: Workload,
    /// Clients in the closed loop (and connections while creating data).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Open loop instead: start this many checkouts per second, whatever the
    /// replies' pace; latency counts from each checkout's scheduled start.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Contention: hot-item's share of orders containing the hot item (0-1),
    /// or zipf's exponent (0 = uniform).
    #[arg(long, default_value_t = 0.5)]
    skew: f64,
    /// Checkouts to send in total.
    #[arg(long, default_value_t = 5_000)]
    checkouts: u64,
    /// Load for this long instead (`60`, `90s`, `500ms`), cycling through the
    /// --checkouts plan; with --rate, starts rate x duration checkouts.
    #[arg(long, value_parser = run::faults::parse_duration)]
    duration: Option<Duration>,
    /// Orders to create (fewer than checkouts means repeated orders).
    #[arg(long, default_value_t = 2_000)]
    orders: i64,
    /// Items to create.
    #[arg(long, default_value_t = 100)]
    items: i64,
    /// Users to create.
    #[arg(long, default_value_t = 1_000)]
    users: i64,
    /// Starting stock of each item.
    #[arg(long, default_value_t = 100)]
    stock: i64,
    /// Starting credit of each user.
    #[arg(long, default_value_t = 10)]
    credit: i64,
    /// Price of each item.
    #[arg(long, default_value_t = 1)]
    price: i64,
    /// Seed of the random order choices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Drive an already running system at this base URL instead of starting the
    /// local stack (database-level checks are skipped).
    #[arg(long)]
    target: Option<String>,
    /// A fault to inject, repeatable: `kill:<component>[#replica]@<t>[+<restart_after>]`,
    /// `pause:<component>[#replica]@<t>+<d>`, `crashpoint:<name>[@<service>[#replica]]@<t>`,
    /// `duplicate-messages`, `delay-messages:<d>`, and on a stack with links
    /// `latency:<link>@<t>+<d>=<rtt>[±<jitter>]`, `cut:<link>@<t>+<d>`, `reset:<link>@<t>+<d>`,
    /// `bandwidth:<link>@<t>+<d>=<KB/s>`. Times in seconds
    /// from the start of the load (`2`, `1.5s`, `500ms`); components and links as
    /// `harness status` names them (a link without `#replica`: every replica).
    #[arg(long = "fault", value_name = "SPEC", conflicts_with = "target")]
    faults: Vec<run::faults::Fault>,
    /// Before the recorded load, warm the fresh stack up (stress at 32
    /// clients, unrecorded) until its throughput is steady, as `harness
    /// compare` does: the broker's JVM needs about half a minute of load.
    #[arg(long, conflicts_with = "target")]
    warm_up: bool,
    /// Print the result as one JSON document (the settings, the verifier's
    /// verdict and every measurement, as a compare's `run.json` records a
    /// sample) instead of the summary table.
    #[arg(long)]
    json: bool,
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.trim_end_matches("/s").parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 => Ok(rate),
        _ => Err(format!("{raw:?} is not a rate between 0 and 100000 checkouts/s (e.g. 200 or 200/s)")),
    }
}

/// Runs the workload, prints the summary (or `--json`), and fails when an
/// invariant broke.
pub(super) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let spec = RunSpec {
        workload: args.workload,
        concurrency: usize::try_from(args.concurrency)?,
        rate: args.rate,
        skew: args.skew,
        checkouts: args.checkouts,
        duration: args.duration,
        orders: args.orders,
        items: args.items,
        users: args.users,
        stock: args.stock,
        credit: args.credit,
        price: args.price,
        seed: args.seed,
    }
    .normalised();
    let mut network = None;
    let outcome = match (&args.target, args.protocol) {
        (Some(target), _) => {
            run::execute(target.trim_end_matches('/'), None, &[], &spec, run::Extras::default()).await?
        }
        (None, Some(protocol)) => {
            let config = stack_config(&args.stack, protocol, false, false)?;
            network.clone_from(&config.links);
            let mut stack = run::local::LocalStack::start(config, &args.faults).await?;
            if args.warm_up {
                let plan = crate::compare::plan::Plan::full();
                match stack.warm_up(&plan.warmup, plan.warmup_at_least).await {
                    Ok(warmed) if warmed.steady => {
                        tracing::info!(rates = ?warmed.throughputs, "warmed up (checkouts/s per round)");
                    }
                    Ok(warmed) => tracing::warn!(
                        rates = ?warmed.throughputs,
                        "the warm-up reached its cap before two rounds agreed: the load runs on a stack still \
                         speeding up"
                    ),
                    Err(err) => {
                        stack.stop().await;
                        return Err(err.context("warm-up"));
                    }
                }
            }
            let outcome = stack.run(&spec, &args.faults).await;
            stack.stop().await;
            outcome?
        }
        (None, None) => bail!("--protocol is required without --target"),
    };
    let protocol = if args.target.is_some() { None } else { args.protocol };
    if args.json {
        let record = crate::compare::sample::RunRecord::new(&run::driven(protocol), &spec, &outcome);
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        if let Some(network) = &network {
            println!("{}", network.describe());
        }
        print!("{}", run::summary(protocol, &spec, &outcome));
    }
    Ok(if outcome.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
