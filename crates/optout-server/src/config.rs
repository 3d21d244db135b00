//! The service's configuration: one typed struct with explicit defaults, read from a TOML
//! file, then `OPTOUT_*` environment variables, then command-line flags (each later layer
//! wins). Every key has an environment variable named after it: `limits.batch_choices_max`
//! is `OPTOUT_LIMITS_BATCH_CHOICES_MAX`. The config holds key *files*, never secrets, so
//! printing it leaks nothing. `docs/service.md` lists every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::limits::ServerLimits;
use crate::token::{
    read_eddsa_public_key, read_hs256_secret, TokenIssuer, TokenKey, TokenKeyError, TokenRules,
    TokenVerifier, DEFAULT_AUDIENCE,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    pub auth: AuthConfig,
    pub limits: ServerLimits,
    pub log: LogConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: AuthConfig::default(),
            limits: ServerLimits::default(),
            log: LogConfig::default(),
        }
    }
}

/// Which tokens are accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The `aud` every token must carry.
    pub audience: String,
    /// The `iss` every token must carry, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accept (and let `optout token` mint) EdDSA tokens signed with `DIR/token.key`.
    pub data_dir_key: bool,
    /// An identity provider's Ed25519 public key (hex, or a file holding it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eddsa_public_key: Option<String>,
    /// A file holding an HS256 secret (at least 32 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            audience: DEFAULT_AUDIENCE.to_string(),
            issuer: None,
            data_dir_key: true,
            eddsa_public_key: None,
            hs256_secret_file: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (for people) or `json` (one object a line, for collectors).
    pub format: LogFormat,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    Text,
    Integer,
    Boolean,
}

/// Every key that can be set, with the kind of its value.
const CONFIG_KEYS: &[(&str, ValueKind)] = &[
    ("listen", ValueKind::Text),
    ("auth.audience", ValueKind::Text),
    ("auth.issuer", ValueKind::Text),
    ("auth.data_dir_key", ValueKind::Boolean),
    ("auth.eddsa_public_key", ValueKind::Text),
    ("auth.hs256_secret_file", ValueKind::Text),
    ("limits.member_body_bytes_max", ValueKind::Integer),
    ("limits.platform_body_bytes_max", ValueKind::Integer),
    ("limits.batch_choices_max", ValueKind::Integer),
    ("limits.check_members_max", ValueKind::Integer),
    ("limits.history_choices_max", ValueKind::Integer),
    (
        "limits.usage_member_sets_cached_bytes_max",
        ValueKind::Integer,
    ),
    ("limits.snapshots_kept_max", ValueKind::Integer),
    ("limits.member_requests_per_second", ValueKind::Integer),
    ("limits.member_requests_burst", ValueKind::Integer),
    ("limits.service_requests_per_second", ValueKind::Integer),
    ("limits.service_requests_burst", ValueKind::Integer),
    ("limits.rate_limit_keys_max", ValueKind::Integer),
    ("limits.request_timeout_seconds", ValueKind::Integer),
    ("limits.shutdown_grace_seconds", ValueKind::Integer),
    ("limits.token_leeway_seconds", ValueKind::Integer),
    ("limits.token_ttl_seconds_max", ValueKind::Integer),
    ("limits.index_refresh_milliseconds", ValueKind::Integer),
    ("log.format", ValueKind::Text),
    ("log.level", ValueKind::Text),
];

