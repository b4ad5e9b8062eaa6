//! The payment service over real HTTP against a real PostgreSQL database.

mod bad_input;
mod concurrency;
mod endpoints;
mod helpers;
