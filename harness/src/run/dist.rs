//! Skewed choices for the contention workloads: a Zipf distribution over item
//! ranks (rank 0 the most popular), sampled exactly by inverse CDF over
//! precomputed cumulative weights, so a seed reproduces a run bit for bit.

use rand::Rng;

/// Zipf(`s`) over `0..n`: `P(k) ∝ 1 / (k + 1)^s`. `s = 0` is uniform; the
/// larger `s`, the more the first ranks dominate.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s` (`n >= 1`, `s >= 0`).
    pub fn new(n: usize, s: f64) -> Result<Self, String> {
        if n == 0 {
            return Err("a Zipf distribution needs at least one rank".to_owned());
        }
        if !s.is_finite() || s < 0.0 {
            return Err(format!("Zipf exponent {s} must be a finite number >= 0"));
        }
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Ok(Zipf { cumulative })
    }

    /// A rank in `0..n`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let u = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1)
    }

    /// The probability of rank `k`.
    pub fn probability(&self, k: usize) -> f64 {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let below = if k == 0 { 0.0 } else { self.cumulative[k - 1] };
        (self.cumulative[k] - below) / total
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn exponent_zero_is_uniform_and_probabilities_sum_to_one() {
        let z = Zipf::new(4, 0.0).unwrap();
        for k in 0..4 {
            assert!((z.probability(k) - 0.25).abs() < 1e-12);
        }
        let z = Zipf::new(100, 1.2).unwrap();
        let sum: f64 = (0..100).map(|k| z.probability(k)).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!(z.probability(0) > z.probability(1) && z.probability(1) > z.probability(99));
    }

    #[test]
    fn samples_follow_the_distribution_and_are_reproducible() {
        let z = Zipf::new(10, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        for (k, &c) in counts.iter().enumerate() {
            let expected = z.probability(k) * 100_000.0;
            assert!((f64::from(c) - expected).abs() < expected * 0.05 + 50.0, "rank {k}: {c} vs {expected:.0}");
        }
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20).map(|_| z.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
    }

    #[test]
    fn refuses_bad_parameters() {
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(5, -1.0).is_err());
        assert!(Zipf::new(5, f64::NAN).is_err());
        let one = Zipf::new(1, 3.0).unwrap();
        assert_eq!(one.sample(&mut StdRng::seed_from_u64(1)), 0);
    }
}
