//! The order service over real HTTP, with a real stock service for prices and
//! real PostgreSQL and Redis.

mod bad_input;
mod concurrency;
mod endpoints;
mod helpers;