/// The environment variable for a key: `limits.batch_choices_max` →
/// `OPTOUT_LIMITS_BATCH_CHOICES_MAX`.
pub fn env_name(key: &str) -> String {
    format!("OPTOUT_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every configuration key.
pub fn keys() -> impl Iterator<Item = &'static str> {
    CONFIG_KEYS.iter().map(|(key, _)| *key)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{variable}={value:?}: expected {expected}")]
    Environment {
        variable: String,
        value: String,
        expected: &'static str,
    },
    #[error("invalid configuration (after file, environment and flags): {0}")]
    Invalid(String),
    #[error("log.level {0:?}: expected error, warn, info, debug or trace")]
    LogLevel(String),
}

impl ServerConfig {
    /// Reads the layers: `file` (if any), then the environment as `env` reports it, then
    /// `flags` (key, value) pairs given on the command line.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        for (key, kind) in CONFIG_KEYS {
            let variable = env_name(key);
            if let Some(text) = env(&variable) {
                set(&mut table, key, env_value(&variable, &text, *kind)?);
            }
        }
        for (key, value) in flags {
            set(&mut table, key, toml::Value::String(value.clone()));
        }
        let config: ServerConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|error: toml::de::Error| {
                    ConfigError::Invalid(error.to_string().trim().to_string())
                })?;
        config.log_level()?;
        Ok(config)
    }

    /// The log level as tracing reads it.
    pub fn log_level(&self) -> Result<tracing::Level, ConfigError> {
        self.log
            .level
            .trim()
            .parse::<tracing::Level>()
            .map_err(|_| ConfigError::LogLevel(self.log.level.clone()))
    }

    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            audience: self.auth.audience.clone(),
            issuer: self.auth.issuer.clone(),
            leeway_seconds: self.limits.token_leeway_seconds,
        }
    }

    /// The verifier for the configured keys; `data_dir` holds `token.key`.
    pub fn token_verifier(&self, data_dir: &Path) -> Result<TokenVerifier, TokenKeyError> {
        let mut verifier = TokenVerifier::new(self.token_rules());
        if self.auth.data_dir_key {
            verifier =
                verifier.with_eddsa_public_key(TokenKey::load_or_create(data_dir)?.public_key());
        }
        if let Some(key) = &self.auth.eddsa_public_key {
            verifier = verifier.with_eddsa_public_key(read_eddsa_public_key(key)?);
        }
        if let Some(path) = &self.auth.hs256_secret_file {
            verifier = verifier.with_hs256_secret(&read_hs256_secret(path)?)?;
        }
        if !verifier.has_keys() {
            return Err(TokenKeyError::NoKeys);
        }
        Ok(verifier)
    }

    /// The issuer `optout token` mints with: the data directory's key.
    pub fn token_issuer(&self, data_dir: &Path) -> Result<TokenIssuer, TokenKeyError> {
        Ok(TokenKey::load_or_create(data_dir)?.issuer(self.token_rules()))
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
}

fn env_value(variable: &str, text: &str, kind: ValueKind) -> Result<toml::Value, ConfigError> {
    let error = |expected| ConfigError::Environment {
        variable: variable.to_string(),
        value: text.to_string(),
        expected,
    };
    match kind {
        ValueKind::Text => Ok(toml::Value::String(text.to_string())),
        ValueKind::Integer => text
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| error("an integer")),
        ValueKind::Boolean => match text.trim() {
            "true" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(error("true or false")),
        },
    }
}

/// Sets `section.key` (or a top-level `key`) in the table.
fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        Some((section, name)) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                inner.insert(name.to_string(), value);
            }
        }
        None => {
            table.insert(key.to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn flags_win_over_environment_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("optout.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[limits]\nbatch_choices_max = 5\nmember_requests_burst = 7\n[auth]\naudience = \"file\"\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("OPTOUT_LISTEN", "127.0.0.1:9001"),
            ("OPTOUT_LIMITS_BATCH_CHOICES_MAX", "6"),
            ("OPTOUT_AUTH_DATA_DIR_KEY", "false"),
        ]
        .into();
        let config = ServerConfig::load(
            Some(&file),
            |name| env.get(name).map(|value| value.to_string()),
            &[("listen", "127.0.0.1:9002".to_string())],
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9002);
        assert_eq!(config.limits.batch_choices_max, 6);
        assert_eq!(config.limits.member_requests_burst, 7);
        assert_eq!(config.auth.audience, "file");
        assert!(!config.auth.data_dir_key);
        assert_eq!(
            config.limits.check_members_max,
            ServerLimits::default().check_members_max
        );
    }

    #[test]
    fn bad_values_name_their_source() {
        let error = ServerConfig::load(
            None,
            |name| (name == "OPTOUT_LIMITS_BATCH_CHOICES_MAX").then(|| "many".to_string()),
            &[],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("OPTOUT_LIMITS_BATCH_CHOICES_MAX"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[limits]\nbatch_size = 3\n").unwrap();
        let error = ServerConfig::load(Some(&file), |_| None, &[]).unwrap_err();
        assert!(error.to_string().contains("batch_size"), "{error}");
    }

    #[test]
    fn every_key_of_the_defaults_is_listed() {
        let mut defaults = ServerConfig::default();
        defaults.auth.issuer = Some("i".into());
        defaults.auth.eddsa_public_key = Some("k".into());
        defaults.auth.hs256_secret_file = Some("f".into());
        let value = toml::Value::try_from(&defaults).unwrap();
        let mut found = Vec::new();
        for (name, entry) in value.as_table().unwrap() {
            match entry.as_table() {
                Some(section) => found.extend(section.keys().map(|key| format!("{name}.{key}"))),
                None => found.push(name.clone()),
            }
        }
        let mut listed: Vec<String> = keys().map(str::to_string).collect();
        found.sort();
        listed.sort();
        assert_eq!(found, listed);
    }
}
