//! The course consistency test's four numbers: stock and payment
//! inconsistencies, each counted against the replies the clients saw ("logs")
//! and against the paid orders in the database. All four are 0 for a correct
//! system.
//!
//! The test: one item with 100 stock at price 1, 1000 users with 1 credit each,
//! 1000 single-item orders (one per user), all checked out at once over 100
//! connections. So every paid order took exactly 1 stock and 1 credit.

use std::fmt;

/// What the counts are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseObservation {
    /// Stock of the item before and after.
    pub stock: (i64, i64),
    /// Sum of all users' credit before and after.
    pub credit: (i64, i64),
    /// Checkouts answered 200.
    pub ok_replies: i64,
    /// Orders paid in the database.
    pub paid_orders: i64,
    /// Sum of the total cost of the paid orders.
    pub paid_cost: i64,
}

/// The four numbers, in the course script's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CourseCounts {
    /// Stock taken vs successful replies.
    pub stock_logs: i64,
    /// Stock taken vs paid orders.
    pub stock_db: i64,
    /// Credit taken vs successful replies.
    pub payment_logs: i64,
    /// Credit taken vs the cost of paid orders.
    pub payment_db: i64,
}

impl CourseCounts {
    /// Counts the inconsistencies in `o` (unit quantities and price 1).
    pub fn from(o: CourseObservation) -> Self {
        let stock_taken = o.stock.0 - o.stock.1;
        let credit_taken = o.credit.0 - o.credit.1;
        CourseCounts {
            stock_logs: (stock_taken - o.ok_replies).abs(),
            stock_db: (stock_taken - o.paid_orders).abs(),
            payment_logs: (credit_taken - o.ok_replies).abs(),
            payment_db: (credit_taken - o.paid_cost).abs(),
        }
    }

    /// Whether all four are 0.
    pub fn consistent(&self) -> bool {
        *self == CourseCounts::default()
    }
}

impl fmt::Display for CourseCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Stock service inconsistencies in the logs: {}", self.stock_logs)?;
        writeln!(f, "Stock service inconsistencies in the database: {}", self.stock_db)?;
        writeln!(f, "Payment service inconsistencies in the logs: {}", self.payment_logs)?;
        write!(f, "Payment service inconsistencies in the database: {}", self.payment_db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: CourseObservation =
        CourseObservation { stock: (100, 0), credit: (1000, 900), ok_replies: 100, paid_orders: 100, paid_cost: 100 };

    #[test]
    fn a_correct_run_counts_zero() {
        assert!(CourseCounts::from(GOOD).consistent());
    }

    #[test]
    fn each_kind_of_error_shows_in_its_count() {
        // A 200 for a checkout that took nothing.
        let c = CourseCounts::from(CourseObservation { ok_replies: 101, ..GOOD });
        assert_eq!((c.stock_logs, c.payment_logs, c.stock_db, c.payment_db), (1, 1, 0, 0));
        // Stock taken twice for one paid order.
        let c = CourseCounts::from(CourseObservation { stock: (100, -1), ..GOOD });
        assert_eq!((c.stock_logs, c.stock_db), (1, 1));
        // Credit charged without a paid order (a lost compensation).
        let c = CourseCounts::from(CourseObservation { credit: (1000, 899), ..GOOD });
        assert_eq!((c.payment_logs, c.payment_db, c.stock_logs), (1, 1, 0));
        let text = c.to_string();
        assert!(text.contains("Payment service inconsistencies in the database: 1"), "{text}");
    }
}
