//! Fields `run.json` stores as the text the command line takes (`saga`,
//! `kill:kafka@3+2s`, `5ms`): serialised with `Display`, read back with
//! `FromStr`, so a recorded run reads as it was asked for and rebuilds
//! ([`crate::report::markdown::rebuild`]) without a second spelling.
//!
//! Use with `#[serde(with = "crate::text")]`, or the [`opt`] variant for an
//! `Option` of such a value.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes `value` as its `Display` text.
pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Reads a value back from its text.
pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: Display,
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// The same for an optional value (`null` when absent).
pub mod opt {
    use super::*;

    /// Writes `Some(value)` as its text, `None` as `null`.
    pub fn serialize<T: Display, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional value back from its text.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(d)?.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
    }
}
