//! The Apache Kafka cluster: the official jars (resolved from Maven Central by
//! `harness/scripts/setup.sh`) run on the machine's Java in KRaft mode, as
//! `--brokers` nodes, each acting as both broker and controller (one node, or
//! a quorum of three as a production cluster runs).
//!
//! First start: write each node's `server.properties`, format its log
//! directory with Kafka's own `kafka.tools.StorageTool` under one cluster id,
//! then run `kafka.Kafka`. Ready means the protocol topics exist, created
//! through the admin API with the configured partition count and the
//! cluster's [`Replication`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::config::StackConfig;
use super::process::Spec;
use crate::wait::{self, Probe};

/// The Kafka release `harness/kafka/pom.xml` resolves.
pub const KAFKA_VERSION: &str = "4.1.1";

/// Where `setup.sh` puts the broker jars: `$SAGA2PC_CACHE` or `~/.cache/saga2pc`,
/// then `kafka/<version>/libs`.
pub fn default_libs_dir() -> PathBuf {
    cache_dir().join("kafka").join(KAFKA_VERSION).join("libs")
}

/// What `setup.sh` installs outside the Debian packages goes here:
/// `$SAGA2PC_CACHE`, or `~/.cache/saga2pc`.
pub(super) fn cache_dir() -> PathBuf {
    std::env::var_os("SAGA2PC_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache").join("saga2pc")
    })
}

pub(super) fn kafka_dir(config: &StackConfig) -> PathBuf {
    config.run_dir.join("kafka")
}

/// The directory of node `index` (its configuration and, under `data`, its log).
fn node_dir(config: &StackConfig, index: u16) -> PathBuf {
    kafka_dir(config).join(format!("node-{index}"))
}

/// What every node's name starts with.
const MEMBER_PREFIX: &str = "kafka#";

/// The name `harness status` and fault schedules give node `index`: `kafka#0`, ...
pub fn member_name(index: u16) -> String {
    format!("{MEMBER_PREFIX}{index}")
}

/// Whether `name` is a node's ([`member_name`]).
pub fn is_member_name(name: &str) -> bool {
    name.strip_prefix(MEMBER_PREFIX).is_some_and(|i| i.parse::<u16>().is_ok())
}

/// How every topic is replicated: the same for the protocol topics, the
/// consumer offsets and the transaction log, so a broker loss costs no topic
/// its leader for longer than an election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Copies of every partition.
    pub factor: i32,
    /// Copies that must have a write before `acks=all` answers: one node may
    /// be lost with no write refused and none lost.
    pub min_insync: i32,
}

impl Replication {
    /// Three copies (fewer on a smaller cluster), two of them in sync.
    pub fn of(config: &StackConfig) -> Replication {
        let factor = i32::from(config.brokers.min(3));
        Replication { factor, min_insync: if factor >= 3 { 2 } else { 1 } }
    }
}

/// One node's place in the cluster: its index, and the controller quorum it
/// votes in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    index: u16,
    /// Nodes in the quorum: the stack's brokers, or 1 for a node on its own
    /// (the class archive's training broker).
    voters: u16,
}

impl Node {
    /// Node `index` of the stack's cluster.
    pub(super) fn of(config: &StackConfig, index: u16) -> Node {
        Node { index, voters: config.brokers }
    }

    /// A single node on the stack's first ports, with no peers.
    pub(super) fn alone() -> Node {
        Node { index: 0, voters: 1 }
    }
}

fn classpath(config: &StackConfig) -> String {
    format!("{}/*", config.kafka_libs.display())
}

/// The `server.properties` of `node`.
pub(super) fn server_properties(config: &StackConfig, node: Node, log_dir: &Path) -> String {
    let port = config.kafka_port(node.index);
    let controller = config.kafka_controller_port(node.index);
    let voters: Vec<String> =
        (0..node.voters).map(|i| format!("{}@127.0.0.1:{}", i + 1, config.kafka_controller_port(i))).collect();
    let replication = if node.voters == 1 { Replication { factor: 1, min_insync: 1 } } else { Replication::of(config) };
    let (listeners, advertised, protocols) = role_listeners(config, node.index);
    format!(
        "process.roles=broker,controller
node.id={id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}{listeners}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{protocols}
log.dirs={log_dir}
num.partitions={partitions}
auto.create.topics.enable=false
{replicated}offsets.topic.replication.factor={factor}
offsets.topic.num.partitions={partitions}
transaction.state.log.replication.factor={factor}
transaction.state.log.min.isr={min_insync}
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms={session_ms}
broker.heartbeat.interval.ms={heartbeat_ms}
{extra}",
        id = node.index + 1,
        voters = voters.join(","),
        factor = replication.factor,
        min_insync = replication.min_insync,
        replicated = replicated_defaults(replication),
        log_dir = log_dir.display(),
        partitions = config.partitions,
        session_ms = BROKER_SESSION.as_millis(),
        heartbeat_ms = BROKER_HEARTBEAT.as_millis(),
        extra = config.kafka_broker_properties.iter().map(|kv| format!("{kv}\n")).collect::<String>(),
    )
}

