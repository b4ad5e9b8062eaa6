//! Carrying out a fault schedule (`--fault`) during the load.
//!
//! The schedule's clock starts with the load phase, so `kill:kafka@3` means
//! three seconds into the checkouts whatever the data preparation took. Kills,
//! pauses and resumes go to the stack's supervisor (which owns the processes
//! and restarts a killed one after the requested hold, like any crash); crash
//! points are armed over the replica's own port; link faults go to the stack's
//! Toxiproxy server. Every action is recorded with its time, so the report can
//! mark it on the throughput timeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use protocol_core::ProtocolKind;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::faults::{Fault, FaultKind, Target};
use crate::stack::links::{self, Delay};
use crate::stack::{Control, Request, StackConfig};

/// One thing the injector did (or failed to do).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FaultEvent {
    /// Seconds from the start of the load.
    pub at_s: f64,
    /// What, in words (`kill kafka`, `resume order#0`, `kafka serving again`).
    pub what: String,
    /// `pid 1234`, `armed`, or why it was not applied.
    pub outcome: String,
    /// Whether it was applied.
    pub applied: bool,
    /// The pid a kill, pause or resume hit (a restarted process's, for
    /// "serving again").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// "Serving again": seconds from the kill until the component served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_after_s: Option<f64>,
    /// "Serving again": of those, the seconds the fault held it down on purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_s: Option<f64>,
}

impl FaultEvent {
    fn new(at_s: f64, what: String, outcome: String, applied: bool) -> Self {
        FaultEvent { at_s, what, outcome, applied, pid: None, back_after_s: None, held_s: None }
    }
}

/// Checks a schedule against the stack it will run on, before anything
/// starts: replicas and Kafka nodes that exist, crash points of the protocol
/// in use, message faults only for SAGA, link faults only on links the stack
/// has.
pub fn validate(faults: &[Fault], config: &StackConfig) -> anyhow::Result<()> {
    let (protocol, replicas, brokers) = (config.protocol, config.replicas, config.brokers);
    for fault in faults {
        let target = match &fault.kind {
            FaultKind::Kill { target, .. } | FaultKind::Pause { target, .. } => target,
            FaultKind::Crashpoint { point, target } => {
                if point.protocol != protocol {
                    bail!("fault {fault}: a {} crash point, and this stack runs {protocol}", point.protocol);
                }
                target
            }
            FaultKind::DuplicateMessages | FaultKind::DelayMessages(_) => {
                if protocol != ProtocolKind::Saga {
                    bail!("fault {fault}: message faults apply to the saga protocol only");
                }
                continue;
            }
            FaultKind::Latency { link, .. }
            | FaultKind::Cut { link, .. }
            | FaultKind::Reset { link, .. }
            | FaultKind::Bandwidth { link, .. } => {
                if config.links.is_none() {
                    bail!(
                        "fault {fault}: link faults need a stack with links (--links, --link-latency, --link or --link-bandwidth)"
                    );
                }
                links::check_selector(link, &links::links(config)).map_err(|e| e.context(format!("fault {fault}")))?;
                continue;
            }
        };
        if target.is_service() && target.replica >= replicas {
            bail!("fault {fault}: {} has replicas 0..{} only", target.component, replicas.saturating_sub(1));
        }
        if target.is_broker() && target.replica >= brokers {
            bail!("fault {fault}: the Kafka cluster has nodes 0..{} only (see --brokers)", brokers.saturating_sub(1));
        }
    }
    Ok(())
}

/// The stack's links, for link faults: the proxy's API and every link's name.
#[derive(Debug, Clone)]
pub struct Network {
    /// The Toxiproxy server.
    pub api: links::Api,
    /// Every link's name, which a fault's selector picks from.
    pub links: Vec<String>,
}

/// Runs a fault schedule against one stack.
#[derive(Debug)]
pub struct Injector {
    faults: Vec<Fault>,
    control: mpsc::UnboundedSender<Request>,
    /// Base URL of every service replica, by `stack.json` name (`order#0`).
    services: BTreeMap<String, String>,
    /// The links, on a stack that has them.
    network: Option<Network>,
}

impl Injector {
    /// An injector for `faults` (start-up settings among them are skipped:
    /// the stack was started with them) that reaches the supervisor through
    /// `control` and the replicas at `services`.
    pub fn new(faults: &[Fault], control: mpsc::UnboundedSender<Request>, services: BTreeMap<String, String>) -> Self {
        let faults = faults.iter().filter(|f| !f.kind.is_setting()).cloned().collect();
        Injector { faults, control, services, network: None }
    }

