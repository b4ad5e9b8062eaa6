//! One recorded run of a compare: the numbers the report is built from, and
//! what `run.json` stores (so a report can be re-rendered or re-analysed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::plan::{Case, Contender};
use crate::run::breakdown::Breakdown;
use crate::run::ceiling::Ceiling;
use crate::run::inject::FaultEvent;
use crate::run::load::Second;
use crate::run::physical::WalFlush;
use crate::run::protocol_metrics::Counters;
use crate::run::resources::Usage;
use crate::run::workload::course::CourseCounts;
use crate::run::{RunOutcome, RunSpec};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `h` (microseconds), in milliseconds; zeros for an
    /// empty histogram.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), p999: ms(0.999), max: h.max() as f64 / 1000.0 }
    }
}

/// One population of a run's checkouts (each order's first checkout in the
/// plan, or the repeats): how many, how many per second of the load's window,
/// and their latency (zeros when there are none: `checkouts` says so).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Population {
    /// Checkouts answered.
    pub checkouts: u64,
    /// Of them per second of the load.
    pub per_s: f64,
    /// Their latency to the reply.
    pub latency_ms: Percentiles,
}

impl Population {
    /// `h`'s checkouts, `in_window` of them answered within the load's
    /// window of `window_s` seconds (the rate, as
    /// [`crate::run::load::LoadResult::throughput`]).
    fn of(h: &hdrhistogram::Histogram<u64>, in_window: u64, window_s: f64) -> Population {
        Population { checkouts: h.len(), per_s: in_window as f64 / window_s.max(1e-9), latency_ms: Percentiles::of(h) }
    }
}

/// The steady-state rule: a sample is steady when the replies per second of
/// the first and the second half of its load differ by less than this share
/// of the larger. A sample that is still warming up, whose mix of checkouts
/// drifts (repeats growing more frequent), or that runs out of stock halfway
/// fails it; per-second noise on a shared 2-core machine is a few percent,
/// so the bound is 10%, not tighter. A verdict over unsteady samples is
/// marked in the report.
pub const HALVES_WITHIN: f64 = 0.10;

/// One recorded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Which case.
    pub case: String,
    /// Which contender.
    pub contender: String,
    /// Round (0-based).
    pub round: usize,
    /// Repeat within the round (0-based).
    pub repeat: usize,
    /// Checkouts answered per second.
    pub throughput: f64,
    /// Checkouts sent.
    pub checkouts: u64,
    /// Latency to the reply.
    pub latency_ms: Percentiles,
    /// Replies per second in the first and the second half of the load
    /// ([`HALVES_WITHIN`]).
    pub halves_per_s: [f64; 2],
    /// Each order's first checkout in the plan (the figures the stress
    /// verdict compares): where the protocol runs.
    pub first: Population,
    /// Checkouts of an order the plan already checked out: mostly answered
    /// `already_paid` after a lock and a read (or joining a saga in flight).
    pub repeats: Population,
    /// Latency CDF: `(milliseconds, fraction of checkouts at or below)`.
    pub cdf: Vec<(f64, f64)>,
    /// Replies per status.
    pub statuses: BTreeMap<String, u64>,
    /// Checkouts not paid, by reason.
    pub aborts: BTreeMap<String, u64>,
    /// Replies per second.
    pub timeline: Vec<Second>,
    /// Faults injected, with times.
    pub faults: Vec<FaultEvent>,
    /// Seconds from the last reply until no protocol state was in flight.
    pub settled_s: Option<f64>,
    /// Protocol state in flight when the load ended (sum of prepared
    /// transactions, undecided 2PC transactions, running sagas, unsent messages).
    pub in_flight_at_end: i64,
    /// CPU and memory per component.
    pub resources: BTreeMap<String, Usage>,
    /// The protocols' own counters.
    pub counters: Counters,
    /// Broken invariants, in words (empty: all held).
    pub violations: Vec<String>,
    /// The course test's four counts.
    pub course: Option<CourseCounts>,
    /// The stock database's WAL flush, measured before the load (contention
    /// cases).
    pub wal_flush: Option<WalFlush>,
    /// The protocol's raw ceilings, measured before the load (closed-loop
    /// stress and contention cases).
    pub ceiling: Option<Ceiling>,
    /// Where the time of the checkouts around the median went.
    pub breakdown: Option<Breakdown>,
}

/// Quantiles at which the CDF is sampled: dense in the tail, where the
/// protocols differ.
const CDF_QUANTILES: [f64; 16] =
    [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0];

impl Sample {
    /// The sample of `outcome`, a run of `case` by `contender`.
    pub fn new(case: &Case, contender: &Contender, round: usize, repeat: usize, outcome: &RunOutcome) -> Sample {
        Sample::named(&case.id, &contender.name, round, repeat, outcome)
    }

