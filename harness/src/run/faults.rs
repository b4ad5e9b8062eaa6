//! Fault schedules: what `--fault` asks for, parsed and validated before any
//! stack starts, so a typo fails in a second rather than after a long load.
//!
//! ```text
//!   kill:<component>[#replica]@<t>[+<restart_after>]   SIGKILL (databases: immediate stop),
//!                                                       restarted after <restart_after> (default: at once)
//!   pause:<component>[#replica]@<t>+<d>                  SIGSTOP, SIGCONT after <d>
//!   crashpoint:<name>[@<component>[#replica]]@<t>        arm a protocol failpoint on a service replica
//!   duplicate-messages                                   SAGA: every message published twice (whole run)
//!   delay-messages:<d>                                   SAGA: every publish held back by <d> (whole run)
//!   latency:<link>@<t>+<d>=<rtt>[±<jitter>]              a link's round trip set to <rtt> for <d>, then back
//!   cut:<link>@<t>+<d>                                   every byte on a link held for <d>, then let through
//!   reset:<link>@<t>+<d>                                 every connection on a link dropped at its next byte for <d>
//!   bandwidth:<link>@<t>+<d>=<rate>                      a link limited to <rate> KB/s each way for <d>, then back
//! ```
//!
//! Link faults need a stack with links (any `--link*` flag); a
//! `<link>` is a name `harness status` lists (`order->stock#0`) or the same
//! without the replica, for every replica (`gateway->order`).
//!
//! Times are seconds from the start of the load (`1.5`, `2s`, `500ms`).
//! Components are the names `harness status` shows: `order`, `stock`,
//! `payment` and `kafka` (replica or node 0 unless `#n`), `postgres-order`,
//! `postgres-stock`, `postgres-payment`, `redis`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use protocol_core::crashpoint::{self, CrashPoint};

use crate::stack::links::Delay;

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// When, from the start of the load.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
}

/// The kinds of fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Kill the component; restart it after the delay (`None`: the supervisor
    /// restarts it at once).
    Kill { target: Target, restart_after: Option<Duration> },
    /// Stop the component's process for a while.
    Pause { target: Target, duration: Duration },
    /// Arm a crash point on a service replica.
    Crashpoint { point: CrashPoint, target: Target },
    /// SAGA: every service publishes every message twice, for the whole run
    /// (set when the services start; `at` is zero).
    DuplicateMessages,
    /// SAGA: every service holds each publish back this long, for the whole run.
    DelayMessages(Duration),
    /// Every link `link` selects gets round trip `delay` for `duration`,
    /// then its own setting back: a latency spike.
    Latency { link: String, duration: Duration, delay: Delay },
    /// Every byte on the links `link` selects is held for `duration`, then
    /// let through: a partition that TCP rides out (no reset, no refusal).
    Cut { link: String, duration: Duration },
    /// Every connection on the links `link` selects is dropped as soon as it
    /// carries a byte (a new one with a TCP RST, an open one with a FIN), for
    /// `duration`: a peer that drops its connections rather than going silent.
    Reset { link: String, duration: Duration },
    /// The links `link` selects carry at most `rate_kbps` KB/s each way for
    /// `duration`, then their own setting back: a congested link.
    Bandwidth { link: String, duration: Duration, rate_kbps: u32 },
}

impl FaultKind {
    /// Whether the fault is a start-up setting of the services rather than an
    /// event during the load.
    pub fn is_setting(&self) -> bool {
        matches!(self, FaultKind::DuplicateMessages | FaultKind::DelayMessages(_))
    }

