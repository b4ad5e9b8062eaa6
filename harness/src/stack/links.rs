//! The network between the stack's components: with links on (`harness up
//! --links`, `--link-latency`), every connection one component opens to
//! another runs through a Toxiproxy server, so a run can give any link
//! distance, jitter, a bandwidth limit, a cut or resets, at start-up and
//! while the load runs.
//!
//! On loopback a round trip costs microseconds; between hosts it costs about
//! 0.1-0.5 ms inside a zone and 1-2 ms across zones. The protocols differ in
//! how many round trips they make while holding locks (2PC) or while an order
//! waits (the saga's Kafka hops), so a verdict at zero distance may not hold
//! at one millisecond. A link is one client's connections to one server
//! ([`Client`], [`Server`]); each has a proxy port of its own, so links can
//! be set apart (the order service's database farther than the stock
//! service's, say). The harness's own connections (the verifier, probes,
//! topic creation) go direct: it observes, it is not part of the system.
//!
//! Kafka needs one listener per client role: a client learns the brokers'
//! addresses from the broker it bootstraps from, so each role's listener
//! advertises that role's proxy ports (`kafka::server_properties`).
//! Replication between brokers stays direct.
//!
//! Packet loss has no toxic of its own: Toxiproxy works on TCP streams, where
//! a lost segment is a retransmission, that is, a delay of one
//! retransmission timeout (200 ms or more) on that stream. A latency spike
//! (`--fault latency:...`) or jitter is what loss looks like from above TCP;
//! a reset is what a peer or middlebox that drops the connection looks like.
//!
//! Toxiproxy's latency is whole milliseconds per direction; a link's delay is
//! a round trip, split between the two directions (the odd millisecond on
//! the way back), so a request and its answer pay it once.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use protocol_core::ProtocolKind;
use serde::{Deserialize, Serialize};

use super::config::{Role, StackConfig};
use super::process::Spec;

/// The Toxiproxy release `harness/scripts/setup.sh` builds.
pub const TOXIPROXY_VERSION: &str = "v2.5.0";

/// The component name of the proxy server in `stack.json`.
pub const COMPONENT: &str = "toxiproxy";

/// Where `setup.sh` puts the Toxiproxy server: `$SAGA2PC_CACHE` or
/// `~/.cache/saga2pc`, then `toxiproxy/<version>/toxiproxy-server`.
pub fn default_binary() -> PathBuf {
    super::kafka::cache_dir().join("toxiproxy").join(TOXIPROXY_VERSION).join("toxiproxy-server")
}

/// Who opens a link's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The nginx gateway.
    Gateway,
    /// Every replica of a service.
    Service(Role),
}

/// What a link's connections reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// One replica of a service.
    Service(Role, u16),
    /// A service's PostgreSQL cluster.
    Postgres(Role),
    /// One Kafka node.
    Kafka(u16),
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Gateway => "gateway",
            Client::Service(role) => role.name(),
        }
    }
}

impl Server {
    /// The name `harness status` gives the component.
    fn name(self) -> String {
        match self {
            Server::Service(role, replica) => format!("{}#{replica}", role.name()),
            Server::Postgres(role) => format!("postgres-{}", role.name()),
            Server::Kafka(index) => super::kafka::member_name(index),
        }
    }
}

/// A link's name: `<client>-><server>` (`gateway->order#0`,
/// `stock->postgres-stock`, `payment->kafka#0`).
pub fn name(client: Client, server: Server) -> String {
    format!("{}->{}", client.name(), server.name())
}

/// Every link of the stack, in a fixed order (a link's place gives its port).
pub fn pairs(config: &StackConfig) -> Vec<(Client, Server)> {
    let mut pairs = Vec::new();
    if !config.infra_only {
        for role in Role::ALL {
            for replica in 0..config.replicas {
                pairs.push((Client::Gateway, Server::Service(role, replica)));
            }
        }
        // The order service calls the participants in either protocol (the
        // 2PC prepares and decisions; item lookups for addItem, user lookups
        // for create).
        for role in [Role::Stock, Role::Payment] {
            for replica in 0..config.replicas {
                pairs.push((Client::Service(Role::Order), Server::Service(role, replica)));
            }
        }
        // A 2PC participant asks the coordinator about its in-doubt branches.
        if config.protocol == ProtocolKind::TwoPc {
            for role in [Role::Stock, Role::Payment] {
                for replica in 0..config.replicas {
                    pairs.push((Client::Service(role), Server::Service(Role::Order, replica)));
                }
            }
        }
    }
    for role in Role::ALL {
        pairs.push((Client::Service(role), Server::Postgres(role)));
    }
    if config.protocol == ProtocolKind::Saga {
        for role in Role::ALL {
            for node in 0..config.brokers {
                pairs.push((Client::Service(role), Server::Kafka(node)));
            }
        }
    }
    pairs
}

