//! What `harness compare` runs: the contenders and the cases, for the full
//! comparison (three rounds of timed, steady-state samples, the fault cases
//! spread over them, and the three-node and distance stacks), `--quick` (for
//! CI), `--plan distance` (the distance sweep alone), `--plan 2pc-strategies`
//! (2PC's prepare orders against each other) and `--plan kafka-profiles` (the
//! saga's Kafka client profiles against each other). The README gives each
//! plan's duration as last measured.

use std::time::Duration;

use protocol_core::ProtocolKind;
use serde::{Deserialize, Serialize};

use crate::run::faults::Fault;
use crate::run::{RunSpec, Workload};
use crate::stack::links::Delay;

/// One protocol configuration being compared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contender {
    /// Short name in tables and charts.
    pub name: String,
    /// The protocol.
    #[serde(with = "crate::text")]
    pub protocol: ProtocolKind,
    /// SAGA mode (ignored by 2PC).
    #[serde(with = "crate::text")]
    pub saga_mode: saga::Mode,
    /// 2PC prepare order (ignored by the SAGA).
    #[serde(with = "crate::text")]
    pub twopc_order: twopc::PrepareOrder,
    /// SAGA: the Kafka client profile, if not the one `harness compare` was
    /// given (`--kafka-profile`).
    #[serde(with = "crate::text::opt")]
    pub kafka_profile: Option<saga::Profile>,
}

/// The contenders, in the order they are declared (and shown); each round
/// runs them in an order drawn for it ([`Plan::ordered`]).
pub fn contenders() -> Vec<Contender> {
    vec![saga(saga::Mode::Sequential), two_pc("2pc", twopc::PrepareOrder::default()), saga(saga::Mode::Parallel)]
}

fn saga(mode: saga::Mode) -> Contender {
    let name = match mode {
        saga::Mode::Sequential => "saga-seq",
        saga::Mode::Parallel => "saga-par",
    };
    Contender {
        name: name.to_owned(),
        protocol: ProtocolKind::Saga,
        saga_mode: mode,
        twopc_order: twopc::PrepareOrder::default(),
        kafka_profile: None,
    }
}

fn two_pc(name: &str, order: twopc::PrepareOrder) -> Contender {
    Contender {
        name: name.to_owned(),
        protocol: ProtocolKind::TwoPc,
        saga_mode: saga::Mode::default(),
        twopc_order: order,
        kafka_profile: None,
    }
}

impl Contender {
    /// One line for the report: what this contender runs.
    pub fn description(&self) -> String {
        let profile =
            self.kafka_profile.map(|p| format!(", Kafka client profile `{p}` ({})", p.describe())).unwrap_or_default();
        match (self.protocol, self.saga_mode) {
            (ProtocolKind::Saga, saga::Mode::Sequential) => format!("SAGA over Kafka, stock then payment{profile}"),
            (ProtocolKind::Saga, saga::Mode::Parallel) => format!("SAGA over Kafka, both steps at once{profile}"),
            (ProtocolKind::TwoPc, _) => format!(
                "two-phase commit over PostgreSQL prepared transactions, prepares {}",
                match self.twopc_order {
                    twopc::PrepareOrder::Parallel => "both at once",
                    twopc::PrepareOrder::StockFirst => "stock then payment",
                    twopc::PrepareOrder::PaymentFirst => "payment then stock",
                }
            ),
        }
    }
}

/// How a case's results are presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// The headline stress run: throughput and latency percentiles, CDF.
    Stress,
    /// Stress at several client counts: throughput against concurrency.
    Concurrency,
    /// Hot-item at several skews: throughput and aborts against contention.
    Skew,
    /// The course consistency test: the four counts.
    Course,
    /// Stress with one component killed or paused: timeline, recovery.
    Fault,
    /// A case repeated on a three-node Kafka cluster: what replication costs.
    Replication,
    /// Uniform stress with every link adding a round trip: throughput and
    /// latency against distance.
    Distance,
    /// The hot item with every link adding a round trip: contention against
    /// distance, where 2PC's locks are held across the round trips.
    DistanceHotItem,
}

