//! JSON Web Tokens: the keys that sign and verify them, minting (for `optout token` and
//! the demo) and verification (for every request).
//!
//! Two kinds of token, told apart by the `scope` claim:
//! - a **member token** has `sub` = the member id and a `jurisdiction` claim (ISO 3166-1
//!   alpha-2), and no `scope`; it lets the member read and change their own settings;
//! - a **service token** has `sub` = the service's name and `scope` (space-separated, as
//!   in RFC 8693), e.g. `consent:read choices:write`.
//!
//! Accepted algorithms are EdDSA (Ed25519) and HS256, nothing else. `aud` must name this
//! service; `exp` is required and `nbf` honoured, both checked against the injected clock
//! with a small leeway. By default the key is an Ed25519 seed kept in the data directory
//! (`DIR/token.key`, mode 0600, created on first use); a deployment may add its identity
//! provider's Ed25519 public key or an HS256 secret.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use optout_core::{Jurisdiction, MemberId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// The file in the data directory holding the token signing key (hex Ed25519 seed).
pub const TOKEN_KEY_FILE: &str = "token.key";

/// The audience tokens are minted for and checked against, unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "optout";

/// Scope to append choices for any member (`POST /v1/choices:batch`).
pub const SCOPE_CHOICES_WRITE: &str = "choices:write";
/// Scope to read any member's consent (`POST /v1/consent:check`, `GET /v1/members/{id}/consent`).
pub const SCOPE_CONSENT_READ: &str = "consent:read";
/// Scope to read signed ledger checkpoints (`GET /v1/ledger/checkpoint`).
pub const SCOPE_LEDGER_READ: &str = "ledger:read";
/// Scope to read aggregate reports (`GET /v1/reports/choices`).
pub const SCOPE_REPORTS_READ: &str = "reports:read";
/// Scope to create snapshots (`POST /v1/snapshots`).
pub const SCOPE_SNAPSHOTS_WRITE: &str = "snapshots:write";
/// Scope to read and download snapshots (`GET /v1/snapshots/{id}` and its files).
pub const SCOPE_SNAPSHOTS_READ: &str = "snapshots:read";
/// Every scope a service token may carry.
pub const SCOPES: [&str; 6] = [
    SCOPE_CHOICES_WRITE,
    SCOPE_CONSENT_READ,
    SCOPE_LEDGER_READ,
    SCOPE_REPORTS_READ,
    SCOPE_SNAPSHOTS_WRITE,
    SCOPE_SNAPSHOTS_READ,
];

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const HS256_SECRET_BYTES_MIN: usize = 32;

/// Who a verified token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Member {
        member: MemberId,
        jurisdiction: Option<Jurisdiction>,
    },
    Service {
        name: String,
        scopes: Vec<String>,
        /// A digest of the token, so rate limits apply per token without keeping it.
        token_fingerprint: [u8; 16],
    },
}

/// Audience, issuer and leeway: what every token is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRules {
    pub audience: String,
    /// Checked when set, and put into minted tokens.
    pub issuer: Option<String>,
    pub leeway_seconds: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            audience: DEFAULT_AUDIENCE.to_string(),
            issuer: None,
            leeway_seconds: 30,
        }
    }
}

/// Tokens whose signature checked out, kept so a member's next request skips the
/// signature (an Ed25519 verification is most of a request's CPU). Keyed by the SHA-256
/// of the whole token; times are checked again on every use.
pub const VERIFIED_TOKENS_CACHED_MAX: usize = 100_000;

#[derive(Clone, Debug)]
struct VerifiedToken {
    principal: Principal,
    exp: i64,
    nbf: Option<i64>,
}

