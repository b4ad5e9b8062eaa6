//! The orchestrator runner in the order service: starts sagas, feeds the
//! participants' replies into the [`Saga`] machine, persists its state and its
//! next commands in one order-database transaction, wakes HTTP waiters, and
//! re-sends the commands of sagas that stopped making progress.
//!
//! ```text
//!  checkout ──► [tx: order row locked; join the order's saga in flight, or
//!                insert saga + first commands into the outbox] ──► wait
//!  reply ─────► [tx: inbox claim; saga FOR UPDATE; machine.on(event);
//!                outbox next commands; order paid + NOTIFY when terminal]
//!  wait ◄────── the committed outcome, handed over in memory when this
//!               replica ended the saga; else LISTEN saga_done (any replica)
//!               or a periodic re-read, and the answer read from the database
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use protocol_core::spans::{self, Phase, Tiles};
use protocol_core::{CheckoutError, CheckoutOutcome, CheckoutRequest, OrderBook, Work, crashpoint};
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::consumer::Handler;
use crate::in_flight_sql;
use crate::inbox::{self, Claimed};
use crate::machine::{Action, Event, Mode, Saga, Status};
use crate::messages::{Body, Envelope, Step};
use crate::metrics::{Gauges, Metrics};
use crate::outbox::{self, OutboxRow};
use crate::relay::Outbox;
use crate::sagas;

/// PostgreSQL channel on which terminal sagas are announced (payload: saga id).
const DONE_CHANNEL: &str = "saga_done";

/// Settings of the orchestrator.
#[derive(Debug, Clone)]
pub struct OrchestratorSettings {
    /// Sequential or parallel steps.
    pub mode: Mode,
    /// How long an HTTP checkout waits for its saga to end before answering
    /// 5xx (the saga goes on; the final state decides).
    pub checkout_timeout: Duration,
    /// A saga without progress for this long has its pending commands re-sent.
    pub resend_after: Duration,
    /// How often recovery looks for such sagas.
    pub recovery_interval: Duration,
}

/// A saga that ended, announced to this replica's waiters.
#[derive(Debug, Clone)]
struct Ended {
    saga_id: Uuid,
    /// The outcome and when it was committed (microseconds since the epoch),
    /// when this replica committed it; `None` for another replica's
    /// notification, whose waiter reads the outcome from the database.
    outcome: Option<(CheckoutOutcome, u64)>,
}

/// The orchestrator of one order-service replica.
pub struct Orchestrator {
    pool: PgPool,
    book: Arc<dyn OrderBook>,
    relay: Outbox,
    done: broadcast::Sender<Ended>,
    settings: OrchestratorSettings,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator").field("settings", &self.settings).finish()
    }
}

/// The command message an action sends (`None`: [`Action::Finish`] sends
/// none).
pub fn command(saga_id: Uuid, request: &CheckoutRequest, action: &Action) -> Option<Envelope> {
    let (step, body) = match *action {
        Action::Do(step @ Step::ReserveStock) => (step, Body::Action { work: Work::stock_for(request) }),
        Action::Do(step @ Step::DebitCredit) => (step, Body::Action { work: Work::payment_for(request) }),
        Action::Undo(step) => (step, Body::Compensate),
        Action::Finish(_) => return None,
    };
    Some(Envelope::new(saga_id, &request.order_id, step, body))
}

impl Orchestrator {
    /// An orchestrator over the order database `pool`; `relay` takes the
    /// outbox rows it commits.
    pub fn new(
        pool: PgPool,
        book: Arc<dyn OrderBook>,
        relay: Outbox,
        settings: OrchestratorSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (done, _) = broadcast::channel(4096);
        Arc::new(Orchestrator { pool, book, relay, done, settings, metrics })
    }

