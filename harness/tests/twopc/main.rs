//! 2PC end to end: the conformance suite through the gateway, and crash points
//! that kill real processes, against a stack started by `harness up`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location
#![allow(clippy::await_holding_lock)] // support::serial() holds a guard for a whole test on purpose

#[path = "../support/mod.rs"]
mod support;

mod crash;

use support::TestStack;
use support::api::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_over_two_pc() {
    let _serial = support::serial();
    let stack = TestStack::new("twopc-conformance", 31000, 31080);
    stack.up(&["--protocol", "2pc", "--replicas", "2"]);
    let api = Api::new(&stack.gateway());
    support::conformance::run_all(&api).await;
    crash::assert_no_prepared_transactions(&stack).await;
}

/// `harness run`: 5,000 concurrent checkouts with repeated orders (more
/// checkouts than orders) conserve every user's credit and every item's stock,
/// and leave nothing prepared; the run exits 0 only if all invariants held.
#[test]
fn stress_with_repeated_orders_conserves_credit_and_stock() {
    let _serial = support::serial();
    let stdout = support::harness_run(
        "twopc-stress",
        &[
            "--protocol",
            "2pc",
            "--workload",
            "stress",
            "--port-base",
            "30000",
            "--gateway-port",
            "30080",
            "--checkouts",
            "5000",
            "--concurrency",
            "32",
            "--orders",
            "1500",
            "--users",
            "400",
            "--items",
            "60",
            "--stock",
            "40",
            "--credit",
            "8",
            "--seed",
            "7",
        ],
    );
    assert!(stdout.contains("invariants   OK"), "{stdout}");
    assert!(stdout.contains("200: ") && stdout.contains("400: "), "both outcomes exercised: {stdout}");
}

/// `harness run --workload zipf --rate`: an open loop on Zipf-skewed items
/// (orders created through the API) keeps every invariant.
#[test]
fn zipf_open_loop_keeps_every_invariant() {
    let _serial = support::serial();
    let stdout = support::harness_run(
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
            "--port-base",
            "30500",
            "--gateway-port",
            "30580",
            "--checkouts",
            "1000",
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
    assert!(stdout.contains("workload zipf | protocol 2pc | open loop at 100/s"), "{stdout}");
    assert!(stdout.contains("invariants   OK") && stdout.contains("400: "), "{stdout}");
}
