//! Checkout throughput per contender and concurrency, against a local stack
//! this bench starts itself (the real `harness up`: three PostgreSQL
//! clusters, Kafka, Redis, the release services, nginx) and stops at the end.
//!
//! One iteration is one checkout of a fresh order; a sample of `n`
//! iterations re-initialises `n` unpaid orders (not timed), then `clients`
//! concurrent clients check them out through the gateway and the sample's
//! time is from the first request to the last reply. Criterion reports
//! checkouts per second (`Throughput::Elements`).
//!
//! Each contender's stack is first loaded for a minute, unmeasured (see
//! [`warm_up`]). `cargo bench` (the workspace) builds the service binaries
//! next to this bench's harness binary; `cargo bench -p harness` alone does
//! not, so build them first (`cargo build --release --workspace --bins`).
//! The stack uses ports 26000-26400 and `target/bench-stack`.
//! `SAGA2PC_BENCH_CONTENDERS=2pc,saga-seq` runs only those contenders.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::api::{Api, Class};
use harness::compare::plan::{Contender, contenders};

const PORT_BASE: &str = "26000";
const GATEWAY_PORT: &str = "26080";
const GATEWAY: &str = "http://127.0.0.1:26080";
const CLIENTS: [usize; 3] = [1, 8, 32];
/// Items and users the orders draw from; stock and credit never run out.
const ITEMS: i64 = 1_000;
const USERS: i64 = 1_000;
const PLENTY: i64 = 1_000_000_000;

fn harness(args: &[&str]) {
    let run_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-stack");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .args(["--run-dir", run_dir])
        .output()
        .expect("the harness binary runs");
    assert!(
        out.status.success(),
        "harness {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stack of one contender, stopped when dropped.
struct Stack;

impl Stack {
    fn start(c: &Contender) -> Stack {
        let (protocol, mode, order) = (c.protocol.to_string(), c.saga_mode.to_string(), c.twopc_order.to_string());
        harness(&[
            "up",
            "--detach",
            "--protocol",
            &protocol,
            "--saga-mode",
            &mode,
            "--twopc-order",
            &order,
            "--port-base",
            PORT_BASE,
            "--gateway-port",
            GATEWAY_PORT,
        ]);
        Stack
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Never panics: a drop may run while unwinding.
        let run_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-stack");
        let down = Command::new(env!("CARGO_BIN_EXE_harness")).args(["down", "--run-dir", run_dir]).output();
        if !down.is_ok_and(|out| out.status.success()) {
            eprintln!("harness down failed; stop the stack in {run_dir} by hand");
        }
    }
}

/// Loads the fresh stack (32 clients, unmeasured) for as long as `harness
/// compare` warms one up at least: the broker's JVM compiles its hot paths
/// through the first minute of load.
async fn warm_up(api: &Api) {
    let until = Instant::now() + harness::timeouts::WARM_UP_AT_LEAST;
    while Instant::now() < until {
        sample(api, 2_000, 32).await;
    }
}

/// Times `n` checkouts of fresh orders from `clients` concurrent clients.
async fn sample(api: &Api, n: u64, clients: usize) -> Duration {
    let orders = i64::try_from(n).expect("a sample of fewer than 2^63 checkouts");
    api.batch_init_orders(orders, ITEMS, USERS, 1).await.expect("orders initialised");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers = (0..clients).map(|_| {
        let (api, next) = (api.clone(), Arc::clone(&next));
        tokio::spawn(async move {
            loop {
                let order = next.fetch_add(1, Ordering::Relaxed);
                if order >= n {
                    return;
                }
                let reply = api.checkout(&order.to_string()).await;
                assert_eq!(reply.reply.class(), Class::Paid, "checkout of {order}: {:?} {}", reply.status, reply.body);
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.expect("a client task panicked");
    }
    started.elapsed()
}

fn wanted(c: &Contender) -> bool {
    std::env::var("SAGA2PC_BENCH_CONTENDERS").map_or(true, |list| list.split(',').any(|name| name == c.name))
}

fn checkout_throughput(crit: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let api = Api::new(GATEWAY, harness::timeouts::REPLY, 64).expect("an HTTP client");
    let mut group = crit.benchmark_group("checkout");
    group.sample_size(10).warm_up_time(Duration::from_secs(3)).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for contender in contenders().iter().filter(|c| wanted(c)) {
        let _stack = Stack::start(contender);
        runtime.block_on(async {
            api.batch_init_stock(ITEMS, PLENTY, 1).await.expect("items initialised");
            api.batch_init_users(USERS, PLENTY).await.expect("users initialised");
            warm_up(&api).await;
        });
        for clients in CLIENTS {
            group.bench_function(BenchmarkId::new(contender.name.as_str(), format!("{clients}-clients")), |b| {
                b.to_async(&runtime).iter_custom(|n| sample(&api, n, clients));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, checkout_throughput);
criterion_main!(benches);
