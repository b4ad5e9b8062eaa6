//! The item price cache in Redis.
//!
//! `addItem` needs an item's price, which the stock service owns. Prices change
//! only through stock's `batch_init`, which overwrites items; after committing
//! it bumps a cache epoch and then removes the affected keys. A price read from
//! the stock service is cached only if the epoch is still the one seen before
//! that read, so an `addItem` that read a price just before a `batch_init`
//! committed cannot write the old price back after the invalidation (and one
//! written just before it is removed by it). Redis is an optimisation only: every
//! error or slow answer is logged and treated as a miss, so a dead Redis slows
//! `addItem` down but never fails it.

use std::time::Duration;

use std::sync::Arc;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// How long a cached price lives, bounding staleness if an invalidation is lost.
const TTL_SECS: u64 = 300;
/// A cache answer slower than this is not worth waiting for.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Keys removed per round trip when invalidating a batch.
const INVALIDATE_CHUNK: usize = 10_000;

/// A handle to the price cache; cheap to clone.
///
/// The connection is made on first use, not at start-up, so a service starts
/// (and restarts) while Redis is down; once made, it reconnects by itself.
#[derive(Clone)]
pub struct PriceCache {
    client: Option<redis::Client>,
    conn: Arc<OnceCell<ConnectionManager>>,
}

impl std::fmt::Debug for PriceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriceCache").field("enabled", &self.client.is_some()).finish()
    }
}

fn key(item_id: &str) -> String {
    format!("price:{item_id}")
}

/// Bumped by every invalidation.
const EPOCH_KEY: &str = "price-epoch";

/// Sets `KEYS[2]` to `ARGV[2]` (expiring after `ARGV[3]` s) only while the
/// epoch `KEYS[1]` still reads `ARGV[1]`, atomically.
const PUT_IF_EPOCH: &str = r"
if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0";

impl PriceCache {
    /// A cache on the Redis at `url` (checked for syntax only); `None` disables it.
    pub fn new(url: Option<&str>) -> anyhow::Result<Self> {
        let client = url.map(redis::Client::open).transpose()?;
        Ok(PriceCache { client, conn: Arc::new(OnceCell::new()) })
    }

    /// A cache that always misses.
    pub fn disabled() -> Self {
        PriceCache { client: None, conn: Arc::new(OnceCell::new()) }
    }

    /// The shared connection, made on first use; `None` if disabled or Redis
    /// cannot be reached right now (the next call tries again).
    async fn connection(&self) -> Option<ConnectionManager> {
        let client = self.client.as_ref()?;
        let init = self.conn.get_or_try_init(|| async {
            match tokio::time::timeout(OP_TIMEOUT * 4, ConnectionManager::new(client.clone())).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        });
        match init.await {
            Ok(conn) => Some(conn.clone()),
            Err(err) => {
                tracing::warn!(error = %err, "price cache unreachable");
                None
            }
        }
    }

    /// The cached price of `item_id`, if any.
    pub async fn get(&self, item_id: &str) -> Option<i64> {
        let mut conn = self.connection().await?;
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

    /// The current invalidation epoch, to read before asking the stock service
    /// for a price that [`PriceCache::put`] will cache; `None` if unknown.
    pub async fn epoch(&self) -> Option<i64> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(OP_TIMEOUT, conn.get::<_, Option<i64>>(EPOCH_KEY)).await {
            Ok(Ok(epoch)) => Some(epoch.unwrap_or(0)),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "price cache read failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Remembers the price of `item_id`, read after [`PriceCache::epoch`]
    /// answered `epoch`, unless an invalidation happened since.
    pub async fn put(&self, item_id: &str, price: i64, epoch: i64) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let script = redis::Script::new(PUT_IF_EPOCH);
        let mut call = script.key(EPOCH_KEY);
        call.key(key(item_id)).arg(epoch).arg(price).arg(TTL_SECS);
        match tokio::time::timeout(OP_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "price cache write failed"),
            Err(_) => tracing::warn!("price cache write timed out"),
        }
    }

    /// Forgets the prices of `item_ids` (after they were overwritten).
    pub async fn invalidate<I>(&self, item_ids: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = String>,
    {
        if self.client.is_none() {
            return Ok(());
        }
        let mut conn = self.connection().await.ok_or_else(|| anyhow::anyhow!("price cache unreachable"))?;
        // Bounded like every other cache operation: a stalled Redis must not
        // hold back the batch_init reply (the TTL bounds staleness then).
        let bounded = async {
            conn.incr::<_, _, ()>(EPOCH_KEY, 1).await?;
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
            anyhow::Ok(())
        };
        tokio::time::timeout(OP_TIMEOUT * 8, bounded).await.map_err(|_| anyhow::anyhow!("price cache timed out"))??;
        Ok(())
    }
}
