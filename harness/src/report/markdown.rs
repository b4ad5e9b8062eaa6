//! The comparison report: `report.md` with SVG charts next to it, and
//! `run.json` with every sample, so the figures can be re-derived.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::context::RunContext;
use super::stats::Ratio;
use super::svg::{BarChart, LineChart, Series, StackedBarChart};
use super::verdict::{self, Spread, Standing, short, x_label};
use crate::compare::plan::Group;
use crate::compare::sample::HALVES_WITHIN;
use crate::compare::{Case, Comparison, Sample};

/// Every contender's figures for `case` in `comparison`: over all its
/// checkouts, or (`first`) over each order's first checkout in the plan
/// alone, which the stress verdict compares (its repeats are a lock and a
/// read). The one place a case's samples become the figures that verdicts,
/// ratios and `harness diff` compare.
pub fn standings(comparison: &Comparison, case: &Case, first: bool) -> Vec<Standing> {
    let rate = |s: &Sample| if first { s.first.per_s } else { s.throughput };
    let p99 = |s: &Sample| if first { s.first.latency_ms.p99 } else { s.latency_ms.p99 };
    comparison
        .plan
        .contenders
        .iter()
        .filter_map(|contender| {
            let samples: Vec<&Sample> =
                comparison.samples.iter().filter(|s| s.case == case.id && s.contender == contender.name).collect();
            Some(Standing {
                contender: contender.name.clone(),
                throughput: Spread::of(samples.iter().map(|s| rate(s)))?,
                p99: Spread::of(samples.iter().map(|s| p99(s)))?,
                throughput_by_key: samples.iter().map(|s| (case.key(s.round, s.repeat), rate(s))).collect(),
                p99_by_key: samples.iter().map(|s| (case.key(s.round, s.repeat), p99(s))).collect(),
                failures: samples.iter().map(|s| s.system_failures()).sum(),
                violations: samples.iter().map(|s| s.violations.len()).sum(),
                settle_s: samples.iter().filter_map(|s| s.settled_s).fold(0.0, f64::max),
            })
        })
        .collect()
}

/// Whether the verdict on `case` compares each order's first checkout (the
/// stress cases, whose repeats do no protocol work) or every checkout.
pub fn compares_first(case: &Case) -> bool {
    case.group == Group::Stress
}

/// Everything `run.json` holds, and all a report is rendered from: a compare
/// renders its report from the file it has just written, read back, and
/// `harness report` renders the same from the file alone ([`rebuild`]), so a
/// report rebuilds byte for byte from its data with the code that wrote it.
/// The rules (the steady-state bound, the practical lead, the repeat share)
/// are the code's: after a change to one, `harness report` rewrites an older
/// run's report under the new rule, and `--check` says which changed. Runs
/// written before this format (no `brokers`, no `halves_per_s`) do not read.
#[derive(Debug, Serialize, Deserialize)]
pub struct Recorded {
    /// The run's folder name.
    pub run_id: String,
    /// Code, versions, machine, settings.
    pub context: RunContext,
    /// What was run, with the contenders' order of every round.
    pub plan: crate::compare::Plan,
    /// Wall time of the whole comparison.
    pub elapsed_s: f64,
    /// Nodes of the compare's own Kafka cluster (`--brokers`).
    pub brokers: u16,
    /// Whether every invariant held (and every course test has its counts).
    pub all_invariants_held: bool,
    /// One per stack, in the order they ran.
    pub warm_ups: Vec<crate::compare::WarmUp>,
    /// Every sample.
    pub samples: Vec<Sample>,
}

impl Recorded {
    /// The record of `comparison`.
    pub fn of(run_id: &str, context: &RunContext, comparison: &Comparison) -> Recorded {
        Recorded {
            run_id: run_id.to_owned(),
            context: context.clone(),
            plan: comparison.plan.clone(),
            elapsed_s: comparison.elapsed_s,
            brokers: comparison.brokers,
            all_invariants_held: comparison.all_consistent(),
            warm_ups: comparison.warm_ups.clone(),
            samples: comparison.samples.clone(),
        }
    }

    /// Reads a `run.json`.
    pub fn read(path: &Path) -> anyhow::Result<Recorded> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!("{} is not a run.json this harness reads (written by an older harness?)", path.display())
        })
    }

    /// The comparison it records.
    pub fn comparison(&self) -> Comparison {
        Comparison {
            plan: self.plan.clone(),
            samples: self.samples.clone(),
            warm_ups: self.warm_ups.clone(),
            elapsed_s: self.elapsed_s,
            brokers: self.brokers,
        }
    }
}

/// Writes `run.json`, then `report.md` and `charts/*.svg` rendered from it
/// as read back, into `dir`; returns the verdict lines (for the index and
/// the terminal).
pub fn write(dir: &Path, run_id: &str, context: &RunContext, comparison: &Comparison) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(&Recorded::of(run_id, context, comparison))?;
    std::fs::write(dir.join("run.json"), &json)?;
    match serde_json::from_str::<Recorded>(&json) {
        Ok(recorded) => write_rendered(dir, &render(&recorded.run_id, &recorded.context, &recorded.comparison())),
        Err(e) => {
            // Never lose a run's report to a field that does not read back:
            // render it from memory, and say it cannot be rebuilt.
            tracing::error!(
                "run.json does not read back ({e}): the report is rendered from memory and `harness report` cannot rebuild it"
            );
            write_rendered(dir, &render(run_id, context, comparison))
        }
    }
}

/// Renders `report.md` and the charts again from `run_json`, into `dir`
/// (`harness report`); returns the verdict lines.
pub fn rebuild(run_json: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let recorded = Recorded::read(run_json)?;
    write_rendered(dir, &render(&recorded.run_id, &recorded.context, &recorded.comparison()))
}

/// The files of the report in `dir` (`report.md`, `charts/*.svg`) that are
/// not byte for byte what `run_json` renders (missing ones included), and
/// any chart in `dir` that it does not render.
pub fn differences(run_json: &Path, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let recorded = Recorded::read(run_json)?;
    let (text, charts, _) = render(&recorded.run_id, &recorded.context, &recorded.comparison());
    let mut expected = vec![(dir.join("report.md"), text)];
    expected.extend(charts.into_iter().map(|(name, svg)| (dir.join("charts").join(name), svg)));
    let mut differing: Vec<std::path::PathBuf> = expected
        .iter()
        .filter(|(path, content)| std::fs::read_to_string(path).ok().as_deref() != Some(content.as_str()))
        .map(|(path, _)| path.clone())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("charts")) {
        for entry in entries.flatten() {
            if !expected.iter().any(|(path, _)| *path == entry.path()) {
                differing.push(entry.path());
            }
        }
    }
    differing.sort();
    Ok(differing)
}

/// A rendered report: its text, its charts `(file name, svg)`, and one
/// verdict line per section.
pub type Rendered = (String, Vec<(String, String)>, Vec<String>);

fn write_rendered(dir: &Path, (text, charts, verdicts): &Rendered) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir.join("charts")).with_context(|| format!("creating {}", dir.display()))?;
    for (name, svg) in charts {
        std::fs::write(dir.join("charts").join(name), svg)?;
    }
    std::fs::write(dir.join("report.md"), text)?;
    Ok(verdicts.clone())
}

