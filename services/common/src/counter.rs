//! Non-negative counters stored one per row: stock per item, credit per user.
//!
//! Both services need the same two operations with the same concurrency story,
//! so they live here once. Each is a single conditional `UPDATE`: the row lock
//! serialises concurrent changes (no lost updates), the `WHERE value >= amount`
//! guard makes a subtraction that would go negative change nothing, and
//! PostgreSQL's checked `bigint` arithmetic refuses an overflowing addition
//! (answered 400 by [`crate::ApiError`]'s conversion).

use sqlx::PgPool;

use crate::error::ApiResult;

/// A table holding one non-negative `bigint` counter per text id.
#[derive(Debug, Clone, Copy)]
pub struct CounterTable {
    /// Table name.
    pub table: &'static str,
    /// Primary-key column (text).
    pub id_column: &'static str,
    /// Counter column (`bigint`, `CHECK (... >= 0)`).
    pub value_column: &'static str,
}

/// Why a subtraction changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtractRefused {
    /// No row has this id.
    NotFound,
    /// The counter is below the amount.
    Insufficient,
}

impl CounterTable {
    /// Adds `amount`; `None` if no row has this id.
    pub async fn add(&self, pool: &PgPool, id: &str, amount: i64) -> ApiResult<Option<i64>> {
        let sql = format!(
            "UPDATE {t} SET {v} = {v} + $2 WHERE {k} = $1 RETURNING {v}",
            t = self.table,
            k = self.id_column,
            v = self.value_column
        );
        Ok(sqlx::query_scalar(&sql).bind(id).bind(amount).fetch_optional(pool).await?)
    }

    /// Subtracts `amount` if the counter holds at least that much.
    pub async fn subtract(&self, pool: &PgPool, id: &str, amount: i64) -> ApiResult<Result<i64, SubtractRefused>> {
        let sql = format!(
            "UPDATE {t} SET {v} = {v} - $2 WHERE {k} = $1 AND {v} >= $2 RETURNING {v}",
            t = self.table,
            k = self.id_column,
            v = self.value_column
        );
        let updated: Option<i64> = sqlx::query_scalar(&sql).bind(id).bind(amount).fetch_optional(pool).await?;
        if let Some(value) = updated {
            return Ok(Ok(value));
        }
        // Nothing changed; tell the caller why. The row may have appeared or
        // changed since, but the answer "this subtraction took no effect" holds.
        let exists_sql = format!("SELECT 1 FROM {} WHERE {} = $1", self.table, self.id_column);
        let exists: Option<i32> = sqlx::query_scalar(&exists_sql).bind(id).fetch_optional(pool).await?;
        Ok(Err(match exists {
            Some(_) => SubtractRefused::Insufficient,
            None => SubtractRefused::NotFound,
        }))
    }
}