    /// The link selector of a link fault.
    pub fn link(&self) -> Option<&str> {
        match self {
            FaultKind::Latency { link, .. }
            | FaultKind::Cut { link, .. }
            | FaultKind::Reset { link, .. }
            | FaultKind::Bandwidth { link, .. } => Some(link),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.as_secs_f64();
        match &self.kind {
            FaultKind::Kill { target, restart_after: None } => write!(f, "kill {target} at {at}s"),
            FaultKind::Kill { target, restart_after: Some(d) } => {
                write!(f, "kill {target} at {at}s, restart after {}s", d.as_secs_f64())
            }
            FaultKind::Pause { target, duration } => {
                write!(f, "pause {target} at {at}s for {}s", duration.as_secs_f64())
            }
            FaultKind::Crashpoint { point, target } => write!(f, "crash point {} on {target} at {at}s", point.name),
            FaultKind::DuplicateMessages => f.write_str("every saga message published twice"),
            FaultKind::DelayMessages(d) => write!(f, "every saga publish delayed {} ms", d.as_millis()),
            FaultKind::Latency { link, duration, delay } => {
                write!(f, "{link} at {delay} round trip at {at}s for {}s", duration.as_secs_f64())
            }
            FaultKind::Cut { link, duration } => write!(f, "cut {link} at {at}s for {}s", duration.as_secs_f64()),
            FaultKind::Reset { link, duration } => {
                write!(f, "reset {link} at {at}s for {}s", duration.as_secs_f64())
            }
            FaultKind::Bandwidth { link, duration, rate_kbps } => {
                write!(f, "{link} at {rate_kbps} KB/s at {at}s for {}s", duration.as_secs_f64())
            }
        }
    }
}

impl Fault {
    /// The fault as the command line takes it (`kill:kafka#0@3s+2s`):
    /// [`Fault`]'s `FromStr` reads it back to the same fault, which is how
    /// `run.json` stores a case's faults.
    pub fn spec(&self) -> String {
        let s = |d: &Duration| format!("{}s", d.as_secs_f64());
        let at = s(&self.at);
        match &self.kind {
            FaultKind::Kill { target, restart_after: None } => format!("kill:{target}@{at}"),
            FaultKind::Kill { target, restart_after: Some(d) } => format!("kill:{target}@{at}+{}", s(d)),
            FaultKind::Pause { target, duration } => format!("pause:{target}@{at}+{}", s(duration)),
            FaultKind::Crashpoint { point, target } => format!("crashpoint:{}@{target}@{at}", point.name),
            FaultKind::DuplicateMessages => "duplicate-messages".to_owned(),
            FaultKind::DelayMessages(d) => format!("delay-messages:{}", s(d)),
            FaultKind::Latency { link, duration, delay } => format!("latency:{link}@{at}+{}={delay}", s(duration)),
            FaultKind::Cut { link, duration } => format!("cut:{link}@{at}+{}", s(duration)),
            FaultKind::Reset { link, duration } => format!("reset:{link}@{at}+{}", s(duration)),
            FaultKind::Bandwidth { link, duration, rate_kbps } => {
                format!("bandwidth:{link}@{at}+{}={rate_kbps}KB/s", s(duration))
            }
        }
    }
}

/// Faults stored as their command-line specs ([`Fault::spec`]); for
/// `#[serde(with = "crate::run::faults::as_specs")]`.
pub mod as_specs {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Fault;

    /// Writes each fault's spec.
    pub fn serialize<S: Serializer>(faults: &[Fault], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(faults.iter().map(Fault::spec))
    }

    /// Reads each fault back from its spec.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Fault>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|t| t.parse().map_err(serde::de::Error::custom)).collect()
    }
}

/// A component, and which replica for services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Component name (`order`, `kafka`, `postgres-stock`, ...).
    pub component: String,
    /// Replica of a service, or node of the Kafka cluster (0 when not given).
    pub replica: u16,
}

impl Target {
    /// Whether this is a service replica (as opposed to infrastructure).
    pub fn is_service(&self) -> bool {
        SERVICES.contains(&self.component.as_str())
    }

    /// Whether this is a Kafka node.
    pub fn is_broker(&self) -> bool {
        self.component == KAFKA
    }

    /// The name `harness status` uses: `order#0`, `kafka#1`, `redis`, ...
    pub fn status_name(&self) -> String {
        if self.is_service() || self.is_broker() {
            format!("{}#{}", self.component, self.replica)
        } else {
            self.component.clone()
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.status_name())
    }
}

const SERVICES: [&str; 3] = ["order", "stock", "payment"];
const KAFKA: &str = "kafka";
const INFRASTRUCTURE: [&str; 5] = ["postgres-order", "postgres-stock", "postgres-payment", KAFKA, "redis"];

