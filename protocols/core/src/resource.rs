//! The two things a protocol asks of the services, whichever protocol it is:
//! a participant's business step ([`Resource`]) and the order's checkout
//! bookkeeping ([`OrderBook`]).
//!
//! Both protocols call the same implementations: a 2PC branch runs
//! [`Resource::apply`] inside the transaction it then prepares (and rolls it
//! back, never calling [`Resource::undo`]); a saga step runs it in a local
//! transaction and, when the saga compensates, runs [`Resource::undo`] with
//! the [`Receipt`] it kept. A third participant implements [`Resource`] once
//! and is wired by `service_common::participant`.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::{RejectReason, Work};

/// What [`Resource::apply`] saw of the rows it changed, kept with the effect so
/// that [`Resource::undo`] gives back to exactly those rows: the generation of
/// each row, in the order of the work's lines. A `batch_init` that overwrites a
/// row moves it to a new generation (services/common/src/reset.rs), and a
/// compensation gives nothing back to a row of another generation, because
/// the value it would restore was overwritten.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Generation of each changed row, in work order.
    pub generations: Vec<i64>,
}

/// The business side of a checkout step, implemented once by the service that
/// owns the data and run by either protocol.
///
/// Contract:
/// - take row locks in one fixed global order (stock: item id), so that two
///   steps, or a step and an undo, sharing rows cannot deadlock;
/// - when the work cannot be done, return `Ok(Err(reason))`; the caller rolls
///   back whatever the call changed (2PC: the branch; saga: a savepoint);
/// - return `Err` only for database failures.
pub trait Resource: Send + Sync + 'static {
    /// Applies `work` on `conn`, inside the caller's transaction.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
    ) -> BoxFuture<'a, sqlx::Result<Result<Receipt, RejectReason>>>;

    /// Undoes `work`, which [`Resource::apply`] applied earlier and described in
    /// `receipt` (`None` for effects recorded before receipts existed: undone
    /// unconditionally), inside the caller's transaction. Rows whose
    /// generation differs from the receipt's are left alone. Only a saga's
    /// compensation calls it: 2PC undoes by rolling back.
    fn undo<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        work: &'a Work,
        receipt: Option<&'a Receipt>,
    ) -> BoxFuture<'a, sqlx::Result<()>>;
}

/// The order service's side of a checkout, run inside the protocol's own
/// transactions on the order database.
pub trait OrderBook: Send + Sync + 'static {
    /// Sets the order's "checkout in progress" mark on `conn`; while set,
    /// `addItem` is refused. A saga sets it because it releases the order's
    /// row lock while its steps run; 2PC holds the row lock instead and never
    /// sets it.
    fn begin_checkout<'a>(&'a self, conn: &'a mut PgConnection, order_id: &'a str) -> BoxFuture<'a, sqlx::Result<()>>;

    /// Clears the mark and, when `paid`, marks the order paid, in one statement
    /// on `conn` (the protocol's terminal write: the saga's last update, the
    /// 2PC commit decision). Returns whether the order was paid before, `None`
    /// when it does not exist. Never an error for an order already paid: the
    /// caller decides what that means (a saga reply that failed would be
    /// retried forever and hold back its partition; 2PC, which holds the row
    /// lock and saw the order unpaid, treats it as a failure).
    fn end_checkout<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        order_id: &'a str,
        paid: bool,
    ) -> BoxFuture<'a, sqlx::Result<Option<bool>>>;
}