/// With links on, one more listener per service role, each advertising
/// that role's proxies ([`crate::stack::links`]): a client connects where
/// the broker it bootstrapped from says the brokers are, so a role's
/// traffic stays on its own links. As (`listeners`, `advertised.listeners`,
/// `listener.security.protocol.map`) additions, each starting with a comma.
fn role_listeners(config: &StackConfig, index: u16) -> (String, String, String) {
    use super::links::{Client, Server};
    let mut out = (String::new(), String::new(), String::new());
    if config.links.is_none() {
        return out;
    }
    for role in super::config::Role::ALL {
        let name = role.name().to_uppercase();
        let proxy = super::links::port(config, Client::Service(role), Server::Kafka(index));
        out.0.push_str(&format!(",{name}://127.0.0.1:{}", config.kafka_listener_port(index, role)));
        out.1.push_str(&format!(",{name}://127.0.0.1:{proxy}"));
        out.2.push_str(&format!(",{name}:PLAINTEXT"));
    }
    out
}

/// The broker-wide defaults of a replicated cluster. A single node keeps
/// Kafka's own (one copy, one in sync), written nowhere: with them written
/// out, a consumer whose node was paused past its session lost its group
/// coordinator for good (`harness/tests/saga/faults.rs`, the paused-broker
/// case followed by a load).
///
/// A cluster of several nodes also elects a new active controller when one
/// dies, and no partition moves until it has: a follower waits
/// [`QUORUM_FETCH_TIMEOUT`] without hearing from the leader before it stands
/// for election (Kafka: 2 s), then a random one to two times
/// [`QUORUM_ELECTION_TIMEOUT`] per pre-vote and vote round (Kafka: 1 s).
fn replicated_defaults(replication: Replication) -> String {
    if replication.factor == 1 {
        return String::new();
    }
    format!(
        "default.replication.factor={}\nmin.insync.replicas={}\n\
         controller.quorum.fetch.timeout.ms={}\ncontroller.quorum.election.timeout.ms={}\n",
        replication.factor,
        replication.min_insync,
        QUORUM_FETCH_TIMEOUT.as_millis(),
        QUORUM_ELECTION_TIMEOUT.as_millis(),
    )
}

/// How long a controller follows a silent leader before an election. The
/// leader answers a follower's fetch within 500 ms (hard-coded in Kafka's
/// Raft client), so this must be at least twice that; 1000 ms is that floor
/// (KIP-1236 proposes enforcing it), half of Kafka's default: a killed
/// active controller is replaced about a second sooner. The cost is a
/// spurious election if a leader's JVM stalls for half a second.
pub const QUORUM_FETCH_TIMEOUT: Duration = Duration::from_millis(1000);

/// The base of a candidate's randomised wait for votes (one to two times
/// this) before it tries again; split votes also back off up to
/// `controller.quorum.election.backoff.max.ms`, left at Kafka's 1 s.
pub const QUORUM_ELECTION_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the controller keeps a broker registered without a heartbeat.
///
/// A broker restarted after a crash cannot register again, so cannot serve,
/// until its previous incarnation's session has expired; the restarted
/// controller gives every registered broker a fresh session when it takes
/// over. With Kafka's 9 s default a killed broker served again about 10 s
/// after its restart, and every saga waited that long; at 1 s, a second
/// after its controller; at 500 ms, half a second. Measured with `harness run
/// --protocol saga --saga-mode sequential --rate 60 --checkouts 600 --fault
/// kill:kafka#0@3+2s`, three rounds each, alternated: the broker served again
/// 4.40-4.56 s after the kill at 1 s and 3.79-4.26 s at 500 ms, and the
/// slowest checkout answered after 5.63-6.20 s and 4.89-5.54 s. On a cluster
/// of several nodes it is also how long the partitions a killed node led
/// wait for new leaders. A broker heartbeats the active controller (its own
/// process, or a peer over loopback) every quarter of this, so a spurious
/// expiry needs no heartbeat handled for half a second: none was seen in a
/// 32-client saga stress at 850 checkouts/s, and a client that a fenced
/// single node leaves without brokers bootstraps again
/// (`saga::kafka::ClientLog`).
pub const BROKER_SESSION: Duration = Duration::from_millis(500);

