//! A participant's side of the saga (stock, payment): one local transaction per
//! command that claims the message id in the inbox, applies or undoes the
//! step's effect, records it in `saga_effects` and writes the reply to the
//! outbox. Every handler is idempotent:
//!
//! | command \ recorded | none | applied | refused | compensated / tombstone |
//! |---|---|---|---|---|
//! | action | apply → applied or refused | Done again | Refused again | Compensated (late action refused) |
//! | compensate | tombstone | undo → compensated | nothing to undo | nothing to do |
//!
//! Two deliveries racing on one saga both try to insert its `saga_effects` row;
//! the primary key lets one commit and rolls the other back, which is then
//! retried and finds the recorded state.

use std::sync::Arc;

use futures::future::BoxFuture;
use protocol_core::spans::{Phase, Tiles};
use protocol_core::{Receipt, RejectReason, Resource, Work, crashpoint};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::claim_then_lock;
use crate::consumer::{Handler, Poison};
use crate::inbox::Claimed;
use crate::messages::{Body, Envelope, Step};
use crate::metrics::Metrics;
use crate::outbox;
use crate::relay::Outbox;

/// Handles the commands of one step.
pub struct ParticipantHandler {
    step: Step,
    pool: PgPool,
    resource: Arc<dyn Resource>,
    relay: Outbox,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ParticipantHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticipantHandler").field("step", &self.step).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    Applied,
    Refused,
    Compensated,
    Tombstone,
}

impl Recorded {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "applied" => Recorded::Applied,
            "refused" => Recorded::Refused,
            "compensated" => Recorded::Compensated,
            "tombstone" => Recorded::Tombstone,
            other => return Err(Poison(format!("unknown saga effect state {other:?}")).into()),
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Recorded::Applied => "applied",
            Recorded::Refused => "refused",
            Recorded::Compensated => "compensated",
            Recorded::Tombstone => "tombstone",
        }
    }
}

/// A claim and the effect record it locked ([`claim_then_lock!`]): whether the
/// claim is new, then the record's columns, all `NULL` without a record.
type EffectRow = (bool, Option<String>, Option<Json<Work>>, Option<Json<RejectReason>>, Option<Json<Receipt>>);

/// A recorded effect: its state, its work and refusal reason, and its receipt.
type Effect = (Recorded, Option<Work>, Option<RejectReason>, Option<Receipt>);

impl ParticipantHandler {
    /// Handles the commands of `step` on `pool`, applying them with `resource`;
    /// `relay` takes each reply once it is committed.
    pub fn new(step: Step, pool: PgPool, resource: Arc<dyn Resource>, relay: Outbox, metrics: Arc<Metrics>) -> Self {
        ParticipantHandler { step, pool, resource, relay, metrics }
    }

