//! The messages of the saga: commands from the orchestrator to the
//! participants, replies back. Versioned with serde so that a message written by
//! one build is read (or refused, never misread) by another.
//!
//! Every message carries the saga id, the step it belongs to and a unique
//! message id; the Kafka key is the order id, so all messages of one saga (and
//! of one order) land in one partition of each topic and stay in order.

use protocol_core::{RejectReason, Work};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Commands for the stock service.
pub const STOCK_COMMANDS: &str = "saga-stock-commands";
/// Commands for the payment service.
pub const PAYMENT_COMMANDS: &str = "saga-payment-commands";
/// Replies of both participants to the orchestrator.
pub const REPLIES: &str = "saga-replies";
/// Every topic the saga uses (the stack creates them).
pub const TOPICS: [&str; 3] = [STOCK_COMMANDS, PAYMENT_COMMANDS, REPLIES];

/// How long the saga topics keep messages (`retention.ms`, set when the topics
/// are created). A message can be redelivered or replayed only while it is in
/// its topic, so this bounds how long the inboxes and effect records must
/// remember a message ([`crate::inbox::DEDUP_RETENTION`]).
pub const TOPIC_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// How often a topic rolls a new segment (`segment.ms`). Kafka deletes whole
/// segments, so a message lives at most `TOPIC_RETENTION + TOPIC_SEGMENT`,
/// which [`crate::inbox::DEDUP_RETENTION`] covers.
pub const TOPIC_SEGMENT: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The schema version this build writes and reads.
pub const VERSION: u16 = 1;

/// A step of the checkout saga; each is owned by one participant service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reserve (take) the order's stock; compensated by releasing it.
    ReserveStock,
    /// Debit the user's credit; compensated by refunding it.
    DebitCredit,
}

impl Step {
    /// Both steps, in the order the sequential mode runs them.
    pub const ALL: [Step; 2] = [Step::ReserveStock, Step::DebitCredit];

    /// The topic the step's commands go to.
    pub fn command_topic(self) -> &'static str {
        match self {
            Step::ReserveStock => STOCK_COMMANDS,
            Step::DebitCredit => PAYMENT_COMMANDS,
        }
    }

    /// Name used in the database and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReserveStock => "reserve_stock",
            Step::DebitCredit => "debit_credit",
        }
    }
}

/// A message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// Orchestrator → participant: carry out the step.
    Action {
        /// What to do.
        work: Work,
    },
    /// Orchestrator → participant: undo the step (or make sure it never happens).
    Compensate,
    /// Participant → orchestrator: the step took effect.
    Done,
    /// Participant → orchestrator: the step was refused and took no effect.
    Refused {
        /// Why.
        reason: RejectReason,
    },
    /// Participant → orchestrator: the step is undone (or will never happen).
    Compensated,
}

impl Body {
    /// Whether this is a command (as opposed to a reply).
    pub fn is_command(&self) -> bool {
        matches!(self, Body::Action { .. } | Body::Compensate)
    }
}

/// One message on a saga topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema version ([`VERSION`]).
    pub v: u16,
    /// Unique per message; participants and the orchestrator deduplicate by it.
    pub message_id: Uuid,
    /// The saga this message belongs to.
    pub saga_id: Uuid,
    /// The order the saga checks out; also the Kafka key.
    pub order_id: String,
    /// The step the message is about.
    pub step: Step,
    /// What the message says.
    pub body: Body,
}

/// A payload that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the expected shape.
    #[error("malformed saga message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a build with another schema version.
    #[error("unsupported saga message version {0} (this build reads {VERSION})")]
    Version(u16),
}

impl Envelope {
    /// A new message with a fresh id.
    pub fn new(saga_id: Uuid, order_id: &str, step: Step, body: Body) -> Self {
        Envelope { v: VERSION, message_id: Uuid::new_v4(), saga_id, order_id: order_id.to_owned(), step, body }
    }

    /// The reply to this command, with a fresh id.
    pub fn reply(&self, body: Body) -> Self {
        Envelope::new(self.saga_id, &self.order_id, self.step, body)
    }

    /// The topic this message goes to.
    pub fn topic(&self) -> &'static str {
        if self.body.is_command() { self.step.command_topic() } else { REPLIES }
    }

    /// JSON bytes for Kafka.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a payload, refusing other schema versions.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Versioned {
            v: u16,
        }
        let Versioned { v } = serde_json::from_slice(payload)?;
        if v != VERSION {
            return Err(DecodeError::Version(v));
        }
        Ok(serde_json::from_slice(payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_routes_by_body() {
        let saga = Uuid::new_v4();
        let work = Work::Payment { user_id: "7".into(), amount: 12, as_of_us: Some(1) };
        let cmd = Envelope::new(saga, "42", Step::DebitCredit, Body::Action { work });
        assert_eq!(cmd.topic(), PAYMENT_COMMANDS);
        assert_eq!(Envelope::decode(&cmd.encode()).unwrap(), cmd);
        let reply = cmd.reply(Body::Refused { reason: RejectReason::InsufficientCredit });
        assert_eq!(reply.topic(), REPLIES);
        assert_eq!((reply.saga_id, reply.step, reply.order_id.as_str()), (saga, Step::DebitCredit, "42"));
        assert_ne!(reply.message_id, cmd.message_id);
        assert_eq!(Envelope::decode(&reply.encode()).unwrap(), reply);
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let mut msg = Envelope::new(Uuid::new_v4(), "1", Step::ReserveStock, Body::Compensate);
        msg.v = 2;
        assert!(matches!(Envelope::decode(&msg.encode()), Err(DecodeError::Version(2))));
        assert!(matches!(Envelope::decode(b"{\"v\":1}"), Err(DecodeError::Malformed(_))));
        assert!(matches!(Envelope::decode(b"not json"), Err(DecodeError::Malformed(_))));
    }
}
