//! Checkout: the order service's side of the protocol-neutral contract.
//!
//! The order service reads the order and turns it into a
//! [`protocol_core::CheckoutRequest`]; which protocol runs it is fixed at start-up.
//! The set of protocols is closed, so this is an enum rather than a trait object.

use std::sync::Arc;

use protocol_core::{CheckoutError, CheckoutOutcome, CheckoutRequest, ProtocolKind, RejectReason, merge_items};
use service_common::error::{ApiError, ApiResult};
use service_common::params::Id;
use sqlx::{Postgres, Transaction};

use crate::store::{Order, Store};

/// How long a checkout waits for a concurrent checkout of the same order.
const ORDER_LOCK_TIMEOUT_MS: u64 = 30_000;

/// Runs checkouts with the protocol chosen at start-up.
#[derive(Debug, Clone)]
pub struct Checkout {
    driver: Driver,
    store: Store,
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
        Checkout { driver: Driver::TwoPc(coordinator), store }
    }

    /// Checkouts over an orchestrated saga.
    pub fn saga(orchestrator: Arc<saga::Orchestrator>, store: Store) -> Self {
        Checkout { driver: Driver::Saga(orchestrator), store }
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
    pub async fn run(&self, order_id: &Id) -> ApiResult<Result<CheckoutOutcome, CheckoutError>> {
        match &self.driver {
            // Both protocols start under the order's row lock, so concurrent
            // checkouts of one order take effect at most once: 2PC holds the lock
            // to its decision; a saga holds it only until the saga is recorded,
            // and later checkouts join the saga in flight.
            Driver::TwoPc(coordinator) => match self.lock_order(order_id).await? {
                Ok((tx, request)) => Ok(coordinator.checkout(tx, request).await),
                Err(outcome) => Ok(Ok(outcome)),
            },
            Driver::Saga(orchestrator) => match self.lock_order(order_id).await? {
                Ok((tx, request)) => Ok(orchestrator.checkout(tx, request).await),
                Err(outcome) => Ok(Ok(outcome)),
            },
        }
    }
}

impl Checkout {
    /// Opens a transaction holding the order's row lock and reads the order
    /// under it: the request to run, or the outcome without running one.
    async fn lock_order(
        &self,
        order_id: &Id,
    ) -> ApiResult<Result<(Transaction<'static, Postgres>, CheckoutRequest), CheckoutOutcome>> {
        let mut tx = self.store.pool().begin().await?;
        let order = Store::lock_for_checkout(&mut tx, order_id, ORDER_LOCK_TIMEOUT_MS).await?;
        Ok(precheck(order_id, order)?.map(|request| (tx, request)))
    }
}

/// The checks every protocol shares: the order exists, is not paid yet, and
/// has items. Returns the request to run, or the outcome without running one.
fn precheck(order_id: &Id, order: Option<Order>) -> ApiResult<Result<CheckoutRequest, CheckoutOutcome>> {
    let order = order.ok_or_else(|| ApiError::not_found(format!("order {order_id} not found")))?;
    if order.paid {
        return Ok(Err(CheckoutOutcome::AlreadyPaid));
    }
    if order.items.is_empty() {
        return Ok(Err(CheckoutOutcome::Rejected(RejectReason::EmptyOrder)));
    }
    let items = merge_items(order.items)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("stored order {order_id} is invalid: {err}")))?;
    Ok(Ok(CheckoutRequest { order_id: order.order_id, user_id: order.user_id, items, total_cost: order.total_cost }))
}
