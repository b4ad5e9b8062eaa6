//! Crash points: named places in a protocol where a test (or a harness fault
//! schedule) can make the process die on the spot, as `kill -9` would.
//!
//! Every point is declared once, in [`ALL`], with the protocol and the service
//! it lives in; the protocols name them through the constants below. A point
//! is armed by name, either at start-up ([`arm_all`], the services'
//! `--crashpoints` flag) or at run time through [`arm`] (the services expose
//! it on an internal endpoint, only when started with `--enable-crashpoints`,
//! as the harness and the tests do). A name that is not in [`ALL`] is refused, so a misspelled point
//! cannot be "armed" and silently never fire. When execution reaches an armed
//! point, the process aborts immediately: no destructors, no graceful
//! shutdown, no flushing — exactly the failure the protocols must recover
//! from. Unarmed points cost one atomic load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::ProtocolKind;

/// One place where the process can be made to die.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrashPoint {
    /// The name it is armed by: `<protocol>.<role>.<moment>`.
    pub name: &'static str,
    /// The protocol whose step it is in.
    pub protocol: ProtocolKind,
    /// The service whose process reaches it (`order`, `stock`, `payment`);
    /// participant points are reached by both participants, and this names
    /// the one a fault schedule aims at when it names none.
    pub service: &'static str,
}

const fn point(name: &'static str, protocol: ProtocolKind, service: &'static str) -> CrashPoint {
    CrashPoint { name, protocol, service }
}

/// 2PC coordinator: the first prepare voted yes, the second is not asked yet.
pub const TWOPC_AFTER_FIRST_PREPARED: CrashPoint =
    point("2pc.coordinator.after_first_prepared", ProtocolKind::TwoPc, "order");
/// 2PC coordinator: stock voted yes (with payment first: both have).
pub const TWOPC_AFTER_STOCK_PREPARED: CrashPoint =
    point("2pc.coordinator.after_stock_prepared", ProtocolKind::TwoPc, "order");
/// 2PC coordinator: every participant voted yes; no decision written yet.
pub const TWOPC_BEFORE_DECISION: CrashPoint = point("2pc.coordinator.before_decision", ProtocolKind::TwoPc, "order");
/// 2PC coordinator: the commit decision is durable; no `COMMIT PREPARED` sent yet.
pub const TWOPC_AFTER_DECISION: CrashPoint = point("2pc.coordinator.after_decision", ProtocolKind::TwoPc, "order");
/// 2PC coordinator: one participant acknowledged its commit, the other not yet.
pub const TWOPC_AFTER_FIRST_COMMIT: CrashPoint =
    point("2pc.coordinator.after_first_commit", ProtocolKind::TwoPc, "order");
/// 2PC participant: the branch is prepared, the vote not yet sent.
pub const TWOPC_AFTER_PREPARE: CrashPoint = point("2pc.participant.after_prepare", ProtocolKind::TwoPc, "stock");
/// Saga orchestrator: the stock step's success and the payment command are
/// committed to the order database; the payment command is not published yet.
pub const SAGA_AFTER_STOCK_RESERVED: CrashPoint =
    point("saga.orchestrator.after_stock_reserved", ProtocolKind::Saga, "order");
/// Saga orchestrator: the payment step's success reply arrived and is not handled yet.
pub const SAGA_BEFORE_PAYMENT_REPLY: CrashPoint =
    point("saga.orchestrator.before_payment_reply", ProtocolKind::Saga, "order");
/// Saga participant: a command's effect and reply are committed; its offset
/// is not stored and its reply not published.
pub const SAGA_AFTER_COMMIT: CrashPoint = point("saga.participant.after_commit", ProtocolKind::Saga, "stock");
/// Saga relay: a batch is published and not yet marked sent.
pub const SAGA_AFTER_PUBLISH: CrashPoint = point("saga.relay.after_publish", ProtocolKind::Saga, "order");

