//! The course consistency test's four numbers, computed the way the course's
//! script (delftdata/wdm-project-benchmark, `consistency-test/`) computes
//! them, and whether that script would have finished at all.
//!
//! The test: one item with 100 stock at price 1, 1000 users with 1 credit
//! each, 1000 one-unit orders whose users are drawn at random with
//! replacement (so many users own several orders and can pay for one), all
//! 1000 checkouts in flight at once over 100 connections.
//!
//! The script's scoring, reproduced exactly:
//! - a reply is a *success* in its logs unless its status is 4xx: a 5xx counts
//!   as a success (the script cannot tell it from a 200);
//! - a request without a reply within its client's 5-minute timeout raises,
//!   and the whole script fails without printing anything;
//! - stock in the logs: successes - 100 (signed); stock in the database:
//!   items sold - 100, that is minus the stock left; payment in the logs:
//!   |900 - (1000 - successes)|; payment in the database: |900 - credit left|.
//!
//! So all four are 0 only if exactly 100 checkouts were answered with
//! anything but a 4xx, the item sold out, and exactly 100 credit was taken.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use rand::rngs::StdRng;

use super::{Dataset, Definition, Ids, Line, create_orders, seeded};
use crate::api::Api;
use crate::run::RunSpec;
use crate::run::load::LoadResult;
use crate::run::verify::{Answer, Attempt, FinalState};

/// The `wdm-consistency` workload.
#[derive(Debug)]
pub struct WdmConsistency;

impl Definition for WdmConsistency {
    fn name(&self) -> &'static str {
        "wdm-consistency"
    }

    /// The course test has fixed sizes, and sends its checkouts all at once
    /// over 100 connections (a closed loop of 100 clients, not a rate).
    fn normalise(&self, spec: &mut RunSpec) {
        (spec.items, spec.stock, spec.price, spec.users, spec.credit) = (1, 100, 1, 1000, 1);
        (spec.orders, spec.checkouts, spec.concurrency, spec.rate) = (1000, 1000, 100, None);
        spec.duration = None;
    }

    fn prepare<'a>(&'a self, api: &'a Api, spec: &'a RunSpec) -> BoxFuture<'a, anyhow::Result<Dataset>> {
        Box::pin(async move {
            let mut rng = seeded(api, spec).await?;
            let orders = create_orders(api, lines(spec, &mut rng), spec.concurrency).await?;
            // Every order checked out once, in the order they were created,
            // as the course script sends them.
            Ok(Dataset { ids: Ids::with_orders(spec, orders.clone()), plan: Arc::new(orders) })
        })
    }

    /// The script waits up to its client timeout for a reply.
    fn reply_timeout(&self) -> Duration {
        CLIENT_TIMEOUT
    }

    fn has_ceiling(&self) -> bool {
        false
    }

    fn score(&self, spec: &RunSpec, state: &FinalState, load: &LoadResult) -> Option<CourseCounts> {
        let attempts = || load.answers.values().flatten();
        let count = |pick: &dyn Fn(&Attempt) -> bool| attempts().filter(|a| pick(a)).count() as i64;
        let no_reply = count(&|a| !a.replied);
        let refused = count(&|a| a.answer == Answer::Refused);
        let total = count(&|_| true);
        let late = count(&|a| a.replied && a.ended > CLIENT_TIMEOUT);
        Some(CourseCounts::from(CourseObservation {
            stock_total: spec.items * spec.stock,
            stock_left: state.stock.get("0").copied().unwrap_or_default(),
            credit_total: spec.users * spec.credit,
            credit_left: state.credit.values().sum(),
            price: spec.price,
            successes: total - refused - no_reply,
            unanswered: no_reply + late,
        }))
    }
}

/// `(user, items)` of each order of the course test: as the course script
/// does, each order's user is drawn at random *with replacement*
/// (`random.choice`), so many users own several orders but can pay for one,
/// and each order holds one unit of a random item (of the one there is).
fn lines(spec: &RunSpec, rng: &mut StdRng) -> Vec<Line> {
    (0..spec.orders)
        .map(|_| {
            let user = rng.random_range(0..spec.users).to_string();
            (user, vec![rng.random_range(0..spec.items).to_string()])
        })
        .collect()
}

/// The course script's client timeout (aiohttp's default total timeout, which
/// starts when the request is issued, before it gets one of the 100
/// connections).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// What the counts are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseObservation {
    /// Item count times starting stock (100).
    pub stock_total: i64,
    /// Stock of the item after the run.
    pub stock_left: i64,
    /// Users times starting credit (1000).
    pub credit_total: i64,
    /// Sum of all users' credit after the run.
    pub credit_left: i64,
    /// Price of the item.
    pub price: i64,
    /// Checkouts answered with anything but a 4xx.
    pub successes: i64,
    /// Checkouts without a reply, or answered after [`CLIENT_TIMEOUT`].
    pub unanswered: i64,
}

