//! The coordinator runner: carries out the [`Machine`]'s actions with calls to
//! the participants (through a [`Transport`]: HTTP between the services) and
//! writes to the decision log, and runs recovery.
//!
//! The caller (the order service) opens a transaction on the order database,
//! locks the order row (`FOR UPDATE`) and reads the order under that lock; the
//! runner keeps that transaction open through the prepare phase and commits it
//! together with the commit decision and the order's `paid` flag. So concurrent
//! checkouts of one order queue on the row lock, and the next one sees the
//! order paid (or retries after an abort): one effect, true answers.
//!
//! Nothing but the protocol stands between a vote and the reply:
//! - an abort is not written before the rollbacks go out (presumed abort: no
//!   record means abort). It is recorded only when a rollback could not be
//!   delivered, so that recovery re-sends it;
//! - marking a decision finished happens after the reply, in its own task;
//! - the decision log has its own pool (the one given to [`Coordinator::new`],
//!   apart from the order transactions that hold a connection through their
//!   prepares), so bookkeeping never queues behind checkouts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use protocol_core::spans::{self, Phase, Tiles};
use protocol_core::{Backoff, CheckoutError, CheckoutOutcome, CheckoutRequest, OrderBook, crashpoint};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::decision_log;
use crate::gid::{Gid, InstanceName, ParticipantId};
use crate::machine::{Action, Decision, Event, Machine, PrepareOrder, Reply, Vote};
use crate::messages::{PrepareRequest, VoteReply, Work};
use crate::metrics::{Metrics, Snapshot};
use crate::transport::{PhaseTwo, Transport};

/// Timing settings of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// Deadline of one prepare call; a participant slower than this is taken as
    /// a failed vote and the transaction aborts.
    pub prepare_timeout: Duration,
    /// How long phase two is retried before the checkout answers and leaves the
    /// rest to recovery.
    pub phase_two_deadline: Duration,
    /// How often recovery finishes decided-but-unfinished transactions.
    pub recovery_interval: Duration,
    /// In which order the prepares are asked for.
    pub prepare_order: PrepareOrder,
    /// How long a checkout's prepares may wait for row locks in total; a
    /// prepare that runs out votes no (busy) and the checkout is refused at
    /// once, instead of queueing behind a hot row until a timeout.
    pub lock_budget: Duration,
}

/// The 2PC coordinator of one order-service replica.
pub struct Coordinator {
    instance: InstanceName,
    pool: PgPool,
    participants: Arc<dyn Transport>,
    book: Arc<dyn OrderBook>,
    settings: CoordinatorSettings,
    metrics: Metrics,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("instance", &self.instance).field("settings", &self.settings).finish()
    }
}

impl Coordinator {
    /// A coordinator named `instance` (part of every gid it creates), keeping
    /// its decision log through `pool` (give it connections of its own: see
    /// the module docs), reaching the participants through `participants`.
    pub fn new(
        instance: InstanceName,
        pool: PgPool,
        participants: Arc<dyn Transport>,
        book: Arc<dyn OrderBook>,
        settings: CoordinatorSettings,
    ) -> Arc<Self> {
        Arc::new(Coordinator { instance, pool, participants, book, settings, metrics: Metrics::default() })
    }

    /// Runs the checkout of `request` to a reply. `tx` must hold the order's row
    /// lock and `request` must have been read under it.
    ///
    /// The protocol runs in its own task: a client that disconnects does not
    /// stop a transaction halfway.
    pub async fn checkout(
        self: &Arc<Self>,
        tx: Transaction<'static, Postgres>,
        request: CheckoutRequest,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let this = Arc::clone(self);
        tokio::spawn(async move { this.run(tx, request).await })
            .await
            .map_err(|e| CheckoutError::Internal(format!("checkout task failed: {e}")))?
    }

