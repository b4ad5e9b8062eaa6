//! The order service over real HTTP, with a real stock service for prices and
//! real PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

mod bad_input;
mod concurrency;
mod endpoints;
mod helpers;
