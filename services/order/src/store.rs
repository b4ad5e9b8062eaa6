//! SQL for the order service.

use futures::future::BoxFuture;
use protocol_core::OrderBook;
use service_common::error::{ApiError, ApiResult};
use service_common::params::{Id, MAX_VALUE};
use sqlx::{PgConnection, PgPool};

use crate::request_id::RequestId;

/// An order as `GET /orders/find` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The order's id.
    pub order_id: String,
    /// Who pays.
    pub user_id: String,
    /// Whether a checkout has paid it.
    pub paid: bool,
    /// `(item_id, quantity)` per `addItem` call, in call order.
    pub items: Vec<(String, i64)>,
    /// Sum of quantity x price over the lines.
    pub total_cost: i64,
}

/// An order read under its row lock by a checkout.
#[derive(Debug, Clone)]
pub struct LockedOrder {
    /// The order.
    pub order: Order,
    /// Whether a saga of it is in flight (a checkout now joins that saga).
    pub in_progress: bool,
    /// The request id of the call that started its latest checkout, if that
    /// call carried one.
    pub checkout_request: Option<String>,
}

/// Why `addItem` changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddItemRefused {
    /// No order has this id.
    NotFound,
    /// The order is paid; its lines are frozen.
    Paid,
    /// A checkout of the order is in flight; its lines are frozen until it ends.
    CheckoutInProgress,
}

