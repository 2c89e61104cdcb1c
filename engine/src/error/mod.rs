//! The engine's error type, grouped by who is at fault: the project's configuration, the
//! models and their data, the state store, a destination, or the environment.

use std::path::PathBuf;

use dinmo_connectors::{RunId, SyncId};

mod problems;

pub use problems::{ConfigProblem, ConfigReport, Position, SchemaProblem};

/// Result alias for the engine.
pub type Result<T, E = DinmoError> = std::result::Result<T, E>;

/// Everything that can stop a dinmo command.
#[derive(Debug, thiserror::Error)]
pub enum DinmoError {
    // ---- the project's configuration ----
    /// No `dinmo.yml` above the working directory.
    #[error("no dinmo.yml found in {searched} or any parent folder (use --project DIR)")]
    ProjectNotFound { searched: PathBuf },

    /// `dinmo init` found a project where it was asked to write one.
    #[error("{path} already exists; nothing was written")]
    ProjectExists { path: PathBuf },

    /// One or more problems in the project's files, each with its location.
    #[error("{0}")]
    Config(ConfigReport),

    /// A command-line value the command cannot use (checked before anything is read).
    #[error("{flag} {value:?}: expected {expected}")]
    Argument {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },

    /// A selector matched nothing, or is malformed.
    #[error("selector `{selector}`: {message}")]
    Selector { selector: String, message: String },

