//! The outbox relay against a broker. After a fatal producer error: an
//! idempotent producer whose sequence numbers no longer match the broker's
//! refuses every later message; the relay must notice, create a new producer
//! and publish every row all the same. And its two ways of finding rows: rows
//! handed over in memory go out at once, a row nobody handed over waits for
//! the hand-over grace or the next relay's start-up claim.
//!
//! A real broker cannot be made to desynchronise on demand, so the broker here
//! is librdkafka's mock cluster, told to answer the first produce request with
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` (fatal for the head-of-line request). The
//! outbox is a real PostgreSQL database (`SAGA2PC_TEST_PG_URL`, started by
//! `harness/scripts/test.sh`).

#![allow(clippy::unwrap_used)] // a failed set-up should panic loudly

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol_core::wait::{self, Probe};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use saga::messages::{Body, Envelope, REPLIES, Step};
use saga::relay::{Outbox, Relay};
use saga::schema::Schema;
use saga::{KafkaSettings, Metrics, Profile, RelaySettings};
use sqlx::PgPool;
use tokio::sync::watch;

mod common;
use common::fresh_pool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_gets_a_new_producer_and_every_row_is_published() {
    let (pool, mock) = outbox_and_broker().await;
    mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);

    let msgs: Vec<Envelope> = ["1", "2", "3"]
        .into_iter()
        .map(|order| Envelope::new(uuid::Uuid::new_v4(), order, Step::ReserveStock, Body::Done))
        .collect();
    let sent: BTreeSet<_> = msgs.iter().map(|m| m.message_id).collect();
    let mut conn = pool.acquire().await.unwrap();
    saga::outbox::enqueue(&mut conn, &msgs).await.unwrap();
    drop(conn);

    let metrics = Arc::new(Metrics::default());
    let (_outbox, stop, task) = start_relay(&pool, &mock, Duration::ZERO, &metrics);

    wait_unsent(&pool, 0, &metrics).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(metrics.producers_renewed.load(Ordering::Relaxed) >= 1, "{:?}", counters(&metrics));
    assert!(metrics.relay_errors.load(Ordering::Relaxed) >= 1, "{:?}", counters(&metrics));

    // Every row reached the topic (at least once: the inboxes take care of
    // a copy the failed producer got through).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "relay-test-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[REPLIES]).unwrap();
    let mut received = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    wait::until_blocking("every sent message on the topic", deadline, Duration::ZERO, || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            received.insert(Envelope::decode(m.payload().unwrap()).unwrap().message_id);
        }
        Ok(if sent.is_subset(&received) {
            Probe::Ready(())
        } else {
            Probe::NotYet(format!("received {} of {}", received.intersection(&sent).count(), sent.len()))
        })
    })
    .unwrap();
}

fn counters(metrics: &Metrics) -> (u64, u64, u64) {
    (
        metrics.published.load(Ordering::Relaxed),
        metrics.relay_errors.load(Ordering::Relaxed),
        metrics.producers_renewed.load(Ordering::Relaxed),
    )
}

/// A fresh participant database and a one-broker mock cluster with the
/// replies topic.
async fn outbox_and_broker() -> (PgPool, MockCluster<'static, DefaultProducerContext>) {
    let pool = fresh_pool("relay").await;
    saga::schema::install(&pool, Schema::Participant).await.unwrap();
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(REPLIES, 1, 1).unwrap();
    (pool, mock)
}

/// A relay over `pool`'s outbox publishing to `mock` (polling every 50 ms,
/// leaving rows younger than `handover_grace`), running until told to stop.
fn start_relay(
    pool: &PgPool,
    mock: &MockCluster<'static, DefaultProducerContext>,
    handover_grace: Duration,
    metrics: &Arc<Metrics>,
) -> (Outbox, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let settings = KafkaSettings {
        bootstrap: mock.bootstrap_servers(),
        profile: Profile::default(),
        group: "relay-test".into(),
        instance: None,
        extra: Default::default(),
    };
    let timing = RelaySettings {
        poll_interval: Duration::from_millis(50),
        handover_grace,
        cleanup_every: Duration::MAX,
        faults: Default::default(),
    };
    let (outbox, handed) = Outbox::channel();
    let relay = Relay::new(pool.clone(), settings.producer(), handed, timing, Arc::clone(metrics)).unwrap();
    let (stop, stopped) = watch::channel(false);
    (outbox, stop, tokio::spawn(relay.run(stopped)))
}

/// Waits until the outbox holds exactly `n` unsent rows.
async fn wait_unsent(pool: &PgPool, n: i64, metrics: &Metrics) {
    let what = format!("{n} unsent rows");
    let deadline = Instant::now() + Duration::from_secs(30);
    wait::until_deadline(&what, deadline, Duration::from_millis(20), || async {
        Ok(match saga::outbox::count_unsent(pool).await? {
            unsent if unsent == n => Probe::Ready(()),
            unsent => Probe::NotYet(format!("{unsent} unsent; relay counters {:?}", counters(metrics))),
        })
    })
    .await
    .unwrap();
}

/// Rows handed over after their commit are published although the poll may
/// not touch them yet (a grace of an hour); a committed row nobody handed
/// over (its process died before it could) stays for the poll, and the next
/// relay's start-up claim, which takes every row, publishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_over_rows_go_out_at_once_and_a_lost_hand_over_is_claimed_at_start_up() {
    let (pool, mock) = outbox_and_broker().await;
    let metrics = Arc::new(Metrics::default());
    let grace = Duration::from_secs(3600);
    let (outbox, stop, task) = start_relay(&pool, &mock, grace, &metrics);

    let envelope = |order: &str| Envelope::new(uuid::Uuid::new_v4(), order, Step::ReserveStock, Body::Done);
    // A first hand-over, published only after the relay's start-up claim (it
    // claims first, then waits for rows): after it, no claim takes young rows.
    let mut conn = pool.acquire().await.unwrap();
    outbox.committed(saga::outbox::enqueue(&mut conn, &[envelope("0")]).await.unwrap());
    drop(conn);
    wait_unsent(&pool, 0, &metrics).await;

    let mut tx = pool.begin().await.unwrap();
    let rows = saga::outbox::enqueue(&mut tx, &[envelope("1"), envelope("2")]).await.unwrap();
    let lost = saga::outbox::enqueue(&mut tx, &[envelope("3")]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].id < rows[1].id && rows[1].id < lost[0].id, "rows come back in insert order");
    outbox.committed(rows);
    wait_unsent(&pool, 1, &metrics).await;
    // Several polls later the row nobody handed over is still there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(saga::outbox::count_unsent(&pool).await.unwrap(), 1, "a poll took a row inside the grace");
    // Three rows (counted once each, though the start-up claim may have sent
    // the first one too).
    assert_eq!(metrics.published.load(Ordering::Relaxed), 3, "{:?}", counters(&metrics));
    stop.send(true).unwrap();
    task.await.unwrap();

    let (_outbox, stop, task) = start_relay(&pool, &mock, grace, &metrics);
    wait_unsent(&pool, 0, &metrics).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(metrics.published.load(Ordering::Relaxed), 4, "{:?}", counters(&metrics));
}
