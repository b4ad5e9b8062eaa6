//! Where the time of a checkout goes: the services' spans
//! ([`protocol_core::spans`]) laid over the checkouts' client-side latency.
//!
//! Each checkout's time, from the harness sending it to its reply, is cut at
//! every span boundary; each piece goes to the most specific phase whose span
//! covers it ([`Phase::PRIORITY`]), to "HTTP and gateway" when it is outside
//! the order service's handling of the request, and to "unattributed" when it
//! is inside it but no span says what it was. The report shows the checkouts
//! around the median latency (the middle tenth of those that paid), so the
//! bar adds up to the median checkout and the shares say what it waited for.

use std::collections::{BTreeMap, HashMap};

use protocol_core::spans::{Drained, Phase, Span};
use serde::Serialize;

use super::load::LoadResult;
use super::verify::Answer;

/// Time outside the order service's handler: the harness's client, nginx, the
/// network and the order service's HTTP stack.
pub const GATEWAY: &str = "HTTP and gateway";
/// Time inside the handler that no span covers.
pub const UNATTRIBUTED: &str = "unattributed";

/// The breakdown of a run's median checkouts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Breakdown {
    /// Milliseconds per phase, averaged over the checkouts around the median;
    /// in [`Breakdown::order`] when shown.
    pub ms: BTreeMap<String, f64>,
    /// Their mean latency (the sum of [`Breakdown::ms`]).
    pub total_ms: f64,
    /// How many checkouts that is.
    pub checkouts: usize,
    /// Checkouts left out because the order service recorded no handler span
    /// for them (it was restarted, its log was full, its drain failed): with
    /// nothing to cut their time by, they would show as gateway time.
    pub without_spans: usize,
    /// Spans the services could not keep (their logs were full).
    pub dropped: u64,
}

impl Breakdown {
    /// The phases in display order: the protocol's phases by priority, then
    /// the gateway, then what is unattributed.
    pub fn order() -> Vec<&'static str> {
        let phases = Phase::PRIORITY.iter().filter(|p| **p != Phase::Handler).map(|p| p.as_str());
        phases.chain([GATEWAY, UNATTRIBUTED]).collect()
    }

    /// Share of the time the spans account for.
    pub fn attributed(&self) -> f64 {
        let unattributed = self.ms.get(UNATTRIBUTED).copied().unwrap_or(0.0);
        1.0 - unattributed / self.total_ms.max(1e-9)
    }
}

/// The breakdown of `load`'s checkouts around the median, from the spans
/// every service recorded during it; `None` when there are no spans (the
/// services do not record them, or a target outside the harness).
pub fn of(load: &LoadResult, drained: Drained) -> Option<Breakdown> {
    if drained.spans.is_empty() {
        return None;
    }
    let aliases: HashMap<String, String> = drained.aliases.into_iter().collect();
    let mut by_order: HashMap<String, Vec<Span>> = HashMap::new();
    for mut span in drained.spans {
        if let Some(order) = aliases.get(&span.key) {
            span.key.clone_from(order);
        }
        by_order.entry(span.key.clone()).or_default().push(span);
    }
    // The checkouts that paid (or, if none did, every answered one).
    let mut windows: Vec<(&str, u64, u64)> = Vec::new();
    for only_paid in [true, false] {
        for (order, attempts) in &load.answers {
            for a in attempts.iter().filter(|a| a.replied && (!only_paid || a.answer == Answer::Ok)) {
                let start = load.started_us + u64::try_from(a.started.as_micros()).unwrap_or(0);
                let end = load.started_us + u64::try_from(a.ended.as_micros()).unwrap_or(0);
                windows.push((order.as_str(), start, end.max(start)));
            }
        }
        if !windows.is_empty() {
            break;
        }
    }
    // A checkout the order service recorded nothing for cannot be cut.
    let handled = |(order, start, end): &(&str, u64, u64)| {
        by_order.get(*order).is_some_and(|spans| {
            spans.iter().any(|s| s.phase == Phase::Handler && s.end_us > *start && s.start_us < *end)
        })
    };
    let all = windows.len();
    windows.retain(handled);
    let without_spans = all - windows.len();
    windows.sort_by_key(|(_, start, end)| end - start);
    let (from, to) = middle_tenth(windows.len());
    let band = &windows[from..to];
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    for (order, start, end) in band {
        let spans = by_order.get(*order).map_or(&[][..], Vec::as_slice);
        for (phase, us) in attribute(*start, *end, spans) {
            *sum.entry(phase.to_owned()).or_default() += us as f64 / 1000.0;
        }
    }
    let n = band.len().max(1) as f64;
    let ms: BTreeMap<String, f64> = sum.into_iter().map(|(k, v)| (k, v / n)).collect();
    let total_ms = ms.values().sum();
    Some(Breakdown { ms, total_ms, checkouts: band.len(), without_spans, dropped: drained.dropped })
}

/// Indices of the middle tenth of `n` sorted values (at least one).
fn middle_tenth(n: usize) -> (usize, usize) {
    if n == 0 {
        return (0, 0);
    }
    let width = (n / 10).max(1);
    let from = (n - width) / 2;
    (from, from + width)
}

