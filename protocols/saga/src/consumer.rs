//! The consumer loop shared by the orchestrator and the participants.
//!
//! Messages are handed to a fixed set of workers by key (order id), so one
//! order's messages are handled in partition order while different orders
//! proceed in parallel. A message's offset is stored only after its handler's
//! local transaction committed *and* every earlier offset of its partition is
//! done ([`OffsetTracker`]); auto-commit then commits what was stored. A crash
//! therefore redelivers, never skips, and the handlers' inboxes turn the
//! redelivery into a no-op.
//!
//! A handler error is retried with back-off. Transient errors (a database or
//! broker away, a lock or serialization conflict) are retried for as long as
//! they last. An error that cannot go away by retrying (SQLSTATE classes 22
//! "data exception" and 23 "integrity constraint", except the unique violation
//! of two racing deliveries) is retried [`DEAD_LETTER_AFTER`] times and then
//! moved to the `saga_dead_letters` table, so one poison message cannot stall
//! every saga behind it in its worker and partition. Nothing is skipped
//! silently: the message keeps its payload and error there, the counter
//! `dead_lettered` and the gauge `dead_letters` show it, its saga stays in
//! flight (the harness reports it unsettled), and the orchestrator's
//! recovery re-sends the saga's pending command, which is tried again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use protocol_core::Backoff;
use protocol_core::spans::{self, Phase};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::kafka::{self, ClientLog, KafkaSettings};
use crate::messages::Envelope;
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;

/// Handles one message in one local transaction (inbox claim, effect, outbox
/// rows). An error rolls everything back; the message is retried.
pub trait Handler: Send + Sync + std::fmt::Debug + 'static {
    /// Handles `msg`.
    fn handle(&self, msg: Envelope) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// How many messages are handled at once (each in its own transaction).
pub const DEFAULT_WORKERS: usize = 8;

/// Attempts of a deterministically failing message before it is dead-lettered.
pub const DEAD_LETTER_AFTER: u32 = 5;

/// A handler error that no retry can fix (a record in a state that cannot
/// be: corrupted or written by a newer version). Dead-lettered like a
/// constraint violation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

struct Job {
    topic: String,
    partition: i32,
    offset: i64,
    msg: Envelope,
    /// When it was received (microseconds since the epoch).
    received_us: u64,
}

/// Marks the consumer as having joined its group on the first assignment
/// (possibly empty, when there are more replicas than partitions).
struct GroupContext {
    joined: Arc<AtomicBool>,
    log: ClientLog,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.log.stats_raw(statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "saga consumer assigned");
                self.joined.store(true, Ordering::Release);
            }
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "saga consumer revoked"),
            Rebalance::Error(err) => tracing::warn!(error = %err, "saga consumer rebalance failed"),
        }
    }
}

struct Shared {
    consumer: StreamConsumer<GroupContext>,
    tracker: Mutex<OffsetTracker>,
    handler: Arc<dyn Handler>,
    metrics: Arc<Metrics>,
    dead_letters: sqlx::PgPool,
}

impl Shared {
    fn finished(&self, topic: &str, partition: i32, offset: i64) {
        let Some(position) = lock(&self.tracker).finished(topic, partition, offset) else { return };
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(topic, partition, Offset::Offset(position)).is_ok() {
            // Fails when the partition was revoked meanwhile; its new owner
            // redelivers from the last commit, and the inbox absorbs that.
            if let Err(err) = self.consumer.store_offsets(&tpl) {
                tracing::debug!(topic, partition, position, error = %err, "offset not stored");
            }
        }
    }
}

/// What a consumer loop works with.
#[derive(Debug)]
pub struct ConsumerSetup {
    /// Broker, group and profile.
    pub settings: KafkaSettings,
    /// Topics to subscribe to.
    pub topics: &'static [&'static str],
    /// Handles each message.
    pub handler: Arc<dyn Handler>,
    /// Messages handled at once.
    pub workers: usize,
    /// Shared counters.
    pub metrics: Arc<Metrics>,
    /// Set once the consumer has joined its group.
    pub joined: Arc<AtomicBool>,
    /// The database holding this service's dead-letter table.
    pub dead_letters: sqlx::PgPool,
}

/// How a consumer session ended.
enum Session {
    /// `stop` turned true.
    Stopped,
    /// librdkafka reported a fatal error (for example a static member fenced
    /// after a broker restart): this consumer can never consume again.
    Fatal,
}

