//! CPU and memory of every process of the stack during the load, from `/proc`.
//!
//! A component is a process tree: PostgreSQL forks a backend per connection
//! and Kafka is one JVM, so each sample sums the CPU time and resident memory
//! of a component's root process and all its descendants. The roots come from
//! `stack.json`, which the supervisor rewrites after every restart, so a killed
//! and restarted component keeps being measured. The harness itself (the load
//! generator) is measured too: on a 2-core machine it competes for the CPU.
//!
//! CPU is counted per pid as the growth of `utime + stime` between samples, so
//! the work of a process that exits between two samples is missed (at most one
//! sample interval of one process).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stack::StackState;

/// Name under which the harness's own process is reported.
pub const HARNESS: &str = "harness (load)";

/// What one component used over the sampled period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Usage {
    /// CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Mean CPU use over the period, in percent of one core.
    pub cpu_percent: f64,
    /// Largest memory seen (proportional set size, or resident set size where
    /// PSS is not readable), in MiB.
    pub peak_rss_mib: f64,
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    /// `utime + stime`, in clock ticks.
    ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

/// Parses the fields we need from a `/proc/<pid>/stat` line. The command name
/// is parenthesised and may itself contain spaces and parentheses, so fields
/// are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let (_, rest) = line.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) ... rss(21).
    let num = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat { ppid: u32::try_from(num(1)?).ok()?, ticks: num(11)? + num(12)?, rss_pages: num(21)? })
}

/// Every process, with memory as its proportional share (PSS) where the
/// kernel lets us read it: PostgreSQL backends all map the same shared
/// buffers, and summing their RSS would count those once per backend.
fn snapshot(page_bytes: u64) -> HashMap<u32, Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return HashMap::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let mut stat = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
        if let Some(pss_kib) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok().and_then(|t| pss(&t)) {
            stat.rss_pages = pss_kib * 1024 / page_bytes.max(1);
        }
        Some((pid, stat))
    })
    .collect()
}

/// The `Pss:` line of `/proc/<pid>/smaps_rollup`, in KiB.
fn pss(smaps_rollup: &str) -> Option<u64> {
    let line = smaps_rollup.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The pids of `root` and all its descendants in `procs`, except the
/// subtrees of `other_roots` (the stack's processes are children of the
/// harness, but are reported on their own).
fn tree(root: u32, procs: &HashMap<u32, Stat>, other_roots: &HashSet<u32>) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, stat) in procs {
        children.entry(stat.ppid).or_default().push(*pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if procs.contains_key(&pid) && (pid == root || !other_roots.contains(&pid)) {
            out.push(pid);
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    out
}

/// Accumulates samples.
#[derive(Debug, Default)]
struct Accumulator {
    last_ticks: HashMap<u32, u64>,
    ticks: BTreeMap<String, u64>,
    peak_pages: BTreeMap<String, u64>,
}

impl Accumulator {
    fn sample(&mut self, roots: &[(String, u32)], procs: &HashMap<u32, Stat>, first: bool) {
        let all_roots: HashSet<u32> = roots.iter().map(|(_, pid)| *pid).collect();
        for (name, root) in roots {
            let mut pages = 0;
            for pid in tree(*root, procs, &all_roots) {
                let stat = procs[&pid];
                let before = self.last_ticks.insert(pid, stat.ticks);
                // The first sample is the baseline; a pid first seen later
                // started during the load, so all its CPU time counts.
                if !first {
                    *self.ticks.entry(name.clone()).or_default() += stat.ticks - before.unwrap_or(0).min(stat.ticks);
                }
                pages += stat.rss_pages;
            }
            let peak = self.peak_pages.entry(name.clone()).or_default();
            *peak = (*peak).max(pages);
        }
    }

    fn usage(&self, elapsed: Duration, tick_hz: f64, page_bytes: f64) -> BTreeMap<String, Usage> {
        self.peak_pages
            .iter()
            .map(|(name, pages)| {
                let cpu_seconds = self.ticks.get(name).copied().unwrap_or(0) as f64 / tick_hz;
                let usage = Usage {
                    cpu_seconds,
                    cpu_percent: 100.0 * cpu_seconds / elapsed.as_secs_f64().max(1e-9),
                    peak_rss_mib: *pages as f64 * page_bytes / (1024.0 * 1024.0),
                };
                (name.clone(), usage)
            })
            .collect()
    }
}

/// Samples the stack's processes every second until [`Sampler::finish`].
#[derive(Debug)]
pub struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<BTreeMap<String, Usage>>,
}

impl Sampler {
    /// Starts sampling the components listed in `state_file` (`stack.json`).
    pub fn start(state_file: PathBuf) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let tick_hz = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100.0);
            let page_bytes = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096.0);
            let started = Instant::now();
            let mut acc = Accumulator::default();
            let (mut first, mut last) = (true, false);
            loop {
                let mut roots = vec![(HARNESS.to_owned(), std::process::id())];
                if let Ok(Some(state)) = StackState::read(&state_file) {
                    roots.extend(state.components.into_iter().map(|c| (c.name, c.pid)));
                }
                let procs = tokio::task::spawn_blocking(move || snapshot(page_bytes as u64)).await.unwrap_or_default();
                acc.sample(&roots, &procs, first);
                if last {
                    break;
                }
                first = false;
                tokio::select! {
                    // One more sample after the stop, so the last partial
                    // second counts.
                    _ = &mut stopped => last = true,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            acc.usage(started.elapsed(), tick_hz, page_bytes)
        });
        Sampler { stop, task }
    }

    /// Takes a last sample and returns the usage per component.
    pub async fn finish(self) -> BTreeMap<String, Usage> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