/// One workload configuration, run by every contender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// Unique id (`stress`, `clients-8`, `kill-kafka`).
    pub id: String,
    /// Presentation group.
    pub group: Group,
    /// The swept parameter (clients, skew) for sweep groups.
    pub x: Option<f64>,
    /// What `harness run` does for it.
    pub spec: RunSpec,
    /// Faults injected during its load.
    #[serde(with = "crate::run::faults::as_specs")]
    pub faults: Vec<Fault>,
    /// Run in this round only (0-based), instead of in every round `repeats`
    /// times: the fault cases (their numbers describe recovery, not steady
    /// state), spread over the rounds so that each round's contenders, in
    /// that round's drawn order, take a share of them; the cases of a stack of
    /// their own (three brokers, links), which starts in the first round only.
    pub round: Option<usize>,
    /// With `round`: how many times the case runs on its stack, in passes
    /// over every such case of the stack, each pass in an order drawn from
    /// the plan's seed ([`RoundOrder::passes`]); ratios pair the passes
    /// ([`Case::key`]). 1 for a case run once.
    pub passes: usize,
    /// Nodes of the Kafka cluster the case runs on, if not the compare's own
    /// (`--brokers`): such cases run on a stack of their own, after the others.
    pub brokers: Option<u16>,
    /// The case this one repeats on another cluster (replication cases).
    pub mirrors: Option<String>,
    /// The round trip every link adds, for a case run between components set
    /// apart (`harness up --links`): such cases run on a stack with links, of
    /// their own, after the others; the delay is set before each case.
    #[serde(with = "crate::text::opt", default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<Delay>,
}

/// What a stack of the compare is: its Kafka cluster, and whether its
/// components talk through links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Nodes of the Kafka cluster.
    pub brokers: u16,
    /// Whether every connection runs through a link (the distance cases).
    pub links: bool,
}

impl Group {
    /// Whether the group's figures are steady-state performance (throughput
    /// and latency compared across contenders), to which the steady-state
    /// rule applies; faults and the course test are not.
    pub fn is_performance(self) -> bool {
        !matches!(self, Group::Course | Group::Fault)
    }
}

impl Case {
    /// Where a sample of this case sits for the paired ratios
    /// ([`crate::report::stats::Ratio::paired`]): its round and repeat, or,
    /// for a case run in passes on one stack, its pass as the unit (each
    /// contender's pass `i` ran at the same position of the same drawn
    /// order).
    pub fn key(&self, round: usize, repeat: usize) -> crate::report::stats::Key {
        if self.passes > 1 { (repeat, 0) } else { (round, repeat) }
    }

    /// How many samples of this case a contender records in round `round`.
    pub fn runs_in(&self, round: usize, repeats: usize) -> usize {
        match self.round {
            Some(r) if r == round => self.passes.max(1),
            Some(_) => 0,
            None => repeats,
        }
    }

