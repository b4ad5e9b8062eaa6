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
    let text = with_row(&text, run_id, what, finding);
    std::fs::write(&path, with_section(&text, &ratios_section(root)))?;
    Ok(())
}

/// The pairs and cases the cross-run table follows: the protocols against
/// each other where every full run has them.
const FOLLOWED: [(&str, &str, &str); 4] = [
    ("stress", "2pc", "saga-seq"),
    ("stress", "2pc", "saga-par"),
    ("hot-item-0.5", "2pc", "saga-seq"),
    ("hot-item-0.5", "2pc", "saga-par"),
];

const SECTION_START: &str = "<!-- same-run ratios: written by harness compare -->";
const SECTION_END: &str = "<!-- end of same-run ratios -->";

/// The table of same-run ratios across every run in `root` that has them,
/// newest first: throughput of every checkout, first contender over second,
/// paired by round with its 95% interval ([`super::stats::Ratio::paired`]).
/// A ratio within one run cancels the machine's drift between runs, so this
/// column is what to compare across runs, not the checkouts/s. Runs are
/// read loosely (any `run.json` with samples), so older formats count too.
pub fn ratios_section(root: &Path) -> String {
    let mut runs: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.join("run.json").is_file()).collect())
        .unwrap_or_default();
    runs.sort();
    runs.reverse();
    let mut rows = Vec::new();
    for dir in runs {
        let Some(samples) = std::fs::read_to_string(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("samples").and_then(|s| s.as_array()).cloned())
        else {
            continue;
        };
        let keyed = |case: &str, contender: &str| -> Vec<(super::stats::Key, f64)> {
            samples
                .iter()
                .filter(|s| s["case"] == case && s["contender"] == contender)
                .filter_map(|s| {
                    let key = (s["round"].as_u64()? as usize, s["repeat"].as_u64()? as usize);
                    Some((key, s["throughput"].as_f64()?))
                })
                .collect()
        };
        let cells: Vec<String> = FOLLOWED
            .iter()
            .map(|(case, a, b)| match super::stats::Ratio::paired(&keyed(case, a), &keyed(case, b)) {
                Some(r) => r.to_string(),
                None => "–".to_owned(),
            })
            .collect();
        if cells.iter().all(|c| c == "–") {
            continue;
        }
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        rows.push(format!("| [{id}]({id}/report.md) | {} |", cells.join(" | ")));
    }
    let header: Vec<String> = FOLLOWED.iter().map(|(case, a, b)| format!("{case}: {a} / {b}")).collect();
    format!(
        "{SECTION_START}\n## Same-run ratios across runs\n\nThroughput of every checkout, the first contender's over \
         the second's within one run, paired by round, with its 95% interval: the machine's speed drifts between \
         runs, a ratio within one run cancels most of it. Runs whose plans differ measure different loads (the \
         steady, timed samples begin with the runs of 2026-12-08).\n\n| run | {} |\n|---|{}\n{}\n{SECTION_END}\n",
        header.join(" | "),
        "---|".repeat(header.len()),
        rows.join("\n")
    )
}

/// `text` with its same-run ratio section replaced by `section` (appended
/// when it has none).
fn with_section(text: &str, section: &str) -> String {
    match (text.find(SECTION_START), text.find(SECTION_END)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{section}{}", &text[..start], &text[end + SECTION_END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{section}", text.trim_end_matches('\n').to_owned() + "\n"),
    }
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
        let section = format!("{SECTION_START}\nx\n{SECTION_END}\n");
        let replaced = with_section(&with_section(&text, &section), &format!("{SECTION_START}\ny\n{SECTION_END}\n"));
        assert!(replaced.contains("\ny\n") && !replaced.contains("\nx\n"), "{replaced}");
        assert_eq!(replaced.matches(SECTION_START).count(), 1);
        assert!(replaced.starts_with(&text), "the section goes after the table of runs");
        let fresh = with_row("# Notes\n", "c", "w", "f");
        assert!(fresh.ends_with("|---|---|---|\n| [c](c/report.md) | w | f |\n"), "{fresh}");
    }
}
