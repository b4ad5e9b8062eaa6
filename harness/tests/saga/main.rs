//! SAGA end to end against stacks started by `harness up`: the conformance
//! suite in both modes, a concurrent stress, and (in `faults`) duplicated and
//! replayed messages, compensation before action, crash points, a broker
//! restart and an order replica killed under load.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location
#![allow(clippy::await_holding_lock)] // support::serial() holds a guard for a whole test on purpose

#[path = "../support/mod.rs"]
mod support;

mod faults;

use std::time::Duration;

use harness::run::final_state::Databases;
use support::TestStack;
use support::api::{self, path};

/// The databases of a running stack.
pub fn databases(stack: &TestStack) -> Databases {
    let status = stack.status().expect("stack running");
    let url = |db: &str| status["databases"][db].as_str().unwrap().to_owned();
    Databases { order: url("order"), stock: url("stock"), payment: url("payment") }
}

/// Waits until no saga is in flight and every outbox row is published.
pub async fn assert_settled(stack: &TestStack) {
    let dbs = databases(stack);
    support::eventually("saga state settled", Duration::from_secs(90), || async {
        let left = harness::run::final_state::pending(&dbs).await.unwrap();
        support::when(left.is_empty(), || format!("{left:?}"))
    })
    .await;
}

/// The saga counters of `name` (`order#0`, ...).
pub async fn counters(stack: &TestStack, name: &str) -> serde_json::Value {
    let (status, body) = support::replica(stack, name).get(path::SAGA_METRICS).await.unwrap();
    assert_eq!(status, 200, "{name}'s saga metrics: {body}");
    body
}

