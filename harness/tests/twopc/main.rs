//! 2PC end to end: the conformance suite through the gateway, and crash points
//! that kill real processes, against a stack started by `harness up`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location
#![allow(clippy::await_holding_lock)] // support::serial() holds a guard for a whole test on purpose

#[path = "../support/mod.rs"]
mod support;

mod crash;

use support::TestStack;
use support::api::{self, Api, path};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_over_two_pc() {
    let _serial = support::serial();
    let stack = TestStack::new("twopc-conformance");
    // The scaled-out topology: three replicas of each service (any may
    // coordinate a checkout or recover one) beside a three-node Kafka cluster.
    stack.up(&["--protocol", "2pc", "--replicas", "3", "--brokers", "3"]);
    let api = api::client(&stack.gateway());
    support::conformance::run_all(&api).await;
    crash::a_retried_checkout_that_paid_answers_paid(&stack, &api).await;
    checkout_again_after_batch_init(&api).await;
    cross_lock_pairs_complete_without_a_lock_timeout(&api).await;
    crash::assert_no_prepared_transactions(&stack).await;
    support::assert_course_counts_zero(&stack);
    crash::assert_no_prepared_transactions(&stack).await;
}

/// Pairs of orders whose locks cross: both orders of a pair belong to one
/// user and hold one unit of one item, so the pair needs the same item row
/// and the same user row. With both prepares in flight at once, each order of
/// a pair can win one of the two rows and wait for the other; no database sees
/// that cycle and only the lock budget ends it (a 409 busy). Prepares in one
/// global order cannot form it: all 200 checkouts, fired at once, pay.
async fn cross_lock_pairs_complete_without_a_lock_timeout(api: &Api) {
    let pairs = 100;
    for init in [path::batch_init_stock(pairs, 2, 1), path::batch_init_users(pairs, 2)] {
        assert_eq!(api.post(&init).await.unwrap().0, 200, "{init}");
    }
    let mut orders = Vec::new();
    for k in 0..pairs {
        let item = k.to_string();
        for _ in 0..2 {
            orders.push(api.new_order(&item, &[(&item, 1)]).await.unwrap());
        }
    }
    let replies = futures::future::join_all(orders.iter().map(|o| api.checkout(o))).await;
    let refused: Vec<_> = replies.iter().filter(|r| r.status != Some(200)).collect();
    assert!(refused.is_empty(), "{} of {} crossing checkouts not paid: {:?}", refused.len(), replies.len(), refused);
    for k in 0..pairs {
        assert_eq!(api.stock_of(&k.to_string()).await.unwrap(), 0, "item {k}");
    }
}

/// `batch_init` resets paid orders to unpaid (the course benchmark and
/// `harness compare` call it before every run); the reset order must then be
/// payable again, although its earlier commit is in the decision log.
async fn checkout_again_after_batch_init(api: &Api) {
    for round in 0..2 {
        for path in
            [&path::batch_init_stock(4, 100, 1), &path::batch_init_users(4, 100), &path::batch_init_orders(4, 4, 4, 1)]
        {
            assert_eq!(api.post(path).await.unwrap().0, 200, "{path}");
        }
        let (status, body) = api.checkout("2").await.expect_reply();
        assert_eq!(status, 200, "round {round}: checkout of reset order 2: {body}");
        assert!(api.paid("2").await.unwrap(), "round {round}");
    }
}

/// `harness run`: 5,000 concurrent checkouts with repeated orders (more
/// checkouts than orders) conserve every user's credit and every item's stock,
/// and leave nothing prepared; the run exits 0 only if all invariants held.
#[test]
fn stress_with_repeated_orders_conserves_credit_and_stock() {
    let _serial = support::serial();
    let run = support::harness_run("twopc-stress", &[&["--protocol", "2pc"], support::STRESS].concat());
    run.assert_held("no prepared transactions");
    assert!(run.replies("200") > 0 && run.replies("400") > 0, "both outcomes exercised: {run}");
    run.assert_yardstick(&[
        "commit flush",
        "row updates and lock waits",
        "other SQL",
        "connection pool",
        "HTTP to participants",
    ]);
}

