//! Crash points: a process dies (abort, as `kill -9` would) at each step of the
//! protocol; the supervisor restarts it; recovery must settle every checkout
//! all-or-nothing and leave no prepared transaction behind.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::api::{self, Api, path};
use crate::support::faults::{Case, arm, restarts, signal, wait_restart_count, wait_restarted};
use crate::support::{TestStack, component};
use harness::api::Reply;
use harness::wait::{self, Probe};

/// 2PC state in flight in the stack's databases, as the protocol reads it.
async fn in_flight(status: &Value) -> twopc::inspect::InFlight {
    let connect = |role: &str| sqlx::PgPool::connect(status["databases"][role].as_str().unwrap());
    let (order, stock, payment) =
        (connect("order").await.unwrap(), connect("stock").await.unwrap(), connect("payment").await.unwrap());
    let in_flight = twopc::inspect::in_flight(&order, &[&stock, &payment]).await.unwrap();
    for pool in [order, stock, payment] {
        pool.close().await;
    }
    in_flight
}

/// Waits until recovery has settled, then asserts that nothing is left prepared.
pub async fn assert_no_prepared_transactions(stack: &TestStack) {
    let status = stack.status().expect("stack running");
    crate::support::eventually("2PC recovery settled", Duration::from_secs(60), || async {
        let in_flight = in_flight(&status).await;
        crate::support::when(in_flight == twopc::inspect::InFlight::default(), || {
            format!("{} prepared, {} unfinished decisions", in_flight.prepared, in_flight.unfinished_decisions)
        })
    })
    .await;
}

/// A one-replica 2PC stack with short timeouts, so that recovery (and aborts on
/// a silent participant) happen within seconds.
fn fast_recovery_stack(name: &str) -> TestStack {
    let stack = TestStack::new(name);
    stack.up_with_env(
        &["--protocol", "2pc", "--replicas", "1"],
        &[
            ("TWOPC_IN_DOUBT_TIMEOUT_MS", "1500"),
            ("TWOPC_RECOVERY_INTERVAL_MS", "300"),
            ("TWOPC_PREPARE_TIMEOUT_MS", "2000"),
            ("TWOPC_LOCK_TIMEOUT_MS", "1000"),
            ("TWOPC_PHASE_TWO_DEADLINE_MS", "2000"),
        ],
    );
    stack
}

