//! The saga's tables, installed by the protocol when a service starts with it
//! ([`protocol_core::schema`]): the outbox, the inbox and the dead letters in
//! every saga service's database, the saga state in the orchestrator's, the
//! step effects in each participant's.

use protocol_core::schema::ProtocolSchema;
use sqlx::PgPool;

/// The tables a saga service needs besides its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Outbox, inbox and the saga state (the order service).
    Orchestrator,
    /// Outbox, inbox and the step effects (stock, payment).
    Participant,
}

const ORCHESTRATOR: ProtocolSchema = ProtocolSchema {
    name: "saga-orchestrator",
    sql: &[include_str!("../sql/outbox_inbox.sql"), include_str!("../sql/orchestrator.sql")],
    tables: &["sagas", "saga_outbox", "saga_inbox", "saga_dead_letters"],
    recorded_before: Some(("saga_schema", "orchestrator")),
};

const PARTICIPANT: ProtocolSchema = ProtocolSchema {
    name: "saga-participant",
    sql: &[include_str!("../sql/outbox_inbox.sql"), include_str!("../sql/participant.sql")],
    tables: &["saga_effects", "saga_outbox", "saga_inbox", "saga_dead_letters"],
    recorded_before: Some(("saga_schema", "participant")),
};

impl Schema {
    /// Its SQL and tables.
    pub fn definition(self) -> &'static ProtocolSchema {
        match self {
            Schema::Orchestrator => &ORCHESTRATOR,
            Schema::Participant => &PARTICIPANT,
        }
    }

    /// The tables [`install`] creates for this schema that hold protocol
    /// state.
    pub fn tables(self) -> &'static [&'static str] {
        self.definition().tables
    }
}

/// Creates the saga tables if they do not exist: the protocol's, installed
/// by it at start-up rather than by each service's migrations, and skipped
/// when already in place ([`protocol_core::schema`]).
pub async fn install(pool: &PgPool, schema: Schema) -> sqlx::Result<()> {
    protocol_core::schema::install(pool, schema.definition()).await
}