/// The most links a stack may have: their ports lie between the Kafka
/// listeners' and the services' (`StackConfig::link_port`), below `base + 80`
/// where the tests put the gateway. Three replicas of each service with
/// three Kafka nodes need 27.
pub const MAX_LINKS: usize = 35;

/// One proxied link as Toxiproxy is told about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    /// `<client>-><server>`.
    pub name: String,
    /// Where the client connects.
    pub listen: u16,
    /// Where the proxy connects on the client's behalf.
    pub upstream: u16,
}

/// Every link with its ports.
pub fn links(config: &StackConfig) -> Vec<Link> {
    pairs(config)
        .into_iter()
        .enumerate()
        .map(|(index, (client, server))| Link {
            name: name(client, server),
            listen: config.link_port(index),
            upstream: upstream_port(config, client, server),
        })
        .collect()
}

/// Where `server` listens for `client` (behind the proxy, or without one).
fn upstream_port(config: &StackConfig, client: Client, server: Server) -> u16 {
    match (server, client) {
        (Server::Service(role, replica), _) => config.service_port(role, replica),
        (Server::Postgres(role), _) => config.pg_port(role),
        (Server::Kafka(node), Client::Service(role)) if config.links.is_some() => {
            config.kafka_listener_port(node, role)
        }
        (Server::Kafka(node), _) => config.kafka_port(node),
    }
}

/// The port `client` connects to for `server`: its link's proxy when links
/// are on, the server itself otherwise.
pub fn port(config: &StackConfig, client: Client, server: Server) -> u16 {
    if config.links.is_some() {
        let index = pairs(config).iter().position(|p| *p == (client, server));
        if let Some(index) = index {
            return config.link_port(index);
        }
    }
    upstream_port(config, client, server)
}

/// A link's added round trip: a base and a spread, in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Delay {
    /// Added to every round trip.
    pub rtt_ms: u32,
    /// Each chunk of data on the way back waits up to this much more or less.
    pub jitter_ms: u32,
}

impl Delay {
    /// No added delay.
    pub const NONE: Delay = Delay { rtt_ms: 0, jitter_ms: 0 };

    /// The round trip split into (client to server, server to client).
    fn halves(self) -> (u32, u32) {
        let up = self.rtt_ms / 2;
        (up, self.rtt_ms - up)
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.rtt_ms)?;
        if self.jitter_ms > 0 {
            write!(f, "±{}ms", self.jitter_ms)?;
        }
        Ok(())
    }
}

/// Parses a whole number of milliseconds: `2`, `2ms`, `0.002s`.
fn whole_ms(raw: &str) -> Result<u32, String> {
    let raw = raw.trim();
    let ms = if let Some(s) = raw.strip_suffix("ms") {
        s.trim().parse::<f64>()
    } else if let Some(s) = raw.strip_suffix('s') {
        s.trim().parse::<f64>().map(|s| s * 1000.0)
    } else {
        raw.parse::<f64>()
    }
    .map_err(|_| format!("{raw:?} is not a duration (e.g. 2ms)"))?;
    if !(0.0..=60_000.0).contains(&ms) {
        return Err(format!("{raw:?} is outside 0 to 60 s"));
    }
    if (ms - ms.round()).abs() > 1e-9 {
        return Err(format!("{raw:?}: Toxiproxy delays in whole milliseconds"));
    }
    Ok(ms.round() as u32)
}

impl FromStr for Delay {
    type Err = String;

