//! The command line (clap). `main` parses it and hands it to [`crate::cli::commands::dispatch`].

use std::path::PathBuf;

use crate::ops::{RunId, SyncId};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// dinmo: warehouse-native reverse ETL for usage-based billing.
#[derive(Debug, Parser)]
#[command(name = "dinmo", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The project folder (holding dinmo.yml). Default: the working directory or the nearest
    /// parent that has one.
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Only errors on stderr; no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Memory the query engine may hold (`4GB`, `512MB`, `2GiB`); past it, sorts,
    /// aggregations and the anti-join spill to disk. Overrides `execution.memory_limit`.
    #[arg(long, global = true, env = "DINMO_MEMORY_LIMIT", value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    crate::ops::parse_byte_size(text)
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON (schema in docs/cli-reference.md).
    Json,
}

/// Plan report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Human-readable text.
    Text,
    /// A pull-request comment: deterministic (no run ids or times), so two plans diff cleanly.
    Markdown,
    /// JSON (schema in docs/cli-reference.md).
    Json,
}

/// Which models and syncs to act on.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectionArgs {
    /// Only these: model names, `tag:<tag>`, `sync:<model>.<destination>`, `state:modified`;
    /// space-separated (or repeated) selectors are a union, comma-joined ones an intersection.
    #[arg(long, short = 's', value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Leave these out (same forms as --select).
    #[arg(long, value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// The state `state:modified` compares with (a state location, e.g. production's);
    /// default: the project's own.
    #[arg(long, value_name = "LOCATION")]
    pub state: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse every file, plan every model's SQL without running it, and check mappings
    /// against the destinations' field rules.
    Validate(ValidateArgs),
    /// Compute each sync's new rows and what the destination's rules would refuse; sends
    /// nothing.
    Plan(PlanArgs),
    /// Plan, send, and commit what the destination acknowledged.
    Run(RunArgs),
    /// List past runs, newest first.
    Runs(RunsArgs),
    /// Show what one run sent, rejected, or left pending.
    Show(ShowArgs),
    /// Run SQL over the sync history: the tables runs, sent, rejected, pending, held and
    /// corrections (docs/sync-history.md). Reads only; takes no lock.
    Query(QueryArgs),
    /// Write the sync history as one self-contained HTML page with charts and tables.
    Report(ReportArgs),
    /// Delete a run's records in the destination where it still allows it (Zuora: status
    /// Pending) and return those rows to "new".
    Rollback(RollbackArgs),
    /// Write a starter project that validates and runs.
    Init(InitArgs),
    /// Print the JSON Schema of `dinmo.yml` or of a model file, for editors.
    Schema(SchemaArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Send exactly the rows of a saved plan (`plan --out`), if no sync's state moved since.
    Apply(ApplyArgs),
    /// Compare what each sync delivered, what its model says now and what Zuora holds now,
    /// and show every difference (exit 4 when there are some).
    Reconcile(ReconcileArgs),
    /// Check, repair or rebuild the state location.
    #[command(subcommand)]
    State(StateCommand),
}

/// `dinmo apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file written by `dinmo plan --out`.
    pub plan: PathBuf,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Wait up to SECONDS (default 3600) for another run's lock instead of failing at once.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

/// `dinmo reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Which models and syncs.
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// The first usage date compared (YYYY-MM-DD, inclusive). Default: the earliest date
    /// delivered.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub from: Option<chrono::NaiveDate>,
    /// The last usage date compared (YYYY-MM-DD, inclusive). Default: the latest date
    /// delivered.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub to: Option<chrono::NaiveDate>,
    /// Only the rows each sync's last N runs delivered (and Zuora's records of their dates).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub last_runs: Option<u64>,
    /// Compare with this usage export downloaded from Zuora (CSV of the Usage data source)
    /// instead of reading Zuora's API: how `zuora_file` syncs learn which files were never
    /// uploaded.
    #[arg(long, value_name = "FILE")]
    pub zuora_export: Option<PathBuf>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Write every differing row, with its sync and class, to this file (`.csv` or `.parquet`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Repair what is safe to: `missing` returns the rows Zuora no longer holds to "new", so
    /// the next run sends them again. Nothing is ever deleted in Zuora.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub repair: Option<RepairArg>,
    /// With --repair: wait up to SECONDS (default 3600) for another run's lock.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

/// What `reconcile --repair` repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepairArg {
    /// Rows delivered that Zuora no longer holds return to "new".
    Missing,
}

fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"))
}

/// `dinmo state …`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Verify every manifest and part of every sync (size and checksum), and list pending
    /// rows, parts no manifest names, and held locks. Exit 1 on any problem.
    Verify,
    /// Settle the pending rows of a stopped run by hand, when they cannot be reconciled
    /// automatically: `--sent` records them as delivered, `--not-sent` returns them to "new".
    ResolvePending(ResolvePendingArgs),
    /// Settle rows a run held because their values changed after they were sent: `--accept`
    /// (Zuora holds the new values, you corrected them there), `--ignore` (leave Zuora as it
    /// is) or `--send-difference` (send the increase in quantity as a usage record of its own).
    /// The decision is recorded as a run of its own, listed by `runs` and `show`.
    ResolveHeld(ResolveHeldArgs),
    /// Rebuild a lost snapshot from the destination's records, looked up by UniqueKey. Shows
    /// what it found; writes only with --write.
    Rebuild(RebuildArgs),
    /// Show a sync's lock and remove it when it cannot be read, its lease ran out or its
    /// holder process is gone from this host; `--force` removes a live-looking lock too.
    Unlock(UnlockArgs),
    /// Write a checkpoint of each sync's state (an index of its runs and one set of key parts
    /// for its snapshot), so a run reads a few objects however long the history. Runs do it
    /// on their own every 32 runs; nothing is deleted but older checkpoints.
    Compact(CompactArgs),
}

