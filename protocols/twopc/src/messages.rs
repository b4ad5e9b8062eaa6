//! The internal HTTP API between coordinator and participants (JSON bodies).
//!
//! ```text
//!   coordinator ── POST /internal/2pc/prepare {gid, work} ──► participant   ─► VoteReply
//!   coordinator ── POST /internal/2pc/commit/{gid} ─────────► participant   ─► 200 | 409
//!   coordinator ── POST /internal/2pc/rollback/{gid} ───────► participant   ─► 200 | 409
//!   participant ── POST /internal/2pc/resolve/{gid} ────────► coordinator   ─► ResolveReply
//! ```

use protocol_core::RejectReason;

use crate::machine::Decision;
use serde::{Deserialize, Serialize};

/// Path of the prepare endpoint.
pub const PREPARE_PATH: &str = "/internal/2pc/prepare";
/// Path prefix of the commit endpoint (`/{gid}` follows).
pub const COMMIT_PATH: &str = "/internal/2pc/commit";
/// Path prefix of the rollback endpoint (`/{gid}` follows).
pub const ROLLBACK_PATH: &str = "/internal/2pc/rollback";
/// Path prefix of the coordinator's resolve endpoint (`/{gid}` follows).
pub const RESOLVE_PATH: &str = "/internal/2pc/resolve";
/// Path of the metrics endpoint on every 2PC service.
pub const METRICS_PATH: &str = "/internal/2pc/metrics";

pub use protocol_core::Work;

/// Body of a prepare request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareRequest {
    /// The branch's gid (validated by the participant before use).
    pub gid: String,
    /// The business effect.
    pub work: Work,
    /// The longest the coordinator lets this prepare wait for a row lock
    /// (what is left of the checkout's lock budget); the participant caps it
    /// with its own lock timeout and votes no (busy) when it runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_ms: Option<u64>,
}

/// A participant's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "vote", rename_all = "lowercase")]
pub enum VoteReply {
    /// Prepared.
    Yes,
    /// Refused for a business reason; nothing is prepared.
    No {
        /// Why.
        reason: RejectReason,
    },
    /// Refused because the branch was already resolved (a rollback arrived
    /// first and left a tombstone).
    Refused {
        /// Why.
        detail: String,
    },
}

/// The coordinator's answer to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveReply {
    /// The decision on record (an abort newly recorded if there was none).
    pub decision: Decision,
}
