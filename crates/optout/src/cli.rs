//! The command-line contract. Other tools and tests drive optout exactly so; changing a
//! name here is a breaking change.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "optout",
    version,
    about = "Consent ledger, index and gate for AI-training opt-outs"
)]
pub struct Cli {
    /// The data directory (ledger and signing key).
    #[arg(
        long,
        global = true,
        env = "OPTOUT_DATA_DIR",
        default_value = "./optout-data"
    )]
    pub data_dir: PathBuf,

    /// Keep the ledger in PostgreSQL (a libpq URL such as postgres://user@host/db) instead
    /// of DIR/ledger.sqlite; the data directory still holds the keys.
    #[arg(long, global = true, env = "OPTOUT_LEDGER", value_name = "URL")]
    pub ledger: Option<String>,

    /// The PostgreSQL schema of the ledger (several ledgers can share a database).
    #[arg(
        long,
        global = true,
        env = "OPTOUT_LEDGER_SCHEMA",
        default_value = "optout",
        value_name = "NAME"
    )]
    pub ledger_schema: String,

    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the data directory with a signing key and load a policy (the default policy
    /// unless --policy is given).
    Init {
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Policy versions.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Record a member's choice and print its signed receipt as JSON.
    Choose(ChooseArgs),
    /// Print a member's effective consent for a purpose as JSON.
    Status(StatusArgs),
    /// Import historical choices from Parquet, CSV or JSON Lines files.
    Import(ImportArgs),
    /// Verify, checkpoint and export the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Receipts.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Snapshots: effective explicit consent for (purpose, cutoff, ledger position).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// The whole product on one machine: a generated population in ./optout-demo, a
    /// sample dataset through the gate, then the service with demo sign-in links.
    Demo(DemoArgs),
    /// Build a training dataset from Parquet or JSON Lines, keeping only the rows of
    /// members allowed as of the cutoff and only the allowed fields, with a signed manifest.
    Gate(GateArgs),
    /// Check a dataset (built by the gate or by any engine) against the ledger: every
    /// row's member allowed as of the cutoff, no column outside the allow-list.
    Verify(DatasetVerifyArgs),
    /// Run the HTTP service (member settings, platform checks) on this data directory.
    Serve(crate::commands::serve::ServeArgs),
    /// Mint a JWT for a member or a platform service, signed with DIR/token.key.
    #[command(subcommand)]
    Token(crate::commands::token::TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file and append it to the ledger as the next version.
    Load { file: PathBuf },
    /// Print the policy versions recorded in the ledger.
    Show,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Args, Debug)]
pub struct ChooseArgs {
    pub member: String,
    pub purpose: String,
    pub decision: Decision,
    /// Channel the choice came through: web, mobile, api, gpc, admin, import.
    #[arg(long, default_value = "admin")]
    pub source: String,
    /// Who performed it (default: admin:$USER).
    #[arg(long)]
    pub actor: Option<String>,
    /// Where the member was when choosing (ISO 3166-1 alpha-2), if known.
    #[arg(long)]
    pub jurisdiction: Option<String>,
    /// Makes a retried command write one event.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Testing aid: append this many choices (members MEMBER, MEMBER+1, ...), printing
    /// each receipt on its own line as soon as it is durable.
    #[arg(long, hide = true, default_value_t = 1)]
    pub repeat: u64,
    /// Testing aid: threads appending concurrently with --repeat.
    #[arg(long, hide = true, default_value_t = 1)]
    pub concurrency: u64,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    pub member: String,
    #[arg(long)]
    pub purpose: String,
    /// The member's jurisdiction (ISO 3166-1 alpha-2); missing means the most protective answer.
    #[arg(long)]
    pub jurisdiction: Option<String>,
    /// The time to answer for (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    Parquet,
    Csv,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// File format (default: from each file's extension).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Import the valid rows and report the invalid ones, instead of importing nothing.
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Re-hash the whole ledger (or an export, offline); exit 1 naming the first bad position.
    Verify(VerifyArgs),
    /// Print a signed checkpoint of the ledger head as JSON.
    Checkpoint,
    /// Write the ledger as JSON Lines, one event a line, with hashes.
    Export { file: PathBuf },
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Verify this export instead of the data directory's ledger.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// A signed checkpoint the export must contain.
    #[arg(long, requires = "export")]
    pub checkpoint: Option<PathBuf>,
    /// The public key (hex, or a file holding it) the checkpoint must be signed with.
    #[arg(long)]
    pub key: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Check a receipt's signature.
    Verify {
        receipt: PathBuf,
        /// The ledger's public key (hex, or a file holding it, e.g. DIR/signing.pub).
        #[arg(long)]
        key: String,
    },
}

#[derive(Args, Debug)]
pub struct SnapshotTarget {
    #[arg(long)]
    pub purpose: String,
    /// The cutoff (RFC 3339): choices made after it do not count.
    #[arg(long)]
    pub cutoff: String,
    /// The ledger position the snapshot is taken at (default: the head). The same
    /// (purpose, cutoff, position) always gives the same snapshot.
    #[arg(long)]
    pub position: Option<u64>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFormat {
    Roaring,
    Parquet,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Write the allowed and denied member sets and a signed snapshot.json to a directory.
    Export {
        #[command(flatten)]
        target: SnapshotTarget,
        #[arg(long, value_enum, default_value = "roaring")]
        format: SnapshotFormat,
        #[arg(long)]
        out: PathBuf,
    },
    /// Store the snapshot as an index checkpoint, so later snapshots at or after its
    /// cutoff and position start from it instead of reading the whole ledger.
    Checkpoint {
        #[command(flatten)]
        target: SnapshotTarget,
    },
    /// Print a snapshot's counts (computed from the ledger, or read from an exported directory).
    Show {
        #[arg(long, conflicts_with_all = ["purpose", "cutoff", "position"])]
        dir: Option<PathBuf>,
        #[arg(long, required_unless_present = "dir")]
        purpose: Option<String>,
        #[arg(long, required_unless_present = "dir")]
        cutoff: Option<String>,
        #[arg(long)]
        position: Option<u64>,
    },
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its data.
    #[arg(long, default_value = "./optout-demo")]
    pub dir: PathBuf,
    /// Generated members (used when the directory is created; a reused one keeps its own).
    #[arg(long, default_value_t = 1_000_000)]
    pub members: u64,
    /// Where the service listens once the data is ready (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Prepare and show the data, but do not start the service.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    Parquet,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct GateArgs {
    #[arg(long)]
    pub purpose: String,
    /// The cutoff (RFC 3339): choices made after it do not count; must not be in the future.
    #[arg(long)]
    pub cutoff: String,
    /// Parquet or JSON Lines files, or directories of them.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// The dataset directory (new or empty).
    #[arg(long)]
    pub output: PathBuf,
    /// Fields to keep besides the id (default: the purpose's allowed fields).
    #[arg(long, value_delimiter = ',')]
    pub fields: Option<Vec<String>>,
    #[arg(long, default_value = "member_id")]
    pub id_column: String,
    #[arg(long, default_value = "country")]
    pub jurisdiction_column: String,
    /// Output format (default: Parquet, or JSON Lines for JSON Lines inputs).
    #[arg(long, value_enum)]
    pub format: Option<DatasetFormat>,
    /// The ledger position of the snapshot (default: the head).
    #[arg(long)]
    pub position: Option<u64>,
    /// Fail on a null or invalid id, a missing or unknown jurisdiction or a duplicate
    /// member, instead of dropping and counting.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Benchmark aid: copy the id and fields of every row with no consent logic, no
    /// manifest and no ledger event (the lower bound for the enforcement overhead).
    #[arg(long, hide = true)]
    pub no_consent: bool,
}

#[derive(Args, Debug)]
pub struct DatasetVerifyArgs {
    #[arg(long)]
    pub purpose: String,
    /// The cutoff (RFC 3339) the dataset claims to honour.
    #[arg(long)]
    pub cutoff: String,
    /// The gate's manifest: its signature and digests are checked, and its snapshot
    /// position is used.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Where members' jurisdictions come from when the dataset has no jurisdiction
    /// column: Parquet, CSV or JSON Lines files (or directories) with the id and
    /// jurisdiction columns; repeat the flag for several. Default with --manifest: the
    /// gate's inputs.
    #[arg(long)]
    pub jurisdictions: Vec<PathBuf>,
    #[arg(long, default_value = "member_id")]
    pub id_column: String,
    #[arg(long, default_value = "country")]
    pub jurisdiction_column: String,
    /// Rows whose jurisdiction is unknown are checked for explicit opt-outs only and do
    /// not fail the check.
    #[arg(long)]
    pub explicit_only: bool,
    /// Write the members in the dataset who have opted out since the cutoff (Parquet if
    /// the name ends in .parquet, else text, one id a line).
    #[arg(long)]
    pub since_cutoff: Option<PathBuf>,
    /// The dataset's files or directories (default: the manifest's outputs).
    pub paths: Vec<PathBuf>,
}