/// How often a broker heartbeats the active controller: four times per
/// [`BROKER_SESSION`].
pub const BROKER_HEARTBEAT: Duration = Duration::from_millis(BROKER_SESSION.as_millis() as u64 / 4);

const LOG4J2: &str = "status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
";

/// Writes every node's configuration and formats their storage (under one
/// new cluster id) on first use; makes the broker's class archive if there is
/// none yet ([`super::class_archive`]).
pub fn prepare(config: &StackConfig) -> anyhow::Result<()> {
    if !config.kafka_libs.join(".complete").is_file() {
        bail!("Kafka jars not found in {} (run harness/scripts/setup.sh)", config.kafka_libs.display());
    }
    super::class_archive::ensure(config);
    let nodes: Vec<(Node, PathBuf)> = (0..config.brokers).map(|i| (Node::of(config, i), node_dir(config, i))).collect();
    for (node, dir) in &nodes {
        write_config(config, *node, dir)?;
    }
    let formatted = |dir: &PathBuf| dir.join("data").join("meta.properties").is_file();
    // Kept data of a larger cluster: its metadata names voters and topic
    // copies that fewer nodes cannot serve (every write would be refused).
    if formatted(&node_dir(config, config.brokers)) {
        bail!(
            "{} holds a Kafka cluster of more than {} node(s) (start with its --brokers, or without --keep-data)",
            kafka_dir(config).display(),
            config.brokers
        );
    }
    if nodes.iter().all(|(_, dir)| formatted(dir)) {
        return Ok(());
    }
    if nodes.iter().any(|(_, dir)| formatted(dir)) {
        bail!("{} holds part of a Kafka cluster only (start without --keep-data)", kafka_dir(config).display());
    }
    let cluster_id = random_cluster_id();
    nodes.iter().try_for_each(|(_, dir)| format_storage(config, dir, &cluster_id))
}

/// Writes `node`'s `server.properties` (storage under `dir/data`) and the
/// log configuration into `dir`.
pub(super) fn write_config(config: &StackConfig, node: Node, dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(dir.join("server.properties"), server_properties(config, node, &data))?;
    std::fs::write(dir.join("log4j2.properties"), LOG4J2)?;
    Ok(())
}

/// Formats the storage of the node configured in `dir` as a member of cluster `cluster_id`.
pub(super) fn format_storage(config: &StackConfig, dir: &Path, cluster_id: &str) -> anyhow::Result<()> {
    let out = Command::new(java()?)
        .arg(format!("-Dlog4j2.configurationFile={}", dir.join("log4j2.properties").display()))
        .args(["-cp", &classpath(config), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c"])
        .arg(dir.join("server.properties"))
        .output()
        .context("running Kafka's storage tool")?;
    if !out.status.success() {
        bail!(
            "formatting Kafka storage failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, and
/// (as Kafka's own `Uuid.randomUuid` ensures) never starting with `-`, which
/// the storage tool's argument parser would take for an option.
pub(super) fn random_cluster_id() -> String {
    loop {
        let id = encode_cluster_id(rand::random());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn encode_cluster_id(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 63) as usize]));
        }
    }
    if nbits > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - nbits)) & 63) as usize]));
    }
    out
}

pub(super) fn java() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = PathBuf::from(home).join("bin").join("java");
        if java.is_file() {
            return Ok(java);
        }
    }
    super::process::find_program("java", &[]).context("java not found (run harness/scripts/setup.sh)")
}