/// `dinmo state compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The syncs (`<model>.<destination>`). Default: every sync with state.
    pub syncs: Vec<SyncId>,
    /// Wait up to SECONDS (default 3600) for a run holding a sync's lock, instead of failing at once.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

/// `dinmo state unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The sync (`<model>.<destination>`).
    pub sync: SyncId,
    /// Remove the lock even though its holder's lease has not run out (only when you know
    /// that run is gone: two runs sending the same sync risk double billing).
    #[arg(long)]
    pub force: bool,
}

/// `dinmo state resolve-pending`.
#[derive(Debug, Args)]
pub struct ResolvePendingArgs {
    /// The sync (`<model>.<destination>`).
    pub sync: SyncId,
    /// The run whose rows are pending.
    pub run: RunId,
    /// The rows reached the destination: record them as delivered.
    #[arg(long, conflicts_with = "not_sent", required_unless_present = "not_sent")]
    pub sent: bool,
    /// The rows did not reach the destination: the next run sends them.
    #[arg(long)]
    pub not_sent: bool,
    /// `zuora_revenue`: the upload this answer is about, as named in the error and in
    /// Revenue's Uploaded Files list; needed when a run left several undecided.
    #[arg(long, value_name = "NAME")]
    pub file: Option<String>,
}

/// `dinmo state resolve-held`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["accept", "ignore", "send_difference"])))]
pub struct ResolveHeldArgs {
    /// The sync (`<model>.<destination>`).
    pub sync: SyncId,
    /// Only the held row with this row key (repeatable; the `_dinmo_key` that `show RUN --rows
    /// DIR` writes). Default: every held row.
    #[arg(long = "key", value_name = "ROW_KEY")]
    pub keys: Vec<String>,
    /// Zuora already holds the new values (you corrected them there): record that.
    #[arg(long)]
    pub accept: bool,
    /// Leave Zuora as it is: record that, and stop holding the rows.
    #[arg(long)]
    pub ignore: bool,
    /// Send each row's increase in quantity as a usage record of its own (refused for a row
    /// whose quantity went down).
    #[arg(long)]
    pub send_difference: bool,
    /// Wait up to SECONDS (default 3600) for a run holding the sync's lock, instead of failing at once.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

/// `dinmo state rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Look the model's rows up in the destination (required: the only source there is).
    #[arg(long, required = true)]
    pub from_destination: bool,
    /// Write the rebuilt snapshot (without it, only report what was found).
    #[arg(long)]
    pub write: bool,
    /// Which models and syncs.
    #[command(flatten)]
    pub selection: SelectionArgs,
}

/// `dinmo rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The run id (from `dinmo runs`).
    pub run: RunId,
    /// Only these syncs of the run (model names, `tag:`, `sync:`).
    #[command(flatten)]
    pub selection: SelectionArgs,
}

/// `dinmo validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Which models and syncs.
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Also authenticate with each destination and check what it holds (Zuora: units of
    /// measure).
    #[arg(long)]
    pub connect: bool,
}

/// Export format of `show --rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowsFormat {
    /// Comma-separated values with a header.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// `dinmo init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder for the new project (created if missing). Default: the working directory.
    pub dir: Option<PathBuf>,
}

/// `dinmo schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's schema.
    #[arg(value_enum, default_value_t = SchemaKind::Project)]
    pub kind: SchemaKind,
}

/// The files dinmo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// `dinmo.yml`.
    Project,
    /// A model file.
    Model,
}

/// `dinmo completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `dinmo plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Which models and syncs.
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Save the plan (the exact rows and the state they were computed against) for
    /// `dinmo apply`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rows shown per sync in the sample (0 for none, e.g. for privacy).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub sample: usize,
    /// Accounts listed by quantity; the rest are summed on one line.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Exit 2 when there are rows to send (0 when there are none, 1 on error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Treat every model row as new, ignoring the snapshots.
    #[arg(long)]
    pub full_refresh: bool,
}

/// `dinmo run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which models and syncs.
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Compute and report, send nothing (same as `dinmo plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Send every model row again, ignoring the snapshots. Resends history: double billing
    /// unless the destination deduplicates by UniqueKey.
    #[arg(long)]
    pub full_refresh: bool,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// When another run holds a sync's lock, wait for it (up to SECONDS, default 3600)
    /// instead of failing at once.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "3600")]
    pub wait: Option<u64>,
}

/// `dinmo runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `dinmo query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL: a query over runs, sent, rejected, pending, held and corrections (`DESCRIBE
    /// sent` lists a table's columns).
    pub sql: String,
    /// Output format; without it, the `--out` file's extension (.csv, .json, .parquet, .txt)
    /// or a table.
    #[arg(long, value_enum)]
    pub format: Option<QueryFormat>,
    /// Write the rows to FILE instead of standard output (it appears whole, or not at all).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `dinmo query --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Parquet (needs `--out`).
    Parquet,
}

/// `dinmo report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
    /// Only the last DAYS days of runs (the whole history without it).
    #[arg(long, value_name = "DAYS")]
    pub days: Option<u32>,
}

/// `dinmo show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id (from `dinmo runs`).
    pub run: RunId,
    /// Also export the run's rows to DIR: `<sync>.sent`, `<sync>.rejected` (with each
    /// reason) and `<sync>.pending`.
    #[arg(long, value_name = "DIR")]
    pub rows: Option<PathBuf>,
    /// File format of `--rows`.
    #[arg(long, value_enum, default_value_t = RowsFormat::Csv)]
    pub rows_format: RowsFormat,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}
