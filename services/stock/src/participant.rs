//! The stock service as a protocol participant: the business update of a 2PC
//! branch or of a saga step (the same SQL), and the saga's compensation.

use futures::future::BoxFuture;
use protocol_core::{Receipt, RejectReason, Resource, Work};
use service_common::reset::RESET_AFTER;
use sqlx::PgConnection;

/// Takes (and for a saga compensation, gives back) the stock of a checkout,
/// inside the caller's transaction.
#[derive(Debug, Clone, Copy)]
pub struct StockResource;

impl Resource for StockResource {
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
    ) -> BoxFuture<'a, sqlx::Result<Result<Receipt, RejectReason>>> {
        Box::pin(async move { Ok(take(conn, work).await?.map(|generations| Receipt { generations })) })
    }

    fn undo<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
        receipt: Option<&'a Receipt>,
    ) -> BoxFuture<'a, sqlx::Result<()>> {
        Box::pin(async move {
            let Work::Stock { items, .. } = work else { return Ok(()) };
            // Same item-id order as `take`, so a release and a reservation
            // sharing items cannot deadlock. A row reset since (another
            // generation) gets nothing back: the reset overwrote what was taken.
            // What is given back leaves `taken` (service_common::params::MAX_VALUE),
            // so the row stays at most MAX_VALUE.
            for (i, line) in items.iter().enumerate() {
                let generation = receipt.and_then(|r| r.generations.get(i).copied());
                sqlx::query(
                    "UPDATE items SET stock = stock + $2, taken = GREATEST(taken - $2, 0)
                     WHERE item_id = $1 AND ($3::bigint IS NULL OR generation = $3)",
                )
                .bind(&line.item_id)
                .bind(line.quantity)
                .bind(generation)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }
}

/// Takes every line of `work` or, refusing, reports why (the caller rolls back
/// whatever was taken before the refusal). Returns the generation of each
/// line's row.
async fn take(conn: &mut PgConnection, work: &Work) -> sqlx::Result<Result<Vec<i64>, RejectReason>> {
    let Work::Stock { items, as_of_us } = work else {
        return Ok(Err(RejectReason::UnknownItem { item_id: "(work is not for stock)".to_owned() }));
    };
    // Fail fast without queueing on row locks: the committed stock excludes
    // the decrements of branches still prepared, so if it is already short
    // the checkout cannot succeed now whatever those branches decide. One
    // read for every line; the first line that cannot be taken, in work
    // order, names the refusal.
    let ids: Vec<&str> = items.iter().map(|line| line.item_id.as_str()).collect();
    let committed: Vec<(String, i64, bool)> =
        sqlx::query_as(&format!("SELECT item_id, stock, {RESET_AFTER} FROM items WHERE item_id = ANY($1)"))
            .bind(&ids)
            .bind(as_of_us)
            .fetch_all(&mut *conn)
            .await?;
    for line in items {
        let item_id = || line.item_id.clone();
        match committed.iter().find(|(id, ..)| *id == line.item_id) {
            None => return Ok(Err(RejectReason::UnknownItem { item_id: item_id() })),
            Some((_, _, true)) => return Ok(Err(reset(&line.item_id))),
            Some((_, stock, false)) if *stock < line.quantity => {
                return Ok(Err(RejectReason::OutOfStock { item_id: item_id() }));
            }
            Some(_) => {}
        }
    }
    // Items arrive merged and sorted by id: every branch locks rows in the
    // same order, so concurrent checkouts sharing items cannot deadlock.
    let mut generations = Vec::with_capacity(items.len());
    for line in items {
        let taken: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE items SET stock = stock - $3, taken = taken + $3
             WHERE item_id = $1 AND stock >= $3 AND NOT {RESET_AFTER}
             RETURNING generation"
        ))
        .bind(&line.item_id)
        .bind(as_of_us)
        .bind(line.quantity)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(generation) = taken {
            generations.push(generation);
            continue;
        }
        let state: Option<bool> = sqlx::query_scalar(&format!("SELECT {RESET_AFTER} FROM items WHERE item_id = $1"))
            .bind(&line.item_id)
            .bind(as_of_us)
            .fetch_optional(&mut *conn)
            .await?;
        let item_id = line.item_id.clone();
        return Ok(Err(match state {
            Some(true) => reset(&item_id),
            Some(false) => RejectReason::OutOfStock { item_id },
            None => RejectReason::UnknownItem { item_id },
        }));
    }
    Ok(Ok(generations))
}

fn reset(item_id: &str) -> RejectReason {
    RejectReason::ResetDuringCheckout { what: format!("item {item_id}") }
}
