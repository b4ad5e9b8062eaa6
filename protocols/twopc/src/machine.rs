//! The coordinator of one transaction as an I/O-free state machine.
//!
//! The runner ([`crate::coordinator`]) feeds it events (votes, the decision
//! becoming durable, acknowledgements) and carries out the actions it returns
//! (send prepare / commit / rollback, write the decision, reply). Keeping the
//! protocol here, apart from HTTP and SQL, lets the tests walk every
//! interleaving of votes and failures without a network.
//!
//! ```text
//!   start ─► Prepare(stock), Prepare(payment)          (parallel)
//!         or Prepare(first) ─ Yes ─► Prepare(second)    (ordered)
//!   all Yes ───────────────► LogDecision(Commit) ─► DecisionLogged ─► Commit(*) ─► acks ─► Reply(Paid)
//!   any No / Failed ───────► LogDecision(Abort) + Rollback(asked) ─────────────► acks ─► Reply(Rejected | Failed)
//!   commit not written ────► LogDecision(Abort) + Rollback(*) ─────────────────► acks ─► Reply(Failed)
//!   commit not durable ────► Reply(Unknown)   (recovery settles it: presumed abort)
//! ```
//!
//! Rollbacks go only to the participants that may hold a branch: one never
//! asked holds nothing, and one that voted no has already rolled back its
//! transaction (its prepare answered, so no late prepare of that gid can
//! arrive); presumed abort needs no message to either. When nobody needs a
//! rollback, the abort is answered at once.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use protocol_core::RejectReason;

use crate::gid::ParticipantId;

/// In which order the coordinator asks for the prepares: the choice between
/// latency and freedom from distributed deadlock.
///
/// A prepared branch holds its row locks until phase two. With both prepares
/// in flight at once, two checkouts can each hold a branch the other waits
/// for (one holds the item and waits for the user, the other the reverse):
/// no database sees that cycle, and only the lock budget ends it. Asking one
/// participant after the other, in the same order for every checkout, makes
/// every wait point from the first participant's locks to the second's, so
/// no cycle can form; the price is one prepare's latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrepareOrder {
    /// Both prepares at once: the lowest latency, deadlock-prone under contention.
    Parallel,
    /// Stock, then payment: a checkout refused for stock costs no payment
    /// branch, but the items stay locked through the payment prepare.
    StockFirst,
    /// Payment, then stock (the default): the items, usually the contended
    /// rows, are locked for the shortest time (their prepare, the decision,
    /// their commit).
    #[default]
    PaymentFirst,
}

impl PrepareOrder {
    /// Every strategy, for sweeps.
    pub const ALL: [PrepareOrder; 3] = [PrepareOrder::Parallel, PrepareOrder::StockFirst, PrepareOrder::PaymentFirst];

    /// Name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PrepareOrder::Parallel => "parallel",
            PrepareOrder::StockFirst => "stock-first",
            PrepareOrder::PaymentFirst => "payment-first",
        }
    }

    /// The participants in the order they are asked; `None` when all at once.
    fn sequence(self) -> Option<[ParticipantId; 2]> {
        match self {
            PrepareOrder::Parallel => None,
            PrepareOrder::StockFirst => Some([ParticipantId::Stock, ParticipantId::Payment]),
            PrepareOrder::PaymentFirst => Some([ParticipantId::Payment, ParticipantId::Stock]),
        }
    }
}

impl fmt::Display for PrepareOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PrepareOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PrepareOrder::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown prepare order {s:?} (expected parallel, stock-first or payment-first)"))
    }
}

/// A participant's answer to prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// Prepared: its effects are durable and await the decision.
    Yes,
    /// Refused for a business reason; nothing is prepared.
    No(RejectReason),
    /// No usable answer (timeout, transport or server error). It may or may not
    /// have prepared; the decision is abort and its rollback is idempotent.
    Failed(String),
}

/// The outcome of the transaction: in the decision log and in the answer to a
/// participant's `resolve` (as `"commit"` / `"abort"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Every participant voted yes and the decision is durable.
    Commit,
    /// Some participant did not vote yes.
    Abort,
}

impl Decision {
    /// Name stored in the decision log.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

impl FromStr for Decision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "commit" => Ok(Decision::Commit),
            "abort" => Ok(Decision::Abort),
            other => Err(format!("unknown 2PC decision {other:?}")),
        }
    }
}

