//! The command line: `harness up | down | status | run | compare`.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use protocol_core::ProtocolKind;

use crate::run::{self, RunSpec, Workload};
use crate::stack::{self, Stack, StackConfig, StackState};

/// Compare an orchestrated SAGA over Kafka with two-phase commit over PostgreSQL
/// prepared transactions, on the same checkout services.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local stack (PostgreSQL x3, Kafka, Redis, services, nginx gateway)
    /// and supervise it until Ctrl-C or SIGTERM.
    Up(UpArgs),
    /// Stop the stack started by `up --detach`.
    Down(RunDirArg),
    /// Print the endpoints and processes of the running stack as JSON.
    Status(StatusArgs),
    /// Run one workload against one protocol (or --target), verify the
    /// invariants and print a summary; exits non-zero if any invariant broke.
    Run(RunArgs),
    /// Run both protocols (SAGA in both modes) on the same workloads, seeds and
    /// faults, interleaved and repeated, and write a report under results/;
    /// exits non-zero if any invariant broke in any run.
    Compare(CompareArgs),
    /// Check the invariants of a running system: the local stack of --run-dir
    /// (databases: conservation, nothing in flight, saga effects), or any
    /// implementation of the API with --target (conservation through the API).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
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
}

#[derive(Debug, Args)]
struct CompareArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// The CI-sized comparison (about 3 minutes): one round of three repeats,
    /// stress, the course test and one database kill (same as `--plan quick`).
    #[arg(long, conflicts_with = "plan")]
    quick: bool,
    /// Which comparison: `full` (the SAGA against 2PC, faults included),
    /// `quick`, `2pc-strategies` (2PC's prepare orders against each other) or
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
}

#[derive(Debug, Clone, Args)]
struct RunDirArg {
    /// Directory holding the stack's data, logs and `stack.json`.
    #[arg(long, env = "SAGA2PC_RUN_DIR", default_value = ".stack")]
    run_dir: PathBuf,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    dir: RunDirArg,
    /// Print shell `export` lines instead of JSON.
    #[arg(long)]
    env: bool,
}

