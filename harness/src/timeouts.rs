//! The harness's time budgets, and the relations between them.
//!
//! Each budget is stated here once, with why it has its value; the modules
//! that wait use these constants. Where one budget only makes sense inside
//! another (a crash-looping process's back-off inside the wait for it to
//! serve, a verifier's settling past the longest a checkout can run), the
//! pair is a [`Relation`] in [`relations`], and [`check`] runs when the
//! harness starts: a change that breaks one stops the harness with the
//! relation named, instead of skewing a run. The services state and check
//! their own budgets the same way (`protocol_core::timeouts`).
//!
//! Poll intervals are not budgets and stay where they poll.

use std::time::Duration;

use protocol_core::timeouts::{self, BrokenRelation, Budget, Relation};

use crate::stack::kafka;

// ---- Stack start-up and supervision -------------------------------------

/// How long the infrastructure (PostgreSQL, Redis, Kafka, Toxiproxy) may take
/// to serve after its processes start.
pub const INFRA_START: Duration = Duration::from_secs(90);

/// How long the services and the gateway may take to serve once the
/// infrastructure does (each service migrates its database and joins its
/// consumer group first).
pub const SERVICE_START: Duration = Duration::from_secs(60);

/// How long the training broker that makes the broker's class archive may
/// take to serve, and then to stop (once per machine, Kafka version and JDK:
/// `stack::class_archive`).
pub const CLASS_ARCHIVE_TRAINING: Duration = Duration::from_secs(90);

/// How long a detached `harness up` waits for its stack to report ready: every
/// wait of its start-up in a row at its longest (see [`relations`]).
pub const DETACHED_UP: Duration = Duration::from_secs(600);

/// How long `harness down` waits for a stack to stop.
pub const DOWN: Duration = Duration::from_secs(120);

/// The longest one readiness attempt of a supervised component may take
/// before it counts as a no.
pub const PROBE_CAP: Duration = Duration::from_secs(1);

/// How long a readiness probe's own request waits for its answer (Redis's
/// PING, a replica's `/health`, the gateway's).
pub const PROBE_ATTEMPT: Duration = Duration::from_millis(500);

/// How long a fault injector's wait for a restarted component to serve again
/// lasts once its restart is due.
pub const SERVING_AFTER_RESTART: Duration = Duration::from_secs(60);

/// A process that lives this long counts as started successfully.
pub const STABLE_AFTER: Duration = Duration::from_secs(5);

/// The wait before restarting a process that died within [`STABLE_AFTER`] of
/// starting, doubled while it keeps doing so ...
pub const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(250);

/// ... up to this.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(10);

// ---- Load and verification ----------------------------------------------

/// How long a checkout waits for its reply, unless the workload says
/// otherwise. It is the checkout API's client budget, which every service's
/// own waits fit inside (checked when each starts).
pub const REPLY: Duration = timeouts::CLIENT_WAIT;

/// How long a call of the harness to the stack other than a checkout may
/// take: a run's set-up (creating users and items in batches of thousands of
/// rows on a loaded stack), its reads of the final state through the API and
/// of the services' counters and spans.
pub const ADMIN_CALL: Duration = Duration::from_secs(120);

/// How long a run's verifier waits, after the load, for the protocols to
/// settle (no saga or 2PC transaction in flight) before it reads the final
/// state and reports what is still in flight as a violation.
pub const SETTLE: Duration = Duration::from_secs(120);

/// The least load time of a `harness compare` warm-up. The broker's JVM
/// compiles its hot paths during the first half minute to a minute of load:
/// a saga measured on a fresh stack after 30 s still ran at 60-80% of its
/// steady throughput.
pub const WARM_UP_AT_LEAST: Duration = Duration::from_secs(60);

/// The longest a warm-up loads the stack, unless a plan asks for more
/// (bounded also because a warm-up leaves protocol rows behind: decisions
/// and branches, sagas and inboxes).
pub const WARM_UP_AT_MOST: Duration = Duration::from_secs(90);

// ---- The in-process ceiling ---------------------------------------------

/// The first part of a ceiling's replay, whose checkouts run but are not
/// counted: it warms what a service has warm after its first seconds under
/// load (each pooled connection's prepared statements, the scratch tables'
/// pages), so that the ceiling does not pay a start-up the load it is
/// compared with spreads over its whole run. A plan that ends within it is
/// counted whole.
pub const CEILING_WARM_UP: Duration = Duration::from_secs(1);

