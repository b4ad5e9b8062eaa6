//! Kafka client settings as named profiles, so a report can say exactly which
//! settings produced its numbers.
//!
//! What every profile shares is about durability and failover, not speed:
//! `acks=all` and the idempotent producer; offsets stored only by the
//! application; static group membership, so a restarted replica takes its
//! partitions back the moment it rejoins instead of after the dead member's
//! session timeout; and a reconnect back-off capped at a tenth of a second, so
//! a restarted broker is found again within that (librdkafka's cap is 10 s),
//! failed requests retried within a quarter of a second, and a partition's
//! new leader found within a quarter of a second of its election, and a
//! client left with no broker it knows bootstraps again after two seconds.

use std::fmt;
use std::str::FromStr;

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafka;
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

/// How long a consumer group keeps a member that stopped heartbeating
/// (librdkafka's default, 45 s, is Kafka's; static membership makes a
/// restarted replica's return immediate, so this only bounds how long a
/// replica that never comes back holds its partitions).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a consumer heartbeats its group coordinator: ten times per
/// [`SESSION_TIMEOUT`].
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A named set of Kafka client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// librdkafka's own batching and fetching: a produced message waits up to
    /// `linger.ms=5` for company, so every saga hop costs about 5 ms more.
    Defaults,
    /// No producer batching delay (`linger.ms=0`) and Nagle off: the producer
    /// sends at once and still batches under load, because messages queue up
    /// behind the requests in flight. The consumer keeps librdkafka's fetch
    /// settings.
    NoLinger,
    /// `no-linger` plus a 5 ms consumer fetch wait and a 50 ms fetch error
    /// back-off. The default: in the sweep of `harness compare --plan
    /// kafka-profiles` (results/2026-12-01-18-31-compare-kafka-profiles) it had
    /// the lowest latency at one client (p50 7.6 ms against 8.3 for
    /// `no-linger` and 29.6 for `defaults`) and at least their throughput at 8
    /// and 32 clients, for the same broker CPU per checkout.
    #[default]
    LowLatency,
}

/// Every profile, in the order reports list them.
pub const PROFILES: [Profile; 3] = [Profile::Defaults, Profile::NoLinger, Profile::LowLatency];

/// Settings every client gets, whatever the profile.
const COMMON: &[(&str, &str)] = &[
    // A client retries a broker that is away every tenth of a second (a
    // refused connect on loopback costs microseconds), so every client on a
    // saga's path is back within that of the broker's return, not within
    // up to half a second each. Measured in `harness run --protocol saga
    // --saga-mode sequential --rate 60 --checkouts 600 --fault
    // kill:kafka@3+2s`: from the broker serving again to the last stalled
    // checkout's answer, 2.31 s with a 500 ms cap, 1.86 s with this one.
    ("reconnect.backoff.ms", "50"),
    ("reconnect.backoff.max.ms", "100"),
    // A produce or group request failed while the broker was away is retried
    // within a quarter of a second of its return (librdkafka: up to 1 s).
    ("retry.backoff.ms", "50"),
    ("retry.backoff.max.ms", "250"),
    // Where a partition's leader died, librdkafka learns its successor from
    // a metadata answer, and asks for one only on its one-second topic scan
    // (once to find the new leader, once more after draining the requests
    // left on the dead one): with three brokers, a killed leader's
    // partitions stalled about two seconds after the controller had already
    // moved them. A refresh every quarter second bounds each of those waits
    // by that (one small request per client and interval; measured in
    // `harness run --brokers 3 --fault kill:kafka#1@3+2s`: max latency
    // 4.8 s before, 3.9 s after). librdkafka derives `metadata.max.age.ms`
    // from it (three intervals): with no broker reachable for 0.75 s a
    // topic's metadata is dropped and new messages wait unassigned, in
    // order, until the next answer places them.
    ("topic.metadata.refresh.interval.ms", "250"),
    // A broker fenced by its controller (a single node paused past its
    // broker session, then resumed) is left out of the metadata it
    // answers; librdkafka then decommissions every broker it knows and
    // has nobody left to ask, and only bootstraps again after this long
    // without metadata (librdkafka: 5 minutes). Seen in the saga crash
    // test: after the paused-broker case, the stock and order consumers
    // logged "no broker available for coordinator query" until the test
    // gave up, and every later saga stalled. Two seconds bounds that
    // stall where a metadata request is still made and fails; the periodic
    // refresh above keeps the timer from firing while any broker answers.
    // Where no request can be made at all, [`ClientLog`] steps in.
    ("metadata.recovery.rebootstrap.trigger.ms", "2000"),
    // The statistics [`ClientLog`] reads to find a client left with no
    // broker at all.
    ("statistics.interval.ms", "1000"),
];

