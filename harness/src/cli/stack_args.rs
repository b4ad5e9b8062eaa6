//! The flags that say where and how the local stack runs, shared by `up`,
//! `run` and `compare`, and their translation into a [`StackConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use protocol_core::ProtocolKind;

use crate::stack::{self, StackConfig};
#[derive(Debug, Clone, Args)]
pub(super) struct RunDirArg {
    /// Directory holding the stack's data, logs and `stack.json`.
    #[arg(long, env = "SAGA2PC_RUN_DIR", default_value = ".stack")]
    pub(super) run_dir: PathBuf,
}

/// Where and how the local stack runs (shared by `up` and `run`).
#[derive(Debug, Clone, Args)]
pub(super) struct StackArgs {
    #[command(flatten)]
    pub(super) dir: RunDirArg,
    /// First port of the block used by databases, Kafka, Redis and services.
    #[arg(long, env = "SAGA2PC_PORT_BASE", default_value_t = 18000)]
    pub(super) port_base: u16,
    /// Port of the nginx gateway.
    #[arg(long, env = "SAGA2PC_GATEWAY_PORT", default_value_t = 8000)]
    pub(super) gateway_port: u16,
    /// Replicas of each service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub(super) replicas: u16,
    /// Nodes of the Kafka cluster, each a broker and a KRaft controller: 1,
    /// or 3 for every topic with three copies, two of them in sync
    /// (`min.insync.replicas=2`), so one node may be lost.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(stack::config::MAX_BROKERS)))]
    pub(super) brokers: u16,
    /// Partitions of each Kafka topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=256))]
    pub(super) partitions: i32,
    /// Database connections per service replica.
    #[arg(long, default_value_t = 32)]
    pub(super) db_pool_size: u32,
    /// Database connections per service replica kept apart for the
    /// protocol's own bookkeeping (2PC phase two, the decision log,
    /// recovery); 0 shares the request pool.
    #[arg(long, env = "DB_PROTOCOL_POOL_SIZE", default_value_t = 4)]
    pub(super) db_protocol_pool_size: u32,
    /// `max_connections` and `max_prepared_transactions` of each PostgreSQL cluster.
    #[arg(long, default_value_t = 200)]
    pub(super) pg_max_connections: u32,
    /// Directory of the service binaries (default: next to this executable).
    #[arg(long)]
    pub(super) bin_dir: Option<PathBuf>,
    /// Directory of the PostgreSQL server binaries (default: the newest installed).
    #[arg(long, env = "SAGA2PC_PG_BIN")]
    pub(super) pg_bin: Option<PathBuf>,
    /// Directory of the Kafka broker jars (default: where setup.sh puts them).
    #[arg(long, env = "SAGA2PC_KAFKA_LIBS")]
    pub(super) kafka_libs: Option<PathBuf>,
    /// Java heap of each Kafka node, in MiB (`--brokers N` uses N times it).
    #[arg(long, default_value_t = 512)]
    pub(super) kafka_heap_mb: u32,
    /// Extra broker settings, `key=value;...`, appended to the stack's own in
    /// `server.properties` (a later line wins): for measuring how a broker
    /// setting moves the numbers without a new build. Reports record them.
    #[arg(long, env = "SAGA2PC_KAFKA_PROPERTIES", default_value = "", value_parser = parse_broker_properties)]
    pub(super) kafka_broker_properties: String,
    /// SAGA: extra client settings of the services' producers and consumers,
    /// `key=value;...`, applied after the profile's (durability and offset
    /// settings refused). Reports record them.
    #[arg(long, env = "SAGA2PC_KAFKA_CLIENT_PROPERTIES", default_value = "")]
    pub(super) kafka_client_properties: saga::kafka::ClientProperties,
    /// Whether the services record where each checkout's time goes (the
    /// report's breakdown): `--spans false` measures what recording costs.
    #[arg(
        long,
        env = "SAGA2PC_SPANS",
        action = clap::ArgAction::Set,
        default_value_t = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(super) spans: bool,
    /// SAGA: `sequential` (reserve stock, then debit credit) or `parallel`.
    #[arg(long, default_value = "sequential")]
    pub(super) saga_mode: saga::Mode,
    /// 2PC: the order of the prepares, `payment-first`, `stock-first` (one
    /// after the other: no distributed deadlock) or `parallel`.
    #[arg(long, default_value = "payment-first")]
    pub(super) twopc_order: twopc::PrepareOrder,
    /// SAGA: Kafka client profile of the services, `low-latency`, `no-linger` or `defaults`.
    #[arg(long, default_value = "low-latency")]
    pub(super) kafka_profile: saga::Profile,
    /// SAGA: every relay publishes each message twice, for the whole life of
    /// the stack (the deduplication tests; `harness run --fault
    /// duplicate-messages` sets it for one run).
    #[arg(long)]
    pub(super) duplicate_messages: bool,
    /// Run every link between components (gateway to services, order to
    /// the participants and back, each service to its database and to each
    /// Kafka node) through Toxiproxy, which `harness status` lists; no added
    /// delay unless `--link-latency` or `--link` give one.
    #[arg(long)]
    pub(super) links: bool,
    /// Added round trip on every link, `<d>[±<jitter>]` in whole
    /// milliseconds (`2ms`, `5ms±1ms`); implies `--links`.
    #[arg(long, value_name = "DELAY")]
    pub(super) link_latency: Option<stack::links::Delay>,
    /// One link's round trip, `<link>=<delay>` (a link as `harness status`
    /// names it; without `#replica`, every replica's), repeatable, later
    /// ones winning; implies `--links`.
    #[arg(long = "link", value_name = "LINK=DELAY", value_parser = stack::links::parse_override)]
    pub(super) link_overrides: Vec<(String, stack::links::Delay)>,
    /// Bandwidth each way, in KB/s (`100`, `100KB/s`, `2MB/s`): `<rate>`
    /// for every link, `<link>=<rate>` for one (without `#replica`: every
    /// replica's); repeatable, later ones winning; implies `--links`.
    #[arg(long, value_name = "[LINK=]RATE", value_parser = stack::links::parse_bandwidth_arg)]
    pub(super) link_bandwidth: Vec<stack::links::BandwidthArg>,
    /// The Toxiproxy server (default: where setup.sh puts it).
    #[arg(long, env = "SAGA2PC_TOXIPROXY")]
    pub(super) toxiproxy: Option<PathBuf>,
}