    async fn run(
        &self,
        tx: Transaction<'static, Postgres>,
        request: CheckoutRequest,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let txn = Uuid::new_v4();
        spans::alias(&txn.to_string(), &request.order_id);
        let started = Instant::now();
        let gid = |p| Gid::new(self.instance.clone(), txn, p);
        let (mut machine, first) = Machine::start(self.settings.prepare_order);
        let mut queue: VecDeque<Action> = first.into();
        let mut tx = Some(tx);
        let mut inflight: FuturesUnordered<BoxFuture<'_, Event>> = FuturesUnordered::new();
        let phase_two_until = |now: Instant| now + self.settings.phase_two_deadline;
        let mut commits_acked = 0;
        let mut yes_votes = 0;
        let mut gave_up = false;
        // Whether the decision log holds a row for this transaction.
        let mut on_record = false;
        loop {
            while let Some(action) = queue.pop_front() {
                match action {
                    Action::Prepare(p) => {
                        let work = work_for(p, &request);
                        let lock_wait = self.settings.lock_budget.saturating_sub(started.elapsed());
                        inflight.push(Box::pin(self.prepare(p, gid(p), work, lock_wait, &request.order_id)));
                    }
                    Action::LogDecision(Decision::Commit) => {
                        crashpoint::hit(crashpoint::TWOPC_BEFORE_DECISION);
                        let event = self.log_commit(tx.take(), txn, &request.order_id).await;
                        match event {
                            Event::DecisionLogged(Decision::Commit) => {
                                on_record = true;
                                crashpoint::hit(crashpoint::TWOPC_AFTER_DECISION);
                            }
                            // Recovery recorded an abort first.
                            Event::DecisionLogged(Decision::Abort) => on_record = true,
                            _ => {}
                        }
                        queue.extend(machine.step(event));
                    }
                    Action::LogDecision(Decision::Abort) => {
                        // Presumed abort: nothing to write before the rollbacks.
                        drop(tx.take()); // releases the order's row lock
                        queue.extend(machine.step(Event::DecisionLogged(Decision::Abort)));
                    }
                    Action::Commit(p) => {
                        inflight.push(Box::pin(self.phase_two(
                            p,
                            gid(p),
                            Decision::Commit,
                            phase_two_until(Instant::now()),
                            &request.order_id,
                        )));
                    }
                    Action::Rollback(p) => {
                        inflight.push(Box::pin(self.phase_two(
                            p,
                            gid(p),
                            Decision::Abort,
                            phase_two_until(Instant::now()),
                            &request.order_id,
                        )));
                    }
                    Action::Reply(reply) => {
                        if !matches!(reply, Reply::Unknown(_)) {
                            self.after_reply(txn, machine.decision(), on_record, gave_up, &request.order_id);
                        }
                        return self.outcome(reply);
                    }
                }
            }
            let Some(event) = inflight.next().await else {
                return Err(CheckoutError::Internal("2PC machine stalled without pending work".to_owned()));
            };
            match &event {
                Event::Voted(p, Vote::Yes) => {
                    yes_votes += 1;
                    if yes_votes == 1 {
                        crashpoint::hit(crashpoint::TWOPC_AFTER_FIRST_PREPARED);
                    }
                    if *p == ParticipantId::Stock {
                        crashpoint::hit(crashpoint::TWOPC_AFTER_STOCK_PREPARED);
                    }
                }
                Event::PhaseTwoGaveUp(_) => gave_up = true,
                Event::Acked(_) if machine.decision() == Some(Decision::Commit) => {
                    commits_acked += 1;
                    if commits_acked == 1 {
                        crashpoint::hit(crashpoint::TWOPC_AFTER_FIRST_COMMIT);
                    }
                }
                _ => {}
            }
            queue.extend(machine.step(event));
        }
    }

    /// The decision log's bookkeeping once phase two is over, in its own task
    /// so the reply does not wait for it: a decision on record is marked
    /// finished if every participant acknowledged; an abort whose rollback
    /// could not be delivered is recorded (unfinished) so that recovery
    /// re-sends it. Losing either write is harmless: recovery repeats an
    /// idempotent phase two, and an unrecorded abort is presumed.
    fn after_reply(&self, txn: Uuid, decision: Option<Decision>, on_record: bool, gave_up: bool, order_id: &str) {
        let (pool, instance, order_id) = (self.pool.clone(), self.instance.clone(), order_id.to_owned());
        match (decision, on_record, gave_up) {
            (Some(_), true, false) => {
                tokio::spawn(async move {
                    if let Err(err) = decision_log::mark_finished(&pool, txn).await {
                        tracing::warn!(%txn, error = %err, "could not mark the transaction finished; recovery will");
                    }
                });
            }
            (Some(Decision::Abort), false, true) => {
                tokio::spawn(async move {
                    if let Err(err) = decision_log::record_abort(&pool, txn, &instance, Some(&order_id)).await {
                        tracing::warn!(%txn, error = %err, "could not record an undelivered abort; the participant will ask");
                    }
                });
            }
            _ => {}
        }
    }

