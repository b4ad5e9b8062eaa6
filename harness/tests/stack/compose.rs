//! `compose/docker-compose.yml` checked without a container engine: a real
//! compose implementation (docker-compose from PyPI, installed by
//! `harness/scripts/setup.sh`) validates and resolves the file for each
//! protocol, and the resolved file is held against what the binaries accept
//! (`--help` lists every flag with its environment variable) and against the
//! topology it claims: three Kafka nodes in one quorum, every protocol topic
//! with three copies, prepared transactions on every database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn compose_venv() -> PathBuf {
    let cache = std::env::var_os("SAGA2PC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache").join("saga2pc"));
    cache.join("compose-venv").join("bin")
}

/// The file as the compose implementation resolves it for `protocol`, as JSON.
fn resolved(protocol: &str) -> Value {
    let bin = compose_venv();
    let file = repo().join("compose").join("docker-compose.yml");
    let out = Command::new(bin.join("docker-compose"))
        .args(["--profile", "tools", "-f"])
        .arg(&file)
        .arg("config")
        .env("PROTOCOL", protocol)
        .env("PEER_TOKEN", "compose-check-0123456789abcdef")
        .output()
        .expect("docker-compose runs (harness/scripts/setup.sh installs it)");
    assert!(out.status.success(), "docker-compose config refused the file: {}", support::text(&out.stderr));
    // The peers' shared secret must come from the caller: without it the
    // file refuses to resolve (no service starts with a guessable default).
    let without = Command::new(bin.join("docker-compose"))
        .args(["--profile", "tools", "-f"])
        .arg(&file)
        .arg("config")
        .env("PROTOCOL", protocol)
        .env_remove("PEER_TOKEN")
        .output()
        .unwrap();
    assert!(!without.status.success(), "docker-compose resolved the file without PEER_TOKEN");
    let mut to_json = Command::new(bin.join("python"))
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut to_json.stdin.take().unwrap(), &out.stdout).unwrap();
    let json = to_json.wait_with_output().unwrap();
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).unwrap()
}

/// What a binary accepts, from its `--help`: every environment variable, and
/// those of the flags its usage line requires.
struct Accepts {
    env: BTreeSet<String>,
    required: BTreeSet<String>,
}

fn accepts(binary: &str) -> Accepts {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_harness")).with_file_name(binary);
    let out = Command::new(&path).arg("--help").env_clear().output().unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let help = support::text(&out.stdout);
    // "--database-url <DATABASE_URL>\n  ... [env: DATABASE_URL=]" (a secret's
    // value hidden: "[env: PEER_TOKEN]"): flag to variable.
    let mut flag_env = BTreeMap::new();
    let mut flag = None;
    for line in help.lines().map(str::trim) {
        if let Some(f) = line.strip_prefix("--") {
            flag = f.split_whitespace().next().map(str::to_owned);
        }
        if let (Some(f), Some((_, rest))) = (&flag, line.split_once("[env: ")) {
            flag_env.insert(f.clone(), rest.split(['=', ']']).next().unwrap().to_owned());
        }
    }
    let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
    let required = usage
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|f| flag_env.get(f).unwrap_or_else(|| panic!("{binary}: --{f} has no environment variable")).clone())
        .collect();
    Accepts { env: flag_env.into_values().collect(), required }
}

