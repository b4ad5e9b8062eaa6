//! Time budgets and the relations between them.
//!
//! A checkout crosses several waits, each with its own budget: the client's
//! wait for a reply, the order service's wait for a pooled connection, a 2PC
//! prepare's wait for its row locks and for its call, a saga checkout's wait
//! for its saga. A reply means something only if every inner wait ends before
//! the one around it: a prepare that outlives its call's deadline is
//! answered by a timeout instead of by the participant's vote; a saga
//! checkout that outlives its client is never read. These relations used to
//! live in doc comments; each service now states its own as [`Relation`]s
//! and [`check`]s them when it starts, so a setting that breaks one stops the
//! service with the relation named instead of skewing a measurement.

use std::fmt;
use std::time::Duration;

/// How long a client of the checkout API waits for a reply (the harness's
/// load clients; the gateway's read timeout is longer). Each wait a checkout
/// can spend before it answers fits in it on its own, so a checkout stuck on
/// any one of them answers (with its outcome, or a 503 that says the final
/// state decides) before its client gives up. Waits in a row are not summed:
/// a checkout that queues for a connection, then for its order's row lock,
/// then for a stalled saga could spend each budget in turn, which takes
/// three faults at once.
pub const CLIENT_WAIT: Duration = Duration::from_secs(60);

/// A named budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// What waits (a flag's name, or a constant's).
    pub name: &'static str,
    /// How long.
    pub value: Duration,
}

impl Budget {
    /// `value` under `name`.
    pub const fn new(name: &'static str, value: Duration) -> Budget {
        Budget { name, value }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} ms)", self.name, self.value.as_millis())
    }
}

/// `inner` must end strictly before `outer`, because `why`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    /// The wait inside.
    pub inner: Budget,
    /// The wait around it.
    pub outer: Budget,
    /// What breaks otherwise.
    pub why: &'static str,
}

/// A budget that does not fit inside the one around it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} must be shorter than {}: {}", .0.inner, .0.outer, .0.why)]
pub struct BrokenRelation(pub Relation);

/// Checks every relation; the first broken one is the error.
pub fn check(relations: &[Relation]) -> Result<(), BrokenRelation> {
    match relations.iter().find(|r| r.inner.value >= r.outer.value) {
        Some(broken) => Err(BrokenRelation(*broken)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_budget_at_least_as_long_as_the_one_around_it_is_named() {
        let lock = Budget::new("--lock-budget-ms", ms(1_000));
        let prepare = Budget::new("--prepare-timeout-ms", ms(20_000));
        let ok = Relation { inner: lock, outer: prepare, why: "the prepare answers its own vote" };
        assert_eq!(check(&[ok]), Ok(()));
        let broken = Relation { inner: prepare, outer: Budget::new("client", ms(20_000)), why: "x" };
        let err = check(&[ok, broken]).unwrap_err();
        assert_eq!(err.to_string(), "--prepare-timeout-ms (20000 ms) must be shorter than client (20000 ms): x");
    }
}