/// Kills `victim` at `point` during one checkout, and checks the aftermath:
/// the reply (if any) agrees with the final state, recovery settles, and a
/// second checkout then leaves the order paid exactly once.
async fn crash_during_checkout(stack: &TestStack, api: &Api, victim: &str, point: &str) {
    let case = Case::new(api).await;
    let before = restarts(stack, victim).await;
    arm(stack, victim, point).await;
    let (status, body) = api.checkout(&case.order).await.expect_reply();
    wait_restarted(stack, victim, before).await;
    assert_no_prepared_transactions(stack).await;
    let paid = case.assert_all_or_nothing(api, point).await;
    match status {
        200 => assert!(paid, "{point}: answered 200 but the order is not paid"),
        400..=499 => assert!(!paid, "{point}: answered {status} {body} but the order is paid"),
        _ => {} // 5xx or no answer: the final state decides
    }
    // The system is healthy again: checking out (again) ends paid, once.
    let (status, body) = api.checkout(&case.order).await.expect_reply();
    assert_eq!(status, 200, "{point}: checkout after recovery answered {body}");
    assert!(case.assert_all_or_nothing(api, point).await, "{point}: not paid after a successful checkout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_points_recover_all_or_nothing() {
    let _serial = crate::support::serial();
    let stack = fast_recovery_stack("twopc-crash");
    let api = api::client(&stack.gateway());

    for point in [
        "2pc.coordinator.after_first_prepared",
        "2pc.coordinator.after_stock_prepared",
        "2pc.coordinator.before_decision",
        "2pc.coordinator.after_decision",
        "2pc.coordinator.after_first_commit",
    ] {
        crash_during_checkout(&stack, &api, "order#0", point).await;
    }
    crash_during_checkout(&stack, &api, "stock#0", "2pc.participant.after_prepare").await;
    crash_during_checkout(&stack, &api, "payment#0", "2pc.participant.after_prepare").await;
    paused_participant_makes_the_coordinator_abort(&stack, &api).await;
    batch_init_waits_for_an_unfinished_commit(&stack, &api).await;
}

/// `batch_init` of an order whose commit is decided but whose phase two is
/// unfinished (the coordinator died after the decision, the stock participant
/// is paused so recovery cannot finish): the reset waits, answers 409 naming
/// the order, and changes nothing; once phase two is done it goes through and
/// the reset order can be paid again, exactly once.
async fn batch_init_waits_for_an_unfinished_commit(stack: &TestStack, api: &Api) {
    use nix::sys::signal::Signal;

    assert_eq!(api.post(&path::batch_init_stock(1, 10, 10)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_users(1, 100)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_orders(1, 1, 1, 10)).await.unwrap().0, 200);
    let before = restarts(stack, "order#0").await;
    arm(stack, "order#0", "2pc.coordinator.after_decision").await;
    // Straight to the replica: through the gateway the checkout would be
    // retried on the restarted coordinator, whose recovery could finish phase
    // two before the stock participant is paused.
    let died = crate::support::replica(stack, "order#0").checkout("0").await;
    assert_eq!(died.reply, Reply::NoReply, "the coordinator died after its decision: {died:?}");
    signal(stack, "stock#0", Signal::SIGSTOP);
    wait_restarted(stack, "order#0", before).await;
    let (status, body) = api.post(&path::batch_init_orders(1, 1, 1, 10)).await.unwrap();
    assert_eq!(status, 409, "reset with phase two unfinished: {body}");
    assert!(body["error"].as_str().unwrap().contains("order 0 has a 2PC commit"), "{body}");
    assert!(api.paid("0").await.unwrap(), "the refused reset changed nothing");
    signal(stack, "stock#0", Signal::SIGCONT);
    assert_no_prepared_transactions(stack).await;
    assert_eq!(api.stock_of("0").await.unwrap(), 8, "the decided commit was applied");
    assert_eq!(api.post(&path::batch_init_orders(1, 1, 1, 10)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_stock(1, 10, 10)).await.unwrap().0, 200);
    assert_eq!(api.post(&path::batch_init_users(1, 100)).await.unwrap().0, 200);
    let (status, body) = api.checkout("0").await.expect_reply();
    assert_eq!(status, 200, "the reset order is payable again: {body}");
    assert_eq!((api.stock_of("0").await.unwrap(), api.credit_of("0").await.unwrap()), (8, 80));
    assert_no_prepared_transactions(stack).await;
}

/// A participant that stops answering (SIGSTOP) makes the coordinator abort
/// at its prepare deadline instead of hanging the client; once it resumes,
/// recovery rolls back whatever it prepared.
async fn paused_participant_makes_the_coordinator_abort(stack: &TestStack, api: &Api) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let case = Case::new(api).await;
    let pid = component(&stack.status().unwrap(), "payment#0")["pid"].as_u64().unwrap();
    let pid = Pid::from_raw(pid as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let (status, body) = api.checkout(&case.order).await.expect_reply();
    let waited = started.elapsed();
    kill(pid, Signal::SIGCONT).unwrap();
    assert_eq!(status, 503, "a paused participant must abort the checkout: {body}");
    assert!(waited < Duration::from_secs(20), "the client waited {waited:?}");
    assert_no_prepared_transactions(stack).await;
    assert!(!case.assert_all_or_nothing(api, "paused participant").await);
    assert_eq!(api.checkout(&case.order).await.expect_reply().0, 200);
    assert!(case.assert_all_or_nothing(api, "paused participant").await);
}

/// `pg_ctl stop -m immediate` of a participant's database while a branch is
/// prepared and its coordinator is gone: the prepared transaction survives the
/// database's crash recovery and is then resolved (presumed abort).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn participant_database_crash_with_prepared_branches() {
    let _serial = crate::support::serial();
    let stack = fast_recovery_stack("twopc-dbcrash");
    let api = api::client(&stack.gateway());
    let case = Case::new(&api).await;

    // Leave branches prepared: the coordinator dies once both voted yes.
    let order_restarts = restarts(&stack, "order#0").await;
    arm(&stack, "order#0", "2pc.coordinator.before_decision").await;
    let _ = api.checkout(&case.order).await.expect_reply();
    let status = stack.status().unwrap();
    assert!(in_flight(&status).await.prepared > 0, "expected prepared branches before the database crash");

    // Immediate shutdown of the stock database (SIGQUIT is `pg_ctl stop -m immediate`).
    let pg_restarts = restarts(&stack, "postgres-stock").await;
    signal(&stack, "postgres-stock", nix::sys::signal::Signal::SIGQUIT);
    wait_restart_count(&stack, "postgres-stock", pg_restarts).await;
    wait_restarted(&stack, "order#0", order_restarts).await;

    assert_no_prepared_transactions(&stack).await;
    assert!(!case.assert_all_or_nothing(&api, "database crash").await, "no decision was made, so nothing is paid");
    assert_eq!(api.checkout(&case.order).await.expect_reply().0, 200);
    assert!(case.assert_all_or_nothing(&api, "database crash").await);
}

/// On a stack with several order replicas: the coordinator dies right after
/// its commit decision, so the gateway retries the checkout on another
/// replica, which finds the order paid. That retry is the same client request
/// (the gateway keeps its X-Gateway-Request-Id), so it must answer `"outcome":
/// "paid"`: answering `"already_paid"` would tell the client (and the
/// verifier) that another call paid, and an earlier refusal of the order
/// would then be blamed for the payment.
pub async fn a_retried_checkout_that_paid_answers_paid(stack: &TestStack, api: &Api) {
    let replicas = ["order#0", "order#1", "order#2"];
    let case = Case::new(api).await;
    let mut before = Vec::new();
    for name in replicas {
        before.push(restarts(stack, name).await);
        arm(stack, name, "2pc.coordinator.after_decision").await;
    }
    // Whichever replica gets the checkout dies after its decision; the retry
    // finds the order paid before it reaches a decision of its own.
    let (status, body) = api.checkout(&case.order).await.expect_reply();
    // The dead one may not answer; a live one left armed would crash a
    // later test's checkout, so the disarming is checked below.
    let mut disarmed = Vec::new();
    for name in replicas {
        let disarm = crate::support::replica(stack, name).delete(path::CRASHPOINTS).await;
        disarmed.push(disarm.is_ok_and(|(status, _)| status == 200));
    }
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "paid", "a try of the paying request: {body}");
    let died = || async {
        for (name, before) in replicas.iter().zip(&before) {
            if restarts(stack, name).await > *before {
                return Ok(Probe::Ready((*name, *before)));
            }
        }
        Ok(Probe::NotYet("no restart yet".to_owned()))
    };
    let crashed =
        wait::until("an order replica dying at the armed crash point", Duration::from_secs(30), died).await.unwrap();
    for (name, ok) in replicas.iter().zip(&disarmed) {
        assert!(*ok || *name == crashed.0, "{name} could not be disarmed");
    }
    wait_restarted(stack, crashed.0, crashed.1).await;
    assert_no_prepared_transactions(stack).await;
    assert!(case.assert_all_or_nothing(api, "retried checkout").await);
}