/// The report text, its charts `(file name, svg)`, and one verdict line per
/// section.
pub fn render(run_id: &str, context: &RunContext, comparison: &Comparison) -> Rendered {
    let mut r =
        Report { comparison, cpus: context.cpus, body: String::new(), charts: Vec::new(), verdicts: Vec::new() };
    r.stress();
    r.sweep(Group::Concurrency, "Throughput against concurrency", "clients");
    r.sweep(Group::Skew, "Contention: hot item", "skew");
    r.sweep(Group::Distance, "Distance: uniform stress", "round trip ms");
    r.sweep(Group::DistanceHotItem, "Distance: hot item (skew 0.5)", "round trip ms");
    r.course();
    r.faults();
    r.replication();
    r.default_setting();

    let mut out = String::new();
    let plan = &comparison.plan;
    let _ = writeln!(out, "# Comparison {run_id}\n");
    let _ = writeln!(
        out,
        "`harness compare{}`: {} against each other on the same data and seeds, {} round(s) x {} repeat(s), \
         contenders interleaved, a fresh stack per contender and round, a warm-up before each. Started {} on {} \
         ({} CPUs, {} GiB), commit `{}`{}; took {:.1} min.\n",
        plan.flag(),
        plan.contenders.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", "),
        plan.rounds,
        plan.repeats,
        context.started_at,
        context.cpu_model,
        context.cpus,
        context.memory_mib / 1024,
        context.commit.get(..12).unwrap_or(&context.commit),
        if context.dirty { " (uncommitted changes)" } else { "" },
        comparison.elapsed_s / 60.0
    );
    let contenders: Vec<String> =
        plan.contenders.iter().map(|c| format!("`{}` = {}", c.name, c.description())).collect();
    let _ = writeln!(
        out,
        "Contenders: {}. Figures are medians over the samples, with the range (min–max) in brackets; compare \
         them as ratios within this run, since the machine is shared. Latency is measured to the reply.\n",
        contenders.join("; ")
    );
    if !plan.order.rounds.is_empty() {
        let rounds: Vec<String> = plan
            .order
            .rounds
            .iter()
            .enumerate()
            .map(|(i, names)| format!("round {}: {}", i + 1, names.join(", ")))
            .collect();
        let balanced = if plan.rounds > 1 { " and balanced over the rounds" } else { "" };
        let _ = writeln!(
            out,
            "Contenders' order, drawn from seed {} (`--order-seed`){balanced}: {}. A ratio between two contenders \
             pairs their rounds (a round's repeats averaged first: they ran on one stack) and has a 95% interval \
             (Student's t on the log ratios) from {} rounds on; a winner is named only where that interval \
             excludes 1 and the lead is at least 5%, otherwise the verdict says \"no clear winner\" or \"too few \
             samples for a verdict\". A performance sample is steady state when the replies per second of the \
             first and the second half of its load differ by less than {:.0}%; each table counts its steady \
             samples, and a verdict resting on one that is not is marked.\n",
            plan.order.seed,
            rounds.join("; "),
            crate::report::stats::MIN_ROUNDS,
            100.0 * HALVES_WITHIN
        );
    }
    let _ = writeln!(out, "## Verdict\n");
    for line in &r.verdicts {
        let _ = writeln!(out, "- {line}");
    }
    let unsteady: Vec<String> = comparison
        .warm_ups
        .iter()
        .filter(|w| !w.steady)
        .map(|w| {
            format!(
                "{} round {} ({} Kafka node(s){})",
                w.contender,
                w.round + 1,
                w.brokers,
                if w.links { ", links" } else { "" }
            )
        })
        .collect();
    if !unsteady.is_empty() {
        let _ = writeln!(
            out,
            "\nWarm-ups that reached their cap before two rounds agreed: {}. The verdicts on cases that ran on those \
             stacks are marked *(warm-up not steady)*.",
            unsteady.join(", ")
        );
    }
    out.push('\n');
    out.push_str(&r.body);
    out.push_str(&warm_up_section(plan, &comparison.warm_ups));
    out.push_str(&context_section(context));
    let _ = writeln!(out, "\nEvery sample, with timelines, CDFs, counters and resource use: [`run.json`](run.json).");
    (out, r.charts, r.verdicts)
}

struct Report<'a> {
    comparison: &'a Comparison,
    /// CPUs of the machine the run measured.
    cpus: usize,
    body: String,
    charts: Vec<(String, String)>,
    verdicts: Vec<String>,
}