impl Profile {
    /// Name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Defaults => "defaults",
            Profile::NoLinger => "no-linger",
            Profile::LowLatency => "low-latency",
        }
    }

    /// What the profile sets on every client, on top of [`COMMON`].
    fn client(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Defaults => &[],
            Profile::NoLinger | Profile::LowLatency => &[("socket.nagle.disable", "true")],
        }
    }

    /// What the profile sets on producers.
    fn producer(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Defaults => &[],
            Profile::NoLinger | Profile::LowLatency => &[("linger.ms", "0")],
        }
    }

    /// What the profile sets on consumers.
    fn consumer(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Defaults | Profile::NoLinger => &[],
            Profile::LowLatency => &[("fetch.wait.max.ms", "5"), ("fetch.error.backoff.ms", "50")],
        }
    }

    /// The profile's own settings as `key=value` pairs (producer, consumer
    /// and both), for a report to print.
    pub fn describe(self) -> String {
        let all: Vec<String> = [self.client(), self.producer(), self.consumer()]
            .concat()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if all.is_empty() { "librdkafka's defaults".to_owned() } else { all.join(", ") }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PROFILES.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = PROFILES.iter().map(|p| p.as_str()).collect();
            format!("unknown Kafka profile {s:?} (expected one of {})", names.join(", "))
        })
    }
}

/// Where the broker is and how to talk to it.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    /// The client settings profile.
    pub profile: Profile,
    /// Consumer group of this service (all replicas of a service share it).
    pub group: String,
    /// The replica's instance name, reported as the Kafka `client.id` and
    /// used as its static group membership (`group.instance.id`).
    ///
    /// With a static member, the restarted replica rejoins under the same
    /// identity and gets its partitions back at once; with a dynamic one, the
    /// dead member held them until its session timed out ([`SESSION_TIMEOUT`]). The cost is
    /// fencing: if a second consumer joins under the same identity (a broker
    /// that lost its state sees the old one as new, or a replica's previous
    /// consumer is still alive), one of them gets a fatal error, and the
    /// consumer loop replaces it with a new consumer ([`crate::consumer::run`]).
    pub instance: Option<String>,
    /// Client settings applied after the profile's.
    pub extra: ClientProperties,
}

/// Extra client settings, `key=value;...` (the services' and the harness's
/// `--kafka-client-properties`), applied after the profile's to every
/// producer and consumer of the services (and of the harness's bare broker
/// measurement): for measuring how a client setting moves the numbers
/// without a new build. Reports record them. Keys that durability or the
/// offset discipline rest on (the brokers, `acks`, idempotence, the group,
/// offset storing and committing, the reset policy, under every alias) are
/// refused, as is anything that is not `key=value`: a setting silently
/// dropped would be measured as if it had been applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientProperties(Vec<(String, String)>);

/// Settings [`ClientProperties`] may not change, under any of librdkafka's
/// names for them (an alias set beside the canonical name would leave which
/// one wins to the order the client applies them in).
const PROTECTED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "group.id",
    "group.instance.id",
    "auto.offset.reset",
];

/// Whether `key` names a [`PROTECTED`] setting (topic-level spellings too).
fn is_protected(key: &str) -> bool {
    let key = key.strip_prefix("default_topic_conf.").or_else(|| key.strip_prefix("topic.")).unwrap_or(key);
    PROTECTED.contains(&key)
}

impl FromStr for ClientProperties {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, v)) = pair.split_once('=') else {
                return Err(format!("{pair:?} is not key=value"));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("{pair:?} names no setting"));
            }
            if is_protected(key) {
                return Err(format!("{key} may not be changed: durability or the offset discipline rests on it"));
            }
            out.push((key.to_owned(), v.trim().to_owned()));
        }
        Ok(ClientProperties(out))
    }
}

impl fmt::Display for ClientProperties {
    /// `key=value;...`, which [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (key, value)) in self.0.iter().enumerate() {
            write!(f, "{}{key}={value}", if n == 0 { "" } else { ";" })?;
        }
        Ok(())
    }
}

