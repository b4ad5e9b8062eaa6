//! Non-negative counters stored one per row: stock per item, credit per user.
//!
//! Both services need the same two operations with the same concurrency story,
//! so they live here once. Each is a single conditional `UPDATE`: the row lock
//! serialises concurrent changes (no lost updates), the `WHERE value >= amount`
//! guard makes a subtraction that would go negative change nothing, and the
//! `WHERE value + taken <= MAX_VALUE - amount` guard keeps an addition from
//! taking a counter, together with what checkouts took from it and a saga
//! compensation may give back, past [`MAX_VALUE`] (see [`MAX_VALUE`]).

use sqlx::PgPool;

use crate::error::ApiResult;
use crate::params::MAX_VALUE;

/// A table holding one non-negative `bigint` counter per text id.
#[derive(Debug, Clone, Copy)]
pub struct CounterTable {
    /// Table name.
    pub table: &'static str,
    /// Primary-key column (text).
    pub id_column: &'static str,
    /// Counter column (`bigint`, `CHECK (... >= 0)`).
    pub value_column: &'static str,
    /// What checkouts took from the counter since its reset (`bigint`): the
    /// most that compensations can still give back to it.
    pub taken_column: &'static str,
}

/// Why a subtraction or an addition changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No row has this id.
    NotFound,
    /// The counter is below the amount.
    Insufficient,
    /// The counter, with what checkouts took from it, would pass [`MAX_VALUE`].
    TooLarge,
}

impl CounterTable {
    /// Adds `amount` (at most [`MAX_VALUE`]) unless the counter plus what
    /// checkouts took from it would pass [`MAX_VALUE`].
    pub async fn add(&self, pool: &PgPool, id: &str, amount: i64) -> ApiResult<Result<i64, Refused>> {
        // `taken` never exceeds MAX_VALUE (it grows only with what was taken
        // from a value at most MAX_VALUE), so the right side cannot overflow.
        let sql = format!(
            "UPDATE {t} SET {v} = {v} + $2 WHERE {k} = $1 AND {v} <= $3 - $2 - {taken} RETURNING {v}",
            t = self.table,
            k = self.id_column,
            v = self.value_column,
            taken = self.taken_column
        );
        let updated: Option<i64> =
            sqlx::query_scalar(&sql).bind(id).bind(amount.min(MAX_VALUE)).bind(MAX_VALUE).fetch_optional(pool).await?;
        match updated {
            Some(value) => Ok(Ok(value)),
            None => Ok(Err(self.why_unchanged(pool, id, Refused::TooLarge).await?)),
        }
    }

    /// Subtracts `amount` if the counter holds at least that much.
    pub async fn subtract(&self, pool: &PgPool, id: &str, amount: i64) -> ApiResult<Result<i64, Refused>> {
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
        Ok(Err(self.why_unchanged(pool, id, Refused::Insufficient).await?))
    }

    /// Nothing changed; tells the caller why: `NotFound`, or `guard` for a row
    /// that exists. The row may have appeared or changed since, but the answer
    /// "this change took no effect" holds.
    async fn why_unchanged(&self, pool: &PgPool, id: &str, guard: Refused) -> ApiResult<Refused> {
        let exists_sql = format!("SELECT 1 FROM {} WHERE {} = $1", self.table, self.id_column);
        let exists: Option<i32> = sqlx::query_scalar(&exists_sql).bind(id).fetch_optional(pool).await?;
        Ok(if exists.is_some() { guard } else { Refused::NotFound })
    }
}