impl<'a> Report<'a> {
    fn cases(&self, group: Group) -> Vec<&'a Case> {
        let comparison: &'a Comparison = self.comparison;
        comparison.plan.cases.iter().filter(|c| c.group == group).collect()
    }

    fn samples(&self, case: &str, contender: &str) -> Vec<&'a Sample> {
        let comparison: &'a Comparison = self.comparison;
        comparison.samples.iter().filter(|s| s.case == case && s.contender == contender).collect()
    }

    fn contenders(&self) -> Vec<&'a str> {
        let comparison: &'a Comparison = self.comparison;
        comparison.plan.contenders.iter().map(|c| c.name.as_str()).collect()
    }

    fn standings(&self, case: &str, first: bool) -> Vec<Standing> {
        let comparison: &'a Comparison = self.comparison;
        comparison.plan.cases.iter().find(|c| c.id == case).map(|c| standings(comparison, c, first)).unwrap_or_default()
    }

    /// " *(warm-up not steady)*" when a sample of `cases` ran on a stack whose
    /// warm-up reached its cap before becoming steady, and " *(k of n samples
    /// not steady)*" when samples of a performance case fail the
    /// steady-state rule ([`HALVES_WITHIN`]); empty otherwise.
    fn unsteady_mark(&self, cases: &[&Case]) -> String {
        let comparison: &'a Comparison = self.comparison;
        let unsteady = cases.iter().any(|case| {
            comparison.samples.iter().filter(|s| s.case == case.id).any(|s| {
                comparison
                    .warm_ups
                    .iter()
                    .any(|w| !w.steady && w.hosted(case, &s.contender, s.round, comparison.brokers))
            })
        });
        let mut mark = if unsteady { " *(warm-up not steady)*".to_owned() } else { String::new() };
        let performance: Vec<&Sample> = cases
            .iter()
            .filter(|c| c.group.is_performance())
            .flat_map(|c| comparison.samples.iter().filter(move |s| s.case == c.id))
            .collect();
        let drifting = performance.iter().filter(|s| !s.steady()).count();
        if drifting > 0 {
            let _ = write!(
                mark,
                " *({drifting} of {} samples not steady: their halves differ by {:.0}% or more)*",
                performance.len(),
                100.0 * HALVES_WITHIN
            );
        }
        mark
    }

    /// The sample with the median throughput (for the CDF and resources).
    fn median_sample(&self, case: &str, contender: &str) -> Option<&'a Sample> {
        let mut samples = self.samples(case, contender);
        samples.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
        samples.get(samples.len() / 2).copied()
    }

    /// The whole machine's CPU use during `sample`'s load, as a share of all
    /// its cores (every process of the stack and the harness).
    fn cpu_busy(&self, sample: &Sample) -> f64 {
        if sample.resources.is_empty() {
            // Not measured: shown as such, never as an idle machine.
            return f64::NAN;
        }
        sample.resources.values().map(|u| u.cpu_percent).sum::<f64>() / (100.0 * self.cpus.max(1) as f64)
    }

    fn chart(&mut self, name: &str, svg: String, alt: &str) {
        let _ = writeln!(self.body, "![{alt}](charts/{name})\n");
        self.charts.push((name.to_owned(), svg));
    }

    /// The case's two populations side by side: the checkouts that ran the
    /// protocol (which the verdict compares) and the repeats of paid orders.
    fn populations_table(&mut self, case: &str) {
        let _ = writeln!(
            self.body,
            "The stress plan checks some orders out more than once: an order's first checkout in the plan runs \
             the protocol, the later ones mostly answer `already_paid` after a lock and a read (or join a saga in \
             flight). The two are shown apart (rates over the whole load's time), and the verdict compares the \
             first:\n\n| contender | first checkouts/s | first p50 ms | first p99 ms | repeats/s | repeat p50 ms \
             | repeat p99 ms |\n|---|---|---|---|---|---|---|"
        );
        for name in self.contenders() {
            let samples = self.samples(case, name);
            if samples.is_empty() {
                continue;
            }
            let spread = |f: &dyn Fn(&Sample) -> f64| spread_cell(&samples, f);
            let _ = writeln!(
                self.body,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                spread(&|s| s.first.per_s),
                spread(&|s| s.first.latency_ms.p50),
                spread(&|s| s.first.latency_ms.p99),
                spread(&|s| s.repeats.per_s),
                spread(&|s| s.repeats.latency_ms.p50),
                spread(&|s| s.repeats.latency_ms.p99),
            );
        }
        self.body.push('\n');
    }

    fn performance_table(&mut self, case: &str) {
        // Open-loop (fault) cases have no ceiling: no empty columns.
        let yardstick = self.comparison.samples.iter().any(|s| s.case == case && s.ceiling.is_some());
        let performance = self.comparison.plan.cases.iter().any(|c| c.id == case && c.group.is_performance());
        let _ = writeln!(
            self.body,
            "| contender | checkouts/s |{} p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | not paid | 5xx/none | \
             compensations | in flight at end | settled s | steady | invariants |",
            if yardstick { " ceiling/s | efficiency |" } else { "" }
        );
        let _ = writeln!(
            self.body,
            "|---|---|{}---|---|---|---|---|---|---|---|---|---|---|---|",
            if yardstick { "---|---|" } else { "" }
        );
        for name in self.contenders() {
            let samples = self.samples(case, name);
            if samples.is_empty() {
                continue;
            }
            let spread = |f: &dyn Fn(&Sample) -> f64| spread_cell(&samples, f);
            let _ = writeln!(
                self.body,
                "| {name} | {} |{} {} | {} | {} | {} | {} | {}% | {} | {} | {} | {} | {} | {} |",
                spread(&|s| s.throughput),
                if yardstick {
                    format!(" {} | {} |", spread(&|s| s.ceiling_per_s()), spread(&|s| s.efficiency()))
                } else {
                    String::new()
                },
                spread(&|s| s.latency_ms.p50),
                spread(&|s| s.latency_ms.p90),
                spread(&|s| s.latency_ms.p99),
                spread(&|s| s.latency_ms.p999),
                spread(&|s| s.latency_ms.max),
                spread(&|s| s.abort_percent()),
                samples.iter().map(|s| s.system_failures()).sum::<u64>(),
                spread(&|s| s.compensations() as f64),
                spread(&|s| s.in_flight_at_end as f64),
                spread(&|s| s.settled_s.unwrap_or(0.0)),
                if performance { steady_cell(&samples) } else { "–".to_owned() },
                invariants_cell(&samples)
            );
        }
        self.body.push('\n');
    }

    fn stress(&mut self) {
        for case in self.cases(Group::Stress) {
            let id = case.id.clone();
            let standings = self.standings(&id, true);
            let n = self.samples(&id, self.contenders()[0]).len();
            let verdict = format!(
                "{} {}",
                verdict::invariants_verdict(&standings),
                verdict::throughput_verdict(&standings, "first checkouts")
            );
            let mark = self.unsteady_mark(&[case]);
            self.verdicts.push(format!("**{id}** ({} clients, uniform data): {verdict}{mark}", case.spec.concurrency));
            let load = match case.spec.duration {
                Some(d) => format!("{} s of load from", d.as_secs_f64()),
                None => format!("{} checkouts from", case.spec.checkouts),
            };
            let _ = writeln!(
                self.body,
                "## Stress: `{id}`\n\n{load} {} clients in a closed loop, over {} batch-initialised orders (two \
                 items each) in a drawn order, {:.0}% of the checkouts repeating an order planned before (at that \
                 share all along, so the mix does not drift); {n} samples per contender.\n\n{verdict}\n",
                case.spec.concurrency,
                case.spec.orders,
                100.0 * crate::run::workload::REPEAT_SHARE
            );
            self.performance_table(&id);
            self.populations_table(&id);
            self.yardstick(&id);
            let series = self
                .contenders()
                .into_iter()
                .filter_map(|c| {
                    let s = self.median_sample(&id, c)?;
                    Some(Series { name: c.to_owned(), points: s.cdf.iter().map(|(ms, q)| (*ms, *q)).collect() })
                })
                .collect();
            let cdf = LineChart {
                title: format!("Latency CDF, {id} (median run)"),
                x_label: "latency to reply, ms (log)".into(),
                y_label: "fraction of checkouts".into(),
                x_log: true,
                series,
                markers: Vec::new(),
            };
            self.chart(&format!("{id}-latency-cdf.svg"), cdf.render(), "latency CDF per contender");
            self.breakdown(&id);
            self.resources_table(&id);
        }
    }

    /// Where the median checkout's time went, per contender (median run),
    /// from the services' spans (see [`crate::run::breakdown`]).
    fn breakdown(&mut self, case: &str) {
        use crate::run::breakdown::Breakdown;
        let medians: Vec<(&str, &Breakdown)> = self
            .contenders()
            .into_iter()
            .filter_map(|c| Some((c, self.median_sample(case, c)?.breakdown.as_ref()?)))
            .collect();
        if medians.is_empty() {
            return;
        }
        let phases: Vec<&str> = Breakdown::order()
            .into_iter()
            .filter(|p| medians.iter().any(|(_, b)| b.ms.get(*p).is_some_and(|ms| *ms > 0.0)))
            .collect();
        let _ = writeln!(
            self.body,
            "**Where the time goes.** The checkouts around the median latency (the middle tenth of those that \
             paid, median run), their time cut by the spans every service records: each moment goes to the most \
             specific phase in progress (a commit flush over the SQL around it, a participant's own work over the \
             coordinator's call to it), to \"HTTP and gateway\" outside the order service's handler, and to \
             \"unattributed\" inside it when no span covers it.\n"
        );
        let header: Vec<&str> = medians.iter().map(|(c, _)| *c).collect();
        let _ = writeln!(self.body, "| ms (share) | {} |", header.join(" | "));
        let _ = writeln!(self.body, "|---|{}", "---|".repeat(header.len()));
        for phase in &phases {
            let cells: Vec<String> = medians
                .iter()
                .map(|(_, b)| {
                    let ms = b.ms.get(*phase).copied().unwrap_or(0.0);
                    format!("{} ({:.0}%)", short(ms), 100.0 * ms / b.total_ms.max(1e-9))
                })
                .collect();
            let _ = writeln!(self.body, "| {phase} | {} |", cells.join(" | "));
        }
        let totals: Vec<String> = medians
            .iter()
            .map(|(_, b)| {
                let left_out = if b.without_spans + b.dropped as usize > 0 {
                    format!("; {} without spans left out, {} spans dropped", b.without_spans, b.dropped)
                } else {
                    String::new()
                };
                format!(
                    "**{}** ({} checkouts, {:.0}% attributed{left_out})",
                    short(b.total_ms),
                    b.checkouts,
                    100.0 * b.attributed()
                )
            })
            .collect();
        let _ = writeln!(self.body, "| median checkout | {} |\n", totals.join(" | "));
        let chart = StackedBarChart {
            title: format!("Where the median checkout's time goes: {case}"),
            y_label: "ms".into(),
            categories: header.iter().map(|c| (*c).to_owned()).collect(),
            segments: phases
                .iter()
                .map(|p| ((*p).to_owned(), medians.iter().map(|(_, b)| b.ms.get(*p).copied().unwrap_or(0.0)).collect()))
                .collect(),
        };
        self.chart(&format!("{case}-breakdown.svg"), chart.render(), "latency breakdown per contender");
    }

    /// What the ceilings of `case` were made of (see [`crate::run::ceiling`]).
    fn yardstick(&mut self, case: &str) {
        let mut parts = Vec::new();
        for name in self.contenders() {
            let samples = self.samples(case, name);
            let ceilings: Vec<_> = samples.iter().filter_map(|s| s.ceiling).collect();
            let Some(db) = Spread::of(ceilings.iter().map(|c| c.database_per_s)) else { continue };
            let mut part = format!("{name}: its database work alone {db}/s");
            let kafka: Vec<_> = ceilings.iter().filter_map(|c| c.kafka).collect();
            if let (Some(rtt), Some(rate)) =
                (Spread::of(kafka.iter().map(|k| k.round_trip_ms)), Spread::of(kafka.iter().map(|k| k.messages_per_s)))
            {
                let _ = write!(
                    part,
                    ", the bare broker {} messages/s ({} checkouts/s at {} messages each) with a {} ms \
                     produce-to-consume round trip",
                    short(rate.median),
                    short(rate.median / crate::run::ceiling::SAGA_MESSAGES_PER_CHECKOUT),
                    crate::run::ceiling::SAGA_MESSAGES_PER_CHECKOUT,
                    short(rtt.median)
                );
            }
            parts.push(part);
        }
        if parts.is_empty() {
            return;
        }
        let _ = writeln!(
            self.body,
            "**Yardstick.** The ceiling is the same plan replayed before each load, at the same concurrency, \
             through each protocol's own code in the harness's process against scratch databases in the same three \
             PostgreSQL clusters (no HTTP, no Kafka, no service process: the network's messages are handed over in \
             memory), and for a saga also its broker alone with the services' client settings; efficiency is the \
             throughput through the services over the same checkouts of the plan, divided by that ceiling. {}.\n",
            parts.join("; ")
        );
    }

    fn resources_table(&mut self, case: &str) {
        let medians: Vec<(&str, &Sample)> =
            self.contenders().into_iter().filter_map(|c| Some((c, self.median_sample(case, c)?))).collect();
        let mut components: Vec<&String> = medians.iter().flat_map(|(_, s)| s.resources.keys()).collect();
        components.sort();
        components.dedup();
        if components.is_empty() {
            return;
        }
        let _ = writeln!(
            self.body,
            "CPU (% of one core, mean over the load), CPU per checkout (ms of one core) and peak memory (MiB, PSS) \
             per process, median run:\n"
        );
        let header: Vec<&str> = medians.iter().map(|(c, _)| *c).collect();
        let _ = writeln!(self.body, "| process | {} |", header.join(" | "));
        let _ = writeln!(self.body, "|---|{}", "---|".repeat(header.len()));
        for component in components {
            let cells: Vec<String> = medians
                .iter()
                .map(|(_, s)| match s.resources.get(component) {
                    // A share of one core for 1/throughput seconds each.
                    Some(u) => format!(
                        "{:.0}% / {} / {:.0}",
                        u.cpu_percent,
                        short(10.0 * u.cpu_percent / s.throughput.max(1e-9)),
                        u.peak_rss_mib
                    ),
                    None => "–".to_owned(),
                })
                .collect();
            let _ = writeln!(self.body, "| {component} | {} |", cells.join(" | "));
        }
        self.body.push('\n');
    }

    fn sweep(&mut self, group: Group, title: &str, x_name: &str) {
        let mut cases = self.cases(group);
        if cases.is_empty() {
            return;
        }
        // The headline stress case is the concurrency sweep's last point.
        if group == Group::Concurrency {
            cases.extend(self.cases(Group::Stress));
        }
        cases.sort_by(|a, b| a.x.unwrap_or(0.0).total_cmp(&b.x.unwrap_or(0.0)));
        let points: Vec<(f64, Vec<Standing>)> =
            cases.iter().filter_map(|c| Some((c.x?, self.standings(&c.id, false)))).collect();
        let all: Vec<Standing> = points.iter().flat_map(|(_, s)| s.clone()).collect();
        let distance = matches!(group, Group::Distance | Group::DistanceHotItem);
        let shape = if distance { verdict::distance_verdict(&points) } else { verdict::sweep_verdict(x_name, &points) };
        let verdict = format!("{} {shape}", verdict::invariants_verdict(&all));
        let mark = self.unsteady_mark(&cases);
        self.verdicts.push(format!("**{title}**: {verdict}{mark}"));
        let _ = writeln!(self.body, "## {title}\n\n{verdict}\n");
        if distance {
            let passes = cases.iter().map(|c| c.passes).max().unwrap_or(1);
            let busy: Vec<f64> = cases
                .iter()
                .flat_map(|c| self.comparison.samples.iter().filter(|s| s.case == c.id))
                .map(|s| self.cpu_busy(s))
                .collect();
            let busy =
                Spread::of(busy).map_or_else(|| "not measured".to_owned(), |b| format!("{}%", short(100.0 * b.median)));
            let _ = writeln!(
                self.body,
                "Every connection between components (gateway to service, order to stock and payment, each \
                 service to its PostgreSQL and to Kafka) runs through a Toxiproxy link that adds the round trip \
                 shown, half each way, on a stack of its own; 0 ms is the proxy alone. {passes} passes over the \
                 points, each in a drawn order (recorded in `run.json`); a ratio pairs the contenders' passes \
                 (every pass of a contender ran on its one stack: the interval covers the noise between passes, \
                 not between stacks, so it is narrower than a round's would be). \
                 **Confound:** the proxy and every component share the machine's {} cores, so where the machine is \
                 busy the figures measure CPU as much as distance. The \"CPU busy\" column is the whole machine's \
                 use during the load (every process of the stack and the harness, as a share of all cores; median \
                 over this sweep's samples: {busy}): near 100%, a contender's throughput is bounded by CPU, not by \
                 its round trips.\n",
                self.cpus
            );
        }
        let _ = writeln!(
            self.body,
            "| {x_name} | contender | checkouts/s | ceiling/s | efficiency | p50 ms | p99 ms | not paid | \
             compensations |{} steady | invariants |",
            if distance { " CPU busy |" } else { "" }
        );
        let _ =
            writeln!(self.body, "|---|---|---|---|---|---|---|---|---|{}---|---|", if distance { "---|" } else { "" });
        for case in &cases {
            for name in self.contenders() {
                let samples = self.samples(&case.id, name);
                let spread = |f: &dyn Fn(&Sample) -> f64| spread_cell(&samples, f);
                let _ = writeln!(
                    self.body,
                    "| {} | {name} | {} | {} | {} | {} | {} | {}% | {} |{} {} | {} |",
                    case.x.map(x_label).unwrap_or_default(),
                    spread(&|s| s.throughput),
                    spread(&|s| s.ceiling_per_s()),
                    spread(&|s| s.efficiency()),
                    spread(&|s| s.latency_ms.p50),
                    spread(&|s| s.latency_ms.p99),
                    spread(&|s| s.abort_percent()),
                    spread(&|s| s.compensations() as f64),
                    if distance { format!(" {} |", spread(&|s| 100.0 * self.cpu_busy(s))) } else { String::new() },
                    steady_cell(&samples),
                    invariants_cell(&samples)
                );
            }
        }
        self.body.push('\n');
        if group == Group::Skew {
            self.limit_line(&cases);
        }
        let series = |metric: &dyn Fn(&Sample) -> f64| -> Vec<Series> {
            self.contenders()
                .into_iter()
                .map(|name| Series {
                    name: name.to_owned(),
                    points: cases
                        .iter()
                        .filter_map(|c| {
                            let s = Spread::of(self.samples(&c.id, name).iter().map(|s| metric(s)))?;
                            Some((c.x?, s.median))
                        })
                        .collect(),
                })
                .collect()
        };
        let slug = match group {
            Group::Distance => "distance-stress".to_owned(),
            Group::DistanceHotItem => "distance-hot-item".to_owned(),
            _ => x_name.replace(' ', "-"),
        };
        let tput = LineChart {
            title: if distance {
                format!("{title}: throughput")
            } else {
                format!("Throughput against {x_name} (median)")
            },
            x_label: x_name.to_owned(),
            y_label: "checkouts/s".into(),
            x_log: false,
            series: series(&|s| s.throughput),
            markers: Vec::new(),
        };
        let p99 = LineChart {
            title: if distance {
                format!("{title}: p99 latency")
            } else {
                format!("p99 latency against {x_name} (median)")
            },
            x_label: x_name.to_owned(),
            y_label: "p99 ms".into(),
            x_log: false,
            series: series(&|s| s.latency_ms.p99),
            markers: Vec::new(),
        };
        self.chart(&format!("throughput-vs-{slug}.svg"), tput.render(), &format!("throughput against {x_name}"));
        self.chart(&format!("p99-vs-{slug}.svg"), p99.render(), &format!("p99 latency against {x_name}"));
        if group == Group::Skew
            && let Some(last) = cases.last()
        {
            let id = last.id.clone();
            self.abort_chart(&id, &format!("aborts-{id}.svg"));
        }
    }

    fn abort_chart(&mut self, case: &str, file: &str) {
        let mut reasons: Vec<String> =
            self.comparison.samples.iter().filter(|s| s.case == case).flat_map(|s| s.aborts.keys().cloned()).collect();
        reasons.sort();
        reasons.dedup();
        if reasons.is_empty() {
            return;
        }
        let groups = self
            .contenders()
            .into_iter()
            .map(|name| {
                let samples = self.samples(case, name);
                let per_reason = reasons
                    .iter()
                    .map(|r| {
                        Spread::of(samples.iter().map(|s| s.aborts.get(r).copied().unwrap_or(0) as f64))
                            .map_or(0.0, |s| s.median)
                    })
                    .collect();
                (name.to_owned(), per_reason)
            })
            .collect();
        let chart = BarChart {
            title: format!("Checkouts not paid, by reason: {case} (median)"),
            y_label: "checkouts".into(),
            categories: reasons,
            groups,
        };
        self.chart(file, chart.render(), &format!("abort reasons, {case}"));
    }

    /// The hot row's physical limit, from the WAL flushes measured before each
    /// load of `cases` (see [`crate::run::physical`]).
    fn limit_line(&mut self, cases: &[&Case]) {
        use crate::run::physical::{
            SAGA_FLUSHES_UNDER_THE_LOCK, TWOPC_FLUSHES_UNDER_THE_LOCK, WalFlush, hot_row_bound,
        };
        let flushes: Vec<WalFlush> = cases
            .iter()
            .flat_map(|c| self.comparison.samples.iter().filter(|s| s.case == c.id))
            .filter_map(|s| s.wal_flush)
            .collect();
        let (Some(flush), Some(commit), Some(round_trip)) = (
            Spread::of(flushes.iter().map(WalFlush::flush_ms)),
            Spread::of(flushes.iter().map(|w| w.commit_ms)),
            Spread::of(flushes.iter().map(|w| w.round_trip_ms)),
        ) else {
            return;
        };
        let _ = writeln!(
            self.body,
            "**Physical limit.** One WAL flush on the stock database takes {} ms on this machine (median of {} \
             measurements before the loads, {}–{} ms; a flushing commit {} ms, a round trip {} ms). Commits on \
             one row are serial, so one hot row commits at most {} checkouts/s over 2PC, which keeps it locked \
             across {} flushes (`PREPARE TRANSACTION`, the decision in the order database, `COMMIT PREPARED`), and \
             {} checkouts/s over a saga, whose step holds it for one local transaction. Only the checkouts that \
             take the hot row count against the bound (at skew s, about s of the paid ones).\n",
            short(flush.median),
            flush.n,
            short(flush.min),
            short(flush.max),
            short(commit.median),
            short(round_trip.median),
            short(hot_row_bound(flush.median, TWOPC_FLUSHES_UNDER_THE_LOCK)),
            TWOPC_FLUSHES_UNDER_THE_LOCK,
            short(hot_row_bound(flush.median, SAGA_FLUSHES_UNDER_THE_LOCK)),
        );
    }

    fn course(&mut self) {
        for case in self.cases(Group::Course) {
            let id = case.id.clone();
            let standings = self.standings(&id, false);
            let mut consistent = Vec::new();
            let mut not_measured = 0;
            let _ = writeln!(self.body, "## The course consistency test: `{id}`\n");
            let _ = writeln!(
                self.body,
                "As the course's script runs it: 1 item with 100 stock at price 1, 1000 users with 1 credit, 1000 \
                 one-unit orders whose users are drawn with replacement (many users own several orders), checked \
                 out at once over 100 connections. Counted as the script counts: any reply but a 4xx is a success \
                 in its logs, and a checkout without a reply within its 5-minute client timeout makes the script \
                 fail. The four counts must all be 0.\n"
            );
            let _ = writeln!(
                self.body,
                "| contender | stock logs | stock db | payment logs | payment db | replies | p99 ms | max ms | invariants |"
            );
            let _ = writeln!(self.body, "|---|---|---|---|---|---|---|---|---|");
            for name in self.contenders() {
                for s in self.samples(&id, name) {
                    // A run without its counts is not a run with four zeros.
                    let counts = match s.course {
                        Some(c) => [c.stock_logs, c.stock_db, c.payment_logs, c.payment_db].map(|n| n.to_string()),
                        None => {
                            not_measured += 1;
                            ["not measured"; 4].map(str::to_owned)
                        }
                    };
                    consistent.push(s.course.is_some_and(|c| c.consistent()) && s.violations.is_empty());
                    let replies: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    let [stock_logs, stock_db, payment_logs, payment_db] = counts;
                    let _ = writeln!(
                        self.body,
                        "| {name} | {stock_logs} | {stock_db} | {payment_logs} | {payment_db} | {} | {} | {} | {} |",
                        replies.join(", "),
                        short(s.latency_ms.p99),
                        short(s.latency_ms.max),
                        if s.violations.is_empty() {
                            "OK".to_owned()
                        } else {
                            format!("**{} broken**", s.violations.len())
                        }
                    );
                }
            }
            self.body.push('\n');
            let all_zero = consistent.iter().all(|c| *c);
            let failures: Vec<String> = standings.iter().map(|s| format!("{} {}", s.contender, s.failures)).collect();
            let counts = match (not_measured, all_zero) {
                (0, true) => "The four counts are 0 in every run.".to_owned(),
                (0, false) => "The four counts are **not all 0**.".to_owned(),
                (n, _) => format!("The four counts were **not measured** in {n} run(s): the check fails."),
            };
            let verdict = format!(
                "{} {counts} Checkouts answered 5xx or not at all: {}.",
                verdict::invariants_verdict(&standings),
                failures.join(", ")
            );
            let mark = self.unsteady_mark(&[case]);
            self.verdicts.push(format!("**{id}**: {verdict}{mark}"));
            let _ = writeln!(self.body, "{verdict}\n");
            self.abort_chart(&id, &format!("aborts-{id}.svg"));
        }
    }

    /// After a kill: how long each killed component took to serve again in
    /// each contender's runs (median and range over the samples), and how
    /// much of it the fault held it down on purpose: the rest is its restart
    /// and recovery, the floor under any checkout's stall.
    fn back_in_service(&mut self, id: &str) {
        let mut parts = Vec::new();
        for name in self.contenders() {
            let samples = self.samples(id, name);
            let mut by_component: BTreeMap<&str, (Vec<f64>, f64)> = BTreeMap::new();
            for event in samples.iter().flat_map(|s| &s.faults).filter(|e| e.applied) {
                if let Some(after) = event.back_after_s {
                    let component = event.what.trim_end_matches(" serving again");
                    let entry = by_component.entry(component).or_default();
                    entry.0.push(after);
                    entry.1 = event.held_s.unwrap_or_default();
                }
            }
            for (component, (afters, held)) in by_component {
                if let Some(spread) = Spread::of(afters) {
                    parts.push(format!("{name} {spread} s ({component}, {held:.0} s of it held down)"));
                }
            }
        }
        if !parts.is_empty() {
            let _ = writeln!(
                self.body,
                "Serving again after the kill (the restart and recovery of the component itself plus the hold, \
                 the floor under any checkout's stall): {}.\n",
                parts.join(", ")
            );
        }
    }

    fn faults(&mut self) {
        let cases = self.cases(Group::Fault);
        if cases.is_empty() {
            return;
        }
        let _ = writeln!(
            self.body,
            "## Faults during stress\n\nOne component killed or paused during a stress load ({} checkouts{}); \
             the supervisor restarts what was killed. The verifier then waits until no protocol state is in flight \
             and checks every invariant.\n",
            cases[0].spec.checkouts,
            match cases[0].spec.rate {
                Some(rate) =>
                    format!(" started at {rate}/s in an open loop: the same offered load for every contender"),
                None => format!(", {} clients", cases[0].spec.concurrency),
            }
        );
        let mut summary = Vec::new();
        for case in cases.iter().copied() {
            let id = case.id.clone();
            let standings = self.standings(&id, false);
            let verdict = verdict::fault_verdict(&standings);
            summary.push((id.clone(), standings.iter().all(|s| s.violations == 0)));
            let faults: Vec<String> = case.faults.iter().map(ToString::to_string).collect();
            let _ = writeln!(self.body, "### `{id}`: {}\n\n{verdict}\n", faults.join(", "));
            self.performance_table(&id);
            self.back_in_service(&id);
            let mut markers = Vec::new();
            let series = self
                .contenders()
                .into_iter()
                .filter_map(|name| {
                    let s = self.samples(&id, name).into_iter().next()?;
                    for f in s.faults.iter().filter(|f| f.applied) {
                        if !markers.iter().any(|(_, label): &(f64, String)| label == &f.what) {
                            markers.push((f.at_s, f.what.clone()));
                        }
                    }
                    let points = s.timeline.iter().enumerate().map(|(i, t)| (i as f64 + 0.5, t.ok as f64)).collect();
                    Some(Series { name: name.to_owned(), points })
                })
                .collect();
            let chart = LineChart {
                title: format!("Paid checkouts per second, {id}"),
                x_label: "seconds into the load".into(),
                y_label: "paid checkouts/s".into(),
                x_log: false,
                series,
                markers,
            };
            self.chart(&format!("timeline-{id}.svg"), chart.render(), &format!("throughput over time, {id}"));
        }
        let held: Vec<String> =
            summary.iter().map(|(id, ok)| format!("{id} {}", if *ok { "OK" } else { "**BROKEN**" })).collect();
        let mark = self.unsteady_mark(&cases);
        self.verdicts.push(format!("**Faults** (invariants per case, all contenders): {}.{mark}", held.join(", ")));
    }
}