    /// The same, with the stack's links for its link faults.
    pub fn with_network(self, network: Option<Network>) -> Self {
        Injector { network, ..self }
    }

    /// Starts the schedule with its clock at `started`; the task ends when
    /// every fault (and every resume) was carried out.
    pub fn start(self, started: Instant) -> tokio::task::JoinHandle<Vec<FaultEvent>> {
        tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
            let tasks: Vec<_> = self
                .faults
                .into_iter()
                .map(|fault| {
                    let (control, services, http) = (self.control.clone(), self.services.clone(), http.clone());
                    let network = self.network.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until((started + fault.at).into()).await;
                        if fault.kind.link().is_some() {
                            return apply_to_links(&fault, started, network.as_ref()).await;
                        }
                        apply(&fault, started, &control, &services, &http).await
                    })
                })
                .collect();
            let mut events = Vec::new();
            for task in tasks {
                events.extend(task.await.unwrap_or_default());
            }
            events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
            events
        })
    }
}

async fn apply(
    fault: &Fault,
    started: Instant,
    control: &mpsc::UnboundedSender<Request>,
    services: &BTreeMap<String, String>,
    http: &reqwest::Client,
) -> Vec<FaultEvent> {
    let target_name = |t: &Target| t.status_name();
    match &fault.kind {
        FaultKind::Kill { target, restart_after } => {
            let hold = restart_after.unwrap_or_default();
            let what = format!("kill {target}");
            let killed =
                supervise(control, Control::Kill { component: target_name(target), hold }, what, started).await;
            let Some(pid) = killed.pid else { return vec![killed] };
            // How long the component itself was away: the floor under any
            // protocol's stall, shown next to the checkouts' latency.
            let serving = Control::AwaitServing { component: target_name(target), killed: pid };
            let mut back = supervise(control, serving, format!("{target} serving again"), started).await;
            if back.applied {
                let after = back.at_s - killed.at_s;
                back.outcome = format!(
                    "{}, {after:.2} s after the kill, {:.2} s of it held down",
                    back.outcome,
                    hold.as_secs_f64()
                );
                back.back_after_s = Some(after);
                back.held_s = Some(hold.as_secs_f64());
            }
            vec![killed, back]
        }
        FaultKind::Pause { target, duration } => {
            let pause = Control::Pause { component: target_name(target) };
            let first = supervise(control, pause, format!("pause {target}"), started).await;
            if !first.applied {
                return vec![first];
            }
            tokio::time::sleep(*duration).await;
            let resume = Control::Resume { component: target_name(target) };
            vec![first, supervise(control, resume, format!("resume {target}"), started).await]
        }
        FaultKind::Crashpoint { point, target } => {
            let name = point.name;
            let what = format!("crash point {name} on {target}");
            let at_s = started.elapsed().as_secs_f64();
            let (applied, outcome) = match services.get(&target_name(target)) {
                None => (false, format!("no replica {target}")),
                Some(url) => match http.post(format!("{url}{}", crate::api::path::crashpoint(name))).send().await {
                    Ok(resp) if resp.status().is_success() => (true, "armed".to_owned()),
                    Ok(resp) => (false, format!("status {}", resp.status())),
                    Err(err) => (false, err.to_string()),
                },
            };
            log(&what, &outcome, applied);
            vec![FaultEvent::new(at_s, what, outcome, applied)]
        }
        FaultKind::DuplicateMessages
        | FaultKind::DelayMessages(_)
        | FaultKind::Latency { .. }
        | FaultKind::Cut { .. }
        | FaultKind::Reset { .. }
        | FaultKind::Bandwidth { .. } => Vec::new(),
    }
}

