//! The payment service over real HTTP against a real PostgreSQL database.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

mod bad_input;
mod concurrency;
mod endpoints;
mod helpers;
mod twopc;
