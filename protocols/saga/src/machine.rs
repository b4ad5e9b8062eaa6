//! The orchestrator's state machine, free of I/O: given the saga's state and a
//! participant's reply, which commands to send next and whether the saga is
//! over. The runner ([`crate::orchestrator`]) persists the state in the order
//! database and turns actions into outbox rows.
//!
//! ```text
//!  sequential:  reserve ─done─► debit ─done─► PAID
//!                  │refused        │refused
//!                  ▼               ▼
//!              REJECTED      release ─compensated─► REJECTED
//!  parallel:    reserve ∥ debit; both done ─► PAID; any refused ─► compensate
//!               every step that is (or later turns out) done, then REJECTED
//! ```
//!
//! Replies that do not fit the current state (duplicates, re-sent commands
//! answered twice, replies after the saga ended) change nothing and say so
//! (`None`), so the runner can feed every delivery in without filtering, and
//! persists the state whenever it changed, even when there is nothing to send
//! (in parallel mode, the first of two successes).

use std::fmt;
use std::str::FromStr;

use protocol_core::RejectReason;
use serde::{Deserialize, Serialize};

use crate::messages::Step;

/// How the steps are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Reserve stock, then debit credit (the default): a refused reservation
    /// costs no compensation.
    #[default]
    Sequential,
    /// Both steps at once; whichever succeeded is compensated when the other fails.
    Parallel,
}

impl Mode {
    /// Name used on the command line and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::Parallel => "parallel",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sequential" => Ok(Mode::Sequential),
            "parallel" => Ok(Mode::Parallel),
            other => Err(format!("unknown saga mode {other:?} (expected sequential or parallel)")),
        }
    }
}

/// Where one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not asked yet.
    Idle,
    /// Action sent, no answer yet.
    Requested,
    /// The action took effect.
    Done,
    /// The action was refused; nothing to undo.
    Refused,
    /// Compensation sent, no answer yet.
    Compensating,
    /// The action was undone.
    Compensated,
}

/// The SQL condition "the saga is in flight" on `sagas.status`: the statuses
/// of [`Status`] that are not terminal. A macro, so that queries `concat!` it
/// into their literal; the partial indexes of `sql/orchestrator.sql` spell the
/// same condition, and a test checks both against [`Status::ALL`].
#[macro_export]
macro_rules! in_flight_sql {
    () => {
        "status IN ('running', 'compensating')"
    };
}

/// Where the whole saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Steps in progress, nothing failed yet.
    Running,
    /// A step was refused; undoing the ones that took effect.
    Compensating,
    /// Terminal: every step took effect; the order is paid.
    Paid,
    /// Terminal: no step has an effect left.
    Rejected,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [Status::Running, Status::Compensating, Status::Paid, Status::Rejected];

    /// The name in the `sagas.status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Paid => "paid",
            Status::Rejected => "rejected",
        }
    }

    /// Whether the saga is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Paid | Status::Rejected)
    }
}

/// What a participant reported about a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The step's action took effect.
    Done(Step),
    /// The step's action was refused.
    Refused(Step, RejectReason),
    /// The step's compensation finished.
    Compensated(Step),
}

/// What the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the step's action command.
    Do(Step),
    /// Send the step's compensation command.
    Undo(Step),
    /// The saga reached a terminal state: record it (and mark the order paid on
    /// [`Status::Paid`]) in the same transaction as the state.
    Finish(Status),
}

/// The state of one saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saga {
    /// How the steps run.
    pub mode: Mode,
    /// Overall status.
    pub status: Status,
    /// The stock step.
    pub stock: StepState,
    /// The payment step.
    pub payment: StepState,
    /// The first refusal, reported to the client when the saga is rejected.
    pub reason: Option<RejectReason>,
}

impl Saga {
    /// A new saga and its first commands.
    pub fn start(mode: Mode) -> (Saga, Vec<Action>) {
        let mut saga =
            Saga { mode, status: Status::Running, stock: StepState::Idle, payment: StepState::Idle, reason: None };
        let first: &[Step] = match mode {
            Mode::Sequential => &[Step::ReserveStock],
            Mode::Parallel => &Step::ALL,
        };
        let actions = first
            .iter()
            .map(|&step| {
                *saga.state_mut(step) = StepState::Requested;
                Action::Do(step)
            })
            .collect();
        (saga, actions)
    }

    /// The state of `step`.
    pub fn state(&self, step: Step) -> StepState {
        match step {
            Step::ReserveStock => self.stock,
            Step::DebitCredit => self.payment,
        }
    }

    fn state_mut(&mut self, step: Step) -> &mut StepState {
        match step {
            Step::ReserveStock => &mut self.stock,
            Step::DebitCredit => &mut self.payment,
        }
    }

    fn other(step: Step) -> Step {
        match step {
            Step::ReserveStock => Step::DebitCredit,
            Step::DebitCredit => Step::ReserveStock,
        }
    }

