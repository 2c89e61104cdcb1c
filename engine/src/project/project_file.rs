//! `dinmo.yml`: the project file. The `///` comments on these types are the YAML reference
//! (docs/yaml-reference.md follows them).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The project file, `dinmo.yml`, at the project root.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectFile {
    /// The project's name; appears in logs and run manifests.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Folders, relative to the project root, searched (recursively) for model files
    /// (`*.yml`, `*.yaml`). Default `[models]`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub model_paths: Option<Vec<Spanned<String>>>,
    /// Where sync state lives: a local path relative to the project root, or a URL
    /// (`s3://`, `gs://`, `az://`, `file://`). `${VAR}` is read from the environment.
    /// Default `.dinmo/state`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub state: Option<Spanned<String>>,
    /// Local folder for run artifacts and staging files. Default `target`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub target_path: Option<Spanned<String>>,
    /// Tables the model SQL can read, by the name the SQL uses.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, SourceConfig>")]
    pub sources: BTreeMap<String, Spanned<SourceConfig>>,
    /// Where synced rows go, by the name syncs use.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, DestinationConfig>")]
    pub destinations: BTreeMap<String, Spanned<DestinationConfig>>,
    /// How queries run: the memory they may hold and where they spill. Default: no limit,
    /// spilling under the target path.
    #[serde(default)]
    pub execution: ExecutionConfig,
}

/// Memory and spilling of the query engine (the model queries, the primary-key check and the
/// anti-join against the snapshot).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ExecutionConfig {
    /// Memory the query engine may hold at once, shared fairly between the operators that can
    /// spill (sorts, aggregations, the sort-merge anti-join): `4GB`, `512MB`, `2GiB`. Past it,
    /// they spill to `spill_path`; a diff whose staged rows would not fit in half of it joins
    /// by sorting instead of by a hash table. `--memory-limit` (or `DINMO_MEMORY_LIMIT`)
    /// overrides it. Default: no limit.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub memory_limit: Option<Spanned<String>>,
    /// Local folder for spill files, relative to the project root. Default
    /// `<target-path>/spill`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub spill_path: Option<Spanned<String>>,
}

/// A table the model SQL can read.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A file, a directory (hive-style `key=value/` partition folders become columns) or a
    /// glob (`data/*.parquet`); a local path relative to the project root or a URL (`s3://`,
    /// `gs://`, `az://`, `http(s)://`, `file://`). `${VAR}` is read from the environment.
    #[schemars(with = "String")]
    pub location: Spanned<String>,
    /// `parquet`, `csv`, `json` (newline-delimited) or `delta` (a Delta Lake table, read at
    /// its latest version unless `options.version` or `options.timestamp` pins one). Default
    /// `parquet`.
    #[serde(default)]
    pub format: SourceFormat,
    /// Format options.
    #[serde(default)]
    pub options: SourceOptions,
    /// Column types to enforce, by column name, in the SQL type names a model's `CAST` takes
    /// (`BIGINT`, `VARCHAR`, `DECIMAL(18, 4)`, `TIMESTAMP`, ...). Every file must hold each
    /// listed column in a type that converts to it without loss, or the run stops naming the
    /// file; a listed column a file lacks is an error too. Columns not listed are unified
    /// across files as the YAML reference describes. Default: none pinned.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub schema: BTreeMap<String, Spanned<String>>,
}

/// File format of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Apache Parquet.
    #[default]
    Parquet,
    /// Comma-separated values (see the csv options).
    Csv,
    /// Newline-delimited JSON.
    Json,
    /// A Delta Lake table: the files its log says the version holds.
    Delta,
}

impl SourceFormat {
    /// The file extension read by default.
    pub fn default_extension(self) -> &'static str {
        match self {
            SourceFormat::Parquet => ".parquet",
            SourceFormat::Csv => ".csv",
            SourceFormat::Json => ".json",
            SourceFormat::Delta => ".parquet",
        }
    }
}

/// Format options of a source.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    /// Only files with this ending are read from a directory. Default `.parquet`, `.csv` or
    /// `.json` by format.
    #[serde(default)]
    pub file_extension: Option<String>,
    /// csv: whether the first line holds column names. Default true.
    #[serde(default)]
    pub has_header: Option<bool>,
    /// csv: the field separator, one character. Default `,`.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Hive-style partition columns to expect (`day` for `day=2026-11-21/`). Default: found
    /// from the folder names. Partition values are strings.
    #[serde(default)]
    pub partition_columns: Option<Vec<String>>,
    /// Skip zero-byte files (an export that wrote nothing), with a warning naming each.
    /// Default false: a zero-byte file is an error naming it, since it may be a day of usage
    /// that failed to export.
    #[serde(default)]
    pub skip_empty_files: bool,
    /// The time zone that timestamps written without one are in (`UTC`, `+01:00`,
    /// `Europe/Paris`). Needed only when some files hold a timestamp column with a zone and
    /// others the same column without one: the whole column is then read as a timestamp in
    /// this zone (values without a zone are wall-clock times there, values with one keep
    /// their instant, and `date_trunc` works in this zone). Default: none, and such files are refused, since dinmo cannot tell which zone
    /// the timestamps without one meant.
    #[serde(default)]
    pub naive_timestamp_zone: Option<String>,
    /// Read the files of a Delta Lake or Iceberg table's folder as plain files, ignoring the
    /// table's log (`_delta_log/`, `metadata/`). Default false: such a folder is refused,
    /// since its files include ones the table no longer holds (rows deleted or overwritten
    /// until a vacuum removes them), which would be sent as usage.
    #[serde(default)]
    pub ignore_table_log: bool,
    /// Globs of files not to read, relative to the source's folder (`_committed_*`,
    /// `dt=2026-11-0[1-3]/*`, `**/attempt-*.parquet`): `*` matches within one folder or file
    /// name, `**` across folders. Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// delta: read this version of the table (time travel). Default: the latest.
    #[serde(default)]
    pub version: Option<u64>,
    /// delta: read the latest version committed at or before this RFC 3339 instant
    /// (`2026-11-30T23:59:59Z`). Default: the latest.
    #[serde(default)]
    pub timestamp: Option<String>,
}

pub use dinmo_connectors::registry::DestinationConfig;
