//! The payment service as a protocol participant: the debit of a 2PC branch or
//! of a saga step (the same SQL), and the saga's refund.

use futures::future::BoxFuture;
use protocol_core::{Receipt, RejectReason, Resource, Work};
use service_common::reset::RESET_AFTER;
use sqlx::PgConnection;

/// Debits (and for a saga compensation, refunds) the order total, inside the
/// caller's transaction.
#[derive(Debug, Clone, Copy)]
pub struct PaymentResource;

impl Resource for PaymentResource {
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
    ) -> BoxFuture<'a, sqlx::Result<Result<Receipt, RejectReason>>> {
        Box::pin(
            async move { Ok(debit(conn, work).await?.map(|generation| Receipt { generations: vec![generation] })) },
        )
    }

    fn undo<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
        receipt: Option<&'a Receipt>,
    ) -> BoxFuture<'a, sqlx::Result<()>> {
        Box::pin(async move {
            let Work::Payment { user_id, amount, .. } = work else { return Ok(()) };
            // A user reset since (another generation) gets nothing back: the
            // reset overwrote the credit the debit took from. What is given
            // back leaves `taken` (service_common::params::MAX_VALUE).
            let generation = receipt.and_then(|r| r.generations.first().copied());
            sqlx::query(
                "UPDATE users SET credit = credit + $2, taken = GREATEST(taken - $2, 0)
                 WHERE user_id = $1 AND ($3::bigint IS NULL OR generation = $3)",
            )
            .bind(user_id)
            .bind(amount)
            .bind(generation)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }
}

/// Debits the total of `work` or, refusing, reports why. Returns the
/// generation of the user's row.
async fn debit(conn: &mut PgConnection, work: &Work) -> sqlx::Result<Result<i64, RejectReason>> {
    let Work::Payment { user_id, amount, as_of_us } = work else {
        return Ok(Err(RejectReason::UnknownUser { user_id: "(work is not for payment)".to_owned() }));
    };
    let reset = || RejectReason::ResetDuringCheckout { what: format!("user {user_id}") };
    // Fail fast without queueing on the row lock when the committed credit
    // is already short (it excludes debits of branches still prepared).
    let committed: Option<(i64, bool)> =
        sqlx::query_as(&format!("SELECT credit, {RESET_AFTER} FROM users WHERE user_id = $1"))
            .bind(user_id)
            .bind(as_of_us)
            .fetch_optional(&mut *conn)
            .await?;
    match committed {
        None => return Ok(Err(RejectReason::UnknownUser { user_id: user_id.clone() })),
        Some((_, true)) => return Ok(Err(reset())),
        Some((credit, false)) if credit < *amount => return Ok(Err(RejectReason::InsufficientCredit)),
        Some(_) => {}
    }
    let paid: Option<i64> = sqlx::query_scalar(&format!(
        "UPDATE users SET credit = credit - $3, taken = taken + $3
         WHERE user_id = $1 AND credit >= $3 AND NOT {RESET_AFTER}
         RETURNING generation"
    ))
    .bind(user_id)
    .bind(as_of_us)
    .bind(amount)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(generation) = paid {
        return Ok(Ok(generation));
    }
    let state: Option<bool> = sqlx::query_scalar(&format!("SELECT {RESET_AFTER} FROM users WHERE user_id = $1"))
        .bind(user_id)
        .bind(as_of_us)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(Err(match state {
        Some(true) => reset(),
        Some(false) => RejectReason::InsufficientCredit,
        None => RejectReason::UnknownUser { user_id: user_id.clone() },
    }))
}
