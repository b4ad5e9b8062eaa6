//! The invariants of `docs/design.md` section 7, computed from what the harness saw
//! (replies) and what the databases hold, independently of the services' own
//! bookkeeping. Pure functions over plain data, so each check is unit-tested
//! on hand-made histories that break it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::api::{Class, Reply};

/// The batch-initialised starting point of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Initial {
    /// Credit every user started with.
    pub credit: i64,
    /// Stock every item started with.
    pub stock: i64,
}

/// An order as the order database holds it after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// Who pays.
    pub user_id: String,
    /// Whether it is paid.
    pub paid: bool,
    /// What it costs.
    pub total_cost: i64,
    /// `(item_id, quantity)` lines.
    pub items: Vec<(String, i64)>,
}

/// The state of the three databases after the run (batch ids only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalState {
    /// Credit per user.
    pub credit: BTreeMap<String, i64>,
    /// Stock per item.
    pub stock: BTreeMap<String, i64>,
    /// Orders by id.
    pub orders: BTreeMap<String, OrderRow>,
    /// Protocol state left in flight.
    pub leftovers: Leftovers,
    /// SAGA only: per order, how many step effects are in place (`applied`,
    /// not compensated) in the stock and in the payment database. Orders
    /// without any are absent.
    pub saga_effects: Option<BTreeMap<String, (i64, i64)>>,
}

/// Protocol state that must be gone once recovery settled (invariant 4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leftovers {
    /// Prepared transactions of ours left in the participants' databases.
    pub prepared_transactions: i64,
    /// Decided 2PC transactions whose phase two never finished.
    pub unfinished_decisions: i64,
    /// Sagas not terminal.
    pub sagas_in_flight: i64,
    /// Outbox rows not published, in all three databases.
    pub unsent_outbox: i64,
    /// Checkouts still running in the order service replicas (a 2PC checkout
    /// has no visible protocol state before its first prepare).
    pub checkouts_in_flight: i64,
}

impl Leftovers {
    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        *self == Leftovers::default()
    }
}

/// What the harness recorded for one checkout request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 from a call that may have paid: it says `"outcome": "paid"`, or
    /// (another implementation of the API) says nothing either way.
    Ok,
    /// 200 saying `"outcome": "already_paid"`: an earlier call paid, this one
    /// charged nothing.
    AlreadyPaid,
    /// 4xx: the checkout must have taken no effect.
    Refused,
    /// 5xx, a timeout or a broken connection: the final state decides.
    Unknown,
}

impl Answer {
    /// What a classified reply tells the verifier.
    pub fn of(reply: Reply) -> Answer {
        match reply.class() {
            Class::Paid if reply == (Reply::Paid { already: true }) => Answer::AlreadyPaid,
            Class::Paid => Answer::Ok,
            Class::Refused => Answer::Refused,
            Class::Failed => Answer::Unknown,
        }
    }

    /// Whether this is a 200.
    pub fn is_ok(self) -> bool {
        matches!(self, Answer::Ok | Answer::AlreadyPaid)
    }

    /// Whether the call may be the one that paid its order: only a 4xx and a
    /// 200 that says it found the order paid already are sure not to be.
    fn may_have_paid(self) -> bool {
        matches!(self, Answer::Ok | Answer::Unknown)
    }
}

/// One checkout request: its answer, and when it was sent and answered
/// (from the start of the load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// What came back.
    pub answer: Answer,
    /// When the request was sent.
    pub started: Duration,
    /// When its answer (or its failure) arrived.
    pub ended: Duration,
    /// Whether a reply (any status) came back at all.
    pub replied: bool,
}

/// One broken invariant (in JSON, `{"violation": "credit", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
pub enum Violation {
    /// Invariant 1: a user's credit does not match the paid orders.
    Credit { user_id: String, expected: i64, actual: i64 },
    /// Invariant 2: an item's stock does not match the paid orders.
    Stock { item_id: String, expected: i64, actual: i64 },
    /// Invariant 3: an order answered 200 is not paid.
    OkButUnpaid { order_id: String },
    /// Invariant 3: a paid order was refused (4xx), and no other call that may
    /// have paid it began before it was seen paid: the refusing call paid.
    RefusedButPaid { order_id: String },
    /// Invariant 4: protocol state left behind after settling.
    Unsettled(Leftovers),
    /// Invariant 5 (SAGA): a paid order without exactly one effect per step, or
    /// an unpaid one with an effect left in place.
    Effects { order_id: String, paid: bool, stock: i64, payment: i64 },
}

