//! A `harness run --json` document, read by name: the tests check the run's
//! numbers and verdict from the fields the harness serialises
//! (`harness::compare::sample::RunRecord`), not from the summary table meant
//! for people.

use serde_json::Value;

/// One run's JSON document.
#[derive(Debug, Clone)]
pub struct Record(pub Value);

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", serde_json::to_string_pretty(&self.0).unwrap_or_default())
    }
}

impl Record {
    /// Parses `harness run --json`'s stdout, panicking with it if it is not
    /// one JSON document (the run failed before printing one).
    pub fn parse(stdout: &str) -> Record {
        Record(serde_json::from_str(stdout).unwrap_or_else(|err| panic!("not a run record ({err}):\n{stdout}")))
    }

    /// The broken invariants, in words.
    pub fn violations(&self) -> Vec<String> {
        self.0["violations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    /// Panics unless every invariant held and the verifier checked `what`
    /// (part of its description, such as "one effect per saga step").
    pub fn assert_held(&self, what: &str) {
        assert_eq!(self.violations(), Vec::<String>::new(), "{self}");
        assert!(self.checked().contains(what), "checked {:?}, not {what:?}", self.checked());
    }

    /// What the verifier checked, in words.
    pub fn checked(&self) -> &str {
        self.0["checked"].as_str().unwrap()
    }

    /// Replies with `status` (`"200"`, `"400"`, `"error"` for none).
    pub fn replies(&self, status: &str) -> u64 {
        self.0["statuses"][status].as_u64().unwrap_or(0)
    }

    /// How long the load ran, in seconds (its checkouts over its throughput).
    pub fn load_s(&self) -> f64 {
        self.0["checkouts"].as_f64().unwrap() / self.0["throughput"].as_f64().unwrap()
    }

    /// Replies of every status.
    pub fn sent(&self) -> u64 {
        self.0["statuses"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum()
    }

    /// The statuses that are neither an answer (2xx) nor a refusal (4xx):
    /// 5xx, and `error` (no reply at all).
    pub fn server_errors(&self) -> Vec<String> {
        let statuses = self.0["statuses"].as_object().unwrap();
        statuses.keys().filter(|s| !(s.starts_with('2') || s.starts_with('4'))).cloned().collect()
    }

    /// A latency percentile in ms (`p50`, `p99`, `max`).
    pub fn latency_ms(&self, which: &str) -> f64 {
        self.0["latency_ms"][which].as_f64().unwrap()
    }

    /// A protocol counter of one service (`"saga stock"`, `"duplicates"`).
    pub fn counter(&self, group: &str, name: &str) -> u64 {
        self.0["counters"][group][name].as_u64().unwrap_or_else(|| panic!("no counter {group} {name}: {self}"))
    }

    /// The faults, each checked to have been applied, as `(time s, what)`.
    pub fn applied_faults(&self) -> Vec<(f64, String)> {
        let faults = self.0["faults"].as_array().unwrap();
        faults
            .iter()
            .map(|f| {
                assert_eq!(f["applied"], true, "fault not applied: {f}");
                (f["at_s"].as_f64().unwrap(), f["what"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// The course test's four counts and the checkouts it would have
    /// waited for in vain.
    pub fn course(&self) -> &Value {
        &self.0["course"]
    }

    /// Checks the yardstick of a closed-loop run: the raw ceiling was
    /// measured (its replay paid something, so it ran the protocol's work
    /// rather than refusing it all) and the median checkout's breakdown names
    /// every one of `phases` and attributes at least 80% of its time (the
    /// spans tile every stretch of work; what is left is scheduling between
    /// them).
    pub fn assert_yardstick(&self, phases: &[&str]) {
        let ceiling = &self.0["ceiling"];
        assert!(ceiling["database_per_s"].as_f64().unwrap() > 0.0, "{ceiling}");
        assert!(ceiling["database_paid"].as_u64().unwrap() > 0, "{ceiling}");
        let breakdown = &self.0["breakdown"];
        let total = breakdown["total_ms"].as_f64().unwrap();
        let unattributed = breakdown["ms"]["unattributed"].as_f64().unwrap_or(0.0);
        assert!(total > 0.0 && unattributed / total <= 0.2, "{breakdown}");
        for phase in phases {
            assert!(breakdown["ms"][phase].as_f64().is_some_and(|ms| ms > 0.0), "{phase} missing: {breakdown}");
        }
    }

    /// Splits the applied faults into the components reported serving again
    /// after a kill (sorted, each checked to come after a kill of it) and
    /// the other faults.
    pub fn serving_again(&self) -> (Vec<String>, Vec<(f64, String)>) {
        let (served, rest): (Vec<_>, Vec<_>) =
            self.applied_faults().into_iter().partition(|(_, w)| w.ends_with(" serving again"));
        let mut names: Vec<String> = served
            .iter()
            .map(|(at, what)| {
                let name = what.trim_end_matches(" serving again").to_owned();
                let killed = rest.iter().any(|(k, w)| *w == format!("kill {name}") && k <= at);
                assert!(killed, "{name} served again at {at} s without a kill before: {rest:?}");
                name
            })
            .collect();
        names.sort();
        (names, rest)
    }
}
