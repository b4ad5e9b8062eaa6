//! Plain-language verdicts computed from the numbers: who wins a case, by how
//! much, and whether the data separates the contenders at all (a ratio with
//! its 95% interval, [`super::stats`]). Pure functions, so each wording rule
//! has a unit test.

use std::fmt;

use super::stats::{Call, Key, Ratio};

/// Median and range of one metric over a contender's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1], n })
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n > 1 && self.min != self.max {
            write!(f, "{} ({}–{})", short(self.median), short(self.min), short(self.max))
        } else {
            f.write_str(&short(self.median))
        }
    }
}

/// A number with about three significant digits.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio to two decimals (`1.35`).
pub fn short_ratio(v: f64) -> String {
    format!("{v:.2}")
}

/// A swept parameter's value as written on the command line (`8`, `0.5`).
pub fn x_label(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") }
}

/// One contender's figures for one case.
#[derive(Debug, Clone)]
pub struct Standing {
    /// Contender name.
    pub contender: String,
    /// Checkouts per second.
    pub throughput: Spread,
    /// p99 latency, ms.
    pub p99: Spread,
    /// Each sample's throughput with its (round, repeat), for paired ratios.
    pub throughput_by_key: Vec<(Key, f64)>,
    /// Each sample's p99 with its (round, repeat).
    pub p99_by_key: Vec<(Key, f64)>,
    /// 5xx replies and timeouts, summed over samples.
    pub failures: u64,
    /// Broken invariants, summed over samples.
    pub violations: usize,
    /// Longest time to consistency after the load, seconds.
    pub settle_s: f64,
}

/// The call on `a` against `b` for throughput (more is better).
pub fn throughput_call(a: &Standing, b: &Standing) -> Option<Call> {
    Ratio::paired(&a.throughput_by_key, &b.throughput_by_key).map(Call::on)
}

/// The call on `a` against `b` for p99 latency (less is better: the ratio is
/// `b`'s p99 over `a`'s, so a lead reads the same way as for throughput).
pub fn p99_call(a: &Standing, b: &Standing) -> Option<Call> {
    Ratio::paired(&b.p99_by_key, &a.p99_by_key).map(Call::on)
}

/// The contender with the best median, and the call on it against every
/// other (`None`: no samples of the same round to pair).
type AgainstBest<'s> = (&'s Standing, Vec<(&'s Standing, Option<Call>)>);

/// The contender with the best median under `better`, and the call on it
/// against every other (`call`).
fn calls_against_best(
    standings: &[Standing],
    better: impl Fn(&Standing, &Standing) -> std::cmp::Ordering,
    call: impl Fn(&Standing, &Standing) -> Option<Call>,
) -> Option<AgainstBest<'_>> {
    let best = standings.iter().min_by(|a, b| better(a, b))?;
    let others = standings.iter().filter(|s| s.contender != best.contender).map(|s| (s, call(best, s))).collect();
    Some((best, others))
}

/// `calls` as clauses, each naming both sides.
fn describe_calls(best: &Standing, calls: &[(&Standing, Option<Call>)]) -> String {
    let parts: Vec<String> = calls
        .iter()
        .map(|(other, call)| match call {
            Some(call) => call.describe(&best.contender, &other.contender),
            None => {
                format!("{} against {}: not measured (no samples of the same round)", best.contender, other.contender)
            }
        })
        .collect();
    parts.join("; ")
}

/// Throughput and p99 of a case, over `what` (the checkouts the standings
/// count): each contender's median, then the best median against every other
/// as a paired ratio with its 95% interval, a winner named only where the
/// interval excludes 1 and the lead passes [`super::stats::PRACTICAL_LEAD`].
/// A p99 ratio is the other contender's p99 over the leader's.
pub fn throughput_verdict(standings: &[Standing], what: &str) -> String {
    let Some((best, calls)) =
        calls_against_best(standings, |a, b| b.throughput.median.total_cmp(&a.throughput.median), throughput_call)
    else {
        return "no samples".to_owned();
    };
    let medians: Vec<String> =
        standings.iter().map(|s| format!("{} {}", s.contender, short(s.throughput.median))).collect();
    let mut text = format!("Throughput (median {what}/s: {}): {}.", medians.join(", "), describe_calls(best, &calls));
    if let Some((fast, calls)) = calls_against_best(standings, |a, b| a.p99.median.total_cmp(&b.p99.median), p99_call) {
        let p99s: Vec<String> = standings.iter().map(|s| format!("{} {}", s.contender, short(s.p99.median))).collect();
        text.push_str(&format!(
            " p99 latency of the {what} (median ms: {}; a ratio is the other's p99 over the leader's): {}.",
            p99s.join(", "),
            describe_calls(fast, &calls)
        ));
    }
    text
}

