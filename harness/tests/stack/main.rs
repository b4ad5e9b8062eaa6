//! `harness up` / `status` / `down` end to end: real processes, real ports.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

#[path = "../support/mod.rs"]
mod support;

mod lifecycle;
