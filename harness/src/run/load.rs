//! The load drivers. Both send a precomputed plan of checkouts (order ids in
//! sending order, drawn from the run's seed, so every protocol gets the same
//! sequence):
//!
//! - closed loop: `concurrency` clients, each sending its next checkout as soon
//!   as its previous one answered;
//! - open loop: checkout `i` starts at `start + i / rate` whether or not earlier
//!   ones answered, and its latency is measured from that scheduled time, so a
//!   system that falls behind shows its queueing in the latency instead of
//!   silently lowering the offered load (coordinated omission).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::verify::{Answer, Attempt};
use crate::api::{Api, Class, Reply};

/// What one run of the driver saw.
#[derive(Debug)]
pub struct LoadResult {
    /// Checkout attempts per order id.
    pub answers: HashMap<String, Vec<Attempt>>,
    /// Replies per status (`"200"`, `"400"`, `"503"`, `"error"`).
    pub statuses: BTreeMap<String, u64>,
    /// Checkouts that did not succeed, by [`Reply`] class (`out-of-stock`,
    /// `insufficient-credit`, `system`, ...).
    pub aborts: BTreeMap<&'static str, u64>,
    /// Replies per second of the load, by when they arrived.
    pub timeline: Vec<Second>,
    /// Latency of every checkout to its reply, in microseconds.
    pub latency_us: Histogram<u64>,
    /// The same, of the repeats: checkouts of an order that an earlier
    /// position of the plan already checked out. The plan is the same for
    /// every contender, so the split is too, whatever each answered.
    pub repeat_latency_us: Histogram<u64>,
    /// The same, of each order's first checkout in the plan.
    pub first_latency_us: Histogram<u64>,
    /// Replies within the load's window ([`LoadResult::window`]), of each
    /// order's first checkout and of the repeats.
    pub in_window: Split,
    /// Wall time of the load phase.
    pub elapsed: Duration,
    /// When the load started, in microseconds since the Unix epoch (the
    /// clock the services' spans use; attempts' times count from it).
    pub started_us: u64,
    /// Every checkout by its position in the plan: `(position, sent, done)`,
    /// from the start of the load.
    pub by_position: Vec<(usize, Duration, Duration)>,
    /// The time checkouts were being started: the deadline of a timed load,
    /// else the whole load ([`LoadResult::halves_per_s`] cuts it in two).
    pub window: Duration,
}

/// A count of each order's first checkout in the plan and of the repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// Each order's first checkout.
    pub first: u64,
    /// Checkouts of an order an earlier position of the plan checked out.
    pub repeats: u64,
}

/// The replies that arrived during one second of the load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// 200: paid.
    pub ok: u64,
    /// 4xx: refused by the business rules (nothing changed).
    pub rejected: u64,
    /// 5xx, timeouts and connection errors.
    pub failed: u64,
}

/// One checkout as the driver saw it.
#[derive(Debug)]
struct Seen {
    /// Its position in the plan (counting on past the end when the load
    /// cycles through it).
    position: usize,
    order: String,
    status: Option<u16>,
    reply: Reply,
    answer: Answer,
    latency_us: u64,
    /// When the request was sent, from the start of the load.
    sent_at: Duration,
    /// When the reply arrived, from the start of the load.
    done_at: Duration,
}