impl ClientProperties {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn apply(&self, config: &mut ClientConfig) {
        for (key, value) in &self.0 {
            config.set(key, value);
        }
    }
}

impl KafkaSettings {
    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        if let Some(instance) = &self.instance {
            config.set("client.id", client_id(instance));
        }
        for (key, value) in COMMON.iter().chain(self.profile.client()) {
            config.set(*key, *value);
        }
        config
    }

    /// The relay's producer: idempotent (no duplicates or reordering from its
    /// own retries), acknowledged by all in-sync replicas. Deliveries give up
    /// after 30 s so the relay releases its rows and retries them later rather
    /// than holding a database transaction for librdkafka's five minutes.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config.set("message.timeout.ms", "30000");
        for (key, value) in self.profile.producer() {
            config.set(*key, *value);
        }
        self.extra.apply(&mut config);
        config.set("enable.idempotence", "true").set("acks", "all");
        config
    }

    /// A consumer that never commits an offset the application has not stored
    /// (stored only after the message's local transaction committed), and that
    /// starts a new group from the beginning of the topics so no message
    /// produced before a service's first start is skipped.
    pub fn consumer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("auto.commit.interval.ms", "1000")
            .set("session.timeout.ms", SESSION_TIMEOUT.as_millis().to_string())
            .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL.as_millis().to_string());
        for (key, value) in self.profile.consumer() {
            config.set(*key, *value);
        }
        self.extra.apply(&mut config);
        config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        if let Some(instance) = &self.instance {
            config.set("group.instance.id", client_id(instance));
        }
        config
    }
}

/// How the services' Kafka clients log. librdkafka reports a broker that is
/// away (stopped, restarting) as an error on every reconnect attempt, twice
/// (a `FAIL` log line and an error event): during a 2 s broker restart that
/// was dozens of error lines per client. Here it is one warning per client
/// and outage ([`OUTAGE_LOG_EVERY`]), the repeats at debug level; every other
/// message keeps librdkafka's level.
///
/// It also gives a client its bootstrap servers back when it has lost every
/// broker. librdkafka 2.12 decommissions every broker it knows when a metadata
/// answer lists topics but no broker (confluentinc/librdkafka#5301), which is
/// what a single Kafka node answers during the fraction of a second its own
/// controller has it fenced (no heartbeat handled within the broker session on a
/// loaded machine). With no broker left it makes no metadata request, so
/// neither its rebootstrap timer nor its all-brokers-down path fires, and the
/// client stays cut off until restarted: in one full `harness compare` every
/// saga client stopped producing and consuming 13 s after a broker restart,
/// for the rest of the run. The statistics (every second) show that state, no
/// broker but librdkafka's internal and logical ones, and the client is then
/// given its bootstrap servers again, which is what a rebootstrap does.
#[derive(Debug, Default)]
pub struct ClientLog {
    last_outage_warning: Mutex<Option<Instant>>,
    rescue: Arc<Rescue>,
}

/// What [`ClientLog`] needs to give its client the bootstrap servers again.
#[derive(Debug, Default)]
pub struct Rescue {
    /// The client's `bootstrap.servers`.
    bootstrap: String,
    /// The client the context belongs to, once [`Rescue::attach`]ed.
    native: AtomicPtr<RDKafka>,
}

impl Rescue {
    /// Tells the context which client it belongs to: call it with the client
    /// made from the [`ClientLog`] this came from, right after making it.
    pub fn attach<C: ClientContext>(&self, client: &Client<C>) {
        self.native.store(client.native_ptr(), Ordering::Release);
    }

    /// Gives the attached client its bootstrap servers again.
    #[allow(unsafe_code)]
    fn rebootstrap(&self) {
        let rk = self.native.load(Ordering::Acquire);
        let Ok(list) = CString::new(self.bootstrap.as_str()) else { return };
        if rk.is_null() || self.bootstrap.is_empty() {
            return;
        }
        // SAFETY: `rk` is the client the context belongs to (`attach`), and a
        // context is dropped only with its client, so the client is alive
        // whenever librdkafka calls back into the context; `list` is a valid
        // C string for the duration of the call; `rd_kafka_brokers_add` may
        // be called from any thread and takes the client's own locks.
        let added = unsafe { rdkafka::bindings::rd_kafka_brokers_add(rk, list.as_ptr()) };
        tracing::warn!(
            target: "librdkafka",
            bootstrap = %self.bootstrap,
            added,
            "Kafka client had lost every broker; bootstrapping again"
        );
    }
}

