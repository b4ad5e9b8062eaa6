//! The reports of `harness compare`:
//!
//! - [`context`]: commit, versions, machine and settings of a run;
//! - [`diff`]: two runs side by side, and which verdicts changed;
//! - [`verdict`]: medians, spreads and the plain-language verdicts;
//! - [`stats`]: paired ratios with 95% intervals, and when they name a winner;
//! - [`svg`]: dependency-free SVG charts;
//! - [`markdown`]: `report.md`, `run.json` and the charts of one run;
//! - [`index`]: the `results/README.md` table of runs.

pub mod context;
pub mod diff;
pub mod index;
pub mod markdown;
pub mod stats;
pub mod svg;
pub mod verdict;