/// The four numbers, in the course script's terms, and whether it would have
/// printed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CourseCounts {
    /// Successful replies minus the stock there was to sell.
    pub stock_logs: i64,
    /// Stock sold minus the stock there was to sell (minus the stock left).
    pub stock_db: i64,
    /// Credit the logs say was taken, against what should have been.
    pub payment_logs: i64,
    /// Credit left, against what should be left.
    pub payment_db: i64,
    /// Checkouts the script would have waited for in vain: any makes it fail.
    pub unanswered: i64,
}

impl CourseCounts {
    /// Counts as the script does.
    pub fn from(o: CourseObservation) -> Self {
        let correct_credit = o.credit_total - o.stock_total * o.price;
        let logged_credit = o.credit_total - o.successes * o.price;
        CourseCounts {
            stock_logs: o.successes - o.stock_total,
            stock_db: (o.stock_total - o.stock_left) - o.stock_total,
            payment_logs: (correct_credit - logged_credit).abs(),
            payment_db: (correct_credit - o.credit_left).abs(),
            unanswered: o.unanswered,
        }
    }

    /// Whether the script would finish.
    pub fn script_finishes(&self) -> bool {
        self.unanswered == 0
    }

    /// Whether the script would finish and print four zeros.
    pub fn consistent(&self) -> bool {
        *self == CourseCounts::default()
    }
}

impl fmt::Display for CourseCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.script_finishes() {
            writeln!(
                f,
                "The course script would FAIL: {} checkouts got no reply within its {} s client timeout.",
                self.unanswered,
                CLIENT_TIMEOUT.as_secs()
            )?;
            writeln!(f, "Had it finished, it would print:")?;
        }
        writeln!(f, "Stock service inconsistencies in the logs: {}", self.stock_logs)?;
        writeln!(f, "Stock service inconsistencies in the database: {}", self.stock_db)?;
        writeln!(f, "Payment service inconsistencies in the logs: {}", self.payment_logs)?;
        write!(f, "Payment service inconsistencies in the database: {}", self.payment_db)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::run::workload::Workload;
    use crate::run::workload::tests::spec;

    #[test]
    fn the_course_test_draws_users_with_replacement() {
        let s = spec(Workload::WdmConsistency, 0.0).normalised();
        let lines = lines(&s, &mut StdRng::seed_from_u64(5));
        assert_eq!(lines.len(), 1000);
        assert!(lines.iter().all(|(_, items)| items == &["0".to_owned()]));
        let users: std::collections::BTreeSet<&String> = lines.iter().map(|(u, _)| u).collect();
        // 1000 draws out of 1000 users: about 1000 (1 - 1/e) = 632 distinct.
        assert!((580..690).contains(&users.len()), "{} distinct users", users.len());
    }

    #[test]
    fn the_course_test_has_fixed_sizes() {
        let s = spec(Workload::WdmConsistency, 0.0).normalised();
        assert_eq!((s.items, s.stock, s.price, s.users, s.credit), (1, 100, 1, 1000, 1));
        assert_eq!((s.orders, s.checkouts, s.concurrency), (1000, 1000, 100));
        let s = spec(Workload::Stress, 0.0).normalised();
        assert_eq!(s.orders, 4000, "other workloads keep their sizes");
    }

    const GOOD: CourseObservation = CourseObservation {
        stock_total: 100,
        stock_left: 0,
        credit_total: 1000,
        credit_left: 900,
        price: 1,
        successes: 100,
        unanswered: 0,
    };

    #[test]
    fn a_correct_run_counts_zero() {
        let c = CourseCounts::from(GOOD);
        assert!(c.consistent() && c.script_finishes(), "{c:?}");
    }

    #[test]
    fn each_kind_of_error_shows_in_its_count_as_the_script_counts_it() {
        // A 5xx is a success in the script's logs: 3 of them on top of the 100
        // paid checkouts show in both log counts, not in the databases.
        let c = CourseCounts::from(CourseObservation { successes: 103, ..GOOD });
        assert_eq!((c.stock_logs, c.payment_logs, c.stock_db, c.payment_db), (3, 3, 0, 0));
        // Stock left unsold: the database count is minus the stock left.
        let c = CourseCounts::from(CourseObservation { stock_left: 4, successes: 96, credit_left: 904, ..GOOD });
        assert_eq!((c.stock_logs, c.stock_db, c.payment_logs, c.payment_db), (-4, -4, 4, 4));
        // Stock taken twice for one paid order (oversold).
        let c = CourseCounts::from(CourseObservation { stock_left: -1, ..GOOD });
        assert_eq!((c.stock_logs, c.stock_db), (0, 1));
        // Credit charged without a paid order (a lost compensation).
        let c = CourseCounts::from(CourseObservation { credit_left: 899, ..GOOD });
        assert_eq!((c.payment_logs, c.payment_db, c.stock_logs), (0, 1, 0));
        let text = c.to_string();
        assert!(text.contains("Payment service inconsistencies in the database: 1"), "{text}");
        assert!(!text.contains("FAIL"), "{text}");
    }

    #[test]
    fn a_checkout_without_a_reply_makes_the_script_fail() {
        let c = CourseCounts::from(CourseObservation { unanswered: 1, ..GOOD });
        assert!(!c.script_finishes() && !c.consistent());
        assert!(c.to_string().contains("would FAIL: 1 checkouts"), "{c}");
    }
}