/// How long the replay starts checkouts after its warm-up (the stack's
/// services are paused meanwhile): past it no new checkout starts, and the
/// rate counts the checkouts that ran.
pub const CEILING_REPLAY: Duration = Duration::from_secs(3);

/// A replay still running this long after its start is abandoned (its
/// workers aborted), and the run has no ceiling.
pub const CEILING_ABANDON: Duration = Duration::from_secs(9);

/// The longest the bare broker's measurement waits for its consumer to join
/// and for its messages.
pub const BARE_BROKER_PATIENCE: Duration = Duration::from_secs(60);

/// The longest a ceiling's engine waits, when it closes, for checkouts still
/// running: a 2PC prepare ends within its timeout (20 s by default), a saga
/// checkout's wait within its deadline (30 s by default), and neither is
/// longer than the client's wait.
pub const CEILING_SETTLE: Duration = REPLY;

/// Every relation between the budgets above (and the broker settings the
/// harness's stacks run with): `inner` must end before `outer`.
pub fn relations() -> Vec<Relation> {
    let b = Budget::new;
    vec![
        Relation {
            inner: b("MAX_RESTART_BACKOFF", MAX_RESTART_BACKOFF),
            outer: b("SERVING_AFTER_RESTART", SERVING_AFTER_RESTART),
            why: "a crash-looping process must get its next start before the wait for it to serve gives up",
        },
        Relation {
            inner: b("PROBE_ATTEMPT", PROBE_ATTEMPT),
            outer: b("PROBE_CAP", PROBE_CAP),
            why: "a probe's own request must end before the attempt's cap, or a slow answer reads as no answer",
        },
        Relation {
            inner: b(
                "2 x CLASS_ARCHIVE_TRAINING + 2 x INFRA_START + 2 x SERVICE_START",
                2 * CLASS_ARCHIVE_TRAINING + 2 * INFRA_START + 2 * SERVICE_START,
            ),
            outer: b("DETACHED_UP", DETACHED_UP),
            why: "a detached `up` must outwait every wait of the start-up it launched (the class archive's training \
                  broker up and down, Toxiproxy and the infrastructure, the services and the gateway), or report a \
                  live stack as failed",
        },
        Relation {
            inner: b("REPLY", REPLY),
            outer: b("SETTLE", SETTLE),
            why: "a checkout still runs inside the services at most as long as their own budgets, which each \
                  service checks to fit inside the client's wait; the verifier must outwait that before it calls \
                  a row in flight a violation",
        },
        Relation {
            inner: b("REPLY", REPLY),
            outer: b("ADMIN_CALL", ADMIN_CALL),
            why: "a set-up batch does the work of many checkouts in one call",
        },
        Relation {
            inner: b("WARM_UP_AT_LEAST", WARM_UP_AT_LEAST),
            outer: b("WARM_UP_AT_MOST", WARM_UP_AT_MOST),
            why: "a warm-up capped below its own floor would never test for a steady rate",
        },
        Relation {
            inner: b("CEILING_WARM_UP + CEILING_REPLAY", CEILING_WARM_UP + CEILING_REPLAY),
            outer: b("CEILING_ABANDON", CEILING_ABANDON),
            why: "the checkouts started last in a replay need time to end before the replay is abandoned",
        },
        Relation {
            inner: b("CEILING_ABANDON", CEILING_ABANDON),
            outer: b("saga consumer session timeout", saga::kafka::SESSION_TIMEOUT),
            why: "the stack's services are paused during a replay; paused longer than their consumer session, \
                  they are expelled from their groups and the next run pays the rebalance",
        },
        Relation {
            inner: b("2 x BROKER_HEARTBEAT", 2 * kafka::BROKER_HEARTBEAT),
            outer: b("BROKER_SESSION", kafka::BROKER_SESSION),
            why: "a broker must heartbeat its controller more than twice per session, or one late heartbeat fences a \
                  healthy broker",
        },
    ]
}

/// Checks every relation of [`relations`]; the first broken one is the error.
pub fn check() -> Result<(), BrokenRelation> {
    timeouts::check(&relations())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_budgets_nest() {
        assert_eq!(check(), Ok(()));
    }
}