    /// `<rtt>[±<jitter>]` (`+-` for `±`): `2ms`, `5ms±1ms`, `0`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (rtt, jitter) = match raw.split_once('±').or_else(|| raw.split_once("+-")) {
            Some((rtt, jitter)) => (rtt, Some(jitter)),
            None => (raw, None),
        };
        let delay = Delay { rtt_ms: whole_ms(rtt)?, jitter_ms: jitter.map(whole_ms).transpose()?.unwrap_or(0) };
        if delay.jitter_ms > delay.halves().1 {
            return Err(format!(
                "{raw:?}: the jitter is applied on the way back, so it may be at most that half of the round trip ({} ms)",
                delay.halves().1
            ));
        }
        Ok(delay)
    }
}

/// The network a stack runs with: its links' delay at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Network {
    /// Every link's delay, unless overridden.
    pub delay: Delay,
    /// Links given a delay of their own: (a selector, the delay). A selector
    /// names a link, or every link it is a prefix of up to a `#replica`
    /// (`gateway->order` for each order replica).
    pub overrides: Vec<(String, Delay)>,
    /// Every link's bandwidth each way in KB/s (`None`: unlimited), unless
    /// overridden.
    pub bandwidth_kbps: Option<u32>,
    /// Links given a bandwidth of their own: (a selector, KB/s).
    pub bandwidth_overrides: Vec<(String, u32)>,
}

impl Network {
    /// Each link's delay at start-up.
    pub fn delays<'a>(&'a self, links: &'a [Link]) -> impl Iterator<Item = (&'a Link, Delay)> + 'a {
        links.iter().map(|link| (link, chosen(&self.overrides, &link.name).unwrap_or(self.delay)))
    }

    /// Each link's bandwidth limit at start-up.
    pub fn bandwidths<'a>(&'a self, links: &'a [Link]) -> impl Iterator<Item = (&'a Link, Option<u32>)> + 'a {
        links.iter().map(|link| (link, chosen(&self.bandwidth_overrides, &link.name).or(self.bandwidth_kbps)))
    }

    /// Every selector the settings name.
    pub fn selectors(&self) -> impl Iterator<Item = &str> {
        let delays = self.overrides.iter().map(|(s, _)| s.as_str());
        delays.chain(self.bandwidth_overrides.iter().map(|(s, _)| s.as_str()))
    }
}

/// The setting the last override that selects `name` gives it.
fn chosen<T: Copy>(overrides: &[(String, T)], name: &str) -> Option<T> {
    overrides.iter().rev().find(|(s, _)| selects(s, name)).map(|(_, v)| *v)
}

impl Network {
    /// One line for a run's summary: `links        2ms on every link; order->postgres-order 5ms`.
    pub fn describe(&self) -> String {
        let mut out = format!("links        {} added round trip on every link (Toxiproxy)", self.delay);
        for (selector, delay) in &self.overrides {
            out.push_str(&format!("; {selector} {delay}"));
        }
        if let Some(rate) = self.bandwidth_kbps {
            out.push_str(&format!("; at most {rate} KB/s each way on every link"));
        }
        for (selector, rate) in &self.bandwidth_overrides {
            out.push_str(&format!("; {selector} at most {rate} KB/s"));
        }
        out
    }
}

/// Whether `selector` picks the link `name`: the same, or `name` with a
/// `#replica` after it.
pub fn selects(selector: &str, name: &str) -> bool {
    name == selector || name.strip_prefix(selector).is_some_and(|rest| rest.starts_with('#'))
}

/// Fails, listing the links, when `selector` picks none of them.
pub fn check_selector(selector: &str, links: &[Link]) -> anyhow::Result<()> {
    if links.iter().any(|l| selects(selector, &l.name)) {
        return Ok(());
    }
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    bail!("no link {selector:?}; the stack's links are {}", names.join(", "))
}

/// Splits `<link>=<value>`, checking that `<link>` names one.
pub fn split_setting<'a>(raw: &'a str, what: &str) -> Result<(String, &'a str), String> {
    let (selector, value) = raw.split_once('=').ok_or_else(|| format!("{raw:?}: expected <link>={what}"))?;
    if !selector.contains("->") {
        return Err(format!("{selector:?} is not a link (<client>-><server>, as `harness status` lists them)"));
    }
    Ok((selector.trim().to_owned(), value))
}

