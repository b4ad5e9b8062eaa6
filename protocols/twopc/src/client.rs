//! HTTP calls to the replicas of another service, round-robin, and the
//! shared secret those calls present.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Serialize;

/// The secret the stack's own services share (`--peer-token`, `PEER_TOKEN`)
/// and present on each other's 2PC endpoints as `Authorization: Bearer
/// <token>`. Preparing, committing, rolling back or resolving a branch
/// changes money and stock, so no other process on the services' network may
/// do it. Its `Debug` form hides it, so a logged configuration does not leak
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerToken(String);

impl std::fmt::Debug for PeerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerToken(..)")
    }
}

impl std::str::FromStr for PeerToken {
    type Err = String;

    /// At least 16 visible ASCII characters: short enough to pass in an
    /// environment variable, long enough not to be guessed.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.len() < 16 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "a peer token is at least 16 visible ASCII characters (for example `openssl rand -hex 32`)".to_owned()
            );
        }
        Ok(PeerToken(raw.to_owned()))
    }
}

impl PeerToken {
    /// A fresh random token (256 bits, hex): what a supervisor that starts
    /// every service of a stack hands each of them.
    pub fn random() -> Self {
        PeerToken(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
    }

    /// The token as configured, for handing it to a service's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value presents this token. The
    /// comparison takes the same time wherever the first difference is, so
    /// the answer's timing does not reveal a prefix.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(|h| h.strip_prefix(b"Bearer ")) else { return false };
        let expected = self.0.as_bytes();
        presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn header(&self) -> anyhow::Result<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).context("peer token as a header")?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// A pool of replicas of one service.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    urls: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

/// A status code and body from a peer.
#[derive(Debug)]
pub struct PeerReply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl PeerClient {
    /// A client for `urls`, each request bounded by `timeout` and presenting
    /// `token`.
    pub fn new(urls: Vec<String>, timeout: Duration, token: &PeerToken) -> anyhow::Result<Self> {
        anyhow::ensure!(!urls.is_empty(), "no peer URLs given");
        let urls = urls.into_iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        let headers = HeaderMap::from_iter([(AUTHORIZATION, token.header()?)]);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()
            .context("building HTTP client")?;
        Ok(PeerClient { http, urls: Arc::new(urls), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// POSTs `body` (or nothing) to `path`. A replica that refuses the
    /// connection did not see the request, so the next one is tried; any other
    /// failure is returned, since the request may have been processed.
    pub async fn post<B: Serialize>(&self, path: &str, body: Option<&B>) -> anyhow::Result<PeerReply> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.urls.len() {
            let url = format!("{}{path}", self.urls[(start + i) % self.urls.len()]);
            let mut req = self.http.post(&url);
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.bytes().await.with_context(|| format!("reading reply of {url}"))?.to_vec();
                    return Ok(PeerReply { status, body });
                }
                Err(err) if err.is_connect() => {
                    last = Some(anyhow::Error::new(err).context(format!("connecting to {url}")))
                }
                Err(err) => return Err(anyhow::Error::new(err).context(format!("calling {url}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no replica reachable")))
    }
}

#[cfg(test)]
mod tests {
    use super::PeerToken;

    #[test]
    fn a_token_accepts_only_itself_as_a_bearer() {
        let token: PeerToken = "0123456789abcdef0123".parse().unwrap();
        assert!(token.accepts(Some(b"Bearer 0123456789abcdef0123")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcdef012")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcdef0124")));
        assert!(!token.accepts(Some(b"0123456789abcdef0123")));
        assert!(!token.accepts(None));
        assert_eq!(format!("{token:?}"), "PeerToken(..)");
    }

    #[test]
    fn short_or_invisible_tokens_are_refused() {
        assert!("short".parse::<PeerToken>().is_err());
        assert!("0123456789 abcdef0123".parse::<PeerToken>().is_err());
    }
}