    /// The stack this case runs on, `default` being the compare's own cluster.
    pub fn layout(&self, default: u16) -> Layout {
        Layout { brokers: self.brokers.unwrap_or(default), links: self.distance.is_some() }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// `full` or `quick`.
    pub name: String,
    /// Rounds; each starts a fresh stack per contender.
    pub rounds: usize,
    /// Back-to-back repeats of a case within one stack.
    pub repeats: usize,
    /// Not recorded; run first on every stack until its throughput is
    /// steady ([`crate::run::local::LocalStack::warm_up`]).
    pub warmup: RunSpec,
    /// The least load time of the warm-up.
    pub warmup_at_least: Duration,
    /// Who.
    pub contenders: Vec<Contender>,
    /// What.
    pub cases: Vec<Case>,
    /// The contenders' order in each round ([`Plan::ordered`]).
    pub order: RoundOrder,
    /// For a plan that sweeps one setting: the contender running the
    /// setting's default, whose report says whether it won clearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The order the contenders run in, round by round: drawn from `seed`, so a
/// run can be repeated in the same order, and balanced, so no contender
/// always runs first or last while the machine drifts. Each block of as many
/// rounds as there are contenders is a Latin square (every contender takes
/// every position once) over a base order drawn anew for the block, and its
/// rows come in a drawn order. Recorded in `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundOrder {
    /// What the orders were drawn from (`harness compare --order-seed`).
    pub seed: u64,
    /// Per round, the contenders' names in the order they ran.
    pub rounds: Vec<Vec<String>>,
    /// Per pass of the cases run in passes ([`Case::passes`]), their ids in
    /// the order each contender's stack ran them.
    pub passes: Vec<Vec<String>>,
}

impl RoundOrder {
    /// Balanced orders of `contenders` over `rounds` rounds, drawn from `seed`.
    pub fn balanced(contenders: &[&str], rounds: usize, seed: u64) -> RoundOrder {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let k = contenders.len();
        let mut out: Vec<Vec<String>> = Vec::with_capacity(rounds);
        while out.len() < rounds && k > 0 {
            let mut base = contenders.to_vec();
            base.shuffle(&mut rng);
            let mut rows: Vec<usize> = (0..k).collect();
            rows.shuffle(&mut rng);
            for shift in rows.into_iter().take(rounds - out.len()) {
                out.push((0..k).map(|i| base[(i + shift) % k].to_owned()).collect());
            }
        }
        RoundOrder { seed, rounds: out, passes: Vec::new() }
    }
}

/// Stress over batch-initialised data: 2000 orders of two items out of
/// 1000, 1000 users, repeats included (the course's sizes are 100k each; a
/// tenth of that keeps set-up short and contention low all the same).
fn stress(checkouts: u64, concurrency: usize, seed: u64) -> RunSpec {
    RunSpec {
        workload: Workload::Stress,
        concurrency,
        rate: None,
        skew: 0.0,
        checkouts,
        duration: None,
        orders: 2_000,
        items: 1_000,
        users: 1_000,
        stock: 1_000,
        credit: 100,
        price: 1,
        seed,
    }
}

/// The load of every performance sample (stress, concurrency, contention):
/// long enough that per-second noise averages out and the steady-state rule
/// ([`crate::compare::sample::HALVES_WITHIN`]) can be checked on its halves;
/// after the stack's warm-up, so none of it is start-up.
pub const SAMPLE_LOAD: Duration = Duration::from_secs(10);

/// The load of a distance sample: shorter, since the sweep takes three
/// passes over six points per contender on a stack of its own.
pub const DISTANCE_LOAD: Duration = Duration::from_secs(5);

/// Stress for `load`, over a plan longer than any contender gets through in
/// that time (about 1000 checkouts/s at most on 2 cores), with as many fresh
/// orders as its first checkouts need, so its mix stays the same to the end.
fn timed_stress(clients: usize, seed: u64, load: Duration) -> RunSpec {
    RunSpec { duration: Some(load), orders: 12_000, ..stress(15_000, clients, seed) }
}

/// The hot item for `load`: orders created through the API, as many as the
/// fastest contender checks out in that time, and stock for every one of
/// them, so that what bounds it is the hot row's lock, not a sell-out halfway
/// (the course test is where stock runs out).
fn timed_hot_item(skew: f64, load: Duration) -> RunSpec {
    RunSpec { duration: Some(load), orders: 5_000, stock: 10_000, ..hot_item(skew, 6_600) }
}

/// One warm-up round: stress at the headline concurrency over its own data,
/// 5000 checkouts of as many orders (5-15 s a round).
fn warm_up() -> RunSpec {
    RunSpec { orders: 5_000, ..stress(5_000, 32, 99) }
}

use crate::timeouts::WARM_UP_AT_LEAST;

fn hot_item(skew: f64, checkouts: u64) -> RunSpec {
    RunSpec {
        workload: Workload::HotItem,
        skew,
        orders: checkouts as i64,
        items: 100,
        // Scarce on purpose: the hot item runs out, so refusals (and the
        // compensations they cost a saga) are part of the picture.
        stock: 200,
        ..stress(checkouts, 32, 11)
    }
}

fn course() -> RunSpec {
    RunSpec { workload: Workload::WdmConsistency, ..stress(1_000, 100, 5) }.normalised()
}

fn case(id: impl Into<String>, group: Group, x: Option<f64>, spec: RunSpec) -> Case {
    Case {
        id: id.into(),
        group,
        x,
        spec,
        faults: Vec::new(),
        round: None,
        passes: 1,
        brokers: None,
        mirrors: None,
        distance: None,
    }
}

/// The round trips the distance sweep adds on every link, in milliseconds:
/// loopback through the proxy, across zones (Toxiproxy delays in whole
/// milliseconds), and a nearby region.
pub const DISTANCES_MS: [u32; 3] = [0, 2, 5];

/// Passes over the distance sweep: three samples per point and contender.
pub const DISTANCE_PASSES: usize = 3;

/// Uniform stress and the hot item at every distance of [`DISTANCES_MS`], in
/// the first round on a stack with links, in [`DISTANCE_PASSES`] passes in
/// drawn orders.
fn distance_sweep() -> Vec<Case> {
    let mut cases = Vec::new();
    for rtt_ms in DISTANCES_MS {
        let distance = Some(Delay { rtt_ms, jitter_ms: 0 });
        let x = Some(f64::from(rtt_ms));
        let at = |id: String, group, spec| Case {
            round: Some(0),
            passes: DISTANCE_PASSES,
            distance,
            ..case(id, group, x, spec)
        };
        cases.push(at(format!("distance-stress-{rtt_ms}ms"), Group::Distance, timed_stress(32, 3, DISTANCE_LOAD)));
        let hot = RunSpec { orders: 2_000, ..timed_hot_item(0.5, DISTANCE_LOAD) };
        cases.push(at(format!("distance-hot-item-{rtt_ms}ms"), Group::DistanceHotItem, hot));
    }
    cases
}

/// Stress in an open loop at `rate` checkouts/s with one fault. The same
/// offered load for every contender, for the same time, however fast replies
/// fail while a process is down (a closed loop would race through its plan on
/// instant 502s and end before the recovery).
fn fault_case(id: &str, checkouts: u64, rate: f64, spec: &str) -> Case {
    Case {
        faults: vec![spec.parse().unwrap_or_else(|e| panic!("built-in fault {spec}: {e}"))],
        round: Some(0),
        ..case(id, Group::Fault, None, RunSpec { rate: Some(rate), ..stress(checkouts, 32, 17) })
    }
}

/// Nodes of the replicated Kafka cluster: three, as production runs it.
pub const REPLICATED_BROKERS: u16 = 3;

/// The cases `mirrored` again on a cluster of [`REPLICATED_BROKERS`] nodes
/// (every topic with three copies, two in sync), in every round on a stack of
/// their own, and a stress with one node killed (`kill`, its hold as the
/// one-node kill's), once: what replication costs in steady state, paired
/// round by round with the one-node case, and what it buys when a broker dies.
fn replicated(cases: &[Case], mirrored: &[&str], kill: &str) -> Vec<Case> {
    let suffix = format!("-{REPLICATED_BROKERS}-brokers");
    let mut out: Vec<Case> = mirrored
        .iter()
        .filter_map(|id| cases.iter().find(|c| c.id == *id))
        .map(|base| Case {
            id: format!("{}{suffix}", base.id),
            group: Group::Replication,
            brokers: Some(REPLICATED_BROKERS),
            mirrors: Some(base.id.clone()),
            ..base.clone()
        })
        .collect();
    out.push(Case {
        brokers: Some(REPLICATED_BROKERS),
        ..fault_case(&format!("kill-kafka-1-of-{REPLICATED_BROKERS}"), 600, 60.0, kill)
    });
    out
}

/// The contender name of the saga with Kafka client profile `profile`.
fn profile_contender(profile: saga::Profile) -> &'static str {
    match profile {
        saga::Profile::Defaults => "saga-seq-defaults",
        saga::Profile::NoLinger => "saga-seq-no-linger",
        saga::Profile::LowLatency => "saga-seq-low-latency",
    }
}