/// Parses `<link>=<delay>` (a `--link` override).
pub fn parse_override(raw: &str) -> Result<(String, Delay), String> {
    let (selector, delay) = split_setting(raw, "<delay>")?;
    Ok((selector, delay.parse()?))
}

/// A `--link-bandwidth`: `<rate>` for every link, or `<link>=<rate>` for the
/// links a selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BandwidthArg {
    /// Every link.
    All(u32),
    /// The links of one selector.
    Link(String, u32),
}

/// Parses a [`BandwidthArg`].
pub fn parse_bandwidth_arg(raw: &str) -> Result<BandwidthArg, String> {
    if !raw.contains('=') {
        return parse_bandwidth(raw).map(BandwidthArg::All);
    }
    let (selector, rate) = split_setting(raw, "<rate>")?;
    Ok(BandwidthArg::Link(selector, parse_bandwidth(rate)?))
}

/// Parses a bandwidth limit in KB/s (Toxiproxy's unit, 1000 bytes):
/// `100`, `100KB/s`, `2MB/s`.
pub fn parse_bandwidth(raw: &str) -> Result<u32, String> {
    let raw = raw.trim();
    let (number, scale) = if let Some(n) = raw.strip_suffix("MB/s") {
        (n, 1000.0)
    } else if let Some(n) = raw.strip_suffix("KB/s") {
        (n, 1.0)
    } else {
        (raw, 1.0)
    };
    let rate = number.trim().parse::<f64>().map_err(|_| format!("{raw:?} is not a bandwidth (e.g. 100KB/s)"))? * scale;
    if !(1.0..=10_000_000.0).contains(&rate) || (rate - rate.round()).abs() > 1e-9 {
        return Err(format!("{raw:?}: a bandwidth is a whole number of KB/s from 1 KB/s to 10 GB/s"));
    }
    Ok(rate.round() as u32)
}

/// How to run the proxy server: its API on the stack's port, its proxies
/// from a file, so a restarted server listens on every link again (with no
/// delay, bandwidth limit, cut or reset: toxics live only in its memory).
pub fn spec(config: &StackConfig) -> anyhow::Result<Spec> {
    let program = config.toxiproxy.clone();
    if !program.is_file() {
        bail!("{} not found (run harness/scripts/setup.sh)", program.display());
    }
    let proxies: Vec<serde_json::Value> = links(config)
        .iter()
        .map(|l| {
            serde_json::json!({
                "name": l.name,
                "listen": format!("127.0.0.1:{}", l.listen),
                "upstream": format!("127.0.0.1:{}", l.upstream),
                "enabled": true,
            })
        })
        .collect();
    let file = config.run_dir.join("toxiproxy.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&proxies)?)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(Spec {
        name: COMPONENT.to_owned(),
        program,
        args: vec![
            "-host".to_owned(),
            "127.0.0.1".to_owned(),
            "-port".to_owned(),
            config.toxiproxy_port().to_string(),
            "-config".to_owned(),
            file.display().to_string(),
            // The same jitter draws in every run.
            "-seed".to_owned(),
            "42".to_owned(),
        ],
        // Toxiproxy logs every connection at info level: thousands a run.
        env: vec![("LOG_LEVEL".to_owned(), "warn".to_owned())],
        cwd: None,
        user: None,
        log: config.run_dir.join("logs").join("toxiproxy.log"),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(5),
        listener: None,
    })
}

/// Toxiproxy's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// The name of the toxic that delays one direction.
fn delay_toxic(stream: &str) -> String {
    format!("delay-{stream}")
}

/// The name of the toxic that holds one direction's data during a cut.
fn cut_toxic(stream: &str) -> String {
    format!("cut-{stream}")
}

/// The name of the toxic that resets one direction's connections.
fn reset_toxic(stream: &str) -> String {
    format!("reset-{stream}")
}

/// The name of the toxic that limits one direction's bandwidth.
fn bandwidth_toxic(stream: &str) -> String {
    format!("bandwidth-{stream}")
}