    // ---- the models and the data they read ----
    /// The model's SQL failed while running.
    #[error("model `{model}` ({file}): query failed: {source}")]
    ModelQuery {
        model: String,
        file: PathBuf,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// The model's primary key is null in some rows.
    #[error(
        "model `{model}`: primary key ({key}) is null in {rows} row(s); every usage row needs an identity{lacking}"
    )]
    NullPrimaryKey {
        model: String,
        key: String,
        rows: u64,
        /// The source files that lack a key column, said after a `.` (empty when none).
        lacking: String,
    },

    /// The model's primary key is not unique.
    #[error("model `{model}`: primary key ({key}) is not unique: {examples}")]
    DuplicatePrimaryKey {
        model: String,
        key: String,
        examples: String,
    },

    /// A run would send more rows than the sync allows.
    #[error(
        "sync `{sync}`: {new_rows} new rows exceed max_new_rows ({limit}); nothing was sent. \
         Raise max_new_rows in {file} if this volume is expected"
    )]
    TooManyNewRows {
        sync: SyncId,
        new_rows: u64,
        limit: u64,
        file: PathBuf,
    },

    /// A source could not be registered.
    #[error("source `{source_name}` ({location}): {message}")]
    Source {
        source_name: String,
        location: String,
        message: String,
    },

    /// DataFusion could not list, read or register a source.
    #[error("source `{source_name}` ({location}): {source}")]
    SourceRead {
        source_name: String,
        location: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// A lakehouse table's log cannot be read at the version asked for.
    #[error("source `{source_name}` ({location}): {what}: {source}")]
    SourceTable {
        source_name: String,
        location: String,
        what: String,
        #[source]
        source: Box<deltalake_core::DeltaTableError>,
    },

    /// One file of a source cannot be read.
    #[error("source `{source_name}`: file {file} {problem}")]
    SourceFile {
        source_name: String,
        file: String,
        problem: String,
    },

    /// A source's files do not make one table.
    #[error(
        "source `{source_name}` ({location}): its files do not make one table:{}",
        problems.iter().map(|p| format!("\n    - {p}")).collect::<String>()
    )]
    SourceSchema {
        source_name: String,
        location: String,
        problems: Vec<SchemaProblem>,
    },

    /// A location (local path or URL) cannot be opened as a store.
    #[error("location `{location}`: {message}")]
    Location { location: String, message: String },

    /// A location is not a valid URL.
    #[error("location `{location}`: not a valid URL: {source}")]
    LocationUrl {
        location: String,
        #[source]
        source: url::ParseError,
    },

    /// A location's path cannot name an object.
    #[error("location `{location}`: {source}")]
    LocationPath {
        location: String,
        #[source]
        source: object_store::path::Error,
    },

    /// The store behind a location cannot be built (its settings or credentials).
    #[error("location `{location}`: {source}")]
    LocationStore {
        location: String,
        #[source]
        source: object_store::Error,
    },

    // ---- the state store ----
    /// The state's history is damaged; sending now could resend history.
    #[error("sync `{sync}`: state is damaged: {message}. Nothing was sent. {remedy}")]
    StateIntegrity {
        sync: SyncId,
        message: String,
        remedy: String,
    },

    /// Reading or writing the state store failed.
    #[error("state store {location}: {source}")]
    StateStore {
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// Pending rows of a stopped run cannot be reconciled automatically.
    #[error(
        "sync `{sync}`: {rows} pending row(s) of run `{run}` could not be reconciled: {reason}. Nothing new was sent. \
         Check those rows in the destination, then run `dinmo state resolve-pending {sync} {run} --sent` \
         (they were delivered) or `--not-sent` (they were not)"
    )]
    PendingUndecidable {
        sync: SyncId,
        run: RunId,
        rows: u64,
        reason: String,
    },

    /// A send may or may not have reached a destination that journals its sends and cannot be
    /// asked about one (Zuora Revenue: no duplicate detection, nothing to look up).
    #[error(
        "sync `{sync}`, run `{run}`: {source}. Then run `dinmo state resolve-pending {sync} {run} --file {file} --sent` \
         (it is listed) or `--not-sent` (it is not); the next run settles the run's other rows"
    )]
    SendUndecided {
        sync: SyncId,
        run: RunId,
        file: String,
        #[source]
        source: Box<dinmo_connectors::ConnectorError>,
    },

    /// `resolve-pending` cannot tell which undecided send an answer is about.
    #[error(
        "sync `{sync}`, run `{run}`: {problem}; undecided uploads: {undecided}. Answer for each on its own: \
         `dinmo state resolve-pending {sync} {run} --file NAME --sent|--not-sent`"
    )]
    SendsToResolve {
        sync: SyncId,
        run: RunId,
        problem: String,
        undecided: String,
    },

    /// Another run holds the sync's lock.
    #[error("sync `{sync}` is locked by {holder}{}", locked_remedy(.waited_secs))]
    Locked {
        sync: SyncId,
        /// `run R (host pid P, since S, lease until L)`.
        holder: String,
        /// How long this run waited (`--wait`), if it did.
        waited_secs: Option<u64>,
    },

    /// A sync's lock object exists but is not a lock dinmo can read.
    #[error(
        "sync `{sync}`: the lock {lock} cannot be read: {problem}. dinmo cannot tell whether another run holds it, so it sends nothing. If no run of this sync is going on, remove it with `dinmo state unlock {sync}`"
    )]
    LockUnreadable {
        sync: SyncId,
        lock: String,
        problem: String,
    },

    /// A sync's lock kept appearing and disappearing until the deadline.
    #[error("sync `{sync}`: the lock {lock} kept changing for {waited_secs} s; try again, or pass --wait")]
    LockContended {
        sync: SyncId,
        lock: String,
        waited_secs: u64,
    },

    /// `dinmo state unlock` of a lock whose holder may still be running.
    #[error(
        "sync `{sync}` is locked by {holder}, whose lease has not run out; if you are sure that run is gone, pass --force"
    )]
    LockHeld { sync: SyncId, holder: String },

    /// This run lost a sync's lock while sending.
    #[error(
        "sync `{sync}`: this run lost its lock ({reason}); it stopped sending at a batch boundary and committed what the destination acknowledged. The next run reconciles the rest"
    )]
    LockLost { sync: SyncId, reason: String },

    /// A manifest could not be read.
    #[error("state store {location}: cannot read run manifest: {source}")]
    Manifest {
        location: String,
        #[source]
        source: serde_json::Error,
    },

    /// Something dinmo writes as JSON could not be serialised.
    #[error("{what}: cannot be written as JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// Rollback left records in the destination.
    #[error(
        "rollback of run `{run}`: {not_deleted} record(s) could not be deleted (listed above); they stay in the snapshot"
    )]
    RollbackIncomplete { run: RunId, not_deleted: usize },

    /// A saved plan cannot be used.
    #[error("plan {path}: {message}")]
    PlanFile { path: PathBuf, message: String },

    /// A saved plan's archive, or an entry of it, cannot be read or written.
    #[error("plan {path}: {what}: {source}")]
    PlanArchive {
        path: PathBuf,
        what: String,
        #[source]
        source: zip::result::ZipError,
    },

    /// A saved plan's `plan.json` cannot be read or written.
    #[error("plan {path}: {source}")]
    PlanJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The state moved since a saved plan was made.
    #[error("sync `{sync}`: the state moved since the plan was made ({message}); nothing was sent. Make a new plan")]
    StalePlan { sync: SyncId, message: String },

    /// `dinmo reconcile` cannot compare a sync as asked.
    #[error("sync `{sync}`: cannot reconcile: {message}")]
    Reconcile { sync: SyncId, message: String },

    /// No run with this id.
    #[error("no run `{run}` in {state}")]
    RunNotFound { run: RunId, state: String },

    /// A `dinmo query` over the sync history failed or is not a read.
    #[error(
        "query over the sync history of {state}: {source}. It reads the tables runs, sent, rejected, pending, held \
         and corrections (their columns: `DESCRIBE <table>`, or docs/sync-history.md), and may only read"
    )]
    HistoryQuery {
        state: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// More rows changed than a run describes.
    #[error(
        "sync `{sync}`: {changed} rows synced earlier have other values now, more than {limit} ({why}); nothing was sent. \
         So many changes usually mean the model or its mapping changed how values are computed rather than the \
         warehouse restating usage: compare `dinmo plan --format json`'s `changed_since_last_run` and check the model. \
         If the changes are real, raise the limit{remedy}"
    )]
    TooManyChangedRows {
        sync: SyncId,
        changed: u64,
        limit: u64,
        why: &'static str,
        remedy: String,
    },

    /// `state resolve-held` found nothing to settle.
    #[error("sync `{sync}`: nothing to resolve: {message}")]
    NothingHeld { sync: SyncId, message: String },

    /// `state resolve-held --send-difference` for a row whose quantity did not go up.
    #[error(
        "sync `{sync}`: held row {key} changed by {difference} in quantity; only a positive difference can be \
         sent (Zuora takes no negative quantity). Credit it in Zuora, then settle it with \
         `dinmo state resolve-held {sync} --key {key} --accept`; nothing was sent"
    )]
    CannotSendDifference {
        sync: SyncId,
        key: String,
        difference: String,
    },

    // ---- a destination ----
    /// A destination failed while writing; acknowledged rows were committed first.
    #[error("sync `{sync}`: {source}")]
    Destination {
        sync: SyncId,
        #[source]
        source: Box<dinmo_connectors::ConnectorError>,
    },
    /// A destination could not be built or reached; the connector's message names it.
    #[error("{source}")]
    DestinationSetup {
        destination: String,
        #[source]
        source: Box<dinmo_connectors::ConnectorError>,
    },

    /// A destination could not be reached when the run connected to it (`message` says why).
    #[error("{message}")]
    Unreachable { destination: String, message: String },

    /// Some models or syncs failed; each is in the run's report.
    #[error("{failed} of {total} sync(s) or model(s) failed; first: {first}")]
    RunFailed { failed: usize, total: usize, first: String },

    // ---- the engine and its environment ----
    /// A `DINMO_*` environment variable holds a value dinmo cannot use.
    #[error("environment variable {variable}={value:?} is not valid: expected {expected}; fix or unset it")]
    Setting {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },

    /// A `DATAFUSION_*` environment variable is malformed.
    #[error("a DATAFUSION_* environment variable is malformed: {source}")]
    QuerySettings {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// A task of the run ended without finishing (it panicked or the runtime shut down).
    #[error("{task} was interrupted: {source}")]
    Interrupted {
        task: String,
        #[source]
        source: tokio::task::JoinError,
    },

    /// A query needed more memory than the configured limit lets it have, even spilling.
    #[error(
        "{context}: the query needs more memory than the memory limit allows, even spilling to disk \
         ({source}); raise `--memory-limit` / `DINMO_MEMORY_LIMIT` or `execution.memory_limit` in dinmo.yml"
    )]
    MemoryLimit {
        context: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// DataFusion failed outside a model's own SQL (state tables, staging files).
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// Parquet encoding or decoding failed.
    #[error("{context}: {source}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Arrow failed on a batch.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DinmoError {
    /// Wraps a DataFusion error met outside a model's SQL.
    pub fn engine(context: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> Self {
        let context = context.into();
        move |source| match source.find_root() {
            datafusion::error::DataFusionError::ResourcesExhausted(_) => DinmoError::MemoryLimit {
                context,
                source: Box::new(source),
            },
            _ => DinmoError::Engine {
                context,
                source: Box::new(source),
            },
        }
    }

    /// Wraps a connector error of `sync`.
    pub fn destination(sync: impl Into<SyncId>) -> impl FnOnce(dinmo_connectors::ConnectorError) -> Self {
        let sync = sync.into();
        move |source| DinmoError::Destination {
            sync,
            source: Box::new(source),
        }
    }

    /// Wraps a connector error of the destination `name` (building or connecting it).
    pub fn destination_named(name: &str) -> impl FnOnce(dinmo_connectors::ConnectorError) -> Self {
        let destination = name.to_string();
        move |source| DinmoError::DestinationSetup {
            destination,
            source: Box::new(source),
        }
    }

    /// Wraps a Parquet error.
    pub fn parquet(context: impl Into<String>) -> impl FnOnce(parquet::errors::ParquetError) -> Self {
        let context = context.into();
        move |source| DinmoError::Parquet { context, source }
    }

    /// Wraps an Arrow error.
    pub fn arrow(context: impl Into<String>) -> impl FnOnce(arrow::error::ArrowError) -> Self {
        let context = context.into();
        move |source| DinmoError::Arrow { context, source }
    }

    /// Wraps a local I/O error.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DinmoError::Io { path, source }
    }
}

fn locked_remedy(waited_secs: &Option<u64>) -> String {
    match waited_secs {
        Some(secs) => format!("; waited {secs} s (--wait) for it"),
        None => "; use --wait to wait for it".to_string(),
    }
}
