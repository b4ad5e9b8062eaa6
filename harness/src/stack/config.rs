//! What `harness up` starts and where: settings and the port layout.

use std::path::PathBuf;

use protocol_core::ProtocolKind;
use serde::Serialize;

/// The three services; each owns one PostgreSQL cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The order service (coordinator / orchestrator).
    Order,
    /// The stock service.
    Stock,
    /// The payment service.
    Payment,
}

impl Role {
    /// All roles, in start-up order (participants before the coordinator).
    pub const ALL: [Role; 3] = [Role::Stock, Role::Payment, Role::Order];

    /// Short name (`order`, `stock`, `payment`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Order => "order",
            Role::Stock => "stock",
            Role::Payment => "payment",
        }
    }

    /// The service's executable name.
    pub fn binary(self) -> &'static str {
        match self {
            Role::Order => "order-service",
            Role::Stock => "stock-service",
            Role::Payment => "payment-service",
        }
    }

    /// Name of the service's database inside its cluster.
    pub fn database(self) -> &'static str {
        match self {
            Role::Order => "orders",
            Role::Stock => "stock",
            Role::Payment => "payment",
        }
    }

    /// The public path prefix the gateway routes to this service.
    pub fn route_prefix(self) -> &'static str {
        match self {
            Role::Order => "/orders/",
            Role::Stock => "/stock/",
            Role::Payment => "/payment/",
        }
    }

    fn index(self) -> u16 {
        match self {
            Role::Order => 1,
            Role::Stock => 2,
            Role::Payment => 3,
        }
    }
}

/// The most Kafka nodes a stack runs: their ports sit between the
/// databases' and Redis's.
pub const MAX_BROKERS: u16 = 5;

/// Everything `harness up` needs to know.
#[derive(Debug, Clone, Serialize)]
pub struct StackConfig {
    /// Protocol the order service runs.
    pub protocol: ProtocolKind,
    /// Directory holding every component's data and logs, and `stack.json`.
    pub run_dir: PathBuf,
    /// First port of the block the stack uses (see the `*_port` methods).
    pub port_base: u16,
    /// Port of the nginx gateway.
    pub gateway_port: u16,
    /// Replicas of each service.
    pub replicas: u16,
    /// Nodes of the Kafka cluster (each a broker and a KRaft controller).
    pub brokers: u16,
    /// Partitions of each Kafka topic.
    pub partitions: i32,
    /// Database connections per service replica.
    pub db_pool_size: u32,
    /// Database connections per service replica kept for the protocol's own
    /// bookkeeping (2PC phase two, the decision log, recovery).
    pub db_protocol_pool_size: u32,
    /// `max_connections` (and `max_prepared_transactions`) of each PostgreSQL cluster.
    pub pg_max_connections: u32,
    /// Keep the databases of a previous run instead of starting empty.
    pub keep_data: bool,
    /// Start only PostgreSQL, Kafka and Redis (no services, no gateway).
    pub infra_only: bool,
    /// Directory holding the service binaries.
    pub bin_dir: PathBuf,
    /// Directory holding the PostgreSQL server binaries.
    pub pg_bin: PathBuf,
    /// Directory holding the Kafka broker jars.
    pub kafka_libs: PathBuf,
    /// Java heap of the Kafka broker, in MiB.
    pub kafka_heap_mb: u32,
    /// Extra broker settings, appended to `server.properties` (a later line
    /// wins), one `key=value` each.
    pub kafka_broker_properties: Vec<String>,
    /// SAGA: extra client settings of the services' producers and consumers.
    pub kafka_client_properties: saga::kafka::ClientProperties,
    /// Whether the services record where each checkout's time goes (the
    /// report's breakdown; off to measure what recording costs).
    pub spans: bool,
    /// SAGA: sequential or parallel steps.
    pub saga_mode: saga::Mode,
    /// 2PC: the order of the prepares.
    pub twopc_order: twopc::PrepareOrder,
    /// SAGA: the Kafka client profile of every service.
    pub kafka_profile: saga::Profile,
    /// SAGA fault injection: every message is published twice.
    pub duplicate_messages: bool,
    /// SAGA fault injection: every publish waits this long first.
    pub message_delay: std::time::Duration,
    /// Links through Toxiproxy, with their start-up delays; `None`: every
    /// component connects straight to the next ([`crate::stack::links`]).
    pub links: Option<crate::stack::links::Network>,
    /// The Toxiproxy server executable.
    pub toxiproxy: PathBuf,
    /// Whether the services serve their crash-point endpoints
    /// (`--enable-crashpoints`): on for every stack the harness starts, since
    /// it injects crash faults through them (a deployment, `compose/`, leaves
    /// them off).
    pub crashpoints: bool,
    /// 2PC: the secret the stack's services present on each other's protocol
    /// endpoints, made anew for each stack and handed to the services in
    /// their environment (never on a command line, where `ps` shows it).
    #[serde(skip)]
    pub peer_token: twopc::client::PeerToken,
}