/// A link as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkState {
    /// `<client>-><server>`.
    pub name: String,
    /// `127.0.0.1:<port>` the client connects to.
    pub listen: String,
    /// `127.0.0.1:<port>` the proxy connects to.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// Its added round trip.
    pub delay: Delay,
    /// Whether it holds every byte (a cut).
    pub cut: bool,
    /// Whether it drops every connection that carries a byte.
    pub reset: bool,
    /// Its bandwidth each way in KB/s, if limited.
    pub bandwidth_kbps: Option<u32>,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:<port>`).
    pub fn new(base: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned() })
    }

    /// Whether the server answers.
    pub async fn answers(&self) -> bool {
        let resp = self.http.get(format!("{}/version", self.base)).send().await;
        resp.is_ok_and(|r| r.status().is_success())
    }

    /// Sets `link`'s delay, in place (a toxic updated, not removed and added,
    /// so no data passes undelayed meanwhile).
    pub async fn set_delay(&self, link: &str, delay: Delay) -> anyhow::Result<()> {
        let (up, down) = delay.halves();
        for (stream, latency, jitter) in [("upstream", up, 0), ("downstream", down, delay.jitter_ms)] {
            let attributes = serde_json::json!({ "latency": latency, "jitter": jitter });
            self.put_toxic(link, &delay_toxic(stream), stream, "latency", attributes, latency == 0 && jitter == 0)
                .await?;
        }
        Ok(())
    }

    /// Cuts `link` (every byte either way is held, as by a network partition
    /// that TCP rides out) or heals it (what was held goes through).
    pub async fn set_cut(&self, link: &str, cut: bool) -> anyhow::Result<()> {
        // Held for an hour: longer than any run, and released at once when
        // the toxic goes (Toxiproxy passes a held chunk on when interrupted).
        let attributes = serde_json::json!({ "latency": 3_600_000, "jitter": 0 });
        for stream in ["upstream", "downstream"] {
            self.put_toxic(link, &cut_toxic(stream), stream, "latency", attributes.clone(), !cut).await?;
        }
        Ok(())
    }

    /// Drops (or, with `false`, stops dropping) every connection on `link` as
    /// soon as it carries a byte either way, as a crashed host, a restarted
    /// middlebox or a NAT that forgot the flow does: a connection opened
    /// while it lasts is reset (TCP RST), one already open is closed (FIN:
    /// Toxiproxy sets the socket to reset only when a connection opens).
    /// An open connection that carries no byte meanwhile is left alone.
    pub async fn set_reset(&self, link: &str, reset: bool) -> anyhow::Result<()> {
        let attributes = serde_json::json!({ "timeout": 0 });
        for stream in ["upstream", "downstream"] {
            self.put_toxic(link, &reset_toxic(stream), stream, "reset_peer", attributes.clone(), !reset).await?;
        }
        Ok(())
    }

    /// Limits `link` to `rate_kbps` KB/s each way (`None`: unlimited), in
    /// place like a delay.
    pub async fn set_bandwidth(&self, link: &str, rate_kbps: Option<u32>) -> anyhow::Result<()> {
        let attributes = serde_json::json!({ "rate": rate_kbps.unwrap_or(0) });
        for stream in ["upstream", "downstream"] {
            let toxic = bandwidth_toxic(stream);
            self.put_toxic(link, &toxic, stream, "bandwidth", attributes.clone(), rate_kbps.is_none()).await?;
        }
        Ok(())
    }

    /// Creates, updates or (with `remove`) deletes one toxic.
    async fn put_toxic(
        &self,
        link: &str,
        toxic: &str,
        stream: &str,
        kind: &str,
        attributes: serde_json::Value,
        remove: bool,
    ) -> anyhow::Result<()> {
        let url = format!("{}/proxies/{}/toxics/{toxic}", self.base, path_segment(link));
        if remove {
            let resp = self.http.delete(&url).send().await?;
            if !(resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND) {
                bail!("removing {toxic} from {link}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
            }
            return Ok(());
        }
        let resp = self.http.post(&url).json(&serde_json::json!({ "attributes": attributes })).send().await?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != reqwest::StatusCode::NOT_FOUND {
            bail!("updating {toxic} on {link}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let body = serde_json::json!({
            "name": toxic, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes,
        });
        let url = format!("{}/proxies/{}/toxics", self.base, path_segment(link));
        let resp = self.http.post(url).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("adding {toxic} to {link}: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// Every link with its current settings, by name.
    pub async fn links(&self) -> anyhow::Result<Vec<LinkState>> {
        let resp = self.http.get(format!("{}/proxies", self.base)).send().await?.error_for_status()?;
        let proxies: std::collections::BTreeMap<String, serde_json::Value> = resp.json().await?;
        Ok(proxies.into_iter().map(|(name, p)| state_of(name, &p)).collect())
    }
}

/// `name` as one URL path segment: a link's `#` would start a fragment.
fn path_segment(name: &str) -> String {
    name.replace('%', "%25").replace('#', "%23").replace('>', "%3E").replace('/', "%2F")
}