/// The correctness sentence every verdict starts with.
pub fn invariants_verdict(standings: &[Standing]) -> String {
    let broken: Vec<String> = standings
        .iter()
        .filter(|s| s.violations > 0)
        .map(|s| format!("{} ({} violations)", s.contender, s.violations))
        .collect();
    if broken.is_empty() {
        "Every invariant held for every contender.".to_owned()
    } else {
        format!("**INVARIANTS BROKEN** for {}: the numbers below do not count.", broken.join(", "))
    }
}

/// Verdict of a fault case: correctness, failed replies, recovery. The
/// counts come from one run each: stated, not ranked.
pub fn fault_verdict(standings: &[Standing]) -> String {
    let failures: Vec<String> = standings.iter().map(|s| format!("{} {}", s.contender, s.failures)).collect();
    let settle: Vec<String> = standings.iter().map(|s| format!("{} {} s", s.contender, short(s.settle_s))).collect();
    format!(
        "{} Checkouts answered 5xx or not at all: {}. Time to consistency after the load: {}.",
        invariants_verdict(standings),
        failures.join(", "),
        settle.join(", ")
    )
}

/// Who leads at one point of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lead {
    /// This contender, with a clear call against every other.
    Clear(String),
    /// The data does not separate the best from every other.
    NoClear,
    /// Too few rounds at this point for any call.
    TooFew,
}

/// The lead at one point of a sweep: a contender with a clear call against
/// every other ([`throughput_call`] or [`p99_call`]), none, or too few samples.
fn point_lead(
    standings: &[Standing],
    better: impl Fn(&Standing, &Standing) -> std::cmp::Ordering,
    call: impl Fn(&Standing, &Standing) -> Option<Call>,
) -> Lead {
    let Some((best, calls)) = calls_against_best(standings, better, call) else { return Lead::TooFew };
    if calls.iter().all(|(_, c)| matches!(c, Some(Call::Leads(_)))) {
        Lead::Clear(best.contender.clone())
    } else if calls.iter().any(|(_, c)| matches!(c, Some(Call::TooFewSamples(_)) | None)) {
        Lead::TooFew
    } else {
        Lead::NoClear
    }
}

/// For a sweep: at each point, who leads by median and whether the data
/// separates it from each other contender.
pub fn sweep_verdict(x_name: &str, points: &[(f64, Vec<Standing>)]) -> String {
    let parts: Vec<String> = points
        .iter()
        .filter_map(|(x, standings)| {
            let (best, calls) = calls_against_best(
                standings,
                |a, b| b.throughput.median.total_cmp(&a.throughput.median),
                throughput_call,
            )?;
            Some(format!("at {x_name} {}: {}", x_label(*x), describe_calls(best, &calls)))
        })
        .collect();
    if parts.is_empty() { "no samples".to_owned() } else { format!("Throughput: {}.", parts.join("; ")) }
}

/// How each contender's throughput and p99 move from the nearest to the
/// farthest point of a distance sweep (medians), and at which distance the
/// leader of each changes, if it does. A point counts a leader only where the
/// data separates it from every other contender; with fewer rounds per point
/// than a verdict needs, it says so.
pub fn distance_verdict(points: &[(f64, Vec<Standing>)]) -> String {
    let (Some((near, first)), Some((far, last))) = (points.first(), points.last()) else {
        return "no samples".to_owned();
    };
    let mut moves = Vec::new();
    for standing in first {
        let Some(end) = last.iter().find(|s| s.contender == standing.contender) else { continue };
        let (t0, t1) = (standing.throughput.median, end.throughput.median);
        let (p0, p1) = (standing.p99.median, end.p99.median);
        // The far point over the near one, paired by sample key (a pass).
        let ratio = |far: &[(Key, f64)], near: &[(Key, f64)]| {
            Ratio::paired(far, near).map_or_else(|| "not measured".to_owned(), |r| r.to_string())
        };
        moves.push(format!(
            "{} {}→{} checkouts/s ({}), p99 {}→{} ms ({})",
            standing.contender,
            short(t0),
            short(t1),
            ratio(&end.throughput_by_key, &standing.throughput_by_key),
            short(p0),
            short(p1),
            ratio(&end.p99_by_key, &standing.p99_by_key)
        ));
    }
    let throughput: Vec<(f64, Lead)> = points
        .iter()
        .map(|(x, standings)| {
            (*x, point_lead(standings, |a, b| b.throughput.median.total_cmp(&a.throughput.median), throughput_call))
        })
        .collect();
    let p99: Vec<(f64, Lead)> = points
        .iter()
        .map(|(x, standings)| (*x, point_lead(standings, |a, b| a.p99.median.total_cmp(&b.p99.median), p99_call)))
        .collect();
    let samples = first.iter().map(|s| s.throughput.n).min().unwrap_or(0);
    format!(
        "From {} to {} ms added per round trip (medians of {samples} sample(s) per point): {}. Highest \
         throughput: {}. Lowest p99: {}.",
        x_label(*near),
        x_label(*far),
        moves.join("; "),
        leader_changes(&throughput),
        leader_changes(&p99)
    )
}

