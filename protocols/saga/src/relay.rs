//! The outbox relay: publishes outbox rows with the idempotent producer and
//! deletes them once Kafka acknowledged them.
//!
//! Rows reach the relay two ways. A handler that committed outbox rows hands
//! them over in memory ([`Outbox::committed`]), and the relay publishes them
//! at once, without reading them back: that keeps a claim round trip off
//! every saga step. Every poll interval (and at start-up) the relay also
//! claims unsent rows with `FOR UPDATE SKIP LOCKED`: rows a crashed process
//! committed and never published, rows whose publication failed, rows of
//! another replica that is gone. The poll leaves rows younger than the
//! hand-over grace alone, since the relay they were handed to is publishing
//! them; at start-up it takes every row, its predecessor's included.
//!
//! A crash between the acknowledgement and the delete publishes the rows
//! again after restart, and a poll can meet a row a live relay is publishing
//! after a stall longer than the grace: delivery is at least once, and the
//! consumers' inboxes make it take effect once.

use std::sync::Arc;
use std::time::Duration;

use protocol_core::crashpoint;
use protocol_core::spans::{self, Phase};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::kafka::ClientLog;
use crate::metrics::Metrics;
use crate::outbox::OutboxRow;

/// Kafka header holding when the relay produced the message (microseconds
/// since the epoch, decimal), where its Kafka hop starts (`protocol_core::spans`).
pub const PRODUCED_HEADER: &str = "produced-us";

/// Rows published per round trip.
const BATCH: usize = 500;

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
    /// How often to claim unsent rows nobody handed over (rows left by a
    /// crashed replica, rows whose publication failed).
    pub poll_interval: Duration,
    /// Rows younger than this are left to the relay they were handed to.
    pub handover_grace: Duration,
    /// How often inbox rows and step effects past their retention are deleted.
    pub cleanup_every: Duration,
    /// Injected faults.
    pub faults: RelayFaults,
}

/// Default [`RelaySettings::handover_grace`]: far above a publication's
/// acknowledgement (milliseconds), so a live relay's rows are claimed by a
/// poll only when its broker stalls, and short enough that a row whose
/// hand-over was lost (or whose publication failed) goes out about a second
/// later.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(1);

/// Hand-overs the relay can fall behind by (each one transaction's rows)
/// before more are dropped: a broker outage must not grow memory without
/// bound, and a dropped hand-over costs only the grace (the rows are in the
/// table).
const HANDOVER_QUEUE: usize = 4096;

/// The relay's end of an [`Outbox`].
pub type Handed = mpsc::Receiver<Vec<OutboxRow>>;

/// The handlers' side of the relay: rows whose transaction committed.
#[derive(Debug, Clone)]
pub struct Outbox(mpsc::Sender<Vec<OutboxRow>>);

impl Outbox {
    /// An outbox hand-over and the receiver its [`Relay`] takes.
    pub fn channel() -> (Outbox, Handed) {
        let (tx, rx) = mpsc::channel(HANDOVER_QUEUE);
        (Outbox(tx), rx)
    }

    /// Hands `rows` to the relay; call only after their transaction
    /// committed. Rows that cannot be handed over (the relay far behind or
    /// gone) stay in the table for a claim: this relay's poll after the
    /// grace, another replica's, or the next relay's start-up claim.
    pub fn committed(&self, rows: Vec<OutboxRow>) {
        if !rows.is_empty() {
            let _ = self.0.try_send(rows);
        }
    }
}

/// Publishes one database's outbox.
pub struct Relay {
    pool: PgPool,
    config: ClientConfig,
    producer: FutureProducer<ClientLog>,
    handed: Handed,
    settings: RelaySettings,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("settings", &self.settings).finish()
    }
}

/// Which unsent rows a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Every one: at start-up, for the rows of a process that died before
    /// publishing them (rows handed over meanwhile may go out twice).
    All,
    /// Those older than the hand-over grace.
    Stale,
}

/// A producer from `config` whose context can bootstrap it again.
fn new_producer(config: &ClientConfig) -> rdkafka::error::KafkaResult<FutureProducer<ClientLog>> {
    let log = ClientLog::for_config(config);
    let rescue = log.rescue();
    let producer: FutureProducer<ClientLog> = config.create_with_context(log)?;
    rescue.attach(producer.client());
    Ok(producer)
}

impl Relay {
    /// A relay over `pool`'s outbox, publishing with a producer made from
    /// `config` the rows handed over on `handed` and those it claims.
    pub fn new(
        pool: PgPool,
        config: ClientConfig,
        handed: Handed,
        settings: RelaySettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let producer = new_producer(&config)?;
        Ok(Relay { pool, config, producer, handed, settings, metrics })
    }