/// The contender name of 2PC with prepare order `order`.
fn order_contender(order: twopc::PrepareOrder) -> &'static str {
    match order {
        twopc::PrepareOrder::Parallel => "2pc-parallel",
        twopc::PrepareOrder::StockFirst => "2pc-stock-first",
        twopc::PrepareOrder::PaymentFirst => "2pc-payment-first",
    }
}

impl Plan {
    /// The full comparison.
    pub fn full() -> Plan {
        const ROUNDS: usize = 3;
        let mut cases = vec![case("stress", Group::Stress, Some(32.0), timed_stress(32, 1, SAMPLE_LOAD))];
        for clients in [1, 8] {
            let spec = timed_stress(clients, 2, SAMPLE_LOAD);
            cases.push(case(format!("clients-{clients}"), Group::Concurrency, Some(clients as f64), spec));
        }
        for skew in [0.1, 0.5, 0.9] {
            cases.push(case(format!("hot-item-{skew}"), Group::Skew, Some(skew), timed_hot_item(skew, SAMPLE_LOAD)));
        }
        // The course test is a correctness check first: once per contender.
        cases.push(Case { round: Some(0), ..case("wdm-consistency", Group::Course, None, course()) });
        // Every single component, killed 3 s into a 10 s load (restarted at
        // once; Kafka held down 2 s), and a paused participant.
        for component in
            ["order", "stock", "payment", "postgres-order", "postgres-stock", "postgres-payment", "kafka", "redis"]
        {
            let hold = if component == "kafka" { "+2s" } else { "" };
            cases.push(fault_case(&format!("kill-{component}"), 600, 60.0, &format!("kill:{component}@3{hold}")));
        }
        cases.push(fault_case("pause-payment", 600, 60.0, "pause:payment@3+3s"));
        // Spread over the rounds: each round's drawn order runs its share.
        for (i, fault) in cases.iter_mut().filter(|c| c.group == Group::Fault).enumerate() {
            fault.round = Some(i % ROUNDS);
        }
        cases.extend(distance_sweep());
        Plan {
            name: "full".to_owned(),
            rounds: ROUNDS,
            repeats: 1,
            warmup: warm_up(),
            warmup_at_least: WARM_UP_AT_LEAST,
            order: RoundOrder::default(),
            default: None,
            contenders: contenders(),
            cases,
        }
    }