/// Microseconds of `start..end` per phase name (see the module docs).
fn attribute(start: u64, end: u64, spans: &[Span]) -> BTreeMap<&'static str, u64> {
    let inside: Vec<&Span> = spans.iter().filter(|s| s.end_us > start && s.start_us < end).collect();
    let mut cuts: Vec<u64> = inside.iter().flat_map(|s| [s.start_us.max(start), s.end_us.min(end)]).collect();
    cuts.extend([start, end]);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = BTreeMap::new();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let covering = inside.iter().filter(|s| s.start_us <= a && s.end_us >= b).map(|s| s.phase).min();
        let name = match covering {
            None => GATEWAY,
            Some(Phase::Handler) => UNATTRIBUTED,
            Some(phase) => phase.as_str(),
        };
        *out.entry(name).or_default() += b - a;
    }
    out
}

/// Drains the span logs of every replica (`(service, base URL)`); a replica
/// that does not answer contributes nothing.
pub async fn drain(http: &reqwest::Client, replicas: &[(String, String)]) -> Drained {
    let mut all = Drained::default();
    for (_, url) in replicas {
        let drained = async {
            let reply = http.get(format!("{url}{}", crate::api::path::SPANS)).send().await?.error_for_status()?;
            anyhow::Ok(reply.json::<Drained>().await?)
        };
        match drained.await {
            Ok(d) => {
                all.spans.extend(d.spans);
                all.aliases.extend(d.aliases);
                all.dropped += d.dropped;
            }
            Err(err) => tracing::warn!(url, error = %err, "no spans from this replica; its checkouts are left out"),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(key: &str, phase: Phase, start_us: u64, end_us: u64) -> Span {
        Span { key: key.to_owned(), phase, start_us, end_us }
    }

    /// A load in which each of `orders` was paid by one 1 ms checkout.
    fn load(orders: &[&str], started_us: u64) -> LoadResult {
        use std::time::Duration;
        let attempt = || super::super::verify::Attempt {
            answer: Answer::Ok,
            started: Duration::ZERO,
            ended: Duration::from_millis(1),
            replied: true,
        };
        LoadResult {
            answers: orders.iter().map(|o| ((*o).to_owned(), vec![attempt()])).collect(),
            statuses: BTreeMap::new(),
            aborts: BTreeMap::new(),
            timeline: Vec::new(),
            latency_us: hdrhistogram::Histogram::new(3).unwrap(),
            repeat_latency_us: hdrhistogram::Histogram::new(3).unwrap(),
            first_latency_us: hdrhistogram::Histogram::new(3).unwrap(),
            elapsed: Duration::from_secs(1),
            started_us,
            by_position: Vec::new(),
            window: Duration::from_secs(1),
            in_window: super::super::load::Split::default(),
        }
    }

    #[test]
    fn overlaps_go_to_the_most_specific_phase_and_gaps_are_named() {
        // Client 0..100; handler 10..90; a call 20..60 during which the
        // participant flushed 30..40; SQL 50..70 overlapping the call's end.
        let spans = [
            span("o", Phase::Handler, 10, 90),
            span("o", Phase::Call, 20, 60),
            span("o", Phase::Flush, 30, 40),
            span("o", Phase::Sql, 50, 70),
            span("o", Phase::Sql, 200, 300), // another checkout of the order
        ];
        let got = attribute(0, 100, &spans);
        assert_eq!(got.get(GATEWAY), Some(&20));
        assert_eq!(got.get(Phase::Flush.as_str()), Some(&10));
        assert_eq!(got.get(Phase::Call.as_str()), Some(&20));
        assert_eq!(got.get(Phase::Sql.as_str()), Some(&20));
        assert_eq!(got.get(UNATTRIBUTED), Some(&30));
        assert_eq!(got.values().sum::<u64>(), 100, "every microsecond goes somewhere, once");
    }

    #[test]
    fn checkouts_without_a_handler_span_are_left_out_and_counted() {
        let load = load(&["seen", "unseen"], 0);
        let drained = Drained { spans: vec![span("seen", Phase::Handler, 100, 900)], aliases: Vec::new(), dropped: 3 };
        let b = of(&load, drained).unwrap();
        assert_eq!((b.checkouts, b.without_spans, b.dropped), (1, 1, 3));
        assert!((b.ms[GATEWAY] - 0.2).abs() < 1e-9, "the unseen checkout's time is not counted as gateway");
    }

    #[test]
    fn the_median_band_is_the_middle_tenth() {
        assert_eq!(middle_tenth(0), (0, 0));
        assert_eq!(middle_tenth(1), (0, 1));
        assert_eq!(middle_tenth(100), (45, 55));
        assert_eq!(middle_tenth(15), (7, 8));
    }

    #[test]
    fn participant_spans_join_their_order_through_the_alias() {
        let load = load(&["o"], 1_000_000);
        let drained = Drained {
            spans: vec![
                span("o", Phase::Handler, 1_000_100, 1_000_900),
                span("txn", Phase::Flush, 1_000_200, 1_000_700),
            ],
            aliases: vec![("txn".to_owned(), "o".to_owned())],
            dropped: 0,
        };
        let b = of(&load, drained).unwrap();
        assert_eq!((b.checkouts, b.without_spans), (1, 0));
        assert!((b.ms[Phase::Flush.as_str()] - 0.5).abs() < 1e-9);
        assert!((b.total_ms - 1.0).abs() < 1e-9);
        assert!((b.attributed() - 0.7).abs() < 1e-9);
    }
}
