//! SQL for the stock service.

use service_common::counter::{CounterTable, Refused};
use service_common::error::{ApiError, ApiResult};
use service_common::params::Id;
use service_common::reset::reset_rows;
use sqlx::PgPool;

const ITEMS: CounterTable =
    CounterTable { table: "items", id_column: "item_id", value_column: "stock", taken_column: "taken" };

/// An item's current stock and price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Units in stock.
    pub stock: i64,
    /// Price per unit.
    pub price: i64,
}

/// Access to the `items` table.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Wraps a pool.
    pub fn new(pool: PgPool) -> Self {
        Store { pool }
    }

    /// Creates an item with no stock.
    pub async fn create(&self, id: &Id, price: i64) -> ApiResult<()> {
        sqlx::query("INSERT INTO items (item_id, stock, price) VALUES ($1, 0, $2)")
            .bind(id.as_str())
            .bind(price)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates or overwrites items `"0"..="n-1"` in one statement, once no 2PC
    /// branch holds one of them (see [`service_common::reset`]); each
    /// overwritten item moves to a new generation, and every item of the
    /// batch is stamped when the reset is about to commit.
    pub async fn batch_init(&self, n: i64, stock: i64, price: i64) -> ApiResult<()> {
        // Rows are locked in item-id (text) order, the order 2PC branches
        // lock them in, so a reset and a branch cannot deadlock.
        reset_rows(&self.pool, "items", ("items", "item_id"), n, || {
            sqlx::query(
                "INSERT INTO items (item_id, stock, price)
                 SELECT g::text, $2, $3 FROM generate_series(0, $1 - 1) AS g ORDER BY g::text
                 ON CONFLICT (item_id) DO UPDATE
                 SET stock = EXCLUDED.stock, price = EXCLUDED.price, taken = 0, generation = items.generation + 1",
            )
            .bind(n)
            .bind(stock)
            .bind(price)
        })
        .await
    }

    /// The item, if it exists.
    pub async fn find(&self, id: &Id) -> ApiResult<Option<Item>> {
        let row: Option<(i64, i64)> = sqlx::query_as("SELECT stock, price FROM items WHERE item_id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(stock, price)| Item { stock, price }))
    }

    /// Adds `amount` units, keeping the stock at most [`service_common::params::MAX_VALUE`].
    pub async fn add(&self, id: &Id, amount: i64) -> ApiResult<i64> {
        match ITEMS.add(&self.pool, id.as_str(), amount).await? {
            Ok(stock) => Ok(stock),
            Err(Refused::NotFound) => Err(item_not_found(id)),
            Err(_) => Err(ApiError::bad_request(format!("stock of item {id} would exceed the maximum"))),
        }
    }

    /// Takes `amount` units if there are that many, atomically.
    pub async fn subtract(&self, id: &Id, amount: i64) -> ApiResult<i64> {
        match ITEMS.subtract(&self.pool, id.as_str(), amount).await? {
            Ok(stock) => Ok(stock),
            Err(Refused::NotFound) => Err(item_not_found(id)),
            Err(_) => Err(ApiError::rejected(format!("insufficient stock for item {id}"))),
        }
    }
}

fn item_not_found(id: &Id) -> ApiError {
    ApiError::not_found(format!("item {id} not found"))
}