/// A link's settings read back from its proxy and toxics.
fn state_of(name: String, proxy: &serde_json::Value) -> LinkState {
    let mut delay = Delay::NONE;
    let (mut cut, mut reset, mut bandwidth_kbps) = (false, false, None);
    for toxic in proxy["toxics"].as_array().into_iter().flatten() {
        let latency = toxic["attributes"]["latency"].as_u64().unwrap_or(0) as u32;
        let jitter = toxic["attributes"]["jitter"].as_u64().unwrap_or(0) as u32;
        match toxic["name"].as_str().unwrap_or_default() {
            n if n.starts_with("cut-") => cut = true,
            n if n.starts_with("reset-") => reset = true,
            n if n.starts_with("bandwidth-") => {
                bandwidth_kbps = toxic["attributes"]["rate"].as_u64().map(|r| r as u32);
            }
            n if n == delay_toxic("upstream") => delay.rtt_ms += latency,
            n if n == delay_toxic("downstream") => {
                delay.rtt_ms += latency;
                delay.jitter_ms = jitter;
            }
            _ => {}
        }
    }
    LinkState {
        name,
        listen: proxy["listen"].as_str().unwrap_or_default().to_owned(),
        upstream: proxy["upstream"].as_str().unwrap_or_default().to_owned(),
        enabled: proxy["enabled"].as_bool().unwrap_or(false),
        delay,
        cut,
        reset,
        bandwidth_kbps,
    }
}

