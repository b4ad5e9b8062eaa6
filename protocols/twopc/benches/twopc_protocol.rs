//! Micro-benchmarks of the 2PC code that runs on every checkout without I/O:
//! the coordinator's state machine walked to a commit under each prepare
//! order, and gid formatting and parsing (every prepare, commit and resolve
//! builds or validates one). Run with `cargo bench -p twopc --bench twopc_protocol`.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use twopc::machine::{Action, Event, Machine, Vote};
use twopc::{Gid, InstanceName, ParticipantId, PrepareOrder};

/// Drives one transaction to its reply, every participant voting yes and
/// acknowledging at once; returns the number of actions it took.
fn commit_walk(order: PrepareOrder) -> usize {
    let (mut machine, mut todo) = Machine::start(order);
    let mut steps = 0;
    while let Some(action) = todo.pop() {
        steps += 1;
        let event = match action {
            Action::Prepare(p) => Event::Voted(p, Vote::Yes),
            Action::LogDecision(d) => Event::DecisionLogged(d),
            Action::Commit(p) | Action::Rollback(p) => Event::Acked(p),
            Action::Reply(_) => continue,
        };
        todo.extend(machine.step(event));
    }
    steps
}

fn machine(c: &mut Criterion) {
    let mut group = c.benchmark_group("twopc_machine_commit");
    group.throughput(Throughput::Elements(1));
    for order in PrepareOrder::ALL {
        group.bench_function(order.as_str(), |b| b.iter(|| commit_walk(black_box(order))));
    }
    group.finish();
}

fn gid(c: &mut Criterion) {
    let instance = InstanceName::new("order-0").expect("valid instance name");
    let gid = Gid::new(instance.clone(), uuid::Uuid::new_v4(), ParticipantId::Stock);
    let text = gid.to_string();
    let mut group = c.benchmark_group("twopc_gid");
    group.throughput(Throughput::Elements(1));
    group.bench_function("format", |b| {
        b.iter(|| Gid::new(instance.clone(), black_box(gid.txn), ParticipantId::Payment).to_string())
    });
    group.bench_function("parse", |b| b.iter(|| black_box(text.as_str()).parse::<Gid>()));
    group.bench_function("sql_literal", |b| b.iter(|| black_box(&gid).sql_literal()));
    group.finish();
}

criterion_group!(benches, machine, gid);
criterion_main!(benches);
