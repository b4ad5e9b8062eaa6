//! The nginx gateway: one public port, routing `/orders/`, `/stock/` and
//! `/payment/` round-robin over the replicas of each service (as the course's
//! gateway does). Internal endpoints of the services are not routed.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

use super::config::{Role, StackConfig};
use super::links;
use super::process::{Spec, find_program};

/// Path answered by nginx itself, used to tell that the gateway is up.
pub const HEALTH_PATH: &str = "/gateway/health";

/// Backup entries per replica in each upstream: nginx tries each entry of
/// an upstream at most once per request, so this bounds a checkout's retries.
const BACKUPS: usize = 6;

/// The checkout endpoint's prefix, the one POST the gateway retries.
const CHECKOUT_PREFIX: &str = "/orders/checkout/";

/// Where the gateway reaches replica `replica` of `role`: through its link,
/// or straight without links.
fn port(config: &StackConfig, role: Role, replica: u16) -> u16 {
    links::port(config, links::Client::Gateway, links::Server::Service(role, replica))
}

/// Renders `nginx.conf` for the stack.
pub fn render_conf(config: &StackConfig) -> String {
    let dir = config.run_dir.join("nginx");
    let dir = dir.display();
    let mut upstreams = String::new();
    let mut locations = String::new();
    for role in Role::ALL {
        let name = role.name();
        let _ = writeln!(upstreams, "    upstream {name} {{");
        for replica in 0..config.replicas {
            let _ = writeln!(upstreams, "        server 127.0.0.1:{} max_fails=0;", port(config, role, replica));
        }
        // Each replica twice more as a backup: the retry of a request whose
        // connection broke (the replica was killed) goes there when no other
        // replica is left to try. With one replica, whose socket the harness
        // holds across restarts (`services::spec`), it waits in the backlog
        // until the restarted replica answers. Several times, because a retry
        // may draw another kept-alive connection to the dead process from
        // nginx's cache (all of them die at once) and fail as well: with two
        // backups, a replica killed under a 60/s open loop still left a few
        // checkouts 502 after three dead cached connections in a row.
        for _ in 0..BACKUPS {
            for replica in 0..config.replicas {
                let port = port(config, role, replica);
                let _ = writeln!(upstreams, "        server 127.0.0.1:{port} max_fails=0 backup;");
            }
        }
        // Idle kept-alive connections are closed after 2 s: when a replica
        // dies, every connection to it in nginx's cache dies too, and a
        // retry drawing them one after another runs out of tries. A load
        // keeps its own connections busy well within that.
        let _ = writeln!(upstreams, "        keepalive 64;\n        keepalive_timeout 2s;\n    }}");
        let _ = writeln!(
            locations,
            "        location {prefix} {{\n            proxy_pass http://{name};\n        }}",
            prefix = role.route_prefix()
        );
        if role == Role::Order {
            // Checkout is the one POST that may be sent again: by the API's
            // contract a repeated checkout of an order takes effect at most
            // once and answers the true outcome (it joins the saga in flight,
            // or finds the order paid). So a checkout whose replica died
            // under it is retried (on the backups) instead of answered 502;
            // the tries are bounded, so a checkout that itself kills its
            // replica is not sent on to kill every other. Every try carries
            // the same X-Gateway-Request-Id, so a retry that finds the order
            // paid by its own first try answers "paid" (services/order's
            // request_id.rs). A header set here drops the server's, hence
            // both again.
            let _ = writeln!(
                locations,
                "        location {CHECKOUT_PREFIX} {{\n            proxy_pass http://{name};\n            \
                 proxy_next_upstream error non_idempotent;\n            proxy_next_upstream_tries {tries};\n            \
                 proxy_set_header X-Gateway-Request-Id $request_id;\n            \
                 proxy_set_header Connection \"\";\n        }}",
                tries = BACKUPS + 1
            );
        }
    }
    format!(
        "daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    client_max_body_size 4k;
    keepalive_requests 100000;

{upstreams}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        # The gateway's own id of each client request, the same on every try
        # of it; it replaces any value a client sent under that name.
        proxy_set_header X-Gateway-Request-Id $request_id;
        proxy_read_timeout 120s;
        proxy_next_upstream error;
        error_page 413 = @too_large;
        location @too_large {{
            return 413 '{{\"error\":\"request body too large\"}}';
        }}
        location = {HEALTH_PATH} {{
            return 200 '{{\"status\":\"ok\"}}';
        }}
{locations}        location / {{
            return 404 '{{\"error\":\"no such endpoint\"}}';
        }}
    }}
}}
",
        port = config.gateway_port,
    )
}

