//! The links between components (`harness up --links`): `harness status`
//! lists each with its setting, a round trip through a link costs what it is
//! set to (within tolerance), a setting changed on a running stack takes
//! effect (a delay, a bandwidth limit, resets), and a checkout goes through
//! every link.

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
    stack.up(&[
        "--protocol",
        "saga",
        "--link-latency",
        "10ms",
        "--link",
        "order->postgres-order=30ms",
        "--link-bandwidth",
        "10MB/s",
        "--link-bandwidth",
        "gateway->stock=5MB/s",
    ]);
    let status = stack.status().unwrap();

    // Every kind of link is there, with the delay and bandwidth it was given.
    for name in ["gateway->order#0", "gateway->stock#0", "order->stock#0", "order->payment#0", "stock->kafka#0"] {
        assert_eq!(link(&status, name)["delay"]["rtt_ms"], 10, "{name}");
        let rate = if name == "gateway->stock#0" { 5_000 } else { 10_000 };
        assert_eq!(link(&status, name)["bandwidth_kbps"], rate, "{name}");
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

    // A bandwidth limit holds a large answer back by its size over the rate:
    // 20 000 bytes at 20 KB/s take a second, straight a millisecond.
    let big = "SELECT repeat('x', 20000)";
    let fetch = |url: String| async move {
        let mut conn = PgConnection::connect(&url).await.expect("connects");
        let start = Instant::now();
        sqlx::query(big).execute(&mut conn).await.expect("the large answer");
        start.elapsed()
    };
    let out = stack.harness(&["link", "--bandwidth", "order->postgres-order=20KB/s"]);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    assert_eq!(link(&stack.status().unwrap(), "order->postgres-order")["bandwidth_kbps"], 20);
    let slow = fetch(proxied.clone()).await;
    assert!(slow >= Duration::from_millis(800), "20 000 bytes through a 20 KB/s link took {slow:?}");
    let fast = fetch(direct.clone()).await;
    assert!(fast < Duration::from_millis(200), "20 000 bytes straight took {fast:?}");
    let out = stack.harness(&["link", "--bandwidth", "order->postgres-order=0"]);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    assert_eq!(link(&stack.status().unwrap(), "order->postgres-order")["bandwidth_kbps"], Value::Null);

    // A reset link drops a connection that was open as soon as it carries a
    // byte (with a FIN), and every new one (with an RST); healed, new
    // connections live again.
    let mut open = PgConnection::connect(&proxied).await.expect("connects");
    let out = stack.harness(&["link", "--reset", "order->postgres-order"]);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    assert_eq!(link(&stack.status().unwrap(), "order->postgres-order")["reset"], true);
    assert!(sqlx::query("SELECT 1").execute(&mut open).await.is_err(), "an open connection is dropped");
    assert!(PgConnection::connect(&proxied).await.is_err(), "a new connection is reset");
    let out = stack.harness(&["link", "--heal", "order->postgres-order"]);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    assert_eq!(link(&stack.status().unwrap(), "order->postgres-order")["reset"], false);
    let through = pg_round_trip(&proxied).await;
    assert!(within(through, 4, slack), "healed, a round trip through the 4 ms link took {through:?}");

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

/// Links cut, reset and throttled under stress, then healed, on a stack
/// whose every link adds a millisecond: every invariant holds for both
/// protocols once the run settles. The faults hit each protocol where it
/// waits: 2PC's coordinator cannot reach a participant mid-prepare (a cut,
/// then resets), and a participant's database goes silent; the saga's stock
/// service loses its broker, the order service its database, and the
/// payment service's broker connections are reset. Each cut is shorter than
/// every timeout (the saga's consumer session, the 2PC prepare's), so the
/// run shows that held bytes arrive late without harm; a reset fails what
/// was on the wire, so the run shows that nothing half-done is left; a
/// throttled link slows what crosses it. Every fault is undone before the
/// load ends, so each hit live traffic. The 5xx these faults cost are not
/// counted against them.
#[test]
fn cut_reset_and_throttled_links_under_stress_keep_every_invariant() {
    let _serial = crate::support::serial();
    for (protocol, checked, faults) in [
        (
            "2pc",
            "no prepared transactions",
            [
                "cut:order->stock#0@1.5+1.5s",
                "cut:payment->postgres-payment@3.5+1s",
                "reset:order->payment#0@5+1s",
                "bandwidth:gateway->order#0@6.5+1s=20KB/s",
            ],
        ),
        (
            "saga",
            "one effect per saga step",
            [
                "cut:stock->kafka#0@1.5+1.5s",
                "cut:order->postgres-order@3.5+1s",
                "reset:payment->kafka#0@5+1s",
                "bandwidth:order->kafka#0@6.5+1s=20KB/s",
            ],
        ),
    ] {
        let mut args = vec!["--protocol", protocol, "--link-latency", "1ms"];
        args.extend_from_slice(crate::support::STRESS);
        for fault in faults {
            args.extend(["--fault", fault]);
        }
        // A shorter plan than the suites' stress: the faults are in its first seconds.
        let at = args.iter().position(|a| *a == "--checkouts").unwrap();
        args[at + 1] = "3000";
        let record = crate::support::harness_run(&format!("links-faults-{protocol}"), &args);
        record.assert_held(checked);
        let events = record.applied_faults();
        let last = events.iter().map(|(at, _)| *at).fold(0.0, f64::max);
        assert!(last < record.load_s(), "{protocol}: a fault was undone at {last} s, after the load's end: {record}");
        let mut applied: Vec<String> = events.into_iter().map(|(_, what)| what).collect();
        applied.sort();
        let mut want: Vec<String> = faults.iter().flat_map(|f| applied_and_undone(f)).collect();
        want.sort();
        assert_eq!(applied, want, "{protocol}: every link fault was applied and undone");
        assert!(record.replies("200") > 0, "{protocol}: checkouts were paid: {record}");
    }
}

/// The two events a link fault on one named link records: applied, undone.
fn applied_and_undone(fault: &str) -> [String; 2] {
    let (kind, rest) = fault.split_once(':').unwrap();
    let link = rest.split('@').next().unwrap();
    match kind {
        "cut" => [format!("cut {link}"), format!("heal {link}")],
        "reset" => [format!("reset {link}"), format!("stop resetting {link}")],
        "bandwidth" => {
            let rate = rest.rsplit('=').next().unwrap().trim_end_matches("KB/s");
            [format!("{link} at {rate} KB/s"), format!("{link} back to unlimited")]
        }
        other => panic!("not a link fault: {other}"),
    }
}