/// Verifies tokens with the configured keys.
pub struct TokenVerifier {
    eddsa_keys: Vec<DecodingKey>,
    hs256_key: Option<DecodingKey>,
    rules: TokenRules,
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifiedToken>>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("eddsa_keys", &self.eddsa_keys.len())
            .field("hs256", &self.hs256_key.is_some())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} does not hold a 64-hex-digit Ed25519 seed")]
    BadSeed { path: PathBuf },
    #[error("invalid Ed25519 public key {0:?}: expected 64 hex digits, or a file holding them")]
    BadPublicKey(String),
    #[error("the HS256 secret in {path} has {bytes} bytes; at least {HS256_SECRET_BYTES_MIN} are needed")]
    ShortSecret { path: PathBuf, bytes: usize },
    #[error("an HS256 secret of {bytes} bytes is too short; at least {HS256_SECRET_BYTES_MIN} are needed")]
    SecretTooShort { bytes: usize },
    #[error("no randomness from the operating system: {0}")]
    Randomness(String),
    #[error("no key to verify tokens with: keep the data directory key or configure one")]
    NoKeys,
}

impl TokenVerifier {
    /// A verifier with no keys yet; add at least one.
    pub fn new(rules: TokenRules) -> Self {
        TokenVerifier {
            eddsa_keys: Vec::new(),
            hs256_key: None,
            rules,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Accepts EdDSA tokens signed by this Ed25519 public key.
    pub fn with_eddsa_public_key(mut self, public_key: [u8; 32]) -> Self {
        self.eddsa_keys.push(DecodingKey::from_ed_der(&public_key));
        self
    }

    /// Accepts HS256 tokens made with this secret (at least 32 bytes).
    pub fn with_hs256_secret(mut self, secret: &[u8]) -> Result<Self, TokenKeyError> {
        check_secret_length(secret)?;
        let key = DecodingKey::from_secret(secret).map_err(|_| TokenKeyError::SecretTooShort {
            bytes: secret.len(),
        })?;
        self.hs256_key = Some(key);
        Ok(self)
    }

    pub fn has_keys(&self) -> bool {
        !self.eddsa_keys.is_empty() || self.hs256_key.is_some()
    }

    pub fn rules(&self) -> &TokenRules {
        &self.rules
    }

    /// Verifies a token at time `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Principal, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|verified| verified.get(&digest).cloned());
        if let Some(cached) = cached {
            self.check_times(cached.exp, cached.nbf, now)?;
            return Ok(cached.principal);
        }
        let verified = self.verify_signature(token, now)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_TOKENS_CACHED_MAX {
                cache.clear();
            }
            cache.insert(digest, verified.clone());
        }
        Ok(verified.principal)
    }

    fn verify_signature(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::TokenInvalid("not a JWT".into()))?;
        let validation = self.validation(header.alg);
        let claims = match header.alg {
            Algorithm::EdDSA => self.verify_with_any(token, &self.eddsa_keys, &validation)?,
            Algorithm::HS256 => match &self.hs256_key {
                Some(key) => decode(token, key, &validation)?,
                None => {
                    return Err(ApiError::TokenInvalid(
                        "HS256 tokens are not accepted".into(),
                    ))
                }
            },
            other => {
                return Err(ApiError::TokenInvalid(format!(
                    "algorithm {other:?} is not accepted; use EdDSA or HS256"
                )))
            }
        };
        self.check_times(claims.exp, claims.nbf, now)?;
        let (exp, nbf) = (claims.exp, claims.nbf);
        Ok(VerifiedToken {
            principal: principal(claims, token)?,
            exp,
            nbf,
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[&self.rules.audience]);
        if let Some(issuer) = &self.rules.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        // Times are checked against the injected clock in `check_times`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation
    }

    fn verify_with_any(
        &self,
        token: &str,
        keys: &[DecodingKey],
        validation: &Validation,
    ) -> Result<TokenClaims, ApiError> {
        let mut last = ApiError::TokenInvalid("EdDSA tokens are not accepted".into());
        for key in keys {
            match decode(token, key, validation) {
                Ok(claims) => return Ok(claims),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    fn check_times(&self, exp: i64, nbf: Option<i64>, now: Timestamp) -> Result<(), ApiError> {
        let now_seconds = now.as_micros().div_euclid(1_000_000);
        let leeway = i64::try_from(self.rules.leeway_seconds).unwrap_or(i64::MAX);
        if exp.saturating_add(leeway) <= now_seconds {
            return Err(ApiError::TokenExpired);
        }
        if let Some(nbf) = nbf {
            if nbf.saturating_sub(leeway) > now_seconds {
                return Err(ApiError::TokenNotYetValid);
            }
        }
        Ok(())
    }
}

fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<TokenClaims, ApiError> {
    jsonwebtoken::decode::<TokenClaims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidAudience => ApiError::TokenWrongAudience,
            ErrorKind::InvalidSignature => ApiError::TokenInvalid("bad signature".into()),
            ErrorKind::MissingRequiredClaim(claim) => {
                ApiError::TokenInvalid(format!("claim `{claim}` is missing"))
            }
            ErrorKind::InvalidIssuer => ApiError::TokenInvalid("unexpected issuer".into()),
            ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
                ApiError::TokenInvalid("claims of the wrong type".into())
            }
            _ => ApiError::TokenInvalid("malformed token".into()),
        })
}

