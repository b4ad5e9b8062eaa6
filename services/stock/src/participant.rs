//! The stock service as a 2PC participant: the business update of a branch.

use futures::future::BoxFuture;
use protocol_core::RejectReason;
use sqlx::PgConnection;
use twopc::messages::Work;

/// Takes the stock of a checkout inside the branch's transaction.
#[derive(Debug, Clone, Copy)]
pub struct StockResource;

impl twopc::Resource for StockResource {
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
    ) -> BoxFuture<'a, sqlx::Result<Result<(), RejectReason>>> {
        Box::pin(async move {
            let Work::Stock { items } = work else {
                return Ok(Err(RejectReason::UnknownItem { item_id: "(work is not for stock)".to_owned() }));
            };
            // Fail fast without queueing on row locks: the committed stock excludes
            // the decrements of branches still prepared, so if it is already short
            // the checkout cannot succeed now whatever those branches decide.
            for line in items {
                let committed: Option<i64> = sqlx::query_scalar("SELECT stock FROM items WHERE item_id = $1")
                    .bind(&line.item_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                match committed {
                    None => return Ok(Err(RejectReason::UnknownItem { item_id: line.item_id.clone() })),
                    Some(stock) if stock < line.quantity => {
                        return Ok(Err(RejectReason::OutOfStock { item_id: line.item_id.clone() }));
                    }
                    Some(_) => {}
                }
            }
            // Items arrive merged and sorted by id: every branch locks rows in the
            // same order, so concurrent checkouts sharing items cannot deadlock.
            for line in items {
                let taken: Option<i64> = sqlx::query_scalar(
                    "UPDATE items SET stock = stock - $2 WHERE item_id = $1 AND stock >= $2 RETURNING stock",
                )
                .bind(&line.item_id)
                .bind(line.quantity)
                .fetch_optional(&mut *conn)
                .await?;
                if taken.is_some() {
                    continue;
                }
                let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM items WHERE item_id = $1")
                    .bind(&line.item_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let item_id = line.item_id.clone();
                return Ok(Err(match exists {
                    Some(_) => RejectReason::OutOfStock { item_id },
                    None => RejectReason::UnknownItem { item_id },
                }));
            }
            Ok(Ok(()))
        })
    }
}
