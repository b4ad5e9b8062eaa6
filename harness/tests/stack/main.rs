//! `harness up` / `status` / `down` end to end: real processes, real ports.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location
#![allow(clippy::await_holding_lock)] // support::serial() holds a guard for a whole test on purpose

#[path = "../support/mod.rs"]
mod support;

mod compose;
mod lifecycle;
mod links;