#[derive(Debug, Args)]
struct UpArgs {
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

/// Where and how the local stack runs (shared by `up` and `run`).
#[derive(Debug, Clone, Args)]
struct StackArgs {
    #[command(flatten)]
    dir: RunDirArg,
    /// First port of the block used by databases, Kafka, Redis and services.
    #[arg(long, env = "SAGA2PC_PORT_BASE", default_value_t = 18000)]
    port_base: u16,
    /// Port of the nginx gateway.
    #[arg(long, env = "SAGA2PC_GATEWAY_PORT", default_value_t = 8000)]
    gateway_port: u16,
    /// Replicas of each service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
    replicas: u16,
    /// Nodes of the Kafka cluster, each a broker and a KRaft controller: 1,
    /// or 3 for every topic with three copies, two of them in sync
    /// (`min.insync.replicas=2`), so one node may be lost.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(stack::config::MAX_BROKERS)))]
    brokers: u16,
    /// Partitions of each Kafka topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=256))]
    partitions: i32,
    /// Database connections per service replica.
    #[arg(long, default_value_t = 32)]
    db_pool_size: u32,
    /// `max_connections` and `max_prepared_transactions` of each PostgreSQL cluster.
    #[arg(long, default_value_t = 200)]
    pg_max_connections: u32,
    /// Directory of the service binaries (default: next to this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Directory of the PostgreSQL server binaries (default: the newest installed).
    #[arg(long, env = "SAGA2PC_PG_BIN")]
    pg_bin: Option<PathBuf>,
    /// Directory of the Kafka broker jars (default: where setup.sh puts them).
    #[arg(long, env = "SAGA2PC_KAFKA_LIBS")]
    kafka_libs: Option<PathBuf>,
    /// Java heap of each Kafka node, in MiB (`--brokers N` uses N times it).
    #[arg(long, default_value_t = 512)]
    kafka_heap_mb: u32,
    /// SAGA: `sequential` (reserve stock, then debit credit) or `parallel`.
    #[arg(long, default_value = "sequential")]
    saga_mode: saga::Mode,
    /// 2PC: the order of the prepares, `payment-first`, `stock-first` (one
    /// after the other: no distributed deadlock) or `parallel`.
    #[arg(long, default_value = "payment-first")]
    twopc_order: twopc::PrepareOrder,
    /// SAGA: Kafka client profile of the services, `low-latency`, `no-linger` or `defaults`.
    #[arg(long, default_value = "low-latency")]
    kafka_profile: saga::Profile,
}

#[derive(Debug, Args)]
struct RunArgs {
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
    /// `duplicate-messages`, `delay-messages:<d>`. Times in seconds from the start of
    /// the load (`2`, `1.5s`, `500ms`); components as `harness status` names them.
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

fn parse_protocol(raw: &str) -> Result<ProtocolKind, String> {
    raw.parse().map_err(|err: protocol_core::UnknownProtocol| err.to_string())
}

/// Installs the harness's log output on stderr.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "harness=info,warn",
        1 => "harness=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the parsed command; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => up(args).await,
        Command::Run(args) => run_workload(args).await,
        Command::Compare(args) => compare(args).await,
        Command::Verify(args) => verify(args).await,
        Command::Down(dir) => {
            let run_dir = absolute(&dir.run_dir)?;
            if stack::down(&run_dir, Duration::from_secs(120)).await? {
                println!("stopped the stack in {}", run_dir.display());
            } else {
                println!("no stack running in {}", run_dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            let run_dir = absolute(&args.dir.run_dir)?;
            match stack::status(&run_dir)? {
                Some(state) if args.env => print!("{}", state.env_lines()),
                Some(state) => {
                    let dead_letters = dead_letters(&state).await;
                    let mut doc = serde_json::to_value(&state)?;
                    if let (Some(map), Some(dead)) = (doc.as_object_mut(), dead_letters) {
                        map.insert("dead_letters".to_owned(), dead);
                    }
                    println!("{}", serde_json::to_string_pretty(&doc)?);
                }
                None => {
                    eprintln!("no stack running in {}", run_dir.display());
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// SAGA: messages in each service's dead-letter table, read from its
/// replicas' metrics (`None` for a 2PC stack). A service none of whose
/// replicas answers shows `null`.
async fn dead_letters(state: &stack::StackState) -> Option<serde_json::Value> {
    if state.protocol != ProtocolKind::Saga.to_string() {
        return None;
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let mut out = serde_json::Map::new();
    for service in ["order", "stock", "payment"] {
        let mut count: Option<u64> = None;
        for c in state.components.iter().filter(|c| c.name.starts_with(&format!("{service}#"))) {
            let Ok(resp) = http.get(format!("{}/internal/saga/metrics", c.url)).send().await else { continue };
            let Ok(values) = resp.json::<serde_json::Value>().await else { continue };
            // A gauge of the service's one database: the same on every replica.
            count = count.max(values["dead_letters"].as_u64());
        }
        out.insert(service.to_owned(), count.map_or(serde_json::Value::Null, Into::into));
    }
    Some(out.into())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn stack_config(
    args: &StackArgs,
    protocol: ProtocolKind,
    keep_data: bool,
    infra_only: bool,
) -> anyhow::Result<StackConfig> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?.parent().context("the harness executable has no directory")?.to_path_buf(),
    };
    let pg_bin = match &args.pg_bin {
        Some(dir) => dir.clone(),
        None => stack::postgres::find_bin_dir().context("PostgreSQL not found (run harness/scripts/setup.sh)")?,
    };
    let config = StackConfig {
        protocol,
        run_dir: absolute(&args.dir.run_dir)?,
        port_base: args.port_base,
        gateway_port: args.gateway_port,
        replicas: args.replicas,
        brokers: args.brokers,
        partitions: args.partitions,
        db_pool_size: args.db_pool_size,
        pg_max_connections: args.pg_max_connections,
        keep_data,
        infra_only,
        bin_dir: absolute(&bin_dir)?,
        pg_bin,
        kafka_libs: args.kafka_libs.clone().unwrap_or_else(stack::kafka::default_libs_dir),
        kafka_heap_mb: args.kafka_heap_mb,
        saga_mode: args.saga_mode,
        twopc_order: args.twopc_order,
        kafka_profile: args.kafka_profile,
        duplicate_messages: false,
        message_delay: Duration::ZERO,
    };
    // Each replica also keeps a few connections for protocol bookkeeping
    // (DB_PROTOCOL_POOL_SIZE in the services' environment, 4 by default).
    let side: u32 = std::env::var("DB_PROTOCOL_POOL_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let needed = u32::from(config.replicas) * (config.db_pool_size + side) + 10;
    if !config.infra_only && needed > config.pg_max_connections {
        bail!(
            "{} replicas x ({} + {side}) pooled connections exceed --pg-max-connections {}",
            config.replicas,
            config.db_pool_size,
            config.pg_max_connections
        );
    }
    // A consumer group gives each partition to one member: a replica beyond
    // the partition count would consume nothing.
    // Checked for either protocol: `compare` runs both on one configuration.
    if !config.infra_only && i64::from(config.replicas) > i64::from(config.partitions) {
        bail!(
            "--replicas {} exceeds --partitions {}: a saga replica beyond the partition count would receive no message",
            config.replicas,
            config.partitions
        );
    }
    Ok(config)
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
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

async fn run_workload(args: RunArgs) -> anyhow::Result<ExitCode> {
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
    let outcome = match (&args.target, args.protocol) {
        (Some(target), _) => {
            run::execute(target.trim_end_matches('/'), None, &[], &spec, run::Extras::default()).await?
        }
        (None, Some(protocol)) => {
            let config = stack_config(&args.stack, protocol, false, false)?;
            let mut stack = run::local::LocalStack::start(config, &args.faults).await?;
            if args.warm_up {
                let plan = crate::compare::plan::Plan::full();
                match stack.warm_up(&plan.warmup, plan.warmup_at_least).await {
                    Ok(rates) => tracing::info!(?rates, "warmed up (checkouts/s per round)"),
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
        print!("{}", run::summary(protocol, &spec, &outcome));
    }
    Ok(if outcome.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    use crate::compare::{self, Plan};
    use crate::report::{context::RunContext, index, markdown};

    // The protocol of the base config is replaced per contender.
    let base = stack_config(&args.stack, ProtocolKind::Saga, false, false)?;
    stack::ensure_not_running(&base.run_dir)?;
    let name = if args.quick { "quick" } else { args.plan.as_str() };
    let plan = Plan::named(name)
        .with_context(|| format!("--plan {name:?}: expected full, quick, 2pc-strategies or kafka-profiles"))?;
    let context = RunContext::collect(
        &base,
        &[("plan", format!("{} ({} rounds x {} repeats)", plan.name, plan.rounds, plan.repeats))],
    );
    let run_id = match args.run_id {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => id,
        Some(id) => bail!("--run-id {id:?}: use letters, digits, '-', '_' and '.'"),
        None => {
            let date = context.started_at.get(..16).unwrap_or("run").replace([':', 'T'], "-");
            match plan.name {
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
        Ok(ExitCode::FAILURE)
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    use crate::run::dataset::Ids;
    use crate::run::verify::{self as check, Initial};

    let initial = Initial { credit: args.credit, stock: args.stock };
    let (state, scope) = match &args.target {
        Some(target) => {
            let range = |n: i64| (0..n.max(0)).map(|i| i.to_string()).collect();
            let ids = Ids { users: range(args.users), items: range(args.items), orders: range(args.orders) };
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
            (run::read_via_api(&http, target.trim_end_matches('/'), &ids).await?, "API level only")
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
            println!("settled in   {:.3} s", settled.after.as_secs_f64());
            let ids = run::final_state::latest_batch_ids(&dbs).await?;
            (
                run::final_state::read(&dbs, &ids, None).await?,
                "databases: conservation, nothing in flight, saga effects",
            )
        }
    };
    let violations = check::check(initial, &state, &Default::default());
    let paid = state.orders.values().filter(|o| o.paid).count();
    let what = format!(
        "credit of {} users, stock of {} items, {} orders ({paid} paid); {scope}",
        state.credit.len(),
        state.stock.len(),
        state.orders.len()
    );
    if violations.is_empty() {
        println!("invariants   OK: {what}");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("invariants   {} VIOLATIONS ({what})", violations.len());
        for v in violations.iter().take(50) {
            println!("  {v:?}");
        }
        Ok(ExitCode::FAILURE)
    }
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
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(state) = StackState::read(&config.state_file()).ok().flatten()
            && state.supervisor_pid == child.id()
            && state.phase == "ready"
        {
            println!("{}", ready_line(config));
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the stack failed to start ({status}); its log:\n{log}");
        }
        if Instant::now() >= deadline {
            bail!("the stack did not become ready in time; see {}", log_path.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
