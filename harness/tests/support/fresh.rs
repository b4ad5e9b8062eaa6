//! The service binaries a test stack runs must be built from the sources as
//! they are: `cargo test -p harness` builds the harness, not the services, so
//! a test would otherwise pass or fail against whatever was built last.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The binaries a stack starts.
const SERVICES: [&str; 3] = ["order-service", "stock-service", "payment-service"];

/// Panics, naming the newest source and the command that rebuilds, when a
/// service binary is missing or older than a source it is built from (the
/// protocol and service crates, the workspace manifest and lock file).
/// Checked once per test binary.
pub fn assert_service_binaries_fresh() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(why) = CHECKED.get_or_init(check) {
        panic!("{why}");
    }
}

fn check() -> Result<(), String> {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_harness")).parent().map(Path::to_path_buf).unwrap_or_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for path in [root.join("Cargo.toml"), root.join("Cargo.lock")] {
        newer(&mut newest, &path);
    }
    for dir in ["protocols", "services"] {
        walk(&root.join(dir), &mut newest);
    }
    let rebuild = "run `cargo build --release --workspace --bins` (harness/scripts/test.sh does)";
    for service in SERVICES {
        let binary = bin_dir.join(service);
        let built = std::fs::metadata(&binary)
            .and_then(|m| m.modified())
            .map_err(|_| format!("{service} is not built in {}: {rebuild}", bin_dir.display()))?;
        if let Some((changed, source)) = &newest {
            if *changed > built {
                return Err(format!("{service} is older than {}: {rebuild}", source.display()));
            }
        }
    }
    Ok(())
}

/// Every source file under `dir`, skipping what no service binary is built
/// from: tests, benches and the test kit.
fn walk(dir: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !matches!(name.to_str(), Some("tests" | "benches" | "target" | "testkit")) {
                walk(&path, newest);
            }
        } else {
            newer(newest, &path);
        }
    }
}

fn newer(newest: &mut Option<(SystemTime, PathBuf)>, path: &Path) {
    let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else { return };
    if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
        *newest = Some((modified, path.to_path_buf()));
    }
}
