//! `harness compare`: both protocols on the same plan, and a report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use protocol_core::ProtocolKind;

use super::stack_args::{StackArgs, stack_config};
use crate::stack;
#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// The CI-sized comparison (about 3 minutes): one round of three repeats,
    /// stress, the course test and one database kill (same as `--plan quick`).
    #[arg(long, conflicts_with = "plan")]
    quick: bool,
    /// Which comparison: `full` (the SAGA against 2PC, faults included),
    /// `quick`, `distance` (the distance sweep alone: stress and the hot item
    /// with 0 to 5 ms added on every link), `replication` (one Kafka node
    /// against three, paired round by round), `2pc-strategies` (2PC's
    /// prepare orders against each other) or
    /// `kafka-profiles` (the saga's Kafka client profiles against each other).
    #[arg(long, default_value = "full")]
    plan: String,
    /// Directory of the reports; the run writes `<out>/<run-id>/` and adds a
    /// row to `<out>/README.md`.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Name of the run's folder (default: `<date>-compare[-quick]`).
    #[arg(long)]
    run_id: Option<String>,
    /// Seed of the contenders' order in each round (default: drawn at
    /// random; recorded in the report and `run.json` either way, so a run can
    /// be repeated in the same order).
    #[arg(long)]
    order_seed: Option<u64>,
}

/// Runs the plan, writes the report and its index row, and fails when an
/// invariant broke in any run or a course test has no counts.
pub(super) async fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    use crate::compare::{self, Plan};
    use crate::report::{context::RunContext, index, markdown};

    // The protocol of the base config is replaced per contender.
    let base = stack_config(&args.stack, ProtocolKind::Saga, false, false)?;
    stack::ensure_not_running(&base.run_dir)?;
    let name = if args.quick { "quick" } else { args.plan.as_str() };
    let plan = Plan::named(name)
        .with_context(|| {
            format!("--plan {name:?}: expected full, quick, distance, replication, 2pc-strategies or kafka-profiles")
        })?
        .ordered(args.order_seed.unwrap_or_else(rand::random));
    let context = RunContext::collect(
        &base,
        &[("plan", format!("{} ({} rounds x {} repeats)", plan.name, plan.rounds, plan.repeats))],
    );
    let run_id = match args.run_id {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => id,
        Some(id) => bail!("--run-id {id:?}: use letters, digits, '-', '_' and '.'"),
        None => {
            let date = context.started_at.get(..16).unwrap_or("run").replace([':', 'T'], "-");
            match plan.name.as_str() {
                "full" => format!("{date}-compare"),
                other => format!("{date}-compare-{other}"),
            }
        }
    };
    let dir = args.out.join(&run_id);
    let plan_flag = plan.flag();
    println!("compare ({}): {} runs; report in {}", plan.name, plan.run_count(), dir.display());
    let comparison = compare::execute(plan, &base).await?;
    let verdicts = markdown::write(&dir, &run_id, &context, &comparison)?;
    let what = format!("`harness compare{}`, {} samples, {} CPUs", plan_flag, comparison.samples.len(), context.cpus);
    let finding = verdicts.first().map(|v| v.replace("**", "")).unwrap_or_default();
    index::add(&args.out, &run_id, &what, &finding)?;
    for line in &verdicts {
        println!("- {}", line.replace("**", ""));
    }
    println!("report: {}", dir.join("report.md").display());
    if comparison.all_consistent() {
        println!("invariants   OK in all {} runs", comparison.samples.len());
        Ok(ExitCode::SUCCESS)
    } else {
        for s in comparison.samples.iter().filter(|s| !s.violations.is_empty()) {
            println!("invariants   VIOLATED in {} / {}: {:?}", s.case, s.contender, s.violations);
        }
        let course: Vec<&str> = comparison
            .plan
            .cases
            .iter()
            .filter(|c| c.group == compare::plan::Group::Course)
            .map(|c| c.id.as_str())
            .collect();
        for s in comparison.samples.iter().filter(|s| s.course.is_none() && course.contains(&s.case.as_str())) {
            println!("course test  NOT MEASURED in {} / {}: no counts", s.case, s.contender);
        }
        Ok(ExitCode::FAILURE)
    }
}