impl Report<'_> {
    /// For a plan sweeping one setting: whether the setting's default won
    /// clearly, case by case, against every other contender (throughput of
    /// the figures the case's verdict compares).
    fn default_setting(&mut self) {
        let Some(default) = self.comparison.plan.default.clone() else { return };
        let mut parts = Vec::new();
        for case in self.comparison.plan.cases.iter().filter(|c| c.group.is_performance()) {
            let standings = standings(self.comparison, case, compares_first(case));
            let Some(mine) = standings.iter().find(|s| s.contender == default) else { continue };
            let calls: Vec<String> = standings
                .iter()
                .filter(|s| s.contender != default)
                .map(|other| match verdict::throughput_call(mine, other) {
                    Some(call) => call.describe(&default, &other.contender),
                    None => format!("{default} against {}: not measured", other.contender),
                })
                .collect();
            let others: Vec<&Standing> = standings.iter().filter(|s| s.contender != default).collect();
            let won = !others.is_empty()
                && others.iter().all(|other| {
                    matches!(verdict::throughput_call(mine, other), Some(crate::report::stats::Call::Leads(_)))
                });
            let outcome = if won { "won clearly" } else { "did not win clearly" };
            parts.push(format!("{}: {outcome} ({})", case.id, calls.join("; ")));
        }
        if parts.is_empty() {
            return;
        }
        let line = format!("the default, `{default}`, on throughput: {}.", parts.join(" "));
        let _ = writeln!(self.body, "## The default\n\nAgainst the other settings of this sweep, {line}\n");
        self.verdicts.push(format!("**Default** {line}"));
    }

    /// The replication cases next to the cases they repeat: the same load on
    /// one Kafka node and on three, per contender.
    fn replication(&mut self) {
        let cases = self.cases(Group::Replication);
        if cases.is_empty() {
            return;
        }
        let brokers = cases.iter().filter_map(|c| c.brokers).max().unwrap_or(1);
        let own = self.comparison.brokers;
        let one = if own == 1 { "one Kafka node".to_owned() } else { format!("{own} Kafka nodes") };
        let _ = writeln!(
            self.body,
            "## Replication: {one} against {brokers}\n\nThe same cases on a cluster of {brokers} KRaft nodes (each a \
             broker and a controller), every topic and the consumer offsets with three copies, \
             `min.insync.replicas=2`, the producers' `acks=all` now waiting for a second copy, on a stack of its \
             own after a warm-up of its own, in the same rounds as the one-node case it mirrors, so that each \
             ratio pairs the two clusters round by round. All the nodes share the machine's cores with everything \
             else, so the cost shown is in CPU as much as in network hops. 2PC does not use Kafka: its rows show \
             what idle brokers cost a neighbour.\n"
        );
        let _ = writeln!(
            self.body,
            "| case | contender | Kafka nodes | checkouts/s | p50 ms | p99 ms | Kafka CPU ms per checkout | invariants |"
        );
        let _ = writeln!(self.body, "|---|---|---|---|---|---|---|---|");
        let mut verdicts = Vec::new();
        for case in &cases {
            let Some(base) = case.mirrors.as_deref() else { continue };
            for name in self.contenders() {
                let rows = [(base, own), (case.id.as_str(), brokers)];
                let mut medians = Vec::new();
                for (id, nodes) in rows {
                    let samples = self.samples(id, name);
                    if samples.is_empty() {
                        continue;
                    }
                    let spread = |f: &dyn Fn(&Sample) -> f64| spread_cell(&samples, f);
                    let _ = writeln!(
                        self.body,
                        "| {id} | {name} | {nodes} | {} | {} | {} | {} | {} |",
                        spread(&|s| s.throughput),
                        spread(&|s| s.latency_ms.p50),
                        spread(&|s| s.latency_ms.p99),
                        spread(&kafka_cpu_ms_per_checkout),
                        invariants_cell(&samples)
                    );
                    let keyed = |f: &dyn Fn(&Sample) -> f64| -> Vec<(crate::report::stats::Key, f64)> {
                        samples.iter().map(|s| ((s.round, s.repeat), f(s))).collect()
                    };
                    medians.push((keyed(&|s| s.throughput), keyed(&|s| s.latency_ms.p50)));
                }
                if let [(one_t, one_p), (many_t, many_p)] = medians.as_slice()
                    && let (Some(t), Some(p)) = (Ratio::paired(many_t, one_t), Ratio::paired(many_p, one_p))
                {
                    verdicts.push(format!("{name} {}: throughput {t}, p50 {p}", case.id));
                }
            }
        }
        self.body.push('\n');
        if !verdicts.is_empty() {
            let line = format!(
                "on {brokers} Kafka nodes against {own}, each contender's figure over its own, paired by round: {}.",
                verdicts.join("; ")
            );
            let _ = writeln!(self.body, "In short, {line}\n");
            let mark = self.unsteady_mark(&cases);
            self.verdicts.push(format!("**Replication** {line}{mark}"));
        }
    }
}

