//! The order service's view of the stock service: item prices.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use service_common::error::{ApiError, ApiResult};
use service_common::params::Id;

/// Looks up prices on the stock replicas, round-robin, trying the next replica
/// when one does not answer (so a killed replica does not fail `addItem`).
#[derive(Debug, Clone)]
pub struct StockClient {
    http: reqwest::Client,
    urls: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

#[derive(Deserialize)]
struct FindReply {
    price: i64,
}

impl StockClient {
    /// A client for the replicas at `urls`, each call bounded by `timeout`.
    pub fn new(urls: Vec<String>, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(!urls.is_empty(), "at least one stock URL is needed");
        let urls = urls.into_iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        let http = reqwest::Client::builder().timeout(timeout).build().context("building HTTP client")?;
        Ok(StockClient { http, urls: Arc::new(urls), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The price of `item_id`, or `None` if the stock service does not know it.
    pub async fn price(&self, item_id: &Id) -> ApiResult<Option<i64>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..self.urls.len() {
            let base = &self.urls[(start + i) % self.urls.len()];
            match self.http.get(format!("{base}/stock/find/{item_id}")).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let reply: FindReply = resp.json().await.context("decoding stock reply")?;
                    return Ok(Some(reply.price));
                }
                // The stock service answers 400 for an unknown item.
                Ok(resp) if resp.status() == reqwest::StatusCode::BAD_REQUEST => return Ok(None),
                Ok(resp) => last_err = Some(anyhow::anyhow!("stock replica {base} answered {}", resp.status())),
                Err(err) => last_err = Some(anyhow::Error::new(err).context(format!("calling stock replica {base}"))),
            }
        }
        Err(ApiError::Unavailable(last_err.unwrap_or_else(|| anyhow::anyhow!("no stock replica"))))
    }
}
