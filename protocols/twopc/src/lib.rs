//! Two-phase commit over PostgreSQL prepared transactions.
//!
//! ```text
//!   order service (coordinator)                    stock / payment (participants)
//!   ───────────────────────────                    ──────────────────────────────
//!   BEGIN; SELECT .. FOR UPDATE (order row)
//!   ── prepare {gid, work} ──────────────────────►  BEGIN; record branch; business UPDATEs;
//!                                                  PREPARE TRANSACTION '<gid>'      ─► yes / no
//!   all yes: INSERT decision 'commit';
//!            UPDATE orders SET paid; COMMIT      (the decision is durable here)
//!   ── commit {gid} ────────────────────────────►  COMMIT PREPARED '<gid>'
//!   any no:  ── rollback {gid} ─────────────────►  ROLLBACK PREPARED / tombstone
//!
//!   recovery: coordinator re-sends phase two for unfinished decisions;
//!             participants ask `resolve {gid}` for branches prepared too long ago
//!             (no decision on record => abort is recorded: presumed abort).
//! ```
//!
//! - [`machine`]: the coordinator as an I/O-free state machine;
//! - [`coordinator`]: the runner around it (calls, decision log, recovery);
//! - [`transport`]: how it reaches the participants (HTTP, or in process);
//! - [`participant`]: prepare / commit / rollback / recovery in a participant;
//! - [`schema`]: the protocol's tables, installed at start-up;
//! - [`inspect`]: the state it leaves in flight, for the harness's verifier;
//! - [`decision_log`], [`gid`], [`messages`], [`metrics`], [`client`].

pub mod client;
pub mod coordinator;
pub mod decision_log;
pub mod gid;
pub mod inspect;
pub mod machine;
pub mod messages;
pub mod metrics;
pub mod participant;
pub mod schema;
pub mod transport;

pub use coordinator::{Coordinator, CoordinatorSettings};
pub use gid::{Gid, InstanceName, ParticipantId};
pub use machine::PrepareOrder;
pub use participant::{ParticipantRunner, ParticipantSettings};