impl StackConfig {
    /// Port of the PostgreSQL cluster of `role`.
    pub fn pg_port(&self, role: Role) -> u16 {
        self.port_base + role.index()
    }

    /// Port of Kafka node `index`'s client listener (at most
    /// [`MAX_BROKERS`] nodes fit between the databases and Redis).
    pub fn kafka_port(&self, index: u16) -> u16 {
        self.port_base + 10 + 2 * index
    }

    /// Port of Kafka node `index`'s KRaft controller listener.
    pub fn kafka_controller_port(&self, index: u16) -> u16 {
        self.port_base + 11 + 2 * index
    }

    /// Port of Kafka node `index`'s listener for the clients of `role`,
    /// behind that role's links (only with links on).
    pub fn kafka_listener_port(&self, index: u16, role: Role) -> u16 {
        self.port_base + 30 + 3 * index + role.index() - 1
    }

    /// Port of Redis.
    pub fn redis_port(&self) -> u16 {
        self.port_base + 20
    }

    /// Port of Toxiproxy's API (only with links on).
    pub fn toxiproxy_port(&self) -> u16 {
        self.port_base + 21
    }

    /// Base URL of Toxiproxy's API.
    pub fn toxiproxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.toxiproxy_port())
    }

    /// Port of the proxy of link number `index` ([`crate::stack::links::pairs`]).
    pub fn link_port(&self, index: usize) -> u16 {
        debug_assert!(index < crate::stack::links::MAX_LINKS);
        self.port_base + 45 + index as u16
    }

    /// Port of replica `replica` (0-based) of `role`.
    pub fn service_port(&self, role: Role, replica: u16) -> u16 {
        self.port_base + 100 * role.index() + replica
    }

    /// Admin URL of the cluster of `role` (the `postgres` database).
    pub fn pg_admin_url(&self, role: Role) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.pg_port(role))
    }

    /// URL of the service database of `role`.
    pub fn database_url(&self, role: Role) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.pg_port(role), role.database())
    }

    /// `host:port` of Kafka node `index`.
    pub fn kafka_address(&self, index: u16) -> String {
        format!("127.0.0.1:{}", self.kafka_port(index))
    }

    /// Every node's `host:port`, comma-separated, as clients' `bootstrap.servers`.
    pub fn kafka_bootstrap(&self) -> String {
        (0..self.brokers).map(|i| self.kafka_address(i)).collect::<Vec<_>>().join(",")
    }

    /// URL of Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port())
    }

    /// Base URL of replica `replica` of `role`.
    pub fn service_url(&self, role: Role, replica: u16) -> String {
        format!("http://127.0.0.1:{}", self.service_port(role, replica))
    }

    /// Base URL of the gateway.
    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// Every port the stack listens on, with the component that owns it.
    pub fn ports(&self) -> Vec<(String, u16)> {
        let mut ports = Vec::new();
        for role in Role::ALL {
            ports.push((format!("postgres-{}", role.name()), self.pg_port(role)));
        }
        for i in 0..self.brokers {
            ports.push((crate::stack::kafka::member_name(i), self.kafka_port(i)));
            ports.push((format!("{} controller", crate::stack::kafka::member_name(i)), self.kafka_controller_port(i)));
        }
        ports.push(("redis".to_owned(), self.redis_port()));
        if self.links.is_some() {
            ports.push((crate::stack::links::COMPONENT.to_owned(), self.toxiproxy_port()));
            for i in 0..self.brokers {
                for role in Role::ALL {
                    let name = format!("{} {} listener", crate::stack::kafka::member_name(i), role.name());
                    ports.push((name, self.kafka_listener_port(i, role)));
                }
            }
            for link in crate::stack::links::links(self) {
                ports.push((link.name, link.listen));
            }
        }
        if !self.infra_only {
            for role in Role::ALL {
                for r in 0..self.replicas {
                    ports.push((format!("{}#{r}", role.name()), self.service_port(role, r)));
                }
            }
            ports.push(("gateway".to_owned(), self.gateway_port));
        }
        ports
    }

    /// Path of the state file that `status` and `down` read.
    pub fn state_file(&self) -> PathBuf {
        self.run_dir.join("stack.json")
    }
}