/// `KEY=value` settings of the image (`ENV` lines of compose/Dockerfile).
fn image_env() -> BTreeMap<String, String> {
    let dockerfile = std::fs::read_to_string(repo().join("compose").join("Dockerfile")).unwrap();
    dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn env_of(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

#[test]
fn compose_file_validates_and_matches_what_the_binaries_accept() {
    for protocol in ["saga", "2pc"] {
        let file = resolved(protocol);
        let services = file["services"].as_object().unwrap();
        let image = image_env();
        assert!(image.get("LISTEN").is_some_and(|l| l.ends_with(":8000")), "the services listen on 8000: {image:?}");

        // The Kafka cluster: three nodes in one quorum, three copies of
        // everything, two in sync.
        let nodes: Vec<&String> = services.keys().filter(|k| k.starts_with("kafka-") && *k != "kafka-topics").collect();
        assert_eq!(nodes.len(), 3, "{nodes:?}");
        let mut ids = BTreeSet::new();
        for node in &nodes {
            let env = env_of(&services[node.as_str()]);
            assert!(services[node.as_str()]["image"].as_str().unwrap().starts_with("apache/kafka:"));
            ids.insert(env["KAFKA_NODE_ID"].clone());
            let voters = &env["KAFKA_CONTROLLER_QUORUM_VOTERS"];
            assert!(nodes.iter().all(|n| voters.contains(&format!("@{n}:9093"))), "{node}: voters {voters}");
            assert_eq!(env["KAFKA_ADVERTISED_LISTENERS"], format!("PLAINTEXT://{node}:9092"));
            for (key, want) in [
                ("KAFKA_DEFAULT_REPLICATION_FACTOR", "3"),
                ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "3"),
                ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "3"),
                ("KAFKA_MIN_INSYNC_REPLICAS", "2"),
                ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "2"),
                ("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false"),
            ] {
                assert_eq!(env.get(key).map(String::as_str), Some(want), "{node}: {key}");
            }
            // The local stack's failover timings, so a lost node costs what
            // `harness compare` measured.
            use harness::stack::kafka::{
                BROKER_HEARTBEAT, BROKER_SESSION, QUORUM_ELECTION_TIMEOUT, QUORUM_FETCH_TIMEOUT,
            };
            for (key, want) in [
                ("KAFKA_BROKER_SESSION_TIMEOUT_MS", BROKER_SESSION),
                ("KAFKA_BROKER_HEARTBEAT_INTERVAL_MS", BROKER_HEARTBEAT),
                ("KAFKA_CONTROLLER_QUORUM_FETCH_TIMEOUT_MS", QUORUM_FETCH_TIMEOUT),
                ("KAFKA_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS", QUORUM_ELECTION_TIMEOUT),
            ] {
                assert_eq!(env.get(key), Some(&want.as_millis().to_string()), "{node}: {key}");
            }
        }
        assert_eq!(ids.len(), 3, "node ids are distinct: {ids:?}");
        let topics = services["kafka-topics"]["command"].to_string();
        for topic in saga::messages::TOPICS {
            assert!(topics.contains(topic), "kafka-topics creates {topic}: {topics}");
        }
        assert!(topics.contains("--replication-factor 3") && topics.contains("min.insync.replicas=2"), "{topics}");
        let retention = format!("retention.ms={}", saga::messages::TOPIC_RETENTION.as_millis());
        let segment = format!("segment.ms={}", saga::messages::TOPIC_SEGMENT.as_millis());
        assert!(topics.contains(&retention) && topics.contains(&segment), "{topics}");

        // Every database allows prepared transactions.
        for db in ["order-db", "stock-db", "payment-db"] {
            let command = services[db]["command"].to_string();
            assert!(command.contains("max_prepared_transactions=200"), "{db}: {command}");
        }

        // Every service: only variables its binary accepts, every required
        // one set, the protocol's own dependencies present.
        for (name, binary) in [("order", "order-service"), ("stock", "stock-service"), ("payment", "payment-service")] {
            let service = &services[name];
            assert_eq!(service["command"][0], binary, "{name}");
            let accepts = accepts(binary);
            let mut env = image.clone();
            env.extend(env_of(service));
            let unknown: Vec<&String> = env.keys().filter(|k| !accepts.env.contains(*k)).collect();
            assert!(unknown.is_empty(), "{name}: {binary} accepts no {unknown:?}");
            let missing: Vec<&String> = accepts.required.iter().filter(|k| !env.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{name}: {binary} requires {missing:?}");
            assert_eq!(env["PROTOCOL"], protocol, "{name}");
            assert_eq!(env["PEER_TOKEN"], "compose-check-0123456789abcdef", "{name}: the caller's peer token");
            let bootstrap: BTreeSet<&str> = env["KAFKA_BOOTSTRAP"].split(',').collect();
            let brokers: BTreeSet<String> = nodes.iter().map(|n| format!("{n}:9092")).collect();
            assert_eq!(bootstrap, brokers.iter().map(String::as_str).collect(), "{name}: every broker");
            let db_host = env["DATABASE_URL"].split('@').nth(1).unwrap().split(':').next().unwrap();
            assert_eq!(db_host, format!("{name}-db"), "{name} uses its own database");
            if name != "order" {
                assert_eq!(
                    env["COORDINATOR_URLS"], "http://order:8000",
                    "{name}: 2PC participants ask the order service"
                );
            }
        }

        let gateway = file["services"]["gateway"]["ports"].to_string();
        assert!(gateway.contains("8000"), "the gateway is on port 8000: {gateway}");
        let harness = &services["harness"];
        assert_eq!(harness["entrypoint"][0], "harness");
        assert!(harness["command"].to_string().contains("\"--target\",\"http://gateway\""), "{harness}");
    }
}

/// The compose gateway's configuration passes `nginx -t` (with the service
/// names, which only Docker's DNS resolves, pointed at loopback) and routes
/// every prefix the local gateway routes, checkout retries included.
#[test]
fn compose_gateway_configuration_is_valid_nginx_with_the_local_routes() {
    use harness::stack::config::Role;
    let conf = std::fs::read_to_string(repo().join("compose").join("nginx.conf")).unwrap();
    for prefix in Role::ALL.map(Role::route_prefix).into_iter().chain([harness::stack::nginx::HEALTH_PATH]) {
        assert!(
            conf.contains(&format!("location {prefix} ")) || conf.contains(&format!("location = {prefix} ")),
            "{prefix}"
        );
    }
    assert!(
        conf.contains("location /orders/checkout/ {") && conf.contains("proxy_next_upstream error non_idempotent;")
    );
    // Only the gateway's own request id reaches the order service (server
    // level and the checkout location), never one a client chose.
    assert!(!conf.contains("$http_x_request_id") && !conf.contains("$http_x_gateway_request_id"));
    assert_eq!(conf.matches("proxy_set_header X-Gateway-Request-Id $request_id;").count(), 2);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compose-nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let local =
        Role::ALL.iter().fold(conf, |c, r| c.replace(&format!("server {}:8000", r.name()), "server 127.0.0.1:1"));
    let file = dir.join("nginx.conf");
    std::fs::write(&file, local).unwrap();
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).is_file()).unwrap();
    let out =
        Command::new(nginx).args(["-t", "-q", "-e", "stderr", "-p"]).arg(&dir).arg("-c").arg(&file).output().unwrap();
    assert!(out.status.success(), "nginx -t: {}", support::text(&out.stderr));
}