    /// The CI-sized comparison: one round, three back-to-back repeats, the
    /// course test and one database kill.
    pub fn quick() -> Plan {
        let cases = vec![
            case("stress", Group::Stress, Some(32.0), stress(800, 32, 1)),
            Case { round: Some(0), ..case("wdm-consistency", Group::Course, None, course()) },
            fault_case("kill-postgres-stock", 600, 60.0, "kill:postgres-stock@3"),
        ];
        // Half the warm-up, in shorter rounds: the CI-sized run checks that
        // everything works, its numbers are not the verdict.
        Plan {
            name: "quick".to_owned(),
            rounds: 1,
            repeats: 3,
            warmup: RunSpec { orders: 2_000, ..stress(2_000, 32, 99) },
            warmup_at_least: WARM_UP_AT_LEAST / 2,
            order: RoundOrder::default(),
            default: None,
            contenders: contenders(),
            cases,
        }
    }

    /// What a replicated Kafka cluster costs and buys: stress and one client
    /// on the compare's own cluster and on [`REPLICATED_BROKERS`] nodes, in
    /// every round (so each contender's three-node figure pairs with its
    /// one-node figure of the same round), one broker of three killed, and
    /// the course test. Its own plan: two stacks per contender and round.
    pub fn replication() -> Plan {
        let mut cases = vec![
            case("stress", Group::Stress, Some(32.0), timed_stress(32, 1, SAMPLE_LOAD)),
            case("clients-1", Group::Concurrency, Some(1.0), timed_stress(1, 2, SAMPLE_LOAD)),
            Case { round: Some(0), ..case("wdm-consistency", Group::Course, None, course()) },
        ];
        cases.extend(replicated(&cases, &["stress", "clients-1"], "kill:kafka#1@3+2s"));
        Plan {
            name: "replication".to_owned(),
            rounds: 3,
            repeats: 1,
            warmup: warm_up(),
            warmup_at_least: WARM_UP_AT_LEAST,
            order: RoundOrder::default(),
            default: None,
            contenders: contenders(),
            cases,
        }
    }

