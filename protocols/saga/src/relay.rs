//! The outbox relay: publishes outbox rows with the idempotent producer and
//! deletes them once Kafka acknowledged them.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so every replica of a service
//! can relay its own database's outbox without two publishing the same batch at
//! once. A crash between the acknowledgement and the delete publishes the batch
//! again after restart: delivery is at least once, and the consumers' inboxes
//! make it take effect once.

use std::sync::Arc;
use std::time::Duration;

use protocol_core::crashpoint;
use protocol_core::spans::{self, Phase};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

use crate::kafka::ClientLog;
use crate::metrics::Metrics;

/// Crash point: a batch is published and acknowledged, not yet deleted.
pub const CRASH_AFTER_PUBLISH: &str = "saga.relay.after_publish";

/// Kafka header holding when the relay produced the message (microseconds
/// since the epoch, decimal), where its Kafka hop starts (`protocol_core::spans`).
pub const PRODUCED_HEADER: &str = "produced-us";

/// Rows published per round trip.
const BATCH: i64 = 500;

/// Faults the relay can inject, for the harness's fault schedules and tests.
#[derive(Debug, Clone, Default)]
pub struct RelayFaults {
    /// Publish every message twice.
    pub duplicate: bool,
    /// Hold every batch this long before publishing it.
    pub delay: Duration,
}

/// Timing of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// How often to look for unsent rows when nothing woke the relay (rows
    /// left by a crashed replica, rows whose publication failed).
    pub poll_interval: Duration,
    /// How often inbox rows and step effects past their retention are deleted.
    pub cleanup_every: Duration,
    /// Injected faults.
    pub faults: RelayFaults,
}

/// Publishes one database's outbox.
pub struct Relay {
    pool: PgPool,
    config: ClientConfig,
    producer: FutureProducer<ClientLog>,
    wake: Arc<Notify>,
    settings: RelaySettings,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("settings", &self.settings).finish()
    }
}

impl Relay {
    /// A relay over `pool`'s outbox, publishing with a producer made from
    /// `config`; `wake` is notified by whoever commits rows.
    pub fn new(
        pool: PgPool,
        config: ClientConfig,
        wake: Arc<Notify>,
        settings: RelaySettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let producer = config.create_with_context(ClientLog::default())?;
        Ok(Relay { pool, config, producer, wake, settings, metrics })
    }

    /// An idempotent producer that hit a fatal error (for example a sequence
    /// gap after the broker lost its state) refuses every later message; only
    /// a new producer, with a new producer id, can go on.
    fn renew_producer_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else { return };
        tracing::warn!(?code, %reason, "Kafka producer hit a fatal error; creating a new one");
        match self.config.create_with_context(ClientLog::default()) {
            Ok(producer) => {
                self.producer = producer;
                Metrics::incr(&self.metrics.producers_renewed);
            }
            Err(err) => tracing::error!(error = %err, "could not create a new Kafka producer"),
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut last_cleanup = tokio::time::Instant::now();
        // Consecutive failed rounds; logged at the 1st, 2nd, 4th, 8th, ... so a
        // database or broker outage does not flood the log.
        let mut failures: u32 = 0;
        loop {
            loop {
                match self.publish_batch().await {
                    // A short batch took every row there was: rows committed
                    // since have woken the relay (a stored permit), so asking
                    // again at once would only find nothing.
                    Ok(n) if n < BATCH as usize => {
                        failures = 0;
                        break;
                    }
                    Ok(_) => failures = 0,
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        if failures.is_power_of_two() {
                            tracing::warn!(error = format!("{err:#}"), failures, "outbox relay round failed; retrying");
                        }
                        Metrics::incr(&self.metrics.relay_errors);
                        self.renew_producer_if_fatal();
                        break;
                    }
                }
            }
            if last_cleanup.elapsed() > self.settings.cleanup_every {
                last_cleanup = tokio::time::Instant::now();
                if let Err(err) = self.cleanup().await {
                    tracing::warn!(error = %err, "outbox cleanup failed");
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Publishes up to one batch; returns how many rows it published.
    async fn publish_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT id, topic, msg_key, payload, (extract(epoch FROM created_at) * 1000000)::bigint
             FROM saga_outbox WHERE sent_at IS NULL
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        if !self.settings.faults.delay.is_zero() {
            tokio::time::sleep(self.settings.faults.delay).await;
        }
        let copies = if self.settings.faults.duplicate { 2 } else { 1 };
        let produced_us = spans::now_us();
        if spans::enabled() {
            for (_, _, key, _, created_us) in &rows {
                spans::record(key, Phase::Outbox, u64::try_from(*created_us).unwrap_or(produced_us), produced_us);
            }
        }
        let stamp = spans::enabled().then(|| produced_us.to_string());
        let deliveries = rows.iter().flat_map(|(_, topic, key, payload, _)| {
            let stamp = stamp.as_deref();
            (0..copies).map(move |_| {
                let mut record = FutureRecord::to(topic).key(key).payload(payload);
                if let Some(stamp) = stamp {
                    record =
                        record.headers(OwnedHeaders::new().insert(Header { key: PRODUCED_HEADER, value: Some(stamp) }));
                }
                self.producer.send(record, Timeout::Never)
            })
        });
        for result in futures::future::join_all(deliveries).await {
            if let Err((err, _)) = result {
                anyhow::bail!("publish failed: {err}");
            }
        }
        crashpoint::hit(CRASH_AFTER_PUBLISH);
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        // Deleted rather than marked sent: one write instead of an update now
        // and a delete later, and no dead versions piling up under the
        // unsent-rows index the next claim scans.
        sqlx::query("DELETE FROM saga_outbox WHERE id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        tx.commit().await?;
        Metrics::add(&self.metrics.published, ids.len() as u64);
        Ok(ids.len())
    }

    /// Deletes inbox rows and step effects after
    /// [`crate::store::DEDUP_RETENTION`], and outbox rows that a build which
    /// kept sent rows marked sent.
    async fn cleanup(&self) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM saga_outbox WHERE sent_at IS NOT NULL").execute(&self.pool).await?;
        crate::store::forget_old(&self.pool, crate::store::DEDUP_RETENTION).await?;
        Ok(())
    }
}

/// A background task's future.
pub type RelayFuture = futures::future::BoxFuture<'static, ()>;