/// The claims optout reads. Others (from an identity provider) are ignored.
#[derive(Deserialize, Debug)]
struct TokenClaims {
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jurisdiction: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

fn principal(claims: TokenClaims, token: &str) -> Result<Principal, ApiError> {
    match claims.scope {
        Some(scope) => {
            let digest = Sha256::digest(token.as_bytes());
            let mut token_fingerprint = [0u8; 16];
            for (slot, byte) in token_fingerprint.iter_mut().zip(digest.iter()) {
                *slot = *byte;
            }
            Ok(Principal::Service {
                name: claims.sub,
                scopes: scope.split_whitespace().map(str::to_string).collect(),
                token_fingerprint,
            })
        }
        None => {
            let member = claims.sub.parse::<MemberId>().map_err(|_| {
                ApiError::TokenInvalid("`sub` of a member token is not a member id".into())
            })?;
            let jurisdiction = claims
                .jurisdiction
                .as_deref()
                .map(Jurisdiction::parse)
                .transpose()
                .map_err(|_| {
                    ApiError::TokenInvalid(
                        "`jurisdiction` is not an ISO 3166-1 alpha-2 code".into(),
                    )
                })?;
            Ok(Principal::Member {
                member,
                jurisdiction,
            })
        }
    }
}

/// The claims optout mints.
#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: String,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    iat: i64,
    nbf: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jurisdiction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Mints tokens (for `optout token`, the demo and tests).
pub struct TokenIssuer {
    algorithm: Algorithm,
    key: EncodingKey,
    rules: TokenRules,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenIssuer({:?}, key redacted)", self.algorithm)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("unknown scope {0:?}: expected {scopes}", scopes = SCOPES.join(", "))]
    UnknownScope(String),
    #[error("a service token needs at least one scope")]
    NoScope,
    #[error("invalid service name {0:?}: expected 1-128 printable characters without spaces")]
    BadServiceName(String),
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

impl TokenIssuer {
    /// Signs EdDSA tokens with an Ed25519 seed.
    pub fn eddsa(seed: [u8; 32], rules: TokenRules) -> Self {
        TokenIssuer {
            algorithm: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&pkcs8_from_seed(seed)),
            rules,
        }
    }

    /// Signs HS256 tokens with a shared secret (at least 32 bytes).
    pub fn hs256(secret: &[u8], rules: TokenRules) -> Result<Self, TokenKeyError> {
        check_secret_length(secret)?;
        let key = EncodingKey::from_secret(secret).map_err(|_| TokenKeyError::SecretTooShort {
            bytes: secret.len(),
        })?;
        Ok(TokenIssuer {
            algorithm: Algorithm::HS256,
            key,
            rules,
        })
    }

    /// A member token valid from `now` for `ttl_seconds`.
    pub fn member(
        &self,
        member: MemberId,
        jurisdiction: Option<Jurisdiction>,
        now: Timestamp,
        ttl_seconds: i64,
    ) -> Result<String, MintError> {
        self.mint(
            member.to_string(),
            jurisdiction.map(|code| code.to_string()),
            None,
            now,
            ttl_seconds,
        )
    }

