//! What a checkout asks of a protocol and what the protocol answers.

use serde::{Deserialize, Serialize};

use crate::LineItem;

/// An immutable snapshot of an unpaid order, taken by the order service when a
/// checkout starts. Items are already merged per item id ([`crate::merge_items`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// The order being checked out.
    pub order_id: String,
    /// The payment service's id of the user who pays.
    pub user_id: String,
    /// Merged order lines, sorted by item id.
    pub items: Vec<LineItem>,
    /// What the user is charged.
    pub total_cost: i64,
    /// When the checkout started, in microseconds since the epoch on the order
    /// database's clock. A participant refuses a row that a `batch_init`
    /// reset after this ([`RejectReason::ResetDuringCheckout`]), so a checkout
    /// never pays with values that were written after it began (and that the
    /// reset of its order, waiting for it, would then leave unaccounted for).
    /// `None` in requests stored before this existed: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_us: Option<i64>,
}

/// The definite result of a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutOutcome {
    /// This checkout paid the order; stock and credit effects are committed.
    Paid,
    /// The order was already paid (by an earlier or concurrent checkout); nothing
    /// more was charged.
    AlreadyPaid,
    /// The checkout took no effect, for the given reason.
    Rejected(RejectReason),
}

/// Why a checkout was refused. All of these are the caller's business, not
/// faults of the system, so they become 4xx replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RejectReason {
    /// The order has no items.
    #[error("order has no items")]
    EmptyOrder,
    /// An item does not have enough stock.
    #[error("out of stock on item {item_id}")]
    OutOfStock {
        /// The first item found short.
        item_id: String,
    },
    /// An item of the order does not exist in the stock service.
    #[error("item {item_id} not found")]
    UnknownItem {
        /// The missing item.
        item_id: String,
    },
    /// The user's credit is below the order's total.
    #[error("insufficient credit")]
    InsufficientCredit,
    /// The paying user does not exist in the payment service.
    #[error("user {user_id} not found")]
    UnknownUser {
        /// The missing user.
        user_id: String,
    },
    /// A row the checkout needs was locked by other checkouts for longer than
    /// the lock budget (2PC: a prepare queued behind prepared branches). The
    /// checkout took no effect; retrying may succeed.
    #[error("{what} is busy: its lock was not won within {waited_ms} ms; nothing was charged, try again")]
    Busy {
        /// The participant whose rows were busy (`stock`, `payment`).
        what: String,
        /// How long the prepare waited.
        waited_ms: u64,
    },
    /// A `batch_init` overwrote an item or the user while the checkout ran.
    #[error("{what} was reset by batch_init while the checkout ran")]
    ResetDuringCheckout {
        /// The item or user, as `item <id>` or `user <id>`.
        what: String,
    },
}

/// The kind of a [`RejectReason`], without its details: what a refused
/// checkout's reply carries as `"reason"` beside the human `"error"` text, so
/// a client (the harness) tells "out of stock" from "busy, try again" by a
/// typed field instead of by the wording of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// [`RejectReason::EmptyOrder`].
    EmptyOrder,
    /// [`RejectReason::OutOfStock`].
    OutOfStock,
    /// [`RejectReason::UnknownItem`].
    UnknownItem,
    /// [`RejectReason::InsufficientCredit`].
    InsufficientCredit,
    /// [`RejectReason::UnknownUser`].
    UnknownUser,
    /// [`RejectReason::Busy`].
    Busy,
    /// [`RejectReason::ResetDuringCheckout`].
    ResetDuringCheckout,
}

impl RejectReason {
    /// This reason's kind, as the reply names it.
    pub fn kind(&self) -> Refusal {
        match self {
            RejectReason::EmptyOrder => Refusal::EmptyOrder,
            RejectReason::OutOfStock { .. } => Refusal::OutOfStock,
            RejectReason::UnknownItem { .. } => Refusal::UnknownItem,
            RejectReason::InsufficientCredit => Refusal::InsufficientCredit,
            RejectReason::UnknownUser { .. } => Refusal::UnknownUser,
            RejectReason::Busy { .. } => Refusal::Busy,
            RejectReason::ResetDuringCheckout { .. } => Refusal::ResetDuringCheckout,
        }
    }
}

/// A checkout that failed for a system reason (answered 5xx).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Aborted because a dependency failed; the checkout definitely took no
    /// effect, and retrying may succeed.
    #[error("checkout aborted: {0}")]
    Aborted(String),
    /// The protocol did not reach a terminal state within its deadline; the
    /// effect may or may not happen, the final state decides.
    #[error("checkout timed out before reaching a final state")]
    Timeout,
    /// The outcome is unknown (for example the commit decision may not be
    /// durable); recovery makes it all-or-nothing and the final state decides.
    #[error("checkout failed: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_named_in_snake_case_and_reads_back() {
        let busy = RejectReason::Busy { what: "stock".into(), waited_ms: 5 };
        let named = serde_json::to_value(busy.kind()).unwrap();
        assert_eq!(named, "busy");
        assert_eq!(serde_json::from_value::<Refusal>(named).unwrap(), Refusal::Busy);
        let short = RejectReason::OutOfStock { item_id: "3".into() };
        assert_eq!(serde_json::to_value(short.kind()).unwrap(), "out_of_stock");
        assert_eq!(serde_json::to_value(RejectReason::InsufficientCredit.kind()).unwrap(), "insufficient_credit");
    }
}
