//! The links between components (`harness up --links`): `harness status`
//! lists each with its setting, a round trip through a link costs what it is
//! set to (within tolerance), a setting changed on a running stack takes
//! effect, and a checkout goes through every link.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::support::{TestStack, api};

/// The link named `name` in `harness status`.
fn link<'a>(status: &'a Value, name: &str) -> &'a Value {
    let links = status["links"].as_array().expect("status lists the links");
    links.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("no link {name} in {links:?}"))
}

/// The median of five round trips of `SELECT 1` on `url`.
async fn pg_round_trip(url: &str) -> Duration {
    let mut conn = PgConnection::connect(url).await.expect("connects");
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        sqlx::query("SELECT 1").execute(&mut conn).await.expect("SELECT 1");
        times.push(start.elapsed());
    }
    times.sort();
    times[2]
}

/// Whether `measured` is the link's `set_ms` plus at most `slack` of
/// machine noise (never less: a proxy cannot deliver early).
fn within(measured: Duration, set_ms: u64, slack: Duration) -> bool {
    let set = Duration::from_millis(set_ms);
    measured >= set.mul_f64(0.95) && measured <= set + slack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_add_their_delay_and_carry_a_checkout() {
    let _serial = crate::support::serial();
    let stack = TestStack::new("links-stack");
    stack.up(&["--protocol", "saga", "--link-latency", "10ms", "--link", "order->postgres-order=30ms"]);
    let status = stack.status().unwrap();

    // Every kind of link is there, with the delay it was given.
    for name in ["gateway->order#0", "gateway->stock#0", "order->stock#0", "order->payment#0", "stock->kafka#0"] {
        assert_eq!(link(&status, name)["delay"]["rtt_ms"], 10, "{name}");
    }
    let order_db = link(&status, "order->postgres-order");
    assert_eq!(order_db["delay"]["rtt_ms"], 30);

    // A database round trip through the link pays its delay; straight, it does not.
    let direct = status["databases"]["order"].as_str().unwrap().to_owned();
    let listen = order_db["listen"].as_str().unwrap();
    let proxied = format!("postgres://postgres@{listen}/orders");
    let slack = Duration::from_millis(15);
    let straight = pg_round_trip(&direct).await;
    assert!(straight < Duration::from_millis(5), "a straight round trip took {straight:?}");
    let through = pg_round_trip(&proxied).await;
    assert!(within(through, 30, slack), "a round trip through a 30 ms link took {through:?}");

    // Changed on the running stack, the setting holds for the next round trip.
    let out = stack.harness(&["link", "order->postgres-order=4ms"]);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    assert_eq!(link(&stack.status().unwrap(), "order->postgres-order")["delay"]["rtt_ms"], 4);
    let through = pg_round_trip(&proxied).await;
    assert!(within(through, 4, slack), "a round trip through a 4 ms link took {through:?}");
    let out = stack.harness(&["link", "order->nowhere=4ms"]);
    assert!(!out.status.success(), "an unknown link is refused");

    // A checkout crosses every link of the saga: gateway, Kafka, databases.
    let api = api::client(&stack.gateway());
    let user = api.new_user(10).await.unwrap();
    let item = api.new_item(3, 5).await.unwrap();
    let order = api.new_order(&user, &[(&item, 2)]).await.unwrap();
    let (status, body) = api.checkout(&order).await.expect_reply();
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.credit_of(&user).await.unwrap(), 4);
    assert_eq!(api.stock_of(&item).await.unwrap(), 3);
}

/// A link cut under stress, then healed, on a stack whose every link adds a
/// millisecond: every invariant holds for both protocols once the run
/// settles. The cuts hit each protocol where it waits: 2PC's coordinator
/// cannot reach a participant mid-prepare, and a participant's database goes
/// silent; the saga's stock service loses its broker, and the order
/// service its database. Each cut is shorter than every timeout (the saga's
/// consumer session, the 2PC prepare's), so the run shows that held bytes
/// arrive late without harm; the 5xx a cut may cost are not counted against
/// it.
#[test]
fn a_cut_link_under_stress_keeps_every_invariant() {
    let _serial = crate::support::serial();
    for (protocol, checked, cuts) in [
        ("2pc", "no prepared transactions", ["cut:order->stock#0@2+2s", "cut:payment->postgres-payment@5+1s"]),
        ("saga", "one effect per saga step", ["cut:stock->kafka#0@2+2s", "cut:order->postgres-order@5+1s"]),
    ] {
        let mut args = vec!["--protocol", protocol, "--link-latency", "1ms"];
        args.extend_from_slice(crate::support::STRESS);
        for cut in cuts {
            args.extend(["--fault", cut]);
        }
        // A shorter plan than the suites' stress: the cuts are in its first seconds.
        let at = args.iter().position(|a| *a == "--checkouts").unwrap();
        args[at + 1] = "3000";
        let record = crate::support::harness_run(&format!("links-cut-{protocol}"), &args);
        record.assert_held(checked);
        let faults: Vec<String> = record.applied_faults().into_iter().map(|(_, what)| what).collect();
        let link = |fault: &str| fault.trim_start_matches("cut:").split('@').next().unwrap().to_owned();
        let expected: Vec<String> =
            cuts.iter().flat_map(|c| [format!("cut {}", link(c)), format!("heal {}", link(c))]).collect();
        let mut sorted = faults.clone();
        sorted.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want, "{protocol}: every cut was made and healed");
        assert!(record.replies("200") > 0, "{protocol}: checkouts were paid: {record}");
    }
}