/// Something that happened to the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A participant answered prepare (or failed to).
    Voted(ParticipantId, Vote),
    /// The decision was written durably.
    DecisionLogged(Decision),
    /// Writing the decision failed; for a commit the outcome is now unknown
    /// (its `COMMIT` was sent and may have reached the disk).
    DecisionFailed(Decision, String),
    /// The commit decision's transaction failed before its `COMMIT` was sent:
    /// nothing is on record, so the transaction is aborted (presumed abort),
    /// and the branches can be rolled back at once.
    CommitNotWritten(String),
    /// A participant acknowledged phase two.
    Acked(ParticipantId),
    /// Phase two with a participant did not finish in time; recovery takes over.
    PhaseTwoGaveUp(ParticipantId),
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask a participant to prepare.
    Prepare(ParticipantId),
    /// Take the decision: a commit is written durably together with marking
    /// the order paid; an abort needs no write (presumed abort), the runner
    /// only ends the order transaction, releasing the order row.
    LogDecision(Decision),
    /// Tell a participant to commit its prepared branch.
    Commit(ParticipantId),
    /// Tell a participant to roll back (or tombstone) its branch.
    Rollback(ParticipantId),
    /// Answer the client.
    Reply(Reply),
}

/// What the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Committed.
    Paid,
    /// Aborted because a participant refused.
    Rejected(RejectReason),
    /// Aborted because a participant could not be reached.
    Failed(String),
    /// The commit decision may or may not be durable; the final state decides.
    Unknown(String),
}

/// The coordinator of one transaction.
#[derive(Debug, Clone)]
pub struct Machine {
    order: PrepareOrder,
    /// Participants asked to prepare so far (the ones an abort rolls back).
    asked: BTreeSet<ParticipantId>,
    votes: Vec<(ParticipantId, Vote)>,
    decision: Option<Decision>,
    pending: BTreeSet<ParticipantId>,
    replied: bool,
    /// Why the transaction aborted when no vote says so.
    abort_cause: Option<String>,
}

impl Machine {
    /// A new transaction and its first actions: prepare everywhere, or at the
    /// first participant of `order`.
    pub fn start(order: PrepareOrder) -> (Machine, Vec<Action>) {
        let mut machine = Machine {
            order,
            asked: BTreeSet::new(),
            votes: Vec::new(),
            decision: None,
            pending: BTreeSet::new(),
            replied: false,
            abort_cause: None,
        };
        let first = match order.sequence() {
            None => ParticipantId::ALL.to_vec(),
            Some([first, _]) => vec![first],
        };
        let actions = first.into_iter().map(|p| machine.ask(p)).collect();
        (machine, actions)
    }

    fn ask(&mut self, p: ParticipantId) -> Action {
        self.asked.insert(p);
        Action::Prepare(p)
    }

    /// Rolls back every participant asked so far and waits for their acks.
    fn roll_back_asked(&mut self) -> Vec<Action> {
        self.pending = self.asked.clone();
        self.asked.iter().map(|p| Action::Rollback(*p)).collect()
    }

    /// The decision, once taken.
    pub fn decision(&self) -> Option<Decision> {
        self.decision
    }

    /// Whether the client has its reply (nothing more will be asked).
    pub fn is_done(&self) -> bool {
        self.replied
    }

    /// Applies `event` and returns what to do next.
    pub fn step(&mut self, event: Event) -> Vec<Action> {
        if self.replied {
            return Vec::new();
        }
        match event {
            Event::Voted(p, vote) => self.on_vote(p, vote),
            Event::DecisionLogged(Decision::Commit) => {
                self.pending = ParticipantId::ALL.into_iter().collect();
                ParticipantId::ALL.iter().map(|p| Action::Commit(*p)).collect()
            }
            // The log already held an abort (recovery resolved this transaction
            // while it was preparing): abort wins, roll everyone back.
            Event::DecisionLogged(Decision::Abort) if self.decision == Some(Decision::Commit) => {
                self.decision = Some(Decision::Abort);
                self.abort_cause = Some("aborted by recovery before the commit decision".to_owned());
                self.roll_back_asked()
            }
            Event::CommitNotWritten(err) if self.decision == Some(Decision::Commit) => {
                self.decision = Some(Decision::Abort);
                self.abort_cause = Some(format!("the commit decision could not be written: {err}"));
                let mut actions = vec![Action::LogDecision(Decision::Abort)];
                actions.extend(self.roll_back_asked());
                actions
            }
            Event::CommitNotWritten(_) => Vec::new(),
            // Rollbacks went out with the abort decision; nothing waits on the log.
            Event::DecisionLogged(Decision::Abort) | Event::DecisionFailed(Decision::Abort, _) => Vec::new(),
            Event::DecisionFailed(Decision::Commit, err) => self.reply(Reply::Unknown(err)),
            Event::Acked(p) | Event::PhaseTwoGaveUp(p) => {
                self.pending.remove(&p);
                if self.pending.is_empty() && self.decision.is_some() { self.final_reply() } else { Vec::new() }
            }
        }
    }

