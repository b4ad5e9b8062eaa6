//! `harness report` (a run's report rendered again from its `run.json`) and
//! `harness diff` (two runs side by side).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::report::diff::{self, Change};
use crate::report::markdown::{self, Recorded};

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// A run's folder (`results/<run-id>`) or its `run.json`.
    run: PathBuf,
    /// Where to write `report.md` and `charts/` (default: the run's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write nothing: render in memory and exit non-zero unless `report.md`
    /// and every chart in the run's folder are byte for byte what `run.json`
    /// renders.
    #[arg(long, conflicts_with = "out")]
    check: bool,
}

#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// The first run (folder or `run.json`).
    a: PathBuf,
    /// The second run.
    b: PathBuf,
}

/// The `run.json` of `path`, a run's folder or the file itself.
fn run_json(path: &Path) -> PathBuf {
    if path.is_dir() { path.join("run.json") } else { path.to_owned() }
}

/// Renders the report of a recorded run again.
pub(super) fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let json = run_json(&args.run);
    let dir = json.parent().map_or_else(|| PathBuf::from("."), Path::to_owned);
    if args.check {
        let differing = markdown::differences(&json, &dir)?;
        if differing.is_empty() {
            println!("{}: report.md and every chart rebuild byte for byte from run.json", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        for file in differing {
            println!("differs from what run.json renders: {}", file.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    let out = args.out.unwrap_or(dir);
    let verdicts = markdown::rebuild(&json, &out)?;
    for line in &verdicts {
        println!("- {}", line.replace("**", ""));
    }
    println!("report: {}", out.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

/// Prints the diff of two runs; fails when a named verdict reversed.
pub(super) fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let a = Recorded::read(&run_json(&args.a))?;
    let b = Recorded::read(&run_json(&args.b))?;
    let (ca, cb) = (a.comparison(), b.comparison());
    let diff = diff::lines(&ca, &cb);
    print!("{}", diff::render(&a, &b, &diff));
    let reversed = diff.lines.iter().any(|l| l.change == Change::Reversed);
    Ok(if reversed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