    /// The step mode.
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }

    /// Checks out `request`. `tx` must hold the order's row lock and `request`
    /// must have been read under it: then either this call starts the order's
    /// only saga in flight, or it joins the one a concurrent checkout started.
    /// Returns once the saga is terminal (compensations done).
    pub async fn checkout(
        &self,
        mut tx: Transaction<'static, Postgres>,
        request: CheckoutRequest,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let mut done = self.done.subscribe(); // before anything can finish
        let mut tiles = Tiles::start(&request.order_id);
        let active = sagas::in_flight_of(&mut tx, &request.order_id)
            .await
            .map_err(|e| CheckoutError::Aborted(format!("reading sagas: {e}")))?;
        let (saga_id, commands) = match active {
            Some(saga_id) => {
                Metrics::incr(&self.metrics.joined);
                (saga_id, Vec::new())
            }
            None => {
                let saga_id = Uuid::new_v4();
                let commands = self
                    .start(&mut tx, saga_id, &request)
                    .await
                    .map_err(|e| CheckoutError::Aborted(format!("starting saga: {e}")))?;
                (saga_id, commands)
            }
        };
        tiles.mark(Phase::Sql);
        tx.commit().await.map_err(|e| CheckoutError::Internal(format!("committing saga start: {e}")))?;
        tiles.mark(Phase::Flush);
        if active.is_none() {
            Metrics::incr(&self.metrics.started);
            self.relay.committed(commands);
        }
        self.wait(saga_id, &request.order_id, active.is_none(), &mut done).await
    }

    /// Records a new saga and its first commands; returns their outbox rows.
    async fn start(
        &self,
        conn: &mut PgConnection,
        saga_id: Uuid,
        request: &CheckoutRequest,
    ) -> sqlx::Result<Vec<OutboxRow>> {
        let (saga, actions) = Saga::start(self.settings.mode);
        sagas::insert(&mut *conn, saga_id, &saga, request).await?;
        let commands: Vec<Envelope> = actions.iter().filter_map(|a| command(saga_id, request, a)).collect();
        let rows = outbox::enqueue(&mut *conn, &commands).await?;
        self.book.begin_checkout(&mut *conn, &request.order_id).await?;
        Ok(rows)
    }

    /// Waits for `saga_id` to be terminal and returns its outcome: the
    /// committed one handed over by this replica's reply handler, or else
    /// read from the database after another replica's notification or a
    /// re-read interval (a missed notification costs at most one interval). A saga this call just `started` cannot be
    /// terminal before its first command is even published, so the first
    /// read waits for a notification (subscribed to before the start, so
    /// none is missed).
    async fn wait(
        &self,
        saga_id: Uuid,
        order_id: &str,
        started: bool,
        done: &mut broadcast::Receiver<Ended>,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        const REREAD: Duration = Duration::from_millis(1000);
        let deadline = Instant::now() + self.settings.checkout_timeout;
        let mut read = !started;
        let mut handed: Option<(CheckoutOutcome, u64)> = None;
        loop {
            let outcome = match handed.take() {
                Some(outcome) => Ok(Some(outcome)),
                None if read => self.outcome(saga_id).await,
                None => Ok(None),
            };
            read = true;
            match outcome {
                Ok(Some((outcome, finished_us))) => {
                    // From the terminal write to this read: the notification
                    // and the read itself.
                    spans::record(order_id, Phase::Notify, finished_us, spans::now_us());
                    return Ok(outcome);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%saga_id, error = %err, "reading saga state failed"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CheckoutError::Timeout);
            }
            let until = deadline.min(now + REREAD);
            if let Ok(Some(outcome)) = tokio::time::timeout_at(until, async {
                loop {
                    match done.recv().await {
                        Ok(ended) if ended.saga_id == saga_id => return ended.outcome,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return None,
                        Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            })
            .await
            {
                handed = Some(outcome);
            }
        }
    }

    /// The outcome of a terminal saga and when it was written (microseconds
    /// since the epoch), `None` while it runs.
    async fn outcome(&self, saga_id: Uuid) -> anyhow::Result<Option<(CheckoutOutcome, u64)>> {
        let state: Option<(Json<Saga>, Option<i64>)> = sqlx::query_as(
            "SELECT state, (extract(epoch FROM finished_at) * 1000000)::bigint FROM sagas WHERE saga_id = $1",
        )
        .bind(saga_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((Json(saga), finished_us)) = state else { return Ok(None) };
        let finished_us = finished_us.and_then(|us| u64::try_from(us).ok()).unwrap_or_else(spans::now_us);
        Ok(outcome_of(saga_id, &saga)?.map(|outcome| (outcome, finished_us)))
    }

    async fn on_reply(&self, msg: Envelope) -> anyhow::Result<()> {
        let event = match msg.body {
            Body::Done => Event::Done(msg.step),
            Body::Refused { ref reason } => Event::Refused(msg.step, reason.clone()),
            Body::Compensated => Event::Compensated(msg.step),
            Body::Action { .. } | Body::Compensate => {
                tracing::warn!(saga = %msg.saga_id, "ignoring a command on the reply topic");
                return Ok(());
            }
        };
        if event == Event::Done(Step::DebitCredit) {
            crashpoint::hit(crashpoint::SAGA_BEFORE_PAYMENT_REPLY);
        }
        let mut tiles = Tiles::start(&msg.order_id);
        let mut tx = self.pool.begin().await?;
        tiles.mark(Phase::Pool);
        let (mut saga, request) =
            match sagas::claim_and_lock(&mut tx, msg.message_id, msg.saga_id, &self.metrics).await? {
                Claimed::Duplicate => return Ok(()), // the transaction wrote nothing
                Claimed::First(Some(locked)) => locked,
                Claimed::First(None) => {
                    tracing::warn!(saga = %msg.saga_id, "reply for an unknown saga");
                    tx.commit().await?;
                    return Ok(());
                }
            };
        let Some(actions) = saga.on(event.clone()) else {
            // A late or repeated reply: only its inbox record is kept.
            tx.commit().await?;
            Metrics::incr(&self.metrics.ignored);
            return Ok(());
        };
        let commands = self.apply(&mut tx, msg.saga_id, &saga, &request, &actions).await?;
        tiles.mark(Phase::Sql);
        tx.commit().await?;
        tiles.mark(Phase::Flush);
        Metrics::incr(&self.metrics.handled);
        // A waiter on this replica gets the committed outcome at once, without
        // the NOTIFY round trip and the re-read (other replicas' waiters still
        // learn it from the notification).
        if let Ok(Some(outcome)) = outcome_of(msg.saga_id, &saga) {
            let _ = self.done.send(Ended { saga_id: msg.saga_id, outcome: Some((outcome, spans::now_us())) });
        }
        if event == Event::Done(Step::ReserveStock) && actions.contains(&Action::Do(Step::DebitCredit)) {
            crashpoint::hit(crashpoint::SAGA_AFTER_STOCK_RESERVED);
        }
        for action in &actions {
            match action {
                Action::Undo(_) => Metrics::incr(&self.metrics.compensations),
                Action::Finish(Status::Paid) => Metrics::incr(&self.metrics.paid),
                Action::Finish(_) => Metrics::incr(&self.metrics.rejected),
                Action::Do(_) => {}
            }
        }
        self.relay.committed(commands);
        Ok(())
    }

    /// Persists the saga's new state and carries out `actions` in `conn`'s
    /// transaction; returns the outbox rows of the commands it sends.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        saga_id: Uuid,
        saga: &Saga,
        request: &CheckoutRequest,
        actions: &[Action],
    ) -> sqlx::Result<Vec<OutboxRow>> {
        let commands: Vec<Envelope> = actions.iter().filter_map(|a| command(saga_id, request, a)).collect();
        let rows = outbox::enqueue(&mut *conn, &commands).await?;
        let terminal = saga.status.is_terminal();
        if terminal {
            let paid = actions.contains(&Action::Finish(Status::Paid));
            let was_paid = self.book.end_checkout(&mut *conn, &request.order_id, paid).await?;
            // One saga per order can be in flight and only it pays, so the
            // order is unpaid here unless something outside the protocol
            // changed it. Not an error: a reply that cannot be handled would
            // be retried forever and hold back its partition.
            if paid && was_paid == Some(true) {
                tracing::warn!(order_id = %request.order_id, "saga finished paid on an order that was already paid");
            }
        }
        // The terminal write also announces the end to every listening replica.
        sagas::save(&mut *conn, saga_id, saga, DONE_CHANNEL).await?;
        Ok(rows)
    }

    /// Forwards terminal-saga notifications to this replica's waiters, until
    /// `stop` turns true.
    pub async fn run_listener(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.listen(&mut stop).await {
                Ok(()) => return,
                Err(err) => tracing::warn!(error = %err, "saga notification listener failed; reconnecting"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn listen(&self, stop: &mut watch::Receiver<bool>) -> sqlx::Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(DONE_CHANNEL).await?;
        loop {
            let note = tokio::select! {
                _ = stop.changed() => return Ok(()),
                note = listener.recv() => note?,
            };
            if let Ok(saga_id) = note.payload().parse::<Uuid>() {
                let _ = self.done.send(Ended { saga_id, outcome: None }); // no waiter on this replica: fine
            }
        }
    }

    /// Re-sends the pending commands of sagas without progress, at start-up and
    /// then every recovery interval, until `stop` turns true.
    pub async fn run_recovery(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.recover_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sagas = n, "re-sent the pending commands of stalled sagas"),
                Err(err) => tracing::warn!(error = %err, "saga recovery pass failed"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(self.settings.recovery_interval) => {}
            }
        }
    }

    /// One recovery pass; returns how many sagas had commands re-sent.
    pub async fn recover_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let stalled: Vec<(Uuid, Json<Saga>, Json<CheckoutRequest>)> = sqlx::query_as(concat!(
            "SELECT saga_id, state, request FROM sagas WHERE ",
            in_flight_sql!(),
            " AND updated_at < now() - make_interval(secs => $1) ORDER BY updated_at LIMIT 200 FOR UPDATE SKIP LOCKED",
        ))
        .bind(self.settings.resend_after.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        let commands: Vec<Envelope> = stalled
            .iter()
            .flat_map(|(saga_id, Json(saga), Json(request))| {
                saga.pending().into_iter().chain(saga.held()).filter_map(|a| command(*saga_id, request, &a))
            })
            .collect();
        let rows = outbox::enqueue(&mut tx, &commands).await?;
        Metrics::add(&self.metrics.resent, commands.len() as u64);
        if !stalled.is_empty() {
            let ids: Vec<Uuid> = stalled.iter().map(|(saga_id, ..)| *saga_id).collect();
            sqlx::query("UPDATE sagas SET updated_at = now() WHERE saga_id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.relay.committed(rows);
        Ok(stalled.len())
    }

    /// Sagas in flight and unsent outbox rows.
    pub async fn gauges(&self) -> sqlx::Result<Gauges> {
        let in_flight = crate::inspect::count_in_flight(&self.pool).await?;
        let unsent = outbox::count_unsent(&self.pool).await?;
        let dead = inbox::count_dead_letters(&self.pool).await?;
        Ok(Gauges {
            in_flight: in_flight.max(0) as u64,
            unsent_outbox: unsent.max(0) as u64,
            dead_letters: dead.max(0) as u64,
        })
    }
}

/// The outcome of `saga`, `None` while it runs.
fn outcome_of(saga_id: Uuid, saga: &Saga) -> anyhow::Result<Option<CheckoutOutcome>> {
    Ok(match saga.status {
        Status::Paid => Some(CheckoutOutcome::Paid),
        Status::Rejected => match &saga.reason {
            Some(reason) => Some(CheckoutOutcome::Rejected(reason.clone())),
            None => anyhow::bail!("saga {saga_id} is rejected without a reason"),
        },
        Status::Running | Status::Compensating => None,
    })
}

/// One of the batch orders `"0".."n-1"` with a saga in flight, if any: such an
/// order must not be reset (`batch_init`) before its saga ends, or a new
/// checkout would join the old saga and the old saga would pay the reset order.
pub async fn in_flight_in_batch(conn: &mut PgConnection, n: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(concat!(
        "SELECT order_id FROM sagas WHERE ",
        in_flight_sql!(),
        " AND CASE WHEN order_id ~ '^(0|[1-9][0-9]{0,19})$' THEN order_id::numeric < $1 ELSE FALSE END LIMIT 1",
    ))
    .bind(n)
    .fetch_optional(conn)
    .await
}

/// Feeds replies into the orchestrator.
#[derive(Debug)]
pub struct ReplyHandler(pub Arc<Orchestrator>);

impl Handler for ReplyHandler {
    fn handle(&self, msg: Envelope) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.0.on_reply(msg))
    }
}