/// `harness run --fault`: the coordinator killed and held down for a second,
/// the payment database killed, the stock service paused, and a crash point
/// after the commit decision, during one stress load; every fault is applied
/// and the run still verifies every invariant.
#[test]
fn fault_schedule_during_stress_keeps_every_invariant() {
    let _serial = support::serial();
    let run = support::harness_run("twopc-fault-schedule", &fault_schedule(&[]));
    run.assert_held("no prepared transactions");
    let (served, faults) = run.serving_again();
    assert_eq!(served, ["order#0", "postgres-payment"], "every killed component served again: {run}");
    let whats: Vec<String> = faults.into_iter().map(|(_, w)| w).collect();
    assert_eq!(
        whats,
        [
            "crash point 2pc.coordinator.after_decision on order#0",
            "kill postgres-payment",
            "pause stock#0",
            "resume stock#0",
            "kill order#0"
        ],
        "{run}"
    );
}

/// The same schedule on three replicas of each service, with a stock and a
/// payment replica killed besides. With replicas the gateway retries a
/// checkout whose coordinator died after its commit decision on another
/// replica, which finds the order paid: that retry must answer "paid" (it is
/// the same request), or the verifier blames an earlier refusal of the order
/// for the payment (refused-but-paid, found here before request ids).
#[test]
fn fault_schedule_on_three_replicas_keeps_every_invariant() {
    let _serial = support::serial();
    let extra = ["--replicas", "3", "--fault", "kill:stock#2@4", "--fault", "kill:payment#1@6.5"];
    let run = support::harness_run("twopc-fault-schedule-replicas", &fault_schedule(&extra));
    run.assert_held("no prepared transactions");
}

/// The arguments of the 2PC fault schedule, then `extra`.
fn fault_schedule<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--protocol",
        "2pc",
        // An open loop, so the load lasts 10 s however fast the replies
        // fail while a process is down.
        "--checkouts",
        "2000",
        "--rate",
        "200",
        "--items",
        "1000",
        "--fault",
        "crashpoint:2pc.coordinator.after_decision@1",
        "--fault",
        "kill:postgres-payment@3",
        "--fault",
        "pause:stock@5+1s",
        "--fault",
        "kill:order@7+1s",
    ];
    args.extend_from_slice(extra);
    args
}

/// `--target` drives a running stack through its API only, and `harness
/// verify` checks it afterwards, through the API and from the databases; a
/// tampered credit is caught by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_mode_and_verify_against_a_running_stack() {
    let _serial = support::serial();
    let stack = TestStack::new("twopc-target");
    stack.up(&["--protocol", "2pc"]);
    let gateway = stack.gateway();
    let out = stack.harness(&[
        "run",
        "--json",
        "--target",
        &gateway,
        "--checkouts",
        "600",
        "--orders",
        "300",
        "--items",
        "50",
        "--users",
        "200",
        "--stock",
        "20",
        "--credit",
        "5",
        "--concurrency",
        "8",
    ]);
    let stdout = support::text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", support::text(&out.stderr));
    let run = support::Record::parse(&stdout);
    assert_eq!(run.0["contender"], "target", "{run}");
    run.assert_held("(API level only)");

    let api_args = [
        "verify", "--json", "--target", &gateway, "--stock", "20", "--credit", "5", "--items", "50", "--users", "200",
        "--orders", "300",
    ];
    let db_args = ["verify", "--json", "--stock", "20", "--credit", "5"];
    let verdict = verify(&stack, &api_args, true);
    assert_eq!(verdict["scope"], "API level only", "{verdict}");
    let verdict = verify(&stack, &db_args, true);
    assert_eq!((verdict["orders"].as_u64(), verdict["users"].as_u64()), (Some(300), Some(200)), "{verdict}");
    assert!(verdict["settled_s"].is_number(), "{verdict}");
    // Wrong starting credit: every user is off by one.
    let verdict = verify(&stack, &["verify", "--json", "--stock", "20", "--credit", "6"], false);
    let credit = verdict["violations"].as_array().unwrap().iter().filter(|v| v["violation"] == "credit").count();
    assert_eq!(credit, 200, "{verdict}");

    // Money appears out of nowhere: both views catch it.
    let api = api::client(&gateway);
    assert_eq!(api.post(&path::add_funds("7", 3)).await.unwrap().0, 200);
    let only_user_7 = |verdict: &serde_json::Value| {
        let violations = verdict["violations"].as_array().unwrap();
        violations.len() == 1 && violations[0]["violation"] == "credit" && violations[0]["user_id"] == "7"
    };
    let verdict = verify(&stack, &api_args, false);
    assert!(only_user_7(&verdict), "{verdict}");
    let verdict = verify(&stack, &db_args, false);
    assert!(only_user_7(&verdict), "{verdict}");

    // A later, smaller batch overwrites part of the ids: `verify` judges the
    // latest batch alone (older orders paid users and items that were reset).
    let out = stack.harness(&[
        "run",
        "--target",
        &gateway,
        "--checkouts",
        "200",
        "--orders",
        "100",
        "--items",
        "20",
        "--users",
        "50",
        "--stock",
        "30",
        "--credit",
        "7",
        "--concurrency",
        "8",
    ]);
    assert!(out.status.success(), "{}{}", support::text(&out.stdout), support::text(&out.stderr));
    let verdict = verify(&stack, &["verify", "--json", "--stock", "30", "--credit", "7"], true);
    assert_eq!((verdict["users"].as_u64(), verdict["items"].as_u64()), (Some(50), Some(20)), "{verdict}");
}

