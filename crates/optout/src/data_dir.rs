//! The data directory: the ledger database and the ledger's signing key.
//!
//! ```text
//! DIR/ledger.sqlite   the embedded ledger (plus SQLite's -wal and -shm files)
//! DIR/signing.key     ed25519 secret seed, hex, file mode 0600
//! DIR/signing.pub     the matching public key, hex: give it to whoever verifies receipts
//! ```
//!
//! With `--ledger postgres://…` the ledger lives in PostgreSQL instead (one schema per
//! ledger, `--ledger-schema`), and the directory keeps the keys, datasets and snapshots.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use optout_core::{Clock, LedgerSigner, PublicKey, SystemClock};
use optout_postgres::{PostgresConfig, PostgresError, PostgresLedger};
use optout_sqlite::SqliteLedger;
use optout_store::Ledger;

use crate::ledger_store::LedgerStore;

pub const LEDGER_FILE: &str = "ledger.sqlite";
pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const PUBLIC_KEY_FILE: &str = "signing.pub";

pub struct DataDir {
    path: PathBuf,
    /// A PostgreSQL ledger to use instead of `DIR/ledger.sqlite`.
    postgres: Option<PostgresConfig>,
}

/// An opened data directory: the ledger and the signer.
pub struct Opened {
    pub ledger: LedgerStore,
    pub signer: LedgerSigner,
    pub clock: Arc<dyn Clock>,
}

impl DataDir {
    pub fn new(path: &Path) -> Self {
        DataDir {
            path: path.to_path_buf(),
            postgres: None,
        }
    }

