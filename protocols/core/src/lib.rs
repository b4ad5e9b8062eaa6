//! The protocol-neutral checkout contract.
//!
//! The order service owns the order; a *protocol* (SAGA over Kafka, or 2PC over
//! PostgreSQL prepared transactions) owns the question "did the stock and credit
//! effects of this checkout happen, exactly once, or not at all?". This crate is
//! the narrow waist between the two: the order service hands a [`CheckoutRequest`]
//! (an immutable snapshot of the order) to whichever protocol was chosen at
//! start-up and gets back a [`CheckoutOutcome`] that it turns into an HTTP reply.
//!
//! ```text
//!   POST /orders/checkout/{id}
//!          |
//!   order service: load order ──► CheckoutRequest ──► protocol (saga | 2pc)
//!          ◄────────────── CheckoutOutcome / CheckoutError ◄──────┘
//! ```
//!
//! The contract every protocol keeps (`docs/design.md` section 5):
//! - [`CheckoutOutcome::Paid`] only once the order is durably paid and its stock
//!   and credit effects are committed;
//! - [`CheckoutOutcome::Rejected`] only once the checkout definitely took no effect
//!   (every compensation or rollback has finished);
//! - anything else is a [`CheckoutError`], which the service answers with a 5xx and
//!   whose true outcome the final state decides.

mod backoff;
pub mod crashpoint;
mod items;
mod kind;
pub mod listen;
mod outcome;
mod resource;
pub mod schema;
pub mod spans;
pub mod timeouts;
pub mod wait;

pub use backoff::Backoff;
pub use items::{LineItem, MergeError, Work, merge_items};
pub use kind::{ProtocolKind, UnknownProtocol};
pub use outcome::{CheckoutError, CheckoutOutcome, CheckoutRequest, Refusal, RejectReason};
pub use resource::{OrderBook, Receipt, Resource};
