//! `Timestamp`: an instant in UTC with microsecond resolution, the unit Parquet and
//! the ledger use. Kept as an integer so ordering and encoding are exact.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {input:?}: expected RFC 3339, e.g. 2025-06-30T00:00:00Z")]
pub struct TimeError {
    pub input: String,
}

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2025-06-30T00:00:00Z`, offsets allowed, fractions to the
    /// microsecond; finer fractions are an error rather than silently truncated).
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimeError> {
        let error = || TimeError {
            input: input.to_string(),
        };
        let parsed = DateTime::parse_from_rfc3339(input.trim()).map_err(|_| error())?;
        if parsed.timestamp_subsec_nanos() % 1_000 != 0 {
            return Err(error());
        }
        Ok(Timestamp(parsed.timestamp_micros()))
    }

    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(time) => time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None => format!("@{}us", self.0),
        }
    }

    pub fn saturating_add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(s)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_rfc3339() {
        let t = Timestamp::parse_rfc3339("2023-10-30T00:00:00Z").unwrap();
        assert_eq!(t.as_micros(), 1_698_624_000_000_000);
        assert_eq!(t.to_rfc3339(), "2023-10-30T00:00:00Z");
        let with_offset = Timestamp::parse_rfc3339("2023-10-30T02:00:00.000001+02:00").unwrap();
        assert_eq!(with_offset.as_micros(), t.as_micros() + 1);
        assert_eq!(with_offset.to_rfc3339(), "2023-10-30T00:00:00.000001Z");
    }

    #[test]
    fn rejects_garbage_and_sub_microsecond_fractions() {
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("2023-10-30").is_err());
        assert!(Timestamp::parse_rfc3339("2023-10-30T00:00:00.0000001Z").is_err());
    }
}