/// Access to the `orders` and `order_items` tables.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Wraps a pool.
    pub fn new(pool: PgPool) -> Self {
        Store { pool }
    }

    /// The pool, for protocol adapters that keep their state in this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates an empty, unpaid order.
    pub async fn create(&self, order_id: &Id, user_id: &Id) -> ApiResult<()> {
        sqlx::query("INSERT INTO orders (order_id, user_id, paid, total_cost) VALUES ($1, $2, FALSE, 0)")
            .bind(order_id.as_str())
            .bind(user_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates or overwrites orders `"0"..="n-1"` on `conn` (inside the
    /// caller's transaction, which then holds every reset order's row lock):
    /// each unpaid, for a random user of `"0"..n_users`, with two random items
    /// of `"0"..n_items` at `price` each (`total` = 2 x `price`).
    pub async fn reset_batch(
        conn: &mut PgConnection,
        n: i64,
        n_items: i64,
        n_users: i64,
        price: i64,
        total: i64,
    ) -> sqlx::Result<()> {
        // The upsert comes first: it takes the row locks (waiting for a
        // checkout that holds one), so what is read after it cannot change.
        sqlx::query(
            "INSERT INTO orders (order_id, user_id, paid, total_cost, reset_at)
             SELECT g::text, floor(random() * $2)::bigint::text, FALSE, $3, now()
             FROM generate_series(0, $1 - 1) AS g
             ON CONFLICT (order_id) DO UPDATE
             SET user_id = EXCLUDED.user_id, paid = FALSE, total_cost = EXCLUDED.total_cost,
                 checkout_in_progress = FALSE, paid_at = NULL, reset_at = EXCLUDED.reset_at,
                 checkout_request = NULL",
        )
        .bind(n)
        .bind(n_users)
        .bind(total)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM order_items WHERE order_id IN (SELECT g::text FROM generate_series(0, $1 - 1) AS g)")
            .bind(n)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO order_items (order_id, seq, item_id, quantity, unit_price)
             SELECT g::text, s, floor(random() * $2)::bigint::text, 1, $3
             FROM generate_series(0, $1 - 1) AS g, generate_series(1, 2) AS s",
        )
        .bind(n)
        .bind(n_items)
        .bind(price)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The order with its lines, if it exists.
    pub async fn find(&self, order_id: &Id) -> ApiResult<Option<Order>> {
        let head: Option<(String, bool, i64)> =
            sqlx::query_as("SELECT user_id, paid, total_cost FROM orders WHERE order_id = $1")
                .bind(order_id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some((user_id, paid, total_cost)) = head else {
            return Ok(None);
        };
        let items: Vec<(String, i64)> =
            sqlx::query_as("SELECT item_id, quantity FROM order_items WHERE order_id = $1 ORDER BY seq")
                .bind(order_id.as_str())
                .fetch_all(&self.pool)
                .await?;
        Ok(Some(Order { order_id: order_id.to_string(), user_id, paid, items, total_cost }))
    }

    /// Locks the order row (`FOR UPDATE`) on `conn` and reads the order under
    /// that lock, for a checkout that decides inside the same transaction.
    /// Waits at most `lock_timeout_ms` for a concurrent checkout of the order.
    pub async fn lock_for_checkout(
        conn: &mut PgConnection,
        order_id: &Id,
        lock_timeout_ms: u64,
    ) -> ApiResult<Option<LockedOrder>> {
        sqlx::query(&format!("SET LOCAL lock_timeout = {lock_timeout_ms}")).execute(&mut *conn).await?;
        let head: Option<(String, bool, i64, bool, Option<String>)> = sqlx::query_as(
            "SELECT user_id, paid, total_cost, checkout_in_progress, checkout_request
             FROM orders WHERE order_id = $1 FOR UPDATE",
        )
        .bind(order_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let Some((user_id, paid, total_cost, in_progress, checkout_request)) = head else {
            return Ok(None);
        };
        let items: Vec<(String, i64)> =
            sqlx::query_as("SELECT item_id, quantity FROM order_items WHERE order_id = $1 ORDER BY seq")
                .bind(order_id.as_str())
                .fetch_all(&mut *conn)
                .await?;
        Ok(Some(LockedOrder {
            order: Order { order_id: order_id.to_string(), user_id, paid, items, total_cost },
            in_progress,
            checkout_request,
        }))
    }

    /// Records `request` (`None`: a call without an id) as the call whose checkout of `order_id` runs now,
    /// on `conn` (which holds the order's row lock): it commits with the
    /// checkout's own first commit, or rolls back with it. Returns the
    /// database clock at the claim, in microseconds since the epoch: the
    /// checkout's `as_of`.
    pub async fn claim_checkout(
        conn: &mut PgConnection,
        order_id: &str,
        request: Option<&RequestId>,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "UPDATE orders SET checkout_request = $2 WHERE order_id = $1
             RETURNING (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
        )
        .bind(order_id)
        .bind(request.map(RequestId::as_str))
        .fetch_one(conn)
        .await
    }

    /// The database clock now (`clock_timestamp()`, not the transaction's
    /// start), in microseconds since the epoch.
    pub async fn clock_us(conn: &mut PgConnection) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").fetch_one(conn).await
    }

    /// Appends a line to an unpaid order and raises its total, atomically with
    /// respect to checkout (both lock the order row).
    pub async fn add_item(
        &self,
        order_id: &Id,
        item_id: &Id,
        quantity: i64,
        unit_price: i64,
    ) -> ApiResult<Result<i64, AddItemRefused>> {
        let cost = quantity
            .checked_mul(unit_price)
            .filter(|cost| *cost <= MAX_VALUE)
            .ok_or_else(|| ApiError::bad_request(format!("quantity x price must be at most {MAX_VALUE}")))?;
        let mut tx = self.pool.begin().await?;
        let state: Option<(bool, bool)> =
            sqlx::query_as("SELECT paid, checkout_in_progress FROM orders WHERE order_id = $1 FOR UPDATE")
                .bind(order_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        match state {
            None => return Ok(Err(AddItemRefused::NotFound)),
            Some((true, _)) => return Ok(Err(AddItemRefused::Paid)),
            Some((false, true)) => return Ok(Err(AddItemRefused::CheckoutInProgress)),
            Some((false, false)) => {}
        }
        // The total and the order's units stay at most MAX_VALUE, so the debit
        // and every stock line of its checkout (and their compensations) fit.
        let units: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(quantity), 0)::bigint FROM order_items WHERE order_id = $1")
                .bind(order_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if units > MAX_VALUE - quantity {
            return Err(ApiError::bad_request(format!("an order holds at most {MAX_VALUE} units")));
        }
        let total: Option<i64> = sqlx::query_scalar(
            "UPDATE orders SET total_cost = total_cost + $2 WHERE order_id = $1 AND total_cost <= $3 - $2
             RETURNING total_cost",
        )
        .bind(order_id.as_str())
        .bind(cost)
        .bind(MAX_VALUE)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(total) = total else {
            return Err(ApiError::bad_request(format!("an order's total_cost must be at most {MAX_VALUE}")));
        };
        sqlx::query(
            "INSERT INTO order_items (order_id, seq, item_id, quantity, unit_price)
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM order_items WHERE order_id = $1",
        )
        .bind(order_id.as_str())
        .bind(item_id.as_str())
        .bind(quantity)
        .bind(unit_price)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(total))
    }
}

impl OrderBook for Store {
    fn begin_checkout<'a>(&'a self, conn: &'a mut PgConnection, order_id: &'a str) -> BoxFuture<'a, sqlx::Result<()>> {
        Box::pin(async move {
            sqlx::query("UPDATE orders SET checkout_in_progress = TRUE WHERE order_id = $1")
                .bind(order_id)
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    fn end_checkout<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        order_id: &'a str,
        paid: bool,
    ) -> BoxFuture<'a, sqlx::Result<Option<bool>>> {
        Box::pin(async move {
            // `before` is read from the statement's snapshot: the row as it
            // was, where RETURNING alone would show it as updated.
            sqlx::query_scalar(
                "UPDATE orders SET checkout_in_progress = FALSE, paid = orders.paid OR $2,
                     paid_at = CASE WHEN $2 AND NOT orders.paid THEN now() ELSE orders.paid_at END
                 FROM (SELECT paid FROM orders WHERE order_id = $1) AS before
                 WHERE orders.order_id = $1
                 RETURNING before.paid",
            )
            .bind(order_id)
            .bind(paid)
            .fetch_optional(conn)
            .await
        })
    }
}
