//! Ratios between contenders with 95% intervals, and the rule that names a
//! winner only when the data separates them.
//!
//! Contenders of one round run one after the other on one machine, each on a
//! fresh stack, so a drift of the machine between rounds (a quarter of its
//! speed on a shared 2-core host) hits all of them; the ratio of two
//! contenders' figures *within* a round cancels most of it. The unit is the
//! round: a contender's repeats within a round ran back to back on one stack,
//! so they show that stack's noise, not the difference between stacks (its
//! warm-up, its slot in the round), and are first averaged (on a log scale)
//! into one figure per round. Rounds are then paired, the ratio is the
//! geometric mean of the per-round ratios, and its interval is Student's t on
//! their logarithms. With the three to five rounds a compare can afford, a
//! bootstrap's percentile interval is too narrow (it cannot show more spread
//! than the few rounds happen to have), while t widens with few rounds as it
//! should; on a log scale `a/b` and `b/a` get mirrored intervals.
//!
//! A winner is named only when the interval excludes 1 and the estimate is a
//! lead of at least [`PRACTICAL_LEAD`] (the threshold is on the estimate; the
//! interval decides whether there is a lead at all); otherwise there is no
//! clear winner. With fewer than [`MIN_ROUNDS`] paired rounds there are too
//! few samples for a verdict (one round is one stack per contender: no spread
//! across stacks to judge by). A report states a few such intervals per case
//! without a correction for multiple comparisons: each is a claim on its own.

use std::fmt;

use super::verdict::short_ratio;

/// The smallest lead worth a verdict: 5%. Below it a difference, however
/// certain, is within what a rerun on another day moves.
pub const PRACTICAL_LEAD: f64 = 1.05;

/// Where a sample sits in a compare: (round, repeat). Two contenders' samples
/// of the same round ran in one round, one after the other; the repeat is
/// averaged out within its round.
pub type Key = (usize, usize);

/// Paired rounds a verdict needs: with two, t's interval is degenerate when
/// the two ratios happen to agree.
pub const MIN_ROUNDS: usize = 3;

/// The 97.5% quantile of Student's t with `df` degrees of freedom (1..=30;
/// the normal's 1.96 beyond).
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// A ratio `a / b` estimated from paired samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// Geometric mean of the paired ratios.
    pub estimate: f64,
    /// 95% interval; `None` with fewer than [`MIN_ROUNDS`] rounds.
    pub interval: Option<(f64, f64)>,
    /// Paired rounds it rests on.
    pub pairs: usize,
    /// Samples left out because a figure was not a positive number (a run
    /// that answered nothing): said beside the ratio, never dropped silently.
    pub dropped: usize,
}

impl Ratio {
    /// `a / b` over the rounds in which both `a` and `b` have samples (each
    /// side's repeats in a round averaged on a log scale); `None` when no
    /// round has both.
    pub fn paired(a: &[(Key, f64)], b: &[(Key, f64)]) -> Option<Ratio> {
        let mut dropped = 0;
        let mut per_round = |samples: &[(Key, f64)]| {
            let mut logs: std::collections::BTreeMap<usize, Vec<f64>> = std::collections::BTreeMap::new();
            for ((round, _), x) in samples {
                if *x > 0.0 && x.is_finite() {
                    logs.entry(*round).or_default().push(x.ln());
                } else {
                    dropped += 1;
                }
            }
            logs.into_iter().map(|(round, l)| (round, l.iter().sum::<f64>() / l.len() as f64)).collect::<Vec<_>>()
        };
        let (a, b) = (per_round(a), per_round(b));
        let logs: Vec<f64> =
            a.iter().filter_map(|(round, x)| b.iter().find(|(r, _)| r == round).map(|(_, y)| x - y)).collect();
        let n = logs.len();
        if n == 0 {
            return None;
        }
        let mean = logs.iter().sum::<f64>() / n as f64;
        let interval = (n >= MIN_ROUNDS).then(|| {
            let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let half = t975(n - 1) * (var / n as f64).sqrt();
            ((mean - half).exp(), (mean + half).exp())
        });
        Some(Ratio { estimate: mean.exp(), interval, pairs: n, dropped })
    }

