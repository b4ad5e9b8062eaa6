//! The order service's view of its peers: item prices from the stock service
//! (for `addItem`) and whether a user exists, from the payment service (for
//! `create`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use service_common::error::{ApiError, ApiResult};
use service_common::params::Id;

/// The stock and the payment replicas, as the public API's readers.
#[derive(Debug, Clone)]
pub struct Peers {
    stock: Lookup,
    payment: Lookup,
}

#[derive(Deserialize)]
struct PriceReply {
    price: i64,
}

#[derive(Deserialize)]
struct UserReply {}

impl Peers {
    /// Clients for the replicas at `stock` and `payment`, each call bounded
    /// by `timeout`.
    pub fn new(stock: Vec<String>, payment: Vec<String>, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build().context("building HTTP client")?;
        Ok(Peers { stock: Lookup::new("stock", stock, http.clone())?, payment: Lookup::new("payment", payment, http)? })
    }

    /// The price of `item_id`, or `None` if the stock service does not know it.
    pub async fn price(&self, item_id: &Id) -> ApiResult<Option<i64>> {
        Ok(self.stock.find::<PriceReply>(&format!("/stock/find/{item_id}")).await?.map(|reply| reply.price))
    }

    /// Whether the payment service knows `user_id`.
    pub async fn user_exists(&self, user_id: &Id) -> ApiResult<bool> {
        Ok(self.payment.find::<UserReply>(&format!("/payment/find_user/{user_id}")).await?.is_some())
    }
}

/// GETs on one service's replicas, round-robin, trying the next replica when
/// one does not answer (so a killed replica does not fail the caller).
#[derive(Debug, Clone)]
struct Lookup {
    service: &'static str,
    http: reqwest::Client,
    urls: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

impl Lookup {
    fn new(service: &'static str, urls: Vec<String>, http: reqwest::Client) -> anyhow::Result<Self> {
        anyhow::ensure!(!urls.is_empty(), "at least one {service} URL is needed");
        let urls = urls.into_iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        Ok(Lookup { service, http, urls: Arc::new(urls), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The reply to `GET path`, or `None` when the service answers 400 (its
    /// answer for an unknown id); 503 when no replica answers otherwise.
    async fn find<T: DeserializeOwned>(&self, path: &str) -> ApiResult<Option<T>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..self.urls.len() {
            let base = &self.urls[(start + i) % self.urls.len()];
            match self.http.get(format!("{base}{path}")).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let reply = resp.json().await.with_context(|| format!("decoding {} reply", self.service))?;
                    return Ok(Some(reply));
                }
                Ok(resp) if resp.status() == reqwest::StatusCode::BAD_REQUEST => return Ok(None),
                Ok(resp) => {
                    last_err = Some(anyhow::anyhow!("{} replica {base} answered {}", self.service, resp.status()))
                }
                Err(err) => {
                    last_err = Some(anyhow::Error::new(err).context(format!("calling {} replica {base}", self.service)))
                }
            }
        }
        Err(ApiError::Unavailable(last_err.unwrap_or_else(|| anyhow::anyhow!("no {} replica", self.service))))
    }
}
