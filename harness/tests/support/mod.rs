//! Shared by the harness's integration tests: a stack started with the real
//! `harness` binary and brought down whatever happens, and an HTTP client for
//! the course API.

#![allow(dead_code)] // each test binary uses a different part

pub mod api;
pub mod conformance;
pub mod faults;
mod fresh;
pub mod ports;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

/// A stack in its own run directory and port block, brought down on drop.
#[derive(Debug)]
pub struct TestStack {
    pub dir: PathBuf,
    pub port_base: u16,
    pub gateway_port: u16,
    _ports: ports::PortBlock,
}

impl TestStack {
    /// A stack named `name` in a port block of its own ([`ports::block`]).
    pub fn new(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let block = ports::block();
        let stack = TestStack { dir, port_base: block.base, gateway_port: block.gateway(), _ports: block };
        stack.harness(&["down"]); // a leftover from an aborted run
        stack
    }

    /// Runs `harness <args> --run-dir <dir>` (plus the port flags for `up`).
    pub fn harness(&self, args: &[&str]) -> Output {
        self.harness_with_env(args, &[])
    }

    /// [`Self::harness`] with extra environment variables, which the stack's
    /// processes inherit (services read their settings from the environment).
    pub fn harness_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        // Not on the way down: `down` runs from `Drop`, where a panic while
        // unwinding would abort the test binary and hide the message.
        if args[0] == "up" {
            fresh::assert_service_binaries_fresh();
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
        cmd.args(args).arg("--run-dir").arg(&self.dir).envs(env.iter().copied());
        if args[0] == "up" {
            cmd.args(["--port-base", &self.port_base.to_string(), "--gateway-port", &self.gateway_port.to_string()]);
            cmd.args(["--kafka-heap-mb", "256"]);
        }
        cmd.output().expect("harness runs")
    }

    /// `harness up --detach` with `args`, panicking with the log if it fails.
    pub fn up(&self, args: &[&str]) {
        self.up_with_env(args, &[]);
    }

    /// [`Self::up`] with extra environment variables for the stack.
    pub fn up_with_env(&self, args: &[&str], env: &[(&str, &str)]) {
        let mut all = vec!["up", "--detach"];
        all.extend_from_slice(args);
        let out = self.harness_with_env(&all, env);
        assert!(out.status.success(), "up failed: {}{}", text(&out.stdout), text(&out.stderr));
    }

    /// The parsed `harness status`, or `None` if no stack runs.
    pub fn status(&self) -> Option<Value> {
        let out = self.harness(&["status"]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("status prints JSON"))
    }

    /// The gateway's base URL.
    pub fn gateway(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        self.harness(&["down"]);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The component called `name` in a `harness status` document.
pub fn component<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {status}"))
}

/// Whether `pid` runs (and is not a zombie).
pub fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

/// Serialises the tests of one binary that each run a whole stack: on a
/// 2-core machine, several stacks at once would turn timing-sensitive checks
/// (lock timeouts on a hot row, prepare deadlines) into measurements of CPU
/// starvation.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `harness run <args>` on its own stack in `<tmp>/<name>` and returns its
/// summary, panicking with the output if the run failed (a run exits non-zero
/// when an invariant broke).
pub fn harness_run(name: &str, args: &[&str]) -> String {
    let (ok, stdout, _) = harness_run_with_env(name, args, &[]);
    assert!(ok, "run failed:\n{stdout}");
    stdout
}

/// [`harness_run`] with extra environment variables for the stack, without
/// requiring success: whether it exited 0, its stdout (stderr goes to the
/// test's output), and its run directory.
pub fn harness_run_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, PathBuf) {
    fresh::assert_service_binaries_fresh();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let block = ports::block();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .args(args)
        .arg("--run-dir")
        .arg(&dir)
        .args(["--port-base", &block.base.to_string(), "--gateway-port", &block.gateway().to_string()])
        .args(["--kafka-heap-mb", "256"])
        .envs(env.iter().copied())
        .output()
        .expect("harness runs");
    eprintln!("{}", text(&out.stderr));
    (out.status.success(), text(&out.stdout), dir)
}