    fn on_vote(&mut self, p: ParticipantId, vote: Vote) -> Vec<Action> {
        if self.votes.iter().any(|(q, _)| *q == p) {
            return Vec::new(); // a duplicate answer changes nothing
        }
        let yes = vote == Vote::Yes;
        if matches!(vote, Vote::No(_)) && self.decision.is_none() {
            self.asked.remove(&p); // rolled back already: nothing to undo
        }
        self.votes.push((p, vote));
        if self.decision.is_some() {
            return Vec::new(); // late vote after an abort: its rollback is already out
        }
        if !yes {
            self.decision = Some(Decision::Abort);
            let mut actions = vec![Action::LogDecision(Decision::Abort)];
            actions.extend(self.roll_back_asked());
            if self.pending.is_empty() {
                actions.extend(self.final_reply());
            }
            return actions;
        }
        if self.votes.len() == ParticipantId::ALL.len() {
            self.decision = Some(Decision::Commit);
            return vec![Action::LogDecision(Decision::Commit)];
        }
        match self.order.sequence() {
            Some([_, second]) if !self.asked.contains(&second) => vec![self.ask(second)],
            _ => Vec::new(),
        }
    }

    fn final_reply(&mut self) -> Vec<Action> {
        let reply = match self.decision {
            Some(Decision::Commit) => Reply::Paid,
            _ => self.abort_reply(),
        };
        self.reply(reply)
    }

    /// A refusal wins over a failure (the client can act on it); refusals are
    /// reported in participant order so the answer does not depend on timing.
    fn abort_reply(&self) -> Reply {
        if let Some(cause) = &self.abort_cause {
            return Reply::Failed(cause.clone());
        }
        let mut refusals: Vec<&(ParticipantId, Vote)> =
            self.votes.iter().filter(|(_, v)| matches!(v, Vote::No(_))).collect();
        refusals.sort_by_key(|(p, _)| *p);
        if let Some((_, Vote::No(reason))) = refusals.first() {
            return Reply::Rejected(reason.clone());
        }
        let failure = self.votes.iter().find_map(|(p, v)| match v {
            Vote::Failed(err) => Some(format!("{} failed to prepare: {err}", p.as_str())),
            _ => None,
        });
        Reply::Failed(failure.unwrap_or_else(|| "aborted".to_owned()))
    }