/// CPU time all Kafka nodes spent per checkout (ms of one core): their share
/// of a core for 1/throughput seconds each.
fn kafka_cpu_ms_per_checkout(sample: &Sample) -> f64 {
    let percent: f64 =
        sample.resources.iter().filter(|(k, _)| k.starts_with("kafka")).map(|(_, u)| u.cpu_percent).sum();
    10.0 * percent / sample.throughput.max(1e-9)
}

/// A table cell: the metric's median and range over `samples` (`–` when no
/// sample has it).
fn spread_cell(samples: &[&Sample], metric: &dyn Fn(&Sample) -> f64) -> String {
    Spread::of(samples.iter().map(|s| metric(s))).map_or_else(|| "–".to_owned(), |s| s.to_string())
}

/// A table cell: how many of `samples` passed the steady-state rule
/// ([`HALVES_WITHIN`]), and the largest difference between halves.
fn steady_cell(samples: &[&Sample]) -> String {
    let steady = samples.iter().filter(|s| s.steady()).count();
    let worst = samples.iter().map(|s| s.drift()).fold(0.0, f64::max);
    format!("{steady}/{} (≤{:.0}%)", samples.len(), 100.0 * worst)
}

/// A table cell: `OK`, or how many invariants broke, in bold.
fn invariants_cell(samples: &[&Sample]) -> String {
    match samples.iter().map(|s| s.violations.len()).sum::<usize>() {
        0 => "OK".to_owned(),
        n => format!("**{n} broken**"),
    }
}

