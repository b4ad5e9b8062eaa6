//! The single HTTP error type of the services.
//!
//! Every handler returns [`ApiResult`]. Business failures and bad input become
//! 400 (the course template answers 400 for "not found" too, and its tests and
//! benchmark rely on it); internal faults become 500 with a generic message while
//! the cause goes to the log. Database text never reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or out-of-range input; nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// The addressed entity does not exist; nothing was changed.
    #[error("{0}")]
    NotFound(String),
    /// A business rule refused the operation (a paid order, an order being
    /// checked out, a negative result); nothing was changed. A refused
    /// checkout is [`ApiError::Refused`].
    #[error("{0}")]
    Rejected(String),
    /// The protocol refused the checkout (short stock or credit, an empty
    /// order, rows busy past the lock budget, ...); nothing was charged. The
    /// reply names the reason's kind in `"reason"` ([`protocol_core::Refusal`])
    /// beside the text; busy rows answer 409, the rest 400.
    #[error("{0}")]
    Refused(protocol_core::RejectReason),
    /// The request contradicts the state (an internal protocol request that
    /// cannot apply, for example committing a rolled-back branch).
    #[error("{0}")]
    Conflict(String),
    /// An internal protocol call without the stack's peer token; nothing was
    /// changed.
    #[error("this endpoint is for the stack's own services")]
    Unauthorized,
    /// No route matches the request.
    #[error("no such endpoint")]
    NoRoute,
    /// The request carried a body larger than any endpoint accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A dependency is temporarily unavailable or overloaded; retrying may help.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug or an infrastructure failure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Shorthand for a [`ApiError::BadRequest`].
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    /// Shorthand for a [`ApiError::NotFound`].
    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError::NotFound(msg.into())
    }

    /// Shorthand for a [`ApiError::Rejected`].
    pub fn rejected(msg: impl Into<String>) -> Self {
        ApiError::Rejected(msg.into())
    }

    /// The one place where errors meet status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::NotFound(_) | ApiError::Rejected(_) => StatusCode::BAD_REQUEST,
            // Busy rows are a conflict with other checkouts, not a business
            // refusal: 409, so a client can tell "try again" from "cannot".
            ApiError::Refused(protocol_core::RejectReason::Busy { .. }) => StatusCode::CONFLICT,
            ApiError::Refused(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // One line per failure: the cause and its chain (`{:#}`), never a
        // backtrace. These are expected failures under faults (a timeout, a
        // refused lock, an unknown 2PC outcome); a real bug panics, and the
        // panic hook prints its backtrace.
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = %log_line(cause), "internal error"),
            ApiError::Unavailable(cause) => tracing::warn!(error = %log_line(cause), "dependency unavailable"),
            _ => {}
        }
        let body = match &self {
            ApiError::Refused(reason) => json!({ "error": self.to_string(), "reason": reason.kind() }),
            _ => json!({ "error": self.to_string() }),
        };
        let body = Json(body);
        (self.status(), body).into_response()
    }
}

/// How a cause is logged: its message and chain on one line.
fn log_line(cause: &anyhow::Error) -> String {
    format!("{cause:#}")
}

/// PostgreSQL error codes that are the client's fault or transient, so they are
/// not reported as internal errors.
mod sqlstate {
    pub const CHECK_VIOLATION: &str = "23514";
    pub const NUMERIC_OUT_OF_RANGE: &str = "22003";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const QUERY_CANCELED: &str = "57014";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        use sqlstate::*;
        if let Some(db) = err.as_database_error() {
            match db.code().as_deref() {
                // The CHECK (... >= 0) constraints are the last line of defence;
                // hitting one means the request asked for something impossible.
                Some(CHECK_VIOLATION) => {
                    return ApiError::bad_request("operation would make a value negative");
                }
                Some(NUMERIC_OUT_OF_RANGE) => {
                    return ApiError::bad_request("amount out of range");
                }
                Some(
                    SERIALIZATION_FAILURE
                    | DEADLOCK_DETECTED
                    | LOCK_NOT_AVAILABLE
                    | QUERY_CANCELED
                    | TOO_MANY_CONNECTIONS,
                ) => return ApiError::Unavailable(err.into()),
                _ => {}
            }
        }
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::Unavailable(err.into())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_failures_are_400_and_faults_are_5xx() {
        assert_eq!(ApiError::bad_request("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::not_found("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::rejected("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::NoRoute.status(), StatusCode::NOT_FOUND);
        let internal = ApiError::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // The cause is logged, never shown.
        assert_eq!(internal.to_string(), "internal error");
    }

    #[test]
    fn logged_causes_carry_their_chain_but_no_backtrace() {
        // What into_response logs: the chain on one line, even with a
        // backtrace captured (as RUST_BACKTRACE=1 does for anyhow).
        let cause = anyhow::Error::from(std::io::Error::other("lock timeout")).context("prepare of stock");
        assert!(format!("{cause:?}").contains("lock timeout"));
        let line = log_line(&cause);
        assert_eq!(line, "prepare of stock: lock timeout");
        assert!(!line.contains("backtrace") && !line.contains('\n'), "{line}");
    }

    #[test]
    fn a_refused_checkout_names_its_reason() {
        use protocol_core::RejectReason;
        let busy = ApiError::Refused(RejectReason::Busy { what: "stock".into(), waited_ms: 3 });
        assert_eq!(busy.status(), StatusCode::CONFLICT);
        let short = ApiError::Refused(RejectReason::OutOfStock { item_id: "7".into() });
        assert_eq!(short.status(), StatusCode::BAD_REQUEST);
        let resp = short.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn pool_exhaustion_is_retryable_not_internal() {
        let err = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