    /// The same comparison seen from the other side (`b / a`).
    pub fn inverse(self) -> Ratio {
        Ratio { estimate: 1.0 / self.estimate, interval: self.interval.map(|(lo, hi)| (1.0 / hi, 1.0 / lo)), ..self }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounds = if self.pairs == 1 { "1 round".to_owned() } else { format!("{} rounds", self.pairs) };
        let dropped = if self.dropped > 0 {
            format!(", {} sample(s) without a figure left out", self.dropped)
        } else {
            String::new()
        };
        match self.interval {
            Some((lo, hi)) => write!(
                f,
                "{}x (95% CI {}–{}, {rounds}{dropped})",
                short_ratio(self.estimate),
                short_ratio(lo),
                short_ratio(hi),
            ),
            None => write!(f, "{}x ({rounds}{dropped}: no interval)", short_ratio(self.estimate)),
        }
    }
}

/// What the data says about `a` against `b` on a figure where more is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Call {
    /// `a` leads: the interval of `a / b` lies above 1 and the estimate is at
    /// least [`PRACTICAL_LEAD`].
    Leads(Ratio),
    /// `b` leads (the ratio is still `a / b`, below 1).
    Trails(Ratio),
    /// The interval includes 1, or the lead is under [`PRACTICAL_LEAD`].
    NoClearWinner(Ratio),
    /// Fewer than [`MIN_ROUNDS`] rounds: no interval, no verdict.
    TooFewSamples(Ratio),
}

impl Call {
    /// The call on `ratio` (`a / b`, more is better).
    pub fn on(ratio: Ratio) -> Call {
        let Some((lo, hi)) = ratio.interval else { return Call::TooFewSamples(ratio) };
        if lo > 1.0 && ratio.estimate >= PRACTICAL_LEAD {
            Call::Leads(ratio)
        } else if hi < 1.0 && 1.0 / ratio.estimate >= PRACTICAL_LEAD {
            Call::Trails(ratio)
        } else {
            Call::NoClearWinner(ratio)
        }
    }

    /// Whether the data names a winner (either way).
    pub fn is_clear(&self) -> bool {
        matches!(self, Call::Leads(_) | Call::Trails(_))
    }

    /// The ratio the call rests on (`a / b`).
    pub fn ratio(&self) -> Ratio {
        match *self {
            Call::Leads(r) | Call::Trails(r) | Call::NoClearWinner(r) | Call::TooFewSamples(r) => r,
        }
    }