/// Consumes until `stop` turns true, replacing the consumer whenever it hits
/// a fatal error (or could not be created).
///
/// The replacement comes quickly (100 ms) because the usual fatal error is a
/// static member fenced after a broker restart, and every saga waits for it.
/// If two live consumers share one identity they fence each other in turn;
/// the wait then doubles up to [`MAX_REJOIN_BACKOFF`], so they take turns
/// without flooding the broker or the log.
pub async fn run(setup: ConsumerSetup, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(MIN_REJOIN_BACKOFF, MAX_REJOIN_BACKOFF);
    loop {
        let started = tokio::time::Instant::now();
        match session(&setup, &mut stop).await {
            Ok(Session::Stopped) => return Ok(()),
            ended => {
                if started.elapsed() > STABLE_SESSION {
                    backoff.reset();
                }
                let wait = backoff.advance();
                match ended {
                    Err(err) => tracing::error!(
                        group = %setup.settings.group, error = format!("{err:#}"), retry_ms = wait.as_millis() as u64,
                        "could not create the Kafka consumer; retrying"
                    ),
                    _ => tracing::warn!(
                        group = %setup.settings.group, rejoin_ms = wait.as_millis() as u64,
                        "Kafka consumer failed fatally; rejoining with a new one"
                    ),
                }
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// First wait before a fatally failed consumer is replaced.
const MIN_REJOIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before a fatally failed consumer is replaced.
pub const MAX_REJOIN_BACKOFF: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the rejoin back-off.
const STABLE_SESSION: Duration = Duration::from_secs(30);

async fn session(setup: &ConsumerSetup, stop: &mut watch::Receiver<bool>) -> anyhow::Result<Session> {
    let ConsumerSetup { settings, topics, handler, workers, metrics, joined, dead_letters } = setup;
    // A new consumer has not joined yet, whatever the one it replaces had.
    joined.store(false, Ordering::Release);
    let config = settings.consumer();
    let context = GroupContext { joined: Arc::clone(joined), log: ClientLog::for_config(&config) };
    let consumer: StreamConsumer<GroupContext> = config.create_with_context(context)?;
    consumer.context().log.rescue().attach(consumer.client());
    consumer.subscribe(topics)?;
    let shared = Arc::new(Shared {
        consumer,
        tracker: Mutex::default(),
        handler: Arc::clone(handler),
        metrics: Arc::clone(metrics),
        dead_letters: dead_letters.clone(),
    });
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..(*workers).max(1) {
        let (tx, rx) = mpsc::channel::<Job>(64);
        senders.push(tx);
        tasks.push(tokio::spawn(worker(Arc::clone(&shared), rx, stop.clone())));
    }
    tracing::info!(group = %settings.group, ?topics, profile = %settings.profile, "saga consumer started");
    let ended = loop {
        let received = tokio::select! {
            _ = stop.changed() => break Session::Stopped,
            received = shared.consumer.recv() => received,
        };
        let m = match received {
            Ok(m) => m,
            Err(err) => {
                // A broker away is logged by the client's context, once.
                if kafka::is_broker_away(&err) {
                    tracing::debug!(error = %err, "Kafka consumer error");
                } else {
                    tracing::warn!(error = %err, "Kafka consumer error");
                }
                if shared.consumer.client().fatal_error().is_some() {
                    break Session::Fatal;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
        let key = m.key().map(<[u8]>::to_vec).unwrap_or_default();
        let decoded = Envelope::decode(m.payload().unwrap_or_default());
        let received_us = spans::now_us();
        let produced_us = produced_at(&m);
        drop(m);
        lock(&shared.tracker).started(&topic, partition, offset);
        match decoded {
            Ok(msg) => {
                if let Some(produced_us) = produced_us {
                    spans::record(&msg.order_id, Phase::Kafka, produced_us, received_us);
                }
                let job = Job { topic, partition, offset, msg, received_us };
                if senders[worker_for(&key, senders.len())].send(job).await.is_err() {
                    break Session::Stopped; // workers are gone: shutting down
                }
            }
            Err(err) => {
                // Nothing can ever handle it; skipping is the only way forward.
                tracing::error!(%topic, partition, offset, error = %err, "skipping undecodable saga message");
                Metrics::incr(&shared.metrics.malformed);
                shared.finished(&topic, partition, offset);
            }
        }
    };
    drop(senders);
    match ended {
        // Queued messages are still handled and their offsets stored, for at
        // most 10 s in all; what is left is redelivered (then recognised by
        // the inbox) after the restart.
        Session::Stopped => {
            let _ = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(tasks)).await;
        }
        // A failed consumer can store no offset, and its replacement waits:
        // the handlers stop where they are (a transaction in progress rolls
        // back) and the new consumer gets their messages again.
        Session::Fatal => tasks.iter().for_each(tokio::task::JoinHandle::abort),
    }
    if let Err(err) = shared.consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %err, "final offset commit skipped");
    }
    Ok(ended)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The worker for `key`: one key always maps to one worker.
fn worker_for(key: &[u8], workers: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % workers as u64) as usize
}

/// When the relay produced `m` ([`crate::relay::PRODUCED_HEADER`]), if it says.
fn produced_at(m: &impl Message) -> Option<u64> {
    if !spans::enabled() {
        return None;
    }
    let headers = m.headers()?;
    let header = headers.iter().find(|h| h.key == crate::relay::PRODUCED_HEADER)?;
    std::str::from_utf8(header.value?).ok()?.parse().ok()
}

async fn worker(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>, stop: watch::Receiver<bool>) {
    while let Some(job) = jobs.recv().await {
        spans::record(&job.msg.order_id, Phase::Queue, job.received_us, spans::now_us());
        if !handle_to_end(&shared, &job, &stop).await {
            return; // not stored: redelivered after restart
        }
        shared.finished(&job.topic, job.partition, job.offset);
    }
}

/// Handles `job` until it succeeds or is dead-lettered (`true`), or until
/// `stop` turns true (`false`). Failures are logged at the 1st, 2nd, 4th, 8th,
/// ... attempt, so an outage does not flood the log.
async fn handle_to_end(shared: &Shared, job: &Job, stop: &watch::Receiver<bool>) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut deterministic = 0;
    for attempt in 1u32.. {
        let err = match shared.handler.handle(job.msg.clone()).await {
            Ok(()) => return true,
            Err(err) => err,
        };
        Metrics::incr(&shared.metrics.retries);
        deterministic = if is_deterministic(&err) { deterministic + 1 } else { 0 };
        if deterministic >= DEAD_LETTER_AFTER {
            match dead_letter(shared, job, &err, attempt).await {
                Ok(()) => return true,
                Err(dl) => tracing::warn!(error = %dl, "could not write a dead letter; retrying the message"),
            }
        } else if attempt.is_power_of_two() {
            tracing::warn!(
                saga = %job.msg.saga_id, step = job.msg.step.as_str(), attempt, error = format!("{err:#}"),
                "saga message handling failed; retrying"
            );
        }
        if *stop.borrow() {
            return false;
        }
        tokio::time::sleep(backoff.advance()).await;
    }
    unreachable!("the attempt counter is unbounded")
}

async fn dead_letter(shared: &Shared, job: &Job, err: &anyhow::Error, attempts: u32) -> sqlx::Result<()> {
    let error = format!("{err:#}");
    let place = (job.topic.as_str(), job.partition, job.offset);
    let first = crate::inbox::dead_letter(&shared.dead_letters, &job.msg, place, &error, attempts).await?;
    Metrics::incr(&shared.metrics.dead_lettered);
    // Recovery re-sends the saga's command every few seconds: one error line
    // for the saga's first dead letter, the rest at debug level.
    if first {
        tracing::error!(
            saga = %job.msg.saga_id, step = job.msg.step.as_str(), message = %job.msg.message_id,
            topic = %job.topic, partition = job.partition, offset = job.offset, attempts, %error,
            "saga message failed deterministically; moved to saga_dead_letters, its saga stays in flight"
        );
    } else {
        tracing::debug!(saga = %job.msg.saga_id, %error, "another dead letter for this saga");
    }
    Ok(())
}

/// Whether retrying `err` can never help: a [`Poison`] record, a column that
/// cannot be decoded, a PostgreSQL data exception (class 22, for example a
/// value out of range) or integrity violation (class 23), except a unique
/// violation (23505), which is how two racing deliveries of one message meet
/// and which the retry resolves.
pub fn is_deterministic(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        if cause.is::<Poison>() {
            return true;
        }
        match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| (code.starts_with("22") || code.starts_with("23")) && code != "23505")
            }
            Some(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => true,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Poison, is_deterministic, worker_for};

    #[test]
    fn only_errors_no_retry_can_fix_are_deterministic() {
        assert!(is_deterministic(&anyhow::Error::from(Poison("applied effect without its work".into()))));
        let wrapped = anyhow::Error::from(Poison("x".into())).context("handling a stock command");
        assert!(is_deterministic(&wrapped));
        assert!(!is_deterministic(&anyhow::Error::from(sqlx::Error::PoolTimedOut)));
        assert!(!is_deterministic(&anyhow::anyhow!("broker transport failure")));
    }

    #[test]
    fn one_key_one_worker() {
        let w = worker_for(b"order-17", 8);
        assert!(w < 8);
        assert_eq!(worker_for(b"order-17", 8), w);
        assert_eq!(worker_for(b"anything", 1), 0);
    }
}