/// Parses `1.5`, `2s`, `1500ms` as a duration.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = raw.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = raw.strip_suffix('s') {
        (s, 1.0)
    } else {
        (raw, 1.0)
    };
    let value: f64 = number.parse().map_err(|_| format!("{raw:?} is not a duration (e.g. 2, 1.5s, 500ms)"))?;
    if !value.is_finite() || value < 0.0 || value * scale > 86_400.0 {
        return Err(format!("{raw:?} is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_target(raw: &str, services_only: bool) -> Result<Target, String> {
    let (component, replica) = match raw.split_once('#') {
        Some((c, r)) => (c, r.parse::<u16>().map_err(|_| format!("replica {r:?} is not a number"))?),
        None => (raw, 0),
    };
    let known = SERVICES.contains(&component) || (!services_only && INFRASTRUCTURE.contains(&component));
    if !known {
        let choices =
            if services_only { SERVICES.join(", ") } else { [&SERVICES[..], &INFRASTRUCTURE[..]].concat().join(", ") };
        return Err(format!("unknown component {component:?} (one of {choices})"));
    }
    if replica != 0 && !SERVICES.contains(&component) && component != KAFKA {
        return Err(format!("{component} has no replicas"));
    }
    Ok(Target { component: component.to_owned(), replica })
}

/// `<t>+<d>` of a link fault: when, and for how long (never open-ended: a
/// link left cut would outlast the run and the verification after it).
fn link_window(raw: &str) -> Result<(Duration, Duration), String> {
    let (at, duration) = raw.split_once('+').ok_or("a link fault needs a duration: @<t>+<d>")?;
    let duration = parse_duration(duration)?;
    if duration.is_zero() || duration > Duration::from_secs(600) {
        return Err(format!("a link fault lasts more than 0 s and at most 10 min, not {duration:?}"));
    }
    Ok((parse_duration(at)?, duration))
}

/// A link as `harness status` names it; whether the stack has it is checked
/// against the stack (`inject::validate`).
fn link_selector(raw: &str) -> Result<String, String> {
    if !raw.contains("->") {
        return Err(format!("{raw:?} is not a link (<client>-><server>, as `harness status` lists them)"));
    }
    Ok(raw.to_owned())
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec == "duplicate-messages" {
            return Ok(Fault { at: Duration::ZERO, kind: FaultKind::DuplicateMessages });
        }
        let (kind, rest) = spec.split_once(':').ok_or_else(|| format!("{spec:?}: expected <kind>:..."))?;
        let bad = |why: String| format!("{spec:?}: {why}");
        match kind {
            "kill" => {
                let (target, when) = rest.split_once('@').ok_or_else(|| bad("expected kill:<component>@<t>".into()))?;
                let (at, restart_after) = match when.split_once('+') {
                    Some((at, after)) => (at, Some(parse_duration(after).map_err(bad)?)),
                    None => (when, None),
                };
                let target = parse_target(target, false).map_err(bad)?;
                Ok(Fault { at: parse_duration(at).map_err(bad)?, kind: FaultKind::Kill { target, restart_after } })
            }
            "pause" => {
                let (target, when) =
                    rest.split_once('@').ok_or_else(|| bad("expected pause:<component>@<t>+<d>".into()))?;
                let (at, duration) =
                    when.split_once('+').ok_or_else(|| bad("a pause needs a duration: @<t>+<d>".into()))?;
                let target = parse_target(target, false).map_err(bad)?;
                let duration = parse_duration(duration).map_err(bad)?;
                Ok(Fault { at: parse_duration(at).map_err(bad)?, kind: FaultKind::Pause { target, duration } })
            }
            "crashpoint" => {
                let mut parts = rest.split('@');
                let point = crashpoint::lookup(parts.next().unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
                let (target, at) = match (parts.next(), parts.next(), parts.next()) {
                    (Some(at), None, None) => (Target { component: point.service.to_owned(), replica: 0 }, at),
                    (Some(target), Some(at), None) => (parse_target(target, true).map_err(bad)?, at),
                    _ => return Err(bad("expected crashpoint:<name>[@<service>[#replica]]@<t>".into())),
                };
                Ok(Fault { at: parse_duration(at).map_err(bad)?, kind: FaultKind::Crashpoint { point, target } })
            }
            "delay-messages" => {
                let delay = parse_duration(rest).map_err(bad)?;
                if delay > Duration::from_secs(60) {
                    return Err(bad("a message delay above 60 s would stall every saga past its deadline".into()));
                }
                Ok(Fault { at: Duration::ZERO, kind: FaultKind::DelayMessages(delay) })
            }
            "latency" => {
                let (link, when) =
                    rest.split_once('@').ok_or_else(|| bad("expected latency:<link>@<t>+<d>=<rtt>".into()))?;
                let (when, delay) =
                    when.split_once('=').ok_or_else(|| bad("a latency fault needs a round trip: =<rtt>".into()))?;
                let (at, duration) = link_window(when).map_err(bad)?;
                let delay = delay.parse::<Delay>().map_err(bad)?;
                let link = link_selector(link).map_err(bad)?;
                Ok(Fault { at, kind: FaultKind::Latency { link, duration, delay } })
            }
            "cut" => {
                let (link, when) = rest.split_once('@').ok_or_else(|| bad("expected cut:<link>@<t>+<d>".into()))?;
                let (at, duration) = link_window(when).map_err(bad)?;
                let link = link_selector(link).map_err(bad)?;
                Ok(Fault { at, kind: FaultKind::Cut { link, duration } })
            }
            "reset" => {
                let (link, when) = rest.split_once('@').ok_or_else(|| bad("expected reset:<link>@<t>+<d>".into()))?;
                let (at, duration) = link_window(when).map_err(bad)?;
                let link = link_selector(link).map_err(bad)?;
                Ok(Fault { at, kind: FaultKind::Reset { link, duration } })
            }
            "bandwidth" => {
                let (link, when) =
                    rest.split_once('@').ok_or_else(|| bad("expected bandwidth:<link>@<t>+<d>=<rate>".into()))?;
                let (when, rate) =
                    when.split_once('=').ok_or_else(|| bad("a bandwidth fault needs a rate: =<KB/s>".into()))?;
                let (at, duration) = link_window(when).map_err(bad)?;
                let rate_kbps = crate::stack::links::parse_bandwidth(rate).map_err(bad)?;
                let link = link_selector(link).map_err(bad)?;
                Ok(Fault { at, kind: FaultKind::Bandwidth { link, duration, rate_kbps } })
            }
            other => Err(bad(format!(
                "unknown fault kind {other:?} (kill, pause, crashpoint, duplicate-messages, delay-messages, \
                 latency, cut, reset, bandwidth)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_reads_back_from_its_spec() {
        for spec in [
            "kill:order#1@3",
            "kill:kafka#2@1.5s+2s",
            "kill:postgres-stock@3",
            "pause:payment@3+3s",
            "duplicate-messages",
            "delay-messages:250ms",
            "latency:order->stock@1+2=5ms±1ms",
            "cut:stock->postgres-stock@2+1.5",
            "reset:order->payment@2+1",
            "bandwidth:order->kafka#0@1+2=2MB/s",
        ] {
            let fault: Fault = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(fault.spec().parse::<Fault>(), Ok(fault.clone()), "{spec} -> {}", fault.spec());
        }
        let point = crate::run::faults::crashpoint::ALL[0].name;
        let fault: Fault = format!("crashpoint:{point}@3").parse().unwrap();
        assert_eq!(fault.spec().parse::<Fault>(), Ok(fault));
    }

    fn target(component: &str, replica: u16) -> Target {
        Target { component: component.into(), replica }
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            "kill:order#1@2+3s".parse::<Fault>(),
            Ok(Fault {
                at: Duration::from_secs(2),
                kind: FaultKind::Kill { target: target("order", 1), restart_after: Some(Duration::from_secs(3)) }
            })
        );
        assert_eq!(
            "kill:postgres-stock@1.5".parse::<Fault>(),
            Ok(Fault {
                at: Duration::from_millis(1500),
                kind: FaultKind::Kill { target: target("postgres-stock", 0), restart_after: None }
            })
        );
        assert_eq!(
            "pause:kafka@500ms+2".parse::<Fault>(),
            Ok(Fault {
                at: Duration::from_millis(500),
                kind: FaultKind::Pause { target: target("kafka", 0), duration: Duration::from_secs(2) }
            })
        );
        let cp = "crashpoint:saga.participant.after_commit@payment@4".parse::<Fault>().unwrap();
        assert_eq!(
            cp.kind,
            FaultKind::Crashpoint { point: crashpoint::SAGA_AFTER_COMMIT, target: target("payment", 0) }
        );
        let cp = "crashpoint:2pc.coordinator.after_decision@1".parse::<Fault>().unwrap();
        assert_eq!(
            cp.kind,
            FaultKind::Crashpoint { point: crashpoint::TWOPC_AFTER_DECISION, target: target("order", 0) }
        );
        assert_eq!("duplicate-messages".parse::<Fault>().unwrap().kind, FaultKind::DuplicateMessages);
        let delay = "delay-messages:200ms".parse::<Fault>().unwrap();
        assert_eq!(delay.kind, FaultKind::DelayMessages(Duration::from_millis(200)));
        assert!(delay.kind.is_setting());
        assert_eq!(delay.to_string(), "every saga publish delayed 200 ms");
        assert_eq!("kill:order#1@2+3s".parse::<Fault>().unwrap().to_string(), "kill order#1 at 2s, restart after 3s");
        assert_eq!(target("order", 1).status_name(), "order#1");
        assert_eq!(target("kafka", 0).status_name(), "kafka#0");
        assert_eq!("kill:kafka#2@1".parse::<Fault>().unwrap().to_string(), "kill kafka#2 at 1s");
        assert_eq!(target("redis", 0).status_name(), "redis");
        let spike = "latency:order->stock#0@2+3s=50ms±5ms".parse::<Fault>().unwrap();
        assert_eq!(
            spike,
            Fault {
                at: Duration::from_secs(2),
                kind: FaultKind::Latency {
                    link: "order->stock#0".into(),
                    duration: Duration::from_secs(3),
                    delay: Delay { rtt_ms: 50, jitter_ms: 5 }
                }
            }
        );
        assert_eq!(spike.to_string(), "order->stock#0 at 50ms±5ms round trip at 2s for 3s");
        let cut = "cut:stock->kafka#0@1.5+2".parse::<Fault>().unwrap();
        assert_eq!(cut.kind, FaultKind::Cut { link: "stock->kafka#0".into(), duration: Duration::from_secs(2) });
        assert_eq!(cut.kind.link(), Some("stock->kafka#0"));
        assert!(!cut.kind.is_setting());
        let reset = "reset:order->payment@3+500ms".parse::<Fault>().unwrap();
        assert_eq!(
            reset.kind,
            FaultKind::Reset { link: "order->payment".into(), duration: Duration::from_millis(500) }
        );
        assert_eq!(reset.to_string(), "reset order->payment at 3s for 0.5s");
        let slow = "bandwidth:gateway->order@1+2=50KB/s".parse::<Fault>().unwrap();
        assert_eq!(
            slow.kind,
            FaultKind::Bandwidth { link: "gateway->order".into(), duration: Duration::from_secs(2), rate_kbps: 50 }
        );
        assert_eq!(slow.kind.link(), Some("gateway->order"));
        assert_eq!(slow.to_string(), "gateway->order at 50 KB/s at 1s for 2s");
    }

    #[test]
    fn refuses_malformed_specs_with_a_reason() {
        for (spec, why) in [
            ("kill:order", "expected kill"),
            ("kill:nginx@1", "unknown component"),
            ("kill:redis#1@1", "no replicas"),
            ("kill:order#x@1", "not a number"),
            ("pause:order@1", "needs a duration"),
            ("pause:order@-1+2", "out of range"),
            ("crashpoint:BAD@1", "unknown crash point"),
            ("crashpoint:saga.relay.after_publsh@1", "unknown crash point"),
            ("crashpoint:saga.relay.after_publish@kafka@1", "unknown component"),
            ("explode:order@1", "unknown fault kind"),
            ("kill:order@soon", "not a duration"),
            ("delay-messages:90s", "above 60 s"),
            ("delay-messages", "expected <kind>"),
            ("cut:order->stock#0@1", "needs a duration"),
            ("cut:order->stock#0@1+0", "more than 0 s"),
            ("cut:order->stock#0@1+1h", "not a duration"),
            ("cut:order@1+2", "not a link"),
            ("latency:order->stock@1+2", "needs a round trip"),
            ("latency:order->stock@1+2=0.5ms", "whole milliseconds"),
            ("latency:order->stock", "expected latency"),
            ("reset:order->stock@1", "needs a duration"),
            ("reset:stock@1+2", "not a link"),
            ("bandwidth:order->stock@1+2", "needs a rate"),
            ("bandwidth:order->stock@1+2=0", "from 1 KB/s"),
            ("bandwidth:order->stock@1", "needs a rate"),
        ] {
            let err = spec.parse::<Fault>().unwrap_err();
            assert!(err.contains(why), "{spec}: {err}");
        }
    }
}
