//! `results/README.md`: the index of runs, newest first. A compare run adds
//! its row at the top of the table and leaves the rest of the file alone.

use std::path::Path;

const HEADER: &str = "# Results\n\nMeasurements of the protocols, one folder per run, newest first. `harness compare` \
adds its reports (report.md, charts, run.json) here.\n\n| run | what | finding |\n|---|---|---|\n";

/// Adds a row for `run_id` (a folder of `root` holding `report.md`) to the
/// index in `root`, creating the index if there is none. A row for the same
/// run is replaced.
pub fn add(root: &Path, run_id: &str, what: &str, finding: &str) -> anyhow::Result<()> {
    let path = root.join("README.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| HEADER.to_owned());
    std::fs::write(&path, with_row(&text, run_id, what, finding))?;
    Ok(())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn with_row(text: &str, run_id: &str, what: &str, finding: &str) -> String {
    let row = format!("| [{run_id}]({run_id}/report.md) | {} | {} |", cell(what), cell(finding));
    let mine = format!("| [{run_id}](");
    let mut lines: Vec<String> = text.lines().filter(|l| !l.starts_with(&mine)).map(str::to_owned).collect();
    match lines.iter().position(|l| l.starts_with("|---")) {
        Some(separator) => lines.insert(separator + 1, row),
        None => {
            lines.extend(["".to_owned(), "| run | what | finding |".to_owned(), "|---|---|---|".to_owned(), row]);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_newest_first_and_replaces_its_own_row() {
        let text = with_row(HEADER, "a", "first", "x");
        let text = with_row(&text, "b", "second | piped", "y");
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| [")).collect();
        assert_eq!(rows, ["| [b](b/report.md) | second \\| piped | y |", "| [a](a/report.md) | first | x |"]);
        let again = with_row(&text, "a", "first", "z");
        assert_eq!(again.lines().filter(|l| l.starts_with("| [a]")).count(), 1);
        assert!(again.contains("| [a](a/report.md) | first | z |"));
        let fresh = with_row("# Notes\n", "c", "w", "f");
        assert!(fresh.ends_with("|---|---|---|\n| [c](c/report.md) | w | f |\n"), "{fresh}");
    }
}