/// Carries out a link fault on every link it selects, and undoes it after its
/// duration: a spike or a bandwidth limit gives each link its own setting back
/// (as read before the fault), a cut lets the held bytes through, a reset
/// lets new connections live again.
async fn apply_to_links(fault: &Fault, started: Instant, network: Option<&Network>) -> Vec<FaultEvent> {
    let at = || started.elapsed().as_secs_f64();
    let Some(network) = network else {
        let what = fault.to_string();
        log(&what, "the stack has no links", false);
        return vec![FaultEvent::new(at(), what, "the stack has no links".to_owned(), false)];
    };
    let selector = fault.kind.link().unwrap_or_default();
    let chosen: Vec<&String> = network.links.iter().filter(|l| links::selects(selector, l)).collect();
    // Each link's own settings, for a fault that gives them back afterwards.
    let before: BTreeMap<String, links::LinkState> =
        if matches!(fault.kind, FaultKind::Latency { .. } | FaultKind::Bandwidth { .. }) {
            match network.api.links().await {
                Ok(states) => states.into_iter().map(|l| (l.name.clone(), l)).collect(),
                Err(err) => {
                    let (what, why) = (fault.to_string(), format!("{err:#}"));
                    log(&what, &why, false);
                    return vec![FaultEvent::new(at(), what, why, false)];
                }
            }
        } else {
            BTreeMap::new()
        };
    let mut events = Vec::new();
    match &fault.kind {
        FaultKind::Latency { duration, delay, .. } => {
            for link in &chosen {
                let what = format!("{link} at {delay} round trip");
                events.push(link_event(at(), what, network.api.set_delay(link, *delay).await));
            }
            tokio::time::sleep(*duration).await;
            for link in &chosen {
                let own = before.get(link.as_str()).map_or(Delay::NONE, |l| l.delay);
                let what = format!("{link} back to {own} round trip");
                events.push(link_event(at(), what, network.api.set_delay(link, own).await));
            }
        }
        FaultKind::Cut { duration, .. } => {
            for link in &chosen {
                events.push(link_event(at(), format!("cut {link}"), network.api.set_cut(link, true).await));
            }
            tokio::time::sleep(*duration).await;
            for link in &chosen {
                events.push(link_event(at(), format!("heal {link}"), network.api.set_cut(link, false).await));
            }
        }
        FaultKind::Reset { duration, .. } => {
            for link in &chosen {
                events.push(link_event(at(), format!("reset {link}"), network.api.set_reset(link, true).await));
            }
            tokio::time::sleep(*duration).await;
            for link in &chosen {
                let what = format!("stop resetting {link}");
                events.push(link_event(at(), what, network.api.set_reset(link, false).await));
            }
        }
        FaultKind::Bandwidth { duration, rate_kbps, .. } => {
            for link in &chosen {
                let what = format!("{link} at {rate_kbps} KB/s");
                events.push(link_event(at(), what, network.api.set_bandwidth(link, Some(*rate_kbps)).await));
            }
            tokio::time::sleep(*duration).await;
            for link in &chosen {
                let own = before.get(link.as_str()).and_then(|l| l.bandwidth_kbps);
                let what = match own {
                    Some(rate) => format!("{link} back to {rate} KB/s"),
                    None => format!("{link} back to unlimited"),
                };
                events.push(link_event(at(), what, network.api.set_bandwidth(link, own).await));
            }
        }
        _ => {}
    }
    events
}

fn link_event(at_s: f64, what: String, result: anyhow::Result<()>) -> FaultEvent {
    let (applied, outcome) = match result {
        Ok(()) => (true, "set".to_owned()),
        Err(err) => (false, format!("{err:#}")),
    };
    log(&what, &outcome, applied);
    FaultEvent::new(at_s, what, outcome, applied)
}

async fn supervise(
    control: &mpsc::UnboundedSender<Request>,
    what_to_do: Control,
    what: String,
    started: Instant,
) -> FaultEvent {
    let mut at_s = started.elapsed().as_secs_f64();
    // A signal takes effect when sent; "serving again" happens when answered.
    let when_answered = matches!(what_to_do, Control::AwaitServing { .. });
    let (reply, answer) = oneshot::channel();
    let result = match control.send(Request { control: what_to_do, reply }) {
        Ok(()) => answer.await.unwrap_or_else(|_| Err("the supervisor stopped".to_owned())),
        Err(_) => Err("the supervisor stopped".to_owned()),
    };
    if when_answered {
        at_s = started.elapsed().as_secs_f64();
    }
    let (applied, outcome, pid) = match result {
        Ok(pid) => (true, format!("pid {pid}"), Some(pid)),
        Err(why) => (false, why, None),
    };
    log(&what, &outcome, applied);
    FaultEvent { pid, ..FaultEvent::new(at_s, what, outcome, applied) }
}