/// Runs the course consistency test (`--workload wdm-consistency`) through
/// the gateway of the running `stack` and checks its four counts are 0, as
/// the course's script computes them from the replies and the API.
pub fn assert_course_counts_zero(stack: &TestStack) {
    let out = stack.harness(&["run", "--target", &stack.gateway(), "--workload", "wdm-consistency"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for line in [
        "Stock service inconsistencies in the logs: 0",
        "Stock service inconsistencies in the database: 0",
        "Payment service inconsistencies in the logs: 0",
        "Payment service inconsistencies in the database: 0",
        "replies      200: 100 | ",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    // The rest refused (2PC may answer a few 409 busy): none 5xx or unanswered.
    assert_eq!(server_errors(&stdout), Vec::<String>::new(), "{stdout}");
}

/// The entries of a `harness run` summary's `replies` line that are neither
/// an answer (2xx) nor a refusal (4xx): 5xx, and `error` (no reply at all).
pub fn server_errors(stdout: &str) -> Vec<String> {
    let line = stdout.lines().find(|l| l.starts_with("replies")).unwrap_or_else(|| panic!("no replies line: {stdout}"));
    line.trim_start_matches("replies")
        .split('|')
        .map(str::trim)
        .filter(|r| !(r.starts_with('2') || r.starts_with('4')))
        .map(str::to_owned)
        .collect()
}

/// The fault lines of a `harness run` summary, each checked to have been
/// applied (`pid N` or `armed`), as `(time s, what)`.
pub fn applied_faults(stdout: &str) -> Vec<(f64, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("fault "))
        .map(|l| {
            let (at, rest) = l.trim().split_once(" s  ").unwrap_or_else(|| panic!("fault line {l:?}"));
            let (what, outcome) = rest.rsplit_once(" (").unwrap();
            assert!(outcome.starts_with("pid ") || outcome == "armed)", "fault not applied: {l}");
            (at.trim().parse().unwrap(), what.to_owned())
        })
        .collect()
}

/// Splits `faults` into the components reported serving again after a kill
/// (sorted, each checked to come after a kill of it) and the other faults.
pub fn serving_again(faults: Vec<(f64, String)>) -> (Vec<String>, Vec<(f64, String)>) {
    let (served, rest): (Vec<_>, Vec<_>) = faults.into_iter().partition(|(_, w)| w.ends_with(" serving again"));
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

/// The value of `key` in a summary line like `latency ms   p50 1.23 | p90 ...`.
pub fn summary_number(stdout: &str, line_prefix: &str, key: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with(line_prefix)).unwrap_or_else(|| panic!("{line_prefix}: {stdout}"));
    let after = line.split(&format!("{key} ")).nth(1).unwrap_or_else(|| panic!("{key} in {line}"));
    after.split([' ', ',', '|']).next().unwrap().parse().unwrap()
}

/// Checks the yardstick lines of a closed-loop `harness run` summary: the raw
/// ceiling was measured (its replay paid something, so it ran the protocol's
/// work rather than refusing it all) and the median checkout's breakdown
/// names every one of `phases` and attributes at least 80% of its time (the
/// spans tile every stretch of work; what is left is scheduling between
/// them).
pub fn assert_yardstick(stdout: &str, phases: &[&str]) {
    let ceiling = stdout.lines().find(|l| l.starts_with("ceiling ")).unwrap_or_else(|| panic!("no ceiling: {stdout}"));
    let rate: f64 = ceiling.split_whitespace().nth(1).unwrap().parse().unwrap();
    let paid: u64 = ceiling.split(", ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(rate > 0.0 && paid > 0, "{ceiling}");
    assert!(ceiling.contains("efficiency "), "{ceiling}");
    let median =
        stdout.lines().find(|l| l.starts_with("median ms ")).unwrap_or_else(|| panic!("no breakdown: {stdout}"));
    let attributed: f64 = median.split('(').nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
    assert!(attributed >= 80.0, "{median}");
    for phase in phases {
        assert!(median.contains(&format!("{phase} ")), "{phase} missing: {median}");
    }
}