/// The brokers of a librdkafka statistics report, by name.
#[derive(Debug, Deserialize)]
struct StatsBrokers {
    #[serde(default)]
    brokers: std::collections::HashMap<String, StatsBroker>,
}

#[derive(Debug, Deserialize)]
struct StatsBroker {
    source: String,
}

/// Whether a statistics report shows a client with no broker it could
/// connect to: none configured (bootstrap) or learned from metadata, only
/// librdkafka's internal and logical placeholders. `None` if it does not parse.
fn stranded(statistics: &[u8]) -> Option<bool> {
    let stats: StatsBrokers = serde_json::from_slice(statistics).ok()?;
    Some(!stats.brokers.values().any(|b| matches!(b.source.as_str(), "configured" | "learned")))
}

/// A broker outage is warned about at most this often per client.
pub const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

/// Whether `err` means only that the broker cannot be reached right now
/// (librdkafka reconnects by itself).
pub fn is_broker_away(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::Resolve)
    )
}

impl ClientLog {
    /// The context of a client made from `config`.
    pub fn for_config(config: &ClientConfig) -> Self {
        let bootstrap = config.get("bootstrap.servers").unwrap_or_default().to_owned();
        ClientLog { rescue: Arc::new(Rescue { bootstrap, native: AtomicPtr::default() }), ..Self::default() }
    }

    /// The handle to [`Rescue::attach`] the client made with this context.
    pub fn rescue(&self) -> Arc<Rescue> {
        Arc::clone(&self.rescue)
    }

