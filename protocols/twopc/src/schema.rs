//! The 2PC tables, installed by the protocol when a service starts with it
//! ([`protocol_core::schema`]): the decision log in the coordinator's
//! database, the branch records in each participant's.

use protocol_core::schema::ProtocolSchema;
use sqlx::PgPool;

use crate::{decision_log, participant};

/// Which side of 2PC a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The decision log (the order service).
    Coordinator,
    /// The branch records (stock, payment).
    Participant,
}

const COORDINATOR: ProtocolSchema = ProtocolSchema {
    name: "2pc-coordinator",
    sql: &[include_str!("../sql/coordinator.sql")],
    tables: &[decision_log::TABLE],
    recorded_before: None,
};

const PARTICIPANT: ProtocolSchema = ProtocolSchema {
    name: "2pc-participant",
    sql: &[include_str!("../sql/participant.sql")],
    tables: &[participant::BRANCHES_TABLE],
    recorded_before: None,
};

impl Schema {
    /// Its SQL and tables.
    pub fn definition(self) -> &'static ProtocolSchema {
        match self {
            Schema::Coordinator => &COORDINATOR,
            Schema::Participant => &PARTICIPANT,
        }
    }

    /// The tables [`install`] creates for this side, all protocol state.
    pub fn tables(self) -> &'static [&'static str] {
        self.definition().tables
    }
}

/// Creates the tables of `schema` if they do not exist (a start that finds
/// them installed touches no table).
pub async fn install(pool: &PgPool, schema: Schema) -> sqlx::Result<()> {
    protocol_core::schema::install(pool, schema.definition()).await
}
