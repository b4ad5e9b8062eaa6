//! Faults against the saga: every message published twice, every topic
//! replayed from offset 0, a compensation ahead of its action, processes
//! aborted at crash points, the broker killed under load, and one of two
//! order replicas killed under load. Afterwards nothing is in flight, no
//! outbox row is unsent, and every checkout is all-or-nothing.

use std::time::{Duration, Instant};

use futures::future::join_all;
use harness::wait::{self, Probe};
use nix::sys::signal::Signal;
use protocol_core::{LineItem, Work};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use saga::messages::{Body, Envelope, STOCK_COMMANDS, Step, TOPICS};

use crate::support::api::{self, Api, path};
use crate::support::faults::{Case, arm, restarts, signal, wait_restart_count, wait_restarted};
use crate::support::{TestStack, component, eventually, when};
use crate::{assert_settled, counters, databases};

/// A one-replica saga stack that re-sends stalled commands after 3 s.
fn stack(name: &str, flags: &[&str]) -> TestStack {
    let stack = TestStack::new(name);
    let mut args = vec!["--protocol", "saga", "--replicas", "1"];
    args.extend_from_slice(flags);
    stack.up_with_env(&args, &[("SAGA_RESEND_AFTER_MS", "3000")]);
    stack
}

fn bootstrap(stack: &TestStack) -> String {
    format!("127.0.0.1:{}", stack.port_base + 10)
}