    /// The distance sweep alone, with the course test (on the compare's own
    /// stack) as the correctness check every plan has.
    pub fn distance() -> Plan {
        let mut cases = vec![Case { round: Some(0), ..case("wdm-consistency", Group::Course, None, course()) }];
        cases.extend(distance_sweep());
        Plan {
            name: "distance".to_owned(),
            rounds: 1,
            repeats: 1,
            warmup: warm_up(),
            warmup_at_least: WARM_UP_AT_LEAST,
            order: RoundOrder::default(),
            default: None,
            contenders: contenders(),
            cases,
        }
    }

    /// 2PC's prepare orders against each other, on the cases where they
    /// differ: latency alone, throughput, contention, the course test.
    pub fn twopc_strategies() -> Plan {
        use twopc::PrepareOrder::{Parallel, PaymentFirst, StockFirst};
        let mut cases = vec![
            case("stress", Group::Stress, Some(32.0), timed_stress(32, 1, SAMPLE_LOAD)),
            case("clients-1", Group::Concurrency, Some(1.0), timed_stress(1, 2, SAMPLE_LOAD)),
        ];
        for skew in [0.1, 0.5, 0.9] {
            cases.push(case(format!("hot-item-{skew}"), Group::Skew, Some(skew), timed_hot_item(skew, SAMPLE_LOAD)));
        }
        cases.push(Case { round: Some(0), ..case("wdm-consistency", Group::Course, None, course()) });
        let contenders = [Parallel, StockFirst, PaymentFirst].map(|o| two_pc(order_contender(o), o)).to_vec();
        Plan {
            name: "2pc-strategies".to_owned(),
            rounds: 3,
            repeats: 1,
            warmup: warm_up(),
            warmup_at_least: WARM_UP_AT_LEAST,
            order: RoundOrder::default(),
            default: Some(order_contender(twopc::PrepareOrder::default()).to_owned()),
            contenders,
            cases,
        }
    }

    /// The saga's Kafka client profiles against each other, where they pull
    /// apart: latency at one client, throughput at 8 and 32. The sweep the
    /// default profile (`low-latency`) was chosen from. Three rounds, so that
    /// each ratio has an interval.
    pub fn kafka_profiles() -> Plan {
        let mut cases = Vec::new();
        for clients in [1, 8, 32] {
            let group = if clients == 32 { Group::Stress } else { Group::Concurrency };
            let id = if clients == 32 { "stress".to_owned() } else { format!("clients-{clients}") };
            cases.push(case(id, group, Some(clients as f64), timed_stress(clients, 2, SAMPLE_LOAD)));
        }
        cases.push(Case { round: Some(0), ..case("wdm-consistency", Group::Course, None, course()) });
        let contenders = saga::kafka::PROFILES
            .into_iter()
            .map(|profile| Contender {
                name: profile_contender(profile).to_owned(),
                kafka_profile: Some(profile),
                ..saga(saga::Mode::Sequential)
            })
            .collect();
        Plan {
            name: "kafka-profiles".to_owned(),
            default: Some(profile_contender(saga::Profile::default()).to_owned()),
            rounds: 3,
            repeats: 1,
            warmup: warm_up(),
            warmup_at_least: WARM_UP_AT_LEAST,
            order: RoundOrder::default(),
            contenders,
            cases,
        }
    }

    /// The plan called `name` (`full`, `quick`, `2pc-strategies`, `kafka-profiles`).
    pub fn named(name: &str) -> Option<Plan> {
        match name {
            "full" => Some(Plan::full()),
            "quick" => Some(Plan::quick()),
            "distance" => Some(Plan::distance()),
            "replication" => Some(Plan::replication()),
            "2pc-strategies" => Some(Plan::twopc_strategies()),
            "kafka-profiles" => Some(Plan::kafka_profiles()),
            _ => None,
        }
    }

    /// How to ask for this plan on the command line, after `harness compare`.
    pub fn flag(&self) -> String {
        match self.name.as_str() {
            "full" => String::new(),
            "quick" => " --quick".to_owned(),
            other => format!(" --plan {other}"),
        }
    }