    fn reply(&mut self, reply: Reply) -> Vec<Action> {
        self.replied = true;
        vec![Action::Reply(reply)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ParticipantId::{Payment, Stock};

    fn out_of_stock() -> RejectReason {
        RejectReason::OutOfStock { item_id: "7".into() }
    }

    #[test]
    fn all_yes_commits_after_the_decision_is_durable() {
        let (mut m, start) = Machine::start(PrepareOrder::Parallel);
        assert_eq!(start, vec![Action::Prepare(Stock), Action::Prepare(Payment)]);
        assert_eq!(m.step(Event::Voted(Payment, Vote::Yes)), vec![]);
        assert_eq!(m.step(Event::Voted(Stock, Vote::Yes)), vec![Action::LogDecision(Decision::Commit)]);
        // Nothing is committed before the decision is logged.
        assert_eq!(
            m.step(Event::DecisionLogged(Decision::Commit)),
            vec![Action::Commit(Stock), Action::Commit(Payment)]
        );
        assert_eq!(m.step(Event::Acked(Stock)), vec![]);
        assert_eq!(m.step(Event::Acked(Payment)), vec![Action::Reply(Reply::Paid)]);
        assert!(m.is_done());
    }

    #[test]
    fn a_no_aborts_at_once_and_rolls_back_everyone() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        // Stock rolled back its own refused branch: only payment needs one.
        assert_eq!(
            m.step(Event::Voted(Stock, Vote::No(out_of_stock()))),
            vec![Action::LogDecision(Decision::Abort), Action::Rollback(Payment)]
        );
        // Payment's late yes changes nothing: its rollback is already on the way.
        assert_eq!(m.step(Event::Voted(Payment, Vote::Yes)), vec![]);
        assert_eq!(m.step(Event::DecisionLogged(Decision::Abort)), vec![]);
        assert_eq!(m.step(Event::Acked(Payment)), vec![Action::Reply(Reply::Rejected(out_of_stock()))]);
    }

    #[test]
    fn refusals_beat_failures_and_are_reported_in_participant_order() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Payment, Vote::Failed("timeout".into())));
        m.step(Event::Voted(Stock, Vote::No(out_of_stock())));
        m.step(Event::Acked(Stock));
        assert_eq!(m.step(Event::Acked(Payment)), vec![Action::Reply(Reply::Rejected(out_of_stock()))]);
    }

    #[test]
    fn a_failed_vote_aborts_with_a_failure_reply() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Stock, Vote::Yes));
        let actions = m.step(Event::Voted(Payment, Vote::Failed("connection refused".into())));
        assert_eq!(actions[0], Action::LogDecision(Decision::Abort));
        m.step(Event::PhaseTwoGaveUp(Stock));
        let reply = m.step(Event::Acked(Payment));
        assert!(matches!(&reply[..], [Action::Reply(Reply::Failed(msg))] if msg.contains("payment")));
    }

    #[test]
    fn a_commit_that_may_not_be_durable_is_unknown_and_sends_no_phase_two() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Stock, Vote::Yes));
        m.step(Event::Voted(Payment, Vote::Yes));
        assert_eq!(
            m.step(Event::DecisionFailed(Decision::Commit, "connection reset".into())),
            vec![Action::Reply(Reply::Unknown("connection reset".into()))]
        );
        assert!(m.is_done());
        assert_eq!(m.step(Event::Acked(Stock)), vec![]);
    }

    #[test]
    fn a_commit_decision_that_was_never_written_aborts_and_rolls_back_at_once() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Stock, Vote::Yes));
        m.step(Event::Voted(Payment, Vote::Yes));
        assert_eq!(
            m.step(Event::CommitNotWritten("unique violation".into())),
            vec![Action::LogDecision(Decision::Abort), Action::Rollback(Stock), Action::Rollback(Payment)]
        );
        assert_eq!(m.decision(), Some(Decision::Abort));
        assert_eq!(m.step(Event::DecisionLogged(Decision::Abort)), vec![]);
        assert_eq!(m.step(Event::Acked(Stock)), vec![]);
        let reply = m.step(Event::Acked(Payment));
        assert!(
            matches!(&reply[..], [Action::Reply(Reply::Failed(why))] if why.contains("unique violation")),
            "{reply:?}"
        );
    }

    #[test]
    fn phase_two_giving_up_still_reports_a_durable_commit() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Stock, Vote::Yes));
        m.step(Event::Voted(Payment, Vote::Yes));
        m.step(Event::DecisionLogged(Decision::Commit));
        m.step(Event::PhaseTwoGaveUp(Stock));
        assert_eq!(m.step(Event::Acked(Payment)), vec![Action::Reply(Reply::Paid)]);
    }

    #[test]
    fn an_abort_already_in_the_log_overrides_the_commit() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Stock, Vote::Yes));
        m.step(Event::Voted(Payment, Vote::Yes));
        assert_eq!(
            m.step(Event::DecisionLogged(Decision::Abort)),
            vec![Action::Rollback(Stock), Action::Rollback(Payment)]
        );
        assert_eq!(m.decision(), Some(Decision::Abort));
        m.step(Event::Acked(Stock));
        let reply = m.step(Event::Acked(Payment));
        assert!(matches!(&reply[..], [Action::Reply(Reply::Failed(_))]));
    }

    #[test]
    fn duplicate_votes_are_ignored() {
        let (mut m, _) = Machine::start(PrepareOrder::Parallel);
        m.step(Event::Voted(Stock, Vote::Yes));
        assert_eq!(m.step(Event::Voted(Stock, Vote::No(out_of_stock()))), vec![]);
        assert_eq!(m.step(Event::Voted(Payment, Vote::Yes)), vec![Action::LogDecision(Decision::Commit)]);
    }

    #[test]
    fn ordered_prepares_ask_the_second_only_after_the_first_voted_yes() {
        let (mut m, start) = Machine::start(PrepareOrder::PaymentFirst);
        assert_eq!(start, vec![Action::Prepare(Payment)]);
        assert_eq!(m.step(Event::Voted(Payment, Vote::Yes)), vec![Action::Prepare(Stock)]);
        assert_eq!(m.step(Event::Voted(Stock, Vote::Yes)), vec![Action::LogDecision(Decision::Commit)]);
        let (_, start) = Machine::start(PrepareOrder::StockFirst);
        assert_eq!(start, vec![Action::Prepare(Stock)]);
    }

    #[test]
    fn a_refused_first_prepare_rolls_back_only_what_was_asked() {
        let (mut m, _) = Machine::start(PrepareOrder::StockFirst);
        // Payment was never asked and stock rolled back its own refusal:
        // nothing to roll back, the refusal is answered at once.
        assert_eq!(
            m.step(Event::Voted(Stock, Vote::No(out_of_stock()))),
            vec![Action::LogDecision(Decision::Abort), Action::Reply(Reply::Rejected(out_of_stock()))]
        );
        assert!(m.is_done());
        // A refused second prepare rolls back the first.
        let (mut m, _) = Machine::start(PrepareOrder::PaymentFirst);
        m.step(Event::Voted(Payment, Vote::Yes));
        assert_eq!(
            m.step(Event::Voted(Stock, Vote::No(out_of_stock()))),
            vec![Action::LogDecision(Decision::Abort), Action::Rollback(Payment)]
        );
        // A failed vote (it may have prepared) is rolled back too.
        let (mut m, _) = Machine::start(PrepareOrder::PaymentFirst);
        m.step(Event::Voted(Payment, Vote::Yes));
        assert_eq!(
            m.step(Event::Voted(Stock, Vote::Failed("timeout".into()))),
            vec![Action::LogDecision(Decision::Abort), Action::Rollback(Stock), Action::Rollback(Payment)]
        );
    }

    /// For every strategy and vote combination, answering each prepare as it
    /// is asked ends in exactly one reply, commits only on two yes votes, and
    /// an ordered strategy never has two prepares outstanding at once (the
    /// property that makes it free of distributed deadlock).
    #[test]
    fn every_strategy_decides_correctly_and_ordered_ones_prepare_one_at_a_time() {
        let votes = [Vote::Yes, Vote::No(out_of_stock()), Vote::Failed("x".into())];
        for order in PrepareOrder::ALL {
            for a in &votes {
                for b in &votes {
                    let vote_of = |p: ParticipantId| if p == Stock { a.clone() } else { b.clone() };
                    let (mut m, mut todo) = Machine::start(order);
                    let (mut replies, mut paid) = (0, false);
                    while let Some(action) = todo.pop() {
                        match action {
                            Action::Prepare(p) => {
                                let outstanding = todo.iter().filter(|x| matches!(x, Action::Prepare(_))).count();
                                assert!(order == PrepareOrder::Parallel || outstanding == 0, "{order}");
                                todo.extend(m.step(Event::Voted(p, vote_of(p))));
                            }
                            Action::LogDecision(d) => todo.extend(m.step(Event::DecisionLogged(d))),
                            Action::Commit(p) | Action::Rollback(p) => todo.extend(m.step(Event::Acked(p))),
                            Action::Reply(r) => {
                                replies += 1;
                                paid = r == Reply::Paid;
                            }
                        }
                    }
                    assert_eq!(replies, 1, "{order} {a:?} {b:?}");
                    assert_eq!(paid, *a == Vote::Yes && *b == Vote::Yes, "{order} {a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn prepare_orders_round_trip_through_their_names() {
        for order in PrepareOrder::ALL {
            assert_eq!(order.as_str().parse::<PrepareOrder>(), Ok(order));
        }
        assert!("sideways".parse::<PrepareOrder>().is_err());
    }

    /// Every order of the two votes, for every vote combination, ends in exactly
    /// one reply, and commits only if both voted yes.
    #[test]
    fn every_vote_interleaving_decides_correctly() {
        let votes = [Vote::Yes, Vote::No(out_of_stock()), Vote::Failed("x".into())];
        for a in &votes {
            for b in &votes {
                for stock_first in [true, false] {
                    let (mut m, _) = Machine::start(PrepareOrder::Parallel);
                    let mut actions = Vec::new();
                    let order = if stock_first { [(Stock, a), (Payment, b)] } else { [(Payment, b), (Stock, a)] };
                    for (p, v) in order {
                        actions.extend(m.step(Event::Voted(p, v.clone())));
                    }
                    let both_yes = *a == Vote::Yes && *b == Vote::Yes;
                    assert_eq!(m.decision(), Some(if both_yes { Decision::Commit } else { Decision::Abort }));
                    if both_yes {
                        assert!(!actions.iter().any(|x| matches!(x, Action::Rollback(_))));
                        actions.extend(m.step(Event::DecisionLogged(Decision::Commit)));
                    } else {
                        assert!(!actions.iter().any(|x| matches!(x, Action::Commit(_))));
                    }
                    actions.extend(m.step(Event::Acked(Stock)));
                    actions.extend(m.step(Event::Acked(Payment)));
                    let replies: Vec<_> = actions.iter().filter(|x| matches!(x, Action::Reply(_))).collect();
                    assert_eq!(replies.len(), 1, "{a:?} {b:?} {stock_first}");
                    assert_eq!(matches!(replies[0], Action::Reply(Reply::Paid)), both_yes);
                }
            }
        }
    }
}