/// Kills `victim` at `point` during one checkout (of `case`) and checks the
/// aftermath: the reply, if any, agrees with the final state; nothing stays in
/// flight; a second checkout then ends as `paid_in_the_end` says.
async fn crash_during_checkout(stack: &TestStack, api: &Api, victim: &str, point: &str, case: Case) {
    let before = restarts(stack, victim).await;
    arm(stack, victim, point).await;
    let (status, body) = api.checkout(&case.order).await.expect_reply();
    wait_restarted(stack, victim, before).await;
    assert_settled(stack).await;
    let paid = case.assert_all_or_nothing(api, point).await;
    match status {
        200 => assert!(paid, "{point}: answered 200 but the order is not paid"),
        400..=499 => assert!(!paid, "{point}: answered {status} {body} but the order is paid"),
        _ => {} // 5xx or no answer: the final state decides
    }
    let again = api.checkout(&case.order).await.expect_reply();
    let paid_now = case.assert_all_or_nothing(api, point).await;
    assert_eq!(again.0 == 200, paid_now, "{point}: checkout after recovery answered {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_points_recover_all_or_nothing() {
    let _serial = crate::support::serial();
    let stack = stack("saga-crash", &[]);
    let api = api::client(&stack.gateway());
    for (victim, point) in [
        ("order#0", "saga.orchestrator.after_stock_reserved"),
        ("order#0", "saga.orchestrator.before_payment_reply"),
        ("order#0", "saga.relay.after_publish"),
        ("stock#0", "saga.participant.after_commit"),
        ("payment#0", "saga.participant.after_commit"),
    ] {
        crash_during_checkout(&stack, &api, victim, point, Case::new(&api).await).await;
    }
    // The payment service's relay dies after publishing its reply, before
    // deleting it from the outbox: the reply goes out twice and counts once.
    let duplicates_before = counters(&stack, "order#0").await["duplicates"].as_u64().unwrap();
    crash_during_checkout(&stack, &api, "payment#0", "saga.relay.after_publish", Case::new(&api).await).await;
    let duplicates = counters(&stack, "order#0").await["duplicates"].as_u64().unwrap();
    assert!(duplicates > duplicates_before, "the re-published reply was not recognised as a duplicate");
    // A compensation interrupted by a crash is finished after restart.
    let poor = Case::with(&api, 5, 10, 10, 2).await;
    crash_during_checkout(&stack, &api, "stock#0", "saga.participant.after_commit", poor).await;
    paused_participant_freezes_the_order(&stack, &api).await;
    batch_init_during_a_saga_creates_nothing(&stack, &api).await;
    a_step_after_a_reset_of_its_row_is_refused(&stack, &api).await;
    a_poison_compensation_is_dead_lettered(&stack, &api).await;
    a_refill_during_a_saga_cannot_make_its_compensation_overflow(&stack, &api).await;
    health_waits_for_the_consumer_group(&stack).await;
    // A participant (static membership) and the orchestrator (its socket
    // kept, checkouts in flight retried by the gateway).
    a_killed_replica_resumes_within_seconds(&stack, "payment#0").await;
    a_killed_replica_resumes_within_seconds(&stack, "order#0").await;
}

/// `GET /health` answers 503 until the consumer has joined its group: a stock
/// replica restarted while the broker is paused serves HTTP (on the socket it
/// inherited) but is not ready, and becomes ready once the broker resumes.
async fn health_waits_for_the_consumer_group(stack: &TestStack) {
    let before = restarts(stack, "stock#0").await;
    signal(stack, "kafka#0", Signal::SIGSTOP);
    signal(stack, "stock#0", Signal::SIGKILL);
    wait_restart_count(stack, "stock#0", before).await;
    let replica = crate::support::replica(stack, "stock#0");
    let not_ready = || async {
        let probe = || async {
            Ok(match replica.get(path::HEALTH).await {
                Ok((503, body)) => Probe::Ready(body),
                Ok((status, _)) => anyhow::bail!("{} answered {status} while the broker is paused", path::HEALTH),
                Err(err) => Probe::NotYet(err.to_string()),
            })
        };
        wait::until("stock#0 answering /health", Duration::from_secs(20), probe).await.unwrap()
    };
    let body = not_ready().await;
    assert_eq!(body["waiting_for"], serde_json::json!(["saga consumer group"]), "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    not_ready().await;
    signal(stack, "kafka#0", Signal::SIGCONT);
    wait_restarted(stack, "stock#0", before).await;
    // The broker was paused: let every saga it held up finish before the
    // next load is judged.
    assert_settled(stack).await;
}

/// A replica killed under an open-loop load is back within seconds, and no
/// checkout is answered 5xx or not at all: the restarted process rejoins its
/// group under the same static identity and gets its partitions at once
/// (instead of after the dead member's session timeout,
/// `saga::kafka::SESSION_TIMEOUT`); connections
/// made meanwhile wait on the socket the harness keeps; a checkout whose
/// order replica died under it is retried by the gateway.
async fn a_killed_replica_resumes_within_seconds(stack: &TestStack, victim: &str) {
    let spec = harness::run::RunSpec { rate: Some(60.0), checkouts: 480, concurrency: 32, ..stress_spec(13) };
    let (outcome, summary) = kill_under_load(stack, victim, Duration::from_secs(3), &spec).await;
    let failed: u64 =
        outcome.load.statuses.iter().filter(|(s, _)| s.starts_with('5') || *s == "error").map(|(_, n)| n).sum();
    assert_eq!(failed, 0, "{victim} killed: checkouts answered 5xx or not at all:\n{summary}");
    let max = Duration::from_micros(outcome.load.latency_us.max());
    assert!(max < Duration::from_secs(3), "{victim} killed: the slowest checkout took {max:?}:\n{summary}");
}

/// A saga step that reaches a row reset after its checkout began (the stock
/// participant paused, the user reset meanwhile) is refused, so the checkout
/// never pays with the new batch's credit for an order of the old one; the
/// reserved stock is given back and the reset credit stays whole.
async fn a_step_after_a_reset_of_its_row_is_refused(stack: &TestStack, api: &Api) {
    assert_eq!(api.post(&path::batch_init_stock(1, 10, 10)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_users(1, 100)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_orders(1, 1, 1, 10)).await.unwrap().0, 200);
    signal(stack, "stock#0", Signal::SIGSTOP);
    let checkout = tokio::spawn({
        let api = api.clone();
        async move { api.checkout("0").await.expect_reply() }
    });
    saga_started(stack).await;
    assert_eq!(api.post(&path::batch_init_users(1, 50)).await.unwrap().0, 200, "the user is reset while the saga runs");
    signal(stack, "stock#0", Signal::SIGCONT);
    let (status, body) = checkout.await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("user 0 was reset by batch_init"), "{body}");
    crate::assert_settled(stack).await;
    assert_eq!((api.stock_of("0").await.unwrap(), api.credit_of("0").await.unwrap()), (10, 50));
    assert!(!api.paid("0").await.unwrap());
}

/// Waits until `cond` holds on the stock of `item`.
async fn wait_stock(api: &Api, item: &str, what: &str, cond: impl Fn(i64) -> bool) {
    eventually(what, Duration::from_secs(20), || async {
        let stock = api.stock_of(item).await.unwrap();
        when(cond(stock), || format!("stock of {item} is {stock}"))
    })
    .await;
}

/// Waits until order#0 has a saga in flight.
async fn saga_started(stack: &TestStack) {
    eventually("a saga started", Duration::from_secs(20), || async {
        let n = counters(stack, "order#0").await["in_flight"].as_u64().unwrap();
        when(n > 0, || "none in flight".into())
    })
    .await;
}

/// Waits until counter `name` of `replica` passes `at_least`.
async fn counter_reaches(stack: &TestStack, replica: &str, name: &str, at_least: u64, timeout: Duration) {
    eventually(&format!("{replica}'s {name} at {at_least}"), timeout, || async {
        let n = counters(stack, replica).await[name].as_u64().unwrap();
        when(n >= at_least, || format!("{name} is {n}"))
    })
    .await;
}

/// `batch_init` while a saga holds effects on the ids it resets (the payment
/// participant paused, so the overlap is certain): stock and payment reset at
/// once and the compensation that follows gives nothing back to the reset
/// rows; the order reset waits until the saga has ended, so the reset order
/// neither joins nor is paid by the old saga, and can be paid again.
async fn batch_init_during_a_saga_creates_nothing(stack: &TestStack, api: &Api) {
    assert_eq!(api.post(&path::batch_init_stock(2, 10, 10)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_users(2, 0)).await.unwrap().0, 200);
    // Order "0": user "0" (no credit), item "0" twice, total 20.
    assert_eq!(api.post(&path::batch_init_orders(1, 1, 1, 10)).await.unwrap().0, 200);
    signal(stack, "payment#0", Signal::SIGSTOP);
    let checkout = tokio::spawn({
        let api = api.clone();
        async move { api.checkout("0").await.expect_reply() }
    });
    wait_stock(api, "0", "reserved by the saga", |s| s == 8).await;
    assert_eq!(api.post(&path::batch_init_stock(2, 10, 10)).await.unwrap().0, 200, "stock is reset at once");
    assert_eq!(api.stock_of("0").await.unwrap(), 10);
    let reset = tokio::spawn({
        let api = api.clone();
        async move { api.post(&path::batch_init_orders(1, 1, 1, 10)).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!reset.is_finished(), "the order reset must wait for the saga in flight");
    signal(stack, "payment#0", Signal::SIGCONT);
    let (status, body) = checkout.await.unwrap();
    assert_eq!(status, 400, "no credit: {body}");
    let (status, body) = reset.await.unwrap();
    assert_eq!(status, 200, "the order reset goes through once the saga ended: {body}");
    crate::assert_settled(stack).await;
    assert_eq!(
        api.stock_of("0").await.unwrap(),
        10,
        "the compensation must not give back stock taken before the reset"
    );
    // The reset order is payable: exactly one debit and one set of decrements.
    assert_eq!(api.post(&path::add_funds("0", 20)).await.unwrap().0, 200);
    assert_eq!(api.checkout("0").await.expect_reply().0, 200);
    assert_eq!((api.stock_of("0").await.unwrap(), api.credit_of("0").await.unwrap()), (8, 0));
    crate::assert_settled(stack).await;
}

/// A compensation that can never apply (the item's stock pushed behind the
/// API to where the release overflows `bigint`) is retried a bounded number of
/// times and moved to the dead-letter table: its worker moves on and other
/// checkouts are served, the counters show it, and its saga stays in flight
/// until the row is repaired and recovery's re-send finishes it.
async fn a_poison_compensation_is_dead_lettered(stack: &TestStack, api: &Api) {
    let case = Case::with(api, 5, 10, 10, 2).await; // refused on credit: stock is released
    let pool = sqlx::PgPool::connect(&databases(stack).stock).await.unwrap();
    signal(stack, "payment#0", Signal::SIGSTOP);
    let checkout = tokio::spawn({
        let (api, order) = (api.clone(), case.order.clone());
        async move { api.checkout(&order).await.expect_reply() }
    });
    wait_stock(api, &case.item, "reserved by the saga", |s| s == 8).await;
    sqlx::query("UPDATE items SET stock = 9223372036854775807 - 1 WHERE item_id = $1")
        .bind(&case.item)
        .execute(&pool)
        .await
        .unwrap();
    let before = counters(stack, "stock#0").await["dead_lettered"].as_u64().unwrap();
    signal(stack, "payment#0", Signal::SIGCONT);
    // The failing compensation is dead-lettered.
    counter_reaches(stack, "stock#0", "dead_lettered", before + 1, Duration::from_secs(20)).await;
    assert!(counters(stack, "stock#0").await["dead_letters"].as_u64().unwrap() >= 1);
    let status = stack.status().unwrap();
    assert!(status["dead_letters"]["stock"].as_u64().unwrap() >= 1, "harness status shows it: {status}");
    // The participant still serves everyone else.
    let other = Case::new(api).await;
    let started = Instant::now();
    assert_eq!(api.checkout(&other.order).await.expect_reply().0, 200);
    assert!(started.elapsed() < Duration::from_secs(10), "an unrelated checkout waited {:?}", started.elapsed());
    // Repaired, the re-sent compensation applies and the saga ends.
    sqlx::query("UPDATE items SET stock = 8 WHERE item_id = $1").bind(&case.item).execute(&pool).await.unwrap();
    let (status, body) = checkout.await.unwrap();
    assert!(status == 400 || status >= 500, "{body}");
    crate::assert_settled(stack).await;
    assert!(!case.assert_all_or_nothing(api, "repaired poison compensation").await);
}

/// No sequence of API calls can make a compensation fail. With the payment
/// participant paused, a checkout reserves every unit of an item filled to
/// the maximum; refilling the item meanwhile is refused (what checkouts took
/// counts against the maximum until the next reset), so once the payment step refuses (no
/// credit) the release fits: the saga ends refused, the stock is whole again
/// and nothing is dead-lettered. (Were the refill allowed, about 1024 such
/// sagas in flight would overflow `bigint` on their releases.)
async fn a_refill_during_a_saga_cannot_make_its_compensation_overflow(stack: &TestStack, api: &Api) {
    const MAX: i64 = 9_007_199_254_740_991;
    let dead_before = counters(stack, "stock#0").await["dead_lettered"].as_u64().unwrap();
    let user = api.new_user(0).await.unwrap();
    let item = api.new_item(1, MAX).await.unwrap();
    let order = api.new_order(&user, &[(&item, MAX)]).await.unwrap();
    signal(stack, "payment#0", Signal::SIGSTOP);
    let checkout = tokio::spawn({
        let (api, order) = (api.clone(), order.clone());
        async move { api.checkout(&order).await.expect_reply() }
    });
    wait_stock(api, &item, "reserved by the saga", |s| s == 0).await;
    for amount in [MAX, 1] {
        let (status, body) = api.post(&path::add_stock(&item, amount)).await.unwrap();
        assert_eq!(status, 400, "a refill of {amount} while the reservation is outstanding: {body}");
    }
    signal(stack, "payment#0", Signal::SIGCONT);
    let (status, body) = checkout.await.unwrap();
    assert_eq!(status, 400, "refused on credit: {body}");
    crate::assert_settled(stack).await;
    assert_eq!(api.stock_of(&item).await.unwrap(), MAX, "the reservation is given back whole");
    assert!(!api.paid(&order).await.unwrap());
    assert_eq!(counters(stack, "stock#0").await["dead_lettered"].as_u64().unwrap(), dead_before, "no dead letter");
}

/// While a saga is in flight (its payment participant paused with SIGSTOP),
/// the order's lines are frozen: `addItem` is refused, so the saga charges
/// exactly what the order says. Once the participant resumes, the checkout
/// completes.
async fn paused_participant_freezes_the_order(stack: &TestStack, api: &Api) {
    let case = Case::new(api).await;
    signal(stack, "payment#0", Signal::SIGSTOP);
    let checkout = tokio::spawn({
        let (api, order) = (api.clone(), case.order.clone());
        async move { api.checkout(&order).await.expect_reply() }
    });
    // Wait until the saga is recorded (it then waits for the paused payment).
    saga_started(stack).await;
    let (status, body) = api.post(&path::add_item(&case.order, &case.item, 1)).await.unwrap();
    assert_eq!(status, 400, "addItem during the saga: {body}");
    assert!(body["error"].as_str().unwrap().contains("being checked out"), "{body}");
    signal(stack, "payment#0", Signal::SIGCONT);
    let (status, body) = checkout.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(case.assert_all_or_nothing(api, "paused participant").await);
    let (status, _) = api.post(&path::add_item(&case.order, &case.item, 1)).await.unwrap();
    assert_eq!(status, 400, "a paid order's lines stay frozen");
}

/// A mix of checkouts that pay, fail on credit and fail on stock.
async fn mixed_cases(api: &Api) -> Vec<(Case, u16)> {
    let mut cases = Vec::new();
    for i in 0..30 {
        let (case, expected) = match i % 3 {
            0 => (Case::new(api).await, 200),
            1 => (Case::with(api, 5, 10, 10, 2).await, 400),
            _ => (Case::with(api, 100, 1, 10, 2).await, 400),
        };
        cases.push((case, expected));
    }
    cases
}

async fn check_cases(api: &Api, cases: &[(Case, u16)], what: &str) {
    for (case, expected) in cases {
        assert_eq!(case.assert_all_or_nothing(api, what).await, *expected == 200, "{what}");
    }
}

/// Every message of every topic, from offset 0 to the end.
fn read_all_topics(bootstrap: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("replay-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for topic in TOPICS {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
            if high > low {
                remaining += (high - low) as usize;
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning).unwrap();
            }
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The consumer's own poll waits for a message; the loop adds no pause.
    wait::until_blocking("every message of the topics", deadline, Duration::ZERO, || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let key = m.key().unwrap_or_default().to_vec();
            messages.push((m.topic().to_owned(), key, m.payload().unwrap_or_default().to_vec()));
        }
        Ok(if messages.len() >= remaining {
            Probe::Ready(())
        } else {
            Probe::NotYet(format!("read {} of {remaining}", messages.len()))
        })
    })
    .unwrap();
    messages
}

async fn publish(bootstrap: &str, messages: &[(String, Vec<u8>, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let sends = messages.iter().map(|(topic, key, payload)| {
        producer.send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(30))
    });
    for result in join_all(sends).await {
        result.map_err(|(e, _)| e).unwrap();
    }
}

/// Every message published twice by every relay, then every topic replayed
/// from offset 0, then a compensation that overtakes its action: each takes
/// effect once (or, for the late action, not at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_replayed_and_reordered_messages_take_effect_once() {
    let _serial = crate::support::serial();
    let stack = stack("saga-messages", &["--duplicate-messages"]);
    let api = api::client(&stack.gateway());

    let cases = mixed_cases(&api).await;
    let replies = join_all(cases.iter().map(|(case, _)| api.checkout(&case.order))).await;
    for ((_, expected), reply) in cases.iter().zip(replies) {
        let (status, body) = reply.expect_reply();
        assert_eq!(status, *expected, "{body}");
    }
    assert_settled(&stack).await;
    check_cases(&api, &cases, "duplicated delivery").await;
    let stock_duplicates = counters(&stack, "stock#0").await["duplicates"].as_u64().unwrap();
    let order_duplicates = counters(&stack, "order#0").await["duplicates"].as_u64().unwrap();
    assert!(
        stock_duplicates >= 30 && order_duplicates >= 30,
        "duplicates seen: {stock_duplicates}, {order_duplicates}"
    );

    // Replay: every message of every topic again, from offset 0.
    let messages = read_all_topics(&bootstrap(&stack));
    publish(&bootstrap(&stack), &messages).await;
    let commands = messages.iter().filter(|(t, _, _)| t == STOCK_COMMANDS).count() as u64;
    // Every replayed stock command is consumed (as a duplicate).
    counter_reaches(&stack, "stock#0", "duplicates", stock_duplicates + commands, Duration::from_secs(60)).await;
    assert_settled(&stack).await;
    check_cases(&api, &cases, "replay from offset 0").await;

    // A compensation that arrives before its action leaves a tombstone, and
    // the action is refused when it comes.
    let item = api.new_item(10, 10).await.unwrap();
    let saga_id = uuid::Uuid::new_v4();
    let work = Work::Stock { items: vec![LineItem { item_id: item.clone(), quantity: 3 }], as_of_us: None };
    let undo = Envelope::new(saga_id, "tombstone-order", Step::ReserveStock, Body::Compensate);
    let action = Envelope::new(saga_id, "tombstone-order", Step::ReserveStock, Body::Action { work });
    let late_before = counters(&stack, "stock#0").await["late_actions"].as_u64().unwrap();
    let encoded = |m: &Envelope| (STOCK_COMMANDS.to_owned(), m.order_id.as_bytes().to_vec(), m.encode());
    publish(&bootstrap(&stack), &[encoded(&undo)]).await;
    publish(&bootstrap(&stack), &[encoded(&action)]).await;
    // The late action is handled.
    counter_reaches(&stack, "stock#0", "late_actions", late_before + 1, Duration::from_secs(30)).await;
    assert_eq!(api.stock_of(&item).await.unwrap(), 10, "a late action took stock");
    let pool = sqlx::PgPool::connect(&databases(&stack).stock).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM saga_effects WHERE saga_id = $1")
        .bind(saga_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "tombstone");
    assert_settled(&stack).await;
}

fn stress_spec(seed: u64) -> harness::run::RunSpec {
    harness::run::RunSpec {
        workload: harness::run::Workload::Stress,
        concurrency: 16,
        rate: None,
        skew: 0.0,
        checkouts: 2500,
        duration: None,
        orders: 800,
        items: 40,
        users: 200,
        stock: 30,
        credit: 8,
        price: 1,
        seed,
    }
}

/// Kills `victim` with SIGKILL `after` into a load of `spec`, waits for its
/// restart, requires every invariant to hold and something to succeed once
/// the load is over and settled, and returns the outcome and its summary.
async fn kill_under_load(
    stack: &TestStack,
    victim: &str,
    after: Duration,
    spec: &harness::run::RunSpec,
) -> (harness::run::RunOutcome, String) {
    let dbs = databases(stack);
    let gateway = stack.gateway();
    let before = restarts(stack, victim).await;
    let load = harness::run::execute(&gateway, Some(&dbs), &[], spec, Default::default());
    let fault = async {
        tokio::time::sleep(after).await;
        signal(stack, victim, Signal::SIGKILL);
        wait_restart_count(stack, victim, before).await;
    };
    let (outcome, ()) = tokio::join!(load, fault);
    let outcome = outcome.unwrap();
    let summary = harness::run::summary(None, spec, &outcome);
    assert!(outcome.violations.is_empty(), "{victim} killed under load:\n{summary}");
    assert!(outcome.load.statuses.get("200").copied().unwrap_or(0) > 0, "nothing succeeded:\n{summary}");
    assert_settled(stack).await;
    (outcome, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_and_order_replica_kill_under_load() {
    let _serial = crate::support::serial();
    let stack = TestStack::new("saga-kill");
    stack.up_with_env(&["--protocol", "saga", "--replicas", "2"], &[("SAGA_RESEND_AFTER_MS", "5000")]);
    kill_under_load(&stack, "kafka#0", Duration::from_secs(3), &stress_spec(11)).await;
    kill_under_load(&stack, "order#1", Duration::from_secs(3), &stress_spec(12)).await;
    let status = stack.status().unwrap();
    assert!(component(&status, "kafka#0")["restarts"].as_u64().unwrap() >= 1);
}