/// Every violation in `state` given the starting point and the checkout
/// attempts per order.
pub fn check(initial: Initial, state: &FinalState, answers: &HashMap<String, Vec<Attempt>>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut charged: BTreeMap<&str, i64> = BTreeMap::new();
    let mut taken: BTreeMap<&str, i64> = BTreeMap::new();
    for order in state.orders.values().filter(|o| o.paid) {
        *charged.entry(order.user_id.as_str()).or_default() += order.total_cost;
        for (item, qty) in &order.items {
            *taken.entry(item.as_str()).or_default() += qty;
        }
    }
    for (user, credit) in &state.credit {
        let expected = initial.credit - charged.get(user.as_str()).copied().unwrap_or(0);
        if *credit != expected || *credit < 0 {
            violations.push(Violation::Credit { user_id: user.clone(), expected, actual: *credit });
        }
    }
    for user in charged.keys().filter(|u| !state.credit.contains_key(**u)) {
        violations.push(Violation::Credit { user_id: (*user).to_owned(), expected: 0, actual: 0 });
    }
    for (item, stock) in &state.stock {
        let expected = initial.stock - taken.get(item.as_str()).copied().unwrap_or(0);
        if *stock != expected || *stock < 0 {
            violations.push(Violation::Stock { item_id: item.clone(), expected, actual: *stock });
        }
    }
    for (item, qty) in taken.iter().filter(|(i, _)| !state.stock.contains_key(**i)) {
        violations.push(Violation::Stock { item_id: (*item).to_owned(), expected: initial.stock - qty, actual: 0 });
    }
    for (order_id, attempts) in answers {
        let paid = state.orders.get(order_id).is_some_and(|o| o.paid);
        if attempts.iter().any(|a| a.answer.is_ok()) && !paid {
            violations.push(Violation::OkButUnpaid { order_id: order_id.clone() });
        }
        if paid && refused_by_the_payer(attempts) {
            violations.push(Violation::RefusedButPaid { order_id: order_id.clone() });
        }
    }
    if !state.leftovers.is_empty() {
        violations.push(Violation::Unsettled(state.leftovers));
    }
    if let Some(effects) = &state.saga_effects {
        for (order_id, order) in &state.orders {
            let (stock, payment) = effects.get(order_id).copied().unwrap_or((0, 0));
            let expected = if order.paid { (1, 1) } else { (0, 0) };
            if (stock, payment) != expected {
                violations.push(Violation::Effects { order_id: order_id.clone(), paid: order.paid, stock, payment });
            }
        }
    }
    violations
}

