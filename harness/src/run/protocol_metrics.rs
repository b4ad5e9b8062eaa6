//! The protocols' own counters (`GET /internal/2pc/metrics` or
//! `/internal/saga/metrics` on every replica), summed per service and protocol,
//! for the run summary. These are the services' view; the
//! verdict on correctness comes from [`super::verify`], never from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Counters summed per `<protocol> <service>` (`2pc order`, `saga stock`, ...).
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// Reads and sums the counters of `replicas` (service name, base URL); replicas
/// without the endpoint (another protocol) are skipped.
pub async fn collect(http: &reqwest::Client, replicas: &[(String, String)]) -> Counters {
    let mut sums = Counters::new();
    for (service, url) in replicas {
        for protocol in ["2pc", "saga"] {
            let Ok(resp) = http.get(format!("{url}{}", crate::api::path::protocol_metrics(protocol))).send().await
            else {
                continue;
            };
            let Ok(body) = resp.error_for_status() else { continue };
            let Ok(values) = body.json::<BTreeMap<String, u64>>().await else { continue };
            let entry = sums.entry(format!("{protocol} {service}")).or_default();
            for (k, v) in values {
                *entry.entry(k).or_default() += v;
            }
        }
    }
    sums
}

/// Values that are levels at the moment of reading, not running totals.
const GAUGES: [&str; 4] = ["in_flight", "unsent_outbox", "in_doubt", "dead_letters"];

/// The counters of one run on a long-lived stack: `after - before` for running
/// totals, `after` for gauges. A replica restarted during the run starts its
/// totals from zero again, so its difference is clamped at zero (its count
/// before the crash is lost, never made negative).
pub fn since(after: &Counters, before: &Counters) -> Counters {
    after
        .iter()
        .map(|(service, values)| {
            let earlier = before.get(service);
            let values = values
                .iter()
                .map(|(k, v)| {
                    let base = if GAUGES.contains(&k.as_str()) {
                        0
                    } else {
                        earlier.and_then(|e| e.get(k)).copied().unwrap_or(0)
                    };
                    (k.clone(), v.saturating_sub(base))
                })
                .collect();
            (service.clone(), values)
        })
        .collect()
}

/// One summary line per service, or nothing if no counters were read.
pub fn describe(counters: &Counters) -> String {
    let mut out = String::new();
    const TWOPC_PARTICIPANT: &[&str] = &["prepared", "refused", "committed", "aborted", "recovered", "in_doubt"];
    const SAGA_PARTICIPANT: &[&str] = &[
        "applied",
        "refused",
        "compensated",
        "tombstones",
        "late_actions",
        "duplicates",
        "retries",
        "unsent_outbox",
        "dead_lettered",
        "dead_letters",
    ];
    let keys: [(&str, &[&str]); 6] = [
        ("2pc order", &["committed", "aborted", "unknown", "recovered", "in_doubt"]),
        ("2pc stock", TWOPC_PARTICIPANT),
        ("2pc payment", TWOPC_PARTICIPANT),
        (
            "saga order",
            &[
                "started",
                "joined",
                "paid",
                "rejected",
                "compensations",
                "resent",
                "duplicates",
                "in_flight",
                "unsent_outbox",
                "dead_lettered",
                "dead_letters",
            ],
        ),
        ("saga stock", SAGA_PARTICIPANT),
        ("saga payment", SAGA_PARTICIPANT),
    ];
    for (service, names) in keys {
        let Some(values) = counters.get(service) else { continue };
        let mut parts: Vec<String> =
            names.iter().map(|k| format!("{k} {}", values.get(*k).copied().unwrap_or(0))).collect();
        if let Some(us) = values.get("lock_wait_us").filter(|_| service.starts_with("2pc ") && service != "2pc order") {
            parts.push(format!("update+lock wait {:.1} ms total", *us as f64 / 1000.0));
        }
        let _ = writeln!(out, "{service:<12} {}", parts.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_summed_counters() {
        let mut c = Counters::new();
        c.entry("2pc order".into()).or_default().insert("committed".into(), 5);
        c.entry("2pc stock".into()).or_default().insert("lock_wait_us".into(), 2500);
        c.entry("saga stock".into()).or_default().insert("tombstones".into(), 1);
        let text = describe(&c);
        assert!(text.contains("2pc order    committed 5, aborted 0"), "{text}");
        assert!(text.contains("saga stock   applied 0, refused 0, compensated 0, tombstones 1"), "{text}");
        assert!(text.contains("update+lock wait 2.5 ms total"), "{text}");
        assert_eq!(describe(&Counters::new()), "");
    }

    #[test]
    fn a_run_counts_only_its_own_increments() {
        let counters = |pairs: &[(&str, u64)]| -> Counters {
            let values = pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            Counters::from([("saga order".to_owned(), values)])
        };
        let before = counters(&[("compensations", 900), ("paid", 100), ("in_flight", 3)]);
        let after = counters(&[("compensations", 905), ("paid", 40), ("in_flight", 1), ("resent", 2)]);
        let run = since(&after, &before);
        // paid went down: the replica restarted; never negative.
        assert_eq!(run, counters(&[("compensations", 5), ("paid", 0), ("in_flight", 1), ("resent", 2)]));
    }
}
