//! The protocol as the services run it, in this process, over the scratch
//! databases: the order service's [`Checkout`] (the order's row lock, the
//! checks every protocol shares), the 2PC coordinator or the saga
//! orchestrator behind it, and the participants' 2PC runners or saga
//! handlers with the stock and payment services' own resources. Every
//! setting is read from the command lines the stack starts its services with
//! ([`Commands`]), through the services' own parsers, so the protocol's
//! settings cannot drift from the services'. Two things are the replay's own:
//! its pools (a connection per worker and two more, opened before the clock
//! starts, where a service has `--db-pool-size`), and a setting a command line
//! leaves out falls back to the harness's environment, as it does for the
//! services, which inherit it.
//!
//! Only the network is taken out: the coordinator calls the participants'
//! runners directly ([`twopc::transport::InProcess`]), and the saga's messages
//! go from each handler's outbox to the next handler through an in-memory
//! [`Bus`] instead of the relay, Kafka and the consumers. What the protocol
//! does after a reply (2PC's finished mark) runs too, as in the services; the
//! replay does not wait for it.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use order_service::Checkout;
use protocol_core::{CheckoutOutcome, ProtocolKind};
use saga::in_process::Bus;
use service_common::db::side_pool;
use service_common::params::Id;
use service_common::participant::Spec;
use sqlx::PgPool;

use super::scratch::Scratch;
use super::{Commands, Ended};

use crate::timeouts::CEILING_SETTLE;

/// The in-process protocol of one replay.
#[derive(Debug, Clone)]
pub(super) struct Engine {
    checkout: Checkout,
    /// Side pools the protocol opened next to the scratch pools (2PC's phase
    /// two and decision log), closed with the engine.
    side_pools: Vec<PgPool>,
    /// The saga's message bus, stopped with the engine.
    bus: Option<Arc<tokio::task::AbortHandle>>,
}

/// Parses `args` as the command line of `binary`, with the parser `C` of
/// that service.
fn parse<C: Parser>(binary: &str, args: &[String]) -> anyhow::Result<C> {
    C::try_parse_from(std::iter::once(binary).chain(args.iter().map(String::as_str)))
        .with_context(|| format!("reading the {binary} settings for the ceiling"))
}

impl Engine {
    /// The protocol of `commands` over `scratch`, with `connections` opened
    /// in each side pool before the clock starts.
    pub async fn start(scratch: &Scratch, commands: &Commands, connections: usize) -> anyhow::Result<Engine> {
        let order: order_service::Config = parse("order-service", &commands.order)?;
        let stock: stock_service::Config = parse("stock-service", &commands.stock)?;
        let payment: payment_service::Config = parse("payment-service", &commands.payment)?;
        let store = order_service::Store::new(scratch.order.clone());
        let book = Arc::new(store.clone());
        let engine = match order.common.protocol {
            ProtocolKind::TwoPc => {
                let mut side_pools = Vec::new();
                let mut side = |pool: &PgPool, size: u32| {
                    let side = side_pool(pool, size);
                    // Size 0 shares the scratch pool, which is the caller's to close.
                    if size > 0 {
                        side_pools.push(side.clone());
                    }
                    side
                };
                let participant =
                    |spec: Spec, phase_two: PgPool, pool: &PgPool, config: &service_common::participant::Config| {
                        let pools = twopc::participant::Pools { prepare: pool.clone(), phase_two };
                        twopc::ParticipantRunner::new(spec.branch, pools, spec.resource, config.twopc.settings())
                    };
                let participants = twopc::transport::InProcess {
                    stock: participant(
                        stock_service::spec(),
                        side(&scratch.stock, stock.common.db_protocol_pool_size),
                        &scratch.stock,
                        &stock,
                    ),
                    payment: participant(
                        payment_service::spec(),
                        side(&scratch.payment, payment.common.db_protocol_pool_size),
                        &scratch.payment,
                        &payment,
                    ),
                };
                let decisions = side(&scratch.order, order.common.db_protocol_pool_size);
                let coordinator = twopc::Coordinator::new(
                    twopc::InstanceName::new("ceiling")?,
                    decisions,
                    Arc::new(participants),
                    book,
                    order.coordinator_settings(),
                );
                Engine { checkout: Checkout::two_pc(coordinator, store), side_pools, bus: None }
            }
            ProtocolKind::Saga => {
                let mut bus = Bus::new();
                let metrics = Arc::new(saga::Metrics::default());
                let orchestrator = saga::Orchestrator::new(
                    scratch.order.clone(),
                    book,
                    bus.outbox(),
                    order.orchestrator_settings(),
                    Arc::clone(&metrics),
                );
                bus.route(saga::messages::REPLIES, Arc::new(saga::orchestrator::ReplyHandler(orchestrator.clone())));
                for (spec, pool) in
                    [(stock_service::spec(), &scratch.stock), (payment_service::spec(), &scratch.payment)]
                {
                    let handler = saga::participant::ParticipantHandler::new(
                        spec.step,
                        pool.clone(),
                        spec.resource,
                        bus.outbox(),
                        Arc::clone(&metrics),
                    );
                    bus.route(spec.step.command_topic(), Arc::new(handler));
                }
                let bus = tokio::spawn(bus.run()).abort_handle();
                Engine {
                    checkout: Checkout::saga(orchestrator, store),
                    side_pools: Vec::new(),
                    bus: Some(Arc::new(bus)),
                }
            }
        };
        for pool in &engine.side_pools {
            let wanted = connections.min(pool.options().get_max_connections() as usize);
            let held = futures::future::try_join_all((0..wanted).map(|_| pool.acquire())).await?;
            drop(held);
        }
        Ok(engine)
    }

    /// Runs the checkout of `order_id` as the order service does. A checkout
    /// that fails (the service would answer 5xx) did not pay; one the
    /// service would answer 4xx (no such order: the copy is wrong) ends the
    /// replay.
    pub async fn checkout(&self, order_id: &str) -> anyhow::Result<Ended> {
        let id = Id::parse("order_id", order_id)?;
        let outcome = match self.checkout.run(&id, None).await {
            Ok(outcome) => outcome.map_err(|err| err.to_string()),
            Err(err) if err.status().is_server_error() => Err(err.to_string()),
            Err(err) => return Err(anyhow::anyhow!("replaying the checkout of order {order_id}: {err}")),
        };
        Ok(match outcome {
            Ok(CheckoutOutcome::Paid) => Ended::Paid,
            Ok(_) => Ended::NotPaid,
            Err(err) => {
                tracing::debug!(order_id, error = %err, "a replayed checkout failed");
                Ended::NotPaid
            }
        })
    }

    /// Waits (at most [`CEILING_SETTLE`]) until no checkout runs any more, even one
    /// whose replay worker was given up on (a checkout runs in its own task,
    /// as in the service), then stops the bus and closes the side pools (the
    /// scratch pools are the caller's, to close after this).
    pub async fn close(self) {
        let settled = crate::wait::until("the ceiling's checkouts to end", CEILING_SETTLE, || async {
            Ok(match self.checkout.in_flight() {
                0 => crate::wait::Probe::Ready(()),
                n => crate::wait::Probe::NotYet(format!("{n} running")),
            })
        })
        .await;
        if let Err(err) = settled {
            tracing::warn!(error = format!("{err:#}"), "closing the ceiling's databases under running checkouts");
        }
        if let Some(bus) = &self.bus {
            bus.abort();
        }
        for pool in &self.side_pools {
            pool.close().await;
        }
    }
}
