//! A loaded, statically valid project: its sources, destinations, models and syncs, with
//! `${VAR}` substituted and every location resolved.

use std::path::PathBuf;

use dinmo_connectors::SyncId;

use super::model_file::{OnChange, OnDelete};
use super::project_file::{DestinationConfig, SourceFormat, SourceOptions};
use crate::error::Position;

/// A loaded, statically valid project.
#[derive(Debug)]
pub struct Project {
    /// The folder holding `dinmo.yml`.
    pub root: PathBuf,
    /// `name:` from `dinmo.yml`.
    pub name: String,
    /// The state location: an absolute local path or a URL.
    pub state: String,
    /// The artifacts folder (absolute).
    pub target_path: PathBuf,
    /// Sources, by name.
    pub sources: Vec<Source>,
    /// Destinations, by name.
    pub destinations: Vec<DestinationDef>,
    /// Models, in file order.
    pub models: Vec<Model>,
    /// Memory limit and spill folder of the query engine.
    pub execution: Execution,
}

/// Memory limit and spill folder of the query engine (`execution:` in `dinmo.yml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Bytes the query engine may hold at once; `None`: no limit.
    pub memory_limit: Option<u64>,
    /// Where operators spill (absolute).
    pub spill_path: PathBuf,
}

impl Project {
    /// A destination by name.
    pub fn destination(&self, name: &str) -> Option<&DestinationDef> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// The project file, relative to the root (for messages).
    pub fn project_file(&self) -> PathBuf {
        PathBuf::from("dinmo.yml")
    }
}

/// A source table.
#[derive(Debug)]
pub struct Source {
    /// The table name the SQL uses.
    pub name: String,
    /// An absolute local path or a URL, with `${VAR}` substituted.
    pub location: String,
    /// File format.
    pub format: SourceFormat,
    /// Format options.
    pub options: SourceOptions,
    /// Pinned column types (SQL type names), by column.
    pub schema: std::collections::BTreeMap<String, String>,
    /// Where it is declared in `dinmo.yml`.
    pub position: Option<Position>,
}

/// A configured destination.
#[derive(Debug)]
pub struct DestinationDef {
    /// Its name in `dinmo.yml`.
    pub name: String,
    /// Its config, with `${VAR}` substituted and local paths made absolute.
    pub config: DestinationConfig,
    /// Where it is declared.
    pub position: Option<Position>,
}

/// A model.
#[derive(Debug)]
pub struct Model {
    /// Unique name.
    pub name: String,
    /// Its file, relative to the project root.
    pub file: PathBuf,
    /// Free text.
    pub description: Option<String>,
    /// Tags for selection.
    pub tags: Vec<String>,
    /// The SQL.
    pub sql: String,
    /// Where `sql:` is.
    pub sql_position: Option<Position>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Where `primary_key:` is.
    pub primary_key_position: Option<Position>,
    /// The model's syncs.
    pub syncs: Vec<Sync>,
}

/// A (model, destination) pair.
#[derive(Debug, Clone)]
pub struct Sync {
    /// `<model>.<destination>`.
    pub id: SyncId,
    /// The model's name.
    pub model: String,
    /// The destination's name.
    pub destination: String,
    /// Destination field → model column, with the column's position.
    pub mapping: Vec<MappedField>,
    /// Where `mapping:` is.
    pub mapping_position: Option<Position>,
    /// The new-row guard.
    pub max_new_rows: Option<u64>,
    /// What to do with rows whose values changed after they were sent.
    pub on_change: OnChange,
    /// What to do with rows the model no longer produces.
    pub on_delete: OnDelete,
    /// The model may go to Zuora Billing and to Zuora Revenue.
    pub allow_billing_and_revenue: bool,
    /// Where the sync is declared.
    pub position: Option<Position>,
}

/// One `Field: column` line of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    /// Destination field.
    pub field: String,
    /// Model column.
    pub column: String,
    /// Where the column name is.
    pub position: Option<Position>,
}
