//! What 2PC leaves in flight in a stack's databases, read by the harness's
//! verifier, so that no caller re-knows the protocol's tables.

use sqlx::PgPool;

use protocol_core::schema::has_table;

use crate::{decision_log, participant};

/// 2PC state still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Branches prepared and not yet committed or rolled back, over every
    /// participant database.
    pub prepared: i64,
    /// Decisions in the coordinator's log whose phase two has not finished.
    pub unfinished_decisions: i64,
}

/// 2PC state in flight in the coordinator's and the participants' databases.
/// A database 2PC never ran on counts nothing.
pub async fn in_flight(coordinator: &PgPool, participants: &[&PgPool]) -> sqlx::Result<InFlight> {
    let mut prepared = 0;
    for pool in participants {
        prepared += participant::count_prepared(pool).await?;
    }
    let unfinished_decisions = if has_table(coordinator, decision_log::TABLE).await? {
        decision_log::count_unfinished(coordinator).await?
    } else {
        0
    };
    Ok(InFlight { prepared, unfinished_decisions })
}