fn sysconf(var: nix::unistd::SysconfVar, fallback: f64) -> f64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(value)) if value > 0 => value as f64,
        _ => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_names() {
        let line = "42 (post gres: (x)) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 99 1000 3000 0";
        assert_eq!(parse_stat(line), Some(Stat { ppid: 7, ticks: 300, rss_pages: 3000 }));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(pss("Rss:      2048 kB\nPss:       1000 kB\nPss_Anon:  10 kB\n"), Some(1000));
    }

    #[test]
    fn sums_process_trees_and_counts_cpu_from_the_baseline() {
        let stat = |ppid, ticks, rss_pages| Stat { ppid, ticks, rss_pages };
        // The harness (1) is the parent of both components.
        let roots = [("harness".to_owned(), 1), ("postgres".to_owned(), 10), ("kafka".to_owned(), 20)];
        let mut acc = Accumulator::default();
        let before = HashMap::from([
            (1, stat(0, 7, 1)),
            (10, stat(1, 100, 10)),
            (11, stat(10, 50, 5)),
            (20, stat(1, 1000, 100)),
        ]);
        acc.sample(&roots, &before, true);
        // A new backend (12) appears; 11 burns 30 ticks; kafka 200.
        let after = HashMap::from([
            (1, stat(0, 9, 1)),
            (10, stat(1, 110, 10)),
            (11, stat(10, 80, 5)),
            (12, stat(11, 5, 2)),
            (20, stat(1, 1200, 90)),
        ]);
        acc.sample(&roots, &after, false);
        let usage = acc.usage(Duration::from_secs(2), 100.0, 1024.0 * 1024.0);
        assert_eq!(usage["postgres"].cpu_seconds, 0.45);
        assert_eq!(usage["postgres"].peak_rss_mib, 17.0);
        assert_eq!(usage["kafka"].cpu_seconds, 2.0);
        assert_eq!(usage["kafka"].cpu_percent, 100.0);
        assert_eq!(usage["kafka"].peak_rss_mib, 100.0);
        assert_eq!(usage["harness"].cpu_seconds, 0.02);
        assert_eq!(usage["harness"].peak_rss_mib, 1.0);
    }
}