impl LoadResult {
    /// Checkouts answered per second of the load's window: the replies that
    /// arrived within it, over its length. A timed load's checkouts still in
    /// flight at the deadline are answered after it; counting them over the
    /// longer wall time would charge a contender with a long tail for its
    /// drain, not its pace.
    pub fn throughput(&self) -> f64 {
        (self.in_window.first + self.in_window.repeats) as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Replies per second in the first and the second half of the load's
    /// window (replies after it, of checkouts still in flight at a deadline,
    /// left out): a steady load answers as fast in both
    /// ([`crate::compare::sample::HALVES_WITHIN`]).
    pub fn halves_per_s(&self) -> [f64; 2] {
        let half = self.window / 2;
        let secs = half.as_secs_f64().max(1e-9);
        let first = self.by_position.iter().filter(|(_, _, done)| *done < half).count();
        let second = self.by_position.iter().filter(|(_, _, done)| *done >= half && *done < self.window).count();
        [first as f64 / secs, second as f64 / secs]
    }

    /// Checkouts answered per second over the plan's positions `positions`:
    /// how many there were over the time from the first one's request to the
    /// last one's answer (`None` without any). A plan's mix changes along it
    /// (repeats of an order, answered at once, grow more frequent), so a part
    /// of it is compared with the same part.
    pub fn throughput_over(&self, positions: std::ops::Range<usize>) -> Option<f64> {
        let window: Vec<_> = self.by_position.iter().filter(|(p, ..)| positions.contains(p)).collect();
        let first = window.iter().map(|(_, sent, _)| *sent).min()?;
        let last = window.iter().map(|(_, _, done)| *done).max()?;
        Some(window.len() as f64 / last.saturating_sub(first).as_secs_f64().max(1e-9))
    }
}

async fn checkout(api: &Api, order: &str) -> (Option<u16>, Reply, Answer) {
    let reply = api.checkout(order).await;
    (reply.status, reply.reply, Answer::of(reply.reply))
}

/// A progress bar on stderr for `total` checkouts (hidden when stderr is not
/// a terminal, so logs and CI output stay clean).
pub fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec:>10} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Sends every checkout of `plan` from `concurrency` clients in a closed loop
/// through `api` (whose timeout bounds each wait for a reply); with
/// `duration`, cycles through the plan until the deadline instead.
pub async fn closed_loop(
    api: &Api,
    plan: Arc<Vec<String>>,
    concurrency: usize,
    duration: Option<Duration>,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!plan.is_empty(), "the plan has no checkouts");
    let next = Arc::new(AtomicU64::new(0));
    let bar = match duration {
        Some(d) => progress(d.as_secs(), "seconds"),
        None => progress(plan.len() as u64, "checkouts"),
    };
    let started = Instant::now();
    let started_us = protocol_core::spans::now_us();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (api, next, plan, bar) = (api.clone(), next.clone(), plan.clone(), bar.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let order = match duration {
                        Some(d) if started.elapsed() >= d => break,
                        Some(_) => &plan[i % plan.len()],
                        None => match plan.get(i) {
                            Some(order) => order,
                            None => break,
                        },
                    };
                    let (sent, sent_at) = (Instant::now(), started.elapsed());
                    let (status, reply, answer) = checkout(&api, order).await;
                    let latency_us = micros(sent);
                    let done_at = started.elapsed();
                    let position = i;
                    seen.push(Seen {
                        position,
                        order: order.clone(),
                        status,
                        reply,
                        answer,
                        latency_us,
                        sent_at,
                        done_at,
                    });
                    match duration {
                        Some(_) => bar.set_position(started.elapsed().as_secs()),
                        None => bar.inc(1),
                    }
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for worker in workers {
        seen.extend(worker.await?);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    collect(seen, elapsed, duration.unwrap_or(elapsed).min(elapsed), started_us)
}

/// Starts the checkouts of `plan` at `rate` per second through `api`, each in
/// its own task; with `duration`, `rate x duration` of them, cycling through
/// the plan.
pub async fn open_loop(
    api: &Api,
    plan: Arc<Vec<String>>,
    rate: f64,
    duration: Option<Duration>,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of checkouts per second");
    anyhow::ensure!(!plan.is_empty(), "the plan has no checkouts");
    let total = match duration {
        Some(d) => (rate * d.as_secs_f64()).ceil() as usize,
        None => plan.len(),
    };
    let bar = progress(total as u64, "checkouts");
    let started = Instant::now();
    let started_us = protocol_core::spans::now_us();
    let mut tasks = Vec::with_capacity(total);
    for (i, order) in plan.iter().cycle().take(total).enumerate() {
        let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (api, order, bar) = (api.clone(), order.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let sent_at = started.elapsed();
            let (status, reply, answer) = checkout(&api, &order).await;
            bar.inc(1);
            let done_at = started.elapsed();
            Seen { position: i, order, status, reply, answer, latency_us: micros(scheduled), sent_at, done_at }
        }));
    }
    let mut seen = Vec::with_capacity(tasks.len());
    for task in tasks {
        seen.push(task.await?);
    }
    bar.finish_and_clear();
    // The last checkout starts at (total - 1) / rate: the window of starts.
    let elapsed = started.elapsed();
    let window = Duration::from_secs_f64(total as f64 / rate).min(elapsed);
    collect(seen, elapsed, window, started_us)
}