    /// A service token with the given scopes.
    pub fn service(
        &self,
        name: &str,
        scopes: &[String],
        now: Timestamp,
        ttl_seconds: i64,
    ) -> Result<String, MintError> {
        if name.is_empty()
            || name.len() > 128
            || name.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(MintError::BadServiceName(name.to_string()));
        }
        if scopes.is_empty() {
            return Err(MintError::NoScope);
        }
        if let Some(unknown) = scopes
            .iter()
            .find(|scope| !SCOPES.contains(&scope.as_str()))
        {
            return Err(MintError::UnknownScope(unknown.clone()));
        }
        self.mint(
            name.to_string(),
            None,
            Some(scopes.join(" ")),
            now,
            ttl_seconds,
        )
    }

    /// Any claims, for tests of what verification refuses.
    pub fn mint_raw(&self, claims: &serde_json::Value) -> Result<String, MintError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
            .map_err(|error| MintError::Signing(error.to_string()))
    }

    fn mint(
        &self,
        sub: String,
        jurisdiction: Option<String>,
        scope: Option<String>,
        now: Timestamp,
        ttl_seconds: i64,
    ) -> Result<String, MintError> {
        let now_seconds = now.as_micros().div_euclid(1_000_000);
        let claims = MintedClaims {
            sub,
            aud: &self.rules.audience,
            iss: self.rules.issuer.as_deref(),
            iat: now_seconds,
            nbf: now_seconds,
            exp: now_seconds.saturating_add(ttl_seconds),
            jurisdiction,
            scope,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)
            .map_err(|error| MintError::Signing(error.to_string()))
    }
}

fn check_secret_length(secret: &[u8]) -> Result<(), TokenKeyError> {
    if secret.len() < HS256_SECRET_BYTES_MIN {
        return Err(TokenKeyError::SecretTooShort {
            bytes: secret.len(),
        });
    }
    Ok(())
}

/// PKCS#8 v1 DER of an Ed25519 private key (RFC 8410): a fixed prefix and the seed.
fn pkcs8_from_seed(seed: [u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(&seed);
    der
}

/// The data directory's token key: an Ed25519 seed in `DIR/token.key`.
#[derive(Clone)]
pub struct TokenKey {
    seed: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey(public {})", hex::encode(self.public_key()))
    }
}

impl TokenKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        TokenKey { seed }
    }

    /// Reads `DIR/token.key`, creating it (mode 0600) if it does not exist yet. Two
    /// processes creating it at once agree on one key: the file appears whole or not at all.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, TokenKeyError> {
        let path = data_dir.join(TOKEN_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => return Self::parse(&text, &path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TokenKeyError::Read { path, source }),
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| TokenKeyError::Randomness(error.to_string()))?;
        write_secret_once(&path, &hex::encode(seed))?;
        let text = fs::read_to_string(&path).map_err(|source| TokenKeyError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, TokenKeyError> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| TokenKeyError::BadSeed {
            path: path.to_path_buf(),
        })?;
        Ok(TokenKey { seed })
    }

    pub fn public_key(&self) -> [u8; 32] {
        ed25519_public_key(self.seed)
    }

    pub fn issuer(&self, rules: TokenRules) -> TokenIssuer {
        TokenIssuer::eddsa(self.seed, rules)
    }
}

fn ed25519_public_key(seed: [u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes()
}

/// 32 bytes written as 64 hex digits.
struct HexKey([u8; 32]);

impl std::str::FromStr for HexKey {
    type Err = hex::FromHexError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)?;
        Ok(HexKey(bytes))
    }
}

/// An Ed25519 public key given as 64 hex digits or as the path of a file holding them.
pub fn read_eddsa_public_key(argument: &str) -> Result<[u8; 32], TokenKeyError> {
    let path = Path::new(argument);
    let text = if path.is_file() {
        fs::read_to_string(path).map_err(|source| TokenKeyError::Read {
            path: path.to_path_buf(),
            source,
        })?
    } else {
        argument.to_string()
    };
    text.parse::<HexKey>()
        .map(|key| key.0)
        .map_err(|_| TokenKeyError::BadPublicKey(argument.chars().take(80).collect()))
}

