//! Checkout: the order service's side of the protocol-neutral contract.
//!
//! The order service loads the order and turns it into a
//! [`protocol_core::CheckoutRequest`]; which protocol runs it is fixed at start-up.
//! The set of protocols is closed, so this is an enum rather than a trait object.
//! Protocols that are not part of this build answer a clear 4xx
//! ([`RejectReason::ProtocolUnavailable`]) and never pretend to succeed.

use protocol_core::{CheckoutError, CheckoutOutcome, CheckoutRequest, ProtocolKind, RejectReason, merge_items};
use service_common::error::{ApiError, ApiResult};
use service_common::params::Id;

use crate::store::Store;

/// Runs checkouts with the protocol chosen at start-up.
#[derive(Debug, Clone)]
pub struct Checkout {
    driver: Driver,
    store: Store,
}

#[derive(Debug, Clone)]
enum Driver {
    /// The protocol is selected but not built into this binary.
    Unavailable(ProtocolKind),
}

impl Checkout {
    /// A checkout runner for `protocol` over the orders in `store`.
    pub fn new(protocol: ProtocolKind, store: Store) -> Self {
        Checkout { driver: Driver::Unavailable(protocol), store }
    }

    /// The protocol this runner uses.
    pub fn protocol(&self) -> ProtocolKind {
        match self.driver {
            Driver::Unavailable(kind) => kind,
        }
    }

    /// Checks out `order_id`: `Ok` with the definite outcome, or `Err` when the
    /// outcome is not known (the caller answers 5xx).
    pub async fn run(&self, order_id: &Id) -> ApiResult<Result<CheckoutOutcome, CheckoutError>> {
        let order = self
            .store
            .find(order_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("order {order_id} not found")))?;
        if order.paid {
            return Ok(Ok(CheckoutOutcome::AlreadyPaid));
        }
        let items = merge_items(order.items)
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("stored order {order_id} is invalid: {err}")))?;
        let request =
            CheckoutRequest { order_id: order.order_id, user_id: order.user_id, items, total_cost: order.total_cost };
        Ok(self.dispatch(request).await)
    }

    async fn dispatch(&self, _request: CheckoutRequest) -> Result<CheckoutOutcome, CheckoutError> {
        match self.driver {
            Driver::Unavailable(kind) => Ok(CheckoutOutcome::Rejected(RejectReason::ProtocolUnavailable(kind))),
        }
    }
}
