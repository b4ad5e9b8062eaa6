//! The harness: brings up the local stack, and (as the comparison grows) loads,
//! breaks and verifies both protocols and writes reports under `results/`.
//!
//! `main.rs` only parses the command line; each subcommand lives in [`cli`].

pub mod api;
pub mod cli;
pub mod compare;
pub mod report;
pub mod run;
pub mod stack;
pub mod text;
pub mod timeouts;
pub use protocol_core::wait;