    async fn handle_command(&self, msg: Envelope) -> anyhow::Result<()> {
        if msg.step != self.step || !msg.body.is_command() {
            tracing::warn!(saga = %msg.saga_id, step = msg.step.as_str(), "ignoring a message not for this participant");
            return Ok(());
        }
        let mut tiles = Tiles::start(&msg.order_id);
        let mut tx = self.pool.begin().await?;
        tiles.mark(Phase::Pool);
        let (first, state, work, reason, receipt): EffectRow = sqlx::query_as(claim_then_lock!(
            "SELECT state, work, reason, receipt FROM saga_effects WHERE saga_id = $2 AND claim.first FOR UPDATE"
        ))
        .bind(msg.message_id)
        .bind(msg.saga_id)
        .fetch_one(&mut *tx)
        .await?;
        let recorded = state.map(|state| (state, work, reason, receipt));
        let Claimed::First(recorded) = Claimed::of(first, recorded, &self.metrics) else {
            return Ok(()); // a duplicate: the transaction wrote nothing
        };
        if recorded.is_some() {
            // Every command handled for a saga keeps its record from ageing out
            // (inbox::DEDUP_RETENTION).
            sqlx::query("UPDATE saga_effects SET updated_at = now() WHERE saga_id = $1")
                .bind(msg.saga_id)
                .execute(&mut *tx)
                .await?;
        }
        let recorded: Option<Effect> = match recorded {
            Some((state, work, reason, receipt)) => {
                Some((Recorded::parse(&state)?, work.map(|w| w.0), reason.map(|r| r.0), receipt.map(|r| r.0)))
            }
            None => None,
        };
        let reply = match (&msg.body, recorded) {
            (Body::Action { work }, None) => {
                // A refusal rolls back what the step changed before it found
                // it could not go on. The savepoint is never released: it
                // ends with the transaction, one round trip fewer on every
                // step that succeeds.
                sqlx::query("SAVEPOINT apply").execute(&mut *tx).await?;
                tiles.mark(Phase::Sql);
                let applied = self.resource.apply(&mut tx, work).await?;
                tiles.mark(Phase::RowLock);
                match applied {
                    Ok(receipt) => {
                        self.record(&mut tx, &msg, Recorded::Applied, Some(work), None, Some(&receipt)).await?;
                        Metrics::incr(&self.metrics.applied);
                        Body::Done
                    }
                    Err(reason) => {
                        sqlx::query("ROLLBACK TO SAVEPOINT apply").execute(&mut *tx).await?;
                        self.record(&mut tx, &msg, Recorded::Refused, None, Some(&reason), None).await?;
                        Metrics::incr(&self.metrics.refused);
                        Body::Refused { reason }
                    }
                }
            }
            (Body::Action { .. }, Some((Recorded::Applied, ..))) => Body::Done,
            (Body::Action { .. }, Some((Recorded::Refused, _, reason, _))) => {
                let reason = reason.ok_or_else(|| Poison("refused effect without a reason".to_owned()))?;
                Body::Refused { reason }
            }
            (Body::Action { .. }, Some((Recorded::Compensated | Recorded::Tombstone, ..))) => {
                Metrics::incr(&self.metrics.late_actions);
                Body::Compensated
            }
            (_, None) => {
                self.record(&mut tx, &msg, Recorded::Tombstone, None, None, None).await?;
                Metrics::incr(&self.metrics.tombstones);
                Body::Compensated
            }
            (_, Some((Recorded::Applied, work, _, receipt))) => {
                let work = work.ok_or_else(|| Poison("applied effect without its work".to_owned()))?;
                tiles.mark(Phase::Sql);
                if let Err(err) = self.resource.undo(&mut tx, &work, receipt.as_ref()).await {
                    // The refresh above rolls back with this transaction; a
                    // compensation that keeps failing must still keep the
                    // record it will undo once repaired from ageing out.
                    tx.rollback().await?;
                    self.touch(msg.saga_id).await;
                    return Err(err.into());
                }
                tiles.mark(Phase::RowLock);
                self.update(&mut tx, &msg, Recorded::Compensated).await?;
                Metrics::incr(&self.metrics.compensated);
                Body::Compensated
            }
            (_, Some(_)) => Body::Compensated,
        };
        let rows = outbox::enqueue(&mut tx, &[msg.reply(reply)]).await?;
        tiles.mark(Phase::Sql);
        tx.commit().await?;
        tiles.mark(Phase::Flush);
        crashpoint::hit(crashpoint::SAGA_AFTER_COMMIT);
        Metrics::incr(&self.metrics.handled);
        self.relay.committed(rows);
        Ok(())
    }

    async fn record(
        &self,
        conn: &mut PgConnection,
        msg: &Envelope,
        state: Recorded,
        work: Option<&Work>,
        reason: Option<&RejectReason>,
        receipt: Option<&Receipt>,
    ) -> sqlx::Result<()> {
        // A plain INSERT: a concurrent delivery that inserted first makes this
        // fail, and the retry sees its row.
        sqlx::query(
            "INSERT INTO saga_effects (saga_id, order_id, state, work, reason, receipt)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(msg.saga_id)
        .bind(&msg.order_id)
        .bind(state.as_str())
        .bind(work.map(Json))
        .bind(reason.map(Json))
        .bind(receipt.map(Json))
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Refreshes the effect record of `saga_id` in a transaction of its own
    /// (see [`crate::inbox::DEDUP_RETENTION`]). Best effort: the command's
    /// own failure is what the caller reports.
    async fn touch(&self, saga_id: Uuid) {
        let touched = sqlx::query("UPDATE saga_effects SET updated_at = now() WHERE saga_id = $1")
            .bind(saga_id)
            .execute(&self.pool)
            .await;
        if let Err(err) = touched {
            tracing::warn!(saga = %saga_id, "could not refresh the effect record of a failed compensation: {err}");
        }
    }

    async fn update(&self, conn: &mut PgConnection, msg: &Envelope, state: Recorded) -> sqlx::Result<()> {
        sqlx::query("UPDATE saga_effects SET state = $2, updated_at = now() WHERE saga_id = $1")
            .bind(msg.saga_id)
            .bind(state.as_str())
            .execute(conn)
            .await?;
        Ok(())
    }
}

impl Handler for ParticipantHandler {
    fn handle(&self, msg: Envelope) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.handle_command(msg))
    }
}