async fn conformance(name: &str, mode: &str, topology: &[&str]) {
    let _serial = support::serial();
    let stack = TestStack::new(name);
    stack.up(&[&["--protocol", "saga", "--saga-mode", mode], topology].concat());
    let api = api::client(&stack.gateway());
    support::conformance::run_all(&api).await;
    assert_settled(&stack).await;
    let (_, settings) = support::replica(&stack, "order#1").get(path::SAGA_SETTINGS).await.unwrap();
    assert_eq!(settings["mode"], mode, "{settings}");
    assert_eq!(settings["kafka_profile"], "low-latency", "{settings}");
    support::assert_course_counts_zero(&stack);
    assert_settled(&stack).await;
    if let Some(at) = topology.iter().position(|a| *a == "--brokers") {
        // Topics created before every node was unfenced left one node
        // leading nothing, so killing it moved no leader.
        let nodes: i32 = topology[at + 1].parse().unwrap();
        let bootstrap = stack.status().unwrap()["kafka_bootstrap"].as_str().unwrap().to_owned();
        let leaders = tokio::task::spawn_blocking(move || harness::stack::kafka::preferred_leaders(&bootstrap))
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<i32> = leaders.keys().copied().collect();
        assert_eq!(ids, (1..=nodes).collect::<Vec<_>>(), "every node is a preferred leader: {leaders:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_over_saga_sequential() {
    conformance("saga-conformance-seq", "sequential", &["--replicas", "2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_over_saga_parallel() {
    // The scaled-out topology: three replicas of each service on a
    // three-node Kafka cluster, every topic with three copies.
    conformance("saga-conformance-par", "parallel", &["--replicas", "3", "--brokers", "3"]).await;
}

/// `harness run`: 5,000 concurrent checkouts with repeated orders, parallel
/// steps and the low-latency Kafka profile, conserve every user's credit and
/// every item's stock, leave one effect per step of every paid order and
/// nothing in flight; the run exits 0 only if all invariants held.
#[test]
fn stress_with_repeated_orders_conserves_credit_and_stock() {
    let _serial = support::serial();
    let run = support::harness_run(
        "saga-stress",
        &[&["--protocol", "saga", "--saga-mode", "parallel", "--kafka-profile", "low-latency"], support::STRESS]
            .concat(),
    );
    run.assert_held("one effect per saga step");
    assert!(run.replies("200") > 0 && run.replies("400") > 0, "both outcomes exercised: {run}");
    run.assert_yardstick(&[
        "commit flush",
        "other SQL",
        "Kafka hops",
        "outbox to relay",
        "consumer queue",
        "end notification",
    ]);
    assert!(
        run.0["ceiling"]["kafka"]["round_trip_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "bare Kafka measured: {run}"
    );
}

/// `harness run --fault`: the broker killed and held down, the payment
/// service paused, the orchestrator's relay crashed after a publish and the
/// order database killed, all during one stress load; every fault is applied
/// at its time and the run still verifies every invariant.
#[test]
fn fault_schedule_during_stress_keeps_every_invariant() {
    let _serial = support::serial();
    let run = support::harness_run(
        "saga-fault-schedule",
        &[
            "--protocol",
            "saga",
            "--checkouts",
            "1500",
            "--concurrency",
            "32",
            "--fault",
            "kill:kafka@1+1s",
            "--fault",
            "crashpoint:saga.relay.after_publish@order@1.5",
            "--fault",
            "pause:payment@2+1s",
            "--fault",
            "kill:postgres-order@3.5",
        ],
    );
    run.assert_held("one effect per saga step");
    let (served, faults) = run.serving_again();
    assert_eq!(served, ["kafka#0", "postgres-order"], "every killed component served again: {run}");
    let whats: Vec<&str> = faults.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(
        whats,
        [
            "kill kafka#0",
            "crash point saga.relay.after_publish on order#0",
            "pause payment#0",
            "resume payment#0",
            "kill postgres-order"
        ],
        "{run}"
    );
    assert!((faults[0].0 - 1.0).abs() < 0.5 && (faults[3].0 - 3.0).abs() < 0.5, "on time: {faults:?}");
}

/// `--fault delay-messages` and `--fault duplicate-messages` reach the
/// services: every checkout waits for at least four delayed publishes
/// (command and reply of each step), and the participants see duplicates.
/// The load runs for a fixed time (`--duration`, closed loop).
#[test]
fn message_faults_delay_and_duplicate_every_message() {
    let _serial = support::serial();
    let run = support::harness_run(
        "saga-message-faults",
        &[
            "--protocol",
            "saga",
            // More than 4 clients can send in 6 s: the deadline ends the load.
            "--checkouts",
            "2000",
            "--duration",
            "6",
            "--concurrency",
            "4",
            "--fault",
            "delay-messages:100ms",
            "--fault",
            "duplicate-messages",
        ],
    );
    run.assert_held("one effect per saga step");
    assert_eq!(run.0["duration_s"], 6.0, "{run}");
    let p50 = run.latency_ms("p50");
    assert!(p50 >= 400.0, "four publishes delayed 100 ms each, yet p50 {p50} ms:\n{run}");
    assert!(run.counter("saga stock", "duplicates") > 0, "{run}");
}

/// One of three Kafka nodes killed and held down, then one replica of each
/// service killed, during one open-loop stress on three replicas: every
/// killed component serves again, no checkout is answered 5xx (the partitions
/// the node led get new leaders; the gateway retries a dead replica's
/// requests on another) and every invariant holds.
#[test]
fn one_of_three_brokers_and_a_replica_of_each_service_killed_under_stress() {
    let _serial = support::serial();
    let run = support::harness_run(
        "saga-three-brokers",
        &[
            "--protocol",
            "saga",
            "--brokers",
            "3",
            "--replicas",
            "3",
            "--checkouts",
            "600",
            "--rate",
            "60",
            "--items",
            "1000",
            "--fault",
            "kill:kafka#1@2+2s",
            "--fault",
            "kill:stock#2@5",
            "--fault",
            "kill:payment#1@6",
            "--fault",
            "kill:order#1@7",
        ],
    );
    run.assert_held("one effect per saga step");
    assert_eq!(run.server_errors(), Vec::<String>::new(), "{run}");
    let (served, _) = run.serving_again();
    assert_eq!(served, ["kafka#1", "order#1", "payment#1", "stock#2"], "every killed component served again: {run}");
}

/// `harness run --workload wdm-consistency`: the course test's four numbers
/// are all 0 right after the load, and the run verifies every invariant.
#[test]
fn course_consistency_workload_counts_zero_inconsistencies() {
    let _serial = support::serial();
    let run = support::harness_run("saga-wdm", &["--protocol", "saga", "--workload", "wdm-consistency"]);
    run.assert_held("one effect per saga step");
    support::assert_course_zero(&run);
    assert_eq!(run.replies("400"), 900, "a saga refuses what it cannot pay, never answers busy: {run}");
}
