//! `harness verify`: the invariants of a running system.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::stack_args::{RunDirArg, absolute};
use crate::run::verify::{self as check, Initial};
use crate::{run, stack};

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    dir: RunDirArg,
    /// Check the system at this base URL through its API instead (ids
    /// `0..n-1` as `batch_init` creates them; see --items, --users, --orders).
    #[arg(long)]
    target: Option<String>,
    /// Starting stock of every item (as given to `batch_init`).
    #[arg(long)]
    stock: i64,
    /// Starting credit of every user (as given to `batch_init`).
    #[arg(long)]
    credit: i64,
    /// With --target: items `0..n-1` to check.
    #[arg(long, default_value_t = 100)]
    items: i64,
    /// With --target: users `0..n-1` to check.
    #[arg(long, default_value_t = 1_000)]
    users: i64,
    /// With --target: orders `0..n-1` to check.
    #[arg(long, default_value_t = 1_000)]
    orders: i64,
    /// Local stack: how long to wait for protocol state in flight to finish.
    #[arg(long, default_value_t = 60)]
    settle_timeout_s: u64,
    /// Print the verdict as one JSON object instead of text: held, scope,
    /// users, items, orders, paid, settled_s and every violation.
    #[arg(long)]
    json: bool,
}

/// What `harness verify --json` prints.
#[derive(Debug, serde::Serialize)]
struct Verdict<'a> {
    /// Whether every invariant held.
    held: bool,
    /// What was read: the databases of a local stack, or the API only.
    scope: &'static str,
    /// Users, items and orders judged, and how many of the orders are paid.
    users: usize,
    items: usize,
    orders: usize,
    paid: usize,
    /// Local stack: seconds until no protocol state was left in flight (the
    /// settle timeout when some stayed: `violations` then names it).
    settled_s: Option<f64>,
    /// Every broken invariant.
    violations: &'a [check::Violation],
}

/// Reads the state (databases, or the API with `--target`), checks it and
/// prints the verdict; fails when an invariant broke.
pub(super) async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    use crate::run::workload::Ids;

    let initial = Initial { credit: args.credit, stock: args.stock };
    let mut settled_s = None;
    let (state, scope) = match &args.target {
        Some(target) => {
            let range = |n: i64| (0..n.max(0)).map(|i| i.to_string()).collect();
            let ids = Ids { users: range(args.users), items: range(args.items), orders: range(args.orders) };
            let api = crate::api::Api::new(target, crate::timeouts::ADMIN_CALL, 64)?;
            (run::read_via_api(&api, &ids).await?, "API level only")
        }
        None => {
            let run_dir = absolute(&args.dir.run_dir)?;
            let Some(stack) = stack::status(&run_dir)? else {
                bail!("no stack running in {} (start one with `harness up`, or use --target)", run_dir.display());
            };
            let db = |role: &str| stack.databases.get(role).cloned().with_context(|| format!("no {role} database"));
            let dbs = run::final_state::Databases { order: db("order")?, stock: db("stock")?, payment: db("payment")? };
            let order_urls: Vec<String> =
                stack.components.iter().filter(|c| c.name.starts_with("order#")).map(|c| c.url.clone()).collect();
            let settled =
                run::final_state::settle(&dbs, &order_urls, Duration::from_secs(args.settle_timeout_s)).await?;
            settled_s = Some(settled.after.as_secs_f64());
            if !args.json {
                if settled.settled() {
                    println!("settled in   {:.3} s", settled.after.as_secs_f64());
                } else {
                    println!("not settled after {:.3} s: {:?}", settled.after.as_secs_f64(), settled.left);
                }
            }
            let ids = run::final_state::latest_batch_ids(&dbs).await?;
            let mut state = run::final_state::read(&dbs, &ids, None).await?;
            settled.carry_into(&mut state);
            (state, "databases: conservation, nothing in flight, saga effects")
        }
    };
    let violations = check::check(initial, &state, &Default::default());
    let paid = state.orders.values().filter(|o| o.paid).count();
    let held = violations.is_empty();
    let code = if held { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if args.json {
        let verdict = Verdict {
            held,
            scope,
            users: state.credit.len(),
            items: state.stock.len(),
            orders: state.orders.len(),
            paid,
            settled_s,
            violations: &violations,
        };
        println!("{}", serde_json::to_string_pretty(&verdict)?);
        return Ok(code);
    }
    let what = format!(
        "credit of {} users, stock of {} items, {} orders ({paid} paid); {scope}",
        state.credit.len(),
        state.stock.len(),
        state.orders.len()
    );
    if held {
        println!("invariants   OK: {what}");
    } else {
        println!("invariants   {} VIOLATIONS ({what})", violations.len());
        for v in violations.iter().take(50) {
            println!("  {v:?}");
        }
    }
    Ok(code)
}
