//! The checkout call's request id: the `X-Gateway-Request-Id` header.
//!
//! The gateway sets it to its own `$request_id` on every request it forwards,
//! replacing whatever a client sent under that name: one value per client
//! request that stays the same when the gateway retries the request on
//! another replica (a checkout whose replica died under it). The order records
//! it with the checkout it starts, so a retried call that finds the order paid
//! can tell "my own earlier try paid it" (`"outcome": "paid"`) from "another
//! call paid it" (`"already_paid"`). Without it, a retry of the paying call
//! would say `already_paid`, and a verifier would blame an earlier refusal for
//! the payment. A call without the header is answered as before.
//!
//! A client's own `X-Request-Id` is not read: an id that a client can choose,
//! another client can reuse or guess, and would be told `"paid"` for a
//! payment it did not make (changing no state, but hiding a refused-but-paid
//! answer from a verifier). Only the gateway's id, which no client chooses or
//! sees, counts; the services' own ports are for the stack's peers.

use axum::http::HeaderMap;
use service_common::error::ApiError;

/// The header's name.
pub const HEADER: &str = "x-gateway-request-id";

/// Longest accepted id: nginx's are 32 hex digits; a UUID is 36 characters.
const MAX_LEN: usize = 64;

/// A validated request id: 1 to 64 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The request's id, if it carries one; a malformed one is a 400 (the
    /// checkout does not run).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(HEADER) else { return Ok(None) };
        let raw = value.as_bytes();
        if raw.is_empty() || raw.len() > MAX_LEN || !raw.iter().all(u8::is_ascii_graphic) {
            return Err(ApiError::bad_request(format!(
                "X-Gateway-Request-Id must be 1 to {MAX_LEN} visible ASCII characters"
            )));
        }
        Ok(Some(RequestId(String::from_utf8_lossy(raw).into_owned())))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn parse(value: &[u8]) -> Result<Option<RequestId>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_bytes(value).expect("a header value"));
        RequestId::from_headers(&headers)
    }

    #[test]
    fn absent_is_none_and_nginx_ids_are_kept() {
        assert_eq!(RequestId::from_headers(&HeaderMap::new()).ok(), Some(None));
        let id = parse(b"0f3c1a9e5b7d2c4e6a8b0d1f3e5c7a9b").ok().flatten();
        assert_eq!(id.as_ref().map(RequestId::as_str), Some("0f3c1a9e5b7d2c4e6a8b0d1f3e5c7a9b"));
    }

    #[test]
    fn empty_long_or_invisible_ids_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(&[b'a'; 65]).is_err());
        assert!(parse(&[b'a'; 64]).is_ok());
        assert!(parse(b"has space").is_err());
        assert!(parse(b"caf\xc3\xa9").is_err());
    }
}