    /// The sample of `outcome` under the names `case` and `contender`.
    fn named(case: &str, contender: &str, round: usize, repeat: usize, outcome: &RunOutcome) -> Sample {
        let h = &outcome.load.latency_us;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let window_s = outcome.load.window.as_secs_f64();
        let left = outcome.in_flight_at_end.unwrap_or_default();
        Sample {
            case: case.to_owned(),
            contender: contender.to_owned(),
            round,
            repeat,
            throughput: outcome.load.throughput(),
            checkouts: h.len(),
            latency_ms: Percentiles::of(h),
            halves_per_s: outcome.load.halves_per_s(),
            first: Population::of(&outcome.load.first_latency_us, outcome.load.in_window.first, window_s),
            repeats: Population::of(&outcome.load.repeat_latency_us, outcome.load.in_window.repeats, window_s),
            cdf: CDF_QUANTILES.iter().map(|q| (ms(*q), *q)).collect(),
            statuses: outcome.load.statuses.clone(),
            aborts: outcome.load.aborts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            timeline: outcome.load.timeline.clone(),
            faults: outcome.faults.clone(),
            settled_s: outcome.settled_in.map(|d| d.as_secs_f64()),
            in_flight_at_end: left.prepared_transactions
                + left.unfinished_decisions
                + left.sagas_in_flight
                + left.unsent_outbox,
            resources: outcome.resources.clone(),
            counters: outcome.counters.clone(),
            violations: outcome.violations.iter().map(|v| format!("{v:?}")).collect(),
            course: outcome.course,
            wal_flush: outcome.wal_flush,
            ceiling: outcome.ceiling,
            breakdown: outcome.breakdown.clone(),
        }
    }

    /// How far apart the halves' throughputs are, as a share of the larger
    /// (0: as fast in both).
    pub fn drift(&self) -> f64 {
        let [a, b] = self.halves_per_s;
        if a.max(b) <= 0.0 {
            // Nothing answered: not a steady sample, whatever else it is.
            return 1.0;
        }
        (a - b).abs() / a.max(b)
    }

    /// Whether the sample is steady state ([`HALVES_WITHIN`]).
    pub fn steady(&self) -> bool {
        self.drift() < HALVES_WITHIN
    }

    /// Throughput as a share of the raw ceiling (NaN without one).
    pub fn efficiency(&self) -> f64 {
        self.ceiling.map_or(f64::NAN, |c| c.efficiency(self.throughput))
    }

    /// The raw ceiling in checkouts/s (NaN without one).
    pub fn ceiling_per_s(&self) -> f64 {
        self.ceiling.map_or(f64::NAN, |c| c.checkouts_per_s())
    }

    /// Share of checkouts not paid, in percent.
    pub fn abort_percent(&self) -> f64 {
        100.0 * self.aborts.values().sum::<u64>() as f64 / self.checkouts.max(1) as f64
    }

    /// Replies that were 5xx or none at all.
    pub fn system_failures(&self) -> u64 {
        ["system-5xx", "no-reply"].iter().filter_map(|k| self.aborts.get(*k)).sum()
    }

    /// Compensations run (SAGA: the orchestrator's count; 2PC: none).
    pub fn compensations(&self) -> u64 {
        self.counters.get("saga order").and_then(|c| c.get("compensations")).copied().unwrap_or(0)
    }
}

/// What `harness run --json` prints: the run's settings and what
/// [`Sample`] records of it (a compare's `run.json` sample, with the workload
/// as `case` and the protocol, or `target`, as `contender`), so a script or
/// a test reads the numbers instead of scraping the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Clients of the closed loop (`None`: an open loop).
    pub clients: Option<usize>,
    /// Checkouts started per second in an open loop.
    pub rate: Option<f64>,
    /// Seconds the load was to last (`None`: it sent the planned checkouts).
    pub duration_s: Option<f64>,
    /// Checkouts planned.
    pub planned_checkouts: u64,
    /// Orders created.
    pub orders: i64,
    /// Seed of the random choices.
    pub seed: u64,
    /// What the verifier checked, in words.
    pub checked: String,
    /// The measurements.
    #[serde(flatten)]
    pub sample: Sample,
}

impl RunRecord {
    /// The record of `outcome`, a run of `spec` by `contender`.
    pub fn new(contender: &str, spec: &RunSpec, outcome: &RunOutcome) -> RunRecord {
        RunRecord {
            clients: spec.rate.is_none().then_some(spec.concurrency),
            rate: spec.rate,
            duration_s: spec.duration.map(|d| d.as_secs_f64()),
            planned_checkouts: spec.checkouts,
            orders: spec.orders,
            seed: spec.seed,
            checked: outcome.checked.clone(),
            sample: Sample::named(spec.workload.name(), contender, 0, 0, outcome),
        }
    }
}