/// The broker's JVM command line for the configuration in `dir`, with
/// `archive` as its class-data-sharing option.
pub(super) fn jvm_args(config: &StackConfig, dir: &Path, archive: Option<String>) -> Vec<String> {
    let heap = format!("{}m", config.kafka_heap_mb);
    let mut args = vec![
        format!("-Xms{heap}"),
        format!("-Xmx{heap}"),
        "-XX:+UseG1GC".to_owned(),
        "-XX:MaxGCPauseMillis=20".to_owned(),
        "-Djava.awt.headless=true".to_owned(),
    ];
    if let Some(archive) = archive {
        // Classes it cannot archive are reported one warning each.
        args.extend([archive, "-Xlog:cds*=off".to_owned()]);
    }
    args.extend([
        format!("-Dlog4j2.configurationFile={}", dir.join("log4j2.properties").display()),
        "-cp".to_owned(),
        classpath(config),
        "kafka.Kafka".to_owned(),
        dir.join("server.properties").display().to_string(),
    ]);
    args
}

/// How to run node `index`.
pub fn spec(config: &StackConfig, index: u16) -> anyhow::Result<Spec> {
    let dir = node_dir(config, index);
    Ok(Spec {
        name: member_name(index),
        program: java()?,
        args: jvm_args(config, &dir, super::class_archive::use_option(config)),
        env: Vec::new(),
        cwd: Some(dir),
        user: None,
        log: config.run_dir.join("logs").join(format!("kafka-{index}.log")),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(30),
        listener: None,
    })
}

/// Node `index`'s readiness check for the supervisor: the node answers a
/// Kafka `ApiVersions` request on its own listener. A node processes requests
/// only once it has caught up with the cluster's metadata and its controller
/// has unfenced it, so an answer means it serves; asking the node itself
/// (rather than a client that knows the whole cluster) keeps a peer's answer,
/// or a registration the controller has not yet expired, from passing for it.
/// One connection per attempt: nothing lives on while the node is down.
pub fn serving_check(config: &StackConfig, index: u16) -> impl Fn() -> BoxFuture<'static, bool> + Send + Sync + use<> {
    let port = config.kafka_port(index);
    move || Box::pin(async move { answers_api_versions(port).await.is_ok() })
}

/// Sends `ApiVersions` v0 to the node on `port` and reads its reply: the
/// request every Kafka client sends first, answered by any broker version.
async fn answers_api_versions(port: u16) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const API_VERSIONS: i16 = 18;
    const CORRELATION: i32 = 0x5a_6a_7a;
    const CLIENT: &[u8] = b"saga2pc-probe";
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        // Header v1: api key, api version, correlation id, client id; v0 has no body.
        let mut request = Vec::with_capacity(4 + 10 + CLIENT.len());
        let size = 2 + 2 + 4 + 2 + CLIENT.len();
        request.extend_from_slice(&i32::try_from(size)?.to_be_bytes());
        request.extend_from_slice(&API_VERSIONS.to_be_bytes());
        request.extend_from_slice(&0i16.to_be_bytes());
        request.extend_from_slice(&CORRELATION.to_be_bytes());
        request.extend_from_slice(&i16::try_from(CLIENT.len())?.to_be_bytes());
        request.extend_from_slice(CLIENT);
        stream.write_all(&request).await?;
        // Reply: size, correlation id, error code, then the versions.
        let mut head = [0u8; 10];
        stream.read_exact(&mut head).await?;
        let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let error = i16::from_be_bytes([head[8], head[9]]);
        if correlation != CORRELATION || error != 0 {
            bail!("ApiVersions answered with correlation id {correlation}, error {error}");
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_millis(900), exchange).await.context("no ApiVersions answer")?
}

