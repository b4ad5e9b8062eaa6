//! The harness's own API client ([`harness::api::Api`]), as the tests build
//! it: the tests speak to the gateway through the same typed client as the
//! workloads and `--target`, so a test and a run read replies the same way.

use std::time::Duration;

pub use harness::api::{Api, path};

/// A client of `base` for a test: a minute per reply, connections for many
/// concurrent checkouts.
pub fn client(base: &str) -> Api {
    Api::new(base, Duration::from_secs(60), 256).expect("an HTTP client")
}