/// Gives every link its start-up delay.
pub async fn apply(config: &StackConfig, network: &Network) -> anyhow::Result<()> {
    let api = Api::new(&config.toxiproxy_url())?;
    let links = links(config);
    for selector in network.selectors() {
        check_selector(selector, &links)?;
    }
    for (link, delay) in network.delays(&links) {
        if delay != Delay::NONE {
            api.set_delay(&link.name, delay).await.with_context(|| format!("delaying {}", link.name))?;
        }
    }
    for (link, rate) in network.bandwidths(&links) {
        if rate.is_some() {
            api.set_bandwidth(&link.name, rate).await.with_context(|| format!("limiting {}", link.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_in_whole_milliseconds() {
        assert_eq!("2ms".parse::<Delay>(), Ok(Delay { rtt_ms: 2, jitter_ms: 0 }));
        assert_eq!("0".parse::<Delay>(), Ok(Delay::NONE));
        assert_eq!("5ms±1ms".parse::<Delay>(), Ok(Delay { rtt_ms: 5, jitter_ms: 1 }));
        assert_eq!("5ms+-2".parse::<Delay>(), Ok(Delay { rtt_ms: 5, jitter_ms: 2 }));
        assert_eq!("0.01s".parse::<Delay>(), Ok(Delay { rtt_ms: 10, jitter_ms: 0 }));
        assert!("0.5ms".parse::<Delay>().unwrap_err().contains("whole milliseconds"));
        assert!("2ms±2ms".parse::<Delay>().is_err(), "jitter beyond the way back's half");
        assert!("-1ms".parse::<Delay>().is_err());
        assert!("fast".parse::<Delay>().is_err());
        assert_eq!(Delay { rtt_ms: 5, jitter_ms: 1 }.to_string(), "5ms±1ms");
    }

    #[test]
    fn a_round_trip_is_split_with_the_odd_millisecond_on_the_way_back() {
        assert_eq!(Delay { rtt_ms: 5, jitter_ms: 0 }.halves(), (2, 3));
        assert_eq!(Delay { rtt_ms: 1, jitter_ms: 0 }.halves(), (0, 1));
        assert_eq!(Delay { rtt_ms: 4, jitter_ms: 0 }.halves(), (2, 2));
    }

    #[test]
    fn a_selector_picks_a_link_or_all_replicas_of_it() {
        assert!(selects("gateway->order", "gateway->order#1"));
        assert!(selects("gateway->order#1", "gateway->order#1"));
        assert!(!selects("gateway->order#1", "gateway->order#10"));
        assert!(!selects("gateway->o", "gateway->order#0"));
        assert!(selects("stock->postgres-stock", "stock->postgres-stock"));
    }

    #[test]
    fn overrides_win_over_the_default_and_the_last_one_wins() {
        let links = vec![
            Link { name: "gateway->order#0".into(), listen: 1, upstream: 2 },
            Link { name: "order->postgres-order".into(), listen: 3, upstream: 4 },
        ];
        let network = Network {
            delay: Delay { rtt_ms: 1, jitter_ms: 0 },
            overrides: vec![
                ("order->postgres-order".into(), Delay { rtt_ms: 5, jitter_ms: 0 }),
                ("order->postgres-order".into(), Delay { rtt_ms: 7, jitter_ms: 0 }),
            ],
            bandwidth_kbps: Some(100),
            bandwidth_overrides: vec![("gateway->order".into(), 5)],
        };
        let got: Vec<u32> = network.delays(&links).map(|(_, d)| d.rtt_ms).collect();
        assert_eq!(got, vec![1, 7]);
        let got: Vec<Option<u32>> = network.bandwidths(&links).map(|(_, r)| r).collect();
        assert_eq!(got, vec![Some(5), Some(100)]);
        assert_eq!(network.selectors().count(), 3);
        assert!(check_selector("order->kafka", &links).unwrap_err().to_string().contains("gateway->order#0"));
        assert_eq!(
            parse_override("gateway->order=2ms"),
            Ok(("gateway->order".into(), Delay { rtt_ms: 2, jitter_ms: 0 }))
        );
        assert!(parse_override("order=2ms").is_err());
    }

    #[test]
    fn a_link_reads_back_from_its_toxics() {
        let proxy = serde_json::json!({
            "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "enabled": true,
            "toxics": [
                { "name": "delay-upstream", "attributes": { "latency": 2, "jitter": 0 } },
                { "name": "delay-downstream", "attributes": { "latency": 3, "jitter": 1 } },
            ],
        });
        let state = state_of("a->b".into(), &proxy);
        assert_eq!(state.delay, Delay { rtt_ms: 5, jitter_ms: 1 });
        assert!(!state.cut && !state.reset && state.enabled);
        assert_eq!(state.bandwidth_kbps, None);

        let proxy = serde_json::json!({
            "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "enabled": true,
            "toxics": [
                { "name": "reset-upstream", "attributes": { "timeout": 0 } },
                { "name": "bandwidth-downstream", "attributes": { "rate": 250 } },
            ],
        });
        let state = state_of("a->b".into(), &proxy);
        assert!(state.reset && !state.cut);
        assert_eq!(state.bandwidth_kbps, Some(250));
        assert_eq!(state.delay, Delay::NONE);
    }

    #[test]
    fn bandwidths_parse_in_whole_kilobytes_per_second() {
        assert_eq!(parse_bandwidth("100"), Ok(100));
        assert_eq!(parse_bandwidth("100KB/s"), Ok(100));
        assert_eq!(parse_bandwidth("2MB/s"), Ok(2000));
        assert_eq!(parse_bandwidth("1.5MB/s"), Ok(1500));
        assert_eq!(parse_bandwidth_arg("2MB/s"), Ok(BandwidthArg::All(2000)));
        assert_eq!(parse_bandwidth_arg("order->kafka=50"), Ok(BandwidthArg::Link("order->kafka".into(), 50)));
        assert!(parse_bandwidth_arg("order=50").is_err());
        for bad in ["0", "0.5KB/s", "-3", "fast", "20GB/s"] {
            assert!(parse_bandwidth(bad).is_err(), "{bad}");
        }
    }
}