/// Reads an HS256 secret file (its bytes, trailing newline removed).
pub fn read_hs256_secret(path: &Path) -> Result<Vec<u8>, TokenKeyError> {
    let mut bytes = fs::read(path).map_err(|source| TokenKeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    while bytes
        .last()
        .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
    {
        bytes.pop();
    }
    if bytes.len() < HS256_SECRET_BYTES_MIN {
        return Err(TokenKeyError::ShortSecret {
            path: path.to_path_buf(),
            bytes: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Writes a 0600 file under a temporary name and links it into place, so readers see it
/// whole; if another process got there first, its file stays.
fn write_secret_once(path: &Path, contents: &str) -> Result<(), TokenKeyError> {
    let create = |source| TokenKeyError::Create {
        path: path.to_path_buf(),
        source,
    };
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|error| TokenKeyError::Randomness(error.to_string()))?;
    let temporary =
        path.with_file_name(format!(".{TOKEN_KEY_FILE}.{}.partial", hex::encode(random)));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(create)?;
    file.write_all(contents.as_bytes()).map_err(create)?;
    file.sync_all().map_err(create)?;
    drop(file);
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                if let Ok(directory) = fs::File::open(parent) {
                    let _ = directory.sync_all();
                }
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(create(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn eddsa_member_token_round_trips() {
        let key = TokenKey::from_seed([3; 32]);
        let issuer = key.issuer(TokenRules::default());
        let verifier =
            TokenVerifier::new(TokenRules::default()).with_eddsa_public_key(key.public_key());
        let token = issuer
            .member(
                MemberId(u64::MAX),
                Jurisdiction::parse("de").ok(),
                now(),
                3600,
            )
            .unwrap();
        assert_eq!(
            verifier.verify(&token, now()).unwrap(),
            Principal::Member {
                member: MemberId(u64::MAX),
                jurisdiction: Jurisdiction::parse("DE").ok()
            }
        );
        let later = now().saturating_add_micros(3_700 * 1_000_000);
        assert_eq!(verifier.verify(&token, later), Err(ApiError::TokenExpired));
    }

    #[test]
    fn refuses_other_keys_audiences_and_algorithms() {
        let rules = TokenRules::default();
        let verifier = TokenVerifier::new(rules.clone())
            .with_eddsa_public_key(TokenKey::from_seed([1; 32]).public_key());
        let forged = TokenKey::from_seed([2; 32])
            .issuer(rules.clone())
            .member(MemberId(1), None, now(), 60)
            .unwrap();
        assert!(matches!(
            verifier.verify(&forged, now()),
            Err(ApiError::TokenInvalid(_))
        ));
        let other_audience = TokenKey::from_seed([1; 32])
            .issuer(TokenRules {
                audience: "someone-else".into(),
                ..rules.clone()
            })
            .member(MemberId(1), None, now(), 60)
            .unwrap();
        assert_eq!(
            verifier.verify(&other_audience, now()),
            Err(ApiError::TokenWrongAudience)
        );
        let hs = TokenIssuer::hs256(&[9; 32], rules)
            .unwrap()
            .member(MemberId(1), None, now(), 60)
            .unwrap();
        assert!(matches!(
            verifier.verify(&hs, now()),
            Err(ApiError::TokenInvalid(_))
        ));
        assert!(matches!(
            verifier.verify("not.a.jwt", now()),
            Err(ApiError::TokenInvalid(_))
        ));
    }

    #[test]
    fn service_tokens_carry_known_scopes_only() {
        let issuer = TokenIssuer::hs256(&[5; 32], TokenRules::default()).unwrap();
        let verifier = TokenVerifier::new(TokenRules::default())
            .with_hs256_secret(&[5; 32])
            .unwrap();
        let token = issuer
            .service("feature-store", &["consent:read".to_string()], now(), 60)
            .unwrap();
        match verifier.verify(&token, now()).unwrap() {
            Principal::Service { name, scopes, .. } => {
                assert_eq!(name, "feature-store");
                assert_eq!(scopes, ["consent:read"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            issuer.service("x", &["root".to_string()], now(), 60),
            Err(MintError::UnknownScope(_))
        ));
    }

    #[test]
    fn token_key_is_created_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKey::load_or_create(dir.path()).unwrap();
        let second = TokenKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(TOKEN_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