/// Waits until every node serves, then creates the protocol topics with the
/// cluster's [`Replication`] (existing ones are kept).
///
/// Every node, not only as many as a topic has copies: a topic created while
/// a node was registered but still fenced got that node as the last replica
/// of every partition and outside every in-sync set, so it led no partition
/// and a kill of it moved no leader. Which node that was depended on start-up
/// timing, and a broker kill under load then measured a leader election or
/// not by chance (max latency 1.7 s in one run, 8 s in the next).
/// Created on a whole cluster, the partitions' leaders are spread over all
/// nodes, as a production cluster has them.
pub async fn wait_and_create_topics(config: &StackConfig, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    wait_all_serving(config, deadline).await?;
    let admin: AdminClient<DefaultClientContext> =
        quiet_client(&config.kafka_bootstrap()).create().context("creating Kafka admin client")?;
    let retention_ms = saga::messages::TOPIC_RETENTION.as_millis().to_string();
    let segment_ms = saga::messages::TOPIC_SEGMENT.as_millis().to_string();
    let replication = Replication::of(config);
    let min_insync = replication.min_insync.to_string();
    let topics: Vec<NewTopic<'_>> = saga::messages::TOPICS
        .iter()
        .map(|name| {
            let mut topic = NewTopic::new(name, config.partitions, TopicReplication::Fixed(replication.factor))
                .set("retention.ms", &retention_ms)
                .set("segment.ms", &segment_ms);
            if replication.factor > 1 {
                topic = topic.set("min.insync.replicas", &min_insync);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let every = Duration::from_millis(250);
    wait::until_deadline("Kafka topics", deadline, every, || async {
        let outcome = admin.create_topics(&topics, &options).await;
        let pending = match outcome {
            Ok(results) => results
                .into_iter()
                .filter_map(|r| match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                    Err((topic, code)) => Some(format!("{topic}: {code}")),
                })
                .collect::<Vec<_>>(),
            Err(err) => vec![err.to_string()],
        };
        Ok(if pending.is_empty() { Probe::Ready(()) } else { Probe::NotYet(pending.join(", ")) })
    })
    .await
}

/// The stack's own administrative client of the cluster at `bootstrap`,
/// logging errors only (a node still starting is expected, not news).
fn quiet_client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("log_level", "3");
    config
}

/// Waits until the cluster's metadata lists every node. The supervisor's
/// readiness probes ([`serving_check`]) run beside topic creation, not
/// before it, and a topic with three copies is accepted once three brokers
/// have registered, fenced or not; a controller leaves fenced brokers out of
/// its metadata answers, so a full list means every node is unfenced.
async fn wait_all_serving(config: &StackConfig, deadline: Instant) -> anyhow::Result<()> {
    let expected = usize::from(config.brokers);
    let bootstrap = config.kafka_bootstrap();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let client: BaseConsumer = quiet_client(&bootstrap).create()?;
        let what = format!("Kafka: all {expected} nodes unfenced");
        wait::until_blocking(&what, deadline, wait::POLL, || {
            Ok(match client.fetch_metadata(None, Duration::from_secs(1)).map(|m| m.brokers().len()) {
                Ok(n) if n >= expected => Probe::Ready(()),
                Ok(n) => Probe::NotYet(format!("{n} listed")),
                Err(err) => Probe::NotYet(format!("no metadata ({err})")),
            })
        })
    })
    .await?
}

/// How many partitions of the protocol topics each node is the preferred
/// leader of (node id to count; the first replica, where creation placed
/// the leader and where Kafka's leader rebalancing brings it back), from the
/// cluster's metadata. A cluster whose every node has a share is one where a
/// node's loss moves leaders.
pub fn preferred_leaders(bootstrap: &str) -> anyhow::Result<std::collections::BTreeMap<i32, usize>> {
    let client: BaseConsumer = quiet_client(bootstrap).create()?;
    let metadata = client.fetch_metadata(None, Duration::from_secs(5))?;
    let mut leaders = std::collections::BTreeMap::new();
    for topic in metadata.topics().iter().filter(|t| saga::messages::TOPICS.contains(&t.name())) {
        for partition in topic.partitions() {
            if let Some(&first) = partition.replicas().first() {
                *leaders.entry(first).or_insert(0) += 1;
            }
        }
    }
    Ok(leaders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_matches_the_pom() {
        let pom = include_str!("../../kafka/pom.xml");
        assert!(pom.contains(&format!("<kafka.version>{KAFKA_VERSION}</kafka.version>")));
    }

    #[test]
    fn node_names_are_recognised() {
        assert!(is_member_name(&member_name(2)));
        assert!(!is_member_name("kafka") && !is_member_name("kafka#x") && !is_member_name("order#0"));
    }

    #[test]
    fn cluster_ids_are_22_url_safe_chars() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, random_cluster_id());
    }

    #[test]
    fn cluster_ids_never_start_with_a_dash() {
        // 0xF8 encodes to '-' (62) in the first six bits: such ids are redrawn.
        assert!(encode_cluster_id([0xF8; 16]).starts_with('-'));
        assert!((0..2000).all(|_| !random_cluster_id().starts_with('-')));
    }
}
