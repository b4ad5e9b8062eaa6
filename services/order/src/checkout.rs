//! Checkout: the order service's side of the protocol-neutral contract.
//!
//! The order service reads the order and turns it into a
//! [`protocol_core::CheckoutRequest`]; which protocol runs it is fixed at start-up.
//! The set of protocols is closed, so this is an enum rather than a trait object.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol_core::spans::{Phase, Tiles};
use protocol_core::{CheckoutError, CheckoutOutcome, CheckoutRequest, ProtocolKind, RejectReason, merge_items};
use service_common::error::{ApiError, ApiResult};
use service_common::params::{Id, MAX_VALUE};
use service_common::reset::ResetWait;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::request_id::RequestId;
use crate::store::{LockedOrder, Store};

/// How long a checkout waits for a concurrent checkout of the same order.
const ORDER_LOCK_TIMEOUT_MS: u64 = 30_000;

/// [`ORDER_LOCK_TIMEOUT_MS`] as a budget, for the service's start-up check.
pub(crate) const ORDER_LOCK: protocol_core::timeouts::Budget = protocol_core::timeouts::Budget::new(
    "the order lock wait",
    std::time::Duration::from_millis(ORDER_LOCK_TIMEOUT_MS),
);

/// Runs checkouts with the protocol chosen at start-up.
#[derive(Debug, Clone)]
pub struct Checkout {
    driver: Driver,
    store: Store,
    in_flight: Arc<AtomicU64>,
}

/// Counts a checkout as in flight until dropped.
struct InFlight(Arc<AtomicU64>);

