//! The data directory: the ledger database and the ledger's signing key.
//!
//! ```text
//! DIR/ledger.sqlite   the embedded ledger (plus SQLite's -wal and -shm files)
//! DIR/signing.key     ed25519 secret seed, hex, file mode 0600
//! DIR/signing.pub     the matching public key, hex: give it to whoever verifies receipts
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use optout_core::{Clock, LedgerSigner, PublicKey, SystemClock};
use optout_sqlite::SqliteLedger;

pub const LEDGER_FILE: &str = "ledger.sqlite";
pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const PUBLIC_KEY_FILE: &str = "signing.pub";

pub struct DataDir {
    path: PathBuf,
}

/// An opened data directory: the ledger and the signer.
pub struct Opened {
    pub ledger: SqliteLedger,
    pub signer: LedgerSigner,
    pub clock: Arc<dyn Clock>,
}

impl DataDir {
    pub fn new(path: &Path) -> Self {
        DataDir {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_initialized(&self) -> bool {
        self.path.join(SIGNING_KEY_FILE).exists() && self.path.join(LEDGER_FILE).exists()
    }

    /// Creates the directory, a fresh signing key and an empty ledger.
    pub fn create(&self) -> anyhow::Result<Opened> {
        for existing in [SIGNING_KEY_FILE, LEDGER_FILE] {
            if self.path.join(existing).exists() {
                bail!(
                    "{} is already initialized (it has {existing}); use another directory or remove it",
                    self.path.display()
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
        self.open_files()
    }

    /// Opens an initialized directory.
    pub fn open(&self) -> anyhow::Result<Opened> {
        if !self.is_initialized() {
            bail!(
                "{} is not an optout data directory; create one with `optout --data-dir {} init`",
                self.path.display(),
                self.path.display()
            );
        }
        self.open_files()
    }

    fn open_files(&self) -> anyhow::Result<Opened> {
        let signer = read_signer(&self.path.join(SIGNING_KEY_FILE))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ledger = SqliteLedger::open(&self.path.join(LEDGER_FILE), Arc::clone(&clock))
            .with_context(|| format!("cannot open the ledger in {}", self.path.display()))?;
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