/// Writes the configuration and returns how to run nginx.
pub fn spec(config: &StackConfig) -> anyhow::Result<Spec> {
    let dir = config.run_dir.join("nginx");
    std::fs::create_dir_all(dir.join("tmp"))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, render_conf(config))?;
    let program =
        find_program("nginx", &["/usr/sbin", "/usr/bin"]).context("nginx not found (run harness/scripts/setup.sh)")?;
    Ok(Spec {
        name: "gateway".to_owned(),
        program,
        args: vec!["-p".to_owned(), format!("{}/", dir.display()), "-c".to_owned(), conf.display().to_string()],
        env: Vec::new(),
        cwd: None,
        user: None,
        log: config.run_dir.join("logs").join("gateway.log"),
        // SIGQUIT lets workers finish in-flight requests.
        stop_signal: Signal::SIGQUIT,
        stop_timeout: Duration::from_secs(10),
        listener: None,
    })
}

/// Waits until the gateway answers its own health path.
pub async fn wait_ready(config: &StackConfig, timeout: Duration) -> anyhow::Result<()> {
    let url = format!("{}{HEALTH_PATH}", config.gateway_url());
    super::services::wait_http_ok(&url, timeout).await.context("gateway did not start")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use protocol_core::ProtocolKind;

    use super::*;

    #[test]
    fn routes_each_prefix_to_every_replica() {
        let config = StackConfig {
            protocol: ProtocolKind::TwoPc,
            run_dir: PathBuf::from("/run"),
            port_base: 20000,
            gateway_port: 8000,
            replicas: 2,
            brokers: 1,
            partitions: 1,
            db_pool_size: 1,
            db_protocol_pool_size: 1,
            pg_max_connections: 10,
            keep_data: false,
            infra_only: false,
            bin_dir: PathBuf::new(),
            pg_bin: PathBuf::new(),
            kafka_libs: PathBuf::new(),
            kafka_heap_mb: 256,
            kafka_broker_properties: Vec::new(),
            kafka_client_properties: saga::kafka::ClientProperties::default(),
            spans: true,
            saga_mode: saga::Mode::default(),
            twopc_order: twopc::PrepareOrder::default(),
            kafka_profile: saga::Profile::default(),
            duplicate_messages: false,
            message_delay: std::time::Duration::ZERO,
            links: None,
            toxiproxy: PathBuf::new(),
            crashpoints: true,
            peer_token: twopc::client::PeerToken::random(),
        };
        let conf = render_conf(&config);
        assert!(conf.contains("listen 127.0.0.1:8000"));
        for role in Role::ALL {
            assert!(conf.contains(&format!(
                "location {} {{\n            proxy_pass http://{};",
                role.route_prefix(),
                role.name()
            )));
            for r in 0..2 {
                let port = config.service_port(role, r);
                assert!(conf.contains(&format!("server 127.0.0.1:{port} max_fails=0;")));
                assert_eq!(conf.matches(&format!("server 127.0.0.1:{port} max_fails=0 backup;")).count(), BACKUPS);
            }
        }
        assert!(!conf.contains("/internal"));
        // Only checkout, idempotent by contract, is retried as a POST.
        assert_eq!(conf.matches("non_idempotent").count(), 1);
        let checkout = conf.find(&format!("location {CHECKOUT_PREFIX} ")).expect("a checkout location");
        assert!(conf[checkout..].find("non_idempotent") < conf[checkout..].find('}'));
        // Only the gateway's own id reaches the order service, on every
        // location (the server's and the checkout's own): never a client's.
        assert!(!conf.contains("$http_x_request_id"));
        assert!(!conf.contains("$http_x_gateway_request_id"));
        assert_eq!(conf.matches("proxy_set_header X-Gateway-Request-Id $request_id;").count(), 2);
        assert!(
            conf[checkout..].find("proxy_set_header X-Gateway-Request-Id $request_id;") < conf[checkout..].find('}')
        );

        // With links on, the gateway reaches each replica through its link.
        let linked = StackConfig { links: Some(links::Network::default()), ..config.clone() };
        let conf = render_conf(&linked);
        let gateway_links: Vec<_> =
            links::links(&linked).into_iter().filter(|l| l.name.starts_with("gateway->")).collect();
        assert_eq!(gateway_links.len(), 6);
        for link in gateway_links {
            assert!(conf.contains(&format!("server 127.0.0.1:{} max_fails=0;", link.listen)), "{}", link.name);
        }
        assert!(!conf.contains(&format!("127.0.0.1:{} ", config.service_port(Role::Order, 0))));
    }
}
