//! The SAGA's broker, bare: a produce-to-consume round trip and a throughput
//! run, with the services' own client settings ([`saga::KafkaSettings`]) and
//! a message like theirs, on a topic of its own with as many partitions and
//! copies as the protocol's. No database, no outbox, no service.

use std::time::{Duration, Instant};

use anyhow::Context;
use protocol_core::{LineItem, Work};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use saga::messages::{Body, Envelope, Step};
use serde::Serialize;
use uuid::Uuid;

/// Where the broker is and how the services talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of every node of the cluster, comma-separated.
    pub bootstrap: String,
    /// How the protocol topics are replicated: a write to three copies costs
    /// more than to one, and the yardstick pays what the protocol pays.
    pub replication: crate::stack::kafka::Replication,
    /// The services' client settings profile.
    pub profile: saga::Profile,
    /// The services' extra client settings.
    pub client_properties: saga::kafka::ClientProperties,
    /// Partitions of each protocol topic.
    pub partitions: i32,
}

/// What the bare broker did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Bare {
    /// Median time from producing one message to consuming it, alone.
    pub round_trip_ms: f64,
    /// Messages produced and consumed per second, many in flight.
    pub messages_per_s: f64,
}

/// Sequential round trips timed.
const ROUND_TRIPS: usize = 200;
/// Messages of the throughput run.
const MESSAGES: usize = 20_000;

/// Measures the bare broker of `target`.
pub async fn measure(target: &Target) -> anyhow::Result<Bare> {
    let topic = format!("saga2pc-ceiling-{}", Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &target.bootstrap).set("log_level", "3").create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    admin
        // Its files go at once when it is deleted, not during a later load.
        .create_topics(
            &[NewTopic::new(&topic, target.partitions, TopicReplication::Fixed(target.replication.factor))
                .set("min.insync.replicas", &target.replication.min_insync.to_string())
                .set("file.delete.delay.ms", "0")],
            &options,
        )
        .await?
        .into_iter()
        .next()
        .context("no answer creating the topic")?
        .map_err(|(t, code)| anyhow::anyhow!("creating {t}: {code}"))?;
    let outcome = run(target, &topic).await;
    if let Err(err) = admin.delete_topics(&[&topic], &options).await {
        tracing::warn!(error = %err, topic, "could not delete the ceiling's topic");
    }
    outcome
}

async fn run(target: &Target, topic: &str) -> anyhow::Result<Bare> {
    let settings = saga::KafkaSettings {
        bootstrap: target.bootstrap.clone(),
        profile: target.profile,
        group: format!("{topic}-group"),
        instance: None,
        extra: target.client_properties.clone(),
    };
    let producer: FutureProducer = settings.producer().create()?;
    let mut consumer_config = settings.consumer();
    consumer_config.set("log_level", "3");
    let consumer: StreamConsumer = consumer_config.create()?;
    consumer.subscribe(&[topic])?;
    let payload = sample_message().encode();
    let send = |key: String| {
        let (producer, payload) = (&producer, &payload);
        async move {
            producer
                .send(FutureRecord::to(topic).key(&key).payload(payload), Timeout::Never)
                .await
                .map_err(|(err, _)| anyhow::anyhow!("produce failed: {err}"))
        }
    };
    let receive = || async {
        match tokio::time::timeout(crate::timeouts::BARE_BROKER_PATIENCE, consumer.recv()).await {
            Ok(received) => received.map(drop).map_err(anyhow::Error::from),
            Err(_) => anyhow::bail!("no message consumed within {} s", crate::timeouts::BARE_BROKER_PATIENCE.as_secs()),
        }
    };
    // The first message waits for the group to form; it is not timed.
    send("warm-up".to_owned()).await?;
    receive().await?;
    let mut trips = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let started = Instant::now();
        send(i.to_string()).await?;
        receive().await?;
        trips.push(started.elapsed());
    }
    trips.sort_unstable();
    let round_trip_ms = trips[trips.len() / 2].as_secs_f64() * 1000.0;
    let started = Instant::now();
    let produce = futures::future::try_join_all((0..MESSAGES).map(|i| send(i.to_string())));
    let consume = async {
        for _ in 0..MESSAGES {
            receive().await?;
        }
        anyhow::Ok(())
    };
    tokio::try_join!(produce, consume)?;
    let messages_per_s = MESSAGES as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok(Bare { round_trip_ms, messages_per_s })
}

/// A command as the orchestrator sends one: a two-line stock action.
fn sample_message() -> Envelope {
    let items = ["17", "423"].map(|id| LineItem { item_id: id.to_owned(), quantity: 1 }).to_vec();
    let work = Work::Stock { items, as_of_us: Some(1_764_000_000_000_000) };
    Envelope::new(Uuid::new_v4(), "1234", Step::ReserveStock, Body::Action { work })
}
