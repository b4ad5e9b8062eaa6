//! The context of a run, recorded with its numbers: which code, which
//! software versions, which machine, which settings. A number without this is
//! not reproducible.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::stack::StackConfig;

/// Where and with what a run ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunContext {
    /// Start time, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started_at: String,
    /// `git rev-parse HEAD`, or `unknown` outside a checkout.
    pub commit: String,
    /// Whether the working tree had uncommitted changes.
    pub dirty: bool,
    /// Software versions (`postgres`, `kafka`, `redis`, `rustc`, `harness`).
    pub versions: BTreeMap<String, String>,
    /// CPU model.
    pub cpu_model: String,
    /// Logical CPUs available to the harness.
    pub cpus: usize,
    /// Total memory, in MiB.
    pub memory_mib: u64,
    /// Every setting that shapes the numbers.
    pub settings: BTreeMap<String, String>,
}

impl RunContext {
    /// Collects the context now, for a run with stack settings `config`.
    pub fn collect(config: &StackConfig, extra: &[(&str, String)]) -> RunContext {
        let mut versions = BTreeMap::new();
        versions.insert("harness".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        versions.insert("kafka".to_owned(), crate::stack::kafka::KAFKA_VERSION.to_owned());
        let pg = config.pg_bin.join("postgres");
        for (name, program, arg) in [
            ("postgres", pg.to_string_lossy().into_owned(), "--version"),
            ("redis", "redis-server".to_owned(), "--version"),
            ("rustc", "rustc".to_owned(), "--version"),
            ("nginx", "nginx".to_owned(), "-v"),
            ("java", "java".to_owned(), "-version"),
        ] {
            versions.insert(name.to_owned(), first_line(&program, &[arg]).unwrap_or_else(|| "unknown".to_owned()));
        }
        let mut settings: BTreeMap<String, String> = [
            ("replicas per service", config.replicas.to_string()),
            ("kafka nodes (unless a case names its own)", config.brokers.to_string()),
            ("kafka partitions per topic", config.partitions.to_string()),
            (
                "kafka client profile (unless a contender names its own)",
                format!("{} ({})", config.kafka_profile, config.kafka_profile.describe()),
            ),
            ("kafka broker session ms", crate::stack::kafka::BROKER_SESSION.as_millis().to_string()),
            (
                "kafka controller quorum fetch / election timeout ms (several nodes)",
                format!(
                    "{} / {}",
                    crate::stack::kafka::QUORUM_FETCH_TIMEOUT.as_millis(),
                    crate::stack::kafka::QUORUM_ELECTION_TIMEOUT.as_millis()
                ),
            ),
            ("kafka broker heap MiB", config.kafka_heap_mb.to_string()),
            ("db pool per replica", config.db_pool_size.to_string()),
            ("protocol pool per replica", config.db_protocol_pool_size.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // Settings that change what the stack does, when given.
        if !config.kafka_broker_properties.is_empty() {
            settings.insert("kafka extra broker properties".to_owned(), config.kafka_broker_properties.join(";"));
        }
        if !config.kafka_client_properties.is_empty() {
            settings.insert("kafka extra client properties".to_owned(), config.kafka_client_properties.to_string());
        }
        if !config.spans {
            settings.insert("spans".to_owned(), "off (no time breakdown)".to_owned());
        }
        for (key, value) in crate::stack::postgres::server_settings(config) {
            if ["max_connections", "max_prepared_transactions", "shared_buffers", "fsync", "synchronous_commit"]
                .contains(&key)
            {
                settings.insert(format!("postgres {key}"), value);
            }
        }
        for (key, value) in extra {
            settings.insert((*key).to_owned(), value.clone());
        }
        RunContext {
            started_at: utc_now(),
            commit: first_line("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned()),
            dirty: first_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_some(),
            versions,
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".to_owned()),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_mib: memory_kib().unwrap_or(0) / 1024,
            settings,
        }
    }
}

/// The first non-empty line a command prints (stdout, else stderr: `java
/// -version` and `nginx -v` print to stderr).
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    String::from_utf8_lossy(&text).lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn memory_kib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The current time, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic
/// Gregorian calendar, days-from-civil inverted as in Howard Hinnant's
/// well-known algorithm).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_647_600), "2026-11-25T23:00:00Z");
    }
}
