//! Plain-language verdicts computed from the numbers: who wins a case, by how
//! much, and whether the difference is larger than the run-to-run spread.
//! Pure functions, so each wording rule has a unit test.

use std::fmt;

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

    /// Whether the two ranges do not overlap (with one sample each, any
    /// difference counts as separated: there is no spread to compare with).
    pub fn separated_from(&self, other: &Spread) -> bool {
        self.min > other.max || other.min > self.max
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
    /// 5xx replies and timeouts, summed over samples.
    pub failures: u64,
    /// Broken invariants, summed over samples.
    pub violations: usize,
    /// Longest time to consistency after the load, seconds.
    pub settle_s: f64,
}

/// Who has the highest median throughput, and how every other contender
/// compares to it.
pub fn throughput_verdict(standings: &[Standing]) -> String {
    let Some(best) = standings.iter().max_by(|a, b| a.throughput.median.total_cmp(&b.throughput.median)) else {
        return "no samples".to_owned();
    };
    let others: Vec<String> = standings
        .iter()
        .filter(|s| s.contender != best.contender)
        .map(|s| {
            let ratio = best.throughput.median / s.throughput.median.max(1e-9);
            let noise =
                if best.throughput.separated_from(&s.throughput) { "" } else { ", within the run-to-run spread" };
            format!("{:.2}x {}{noise}", ratio, s.contender)
        })
        .collect();
    let fastest_p99 = standings.iter().min_by(|a, b| a.p99.median.total_cmp(&b.p99.median));
    let mut text = format!(
        "**{}** has the highest throughput ({} checkouts/s): {}.",
        best.contender,
        short(best.throughput.median),
        others.join("; ")
    );
    if let Some(fast) = fastest_p99 {
        let p99s: Vec<String> =
            standings.iter().map(|s| format!("{} {} ms", s.contender, short(s.p99.median))).collect();
        text.push_str(&format!(" Lowest p99 latency: **{}** ({}).", fast.contender, p99s.join(", ")));
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

/// Verdict of a fault case: correctness, failed replies, recovery.
pub fn fault_verdict(standings: &[Standing]) -> String {
    let failures: Vec<String> = standings.iter().map(|s| format!("{} {}", s.contender, s.failures)).collect();
    let settle: Vec<String> = standings.iter().map(|s| format!("{} {} s", s.contender, short(s.settle_s))).collect();
    let least = standings.iter().min_by_key(|s| s.failures);
    let who = match least {
        Some(l) if standings.iter().filter(|s| s.failures == l.failures).count() == 1 => {
            format!(" Fewest failed checkouts: **{}**.", l.contender)
        }
        _ => String::new(),
    };
    format!(
        "{} Checkouts answered 5xx or not at all: {}.{who} Time to consistency after the load: {}.",
        invariants_verdict(standings),
        failures.join(", "),
        settle.join(", ")
    )
}

/// For a sweep: at each point, who leads and by how much over each other.
pub fn sweep_verdict(x_name: &str, points: &[(f64, Vec<Standing>)]) -> String {
    let parts: Vec<String> = points
        .iter()
        .filter_map(|(x, standings)| {
            let mut sorted: Vec<&Standing> = standings.iter().collect();
            sorted.sort_by(|a, b| b.throughput.median.total_cmp(&a.throughput.median));
            let best = sorted.first()?;
            let ratios: Vec<String> = sorted[1..]
                .iter()
                .map(|s| format!("{:.2}x {}", best.throughput.median / s.throughput.median.max(1e-9), s.contender))
                .collect();
            Some(format!("at {x_name} {} **{}** leads ({})", x_label(*x), best.contender, ratios.join(", ")))
        })
        .collect();
    if parts.is_empty() { "no samples".to_owned() } else { format!("Throughput: {}.", parts.join("; ")) }
}

/// How each contender's throughput and p99 move from the nearest to the
/// farthest point of a distance sweep, and at which distance the leader of
/// each changes, if it does (a leader by less than the run-to-run spread
/// still counts: one sample per point has none).
pub fn distance_verdict(points: &[(f64, Vec<Standing>)]) -> String {
    let (Some((near, first)), Some((far, last))) = (points.first(), points.last()) else {
        return "no samples".to_owned();
    };
    let mut moves = Vec::new();
    for standing in first {
        let Some(end) = last.iter().find(|s| s.contender == standing.contender) else { continue };
        let (t0, t1) = (standing.throughput.median, end.throughput.median);
        let (p0, p1) = (standing.p99.median, end.p99.median);
        moves.push(format!(
            "{} {}→{} checkouts/s ({:.2}x), p99 {}→{} ms ({:.2}x)",
            standing.contender,
            short(t0),
            short(t1),
            t1 / t0.max(1e-9),
            short(p0),
            short(p1),
            p1 / p0.max(1e-9)
        ));
    }
    let leaders = |better: &dyn Fn(&Standing, &Standing) -> std::cmp::Ordering| -> Vec<(f64, String)> {
        points
            .iter()
            .filter_map(|(x, standings)| Some((*x, standings.iter().min_by(|a, b| better(a, b))?.contender.clone())))
            .collect()
    };
    let throughput = leaders(&|a, b| b.throughput.median.total_cmp(&a.throughput.median));
    let p99 = leaders(&|a, b| a.p99.median.total_cmp(&b.p99.median));
    format!(
        "From {} to {} ms added per round trip: {}. Highest throughput: {}. Lowest p99: {}.",
        x_label(*near),
        x_label(*far),
        moves.join("; "),
        leader_changes(&throughput),
        leader_changes(&p99)
    )
}

/// `**a** at every distance`, or `**a** up to 1 ms, **b** from 2 ms`.
fn leader_changes(leaders: &[(f64, String)]) -> String {
    let mut runs: Vec<(f64, f64, &str)> = Vec::new();
    for (x, name) in leaders {
        match runs.last_mut() {
            Some((_, to, last)) if *last == name.as_str() => *to = *x,
            _ => runs.push((*x, *x, name)),
        }
    }
    match runs.as_slice() {
        [] => "none".to_owned(),
        [(_, _, only)] => format!("**{only}** at every distance"),
        _ => {
            let parts: Vec<String> = runs
                .iter()
                .enumerate()
                .map(|(i, (from, to, name))| match i {
                    0 => format!("**{name}** up to {} ms", x_label(*to)),
                    i if i + 1 == runs.len() => format!("**{name}** from {} ms", x_label(*from)),
                    _ => format!("**{name}** from {} to {} ms", x_label(*from), x_label(*to)),
                })
                .collect();
            format!("{} (the winner changes)", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(name: &str, tput: &[f64], p99: f64, failures: u64, violations: usize) -> Standing {
        Standing {
            contender: name.into(),
            throughput: Spread::of(tput.iter().copied()).unwrap(),
            p99: Spread::of([p99]).unwrap(),
            failures,
            violations,
            settle_s: 0.5,
        }
    }

    #[test]
    fn spread_is_median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([]), None);
        assert_eq!(s.to_string(), "2.00 (1.00–3.00)");
        assert!(Spread::of([1.0, 2.0]).unwrap().separated_from(&Spread::of([3.0, 4.0]).unwrap()));
        assert!(!Spread::of([1.0, 3.5]).unwrap().separated_from(&Spread::of([3.0, 4.0]).unwrap()));
    }

    #[test]
    fn names_the_winner_and_ratio_and_flags_noise() {
        let v = throughput_verdict(&[
            standing("saga-seq", &[100.0, 110.0, 90.0], 900.0, 0, 0),
            standing("2pc", &[300.0, 310.0, 290.0], 300.0, 0, 0),
            standing("saga-par", &[280.0, 320.0, 295.0], 600.0, 0, 0),
        ]);
        assert!(v.starts_with("**2pc** has the highest throughput (300 checkouts/s)"), "{v}");
        assert!(v.contains("3.00x saga-seq;"), "{v}");
        assert!(v.contains("1.02x saga-par, within the run-to-run spread"), "{v}");
        assert!(v.contains("Lowest p99 latency: **2pc**"), "{v}");
    }

    #[test]
    fn a_distance_sweep_names_where_the_winner_changes() {
        let at = |x: f64, twopc: f64, saga: f64, twopc_p99: f64| {
            (x, vec![standing("2pc", &[twopc], twopc_p99, 0, 0), standing("saga-par", &[saga], 50.0, 0, 0)])
        };
        let points = [at(0.0, 400.0, 200.0, 20.0), at(1.0, 300.0, 190.0, 40.0), at(5.0, 100.0, 150.0, 200.0)];
        let v = distance_verdict(&points);
        assert!(v.starts_with("From 0 to 5 ms added per round trip: 2pc 400→100 checkouts/s (0.25x)"), "{v}");
        assert!(v.contains("p99 20.0→200 ms (10.00x)"), "{v}");
        assert!(
            v.contains("Highest throughput: **2pc** up to 1 ms, **saga-par** from 5 ms (the winner changes)."),
            "{v}"
        );
        assert!(v.contains("Lowest p99: **2pc** up to 1 ms, **saga-par** from 5 ms"), "{v}");
        let steady = distance_verdict(&[at(0.0, 400.0, 200.0, 20.0), at(2.0, 300.0, 190.0, 30.0)]);
        assert!(steady.contains("Highest throughput: **2pc** at every distance."), "{steady}");
        assert_eq!(distance_verdict(&[]), "no samples");
        let three = [(0.0, "a".to_owned()), (1.0, "b".to_owned()), (2.0, "b".to_owned()), (5.0, "a".to_owned())];
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
        assert!(f.contains("a 23, b 0.") && f.contains("Fewest failed checkouts: **b**"), "{f}");
    }

    #[test]
    fn sweeps_report_each_point() {
        let v = sweep_verdict(
            "clients",
            &[
                (1.0, vec![standing("saga", &[20.0], 50.0, 0, 0), standing("2pc", &[140.0], 9.0, 0, 0)]),
                (8.0, vec![standing("saga", &[200.0], 50.0, 0, 0), standing("2pc", &[100.0], 9.0, 0, 0)]),
            ],
        );
        assert_eq!(v, "Throughput: at clients 1 **2pc** leads (7.00x saga); at clients 8 **saga** leads (2.00x 2pc).");
    }
}