/// How each stack warmed up (see [`crate::run::local::LocalStack::warm_up`]).
fn warm_up_section(plan: &crate::compare::Plan, warm_ups: &[crate::compare::WarmUp]) -> String {
    use crate::run::local::STEADY_WITHIN;
    use crate::timeouts::WARM_UP_AT_MOST;
    if warm_ups.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "## Warm-up\n\nEvery stack ran the warm-up load (stress, 32 clients, its own data) round after round, for at \
         least {} s of load and until two rounds in a row agreed within {:.0}% (at most {} s): the broker's JVM \
         compiles its hot paths during the first minute of load. Nothing of it is in the figures above. \
         Checkouts/s per round; a warm-up that reached the cap first is marked, and so is every verdict on a \
         case that ran on its stack:\n\n| contender | round | Kafka nodes | links | warm-up rounds | steady |\n\
         |---|---|---|---|---|---|\n",
        plan.warmup_at_least.as_secs(),
        100.0 * STEADY_WITHIN,
        WARM_UP_AT_MOST.max(plan.warmup_at_least).as_secs()
    );
    for w in warm_ups {
        let rates: Vec<String> = w.throughputs.iter().map(|t| short(*t)).collect();
        let steady = if w.steady { "yes" } else { "**no: reached the cap**" };
        let links = if w.links { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {links} | {} | {steady} |",
            w.contender,
            w.round + 1,
            w.brokers,
            rates.join(", ")
        );
    }
    out.push('\n');
    out
}

