//! Global transaction ids (gids) of prepared transactions.
//!
//! `PREPARE TRANSACTION` takes its gid as a SQL literal, not a parameter, so a gid
//! must never contain request input. Gids are built only from ids the
//! coordinator makes (its instance name, checked at start-up, and a fresh UUID)
//! and every gid is validated again before it is put into SQL.
//!
//! Format: `s2pc:<coordinator>:<txn uuid>:<participant>`, for example
//! `s2pc:order-0:6f9619ff-8b86-d011-b42d-00cf4fc964ff:stock`. The prefix lets a
//! participant find its own prepared transactions in `pg_prepared_xacts` and
//! leave any others alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Prefix of every gid this project creates.
pub const PREFIX: &str = "s2pc:";
/// PostgreSQL limits gids to 200 bytes.
pub const MAX_LEN: usize = 199;
const MAX_INSTANCE_LEN: usize = 40;

/// Which participant runs a branch of a checkout transaction: the last part
/// of its gid, and the key of its vote and its phase two in the coordinator's
/// machine. (The participant's side of the protocol is
/// [`crate::ParticipantRunner`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantId {
    /// The stock service.
    Stock,
    /// The payment service.
    Payment,
}

impl ParticipantId {
    /// Both participants, in the order outcomes are reported.
    pub const ALL: [ParticipantId; 2] = [ParticipantId::Stock, ParticipantId::Payment];

    /// Name used in gids, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantId::Stock => "stock",
            ParticipantId::Payment => "payment",
        }
    }
}

/// Why a string is not a valid gid or instance name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct InvalidGid {
    what: &'static str,
    reason: &'static str,
}

/// A coordinator instance name usable inside a gid: 1 to 40 of `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceName(String);

impl InstanceName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, InvalidGid> {
        let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if name.is_empty() || name.len() > MAX_INSTANCE_LEN || !ok_chars {
            return Err(InvalidGid { what: "instance name", reason: "must be 1-40 characters of [a-z0-9-]" });
        }
        Ok(InstanceName(name.to_owned()))
    }

    /// Turns a free-form replica name (`order#0`) into a valid instance name
    /// (`order-0`).
    pub fn sanitize(raw: &str) -> Result<Self, InvalidGid> {
        let cleaned: String = raw
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(MAX_INSTANCE_LEN)
            .collect();
        Self::new(&cleaned)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The gid of one participant's branch of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gid {
    /// The coordinator instance that created the transaction.
    pub coordinator: InstanceName,
    /// The transaction.
    pub txn: Uuid,
    /// Whose branch this is.
    pub participant: ParticipantId,
}

impl Gid {
    /// The gid of `participant`'s branch of `txn`.
    pub fn new(coordinator: InstanceName, txn: Uuid, participant: ParticipantId) -> Self {
        Gid { coordinator, txn, participant }
    }

    /// The gid quoted as a SQL string literal. Safe because every character of a
    /// valid gid is in `[a-z0-9:-]` (checked by construction and by parsing).
    pub fn sql_literal(&self) -> String {
        format!("'{self}'")
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}:{}:{}", self.coordinator.as_str(), self.txn.hyphenated(), self.participant.as_str())
    }
}

impl FromStr for Gid {
    type Err = InvalidGid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| InvalidGid { what: "gid", reason };
        if s.len() > MAX_LEN {
            return Err(bad("too long"));
        }
        let rest = s.strip_prefix(PREFIX).ok_or(bad("missing prefix"))?;
        let mut parts = rest.split(':');
        let (Some(coordinator), Some(txn), Some(participant), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected coordinator:txn:participant"));
        };
        let coordinator = InstanceName::new(coordinator)?;
        if txn.len() != 36 {
            return Err(bad("transaction id is not a hyphenated UUID"));
        }
        let txn = Uuid::try_parse(txn).map_err(|_| bad("transaction id is not a UUID"))?;
        if txn.hyphenated().to_string() != rest.split(':').nth(1).unwrap_or_default() {
            return Err(bad("transaction id is not in lower-case form"));
        }
        let participant = match participant {
            "stock" => ParticipantId::Stock,
            "payment" => ParticipantId::Payment,
            _ => return Err(bad("unknown participant")),
        };
        Ok(Gid { coordinator, txn, participant })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gid() -> Gid {
        Gid::new(
            InstanceName::sanitize("order#12").unwrap(),
            Uuid::parse_str("6f9619ff-8b86-d011-b42d-00cf4fc964ff").unwrap(),
            ParticipantId::Payment,
        )
    }

    #[test]
    fn formats_parses_and_fits_postgres() {
        let g = gid();
        let text = g.to_string();
        assert_eq!(text, "s2pc:order-12:6f9619ff-8b86-d011-b42d-00cf4fc964ff:payment");
        assert_eq!(text.parse::<Gid>(), Ok(g.clone()));
        assert_eq!(g.sql_literal(), format!("'{text}'"));
        let longest = Gid::new(InstanceName::new(&"a".repeat(40)).unwrap(), g.txn, ParticipantId::Payment);
        assert!(longest.to_string().len() < 200);
    }

    #[test]
    fn rejects_anything_that_could_escape_a_literal() {
        for bad in [
            "s2pc:order-0:6f9619ff-8b86-d011-b42d-00cf4fc964ff:stock'; DROP TABLE x; --",
            "s2pc:order'0:6f9619ff-8b86-d011-b42d-00cf4fc964ff:stock",
            "s2pc:order-0:6F9619FF-8B86-D011-B42D-00CF4FC964FF:stock",
            "s2pc:order-0:6f9619ff8b86d011b42d00cf4fc964ff:stock",
            "s2pc:order-0:6f9619ff-8b86-d011-b42d-00cf4fc964ff:shipping",
            "s2pc:order-0:6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            "s2pc::6f9619ff-8b86-d011-b42d-00cf4fc964ff:stock",
            "other:order-0:6f9619ff-8b86-d011-b42d-00cf4fc964ff:stock",
        ] {
            assert!(bad.parse::<Gid>().is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn instance_names_are_checked() {
        assert!(InstanceName::new("Order").is_err());
        assert!(InstanceName::new("").is_err());
        assert!(InstanceName::new(&"a".repeat(41)).is_err());
        assert_eq!(InstanceName::sanitize("Order#3").map(|n| n.as_str().to_owned()), Ok("order-3".to_owned()));
    }
}