/// `**a** at every distance`, or `**a** up to 1 ms, **b** from 2 ms`; a
/// stretch without a clear leader reads "no clear leader", one without
/// enough samples "too few samples for a verdict".
fn leader_changes(leaders: &[(f64, Lead)]) -> String {
    let mut runs: Vec<(f64, f64, &Lead)> = Vec::new();
    for (x, lead) in leaders {
        match runs.last_mut() {
            Some((_, to, last)) if *last == lead => *to = *x,
            _ => runs.push((*x, *x, lead)),
        }
    }
    let who = |lead: &Lead| match lead {
        Lead::Clear(name) => format!("**{name}**"),
        Lead::NoClear => "no clear leader".to_owned(),
        Lead::TooFew => "too few samples for a verdict".to_owned(),
    };
    match runs.as_slice() {
        [] => "none".to_owned(),
        [(_, _, only)] => format!("{} at every distance", who(only)),
        _ => {
            let parts: Vec<String> = runs
                .iter()
                .enumerate()
                .map(|(i, (from, to, lead))| match i {
                    0 => format!("{} up to {} ms", who(lead), x_label(*to)),
                    i if i + 1 == runs.len() => format!("{} from {} ms", who(lead), x_label(*from)),
                    _ => format!("{} from {} to {} ms", who(lead), x_label(*from), x_label(*to)),
                })
                .collect();
            let clear: std::collections::BTreeSet<&str> = runs
                .iter()
                .filter_map(|(_, _, lead)| match lead {
                    Lead::Clear(name) => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            let note = if clear.len() > 1 { " (the winner changes)" } else { "" };
            format!("{}{note}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contender's figures, one sample per round: `tput[i]` and `p99[i]`
    /// (the last p99 repeated when fewer are given).
    fn standing_with(name: &str, tput: &[f64], p99: &[f64], failures: u64, violations: usize) -> Standing {
        let p99_at = |i: usize| p99[i.min(p99.len() - 1)];
        Standing {
            contender: name.into(),
            throughput: Spread::of(tput.iter().copied()).unwrap(),
            p99: Spread::of((0..tput.len()).map(p99_at)).unwrap(),
            throughput_by_key: tput.iter().enumerate().map(|(i, t)| ((i, 0), *t)).collect(),
            p99_by_key: (0..tput.len()).map(|i| ((i, 0), p99_at(i))).collect(),
            failures,
            violations,
            settle_s: 0.5,
        }
    }

    fn standing(name: &str, tput: &[f64], p99: f64, failures: u64, violations: usize) -> Standing {
        standing_with(name, tput, &[p99], failures, violations)
    }

    #[test]
    fn spread_is_median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([]), None);
        assert_eq!(s.to_string(), "2.00 (1.00–3.00)");
    }

    #[test]
    fn names_a_winner_only_where_the_interval_excludes_one() {
        let v = throughput_verdict(
            &[
                standing_with("saga-seq", &[100.0, 110.0, 90.0], &[900.0, 950.0, 850.0], 0, 0),
                standing_with("2pc", &[300.0, 310.0, 290.0], &[300.0, 320.0, 310.0], 0, 0),
                standing_with("saga-par", &[280.0, 320.0, 295.0], &[600.0, 280.0, 400.0], 0, 0),
            ],
            "checkouts",
        );
        assert!(v.starts_with("Throughput (median checkouts/s: saga-seq 100, 2pc 300, saga-par 295): "), "{v}");
        assert!(v.contains("**2pc** leads saga-seq: 3.01x (95% CI "), "{v}");
        assert!(v.contains("no clear winner between 2pc and saga-par: 1.01x (95% CI 0.88–1.15, 3 rounds)"), "{v}");
        assert!(
            v.contains(
                "p99 latency of the checkouts (median ms: saga-seq 900, 2pc 310, saga-par 400; a ratio is the \
                 other's p99 over the leader's): **2pc** leads saga-seq"
            ),
            "{v}"
        );
        assert!(v.contains("no clear winner between 2pc and saga-par"), "{v}");
        // One sample each: no interval, no verdict.
        let once =
            throughput_verdict(&[standing("a", &[300.0], 1.0, 0, 0), standing("b", &[100.0], 1.0, 0, 0)], "checkouts");
        assert!(once.contains("too few samples for a verdict on a against b: 3.00x (1 round: no interval)"), "{once}");
    }

    #[test]
    fn a_distance_sweep_names_where_the_winner_changes() {
        let at = |x: f64, twopc: f64, saga: f64, twopc_p99: f64| {
            let spread = |v: f64| [v, v * 1.02, v * 0.98];
            (
                x,
                vec![
                    standing_with("2pc", &spread(twopc), &spread(twopc_p99), 0, 0),
                    standing_with("saga-par", &spread(saga), &[50.0, 51.0, 49.0], 0, 0),
                ],
            )
        };
        let points = [at(0.0, 400.0, 200.0, 20.0), at(1.0, 300.0, 190.0, 40.0), at(5.0, 100.0, 150.0, 200.0)];
        let v = distance_verdict(&points);
        assert!(
            v.starts_with(
                "From 0 to 5 ms added per round trip (medians of 3 sample(s) per point): 2pc 400→100 checkouts/s \
                 (0.25x (95% CI 0.25–0.25, 3 rounds))"
            ),
            "{v}"
        );
        assert!(v.contains("p99 20.0→200 ms (10.00x (95% CI 10.00–10.00, 3 rounds))"), "{v}");
        assert!(
            v.contains("Highest throughput: **2pc** up to 1 ms, **saga-par** from 5 ms (the winner changes)."),
            "{v}"
        );
        assert!(v.contains("Lowest p99: **2pc** up to 1 ms, **saga-par** from 5 ms"), "{v}");
        let steady = distance_verdict(&[at(0.0, 400.0, 200.0, 20.0), at(2.0, 300.0, 190.0, 30.0)]);
        assert!(steady.contains("Highest throughput: **2pc** at every distance."), "{steady}");
        // Within the noise at 2 ms: no leader there, and no change of winner.
        let close = distance_verdict(&[at(0.0, 400.0, 200.0, 20.0), at(2.0, 200.0, 199.0, 30.0)]);
        assert!(close.contains("Highest throughput: **2pc** up to 0 ms, no clear leader from 2 ms."), "{close}");
        // One sample per point: no leader anywhere.
        let single =
            |x: f64| (x, vec![standing("2pc", &[400.0], 1.0, 0, 0), standing("saga-par", &[100.0], 1.0, 0, 0)]);
        let once = distance_verdict(&[single(0.0), single(5.0)]);
        assert!(once.contains("Highest throughput: too few samples for a verdict at every distance."), "{once}");
        assert!(once.contains("(medians of 1 sample(s) per point)"), "{once}");
        assert_eq!(distance_verdict(&[]), "no samples");
        let name = |n: &str| Lead::Clear(n.to_owned());
        let three = [(0.0, name("a")), (1.0, name("b")), (2.0, name("b")), (5.0, name("a"))];
        assert_eq!(
            leader_changes(&three),
            "**a** up to 0 ms, **b** from 1 to 2 ms, **a** from 5 ms (the winner changes)"
        );
    }

    #[test]
    fn broken_invariants_come_first_and_loud() {
        let ok = [standing("a", &[1.0], 1.0, 0, 0), standing("b", &[1.0], 1.0, 0, 0)];
        assert_eq!(invariants_verdict(&ok), "Every invariant held for every contender.");
        let bad = [standing("a", &[1.0], 1.0, 0, 2), standing("b", &[1.0], 1.0, 0, 0)];
        assert!(invariants_verdict(&bad).starts_with("**INVARIANTS BROKEN** for a (2 violations)"));
        let f = fault_verdict(&[standing("a", &[1.0], 1.0, 23, 0), standing("b", &[1.0], 1.0, 0, 0)]);
        assert!(f.contains("a 23, b 0.") && !f.contains("**b**"), "one run each: counts, no winner: {f}");
    }

    #[test]
    fn sweeps_report_each_point() {
        let v = sweep_verdict(
            "clients",
            &[
                (
                    1.0,
                    vec![
                        standing("saga", &[20.0, 21.0, 19.0], 50.0, 0, 0),
                        standing("2pc", &[140.0, 150.0, 130.0], 9.0, 0, 0),
                    ],
                ),
                (
                    8.0,
                    vec![
                        standing("saga", &[200.0, 150.0, 210.0], 50.0, 0, 0),
                        standing("2pc", &[190.0, 160.0, 200.0], 9.0, 0, 0),
                    ],
                ),
            ],
        );
        assert!(v.starts_with("Throughput: at clients 1: **2pc** leads saga: 6.99x (95% CI "), "{v}");
        assert!(v.contains("; at clients 8: no clear winner between saga and 2pc: 1.01x (95% CI "), "{v}");
    }
}