fn context_section(context: &RunContext) -> String {
    let mut out = String::from("## Context\n\n| | |\n|---|---|\n");
    let _ = writeln!(out, "| started | {} |", context.started_at);
    let _ = writeln!(out, "| commit | `{}`{} |", context.commit, if context.dirty { " (dirty)" } else { "" });
    let _ = writeln!(out, "| CPU | {} x {} |", context.cpus, context.cpu_model);
    let _ = writeln!(out, "| memory | {} MiB |", context.memory_mib);
    let versions: BTreeMap<&String, &String> = context.versions.iter().collect();
    for (k, v) in versions {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    for (k, v) in &context.settings {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Plan;
    use crate::run::load::Second;

    fn sample(case: &str, contender: &str, throughput: f64, violations: usize) -> Sample {
        Sample {
            case: case.into(),
            contender: contender.into(),
            round: 0,
            repeat: 0,
            throughput,
            checkouts: 100,
            latency_ms: crate::compare::sample::Percentiles { p50: 5.0, p90: 9.0, p99: 20.0, p999: 30.0, max: 40.0 },
            halves_per_s: [throughput, throughput],
            first: crate::compare::sample::Population {
                checkouts: 80,
                per_s: throughput * 0.8,
                latency_ms: crate::compare::sample::Percentiles {
                    p50: 6.0,
                    p90: 9.0,
                    p99: 20.0,
                    p999: 30.0,
                    max: 40.0,
                },
            },
            repeats: crate::compare::sample::Population {
                checkouts: 20,
                per_s: throughput * 0.2,
                latency_ms: crate::compare::sample::Percentiles { p50: 2.0, p90: 3.0, p99: 4.0, p999: 5.0, max: 6.0 },
            },
            cdf: vec![(1.0, 0.1), (5.0, 0.5), (40.0, 1.0)],
            statuses: BTreeMap::from([("200".into(), 90), ("400".into(), 10)]),
            aborts: BTreeMap::from([("out-of-stock".into(), 10)]),
            timeline: vec![Second { ok: 50, rejected: 5, failed: 0 }; 2],
            faults: Vec::new(),
            settled_s: Some(0.1),
            in_flight_at_end: 0,
            resources: BTreeMap::new(),
            counters: BTreeMap::new(),
            violations: vec!["Credit".into(); violations],
            course: None,
            wal_flush: Some(crate::run::physical::WalFlush { commit_ms: 2.5, round_trip_ms: 0.5 }),
            ceiling: Some(crate::run::ceiling::Ceiling {
                database_per_s: 2.0 * throughput,
                database_paid: 1,
                replayed: 1,
                kafka: None,
                first: 0,
                services_per_s: None,
            }),
            breakdown: None,
        }
    }

    fn context() -> RunContext {
        RunContext {
            started_at: "2026-11-25T00:00:00Z".into(),
            commit: "abc".into(),
            dirty: false,
            versions: BTreeMap::new(),
            cpu_model: "cpu".into(),
            cpus: 2,
            memory_mib: 2048,
            settings: BTreeMap::new(),
        }
    }

    /// A full plan with a sample per case, contender and round, some of
    /// them unsteady and drifting in ways a float must keep exactly.
    fn full_comparison() -> Comparison {
        let plan = Plan::full().ordered(9);
        let mut samples = Vec::new();
        for round in 0..plan.rounds {
            for case in plan.cases_of(round) {
                for (i, c) in plan.contenders.iter().enumerate() {
                    for repeat in 0..case.runs_in(round, plan.repeats) {
                        let tput = 100.0 + 37.1 * i as f64 + 3.3 * round as f64 + 0.1 / 3.0 * repeat as f64;
                        let mut s = sample(&case.id, &c.name, tput, 0);
                        (s.round, s.repeat) = (round, repeat);
                        s.halves_per_s = [tput, tput * (1.0 + 0.07 * repeat as f64)];
                        samples.push(s);
                    }
                }
            }
        }
        Comparison { plan, samples, warm_ups: Vec::new(), elapsed_s: 3601.5, brokers: 1 }
    }

    #[test]
    fn a_report_rebuilds_byte_for_byte_from_its_run_json() {
        let dir = std::env::temp_dir().join(format!("harness-rebuild-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let comparison = full_comparison();
        write(&dir, "r9", &context(), &comparison).unwrap();
        assert_eq!(differences(&dir.join("run.json"), &dir).unwrap(), Vec::<std::path::PathBuf>::new());
        // What the compare rendered from memory is what run.json renders.
        let (text, _, _) = render("r9", &context(), &comparison);
        assert_eq!(std::fs::read_to_string(dir.join("report.md")).unwrap(), text);
        // A changed byte, a missing chart and a stray chart are each found.
        std::fs::write(dir.join("report.md"), text.replacen("stress", "strexs", 1)).unwrap();
        let charts: Vec<_> = std::fs::read_dir(dir.join("charts")).unwrap().flatten().map(|e| e.path()).collect();
        std::fs::remove_file(&charts[0]).unwrap();
        std::fs::write(dir.join("charts").join("stray.svg"), "<svg/>").unwrap();
        let differing = differences(&dir.join("run.json"), &dir).unwrap();
        assert_eq!(differing.len(), 3, "{differing:?}");
        rebuild(&dir.join("run.json"), &dir).unwrap();
        assert_eq!(differences(&dir.join("run.json"), &dir).unwrap(), [dir.join("charts").join("stray.svg")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The committed run whose report must rebuild from its `run.json` (after
    /// a change to the rendering, `harness report results/<run>` rewrites it
    /// and the change shows in the commit).
    const COMMITTED_RUN: &str = "2026-12-08-02-00-compare";

    #[test]
    fn a_committed_report_rebuilds_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results").join(COMMITTED_RUN);
        let differing = differences(&dir.join("run.json"), &dir).unwrap();
        assert!(differing.is_empty(), "run `harness report {}`: {differing:?}", dir.display());
    }

    #[test]
    fn samples_that_drift_mark_their_verdict_and_the_distance_sweep_states_its_confound() {
        let (text, _, verdicts) = render("r8", &context(), &full_comparison());
        // Distance repeats drift by 7% (steady) and 14% (not) in passes 1 and 2.
        let line = verdicts.iter().find(|v| v.starts_with("**Distance: uniform stress**")).expect("distance verdict");
        assert!(line.contains("*(9 of 27 samples not steady: their halves differ by 10% or more)*"), "{line}");
        assert!(text.contains("**Confound:**"), "{text}");
        assert!(text.contains("| CPU busy |"), "{text}");
        let stress = verdicts.iter().find(|v| v.starts_with("**stress**")).expect("stress verdict");
        assert!(!stress.contains("not steady"), "{stress}");
    }

    #[test]
    fn the_hot_item_section_shows_the_physical_limit_of_one_row() {
        let plan = Plan::twopc_strategies();
        let samples: Vec<Sample> = plan
            .cases
            .iter()
            .flat_map(|case| plan.contenders.iter().map(|c| sample(&case.id, &c.name, 100.0, 0)))
            .collect();
        let (text, _, _) =
            render("r3", &context(), &Comparison { plan, samples, warm_ups: Vec::new(), elapsed_s: 60.0, brokers: 1 });
        // A 2 ms flush (2.5 ms commit, 0.5 ms round trip): 1000 / (3 x 2) and 1000 / 2.
        assert!(text.contains("One WAL flush on the stock database takes 2.00 ms"), "{text}");
        assert!(text.contains("at most 167 checkouts/s over 2PC"), "{text}");
        assert!(text.contains("and 500 checkouts/s over a saga"), "{text}");
    }

    #[test]
    fn the_replication_section_puts_each_case_beside_the_one_it_mirrors() {
        let plan = Plan::replication();
        let mut samples = Vec::new();
        for case in &plan.cases {
            for c in &plan.contenders {
                let replicated = case.brokers.is_some();
                let mut s = sample(&case.id, &c.name, if replicated { 50.0 } else { 100.0 }, 0);
                let kafka = crate::run::resources::Usage { cpu_percent: 40.0, ..Default::default() };
                let nodes = if replicated { 3 } else { 1 };
                s.resources = (0..nodes).map(|i| (format!("kafka#{i}"), kafka)).collect();
                samples.push(s);
            }
        }
        let (text, _, verdicts) =
            render("r4", &context(), &Comparison { plan, samples, warm_ups: Vec::new(), elapsed_s: 60.0, brokers: 1 });
        assert!(text.contains("## Replication: one Kafka node against 3"), "{text}");
        // 40% of a core at 100/s is 4 ms a checkout; three nodes at 50/s, 24 ms.
        assert!(text.contains("| stress | saga-par | 1 | 100 | 5.00 | 20.0 | 4.00 | OK |"), "{text}");
        assert!(text.contains("| stress-3-brokers | saga-par | 3 | 50.0 | 5.00 | 20.0 | 24.0 | OK |"), "{text}");
        let line = verdicts.iter().find(|v| v.starts_with("**Replication**")).expect("a replication verdict");
        assert!(
            line.contains("saga-seq clients-1-3-brokers: throughput 0.50x (1 round: no interval), p50 1.00x"),
            "{line}"
        );
        assert!(text.contains("### `kill-kafka-1-of-3`: kill kafka#1 at 3s, restart after 2s"), "{text}");
    }

    #[test]
    fn renders_every_section_with_charts_and_flags_broken_invariants() {
        let plan = Plan::quick();
        let mut samples = Vec::new();
        for case in &plan.cases {
            for (contender, tput) in [("saga-seq", 100.0), ("2pc", 300.0), ("saga-par", 150.0)] {
                let mut s = sample(&case.id, contender, tput, 0);
                let ms = [("commit flush", 3.0), ("Kafka hops", 5.0), ("unattributed", 2.0)];
                s.breakdown = Some(crate::run::breakdown::Breakdown {
                    ms: ms.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                    total_ms: 10.0,
                    checkouts: 7,
                    without_spans: 0,
                    dropped: 0,
                });
                samples.push(s);
            }
        }
        let warm_ups = vec![crate::compare::WarmUp {
            contender: "saga-seq".into(),
            round: 0,
            brokers: 1,
            links: false,
            throughputs: vec![301.0, 503.0, 542.0, 552.0],
            steady: true,
        }];
        let comparison = Comparison { plan: plan.clone(), samples, warm_ups, elapsed_s: 60.0, brokers: 1 };
        let (text, charts, verdicts) = render("r1", &context(), &comparison);
        // The yardstick: ceilings (twice the throughput here) and efficiency,
        // the breakdown with what it cannot attribute.
        assert!(text.contains("| 2pc | 300 | 600 | 0.50 |"), "{text}");
        // The two populations, and a verdict on the first alone.
        assert!(text.contains("| 2pc | 240 | 6.00 | 20.0 | 60.0 | 2.00 | 4.00 |"), "{text}");
        assert!(text.contains("**Yardstick.**") && text.contains("its database work alone 600/s"), "{text}");
        assert!(text.contains("| Kafka hops | 5.00 (50%) |"), "{text}");
        assert!(text.contains("| unattributed | 2.00 (20%) |") && text.contains("80% attributed"), "{text}");
        assert!(charts.iter().any(|(n, _)| n == "stress-breakdown.svg"));
        assert!(
            text.contains("## Warm-up") && text.contains("| saga-seq | 1 | 1 | no | 301, 503, 542, 552 | yes |"),
            "{text}"
        );
        assert!(!text.contains("warm-up not steady"), "{text}");
        assert!(text.starts_with("# Comparison r1"), "{text}");
        assert!(
            verdicts[0].contains("too few samples for a verdict on 2pc against saga-seq: 3.00x (1 round: no interval)"),
            "{verdicts:?}"
        );
        assert!(verdicts.iter().any(|v| v.starts_with("**wdm-consistency**")), "{verdicts:?}");
        assert!(verdicts.iter().any(|v| v.contains("kill-postgres-stock OK")), "{verdicts:?}");
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        for chart in ["stress-latency-cdf.svg", "aborts-wdm-consistency.svg", "timeline-kill-postgres-stock.svg"] {
            assert!(names.contains(&chart), "{names:?}");
            assert!(text.contains(&format!("(charts/{chart})")), "{chart} linked");
        }
        assert!(charts.iter().all(|(_, svg)| svg.starts_with("<svg")));

        // A warm-up that reached its cap marks the verdicts of its stack's cases.
        let mut warm_ups = comparison.warm_ups.clone();
        warm_ups[0].steady = false;
        let samples = comparison.samples.clone();
        let unsteady = Comparison { plan: plan.clone(), samples, warm_ups, elapsed_s: 60.0, brokers: 1 };
        let (text, _, verdicts) = render("r3", &context(), &unsteady);
        assert!(text.contains("| saga-seq | 1 | 1 | no | 301, 503, 542, 552 | **no: reached the cap** |"), "{text}");
        assert!(text.contains("Warm-ups that reached their cap before two rounds agreed: saga-seq round 1"), "{text}");
        assert!(
            verdicts[0].starts_with("**stress**") && verdicts[0].ends_with("*(warm-up not steady)*"),
            "{verdicts:?}"
        );
        let course = verdicts.iter().find(|v| v.starts_with("**wdm-consistency**")).unwrap();
        assert!(course.ends_with("*(warm-up not steady)*"), "{course}");

        // The course test's samples carry no counts here: not measured, and
        // the check fails.
        let course = verdicts.iter().find(|v| v.starts_with("**wdm-consistency**")).unwrap();
        assert!(course.contains("The four counts were **not measured** in 3 run(s): the check fails."), "{course}");
        assert!(text.contains("| saga-seq | not measured | not measured | not measured | not measured |"), "{text}");
        assert!(!comparison.all_consistent());

        let mut broken = comparison;
        broken.samples[1].violations = vec!["Stock".into()];
        let (text, _, verdicts) = render("r2", &context(), &broken);
        assert!(verdicts[0].contains("**INVARIANTS BROKEN** for 2pc (1 violations)"), "{verdicts:?}");
        assert!(text.contains("**1 broken**"));
    }
}