    /// An idempotent producer that hit a fatal error (for example a sequence
    /// gap after the broker lost its state) refuses every later message; only
    /// a new producer, with a new producer id, can go on.
    fn renew_producer_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else { return };
        tracing::warn!(?code, %reason, "Kafka producer hit a fatal error; creating a new one");
        match new_producer(&self.config) {
            Ok(producer) => {
                self.producer = producer;
                Metrics::incr(&self.metrics.producers_renewed);
            }
            Err(err) => tracing::error!(error = %err, "could not create a new Kafka producer"),
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut last_cleanup = Instant::now();
        // Consecutive failed rounds; logged at the 1st, 2nd, 4th, 8th, ... so a
        // database or broker outage does not flood the log.
        let mut failures: u32 = 0;
        let mut claim = Claim::All;
        let mut next_poll = Instant::now();
        let mut open = true;
        let mut handed: Vec<OutboxRow> = Vec::new();
        loop {
            if !handed.is_empty() {
                // Whatever else was handed over meanwhile goes in the same batch.
                while handed.len() < BATCH {
                    match self.handed.try_recv() {
                        Ok(rows) => handed.extend(rows),
                        Err(_) => break,
                    }
                }
                // Rows that failed stay in the table for a claim.
                let result = self.publish(std::mem::take(&mut handed)).await.map(drop);
                self.count_round(result, &mut failures);
            }
            // Due when the hand-overs are drained (after a broker stall the
            // rows still waiting in the channel are older than the grace, and a
            // claim would send them twice), and at the latest a few intervals
            // late, so a steady stream of hand-overs cannot keep it from running.
            let now = Instant::now();
            if now >= next_poll && (self.handed.is_empty() || now >= next_poll + 4 * self.settings.poll_interval) {
                let result = self.claim_all(claim).await;
                if result.is_ok() {
                    claim = Claim::Stale;
                }
                self.count_round(result, &mut failures);
                next_poll = Instant::now() + self.settings.poll_interval;
            }
            if last_cleanup.elapsed() > self.settings.cleanup_every {
                last_cleanup = Instant::now();
                if let Err(err) = self.cleanup().await {
                    tracing::warn!(error = %err, "outbox cleanup failed");
                }
            }
            // Handed-over rows before a poll: rows still waiting in the channel
            // after a broker stall would otherwise be claimed and sent twice.
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                rows = self.handed.recv(), if open => match rows {
                    Some(rows) => handed = rows,
                    None => open = false,
                },
                () = tokio::time::sleep_until(next_poll) => {}
            }
        }
    }

    /// Counts a round's outcome; a failure is logged (at the 1st, 2nd, 4th,
    /// 8th, ... in a row) and renews a producer that hit a fatal error.
    fn count_round(&mut self, result: anyhow::Result<()>, failures: &mut u32) {
        match result {
            Ok(()) => *failures = 0,
            Err(err) => {
                *failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        failures = *failures,
                        "outbox relay round failed; retrying"
                    );
                }
                Metrics::incr(&self.metrics.relay_errors);
                self.renew_producer_if_fatal();
            }
        }
    }

    /// Claims and publishes unsent rows until a claim comes back short.
    async fn claim_all(&self, claim: Claim) -> anyhow::Result<()> {
        while self.claim_batch(claim).await? == BATCH {}
        Ok(())
    }

    /// Claims up to one batch of unsent rows and publishes it; returns how
    /// many rows it published.
    async fn claim_batch(&self, claim: Claim) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let grace = match claim {
            Claim::All => 0.0,
            Claim::Stale => self.settings.handover_grace.as_secs_f64(),
        };
        let rows: Vec<(i64, String, String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT id, topic, msg_key, payload, (extract(epoch FROM created_at) * 1000000)::bigint
             FROM saga_outbox WHERE sent_at IS NULL AND created_at < now() - make_interval(secs => $2)
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH as i64)
        .bind(grace)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let rows: Vec<OutboxRow> = rows
            .into_iter()
            .map(|(id, topic, key, payload, created_us)| OutboxRow {
                id,
                topic,
                key,
                payload,
                created_us: u64::try_from(created_us).unwrap_or(0),
            })
            .collect();
        self.send(&rows).await?;
        self.delete(&mut *tx, &rows).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Publishes handed-over `rows` and deletes them. No connection is held
    /// while Kafka acknowledges (a broker outage must not hold one).
    async fn publish(&self, rows: Vec<OutboxRow>) -> anyhow::Result<usize> {
        self.send(&rows).await?;
        self.delete(&self.pool, &rows).await?;
        Ok(rows.len())
    }

    /// Publishes `rows` and waits for every acknowledgement.
    async fn send(&self, rows: &[OutboxRow]) -> anyhow::Result<()> {
        if !self.settings.faults.delay.is_zero() {
            tokio::time::sleep(self.settings.faults.delay).await;
        }
        let copies = if self.settings.faults.duplicate { 2 } else { 1 };
        let produced_us = spans::now_us();
        if spans::enabled() {
            for row in rows {
                spans::record(&row.key, Phase::Outbox, row.created_us.min(produced_us), produced_us);
            }
        }
        let stamp = spans::enabled().then(|| produced_us.to_string());
        let deliveries = rows.iter().flat_map(|row| {
            let stamp = stamp.as_deref();
            (0..copies).map(move |_| {
                let mut record = FutureRecord::to(&row.topic).key(&row.key).payload(&row.payload);
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
        crashpoint::hit(crashpoint::SAGA_AFTER_PUBLISH);
        Ok(())
    }

    /// Deletes published `rows` through `db` (the claim's transaction, or
    /// the pool).
    async fn delete<'e>(&self, db: impl sqlx::PgExecutor<'e>, rows: &[OutboxRow]) -> anyhow::Result<()> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // Deleted rather than marked sent: one write instead of an update now
        // and a delete later, and no dead versions piling up under the
        // unsent-rows index the next claim scans.
        let deleted = sqlx::query("DELETE FROM saga_outbox WHERE id = ANY($1)").bind(&ids).execute(db).await?;
        // Rows another path had published and deleted already are not counted again.
        Metrics::add(&self.metrics.published, deleted.rows_affected());
        Ok(())
    }

    /// Deletes inbox rows and step effects after
    /// [`crate::inbox::DEDUP_RETENTION`], and outbox rows that a build which
    /// kept sent rows marked sent.
    async fn cleanup(&self) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM saga_outbox WHERE sent_at IS NOT NULL").execute(&self.pool).await?;
        crate::inbox::forget_old(&self.pool, crate::inbox::DEDUP_RETENTION).await?;
        Ok(())
    }
}

/// A background task's future.
pub type RelayFuture = futures::future::BoxFuture<'static, ()>;