    /// The directory's keys with its ledger in PostgreSQL (`url`, `schema`).
    pub fn with_postgres(path: &Path, url: &str, schema: &str) -> anyhow::Result<Self> {
        let config = PostgresConfig::new(url, schema).context("--ledger-schema")?;
        Ok(DataDir {
            path: path.to_path_buf(),
            postgres: Some(config),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_initialized(&self) -> bool {
        self.path.join(SIGNING_KEY_FILE).exists()
            && (self.postgres.is_some() || self.path.join(LEDGER_FILE).exists())
    }

    /// Creates the directory, a fresh signing key and an empty ledger.
    pub fn create(&self) -> anyhow::Result<Opened> {
        let files: &[&str] = match self.postgres {
            Some(_) => &[SIGNING_KEY_FILE],
            None => &[SIGNING_KEY_FILE, LEDGER_FILE],
        };
        for existing in files {
            if self.path.join(existing).exists() {
                bail!(
                    "{} is already initialized (it has {existing}); use another directory or remove it",
                    self.path.display()
                );
            }
        }
        if let Some(config) = &self.postgres {
            // Checked before a key is made: a new key over an existing ledger would sign
            // receipts and manifests the ledger's verifiers do not know.
            if postgres_ledger_state(config)? == PostgresLedgerState::HasEvents {
                bail!(
                    "schema {} of {} already holds a ledger; open it with the data directory that holds its signing key, or choose another --ledger-schema",
                    config.schema,
                    config.redacted_url()
                );
            }
        }
        fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create data directory {}", self.path.display()))?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|error| anyhow::anyhow!("no randomness from the OS: {error}"))?;
        let signer = LedgerSigner::from_seed(seed);
        write_secret(&self.path.join(SIGNING_KEY_FILE), &hex::encode(seed))?;
        write_durably(
            &self.path.join(PUBLIC_KEY_FILE),
            format!("{}\n", signer.public_key()).as_bytes(),
        )?;
        self.open_files(Access::Write)
    }

    /// Opens an initialized directory.
    pub fn open(&self) -> anyhow::Result<Opened> {
        if !self.is_initialized() {
            return Err(self.not_initialized());
        }
        self.require_postgres_ledger()?;
        self.open_files(Access::Write)
    }

    /// Opens an initialized directory for commands that only read: on a PostgreSQL ledger
    /// they take no writer lock, so they run beside the service (the one writer).
    pub fn open_read_only(&self) -> anyhow::Result<Opened> {
        match self.postgres {
            None => self.open(),
            Some(_) => {
                if !self.is_initialized() {
                    return Err(self.not_initialized());
                }
                self.require_postgres_ledger()?;
                self.open_files(Access::Read)
            }
        }
    }

    /// Only `init` creates a ledger: a mistyped schema must not become a new, empty one.
    fn require_postgres_ledger(&self) -> anyhow::Result<()> {
        if let Some(config) = &self.postgres {
            if postgres_ledger_state(config)? == PostgresLedgerState::Missing {
                bail!(
                    "schema {} of {} holds no optout ledger; check --ledger and --ledger-schema, or create it with `optout --data-dir {} --ledger URL --ledger-schema {} init`",
                    config.schema,
                    config.redacted_url(),
                    self.path.display(),
                    config.schema
                );
            }
        }
        Ok(())
    }

    /// Why the directory cannot be opened, and what to do about it.
    pub fn not_initialized(&self) -> anyhow::Error {
        let path = self.path.display();
        if self.postgres.is_none()
            && self.path.join(SIGNING_KEY_FILE).exists()
            && !self.path.join(LEDGER_FILE).exists()
        {
            return anyhow::anyhow!(
                "{path} has a signing key but no {LEDGER_FILE}: if its ledger is in PostgreSQL, pass --ledger URL (or set OPTOUT_LEDGER)"
            );
        }
        anyhow::anyhow!(
            "{path} is not an optout data directory; create one with `optout --data-dir {path} init`"
        )
    }

    fn open_files(&self, access: Access) -> anyhow::Result<Opened> {
        let signer = read_signer(&self.path.join(SIGNING_KEY_FILE))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ledger = match &self.postgres {
            None => LedgerStore::Sqlite(
                SqliteLedger::open(&self.path.join(LEDGER_FILE), Arc::clone(&clock)).with_context(
                    || format!("cannot open the ledger in {}", self.path.display()),
                )?,
            ),
            Some(config) => LedgerStore::Postgres {
                ledger: Box::new(
                    match access {
                        Access::Write => PostgresLedger::open(config, Arc::clone(&clock)),
                        Access::Read => PostgresLedger::open_read_only(config),
                    }
                    .with_context(|| {
                        format!(
                            "cannot open the PostgreSQL ledger {} (schema {})",
                            config.redacted_url(),
                            config.schema
                        )
                    })?,
                ),
                data_dir: self.path.clone(),
            },
        };
        Ok(Opened {
            ledger,
            signer,
            clock,
        })
    }

    pub fn public_key(&self) -> anyhow::Result<PublicKey> {
        Ok(read_signer(&self.path.join(SIGNING_KEY_FILE))?.public_key())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PostgresLedgerState {
    Missing,
    Empty,
    HasEvents,
}

/// What the schema holds, read without taking the writer's lock.
fn postgres_ledger_state(config: &PostgresConfig) -> anyhow::Result<PostgresLedgerState> {
    match PostgresLedger::open_read_only(config) {
        Ok(ledger) => {
            let head = ledger.head().map_err(anyhow::Error::from)?;
            Ok(match head {
                Some(_) => PostgresLedgerState::HasEvents,
                None => PostgresLedgerState::Empty,
            })
        }
        // An older layout is still a ledger: its writer migrates it when it opens.
        Err(PostgresError::NotInitialised { found, .. }) if found > 0 => {
            Ok(PostgresLedgerState::HasEvents)
        }
        Err(PostgresError::NotInitialised { .. }) => Ok(PostgresLedgerState::Missing),
        Err(error) => Err(anyhow::Error::from(error)),
    }
}

fn read_signer(path: &Path) -> anyhow::Result<LedgerSigner> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| {
        anyhow::anyhow!(
            "{} does not hold a 64-hex-digit ed25519 seed",
            path.display()
        )
    })?;
    Ok(LedgerSigner::from_seed(seed))
}

/// Writes a file readable only by its owner, durably.
fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Writes `contents` to a temporary name, syncs, and renames it into place, so a reader
/// never sees a half-written file.
pub fn write_durably(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let temporary = temporary_name(path);
    let mut file = fs::File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    sync_parent(path);
    Ok(())
}

/// `DIR/.NAME.partial`: where an output is written before it is complete.
pub fn temporary_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    path.with_file_name(format!(".{name}.partial"))
}

/// Makes a rename durable (best effort: not every filesystem syncs directories).
pub fn sync_parent(path: &Path) {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        if let Ok(directory) = fs::File::open(parent) {
            let _ = directory.sync_all();
        }
    }
}
