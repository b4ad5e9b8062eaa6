//! One SAGA checkout as bare SQL: the order transaction records the saga and
//! its first commands in the outbox; each command is one participant
//! transaction (inbox claim, the effect's record, the business update under a
//! savepoint, the reply in the outbox); each reply is one order transaction
//! (inbox claim, the saga under its row lock, the next commands or the paid
//! flag; the waiter gets the outcome in memory, as on the one order replica
//! the harness runs by default). The same statements as the
//! services' (`protocols/saga`; the outbox and inbox writes and the commands
//! are the protocol's own functions), driven by the same machine, with each
//! message handed straight to its consumer instead of through Kafka.

use protocol_core::{CheckoutRequest, RejectReason, Work};
use saga::machine::{Action, Event, Saga, Status};
use saga::messages::{Body, Envelope, Step};
use saga::orchestrator::command;
use saga::store::{claim, enqueue};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::scratch::Scratch;
use super::{Ended, debit, lock_order, take_stock};

pub(super) async fn checkout(db: &Scratch, order_id: &str, mode: saga::Mode) -> anyhow::Result<Ended> {
    let Some((mut tx, request)) = lock_order(&db.order, order_id).await? else {
        return Ok(Ended::NotPaid);
    };
    if saga::sagas::in_flight_of(&mut tx, order_id).await?.is_some() {
        // Another worker's saga of this order: the service would join it.
        return Ok(Ended::NotPaid);
    }
    let saga_id = Uuid::new_v4();
    let (mut saga, actions) = Saga::start(mode);
    saga::sagas::insert(&mut tx, saga_id, &saga, &request).await?;
    let mut pending: Vec<Envelope> = actions.iter().filter_map(|a| command(saga_id, &request, a)).collect();
    enqueue(&mut tx, &pending).await?;
    sqlx::query("UPDATE orders SET checkout_in_progress = TRUE WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    while !pending.is_empty() {
        let replies = futures::future::try_join_all(pending.iter().map(|cmd| {
            let pool = match cmd.step {
                Step::ReserveStock => &db.stock,
                Step::DebitCredit => &db.payment,
            };
            participant(pool, cmd, &request)
        }))
        .await?;
        pending.clear();
        for reply in replies {
            pending.extend(on_reply(&db.order, &mut saga, &request, &reply).await?);
        }
    }
    Ok(if saga.status == Status::Paid { Ended::Paid } else { Ended::NotPaid })
}

/// The participant's transaction for `cmd`; returns its reply.
async fn participant(pool: &PgPool, cmd: &Envelope, request: &CheckoutRequest) -> anyhow::Result<Envelope> {
    let mut tx = pool.begin().await?;
    claim(&mut tx, cmd.message_id).await?;
    type Row = (String, Option<Json<Work>>);
    let recorded: Option<Row> = sqlx::query_as("SELECT state, work FROM saga_effects WHERE saga_id = $1 FOR UPDATE")
        .bind(cmd.saga_id)
        .fetch_optional(&mut *tx)
        .await?;
    let reply = match (&cmd.body, recorded) {
        (Body::Action { work }, None) => {
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            let applied = match cmd.step {
                Step::ReserveStock => take_stock(&mut savepoint, request).await?,
                Step::DebitCredit => debit(&mut savepoint, request).await?,
            };
            let (state, work, reason, body) = if applied {
                savepoint.commit().await?;
                ("applied", Some(Json(work)), None, Body::Done)
            } else {
                savepoint.rollback().await?;
                let reason = match cmd.step {
                    Step::ReserveStock => RejectReason::OutOfStock { item_id: request.items[0].item_id.clone() },
                    Step::DebitCredit => RejectReason::InsufficientCredit,
                };
                ("refused", None, Some(Json(reason.clone())), Body::Refused { reason })
            };
            let receipt = applied.then(|| Json(protocol_core::Receipt { generations: vec![0; request.items.len()] }));
            sqlx::query(
                "INSERT INTO saga_effects (saga_id, order_id, state, work, reason, receipt)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(cmd.saga_id)
            .bind(&cmd.order_id)
            .bind(state)
            .bind(work)
            .bind(reason)
            .bind(receipt)
            .execute(&mut *tx)
            .await?;
            body
        }
        (Body::Compensate, Some((state, _))) if state == "applied" => {
            match cmd.step {
                Step::ReserveStock => {
                    for line in &request.items {
                        sqlx::query("UPDATE items SET stock = stock + $2 WHERE item_id = $1")
                            .bind(&line.item_id)
                            .bind(line.quantity)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                Step::DebitCredit => {
                    sqlx::query("UPDATE users SET credit = credit + $2 WHERE user_id = $1")
                        .bind(&request.user_id)
                        .bind(request.total_cost)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query("UPDATE saga_effects SET state = 'compensated', updated_at = now() WHERE saga_id = $1")
                .bind(cmd.saga_id)
                .execute(&mut *tx)
                .await?;
            Body::Compensated
        }
        _ => Body::Compensated,
    };
    let reply = cmd.reply(reply);
    enqueue(&mut tx, std::slice::from_ref(&reply)).await?;
    tx.commit().await?;
    Ok(reply)
}

/// The orchestrator's transaction for `reply`; returns the next commands.
async fn on_reply(
    pool: &PgPool,
    saga: &mut Saga,
    request: &CheckoutRequest,
    reply: &Envelope,
) -> anyhow::Result<Vec<Envelope>> {
    let event = match &reply.body {
        Body::Done => Event::Done(reply.step),
        Body::Refused { reason } => Event::Refused(reply.step, reason.clone()),
        _ => Event::Compensated(reply.step),
    };
    let mut tx = pool.begin().await?;
    claim(&mut tx, reply.message_id).await?;
    // The saga's row lock, as the orchestrator takes it; its state is the
    // caller's `saga`, already in memory.
    saga::sagas::lock(&mut tx, reply.saga_id).await?;
    let actions = saga.on(event).unwrap_or_default();
    let next: Vec<Envelope> = actions.iter().filter_map(|a| command(reply.saga_id, request, a)).collect();
    enqueue(&mut tx, &next).await?;
    let terminal = saga.status.is_terminal();
    if terminal {
        sqlx::query(
            "UPDATE orders SET checkout_in_progress = FALSE, paid = orders.paid OR $2,
                 paid_at = CASE WHEN $2 AND NOT orders.paid THEN now() ELSE orders.paid_at END
             FROM (SELECT paid FROM orders WHERE order_id = $1) AS before
             WHERE orders.order_id = $1
             RETURNING before.paid",
        )
        .bind(&request.order_id)
        .bind(actions.contains(&Action::Finish(Status::Paid)))
        .execute(&mut *tx)
        .await?;
    }
    saga::sagas::save(&mut tx, reply.saga_id, saga, "saga_ceiling_done").await?;
    tx.commit().await?;
    Ok(next)
}