impl StackConfig {
    /// A stack's settings for unit tests: 2PC, three replicas, three Kafka nodes.
    #[cfg(test)]
    pub(crate) fn example() -> StackConfig {
        StackConfig {
            protocol: ProtocolKind::TwoPc,
            run_dir: PathBuf::from("/tmp/x"),
            port_base: 18000,
            gateway_port: 8000,
            replicas: 3,
            brokers: 3,
            partitions: 4,
            db_pool_size: 8,
            db_protocol_pool_size: 4,
            pg_max_connections: 100,
            keep_data: false,
            infra_only: false,
            bin_dir: PathBuf::from("/bin"),
            pg_bin: PathBuf::from("/bin"),
            kafka_libs: PathBuf::from("/libs"),
            kafka_heap_mb: 512,
            kafka_broker_properties: Vec::new(),
            kafka_client_properties: saga::kafka::ClientProperties::default(),
            spans: true,
            saga_mode: saga::Mode::default(),
            twopc_order: twopc::PrepareOrder::default(),
            kafka_profile: saga::Profile::default(),
            duplicate_messages: false,
            message_delay: std::time::Duration::ZERO,
            links: None,
            toxiproxy: PathBuf::from("/bin/toxiproxy-server"),
            crashpoints: true,
            peer_token: twopc::client::PeerToken::random(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StackConfig {
        StackConfig::example()
    }

    #[test]
    fn ports_do_not_collide() {
        let c = config();
        let mut ports: Vec<u16> = c.ports().into_iter().map(|(_, p)| p).collect();
        assert_eq!(ports.len(), 3 + 2 * 3 + 1 + 3 * 3 + 1);
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n);
        let most = StackConfig { brokers: MAX_BROKERS, ..c };
        assert!(most.kafka_controller_port(MAX_BROKERS - 1) < most.redis_port());
        assert_eq!(most.kafka_bootstrap().split(',').count(), usize::from(MAX_BROKERS));
    }

    #[test]
    fn link_ports_do_not_collide_on_the_largest_stack() {
        for protocol in [ProtocolKind::TwoPc, ProtocolKind::Saga] {
            let c = StackConfig {
                protocol,
                brokers: 3,
                replicas: 3,
                links: Some(crate::stack::links::Network::default()),
                ..config()
            };
            let links = crate::stack::links::links(&c);
            assert!(links.len() <= crate::stack::links::MAX_LINKS, "{} links", links.len());
            let mut ports: Vec<u16> = c.ports().into_iter().map(|(_, p)| p).collect();
            let n = ports.len();
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), n, "{protocol}");
            let most = StackConfig { brokers: MAX_BROKERS, ..c.clone() };
            assert!(most.kafka_listener_port(MAX_BROKERS - 1, Role::Payment) < most.link_port(0));
            // Tests put the gateway at base + 80 (harness/tests/support/ports.rs).
            assert!(c.link_port(crate::stack::links::MAX_LINKS - 1) < c.port_base + 80);
            // Every client reaches every server it talks to through its link.
            for link in &links {
                assert_ne!(link.listen, link.upstream, "{}", link.name);
            }
        }
    }
}