/// Every crash point there is.
pub const ALL: &[CrashPoint] = &[
    TWOPC_AFTER_FIRST_PREPARED,
    TWOPC_AFTER_STOCK_PREPARED,
    TWOPC_BEFORE_DECISION,
    TWOPC_AFTER_DECISION,
    TWOPC_AFTER_FIRST_COMMIT,
    TWOPC_AFTER_PREPARE,
    SAGA_AFTER_STOCK_RESERVED,
    SAGA_BEFORE_PAYMENT_REPLY,
    SAGA_AFTER_COMMIT,
    SAGA_AFTER_PUBLISH,
];

/// A name that is not a crash point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown crash point {0:?} (known: {known})", known = ALL.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownCrashPoint(pub String);

/// The crash point called `name`.
///
/// # Errors
/// When no point has that name.
pub fn lookup(name: &str) -> Result<CrashPoint, UnknownCrashPoint> {
    ALL.iter().copied().find(|p| p.name == name).ok_or_else(|| UnknownCrashPoint(name.to_owned()))
}

static ANY_ARMED: AtomicBool = AtomicBool::new(false);

fn armed() -> &'static Mutex<HashSet<CrashPoint>> {
    static ARMED: OnceLock<Mutex<HashSet<CrashPoint>>> = OnceLock::new();
    ARMED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Arms every point of `names`, or none when one of them does not exist.
///
/// # Errors
/// When a name is not a crash point (nothing is armed then).
pub fn arm_all<S: AsRef<str>>(names: &[S]) -> Result<(), UnknownCrashPoint> {
    let points = names
        .iter()
        .map(|name| name.as_ref().trim())
        .filter(|name| !name.is_empty())
        .map(lookup)
        .collect::<Result<Vec<_>, _>>()?;
    for point in points {
        arm(point);
    }
    Ok(())
}

/// Arms `point`: the next time execution reaches it, the process aborts.
pub fn arm(point: CrashPoint) {
    let mut set = armed().lock().unwrap_or_else(|e| e.into_inner());
    set.insert(point);
    ANY_ARMED.store(true, Ordering::SeqCst);
}

/// Disarms every point.
pub fn disarm_all() {
    let mut set = armed().lock().unwrap_or_else(|e| e.into_inner());
    set.clear();
    ANY_ARMED.store(false, Ordering::SeqCst);
}

/// Whether `point` is armed.
pub fn is_armed(point: CrashPoint) -> bool {
    ANY_ARMED.load(Ordering::Relaxed) && armed().lock().unwrap_or_else(|e| e.into_inner()).contains(&point)
}

/// Marks a crash point: aborts the process if `point` is armed.
pub fn hit(point: CrashPoint) {
    if is_armed(point) {
        eprintln!("crash point {} reached: aborting the process", point.name);
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_and_disarming() {
        assert!(!is_armed(SAGA_AFTER_PUBLISH));
        arm(SAGA_AFTER_PUBLISH);
        assert!(is_armed(SAGA_AFTER_PUBLISH));
        assert!(!is_armed(SAGA_AFTER_COMMIT));
        disarm_all();
        assert!(!is_armed(SAGA_AFTER_PUBLISH));
        hit(SAGA_AFTER_PUBLISH); // unarmed: returns
    }

    #[test]
    fn names_are_unique_and_say_their_protocol_and_unknown_ones_are_refused() {
        let names: HashSet<&str> = ALL.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), ALL.len(), "two points share a name");
        for point in ALL {
            assert!(point.name.starts_with(&format!("{}.", point.protocol)), "{point:?}");
            assert!(["order", "stock", "payment"].contains(&point.service), "{point:?}");
            assert_eq!(lookup(point.name), Ok(*point));
        }
        let err = lookup("saga.relay.after_publsh").unwrap_err();
        assert!(err.to_string().contains("unknown crash point \"saga.relay.after_publsh\""), "{err}");
        assert!(err.to_string().contains("saga.relay.after_publish"), "lists the known ones: {err}");
    }
}
