//! SQL for the payment service.

use service_common::counter::{CounterTable, Refused};
use service_common::error::{ApiError, ApiResult};
use service_common::params::Id;
use service_common::reset::reset_rows;
use sqlx::PgPool;

const USERS: CounterTable =
    CounterTable { table: "users", id_column: "user_id", value_column: "credit", taken_column: "taken" };

/// Access to the `users` table.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Wraps a pool.
    pub fn new(pool: PgPool) -> Self {
        Store { pool }
    }

    /// Creates a user with no credit.
    pub async fn create(&self, id: &Id) -> ApiResult<()> {
        sqlx::query("INSERT INTO users (user_id, credit) VALUES ($1, 0)").bind(id.as_str()).execute(&self.pool).await?;
        Ok(())
    }

    /// Creates or overwrites users `"0"..="n-1"` in one statement, once no 2PC
    /// branch holds one of them (see [`service_common::reset`]); each
    /// overwritten user moves to a new generation, and every user of the
    /// batch is stamped when the reset is about to commit.
    pub async fn batch_init(&self, n: i64, credit: i64) -> ApiResult<()> {
        reset_rows(&self.pool, "users", ("users", "user_id"), n, || {
            sqlx::query(
                "INSERT INTO users (user_id, credit)
                 SELECT g::text, $2 FROM generate_series(0, $1 - 1) AS g ORDER BY g::text
                 ON CONFLICT (user_id) DO UPDATE
                 SET credit = EXCLUDED.credit, taken = 0, generation = users.generation + 1",
            )
            .bind(n)
            .bind(credit)
        })
        .await
    }

    /// The user's credit, if the user exists.
    pub async fn credit(&self, id: &Id) -> ApiResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT credit FROM users WHERE user_id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Adds `amount` to the user's credit, keeping it at most
    /// [`service_common::params::MAX_VALUE`].
    pub async fn add_funds(&self, id: &Id, amount: i64) -> ApiResult<i64> {
        match USERS.add(&self.pool, id.as_str(), amount).await? {
            Ok(credit) => Ok(credit),
            Err(Refused::NotFound) => Err(user_not_found(id)),
            Err(_) => Err(ApiError::bad_request(format!("credit of user {id} would exceed the maximum"))),
        }
    }

    /// Takes `amount` from the user's credit if there is that much, atomically.
    pub async fn pay(&self, id: &Id, amount: i64) -> ApiResult<i64> {
        match USERS.subtract(&self.pool, id.as_str(), amount).await? {
            Ok(credit) => Ok(credit),
            Err(Refused::NotFound) => Err(user_not_found(id)),
            Err(_) => Err(ApiError::rejected(format!("insufficient credit for user {id}"))),
        }
    }
}

fn user_not_found(id: &Id) -> ApiError {
    ApiError::not_found(format!("user {id} not found"))
}