/// Whether a refusing call must be the one that paid. The order was paid at
/// the latest when the first "already paid" answer ended (or, without one, by
/// the end of the run); the call that paid it began before that. If no call
/// that may have paid (a 200 saying "paid", a 5xx, no answer) began by then,
/// but a refusal did, that refusal paid. A refusal followed by a true payment
/// (stock released by another checkout's compensation in between) is not
/// blamed, since the paying call is there.
fn refused_by_the_payer(attempts: &[Attempt]) -> bool {
    let seen_paid = attempts.iter().filter(|a| a.answer == Answer::AlreadyPaid).map(|a| a.ended).min();
    let before_seen = |a: &&Attempt| seen_paid.is_none_or(|t| a.started < t);
    let payer_possible = attempts.iter().filter(before_seen).any(|a| a.answer.may_have_paid());
    let refused = attempts.iter().filter(before_seen).any(|a| a.answer == Answer::Refused);
    refused && !payer_possible
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Initial = Initial { credit: 10, stock: 5 };

    /// An attempt from `start` to `end` ms into the load.
    fn at(answer: Answer, start: u64, end: u64) -> Attempt {
        Attempt {
            answer,
            started: Duration::from_millis(start),
            ended: Duration::from_millis(end),
            replied: answer != Answer::Unknown,
        }
    }

    /// Two users, two items; order "0" (user "0", items a+b, cost 4) is paid.
    fn consistent() -> (FinalState, HashMap<String, Vec<Attempt>>) {
        let mut state = FinalState::default();
        state.credit.insert("0".into(), 6);
        state.credit.insert("1".into(), 10);
        state.stock.insert("a".into(), 4);
        state.stock.insert("b".into(), 4);
        let line = |i: &str| (i.to_owned(), 1);
        state.orders.insert(
            "0".into(),
            OrderRow { user_id: "0".into(), paid: true, total_cost: 4, items: vec![line("a"), line("b")] },
        );
        state.orders.insert(
            "1".into(),
            OrderRow { user_id: "1".into(), paid: false, total_cost: 4, items: vec![line("a"), line("b")] },
        );
        let answers = HashMap::from([
            // refused while stock was short, paid later, then found paid
            ("0".to_owned(), vec![at(Answer::Refused, 0, 5), at(Answer::Ok, 10, 20), at(Answer::AlreadyPaid, 30, 31)]),
            ("1".to_owned(), vec![at(Answer::Refused, 0, 5), at(Answer::Unknown, 10, 60_000)]),
        ]);
        (state, answers)
    }

    #[test]
    fn a_consistent_history_passes() {
        let (state, answers) = consistent();
        assert_eq!(check(INITIAL, &state, &answers), vec![]);
    }

    #[test]
    fn catches_lost_or_duplicated_money() {
        let (mut state, answers) = consistent();
        state.credit.insert("0".into(), 2); // charged twice
        assert!(matches!(&check(INITIAL, &state, &answers)[..], [Violation::Credit { expected: 6, actual: 2, .. }]));
        state.credit.insert("0".into(), 10); // paid but never charged
        assert!(matches!(&check(INITIAL, &state, &answers)[..], [Violation::Credit { expected: 6, actual: 10, .. }]));
    }

    #[test]
    fn catches_lost_or_duplicated_stock_and_negative_stock() {
        let (mut state, answers) = consistent();
        state.stock.insert("a".into(), 3);
        assert!(matches!(&check(INITIAL, &state, &answers)[..], [Violation::Stock { expected: 4, actual: 3, .. }]));
        let (mut state, answers) = consistent();
        state.stock.insert("b".into(), -1);
        assert_eq!(check(INITIAL, &state, &answers).len(), 1);
    }

    #[test]
    fn catches_a_200_for_an_unpaid_order() {
        let (state, mut answers) = consistent();
        answers.insert("1".into(), vec![at(Answer::Ok, 0, 1)]);
        assert_eq!(check(INITIAL, &state, &answers), vec![Violation::OkButUnpaid { order_id: "1".into() }]);
    }

    #[test]
    fn catches_a_paid_order_that_was_only_ever_refused() {
        let (state, mut answers) = consistent();
        answers.insert("0".into(), vec![at(Answer::Refused, 0, 1), at(Answer::Refused, 2, 3)]);
        assert_eq!(check(INITIAL, &state, &answers), vec![Violation::RefusedButPaid { order_id: "0".into() }]);
    }

    #[test]
    fn catches_a_refusal_that_paid_although_a_later_call_answered_200() {
        let (state, mut answers) = consistent();
        // The 4xx ended before anything that could pay began; the later 200s
        // only found the order paid.
        answers.insert(
            "0".into(),
            vec![at(Answer::Refused, 0, 5), at(Answer::AlreadyPaid, 10, 11), at(Answer::AlreadyPaid, 20, 21)],
        );
        assert_eq!(check(INITIAL, &state, &answers), vec![Violation::RefusedButPaid { order_id: "0".into() }]);
        // A 4xx that overlaps a call that may have paid is not blamed.
        answers.insert("0".into(), vec![at(Answer::Ok, 0, 50), at(Answer::Refused, 10, 20)]);
        assert_eq!(check(INITIAL, &state, &answers), vec![]);
        // A 200 that does not say (another implementation) may have paid.
        answers.insert("0".into(), vec![at(Answer::Refused, 0, 5), at(Answer::Ok, 10, 11)]);
        assert_eq!(check(INITIAL, &state, &answers), vec![]);
    }

    #[test]
    fn classifies_who_may_have_paid_from_the_reply() {
        assert_eq!(Answer::of(Reply::Paid { already: false }), Answer::Ok);
        assert_eq!(Answer::of(Reply::Paid { already: true }), Answer::AlreadyPaid);
        assert_eq!(Answer::of(Reply::Busy), Answer::Refused);
        assert_eq!(Answer::of(Reply::OtherRejection), Answer::Refused);
        assert_eq!(Answer::of(Reply::System), Answer::Unknown);
        assert_eq!(Answer::of(Reply::NoReply), Answer::Unknown);
    }

    #[test]
    fn catches_stock_taken_from_an_item_missing_from_the_final_state() {
        let (mut state, answers) = consistent();
        state.stock.remove("b");
        assert_eq!(
            check(INITIAL, &state, &answers),
            vec![Violation::Stock { item_id: "b".into(), expected: 4, actual: 0 }]
        );
    }

    #[test]
    fn catches_protocol_state_left_behind() {
        let (mut state, answers) = consistent();
        state.leftovers.prepared_transactions = 2;
        let expected = Leftovers { prepared_transactions: 2, ..Leftovers::default() };
        assert_eq!(check(INITIAL, &state, &answers), vec![Violation::Unsettled(expected)]);
        state.leftovers = Leftovers { sagas_in_flight: 1, unsent_outbox: 3, ..Leftovers::default() };
        assert_eq!(check(INITIAL, &state, &answers), vec![Violation::Unsettled(state.leftovers)]);
    }

    #[test]
    fn catches_saga_effects_missing_doubled_or_left_in_place() {
        let (mut state, answers) = consistent();
        state.saga_effects = Some(BTreeMap::from([("0".to_owned(), (1, 1))]));
        assert_eq!(check(INITIAL, &state, &answers), vec![], "one effect per step of the paid order");
        state.saga_effects = Some(BTreeMap::from([("0".to_owned(), (1, 2)), ("1".to_owned(), (1, 0))]));
        assert_eq!(
            check(INITIAL, &state, &answers),
            vec![
                Violation::Effects { order_id: "0".into(), paid: true, stock: 1, payment: 2 },
                Violation::Effects { order_id: "1".into(), paid: false, stock: 1, payment: 0 },
            ]
        );
        state.saga_effects = Some(BTreeMap::new());
        assert_eq!(
            check(INITIAL, &state, &answers),
            vec![Violation::Effects { order_id: "0".into(), paid: true, stock: 0, payment: 0 }]
        );
    }
}
