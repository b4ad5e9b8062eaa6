//! The service binaries a test stack runs must be built from the sources as
//! they are: `cargo test -p harness` builds the harness, not the services, so
//! a test would otherwise pass or fail against whatever was built last.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The binaries a stack starts.
const SERVICES: [&str; 3] = ["order-service", "stock-service", "payment-service"];

/// Panics, naming the changed source and the command that rebuilds, when a
/// service binary is missing or older than one of the files cargo built it
/// from (its dep-info file, `<bin>.d` next to it, lists them: the crates'
/// sources and every file they include). Checked once per test binary.
pub fn assert_service_binaries_fresh() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(why) = CHECKED.get_or_init(check) {
        panic!("{why}");
    }
}

fn check() -> Result<(), String> {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_harness")).parent().map(Path::to_path_buf).unwrap_or_default();
    let rebuild = "run `cargo build --release --workspace --bins` (harness/scripts/test.sh does)";
    for service in SERVICES {
        let binary = bin_dir.join(service);
        let built = std::fs::metadata(&binary)
            .and_then(|m| m.modified())
            .map_err(|_| format!("{service} is not built in {}: {rebuild}", bin_dir.display()))?;
        let deps = std::fs::read_to_string(bin_dir.join(format!("{service}.d")))
            .map_err(|_| format!("{service} has no dep-info file in {}: {rebuild}", bin_dir.display()))?;
        for source in sources(&deps) {
            // A source that is gone changed too (a rename, a deleted module).
            let changed = std::fs::metadata(&source).and_then(|m| m.modified()).map_or(true, |t| t > built);
            if changed {
                return Err(format!("{service} is older than {}: {rebuild}", source.display()));
            }
        }
    }
    Ok(())
}

/// The files a Makefile-style dep-info line `target: dep dep ...` names
/// (spaces inside a path are escaped with a backslash).
fn sources(dep_info: &str) -> Vec<PathBuf> {
    let Some(line) = dep_info.lines().next() else { return Vec::new() };
    let Some((_, deps)) = line.split_once(": ") else { return Vec::new() };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
}
