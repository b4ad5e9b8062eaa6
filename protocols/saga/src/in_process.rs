//! The saga's messages delivered inside one process: the outbox rows the
//! handlers hand over ([`Outbox::committed`]) go straight to the handler of
//! their topic, in place of the relay, Kafka and the consumers.
//!
//! The harness's raw ceiling runs the protocol's own orchestrator and
//! participant handlers over this [`Bus`], so its yardstick is the saga's
//! database work with only the broker taken out. Each handed-over row is
//! delivered once, in its own task, and retried like a consumer retries
//! (a transient failure again after a back-off; a deterministic one
//! ([`crate::consumer::is_deterministic`]) is logged and dropped, where a
//! consumer would dead-letter it). Nothing publishes or deletes the rows,
//! and nothing polls for rows a crash left behind: there is no crash here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protocol_core::Backoff;

use crate::consumer::{Handler, is_deterministic};
use crate::messages::Envelope;
use crate::relay::{Handed, Outbox};

/// Routes handed-over outbox rows to the handler of their topic.
#[derive(Debug)]
pub struct Bus {
    outbox: Outbox,
    handed: Handed,
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Bus {
    /// A bus with no routes yet, and the [`Outbox`] every handler on it
    /// hands its committed rows to.
    pub fn new() -> Self {
        let (outbox, handed) = Outbox::channel();
        Bus { outbox, handed, handlers: HashMap::new() }
    }

    /// The hand-over to give the handlers.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Delivers messages of `topic` to `handler`.
    pub fn route(&mut self, topic: &str, handler: Arc<dyn Handler>) {
        self.handlers.insert(topic.to_owned(), handler);
    }

    /// Delivers every handed-over row until the task running this is
    /// aborted (the handlers hold outboxes, so the hand-over never closes
    /// while they live); the deliveries under way are aborted with it, so a
    /// delivery retrying against closed pools does not outlive the bus. A row
    /// of a topic without a route is a wiring mistake: it is logged and
    /// dropped.
    pub async fn run(self) {
        let Bus { outbox, mut handed, handlers } = self;
        drop(outbox);
        let mut deliveries = tokio::task::JoinSet::new();
        loop {
            let rows = tokio::select! {
                rows = handed.recv() => match rows {
                    Some(rows) => rows,
                    None => break,
                },
                // Reap finished deliveries as they end.
                Some(_) = deliveries.join_next() => continue,
            };
            for row in rows {
                let Some(handler) = handlers.get(&row.topic).cloned() else {
                    tracing::error!(topic = %row.topic, "no handler for a saga topic; message dropped");
                    continue;
                };
                match Envelope::decode(&row.payload) {
                    Ok(msg) => drop(deliveries.spawn(deliver(handler, msg))),
                    Err(err) => tracing::error!(topic = %row.topic, error = %err, "undecodable saga message dropped"),
                }
            }
        }
        while deliveries.join_next().await.is_some() {}
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

/// Handles `msg` until it succeeds or fails deterministically.
async fn deliver(handler: Arc<dyn Handler>, msg: Envelope) {
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let Err(err) = handler.handle(msg.clone()).await else { return };
        if is_deterministic(&err) {
            tracing::error!(saga = %msg.saga_id, error = format!("{err:#}"), "saga message failed deterministically");
            return;
        }
        tokio::time::sleep(backoff.advance()).await;
    }
}
