//! Validated path parameters.
//!
//! Request input reaches SQL only through these types. Each parser answers a
//! precise 400 naming the parameter, so a client learns what was wrong and the
//! handler never runs with half-valid input (and so never changes state).

use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;

use crate::error::ApiError;

/// Axum's `Path` extractor with its rejection turned into an [`ApiError`], so even
/// undecodable paths get the JSON error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

/// Longest decimal id accepted: `u64::MAX` has 20 digits.
const MAX_DECIMAL_ID_LEN: usize = 20;

/// An entity id: either a UUID (ids the services create) or a decimal number
/// without leading zeros (ids `batch_init` creates, `"0"`..`"n-1"`).
///
/// UUIDs are normalised to lower-case hyphenated form, so the same id spelled in
/// upper case finds the same row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    /// Parses the parameter `name` from `raw`.
    pub fn parse(name: &str, raw: &str) -> Result<Self, ApiError> {
        if is_decimal_id(raw) {
            return Ok(Id(raw.to_owned()));
        }
        if raw.len() == 36
            && let Ok(uuid) = uuid::Uuid::try_parse(raw)
        {
            return Ok(Id(uuid.hyphenated().to_string()));
        }
        Err(ApiError::bad_request(format!("{name} must be a UUID or a non-negative decimal integer")))
    }

    /// A fresh random (v4 UUID) id.
    pub fn new_random() -> Self {
        Id(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// The id as stored in the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the id into its stored form.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_decimal_id(raw: &str) -> bool {
    let digits = !raw.is_empty() && raw.len() <= MAX_DECIMAL_ID_LEN && raw.bytes().all(|b| b.is_ascii_digit());
    digits && (raw == "0" || !raw.starts_with('0')) && raw.parse::<u64>().is_ok()
}

/// The largest amount, price, balance, stock level or order total the API
/// accepts or lets a counter reach: 2^53 - 1, which every JSON client reads
/// exactly.
///
/// The bound is also what keeps a saga's compensation from overflowing: a
/// refund or a release adds back what a step took from a row. Every row
/// counts what checkouts took from it since its latest `batch_init` (its
/// `taken` column, less what compensations gave back), and an add is refused
/// when the row's value plus that count would pass `MAX_VALUE`
/// ([`crate::counter`]). A compensation gives back at most what is counted, so
/// every row stays at or below `MAX_VALUE` and no sequence of API calls can
/// make a compensation fail. The price: a row can take in at most `MAX_VALUE`
/// in all between two resets (2^53 units or cents).
pub const MAX_VALUE: i64 = (1 << 53) - 1;

/// A strictly positive quantity of money or stock (`1..=MAX_VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    /// Parses the parameter `name` from `raw`.
    pub fn parse(name: &str, raw: &str) -> Result<Self, ApiError> {
        let value = parse_i64(name, raw)?;
        if value <= 0 {
            return Err(ApiError::bad_request(format!("{name} must be positive")));
        }
        Ok(Amount(bounded(name, value)?))
    }

    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A quantity that may be zero: a price or a starting balance (`0..=MAX_VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NonNegative(i64);

impl NonNegative {
    /// Parses the parameter `name` from `raw`.
    pub fn parse(name: &str, raw: &str) -> Result<Self, ApiError> {
        let value = parse_i64(name, raw)?;
        if value < 0 {
            return Err(ApiError::bad_request(format!("{name} must not be negative")));
        }
        Ok(NonNegative(bounded(name, value)?))
    }

    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// How many entities a `batch_init` creates: `1..=limit`, so one request cannot
/// ask a service to write an unbounded amount of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(i64);

/// The default upper bound for [`Count`]: ten times the course benchmark's size.
pub const MAX_BATCH: i64 = 1_000_000;

impl Count {
    /// Parses the parameter `name` from `raw`, accepting at most `limit`.
    pub fn parse(name: &str, raw: &str, limit: i64) -> Result<Self, ApiError> {
        let value = parse_i64(name, raw)?;
        if !(1..=limit).contains(&value) {
            return Err(ApiError::bad_request(format!("{name} must be between 1 and {limit}")));
        }
        Ok(Count(value))
    }

    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

fn bounded(name: &str, value: i64) -> Result<i64, ApiError> {
    if value > MAX_VALUE {
        return Err(ApiError::bad_request(format!("{name} must be at most {MAX_VALUE}")));
    }
    Ok(value)
}

fn parse_i64(name: &str, raw: &str) -> Result<i64, ApiError> {
    // Accept only plain ASCII digits with an optional minus sign: "+5", " 5",
    // "5.0" and "1e3" are typos, not numbers.
    let body = raw.strip_prefix('-').unwrap_or(raw);
    if body.is_empty() || body.len() > 19 + 1 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!("{name} must be an integer")));
    }
    raw.parse::<i64>().map_err(|_| ApiError::bad_request(format!("{name} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_uuids_and_plain_decimals() {
        assert_eq!(Id::parse("id", "0").map(Id::into_string).ok(), Some("0".into()));
        assert_eq!(Id::parse("id", "99999").map(Id::into_string).ok(), Some("99999".into()));
        let upper = "6F9619FF-8B86-D011-B42D-00CF4FC964FF";
        assert_eq!(Id::parse("id", upper).map(Id::into_string).ok(), Some(upper.to_lowercase()));
    }

    #[test]
    fn ids_reject_everything_else() {
        for bad in [
            "",
            "-1",
            "007",
            "1.5",
            "abc",
            "1 ",
            "18446744073709551616",
            "6f9619ff8b86d011b42d00cf4fc964ff",
            "{6f9619ff-8b86-d011-b42d-00cf4fc964ff}",
            "'; DROP TABLE items; --",
            &"9".repeat(5000),
        ] {
            assert!(Id::parse("id", bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn amounts_are_positive_and_bounded() {
        assert_eq!(Amount::parse("a", "1").map(Amount::get).ok(), Some(1));
        assert_eq!(Amount::parse("a", "9007199254740991").map(Amount::get).ok(), Some(MAX_VALUE));
        for bad in [
            "0",
            "-1",
            "9007199254740992",
            "9223372036854775807",
            "9223372036854775808",
            "1e3",
            "+5",
            "5.0",
            "",
            "x",
            "-",
        ] {
            assert!(Amount::parse("a", bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn non_negative_accepts_zero() {
        assert_eq!(NonNegative::parse("p", "0").map(NonNegative::get).ok(), Some(0));
        assert!(NonNegative::parse("p", "-1").is_err());
        assert!(NonNegative::parse("p", "9007199254740992").is_err());
    }

    #[test]
    fn counts_are_bounded() {
        assert!(Count::parse("n", "1", 10).is_ok());
        assert!(Count::parse("n", "10", 10).is_ok());
        assert!(Count::parse("n", "11", 10).is_err());
        assert!(Count::parse("n", "0", 10).is_err());
    }
}
