//! The reports of `harness compare`:
//!
//! - [`context`]: commit, versions, machine and settings of a run;
//! - [`verdict`]: medians, spreads and the plain-language verdicts;
//! - [`svg`]: dependency-free SVG charts;
//! - [`markdown`]: `report.md`, `run.json` and the charts of one run;
//! - [`index`]: the `results/README.md` table of runs.

pub mod context;
pub mod index;
pub mod markdown;
pub mod svg;
pub mod verdict;