    /// One clause naming `a` and `b`: "**a** leads b: 1.32x (95% CI ...)",
    /// "no clear winner between a and b: ...", "too few samples for a
    /// verdict on a against b: ...".
    pub fn describe(&self, a: &str, b: &str) -> String {
        match *self {
            Call::Leads(r) => format!("**{a}** leads {b}: {r}"),
            Call::Trails(r) => format!("**{b}** leads {a}: {}", r.inverse()),
            Call::NoClearWinner(r) => format!("no clear winner between {a} and {b}: {r}"),
            Call::TooFewSamples(r) => format!("too few samples for a verdict on {a} against {b}: {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample per round.
    fn keyed(values: &[f64]) -> Vec<(Key, f64)> {
        values.iter().enumerate().map(|(round, v)| ((round, 0), *v)).collect()
    }

    #[test]
    fn a_paired_ratio_cancels_a_drift_common_to_both() {
        // The machine runs 25% slower in round 2; the ratio stays 2.
        let r = Ratio::paired(&keyed(&[200.0, 150.0, 200.0]), &keyed(&[100.0, 75.0, 100.0])).unwrap();
        assert!((r.estimate - 2.0).abs() < 1e-9);
        let (lo, hi) = r.interval.unwrap();
        assert!((lo - 2.0).abs() < 1e-9 && (hi - 2.0).abs() < 1e-9, "{r}");
        assert!(Call::on(r).is_clear());
    }

    #[test]
    fn the_interval_is_t_on_the_logs() {
        // ln ratios 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t(2) 4.303.
        let a = keyed(&[0.1f64.exp(), 0.2f64.exp(), 0.3f64.exp()]);
        let r = Ratio::paired(&a, &keyed(&[1.0, 1.0, 1.0])).unwrap();
        let half = 4.303 * 0.1 / 3f64.sqrt();
        let (lo, hi) = r.interval.unwrap();
        assert!((r.estimate - 0.2f64.exp()).abs() < 1e-9);
        assert!((lo - (0.2 - half).exp()).abs() < 1e-9 && (hi - (0.2 + half).exp()).abs() < 1e-9);
        // 1.22x, but 0.83-1.81: no clear winner.
        assert!(matches!(Call::on(r), Call::NoClearWinner(_)), "{r}");
    }

    #[test]
    fn repeats_within_a_round_are_one_figure_and_rounds_are_paired() {
        // Three repeats in one round are one stack each: one pair, no verdict.
        let a = vec![((0, 0), 10.0), ((0, 1), 10.0), ((0, 2), 10.0)];
        let b = vec![((0, 0), 5.0), ((0, 1), 5.0), ((0, 2), 5.0)];
        let r = Ratio::paired(&a, &b).unwrap();
        assert!((r.estimate - 2.0).abs() < 1e-9 && r.pairs == 1 && r.interval.is_none(), "{r}");
        assert!(matches!(Call::on(r), Call::TooFewSamples(_)));
        assert_eq!(r.to_string(), "2.00x (1 round: no interval)");
        // Repeats average on a log scale; rounds without both sides are left out.
        let a = vec![((0, 0), 4.0), ((0, 1), 16.0), ((1, 0), 10.0), ((2, 0), 10.0)];
        let b = vec![((0, 0), 4.0), ((1, 0), 5.0), ((3, 0), 1.0)];
        let r = Ratio::paired(&a, &b).unwrap();
        assert_eq!(r.pairs, 2);
        assert!((r.estimate - 2.0).abs() < 1e-9, "{r}");
        assert_eq!(Ratio::paired(&a, &[((5, 0), 1.0)]), None);
    }

    #[test]
    fn a_sample_without_a_figure_is_left_out_and_said() {
        let mut a = keyed(&[10.0, 11.0, 9.0]);
        a.push(((3, 0), 0.0));
        let r = Ratio::paired(&a, &keyed(&[5.0, 5.5, 4.5, 5.0])).unwrap();
        assert_eq!((r.pairs, r.dropped), (3, 1));
        assert!(r.to_string().ends_with(", 3 rounds, 1 sample(s) without a figure left out)"), "{r}");
    }

    #[test]
    fn two_rounds_that_agree_are_still_too_few() {
        let r = Ratio::paired(&keyed(&[20.0, 20.0]), &keyed(&[10.0, 10.0])).unwrap();
        assert!(matches!(Call::on(r), Call::TooFewSamples(_)), "{r}");
    }

    #[test]
    fn a_certain_but_small_lead_is_no_clear_winner() {
        let r = Ratio::paired(&keyed(&[103.0, 103.0, 103.1]), &keyed(&[100.0, 100.0, 100.0])).unwrap();
        assert!(r.interval.unwrap().0 > 1.0);
        assert!(matches!(Call::on(r), Call::NoClearWinner(_)), "{r}");
    }

    #[test]
    fn calls_read_the_same_from_either_side() {
        let a = keyed(&[100.0, 90.0, 110.0, 105.0]);
        let b = keyed(&[150.0, 140.0, 160.0, 150.0]);
        let ab = Call::on(Ratio::paired(&a, &b).unwrap());
        let ba = Call::on(Ratio::paired(&b, &a).unwrap());
        assert!(matches!(ab, Call::Trails(_)) && matches!(ba, Call::Leads(_)));
        assert_eq!(ab.describe("a", "b"), ba.describe("b", "a"));
        assert!(ba.describe("b", "a").starts_with("**b** leads a: 1.48x (95% CI "), "{}", ba.describe("b", "a"));
    }
}