    /// Applies a participant's report; returns what to do, or `None` when the
    /// report does not match the step's state and changed nothing.
    pub fn on(&mut self, event: Event) -> Option<Vec<Action>> {
        if self.status.is_terminal() {
            return None;
        }
        let mut actions = Vec::new();
        match event {
            Event::Done(step) if self.state(step) == StepState::Requested => {
                if self.status == Status::Compensating {
                    // The other step failed meanwhile: undo this one.
                    *self.state_mut(step) = StepState::Compensating;
                    actions.push(Action::Undo(step));
                } else {
                    *self.state_mut(step) = StepState::Done;
                    let other = Self::other(step);
                    if self.state(other) == StepState::Idle {
                        *self.state_mut(other) = StepState::Requested;
                        actions.push(Action::Do(other));
                    }
                }
            }
            Event::Refused(step, reason) if self.state(step) == StepState::Requested => {
                *self.state_mut(step) = StepState::Refused;
                self.reason.get_or_insert(reason);
                self.status = Status::Compensating;
                let other = Self::other(step);
                if self.state(other) == StepState::Done {
                    *self.state_mut(other) = StepState::Compensating;
                    actions.push(Action::Undo(other));
                }
            }
            Event::Compensated(step) if self.state(step) == StepState::Compensating => {
                *self.state_mut(step) = StepState::Compensated;
            }
            _ => return None,
        }
        if let Some(status) = self.terminal() {
            self.status = status;
            actions.push(Action::Finish(status));
        }
        Some(actions)
    }

    fn terminal(&self) -> Option<Status> {
        let (s, p) = (self.stock, self.payment);
        if s == StepState::Done && p == StepState::Done {
            return Some(Status::Paid);
        }
        let busy = |x| matches!(x, StepState::Requested | StepState::Compensating);
        (self.status == Status::Compensating && !busy(s) && !busy(p)).then_some(Status::Rejected)
    }

