//! Ratios between contenders with 95% intervals, and the rule that names a
//! winner only when the data separates them.
//!
//! Contenders of one round run back to back on one machine, so a drift of the
//! machine between rounds (a quarter of its speed on a shared 2-core host)
//! hits all of them; the ratio of two contenders' figures *within* a round
//! cancels most of it. So samples are paired by round and repeat, the ratio is
//! the geometric mean of the paired ratios, and its interval is Student's t
//! interval on their logarithms. With the three to five pairs a compare can
//! afford, a bootstrap's percentile interval is too narrow (it cannot show
//! more spread than the few pairs happen to have), while t widens with few
//! pairs as it should; ratios are compared on a log scale so that `a/b` and
//! `b/a` get mirrored intervals.
//!
//! A winner is named only when the interval excludes 1 and the estimate is a
//! lead of at least [`PRACTICAL_LEAD`]; otherwise there is no clear winner,
//! and with fewer than two pairs there are too few samples for a verdict.

use std::fmt;

use super::verdict::short_ratio;

/// The smallest lead worth a verdict: 5%. Below it a difference, however
/// certain, is within what a rerun on another day moves.
pub const PRACTICAL_LEAD: f64 = 1.05;

/// Where a sample sits in a compare: (round, repeat). Samples of two
/// contenders with the same key ran in the same round, so the same state of
/// the machine.
pub type Key = (usize, usize);

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
    /// 95% interval; `None` with a single pair (no spread to judge by).
    pub interval: Option<(f64, f64)>,
    /// Pairs it rests on.
    pub pairs: usize,
}

impl Ratio {
    /// `a / b` over the samples of `a` and `b` that share a [`Key`]; `None`
    /// when none do (or a value is not positive).
    pub fn paired(a: &[(Key, f64)], b: &[(Key, f64)]) -> Option<Ratio> {
        let logs: Vec<f64> = a
            .iter()
            .filter_map(|(key, x)| {
                let (_, y) = b.iter().find(|(k, _)| k == key)?;
                (*x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite()).then(|| (x / y).ln())
            })
            .collect();
        let n = logs.len();
        if n == 0 {
            return None;
        }
        let mean = logs.iter().sum::<f64>() / n as f64;
        let interval = (n >= 2).then(|| {
            let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let half = t975(n - 1) * (var / n as f64).sqrt();
            ((mean - half).exp(), (mean + half).exp())
        });
        Some(Ratio { estimate: mean.exp(), interval, pairs: n })
    }

    /// The same comparison seen from the other side (`b / a`).
    pub fn inverse(self) -> Ratio {
        Ratio { estimate: 1.0 / self.estimate, interval: self.interval.map(|(lo, hi)| (1.0 / hi, 1.0 / lo)), ..self }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.interval {
            Some((lo, hi)) => write!(
                f,
                "{}x (95% CI {}–{}, {} pairs)",
                short_ratio(self.estimate),
                short_ratio(lo),
                short_ratio(hi),
                self.pairs
            ),
            None => write!(f, "{}x (one pair)", short_ratio(self.estimate)),
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
    /// One pair: no interval, no verdict.
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
    fn only_samples_of_the_same_round_are_paired() {
        let a = vec![((0, 0), 10.0), ((1, 0), 10.0), ((2, 0), 10.0)];
        let b = vec![((1, 0), 5.0), ((3, 0), 1.0)];
        let r = Ratio::paired(&a, &b).unwrap();
        assert_eq!((r.estimate, r.pairs, r.interval), (2.0, 1, None));
        assert!(matches!(Call::on(r), Call::TooFewSamples(_)));
        assert_eq!(Ratio::paired(&a, &[((5, 0), 1.0)]), None);
        assert_eq!(Ratio::paired(&a, &[((0, 0), 0.0)]), None, "a zero is no ratio");
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
