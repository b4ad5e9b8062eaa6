//! The Apache Kafka broker: the official jars (resolved from Maven Central by
//! `harness/scripts/setup.sh`) run on the machine's Java in KRaft mode, one node
//! acting as both broker and controller.
//!
//! First start: write `server.properties`, format the log directory with Kafka's
//! own `kafka.tools.StorageTool`, then run `kafka.Kafka`. Ready means the
//! protocol topics exist, created through the admin API with the configured
//! partition count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::config::StackConfig;
use super::process::Spec;

/// The Kafka release `harness/kafka/pom.xml` resolves.
pub const KAFKA_VERSION: &str = "4.1.1";

/// Where `setup.sh` puts the broker jars: `$SAGA2PC_CACHE` or `~/.cache/saga2pc`,
/// then `kafka/<version>/libs`.
pub fn default_libs_dir() -> PathBuf {
    let cache = std::env::var_os("SAGA2PC_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache").join("saga2pc")
    });
    cache.join("kafka").join(KAFKA_VERSION).join("libs")
}

pub(super) fn kafka_dir(config: &StackConfig) -> PathBuf {
    config.run_dir.join("kafka")
}

fn classpath(config: &StackConfig) -> String {
    format!("{}/*", config.kafka_libs.display())
}

/// The broker's `server.properties`.
pub fn server_properties(config: &StackConfig, log_dir: &Path) -> String {
    let port = config.kafka_port();
    let controller = config.kafka_controller_port();
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions={partitions}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions={partitions}
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms={session_ms}
broker.heartbeat.interval.ms={heartbeat_ms}
{extra}",
        log_dir = log_dir.display(),
        partitions = config.partitions,
        session_ms = BROKER_SESSION.as_millis(),
        heartbeat_ms = BROKER_SESSION.as_millis() / 4,
        extra = extra_properties(),
    )
}

/// How long the controller keeps a broker registered without a heartbeat.
///
/// A broker restarted after a crash cannot register again, so cannot serve,
/// until its previous incarnation's session has expired; the restarted
/// controller gives every registered broker a fresh session when it takes
/// over. With Kafka's 9 s default a killed broker served again about 10 s
/// after its restart, and every saga waited that long; at 1 s it serves about
/// a second after its controller. The broker heartbeats its own controller
/// over loopback every quarter of this, so a spurious expiry would need the
/// JVM stalled for a second.
pub const BROKER_SESSION: Duration = Duration::from_millis(1000);

/// The settings of [`EXTRA_PROPERTIES_ENV`], one per line.
fn extra_properties() -> String {
    let extra = std::env::var(EXTRA_PROPERTIES_ENV).unwrap_or_default();
    extra.split(';').map(str::trim).filter(|kv| kv.contains('=')).map(|kv| format!("{kv}\n")).collect()
}

/// Extra broker settings, `key=value;...`, appended to the stack's own in
/// `server.properties` (a later line wins): for measuring how a broker
/// setting moves the numbers without a new build. Reports record it.
pub const EXTRA_PROPERTIES_ENV: &str = "SAGA2PC_KAFKA_PROPERTIES";

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

/// Writes the configuration and formats storage on first use; makes the
/// broker's class archive if there is none yet ([`super::class_archive`]).
pub fn prepare(config: &StackConfig) -> anyhow::Result<()> {
    if !config.kafka_libs.join(".complete").is_file() {
        bail!("Kafka jars not found in {} (run harness/scripts/setup.sh)", config.kafka_libs.display());
    }
    super::class_archive::ensure(config);
    let dir = kafka_dir(config);
    write_config(config, &dir)?;
    if dir.join("data").join("meta.properties").is_file() {
        return Ok(());
    }
    format_storage(config, &dir)
}

/// Writes `server.properties` (storage under `dir/data`) and the log
/// configuration into `dir`.
pub(super) fn write_config(config: &StackConfig, dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(dir.join("server.properties"), server_properties(config, &data))?;
    std::fs::write(dir.join("log4j2.properties"), LOG4J2)?;
    Ok(())
}

/// Formats the storage of the broker configured in `dir` under a new cluster id.
pub(super) fn format_storage(config: &StackConfig, dir: &Path) -> anyhow::Result<()> {
    let cluster_id = random_cluster_id();
    let out = Command::new(java()?)
        .arg(format!("-Dlog4j2.configurationFile={}", dir.join("log4j2.properties").display()))
        .args(["-cp", &classpath(config), "kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
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
fn random_cluster_id() -> String {
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

/// How to run the broker.
pub fn spec(config: &StackConfig) -> anyhow::Result<Spec> {
    let dir = kafka_dir(config);
    Ok(Spec {
        name: "kafka".to_owned(),
        program: java()?,
        args: jvm_args(config, &dir, super::class_archive::use_option(config)),
        env: Vec::new(),
        cwd: Some(dir),
        user: None,
        log: config.run_dir.join("logs").join("kafka.log"),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(30),
        listener: None,
    })
}

/// The broker's readiness check for the supervisor: one admin client for the
/// stack's life (reconnecting within 100 ms, so it notices a restarted broker
/// at once) whose check asks for the protocol topics; the broker serves when
/// it answers, even "already exists". Cheaper than a client per attempt while
/// the broker is down and the load runs in the same process.
pub fn serving_check(
    config: &StackConfig,
) -> anyhow::Result<impl Fn() -> BoxFuture<'static, bool> + Send + Sync + use<>> {
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", config.kafka_bootstrap())
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "100")
            .set("log_level", "0")
            .create()
            .context("creating the Kafka readiness client")?,
    );
    let partitions = config.partitions;
    Ok(move || {
        let admin = admin.clone();
        let check: BoxFuture<'static, bool> = Box::pin(async move {
            let topics: Vec<NewTopic<'_>> = saga::messages::TOPICS
                .iter()
                .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
                .collect();
            let options = AdminOptions::new().request_timeout(Some(Duration::from_millis(900)));
            match admin.create_topics(&topics, &options).await {
                Ok(results) => {
                    results.iter().all(|r| matches!(r, Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists))))
                }
                Err(_) => false,
            }
        });
        check
    })
}

/// Waits for the broker and creates the protocol topics (existing ones are kept).
pub async fn wait_and_create_topics(config: &StackConfig, timeout: Duration) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", config.kafka_bootstrap())
        .set("log_level", "3")
        .create()
        .context("creating Kafka admin client")?;
    let retention_ms = saga::messages::TOPIC_RETENTION.as_millis().to_string();
    let segment_ms = saga::messages::TOPIC_SEGMENT.as_millis().to_string();
    let topics: Vec<NewTopic<'_>> = saga::messages::TOPICS
        .iter()
        .map(|name| {
            NewTopic::new(name, config.partitions, TopicReplication::Fixed(1))
                .set("retention.ms", &retention_ms)
                .set("segment.ms", &segment_ms)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deadline = Instant::now() + timeout;
    loop {
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
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("Kafka topics not created in time: {}", pending.join(", "));
        }
        tracing::trace!(?pending, "Kafka not ready yet");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