fn log(what: &str, outcome: &str, applied: bool) {
    if applied {
        tracing::info!(fault = %what, %outcome, "fault injected");
    } else {
        tracing::warn!(fault = %what, %outcome, "fault not applied");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(specs: &[&str]) -> Vec<Fault> {
        specs.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn stack(protocol: ProtocolKind, replicas: u16, brokers: u16) -> StackConfig {
        StackConfig { protocol, replicas, brokers, ..StackConfig::example() }
    }

    #[test]
    fn validation_knows_the_stack() {
        use ProtocolKind::{Saga, TwoPc};
        assert!(validate(&faults(&["kill:order#1@1", "kill:kafka@2+3"]), &stack(Saga, 2, 1)).is_ok());
        assert!(validate(&faults(&["kill:kafka#2@2"]), &stack(Saga, 1, 3)).is_ok());
        let err = validate(&faults(&["kill:kafka#1@1"]), &stack(Saga, 2, 1)).unwrap_err();
        assert!(err.to_string().contains("nodes 0..0"), "{err}");
        let err = validate(&faults(&["kill:order#2@1"]), &stack(Saga, 2, 1)).unwrap_err();
        assert!(err.to_string().contains("replicas 0..1"), "{err}");
        let err = validate(&faults(&["crashpoint:saga.relay.after_publish@1"]), &stack(TwoPc, 1, 1)).unwrap_err();
        assert!(err.to_string().contains("a saga crash point, and this stack runs 2pc"), "{err}");
        let err = validate(&faults(&["duplicate-messages"]), &stack(TwoPc, 1, 1)).unwrap_err();
        assert!(err.to_string().contains("saga protocol only"), "{err}");
        assert!(validate(&faults(&["duplicate-messages", "delay-messages:50ms"]), &stack(Saga, 1, 1)).is_ok());
    }

    #[test]
    fn link_faults_need_links_the_stack_has() {
        let cut = faults(&["cut:order->stock#1@1+2"]);
        let err = validate(&cut, &stack(ProtocolKind::TwoPc, 2, 1)).unwrap_err();
        assert!(err.to_string().contains("need a stack with links"), "{err}");
        let linked = |protocol| StackConfig { links: Some(links::Network::default()), ..stack(protocol, 2, 1) };
        assert!(validate(&cut, &linked(ProtocolKind::TwoPc)).is_ok());
        let spike = faults(&["latency:stock->kafka@1+2=20ms"]);
        assert!(validate(&spike, &linked(ProtocolKind::Saga)).is_ok());
        let err = validate(&spike, &linked(ProtocolKind::TwoPc)).unwrap_err();
        assert!(format!("{err:#}").contains("no link \"stock->kafka\""), "{err:#}");
        let err = validate(&faults(&["cut:order->stock#2@1+2"]), &linked(ProtocolKind::TwoPc)).unwrap_err();
        assert!(format!("{err:#}").contains("no link"), "{err:#}");
        let reset = faults(&["reset:order->payment@1+2", "bandwidth:gateway->order@1+2=10"]);
        assert!(validate(&reset, &linked(ProtocolKind::TwoPc)).is_ok());
        let err = validate(&reset, &stack(ProtocolKind::TwoPc, 2, 1)).unwrap_err();
        assert!(err.to_string().contains("need a stack with links"), "{err}");
        let err = validate(&faults(&["bandwidth:payment->kafka@1+2=10"]), &linked(ProtocolKind::TwoPc)).unwrap_err();
        assert!(format!("{err:#}").contains("no link \"payment->kafka\""), "{err:#}");
    }

    #[tokio::test]
    async fn sends_each_fault_to_the_supervisor_on_time() {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
        let supervisor = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(Request { control, reply }) = rx.recv().await {
                if let Control::AwaitServing { .. } = control {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _ = reply.send(Ok(8));
                    });
                } else {
                    let _ = reply.send(if control.component() == "redis" { Err("down".into()) } else { Ok(7) });
                }
                seen.push(control);
            }
            seen
        });
        let schedule = faults(&["pause:stock@50ms+50ms", "kill:order@0+1s", "kill:redis@10ms", "duplicate-messages"]);
        let events = Injector::new(&schedule, tx, BTreeMap::new()).start(Instant::now()).await.unwrap();
        let seen = supervisor.await.unwrap();
        let whats: Vec<_> = events.iter().map(|e| (e.what.as_str(), e.applied)).collect();
        assert_eq!(
            whats,
            [
                ("kill order#0", true),
                ("kill redis", false),
                ("order#0 serving again", true),
                ("pause stock#0", true),
                ("resume stock#0", true)
            ]
        );
        assert!(events[4].at_s >= 0.1, "resumed after the pause: {:?}", events[4]);
        assert!(events[2].outcome.starts_with("pid 8, "), "{:?}", events[2]);
        assert_eq!((events[2].pid, events[2].held_s), (Some(8), Some(1.0)), "{:?}", events[2]);
        assert!(events[2].back_after_s.is_some_and(|s| s >= 0.02), "{:?}", events[2]);
        assert_eq!((events[0].pid, events[0].back_after_s), (Some(7), None));
        assert!(seen.contains(&Control::AwaitServing { component: "order#0".into(), killed: 7 }));
        assert!(seen.contains(&Control::Kill { component: "order#0".into(), hold: Duration::from_secs(1) }));
        assert!(seen.contains(&Control::Resume { component: "stock#0".into() }));
    }
}
