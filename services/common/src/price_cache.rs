//! The item price cache in Redis.
//!
//! `addItem` needs an item's price, which the stock service owns. Prices change
//! only through stock's `batch_init`, which overwrites items; it invalidates the
//! affected keys, so the order service may serve cached prices without a TTL race
//! beyond the window of that one request. Redis is an optimisation only: every
//! error or slow answer is logged and treated as a miss, so a dead Redis slows
//! `addItem` down but never fails it.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// How long a cached price lives, bounding staleness if an invalidation is lost.
const TTL_SECS: u64 = 300;
/// A cache answer slower than this is not worth waiting for.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Keys removed per round trip when invalidating a batch.
const INVALIDATE_CHUNK: usize = 10_000;

/// A handle to the price cache; cheap to clone.
#[derive(Clone)]
pub struct PriceCache {
    conn: Option<ConnectionManager>,
}

impl std::fmt::Debug for PriceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriceCache")
            .field("enabled", &self.conn.is_some())
            .finish()
    }
}

fn key(item_id: &str) -> String {
    format!("price:{item_id}")
}

impl PriceCache {
    /// Connects to Redis at `url`; `None` disables the cache.
    pub async fn connect(url: Option<&str>) -> anyhow::Result<Self> {
        let conn = match url {
            Some(url) => {
                let client = redis::Client::open(url)?;
                Some(ConnectionManager::new(client).await?)
            }
            None => None,
        };
        Ok(PriceCache { conn })
    }

    /// A cache that always misses.
    pub fn disabled() -> Self {
        PriceCache { conn: None }
    }

    /// The cached price of `item_id`, if any.
    pub async fn get(&self, item_id: &str) -> Option<i64> {
        let mut conn = self.conn.clone()?;
        match tokio::time::timeout(OP_TIMEOUT, conn.get::<_, Option<i64>>(key(item_id))).await {
            Ok(Ok(price)) => price,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "price cache read failed");
                None
            }
            Err(_) => {
                tracing::warn!("price cache read timed out");
                None
            }
        }
    }

    /// Remembers the price of `item_id`.
    pub async fn put(&self, item_id: &str, price: i64) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let op = conn.set_ex::<_, _, ()>(key(item_id), price, TTL_SECS);
        match tokio::time::timeout(OP_TIMEOUT, op).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "price cache write failed"),
            Err(_) => tracing::warn!("price cache write timed out"),
        }
    }

    /// Forgets the prices of `item_ids` (after they were overwritten).
    pub async fn invalidate<I>(&self, item_ids: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = String>,
    {
        let Some(mut conn) = self.conn.clone() else {
            return Ok(());
        };
        let mut chunk = Vec::with_capacity(INVALIDATE_CHUNK);
        for id in item_ids {
            chunk.push(key(&id));
            if chunk.len() == INVALIDATE_CHUNK {
                conn.unlink::<_, ()>(std::mem::take(&mut chunk)).await?;
            }
        }
        if !chunk.is_empty() {
            conn.unlink::<_, ()>(chunk).await?;
        }
        Ok(())
    }
}
