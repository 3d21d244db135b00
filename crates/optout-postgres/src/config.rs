//! Where a PostgreSQL ledger lives: a connection string and a schema. Several ledgers can
//! share one database, each in its own schema (tests use one schema per test).

use std::fmt;

use crate::error::PostgresError;

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "optout";

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const SCHEMA_NAME_BYTES_MAX: usize = 63;

/// A validated schema name: 1-63 bytes of `a-z`, `0-9`, `_`, not starting with a digit,
/// so it is the same whether quoted or not and can be spelled into SQL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    pub fn new(name: &str) -> Result<Self, PostgresError> {
        let valid = !name.is_empty()
            && name.len() <= SCHEMA_NAME_BYTES_MAX
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(SchemaName(name.to_string()))
        } else {
            Err(PostgresError::InvalidSchemaName(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for SchemaName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

/// Memory for the writer's filter of idempotency keys: about 1% false positives (each
/// costing one lookup) up to some 50 million keyed events; beyond that it degrades towards
/// one lookup per keyed choice, never to a wrong answer.
pub const IDEMPOTENCY_FILTER_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

/// How to reach a ledger: `url` is a libpq-style connection string
/// (`postgres://user@127.0.0.1:5432/db` or `host=... user=... dbname=...`), without TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    pub url: String,
    pub schema: SchemaName,
    /// Size of the writer's in-memory filter of idempotency keys.
    pub idempotency_filter_bytes: usize,
}

impl PostgresConfig {
    /// A ledger in `schema` of the database at `url`.
    pub fn new(url: &str, schema: &str) -> Result<Self, PostgresError> {
        Ok(PostgresConfig {
            url: url.to_string(),
            schema: SchemaName::new(schema)?,
            idempotency_filter_bytes: IDEMPOTENCY_FILTER_BYTES_DEFAULT,
        })
    }

    /// A ledger in the default schema `optout`.
    pub fn with_default_schema(url: &str) -> Self {
        PostgresConfig {
            url: url.to_string(),
            schema: SchemaName(DEFAULT_SCHEMA.to_string()),
            idempotency_filter_bytes: IDEMPOTENCY_FILTER_BYTES_DEFAULT,
        }
    }

    /// The connection string with any password replaced by `***`, for messages and logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("idempotency_filter_bytes", &self.idempotency_filter_bytes)
            .finish()
    }
}

/// Hides the password of a URL (`scheme://user:password@host`) or of a key-value string
/// (`password=...`).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _password)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}{tail}");
            }
        }
        let redacted_tail = redact_query_password(tail);
        return format!("{scheme}://{authority}{redacted_tail}");
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schema_names_are_plain_lowercase_identifiers() {
        for good in ["optout", "optout_test_0a", "_x", "a9"] {
            assert_eq!(SchemaName::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "Optout", "9a", "a-b", "a\"b", "a b", &"a".repeat(64)] {
            assert!(SchemaName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/ledger"),
            "postgres://app:***@db:5432/ledger"
        );
        assert_eq!(
            redact_url("postgres://app@db/ledger?password=s3cret&sslmode=disable"),
            "postgres://app@db/ledger?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("host=db user=app password=s3cret"),
            "host=db user=app password=***"
        );
        let config = PostgresConfig::new("postgres://app:s3cret@db/x", "optout").unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
