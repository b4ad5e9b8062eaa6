//! HTTP calls to the replicas of another service, round-robin.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

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
    /// A client for `urls`, each request bounded by `timeout`.
    pub fn new(urls: Vec<String>, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(!urls.is_empty(), "no peer URLs given");
        let urls = urls.into_iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        let http = reqwest::Client::builder()
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