    fn outcome(&self, reply: Reply) -> Result<CheckoutOutcome, CheckoutError> {
        match reply {
            Reply::Paid => {
                Metrics::incr(&self.metrics.committed);
                Ok(CheckoutOutcome::Paid)
            }
            Reply::Rejected(reason) => {
                Metrics::incr(&self.metrics.aborted);
                Ok(CheckoutOutcome::Rejected(reason))
            }
            Reply::Failed(detail) => {
                Metrics::incr(&self.metrics.aborted);
                Err(CheckoutError::Aborted(detail))
            }
            Reply::Unknown(detail) => {
                Metrics::incr(&self.metrics.unknown);
                Err(CheckoutError::Internal(detail))
            }
        }
    }

    /// Writes the commit decision and the order's paid flag in the order
    /// transaction, then commits it. A failure before the `COMMIT` is sent
    /// leaves nothing on record (the transaction rolls back when dropped): a
    /// definite abort. Only a failed `COMMIT` leaves the outcome unknown.
    async fn log_commit(&self, tx: Option<Transaction<'static, Postgres>>, txn: Uuid, order_id: &str) -> Event {
        let Some(mut tx) = tx else {
            return Event::CommitNotWritten("order transaction already closed".to_owned());
        };
        let mut tiles = Tiles::start(order_id);
        let decision = match decision_log::record_commit(&mut tx, txn, &self.instance, order_id).await {
            Ok(d) => d,
            Err(err) => return Event::CommitNotWritten(err.to_string()),
        };
        if decision == Decision::Abort {
            drop(tx);
            return Event::DecisionLogged(Decision::Abort);
        }
        // The caller holds the order's row lock and saw it unpaid.
        match self.book.end_checkout(&mut tx, order_id, true).await {
            Ok(Some(false)) => {}
            Ok(_) => return Event::CommitNotWritten(format!("order {order_id} was not unpaid at commit")),
            Err(err) => return Event::CommitNotWritten(err.to_string()),
        }
        tiles.mark(Phase::Sql);
        let committed = tx.commit().await;
        tiles.mark(Phase::Flush);
        match committed {
            Ok(()) => Event::DecisionLogged(Decision::Commit),
            // The COMMIT may or may not have reached the disk.
            Err(err) => Event::DecisionFailed(Decision::Commit, err.to_string()),
        }
    }

    async fn prepare(&self, p: ParticipantId, gid: Gid, work: Work, lock_wait: Duration, order_id: &str) -> Event {
        let called = spans::now_us();
        let event = self.prepare_call(p, gid, work, lock_wait).await;
        spans::record(order_id, Phase::Call, called, spans::now_us());
        event
    }

    async fn prepare_call(&self, p: ParticipantId, gid: Gid, work: Work, lock_wait: Duration) -> Event {
        // At least a moment: a budget spent on the first prepare still lets
        // the second take rows nobody holds.
        let lock_wait_ms = u64::try_from(lock_wait.as_millis()).unwrap_or(u64::MAX).max(10);
        let body = PrepareRequest { gid: gid.to_string(), work, lock_wait_ms: Some(lock_wait_ms) };
        let call = self.participants.prepare(p, body);
        let vote = match tokio::time::timeout(self.settings.prepare_timeout, call).await {
            Err(_) => Vote::Failed("prepare timed out".to_owned()),
            Ok(Err(err)) => Vote::Failed(format!("{err:#}")),
            Ok(Ok(VoteReply::Yes)) => Vote::Yes,
            Ok(Ok(VoteReply::No { reason })) => Vote::No(reason),
            Ok(Ok(VoteReply::Refused { detail })) => Vote::Failed(detail),
        };
        match &vote {
            Vote::Yes => Metrics::incr(&self.metrics.prepared),
            Vote::No(_) => Metrics::incr(&self.metrics.refused),
            Vote::Failed(err) => tracing::warn!(participant = p.as_str(), %gid, error = %err, "prepare failed"),
        }
        Event::Voted(p, vote)
    }

    /// Sends commit or rollback until acknowledged or past `until`.
    async fn phase_two(&self, p: ParticipantId, gid: Gid, decision: Decision, until: Instant, order_id: &str) -> Event {
        let called = spans::now_us();
        let acked = self.send_phase_two(p, &gid, decision, until).await;
        spans::record(order_id, Phase::Call, called, spans::now_us());
        if acked { Event::Acked(p) } else { Event::PhaseTwoGaveUp(p) }
    }

