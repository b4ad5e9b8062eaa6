//! 2PC end to end: the conformance suite through the gateway, and crash points
//! that kill real processes, against a stack started by `harness up`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

#[path = "../support/mod.rs"]
mod support;

mod crash;

use support::TestStack;
use support::api::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_over_two_pc() {
    let stack = TestStack::new("twopc-conformance", 31000, 31080);
    stack.up(&["--protocol", "2pc", "--replicas", "2"]);
    let api = Api::new(&stack.gateway());
    support::conformance::run_all(&api).await;
    crash::assert_no_prepared_transactions(&stack).await;
}
