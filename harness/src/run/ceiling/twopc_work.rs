//! One 2PC checkout as bare SQL: the order transaction holds the order's row
//! lock; each participant's branch records itself, takes its rows and is
//! prepared; the commit decision and the paid flag commit with the order
//! transaction; then `COMMIT PREPARED` on both. The same statements as the
//! services' (`protocols/twopc`; the decision is written by the decision
//! log's own function), in the same order, without the network.

use protocol_core::CheckoutRequest;
use sqlx::PgPool;
use twopc::PrepareOrder;
use twopc::gid::{Gid, InstanceName, Participant};
use uuid::Uuid;

use super::scratch::Scratch;
use super::{Ended, debit, lock_order, take_stock};

/// The lock budget the coordinator gives a prepare by default.
const LOCK_WAIT_MS: u64 = 1_000;

pub(super) async fn checkout(db: &Scratch, order_id: &str, order: PrepareOrder) -> anyhow::Result<Ended> {
    let Some((mut tx, request)) = lock_order(&db.order, order_id).await? else {
        return Ok(Ended::NotPaid);
    };
    let txn = Uuid::new_v4();
    let coordinator = InstanceName::new("ceiling")?;
    let gid = |p| Gid::new(coordinator.clone(), txn, p);
    let (stock, payment) = (gid(Participant::Stock), gid(Participant::Payment));
    let (stock_yes, payment_yes) = match order {
        PrepareOrder::Parallel => tokio::try_join!(
            prepare(&db.stock, &stock, &request, Participant::Stock),
            prepare(&db.payment, &payment, &request, Participant::Payment)
        )?,
        PrepareOrder::PaymentFirst => {
            let paid = prepare(&db.payment, &payment, &request, Participant::Payment).await?;
            let taken = paid && prepare(&db.stock, &stock, &request, Participant::Stock).await?;
            (taken, paid)
        }
        PrepareOrder::StockFirst => {
            let taken = prepare(&db.stock, &stock, &request, Participant::Stock).await?;
            let paid = taken && prepare(&db.payment, &payment, &request, Participant::Payment).await?;
            (taken, paid)
        }
    };
    if !(stock_yes && payment_yes) {
        // Presumed abort: nothing to write; roll back what was prepared.
        drop(tx);
        let rollback = |pool: &PgPool, gid: &Gid, yes: bool| {
            let (pool, sql) = (pool.clone(), format!("ROLLBACK PREPARED {}", gid.sql_literal()));
            async move { if yes { sqlx::query(&sql).execute(&pool).await.map(drop) } else { Ok(()) } }
        };
        tokio::try_join!(rollback(&db.stock, &stock, stock_yes), rollback(&db.payment, &payment, payment_yes))?;
        return Ok(Ended::NotPaid);
    }
    twopc::decision_log::record_commit(&mut tx, txn, &coordinator, order_id).await?;
    sqlx::query("UPDATE orders SET paid = TRUE, paid_at = now() WHERE order_id = $1 AND NOT paid")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let commit = |pool: &PgPool, gid: &Gid| {
        let (pool, sql) = (pool.clone(), format!("COMMIT PREPARED {}", gid.sql_literal()));
        async move { sqlx::query(&sql).execute(&pool).await }
    };
    tokio::try_join!(commit(&db.stock, &stock), commit(&db.payment, &payment))?;
    Ok(Ended::Paid)
}

/// One branch; `true` for a yes vote (prepared).
async fn prepare(pool: &PgPool, gid: &Gid, request: &CheckoutRequest, p: Participant) -> anyhow::Result<bool> {
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    sqlx::query(&format!("SET LOCAL lock_timeout = {LOCK_WAIT_MS}")).execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO twopc_branches (gid, outcome) VALUES ($1, 'committed') ON CONFLICT (gid) DO NOTHING RETURNING 1",
    )
    .bind(gid.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let applied = match p {
        Participant::Stock => take_stock(&mut conn, request).await,
        Participant::Payment => debit(&mut conn, request).await,
    };
    match applied {
        Ok(true) => {
            sqlx::query(&format!("PREPARE TRANSACTION {}", gid.sql_literal())).execute(&mut *conn).await?;
            Ok(true)
        }
        // Refused, or the lock budget ran out: a no vote.
        Ok(false) | Err(sqlx::Error::Database(_)) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}
