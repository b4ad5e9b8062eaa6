//! Report building blocks for `harness compare`: charts now; the report
//! writer (markdown + `run.json`) builds on them.

pub mod svg;