impl InFlight {
    fn enter(counter: &Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
enum Driver {
    /// Two-phase commit, coordinated by this replica.
    TwoPc(Arc<twopc::Coordinator>),
    /// An orchestrated saga; any replica may run its steps.
    Saga(Arc<saga::Orchestrator>),
}

impl Checkout {
    /// Checkouts over 2PC, coordinated by `coordinator`.
    pub fn two_pc(coordinator: Arc<twopc::Coordinator>, store: Store) -> Self {
        Checkout { driver: Driver::TwoPc(coordinator), store, in_flight: Arc::default() }
    }

    /// Checkouts over an orchestrated saga.
    pub fn saga(orchestrator: Arc<saga::Orchestrator>, store: Store) -> Self {
        Checkout { driver: Driver::Saga(orchestrator), store, in_flight: Arc::default() }
    }

    /// Checkouts running on this replica right now, whether or not their
    /// client still waits: a 2PC checkout holds no visible protocol state
    /// until its first branch is prepared, so a verifier must wait for this
    /// to be 0 as well before it reads the final state.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The protocol this runner uses.
    pub fn protocol(&self) -> ProtocolKind {
        match self.driver {
            Driver::TwoPc(_) => ProtocolKind::TwoPc,
            Driver::Saga(_) => ProtocolKind::Saga,
        }
    }

    /// Checks out `order_id`: `Ok` with the definite outcome, or `Err` when the
    /// checkout failed for a system reason (the caller answers 5xx).
    ///
    /// `request` is the call's request id (`X-Gateway-Request-Id`): a call that finds the order
    /// paid by a checkout it started itself (an earlier try of the same
    /// request) answers [`CheckoutOutcome::Paid`], not `AlreadyPaid`.
    ///
    /// The checkout runs in its own task, counted in [`Checkout::in_flight`]
    /// until it ends: a client that disconnects does not cut it short.
    pub async fn run(
        &self,
        order_id: &Id,
        request: Option<RequestId>,
    ) -> ApiResult<Result<CheckoutOutcome, CheckoutError>> {
        let guard = InFlight::enter(&self.in_flight);
        let (this, order_id) = (self.clone(), order_id.clone());
        tokio::spawn(async move {
            let _guard = guard;
            this.run_here(&order_id, request.as_ref()).await
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("checkout task failed: {e}")))?
    }

    async fn run_here(
        &self,
        order_id: &Id,
        request: Option<&RequestId>,
    ) -> ApiResult<Result<CheckoutOutcome, CheckoutError>> {
        match &self.driver {
            // Both protocols start under the order's row lock, so concurrent
            // checkouts of one order take effect at most once: 2PC holds the lock
            // to its decision; a saga holds it only until the saga is recorded,
            // and later checkouts join the saga in flight.
            Driver::TwoPc(coordinator) => match self.lock_order(order_id, request).await? {
                Ok((tx, request)) => Ok(coordinator.checkout(tx, request).await),
                Err(outcome) => Ok(Ok(outcome)),
            },
            Driver::Saga(orchestrator) => match self.lock_order(order_id, request).await? {
                Ok((tx, request)) => Ok(orchestrator.checkout(tx, request).await),
                Err(outcome) => Ok(Ok(outcome)),
            },
        }
    }
}

impl Checkout {
    /// `batch_init` of orders `"0".."n-1"` (see [`Store::reset_batch`]) on a
    /// live system: the reset commits only once no reset order has protocol
    /// state in flight (a checkout holding its row, a saga not terminal, a 2PC
    /// commit whose phase two is unfinished), and answers 409 after
    /// [`service_common::reset::RESET_WAIT`] otherwise. So a reset order never
    /// joins an old saga, is never marked paid by one, and can always be paid
    /// again.
    pub async fn batch_init(&self, n: i64, n_items: i64, n_users: i64, price: i64) -> ApiResult<()> {
        let total = price
            .checked_mul(2)
            .filter(|t| *t <= MAX_VALUE)
            .ok_or_else(|| ApiError::bad_request(format!("2 x item_price must be at most {MAX_VALUE}")))?;
        let wait = ResetWait::new("orders");
        loop {
            let mut tx = self.store.pool().begin().await?;
            wait.begin(&mut tx).await?;
            let busy = match self.try_reset(&mut tx, n, n_items, n_users, price, total).await {
                Ok(None) => return Ok(tx.commit().await?),
                Ok(Some(busy)) => busy,
                Err(err) => ResetWait::in_flight(err)?,
            };
            drop(tx);
            wait.retry(&busy).await?;
        }
    }

    /// One attempt: resets the orders under their row locks, then asks the
    /// protocol whether any of them is still in flight (`Some`: roll back).
    async fn try_reset(
        &self,
        conn: &mut PgConnection,
        n: i64,
        n_items: i64,
        n_users: i64,
        price: i64,
        total: i64,
    ) -> sqlx::Result<Option<String>> {
        Store::reset_batch(conn, n, n_items, n_users, price, total).await?;
        match &self.driver {
            Driver::TwoPc(_) => {
                if let Some(order) = twopc::decision_log::unfinished_commit_in_batch(conn, n).await? {
                    return Ok(Some(format!("order {order} has a 2PC commit whose phase two is unfinished")));
                }
                // The reset orders are unpaid again, so the one-commit-per-order
                // rule must forget their earlier commits, all finished by now.
                twopc::decision_log::forget_batch(conn, n).await?;
            }
            Driver::Saga(_) => {
                if let Some(order) = saga::orchestrator::in_flight_in_batch(conn, n).await? {
                    return Ok(Some(format!("order {order} has a saga in flight")));
                }
            }
        }
        service_common::reset::stamp_reset(conn, "orders", "order_id", n).await?;
        Ok(None)
    }

    /// Opens a transaction holding the order's row lock and reads the order
    /// under it: the request to run, or the outcome without running one.
    /// A checkout that starts (not one that joins a saga in flight) records
    /// `request` in the same transaction.
    async fn lock_order(
        &self,
        order_id: &Id,
        request: Option<&RequestId>,
    ) -> ApiResult<Result<(Transaction<'static, Postgres>, CheckoutRequest), CheckoutOutcome>> {
        let mut tiles = Tiles::start(order_id.as_str());
        let mut tx = self.store.pool().begin().await?;
        tiles.mark(Phase::Pool);
        let locked = Store::lock_for_checkout(&mut tx, order_id, ORDER_LOCK_TIMEOUT_MS).await?;
        // Waits for the order's row lock while another checkout of it runs.
        tiles.mark(Phase::RowLock);
        let joins_a_saga = locked.as_ref().is_some_and(|l| l.in_progress);
        let mut checked = precheck(order_id, locked, request)?;
        // Written even without an id (NULL): a compensated saga's id must not
        // outlive the next checkout that starts. The claim also dates the
        // checkout (its `as_of`), now that it holds the order's row lock: a
        // reset that committed while this checkout queued for the lock came
        // before it, not during it (see `service_common::reset`).
        if let Ok(checkout) = &mut checked {
            let as_of_us = if joins_a_saga {
                Store::clock_us(&mut tx).await?
            } else {
                Store::claim_checkout(&mut tx, order_id.as_str(), request).await?
            };
            checkout.as_of_us = Some(as_of_us);
        }
        Ok(checked.map(|checkout| (tx, checkout)))
    }
}

/// The checks every protocol shares: the order exists, is not paid yet, and
/// has items. Returns the request to run, or the outcome without running one:
/// a paid order is [`CheckoutOutcome::Paid`] to the call whose own earlier
/// try started the checkout that paid it, `AlreadyPaid` to every other.
fn precheck(
    order_id: &Id,
    locked: Option<LockedOrder>,
    request: Option<&RequestId>,
) -> ApiResult<Result<CheckoutRequest, CheckoutOutcome>> {
    let LockedOrder { order, checkout_request, .. } =
        locked.ok_or_else(|| ApiError::not_found(format!("order {order_id} not found")))?;
    if order.paid {
        let paid_by_this_call = request.is_some_and(|r| checkout_request.as_deref() == Some(r.as_str()));
        return Ok(Err(if paid_by_this_call { CheckoutOutcome::Paid } else { CheckoutOutcome::AlreadyPaid }));
    }
    if order.items.is_empty() {
        return Ok(Err(CheckoutOutcome::Rejected(RejectReason::EmptyOrder)));
    }
    let items = merge_items(order.items)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("stored order {order_id} is invalid: {err}")))?;
    Ok(Ok(CheckoutRequest {
        order_id: order.order_id,
        user_id: order.user_id,
        items,
        total_cost: order.total_cost,
        // Dated when the checkout is claimed (`Checkout::lock_order`).
        as_of_us: None,
    }))
}