impl StackArgs {
    /// The network of the flags: links through Toxiproxy if any link flag is given.
    fn network(&self) -> Option<stack::links::Network> {
        let wanted = self.links
            || self.link_latency.is_some()
            || !self.link_overrides.is_empty()
            || !self.link_bandwidth.is_empty();
        let mut network = stack::links::Network {
            delay: self.link_latency.unwrap_or_default(),
            overrides: self.link_overrides.clone(),
            ..Default::default()
        };
        for arg in &self.link_bandwidth {
            match arg {
                stack::links::BandwidthArg::All(rate) => network.bandwidth_kbps = Some(*rate),
                stack::links::BandwidthArg::Link(selector, rate) => {
                    network.bandwidth_overrides.push((selector.clone(), *rate))
                }
            }
        }
        wanted.then_some(network)
    }
}

/// `key=value;...`, checked (anything else is refused: a setting silently
/// dropped would be measured as if applied) and written back tidied.
fn parse_broker_properties(raw: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for pair in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => out.push(format!("{}={}", key.trim(), value.trim())),
            _ => return Err(format!("{pair:?} is not key=value")),
        }
    }
    Ok(out.join(";"))
}

/// `path` made absolute (the stack's processes run in other directories).
pub(super) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// The stack configuration of the flags, checked: the pooled connections fit
/// PostgreSQL's limit and every saga replica gets a partition.
pub(super) fn stack_config(
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
        db_protocol_pool_size: args.db_protocol_pool_size,
        pg_max_connections: args.pg_max_connections,
        keep_data,
        infra_only,
        bin_dir: absolute(&bin_dir)?,
        pg_bin,
        kafka_libs: args.kafka_libs.clone().unwrap_or_else(stack::kafka::default_libs_dir),
        kafka_heap_mb: args.kafka_heap_mb,
        kafka_broker_properties: args
            .kafka_broker_properties
            .split(';')
            .filter(|kv| !kv.is_empty())
            .map(str::to_owned)
            .collect(),
        kafka_client_properties: args.kafka_client_properties.clone(),
        spans: args.spans,
        saga_mode: args.saga_mode,
        twopc_order: args.twopc_order,
        kafka_profile: args.kafka_profile,
        duplicate_messages: args.duplicate_messages,
        message_delay: Duration::ZERO,
        links: args.network(),
        toxiproxy: args.toxiproxy.clone().unwrap_or_else(stack::links::default_binary),
        crashpoints: true,
        peer_token: twopc::client::PeerToken::random(),
    };
    if let Some(network) = &config.links {
        let links = stack::links::links(&config);
        if links.len() > stack::links::MAX_LINKS {
            bail!(
                "{} replicas and {} Kafka nodes make {} links; --links carries at most {}",
                config.replicas,
                config.brokers,
                links.len(),
                stack::links::MAX_LINKS
            );
        }
        for selector in network.selectors() {
            stack::links::check_selector(selector, &links)?;
        }
    }
    let side = config.db_protocol_pool_size;
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