fn collect(seen: Vec<Seen>, elapsed: Duration, window: Duration, started_us: u64) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult {
        answers: HashMap::new(),
        statuses: BTreeMap::new(),
        aborts: BTreeMap::new(),
        timeline: vec![Second::default(); elapsed.as_secs() as usize + 1],
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        repeat_latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        first_latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        elapsed,
        started_us,
        by_position: seen.iter().map(|s| (s.position, s.sent_at, s.done_at)).collect(),
        window,
        in_window: Split::default(),
    };
    // An order's first checkout is its lowest position in the plan.
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    for s in &seen {
        let at = first_at.entry(s.order.as_str()).or_insert(s.position);
        *at = (*at).min(s.position);
    }
    let repeats: Vec<bool> = seen.iter().map(|s| first_at[s.order.as_str()] != s.position).collect();
    for (s, repeat) in seen.into_iter().zip(repeats) {
        let attempt = Attempt { answer: s.answer, started: s.sent_at, ended: s.done_at, replied: s.status.is_some() };
        result.answers.entry(s.order).or_default().push(attempt);
        let key = s.status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        *result.statuses.entry(key).or_default() += 1;
        if s.reply.class() != Class::Paid {
            *result.aborts.entry(s.reply.name()).or_default() += 1;
        }
        let second = (s.done_at.as_secs() as usize).min(result.timeline.len() - 1);
        let slot = &mut result.timeline[second];
        match s.reply.class() {
            Class::Paid => slot.ok += 1,
            Class::Refused => slot.rejected += 1,
            Class::Failed => slot.failed += 1,
        }
        result.latency_us.saturating_record(s.latency_us);
        let population = if repeat { &mut result.repeat_latency_us } else { &mut result.first_latency_us };
        population.saturating_record(s.latency_us);
        if s.done_at < window {
            let count = if repeat { &mut result.in_window.repeats } else { &mut result.in_window.first };
            *count += 1;
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_over_a_part_of_the_plan_counts_that_part_only() {
        let ms = Duration::from_millis;
        let mut result = collect(Vec::new(), ms(3000), ms(3000), 0).unwrap();
        // Positions 0-1 slow (1 s each), 2-5 answered within 200 ms.
        result.by_position = vec![
            (0, ms(0), ms(1000)),
            (1, ms(1000), ms(2000)),
            (2, ms(2000), ms(2050)),
            (3, ms(2050), ms(2100)),
            (4, ms(2100), ms(2150)),
            (5, ms(2150), ms(2200)),
        ];
        let fast = result.throughput_over(2..6).unwrap();
        assert!((fast - 20.0).abs() < 1e-6, "{fast}");
        let slow = result.throughput_over(0..2).unwrap();
        assert!((slow - 1.0).abs() < 1e-6, "{slow}");
        assert_eq!(result.throughput_over(10..20), None);
    }

    #[test]
    fn timeline_and_aborts_count_every_reply_once() {
        let seen = |order: &str, status, reply, ms: u64| Seen {
            position: ms as usize,
            order: order.into(),
            status,
            reply,
            answer: Answer::of(reply),
            latency_us: 1000,
            sent_at: Duration::from_millis(ms - 1),
            done_at: Duration::from_millis(ms),
        };
        let result = collect(
            vec![
                seen("a", Some(200), Reply::Paid { already: false }, 100),
                seen("b", Some(400), Reply::OutOfStock, 900),
                seen("c", Some(503), Reply::System, 1500),
                seen("a", None, Reply::NoReply, 2100),
                seen("a", Some(200), Reply::Paid { already: true }, 2040),
            ],
            Duration::from_millis(2050),
            Duration::from_millis(2000),
            0,
        )
        .unwrap();
        assert_eq!(
            result.timeline,
            [
                Second { ok: 1, rejected: 1, failed: 0 },
                Second { ok: 0, rejected: 0, failed: 1 },
                Second { ok: 1, rejected: 0, failed: 1 }
            ]
        );
        assert_eq!(result.aborts.get("out-of-stock"), Some(&1));
        assert_eq!(result.aborts.get("system-5xx"), Some(&1));
        assert_eq!(result.aborts.get("no-reply"), Some(&1));
        assert_eq!(result.answers["a"].len(), 3);
        assert_eq!(result.latency_us.len(), 5);
        // Order "a" at later positions of the plan: repeats, whatever they answered.
        assert_eq!((result.first_latency_us.len(), result.repeat_latency_us.len()), (3, 2));
        // Two replies in the first second, one in the second; 2.04 s and 2.1 s are past the window.
        assert_eq!(result.halves_per_s(), [2.0, 1.0]);
        // Throughput is over the window: three first checkouts in 2 s (the repeats of "a" came after it).
        assert_eq!(result.in_window, Split { first: 3, repeats: 0 });
        assert!((result.throughput() - 1.5).abs() < 1e-9, "{}", result.throughput());
    }
}
