//! The service replicas: command lines, and readiness through `GET /health`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use protocol_core::ProtocolKind;

use super::config::{Role, StackConfig};
use super::links::{self, Client, Server};
use super::process::Spec;
use crate::wait::{self, Probe};

/// The command line of replica `replica` (0-based) of `role`: every setting
/// it runs with. The raw ceiling reads the protocol's settings from it too
/// ([`crate::run::ceiling`]), so the yardstick runs as the services do.
pub fn args(config: &StackConfig, role: Role, replica: u16) -> Vec<String> {
    let name = format!("{}#{replica}", role.name());
    let me = Client::Service(role);
    let database = links::port(config, me, Server::Postgres(role));
    let mut args = vec![
        format!("--listen=127.0.0.1:{}", config.service_port(role, replica)),
        format!("--database-url=postgres://postgres@127.0.0.1:{database}/{}", role.database()),
        format!("--db-pool-size={}", config.db_pool_size),
        format!("--db-protocol-pool-size={}", config.db_protocol_pool_size),
        format!("--redis-url={}", config.redis_url()),
        format!("--instance={name}"),
        "--log-json".to_owned(),
        format!("--protocol={}", config.protocol),
    ];
    // Where each checkout's time goes, for the report's breakdown. Every
    // setting is passed explicitly, so that nothing inherited from the
    // harness's environment (a service also reads `SPANS`) decides it.
    args.push(format!("--spans={}", config.spans));
    // The harness injects crash faults through the replicas' endpoints.
    if config.crashpoints {
        args.push("--enable-crashpoints".to_owned());
    }
    // Each peer through this service's link to it (the peer itself without links).
    let urls = |r: Role| {
        let url = |i| format!("http://127.0.0.1:{}", links::port(config, me, Server::Service(r, i)));
        (0..config.replicas).map(url).collect::<Vec<_>>().join(",")
    };
    if role == Role::Order {
        args.push(format!("--stock-urls={}", urls(Role::Stock)));
        args.push(format!("--payment-urls={}", urls(Role::Payment)));
        if config.protocol == ProtocolKind::TwoPc {
            args.push(format!("--prepare-order={}", config.twopc_order));
        }
    } else if config.protocol == ProtocolKind::TwoPc {
        args.push(format!("--coordinator-urls={}", urls(Role::Order)));
    }
    if config.protocol == ProtocolKind::Saga {
        let broker = |i| format!("127.0.0.1:{}", links::port(config, me, Server::Kafka(i)));
        args.push(format!("--kafka-bootstrap={}", (0..config.brokers).map(broker).collect::<Vec<_>>().join(",")));
        args.push(format!("--kafka-profile={}", config.kafka_profile));
        args.push(format!("--kafka-client-properties={}", config.kafka_client_properties));
        if role == Role::Order {
            args.push(format!("--saga-mode={}", config.saga_mode));
        }
        // Message faults are settings like any other: flags, not variables.
        if config.duplicate_messages {
            args.push("--duplicate-messages".to_owned());
        }
        if !config.message_delay.is_zero() {
            args.push(format!("--message-delay-ms={}", config.message_delay.as_millis()));
        }
    }
    args
}

/// How to run replica `replica` (0-based) of `role`.
pub fn spec(config: &StackConfig, role: Role, replica: u16) -> anyhow::Result<Spec> {
    let program = config.bin_dir.join(role.binary());
    if !program.is_file() {
        bail!("{} not found (build it: cargo build --release --workspace)", program.display());
    }
    let name = format!("{}#{replica}", role.name());
    let args = args(config, role, replica);
    let env = vec![
        ("RUST_LOG".to_owned(), std::env::var("SAGA2PC_SERVICE_LOG").unwrap_or_else(|_| "info".to_owned())),
        // Errors are logged as one line without a backtrace; capturing one
        // for every expected failure (RUST_BACKTRACE=1 in the environment
        // turns that on for anyhow) costs CPU under load. Panics keep theirs.
        ("RUST_LIB_BACKTRACE".to_owned(), "0".to_owned()),
        // The 2PC peers' shared secret: in the environment, not the command
        // line, which any local user can read.
        ("PEER_TOKEN".to_owned(), config.peer_token.expose().to_owned()),
    ];
    Ok(Spec {
        name: name.clone(),
        program,
        args,
        env,
        cwd: None,
        user: None,
        log: config.run_dir.join("logs").join(format!("{}-{replica}.log", role.name())),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(15),
        listener: if config.replicas == 1 { Some(Arc::new(listen(config.service_port(role, replica))?)) } else { None },
    })
}

/// Connections the kernel queues on a replica's socket while nobody accepts.
const BACKLOG: u32 = 4096;

/// The replica's listening socket, bound by the harness and inherited by
/// every incarnation of the replica: while a killed replica restarts, the
/// gateway's connections wait in its backlog (and are answered once the new
/// process serves) instead of being refused with a 502.
///
/// Only for a service with one replica: with more, a refused connection sends
/// the gateway to another replica at once, which beats waiting for the
/// restart in a backlog.
fn listen(port: u16) -> anyhow::Result<std::net::TcpListener> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
        socket.listen(BACKLOG)?.into_std()
    };
    bind().with_context(|| format!("binding 127.0.0.1:{port}"))
}

/// Polls `url` until it answers 2xx.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    wait::until(url, timeout, || async {
        Ok(match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => Probe::Ready(()),
            Ok(resp) => Probe::NotYet(format!("status {}", resp.status())),
            Err(err) => Probe::NotYet(err.to_string()),
        })
    })
    .await
}

/// [`wait_http_ok`] for an owned URL, so many can be awaited together.
pub async fn wait_http_ok_owned(url: String, timeout: Duration) -> anyhow::Result<()> {
    wait_http_ok(&url, timeout).await
}