    async fn send_phase_two(&self, p: ParticipantId, gid: &Gid, decision: Decision, until: Instant) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
        loop {
            // One attempt may not outlast the deadline (the HTTP client's own
            // timeout is the prepare timeout, far longer): past it, recovery
            // takes over and the reply goes out.
            let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            let attempt = match tokio::time::timeout(left, self.participants.phase_two(p, gid, decision)).await {
                Ok(answer) => answer,
                Err(_) => PhaseTwo::NotAcked("no answer within the phase-two deadline".to_owned()),
            };
            match attempt {
                PhaseTwo::Acked => return true,
                PhaseTwo::Refused(why) => {
                    tracing::error!(%gid, decision = decision.as_str(), %why, "participant refused phase two");
                    return false;
                }
                PhaseTwo::NotAcked(why) => tracing::debug!(%gid, %why, "phase two not acknowledged; retrying"),
            }
            if Instant::now() + backoff.peek() > until {
                tracing::warn!(%gid, decision = decision.as_str(), "phase two unacknowledged; leaving it to recovery");
                return false;
            }
            tokio::time::sleep(backoff.advance()).await;
        }
    }

    /// Answers a participant asking about a branch: the recorded decision, or a
    /// newly recorded abort (presumed abort).
    pub async fn resolve(&self, raw_gid: &str) -> Result<Decision, ResolveError> {
        let gid: Gid = raw_gid.parse().map_err(|e: crate::gid::InvalidGid| ResolveError::BadRequest(e.to_string()))?;
        Ok(decision_log::resolve(&self.pool, gid.txn, &gid.coordinator).await?)
    }

    /// Finishes phase two of decided transactions left unfinished (by a crash or
    /// an unreachable participant). Returns how many it finished.
    pub async fn recover_once(&self) -> anyhow::Result<usize> {
        let min_age = self.settings.phase_two_deadline.min(Duration::from_secs(2));
        let pending = decision_log::unfinished(&self.pool, min_age, 100).await?;
        let mut finished = 0;
        for t in pending {
            let until = Instant::now() + Duration::from_secs(2);
            let mut all = true;
            for p in ParticipantId::ALL {
                let gid = Gid::new(t.coordinator.clone(), t.txn, p);
                all &= self.send_phase_two(p, &gid, t.decision, until).await;
            }
            if !all {
                continue;
            }
            // One failing mark does not end the pass: the others still finish.
            match decision_log::mark_finished(&self.pool, t.txn).await {
                Ok(()) => {
                    tracing::info!(txn = %t.txn, decision = t.decision.as_str(), "recovery finished a transaction");
                    Metrics::incr(&self.metrics.recovered);
                    finished += 1;
                }
                Err(err) => {
                    tracing::warn!(txn = %t.txn, error = %err, "recovery could not mark a transaction finished")
                }
            }
        }
        Ok(finished)
    }

    /// Runs recovery once now (start-up) and then every recovery interval until
    /// `shutdown` fires.
    pub async fn run_recovery(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut last_retention = Instant::now();
        loop {
            if let Err(err) = self.recover_once().await {
                tracing::warn!(error = %err, "2PC coordinator recovery pass failed");
            }
            if last_retention.elapsed() > crate::participant::RETENTION_EVERY {
                last_retention = Instant::now();
                if let Err(err) = decision_log::forget_finished(&self.pool, decision_log::FINISHED_RETENTION).await {
                    tracing::warn!(error = %err, "2PC decision retention failed");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(self.settings.recovery_interval) => {}
            }
        }
    }

    /// Counters plus the number of decided-but-unfinished transactions.
    pub async fn metrics(&self) -> sqlx::Result<Snapshot> {
        let unfinished = decision_log::count_unfinished(&self.pool).await?;
        Ok(self.metrics.snapshot(u64::try_from(unfinished).unwrap_or(0)))
    }
}

fn work_for(p: ParticipantId, request: &CheckoutRequest) -> Work {
    match p {
        ParticipantId::Stock => Work::stock_for(request),
        ParticipantId::Payment => Work::payment_for(request),
    }
}

/// Why a resolve request failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The gid is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The decision log could not be read or written.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
