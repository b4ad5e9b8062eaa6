//! Kafka client settings as named profiles, so a report can say exactly which
//! settings produced its numbers.

use std::fmt;
use std::str::FromStr;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// A named set of Kafka client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// librdkafka's defaults, with `acks=all` and the idempotent producer.
    #[default]
    Defaults,
    /// `defaults` plus no producer batching delay (`linger.ms=0`), a short
    /// consumer fetch wait and Nagle off: lower latency, more requests.
    LowLatency,
}

impl Profile {
    /// Name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Defaults => "defaults",
            Profile::LowLatency => "low-latency",
        }
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
        match s {
            "defaults" => Ok(Profile::Defaults),
            "low-latency" => Ok(Profile::LowLatency),
            other => Err(format!("unknown Kafka profile {other:?} (expected defaults or low-latency)")),
        }
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
    /// The replica's instance name, reported as the Kafka `client.id`.
    ///
    /// Not used for static group membership (`group.instance.id`): after a
    /// broker restart librdkafka can find its static member fenced, a fatal
    /// error; dynamic membership costs a rebalance (bounded by the session
    /// timeout) when a replica dies, and nothing else.
    pub instance: Option<String>,
}

impl KafkaSettings {
    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        if let Some(instance) = &self.instance {
            config.set("client.id", client_id(instance));
        }
        if self.profile == Profile::LowLatency {
            config.set("socket.nagle.disable", "true");
        }
        config
    }

    /// The relay's producer: idempotent (no duplicates or reordering from its
    /// own retries), acknowledged by all in-sync replicas. Deliveries give up
    /// after 30 s so the relay releases its rows and retries them later rather
    /// than holding a database transaction for librdkafka's five minutes.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config.set("enable.idempotence", "true").set("acks", "all").set("message.timeout.ms", "30000");
        if self.profile == Profile::LowLatency {
            config.set("linger.ms", "0");
        }
        config
    }

    /// A consumer that never commits an offset the application has not stored
    /// (stored only after the message's local transaction committed), and that
    /// starts a new group from the beginning of the topics so no message
    /// produced before a service's first start is skipped.
    pub fn consumer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        if self.profile == Profile::LowLatency {
            config.set("fetch.wait.max.ms", "5").set("fetch.error.backoff.ms", "50");
        }
        config
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
        KafkaSettings { bootstrap: "b:1".into(), profile, group: "g".into(), instance: Some("order#0".into()) }
    }

    #[test]
    fn both_profiles_keep_durability_and_manual_offset_store() {
        for profile in [Profile::Defaults, Profile::LowLatency] {
            let p = settings(profile).producer();
            assert_eq!(p.get("enable.idempotence"), Some("true"));
            assert_eq!(p.get("acks"), Some("all"));
            let c = settings(profile).consumer();
            assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
            assert_eq!(c.get("client.id"), Some("order-0"));
            assert_eq!(c.get("group.instance.id"), None, "dynamic membership");
        }
        assert_eq!(settings(Profile::Defaults).producer().get("linger.ms"), None, "librdkafka default");
        assert_eq!(settings(Profile::LowLatency).producer().get("linger.ms"), Some("0"));
        assert_eq!(settings(Profile::LowLatency).consumer().get("fetch.wait.max.ms"), Some("5"));
    }

    #[test]
    fn profile_names_round_trip() {
        for p in [Profile::Defaults, Profile::LowLatency] {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
        }
        assert!("fast".parse::<Profile>().is_err());
    }
}