    /// The commands still awaiting an answer, to re-send when a saga has made
    /// no progress for a while (a lost message, a participant that was down).
    /// Participants answer re-sent commands idempotently.
    pub fn pending(&self) -> Vec<Action> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        Step::ALL
            .iter()
            .filter_map(|&step| match self.state(step) {
                StepState::Requested => Some(Action::Do(step)),
                StepState::Compensating => Some(Action::Undo(step)),
                _ => None,
            })
            .collect()
    }

    /// The actions whose effect is in place while the saga is still running.
    /// Recovery re-sends them with [`Saga::pending`]: the participant answers
    /// from its record (the repeated reply changes nothing here) and so keeps
    /// that record from ageing out of its retention while the saga waits on the
    /// other step, because a compensation may still need it.
    pub fn held(&self) -> Vec<Action> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        Step::ALL.iter().filter(|&&step| self.state(step) == StepState::Done).map(|&step| Action::Do(step)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_flight_condition_lists_exactly_the_statuses_that_are_not_terminal() {
        let names: Vec<String> =
            Status::ALL.iter().filter(|s| !s.is_terminal()).map(|s| format!("'{}'", s.as_str())).collect();
        let condition = format!("status IN ({})", names.join(", "));
        assert_eq!(in_flight_sql!(), condition);
        let schema = include_str!("../sql/orchestrator.sql");
        assert_eq!(schema.matches(in_flight_sql!()).count(), 2, "both partial indexes use the condition");
        let all: Vec<String> = Status::ALL.iter().map(|s| format!("'{}'", s.as_str())).collect();
        assert!(schema.contains(&format!("CHECK (status IN ({}))", all.join(", "))), "the CHECK lists every status");
    }
    use Step::{DebitCredit as Pay, ReserveStock as Stock};

    fn credit() -> RejectReason {
        RejectReason::InsufficientCredit
    }

    fn stock_out() -> RejectReason {
        RejectReason::OutOfStock { item_id: "1".into() }
    }

    #[test]
    fn held_steps_are_re_sent_and_their_repeated_answer_changes_nothing() {
        let (mut saga, _) = Saga::start(Mode::Sequential);
        saga.on(Event::Done(Stock)).unwrap();
        assert_eq!(saga.held(), vec![Action::Do(Stock)]);
        assert_eq!(saga.pending(), vec![Action::Do(Pay)]);
        assert_eq!(saga.on(Event::Done(Stock)), None, "the repeated answer is ignored");
        saga.on(Event::Done(Pay)).unwrap();
        assert_eq!(saga.held(), vec![], "a terminal saga holds nothing");
    }

    #[test]
    fn sequential_happy_path() {
        let (mut saga, first) = Saga::start(Mode::Sequential);
        assert_eq!(first, vec![Action::Do(Stock)]);
        assert_eq!(saga.on(Event::Done(Stock)), Some(vec![Action::Do(Pay)]));
        assert_eq!(saga.on(Event::Done(Pay)), Some(vec![Action::Finish(Status::Paid)]));
        assert_eq!(saga.status, Status::Paid);
    }

    #[test]
    fn sequential_stock_refused_needs_no_compensation() {
        let (mut saga, _) = Saga::start(Mode::Sequential);
        assert_eq!(saga.on(Event::Refused(Stock, stock_out())), Some(vec![Action::Finish(Status::Rejected)]));
        assert_eq!(saga.payment, StepState::Idle, "payment never asked");
        assert_eq!(saga.reason, Some(stock_out()));
    }

    #[test]
    fn sequential_payment_refused_releases_stock() {
        let (mut saga, _) = Saga::start(Mode::Sequential);
        saga.on(Event::Done(Stock));
        assert_eq!(saga.on(Event::Refused(Pay, credit())), Some(vec![Action::Undo(Stock)]));
        assert_eq!(saga.status, Status::Compensating);
        assert_eq!(saga.pending(), vec![Action::Undo(Stock)]);
        assert_eq!(saga.on(Event::Compensated(Stock)), Some(vec![Action::Finish(Status::Rejected)]));
        assert_eq!(saga.reason, Some(credit()));
    }

    #[test]
    fn duplicates_and_late_replies_change_nothing() {
        let (mut saga, _) = Saga::start(Mode::Sequential);
        saga.on(Event::Done(Stock));
        let before = saga.clone();
        assert_eq!(saga.on(Event::Done(Stock)), None, "duplicate done");
        assert_eq!(saga.on(Event::Compensated(Stock)), None, "compensated without compensation");
        assert_eq!(saga.on(Event::Refused(Stock, stock_out())), None, "refusal after done");
        assert_eq!(saga, before);
        saga.on(Event::Done(Pay));
        let paid = saga.clone();
        for late in [Event::Refused(Pay, credit()), Event::Done(Pay), Event::Compensated(Stock)] {
            assert_eq!(saga.on(late), None);
        }
        assert_eq!(saga, paid);
        assert!(saga.pending().is_empty());
    }

    /// Every order of the two replies in parallel mode (and every outcome of
    /// each step) ends terminal, paid only if both succeeded, with every step
    /// that took effect compensated otherwise.
    #[test]
    fn parallel_every_interleaving() {
        #[derive(Clone, Copy, Debug)]
        enum R {
            Ok,
            No,
        }
        for (s, p) in [(R::Ok, R::Ok), (R::Ok, R::No), (R::No, R::Ok), (R::No, R::No)] {
            for stock_first in [true, false] {
                let (mut saga, first) = Saga::start(Mode::Parallel);
                assert_eq!(first, vec![Action::Do(Stock), Action::Do(Pay)]);
                let event = |step, r| match (step, r) {
                    (_, R::Ok) => Event::Done(step),
                    (Stock, R::No) => Event::Refused(step, stock_out()),
                    (Pay, R::No) => Event::Refused(step, credit()),
                };
                let order = if stock_first { [(Stock, s), (Pay, p)] } else { [(Pay, p), (Stock, s)] };
                let mut queue: Vec<Action> = Vec::new();
                for (step, r) in order {
                    queue.extend(saga.on(event(step, r)).expect("a first reply always changes the state"));
                }
                // Answer every compensation.
                while let Some(pos) = queue.iter().position(|a| matches!(a, Action::Undo(_))) {
                    let Action::Undo(step) = queue.remove(pos) else { unreachable!() };
                    queue.extend(saga.on(Event::Compensated(step)).expect("compensation was pending"));
                }
                let case = format!("{s:?}/{p:?} stock_first={stock_first}");
                let both = matches!((s, p), (R::Ok, R::Ok));
                let expected = if both { Status::Paid } else { Status::Rejected };
                assert_eq!(queue.last(), Some(&Action::Finish(expected)), "{case}: {queue:?}");
                assert_eq!(saga.status, expected, "{case}");
                for step in Step::ALL {
                    let st = saga.state(step);
                    let ok = if both {
                        st == StepState::Done
                    } else {
                        matches!(st, StepState::Refused | StepState::Compensated)
                    };
                    assert!(ok, "{case}: {step:?} left {st:?}");
                }
                let first_refusal = order.iter().find(|(_, r)| matches!(r, R::No));
                if let Some((step, _)) = first_refusal {
                    let want = if *step == Stock { stock_out() } else { credit() };
                    assert_eq!(saga.reason, Some(want), "{case}: the first refusal is reported");
                }
            }
        }
    }

    #[test]
    fn pending_lists_unanswered_commands() {
        let (mut saga, _) = Saga::start(Mode::Parallel);
        assert_eq!(saga.pending(), vec![Action::Do(Stock), Action::Do(Pay)]);
        assert_eq!(saga.on(Event::Done(Pay)), Some(vec![]), "a state change with nothing to send");
        assert_eq!(saga.pending(), vec![Action::Do(Stock)]);
        saga.on(Event::Refused(Stock, stock_out()));
        assert_eq!(saga.pending(), vec![Action::Undo(Pay)]);
    }

    #[test]
    fn mode_parses() {
        assert_eq!("parallel".parse::<Mode>(), Ok(Mode::Parallel));
        assert_eq!(Mode::default().to_string(), "sequential");
        assert!("both".parse::<Mode>().is_err());
    }
}
