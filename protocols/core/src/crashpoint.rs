//! Crash points: named places in a protocol where a test (or a harness fault
//! schedule) can make the process die on the spot, as `kill -9` would.
//!
//! A crash point is armed by name, either at start-up through the
//! `SAGA2PC_CRASHPOINTS` environment variable (comma-separated names) or at run
//! time through [`arm`] (the services expose it on an internal endpoint). When
//! execution reaches an armed point, the process aborts immediately: no
//! destructors, no graceful shutdown, no flushing — exactly the failure the
//! protocols must recover from. Unarmed points cost one atomic load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Environment variable listing points armed at start-up.
pub const ENV: &str = "SAGA2PC_CRASHPOINTS";

static ANY_ARMED: AtomicBool = AtomicBool::new(false);

fn armed() -> &'static Mutex<HashSet<String>> {
    static ARMED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let from_env: HashSet<String> = std::env::var(ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !from_env.is_empty() {
            ANY_ARMED.store(true, Ordering::SeqCst);
        }
        Mutex::new(from_env)
    })
}

/// Reads `SAGA2PC_CRASHPOINTS`; call once at start-up so points armed there
/// fire even before anything is armed at run time.
pub fn init_from_env() {
    let _ = armed();
}

/// Arms `name`: the next time execution reaches it, the process aborts.
pub fn arm(name: &str) {
    let mut set = armed().lock().unwrap_or_else(|e| e.into_inner());
    set.insert(name.to_owned());
    ANY_ARMED.store(true, Ordering::SeqCst);
}

/// Disarms every point.
pub fn disarm_all() {
    let mut set = armed().lock().unwrap_or_else(|e| e.into_inner());
    set.clear();
    ANY_ARMED.store(false, Ordering::SeqCst);
}

/// Whether `name` is armed.
pub fn is_armed(name: &str) -> bool {
    ANY_ARMED.load(Ordering::Relaxed) && armed().lock().unwrap_or_else(|e| e.into_inner()).contains(name)
}

/// Marks a crash point: aborts the process if `name` is armed.
pub fn hit(name: &str) {
    if is_armed(name) {
        eprintln!("crash point {name} reached: aborting the process");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_and_disarming() {
        assert!(!is_armed("test.point"));
        arm("test.point");
        assert!(is_armed("test.point"));
        assert!(!is_armed("test.other"));
        disarm_all();
        assert!(!is_armed("test.point"));
        hit("test.point"); // unarmed: returns
    }
}
