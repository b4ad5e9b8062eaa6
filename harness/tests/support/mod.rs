//! Shared by the harness's integration tests: a stack started with the real
//! `harness` binary and brought down whatever happens, and an HTTP client for
//! the course API.

#![allow(dead_code)] // each test binary uses a different part

pub mod api;
pub mod conformance;
pub mod faults;
mod fresh;
pub mod ports;
pub mod record;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

pub use record::Record;

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

/// A client of component `name`'s own URL (a service replica's internal
/// endpoints, which the gateway does not route).
pub fn replica(stack: &TestStack, name: &str) -> api::Api {
    api::client(component(&stack.status().unwrap(), name)["url"].as_str().unwrap())
}

/// Waits until `ready` says so, trying every 50 ms for at most `timeout`
/// (the harness's own wait loop, [`harness::wait`]); panics with `what` and
/// the last reason it gave when it never does.
pub async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    use harness::wait::{Probe, until_deadline};
    let deadline = std::time::Instant::now() + timeout;
    let every = std::time::Duration::from_millis(50);
    let waited = until_deadline(what, deadline, every, || {
        let check = ready();
        async move { Ok(check.await.map_or_else(Probe::NotYet, Probe::Ready)) }
    })
    .await;
    if let Err(err) = waited {
        panic!("{err:#} (waited {} s)", timeout.as_secs_f64());
    }
}

/// `Ok` when `holds`, else `why`: a condition for [`eventually`].
pub fn when(holds: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(why()) }
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

/// The closed-loop stress both protocols' end-to-end suites run: scarce
/// stock and credit, so that both outcomes (paid and refused) are exercised,
/// at the headline concurrency.
pub const STRESS: &[&str] = &[
    "--workload",
    "stress",
    "--checkouts",
    "5000",
    "--concurrency",
    "32",
    "--orders",
    "1500",
    "--users",
    "400",
    "--items",
    "60",
    "--stock",
    "40",
    "--credit",
    "8",
    "--seed",
    "7",
];

/// Runs `harness run --json <args>` on its own stack in `<tmp>/<name>` and
/// returns its record, panicking with the output if the run failed (a run
/// exits non-zero when an invariant broke).
pub fn harness_run(name: &str, args: &[&str]) -> Record {
    let (ok, stdout, _) = harness_run_with_env(name, args, &[]);
    assert!(ok, "run failed:\n{stdout}");
    Record::parse(&stdout)
}

/// [`harness_run`] with extra environment variables for the stack, without
/// requiring success: whether it exited 0, its stdout (the JSON record;
/// stderr goes to the test's output), and its run directory.
pub fn harness_run_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, PathBuf) {
    fresh::assert_service_binaries_fresh();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let block = ports::block();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--json"])
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
    let out = stack.harness(&["run", "--json", "--target", &stack.gateway(), "--workload", "wdm-consistency"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_course_zero(&Record::parse(&stdout));
}

/// Checks a `wdm-consistency` run's record: the course script's four counts
/// are 0, every one of the 100 successful checkouts was answered 200, and
/// the rest were refused (2PC may answer a few 409 busy), none 5xx or
/// unanswered.
pub fn assert_course_zero(record: &Record) {
    for count in ["stock_logs", "stock_db", "payment_logs", "payment_db", "unanswered"] {
        assert_eq!(record.course()[count], 0, "{count}: {record}");
    }
    assert_eq!(record.replies("200"), 100, "{record}");
    assert_eq!(record.server_errors(), Vec::<String>::new(), "{record}");
}
