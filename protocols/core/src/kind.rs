//! Which distributed-transaction protocol a deployment runs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The two protocols this project compares. A closed set, so an enum rather than
/// a trait object: every `match` on it is checked for exhaustiveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProtocolKind {
    /// Orchestrated SAGA over Apache Kafka with compensations.
    #[serde(rename = "saga")]
    Saga,
    /// Two-phase commit over PostgreSQL prepared transactions.
    #[serde(rename = "2pc")]
    TwoPc,
}

impl ProtocolKind {
    /// The name used on command lines, in configuration and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolKind::Saga => "saga",
            ProtocolKind::TwoPc => "2pc",
        }
    }
}

impl fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is neither `saga` nor `2pc`.
#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?}: expected \"saga\" or \"2pc\"")]
pub struct UnknownProtocol(String);

impl FromStr for ProtocolKind {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "saga" => Ok(ProtocolKind::Saga),
            "2pc" | "twopc" => Ok(ProtocolKind::TwoPc),
            _ => Err(UnknownProtocol(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for kind in [ProtocolKind::Saga, ProtocolKind::TwoPc] {
            assert_eq!(kind.as_str().parse::<ProtocolKind>().ok(), Some(kind));
        }
        assert_eq!("TwoPC".parse::<ProtocolKind>().ok(), Some(ProtocolKind::TwoPc));
        assert!("3pc".parse::<ProtocolKind>().is_err());
    }
}