/// Runs `harness verify --json` on `stack`; its verdict, after checking that
/// the exit status and `held` both say `held`.
fn verify(stack: &TestStack, args: &[&str], held: bool) -> serde_json::Value {
    let out = stack.harness(args);
    let stdout = support::text(&out.stdout);
    let verdict: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}{}", support::text(&out.stderr)));
    assert_eq!(out.status.success(), held, "{verdict}");
    assert_eq!(verdict["held"], held, "{verdict}");
    verdict
}

/// The verifier's mutation test: an order service built to answer 400 for
/// every 25th checkout that paid (`SAGA2PC_MUTATIONS`) must fail the stress
/// case, every lie reported as a refused-but-paid order, although each of
/// those orders is checked out again later and answered 200 (already paid).
#[test]
fn a_service_that_refuses_after_paying_fails_the_stress_case() {
    let _serial = support::serial();
    let (ok, stdout, dir) = support::harness_run_with_env(
        "twopc-mutation",
        &[
            "--protocol",
            "2pc",
            "--checkouts",
            "1500",
            "--concurrency",
            "16",
            "--orders",
            "200",
            "--users",
            "100",
            "--items",
            "100",
            "--stock",
            "100",
            "--credit",
            "100",
            "--seed",
            "5",
        ],
        &[("SAGA2PC_MUTATIONS", "refuse-after-paid=25")],
    );
    assert!(!ok, "the run must fail:\n{stdout}");
    let run = support::Record::parse(&stdout);
    let log = std::fs::read_to_string(dir.join("logs/order-0.log")).unwrap();
    let lied: Vec<String> = log
        .lines()
        .filter(|l| l.contains("mutation refuse-after-paid"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| v["fields"]["order_id"].as_str().or(v["order_id"].as_str()).unwrap().to_owned())
        .collect();
    assert!(lied.len() >= 4, "the mutation lied {} times:\n{run}", lied.len());
    let mut reported = run.violations();
    let mut expected: Vec<String> =
        lied.iter().map(|order| format!("RefusedButPaid {{ order_id: \"{order}\" }}")).collect();
    reported.sort();
    expected.sort();
    assert_eq!(reported, expected, "the lies and only they are reported");
}

/// `harness run --workload zipf --rate --duration`: an open loop on
/// Zipf-skewed items (orders created through the API) for 8 s at 100/s, so
/// 800 checkouts cycling through a plan of 400, keeps every invariant.
#[test]
fn zipf_open_loop_keeps_every_invariant() {
    let _serial = support::serial();
    let run = support::harness_run(
        "twopc-zipf",
        &[
            "--protocol",
            "2pc",
            "--workload",
            "zipf",
            "--skew",
            "1.1",
            "--rate",
            "100",
            "--checkouts",
            "400",
            "--duration",
            "8s",
            "--orders",
            "600",
            "--users",
            "200",
            "--items",
            "50",
            "--stock",
            "20",
            "--credit",
            "10",
            "--seed",
            "3",
        ],
    );
    let settings = (&run.0["case"], &run.0["contender"], &run.0["rate"], &run.0["duration_s"]);
    assert_eq!(settings, (&"zipf".into(), &"2pc".into(), &100.0.into(), &8.0.into()), "{run}");
    assert_eq!(run.sent(), 800, "{run}");
    run.assert_held("no prepared transactions");
    assert!(run.replies("400") > 0, "{run}");
}