    /// Whether an outage warning is due now (and, if so, marks it given).
    fn outage_warning_due(&self) -> bool {
        let mut last = self.last_outage_warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= OUTAGE_LOG_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Connection failures also arrive as an error event (below).
        if fac == "FAIL" {
            tracing::debug!(target: "librdkafka", "{fac} {message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac} {message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac} {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", "{fac} {message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac} {message}"),
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if stranded(statistics) == Some(true) {
            self.rescue.rebootstrap();
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if !is_broker_away(&error) {
            tracing::error!(target: "librdkafka", %error, reason, "Kafka client error");
        } else if self.outage_warning_due() {
            tracing::warn!(target: "librdkafka", %error, reason, "Kafka broker unreachable; reconnecting");
        } else {
            tracing::debug!(target: "librdkafka", %error, reason, "Kafka broker still unreachable");
        }
    }
}

/// Kafka client ids are kept to `[a-zA-Z0-9._-]`; instance names like
/// `order#0` are mapped onto that.
fn client_id(instance: &str) -> String {
    instance.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(profile: Profile) -> KafkaSettings {
        KafkaSettings {
            bootstrap: "b:1".into(),
            profile,
            group: "g".into(),
            instance: Some("order#0".into()),
            extra: ClientProperties::default(),
        }
    }

    #[test]
    fn every_profile_keeps_durability_manual_offset_store_and_fast_failover() {
        for profile in PROFILES {
            let p = settings(profile).producer();
            assert_eq!(p.get("enable.idempotence"), Some("true"));
            assert_eq!(p.get("acks"), Some("all"));
            assert_eq!(p.get("reconnect.backoff.max.ms"), Some("100"));
            assert_eq!(p.get("topic.metadata.refresh.interval.ms"), Some("250"));
            assert_eq!(p.get("metadata.recovery.rebootstrap.trigger.ms"), Some("2000"), "a fenced broker");
            let c = settings(profile).consumer();
            assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
            assert_eq!(c.get("client.id"), Some("order-0"));
            assert_eq!(c.get("group.instance.id"), Some("order-0"), "static membership");
            assert_eq!(c.get("reconnect.backoff.max.ms"), Some("100"));
            assert_eq!(c.get("metadata.recovery.rebootstrap.trigger.ms"), Some("2000"), "a fenced broker");
        }
        let anonymous = KafkaSettings { instance: None, ..settings(Profile::LowLatency) };
        assert_eq!(anonymous.consumer().get("group.instance.id"), None, "no identity, no static member");
        assert_eq!(settings(Profile::Defaults).producer().get("linger.ms"), None, "librdkafka default");
        assert_eq!(settings(Profile::NoLinger).producer().get("linger.ms"), Some("0"));
        assert_eq!(settings(Profile::NoLinger).consumer().get("fetch.wait.max.ms"), None);
        assert_eq!(settings(Profile::LowLatency).consumer().get("fetch.wait.max.ms"), Some("5"));
        assert_eq!(Profile::default(), Profile::LowLatency);
    }

    #[test]
    fn a_broker_outage_is_warned_about_once_per_client() {
        let log = ClientLog::default();
        assert!(log.outage_warning_due());
        assert!(!log.outage_warning_due(), "the repeats are not warnings");
        let away = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(is_broker_away(&away));
        assert!(!is_broker_away(&KafkaError::Global(RDKafkaErrorCode::Fatal)));
    }

    #[test]
    fn a_client_with_only_placeholder_brokers_is_stranded() {
        // Shapes of librdkafka's statistics (trimmed): a client that knows
        // its broker, one right after start (bootstrap only), and one whose
        // brokers were all decommissioned.
        let learned = br#"{"name":"c","brokers":{
            "GroupCoordinator":{"name":"GroupCoordinator","nodeid":1,"source":"logical","state":"UP"},
            ":0/internal":{"name":":0/internal","nodeid":-1,"source":"internal","state":"UP"},
            "127.0.0.1:18010/1":{"name":"127.0.0.1:18010/1","nodeid":1,"source":"learned","state":"DOWN"}}}"#;
        let bootstrap =
            br#"{"brokers":{"127.0.0.1:18010/bootstrap":{"nodeid":-1,"source":"configured","state":"INIT"}}}"#;
        let stranded_stats = br#"{"brokers":{
            "GroupCoordinator":{"nodeid":-1,"source":"logical","state":"INIT"},
            ":0/internal":{"nodeid":-1,"source":"internal","state":"UP"}}}"#;
        assert_eq!(stranded(learned), Some(false), "a known broker that is down reconnects by itself");
        assert_eq!(stranded(bootstrap), Some(false));
        assert_eq!(stranded(stranded_stats), Some(true));
        assert_eq!(stranded(br#"{"brokers":{}}"#), Some(true));
        assert_eq!(stranded(b"not json"), None, "an unreadable report changes nothing");
    }

    #[test]
    fn a_stranded_client_without_a_client_attached_is_left_alone() {
        let config = settings(Profile::LowLatency).producer();
        let log = ClientLog::for_config(&config);
        assert_eq!(log.rescue.bootstrap, "b:1");
        // Not attached: nothing to call, and no crash.
        log.stats_raw(br#"{"brokers":{}}"#);
    }

    #[test]
    fn extra_properties_cannot_touch_durability() {
        let parsed: ClientProperties = " linger.ms=1; fetch.wait.max.ms = 10 ;".parse().unwrap();
        assert_eq!(parsed.to_string(), "linger.ms=1;fetch.wait.max.ms=10");
        assert_eq!(parsed.to_string().parse::<ClientProperties>(), Ok(parsed.clone()));
        for protected in [
            "acks=1",
            "enable.idempotence=false",
            "request.required.acks=0",
            "topic.auto.offset.reset=latest",
            "enable.auto.commit=false",
            "group.id=other",
        ] {
            let err = format!("linger.ms=1;{protected}").parse::<ClientProperties>().unwrap_err();
            assert!(err.contains("may not be changed"), "{protected}: {err}");
        }
        assert!("junk".parse::<ClientProperties>().unwrap_err().contains("not key=value"));
        let mut config = settings(Profile::LowLatency);
        config.extra = parsed;
        assert_eq!(config.producer().get("linger.ms"), Some("1"));
        // Were a protected key to get through, the clients still set their own last.
        config.extra = ClientProperties(
            ["acks=1", "enable.idempotence=false", "enable.auto.offset.store=true", "group.id=other"]
                .iter()
                .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap())
                .collect(),
        );
        let producer = config.producer();
        assert_eq!((producer.get("acks"), producer.get("enable.idempotence")), (Some("all"), Some("true")));
        let consumer = config.consumer();
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("g"));
    }

    #[test]
    fn profile_names_round_trip() {
        for p in PROFILES {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
        }
        assert!("fast".parse::<Profile>().unwrap_err().contains("no-linger"));
        assert_eq!(Profile::Defaults.describe(), "librdkafka's defaults");
        assert_eq!(Profile::NoLinger.describe(), "socket.nagle.disable=true, linger.ms=0");
    }
}