    /// The stacks round `round` needs, in the order they run: the compare's
    /// own cluster (`default`) first, then the clusters cases name, then the
    /// stacks with links.
    pub fn layouts(&self, round: usize, default: u16) -> Vec<Layout> {
        let mut layouts = vec![Layout { brokers: default, links: false }];
        let mut named: Vec<Layout> = self.cases_of(round).map(|c| c.layout(default)).collect();
        named.sort_by_key(|l| l.links);
        for layout in named {
            if !layouts.contains(&layout) {
                layouts.push(layout);
            }
        }
        layouts
    }

    /// This plan with its contenders' order drawn from `seed`
    /// ([`RoundOrder::balanced`]).
    pub fn ordered(mut self, seed: u64) -> Plan {
        let names: Vec<&str> = self.contenders.iter().map(|c| c.name.as_str()).collect();
        self.order = RoundOrder::balanced(&names, self.rounds, seed);
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1));
        let passes = self.cases.iter().map(|c| c.passes).max().unwrap_or(1);
        if passes > 1 {
            for pass in 0..passes {
                let mut ids: Vec<String> =
                    self.cases.iter().filter(|c| c.passes > 1 && pass < c.passes).map(|c| c.id.clone()).collect();
                ids.shuffle(&mut rng);
                self.order.passes.push(ids);
            }
        }
        self
    }

    /// The contenders in the order they run in round `round` (0-based): as
    /// drawn ([`Plan::ordered`]), or as declared for a plan not ordered.
    pub fn contenders_in(&self, round: usize) -> Vec<&Contender> {
        match self.order.rounds.get(round) {
            Some(names) => names.iter().filter_map(|n| self.contenders.iter().find(|c| c.name == *n)).collect(),
            None => self.contenders.iter().collect(),
        }
    }

    /// The cases of round `round` (0-based).
    pub fn cases_of(&self, round: usize) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(move |c| c.runs_in(round, self.repeats) > 0)
    }

    /// How many recorded runs the plan makes (for the progress bar).
    pub fn run_count(&self) -> usize {
        let per_contender: usize =
            (0..self.rounds).flat_map(|round| self.cases.iter().map(move |c| c.runs_in(round, self.repeats))).sum();
        per_contender * self.contenders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_orders_are_drawn_balanced_and_repeatable() {
        let names = ["a", "b", "c"];
        let order = RoundOrder::balanced(&names, 6, 7);
        assert_eq!(order, RoundOrder::balanced(&names, 6, 7), "the same seed draws the same orders");
        assert_eq!(order.rounds.len(), 6);
        // Each block of three rounds puts every contender in every position once.
        for block in order.rounds.chunks(3) {
            for position in 0..3 {
                let mut at: Vec<&str> = block.iter().map(|row| row[position].as_str()).collect();
                at.sort_unstable();
                assert_eq!(at, names, "{order:?}");
            }
        }
        let seeds_differ = (0..20).any(|seed| RoundOrder::balanced(&names, 3, seed).rounds != order.rounds[..3]);
        assert!(seeds_differ, "the seed decides the order");
        let plan = Plan::full().ordered(3);
        let first: Vec<&str> = plan.contenders_in(0).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(first, plan.order.rounds[0]);
        let second: Vec<&str> = plan.contenders_in(1).iter().map(|c| c.name.as_str()).collect();
        assert_ne!(first, second, "consecutive rounds of a block run in different orders");
        let full = Plan::full();
        let unordered: Vec<&str> = full.contenders_in(0).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(unordered, ["saga-seq", "2pc", "saga-par"]);
    }

    #[test]
    fn plans_are_consistent() {
        for plan in [
            Plan::full(),
            Plan::quick(),
            Plan::distance(),
            Plan::replication(),
            Plan::twopc_strategies(),
            Plan::kafka_profiles(),
        ] {
            assert_eq!(Plan::named(&plan.name).map(|p| p.name), Some(plan.name.clone()));
            let mut ids: Vec<_> = plan.cases.iter().map(|c| c.id.clone()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), plan.cases.len(), "{}: case ids are unique", plan.name);
            // Performance figures need at least three samples per contender.
            for case in plan.cases.iter().filter(|c| c.group.is_performance()) {
                let samples: usize = (0..plan.rounds).map(|r| case.runs_in(r, plan.repeats)).sum();
                assert!(samples >= 3, "{} / {}: {samples} samples", plan.name, case.id);
            }
            // A case in passes runs on one stack in one round.
            assert!(plan.cases.iter().all(|c| c.passes <= 1 || c.round.is_some()), "{}", plan.name);
            if let Some(default) = &plan.default {
                assert!(plan.contenders.iter().any(|c| c.name == *default), "{}", plan.name);
            }
            assert!(plan.cases.iter().any(|c| c.group == Group::Course), "{}", plan.name);
            let names: std::collections::BTreeSet<_> = plan.contenders.iter().map(|c| &c.name).collect();
            assert_eq!(names.len(), plan.contenders.len(), "{}: contender names are unique", plan.name);
        }
        assert!(Plan::full().cases.iter().any(|c| c.group == Group::Fault));
        assert!(Plan::quick().cases.iter().any(|c| c.group == Group::Fault));
        let quick = Plan::quick();
        // stress x3 + the course test + one fault run, for each of three contenders.
        assert_eq!(quick.run_count(), 3 * (3 + 1 + 1));
        // 6 repeated cases x 3 rounds + the course test + 9 fault cases, and
        // the two workloads at three distances in three passes.
        let full = Plan::full().ordered(5);
        assert_eq!(full.run_count(), 3 * (3 * 6 + 1 + 9 + 2 * 3 * 3));
        // The fault cases are spread over every round.
        let fault_rounds: std::collections::BTreeSet<_> =
            full.cases.iter().filter(|c| c.group == Group::Fault).filter_map(|c| c.round).collect();
        assert_eq!(fault_rounds.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
        // Each pass runs every distance case once, and the passes' orders differ.
        assert_eq!(full.order.passes.len(), DISTANCE_PASSES);
        for pass in &full.order.passes {
            let mut ids = pass.clone();
            ids.sort();
            let mut want: Vec<String> = full.cases.iter().filter(|c| c.passes > 1).map(|c| c.id.clone()).collect();
            want.sort();
            assert_eq!(ids, want);
        }
        assert!(full.order.passes.windows(2).any(|w| w[0] != w[1]), "{:?}", full.order.passes);
        assert_eq!(full.clone().ordered(5).order, full.order, "the seed decides the passes too");
        let layout = |brokers, links| Layout { brokers, links };
        assert_eq!(full.layouts(0, 1), [layout(1, false), layout(1, true)]);
        assert_eq!(full.layouts(1, 1), [layout(1, false)]);
        assert_eq!(full.layouts(0, 3), [layout(3, false), layout(3, true)]);
        let replication = Plan::replication();
        assert_eq!(replication.layouts(2, 1), [layout(1, false), layout(3, false)]);
        // Stress and one client on both clusters in three rounds, the course
        // test and the node kill once.
        assert_eq!(replication.run_count(), 3 * (3 * 4 + 1 + 1));
        assert_eq!(Plan::distance().run_count(), 3 * (1 + 2 * 3 * 3));
        for group in [Group::Distance, Group::DistanceHotItem] {
            let xs: Vec<_> = full.cases.iter().filter(|c| c.group == group).map(|c| c.x).collect();
            assert_eq!(xs, DISTANCES_MS.map(|ms| Some(f64::from(ms))), "{group:?}");
        }
        assert!(full.cases.iter().all(|c| c.distance.is_some() == c.id.starts_with("distance-")));
        for case in replication.cases.iter().filter(|c| c.group == Group::Replication) {
            let base = replication.cases.iter().find(|c| Some(&c.id) == case.mirrors.as_ref()).expect("mirrors a case");
            assert_eq!((base.spec.checkouts, base.spec.concurrency), (case.spec.checkouts, case.spec.concurrency));
            assert_eq!(case.brokers, Some(REPLICATED_BROKERS));
        }
    }
}
