//! Micro-benchmarks of the saga code that runs on every message without I/O:
//! the orchestrator's state machine walked to a paid saga in each mode, and
//! the envelope's wire format (every command and reply is encoded once and
//! decoded at least once). Run with `cargo bench -p saga --bench saga_protocol`.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use protocol_core::{LineItem, Work};
use saga::machine::{Action, Event, Mode, Saga};
use saga::messages::{Body, Envelope, Step};

/// Drives one saga to its end, every step succeeding; returns the number of
/// actions it took.
fn paid_walk(mode: Mode) -> usize {
    let (mut saga, mut todo) = Saga::start(mode);
    let mut steps = 0;
    while let Some(action) = todo.pop() {
        steps += 1;
        let event = match action {
            Action::Do(step) => Event::Done(step),
            Action::Undo(step) => Event::Compensated(step),
            Action::Finish(_) => continue,
        };
        todo.extend(saga.on(event).unwrap_or_default());
    }
    steps
}

fn machine(c: &mut Criterion) {
    let mut group = c.benchmark_group("saga_machine_paid");
    group.throughput(Throughput::Elements(1));
    for mode in [Mode::Sequential, Mode::Parallel] {
        group.bench_function(mode.as_str(), |b| b.iter(|| paid_walk(black_box(mode))));
    }
    group.finish();
}

fn messages(c: &mut Criterion) {
    let items =
        vec![LineItem { item_id: "17".to_owned(), quantity: 1 }, LineItem { item_id: "942".to_owned(), quantity: 2 }];
    let body = Body::Action { work: Work::Stock { items, as_of_us: Some(1_764_590_000_000_000) } };
    let envelope = Envelope::new(uuid::Uuid::new_v4(), "1234", Step::ReserveStock, body);
    let payload = envelope.encode();
    let mut group = c.benchmark_group("saga_envelope");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("encode", |b| b.iter(|| black_box(&envelope).encode()));
    group.bench_function("decode", |b| b.iter(|| Envelope::decode(black_box(&payload))));
    group.finish();
}

criterion_group!(benches, machine, messages);
criterion_main!(benches);
