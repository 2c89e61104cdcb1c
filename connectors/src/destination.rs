//! The contract between the engine and a destination.

use crate::ids::{RunId, SyncId};
use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::Result;
use crate::rules::Rejection;
pub use crate::rules::{FieldKind, FieldRoles, FieldSpec};

/// The engine adds this column to every batch: a deterministic key for the row, derived from
/// the sync id and the model's primary key. Destinations use it as the idempotency identity of
/// the row (for Zuora, the `UniqueKey` unless the mapping sets one).
pub const ROW_KEY_COLUMN: &str = "_dinmo_key";

/// Whether a column of a batch is one the engine added (its name starts with `_dinmo_`: the
/// row key, and on rows that correct an earlier one, what they correct) rather than a
/// destination field. Destinations send the fields only.
pub fn is_engine_column(name: &str) -> bool {
    name.starts_with("_dinmo_")
}

/// How a destination brings a delivered row to new values (`on_change: correct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correcting {
    /// It cannot; the reason, for the configuration error.
    Not(&'static str),
    /// Only by delivering a row for a positive difference in quantity (files cannot change
    /// what they delivered).
    Differences,
    /// A record still pending is updated in place; otherwise a positive difference is
    /// delivered as a row of its own.
    InPlaceOrDifferences,
}

/// A delivered row to look up ([`Destination::locate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locate {
    /// The destination ids recorded for the row and for the corrections of it, oldest first.
    pub destination_ids: Vec<String>,
    /// The row key it was first sent with (Zuora: its `UniqueKey`).
    pub row_key: String,
}

/// Where a delivered row stands in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// The records carrying it, found.
    Records(Vec<RecordState>),
    /// It cannot be told; why.
    Unknown(String),
}

/// One record as the destination holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    /// Its id.
    pub id: String,
    /// Whether it can still change (Zuora: `RbeStatus` is `Pending`, no bill run processed it).
    pub pending: bool,
    /// Its quantity, as the destination reports it.
    pub quantity: Option<String>,
}

/// What `dinmo reconcile` asks a destination for ([`Destination::holdings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldingsQuery {
    /// Every usage record whose start date is on or after `from` and before `to`
    /// (`YYYY-MM-DD`), whoever sent it.
    Period { from: String, to: String },
    /// The records with these ids, wherever their dates now lie.
    Ids(Vec<String>),
}

/// What a destination could say about what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holdings {
    /// Every record was read and handed on, in batches of [`holdings_schema`].
    Read {
        /// Whether the records carry the key they were sent with (Zuora: `UniqueKey`, which
        /// a tenant without Prepaid with Drawdown does not have).
        unique_keys: bool,
    },
    /// The destination cannot be read back; why, for the report.
    Unreadable(String),
}

/// The columns of the records [`Destination::holdings`] hands on, all text as the destination
/// gives them (dates and quantities are compared by the engine, not by their spelling).
pub const HOLDING_COLUMNS: [&str; 8] = [
    "id",
    "account",
    "unit",
    "start",
    "quantity",
    "status",
    "unique_key",
    "import_id",
];

/// The schema of [`HOLDING_COLUMNS`]: nullable text each.
pub fn holdings_schema() -> arrow::datatypes::SchemaRef {
    Arc::new(Schema::new(
        HOLDING_COLUMNS
            .iter()
            .map(|name| arrow::datatypes::Field::new(*name, arrow::datatypes::DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// Receives the records of [`Destination::holdings`] a batch at a time (a page of an API, a
/// slice of an export), so no destination holds every record in memory.
pub type HoldingsSink<'a> = dyn FnMut(RecordBatch) -> std::result::Result<(), ReceiverFailed> + Send + 'a;

pub use crate::error::ReceiverFailed;

/// A problem with a mapped schema, found before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// The destination field concerned.
    pub field: String,
    /// What is wrong, in words a data engineer acts on.
    pub message: String,
}

/// Where a destination writes its output objects.
#[derive(Debug, Clone)]
pub struct OutputLocation {
    /// The store (local disk, S3, GCS, Azure, …).
    pub store: Arc<dyn ObjectStore>,
    /// The folder inside the store.
    pub prefix: Path,
    /// The location as the user wrote it, for messages.
    pub display: String,
}

impl OutputLocation {
    /// Stores `bytes` at `path` in one put (a whole object, never a partial one, on every
    /// store); `destination` names the destination in the error.
    pub async fn put(&self, destination: &str, path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(path, object_store::PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| crate::error::ConnectorError::Write {
                destination: destination.to_string(),
                path: path.clone(),
                source,
            })
    }

    /// `path` as the user would find it: the location as configured, then the path below its
    /// prefix (the id a written file is reported and committed under).
    pub fn display_of(&self, path: &Path) -> String {
        let below = match path.prefix_match(&self.prefix) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
            None => path.to_string(),
        };
        format!("{}/{below}", self.display.trim_end_matches('/'))
    }
}

/// Which of Zuora's ledgers a destination feeds. Usage sent to Billing reaches Revenue by
/// itself where the Billing–Revenue integration is on, so a model sent to both is counted
/// twice in Revenue (docs/zuora.md, "Zuora Revenue").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ledger {
    /// Zuora Billing.
    Billing,
    /// Zuora Revenue.
    Revenue,
}

/// Opens a location (a local path, resolved against the project, or an object-store URL) as
/// an [`OutputLocation`]; the engine provides it, since it knows the stores' settings.
pub type OpenLocation<'a> = dyn Fn(&str) -> std::result::Result<OutputLocation, String> + 'a;

/// What a connector tells the engine about its config type.
pub trait DestinationSpec {
    /// The config keys that hold a location (a path or URL), which the engine resolves against
    /// the project's folder before building.
    const LOCATIONS: &'static [&'static str] = &[];

    /// The ledger it feeds.
    const LEDGER: Ledger;

    /// Which fields carry the account, unit, quantity and usage time, for each field layout
    /// the destination can have: what reading stored rows back needs when only the
    /// destination's type is known ([`crate::registry::stored_roles`]).
    const ROLES: &'static [FieldRoles];

    /// Every problem with the values, as `(key, message)`; none is fatal on its own.
    fn validate(&self) -> Vec<(&'static str, String)>;

    /// Settles what the config leaves to the syncs that use the destination, `mapped` being
    /// every field they map to it; returns warnings, as `(key, message)`.
    fn settle(&mut self, _mapped: &[&str]) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Builds the destination named `name`, opening its locations with `open`.
    fn build(&self, name: &str, open: &OpenLocation<'_>) -> Result<Arc<dyn Destination>>;
}

/// What [`Destination::resolve_undecided`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// These sends were settled (none: the run left no undecided send).
    Settled(Vec<String>),
    /// Several sends are undecided and none was named: each needs its own answer.
    Ambiguous(Vec<String>),
    /// The named send has no undecided record; the undecided ones are listed.
    NotUndecided { file: String, undecided: Vec<String> },
}

/// What a writer needs to know about the run it serves.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// `<model>.<destination>`.
    pub sync_id: SyncId,
    /// The run's id; output names carry it so a person can trace a file to its run.
    pub run_id: RunId,
    /// Where the destination may keep its own durable record of what it sent (the state
    /// store, beside the sync's snapshot): `zuora_revenue` records each upload there before
    /// sending it. `None` where nothing is sent (tests of file destinations).
    pub journal: Option<OutputLocation>,
}

/// The fate of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowStatus {
    /// The destination acknowledged the row; `destination_id` names where it went (a record
    /// id, or the file that carries it). Shared: the rows of one usage file or import carry
    /// the same id (tens of thousands of rows, one string).
    Accepted {
        destination_id: Option<std::sync::Arc<str>>,
    },
    /// The destination, or a field rule checked before sending, refused the row.
    Rejected(Rejection),
}

/// A batch handed back by a writer once every row in it has a final status.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The batch as it was written (same columns, same row order).
    pub batch: RecordBatch,
    /// One status per row of `batch`.
    pub statuses: Vec<RowStatus>,
}

impl BatchOutcome {
    /// Rows accepted.
    pub fn accepted(&self) -> usize {
        self.statuses
            .iter()
            .filter(|s| matches!(s, RowStatus::Accepted { .. }))
            .count()
    }

    /// Rows rejected.
    pub fn rejected(&self) -> usize {
        self.statuses.len() - self.accepted()
    }
}

/// What a finished writer delivered, for the run manifest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivery {
    /// Destination-side ids of the deliveries (usage files written, import ids, …).
    pub destination_ids: Vec<String>,
    /// Rows that went another way than configured, and why (a usage import the destination
    /// refused, whose rows were then sent record by record).
    pub fallbacks: Vec<Fallback>,
}

/// Rows a destination sent another way than its configuration asked, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fallback {
    /// What was tried first (`usage import <file>`).
    pub tried: String,
    /// The other way the rows went (`actions`).
    pub instead: String,
    /// Rows that went the other way.
    pub rows: u64,
    /// The destination's own reason.
    pub reason: String,
}

/// A configured destination.
#[async_trait]
pub trait Destination: Send + Sync + Debug {
    /// The `type:` of this destination in `dinmo.yml`.
    fn kind(&self) -> &'static str;

    /// The fields this destination takes, with their rules.
    fn fields(&self) -> &[FieldSpec];

    /// Which fields hold the account, unit, quantity and usage time.
    fn roles(&self) -> FieldRoles;

    /// Looks a field up by its mapped name; destinations with open-ended fields (custom
    /// fields) override this.
    fn field(&self, name: &str) -> Option<FieldSpec> {
        self.fields().iter().find(|f| f.name == name).cloned()
    }

    /// Pure check of a mapped schema: every required field mapped, no unknown field, and
    /// every column's type able to become its field's type. `schema` holds one column per
    /// mapped field, named after the field.
    fn validate_schema(&self, schema: &Schema) -> Vec<SchemaProblem> {
        default_schema_problems(self, schema)
    }

    /// Whether the destination fills `field` itself when the mapping leaves it out.
    fn defaults_field(&self, _field: &str) -> bool {
        false
    }

    /// Checks every row of a mapped batch against the field rules, without sending
    /// anything: `None` for a row that may be sent, the reason for one that may not.
    fn check_batch(&self, batch: &RecordBatch) -> Result<Vec<Option<Rejection>>>;

    /// Authenticates and loads what the field rules need from the destination (units of
    /// measure), once per run; returns what it found, for `validate --connect`. Destinations
    /// with nothing remote do nothing.
    async fn connect(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// After [`connect`](Destination::connect): `Some(reason)` when a value every row carries
    /// in `field` (a literal in the model's SQL) is one the destination would never accept or
    /// bill, e.g. a unit of measure the tenant does not have. `None` when it is fine or
    /// cannot be told.
    fn check_constant(&self, _field: &str, _value: &str) -> Option<String> {
        None
    }

    /// After [`connect`](Destination::connect): `Some(reason)` when the connected destination
    /// has no field `field` (a Revenue template without that column). `None` when it has, or
    /// cannot be told.
    fn check_field(&self, _field: &str) -> Option<String> {
        None
    }

    /// Opens a writer for one run of one sync.
    async fn open(&self, context: WriteContext) -> Result<Box<dyn DestinationWriter>>;

    /// How long after a run the destination still answers a replayed request with what it
    /// stored the first time (Zuora keeps Idempotency-Keys for 24 hours). `None`: replaying is
    /// idempotent at any age (usage files are rewritten with the same names and content).
    fn replay_window(&self) -> Option<std::time::Duration> {
        None
    }

    /// Looks the rows of `batch` (mapped fields and [`ROW_KEY_COLUMN`], as they were sent) up
    /// in the destination by the key the destination stored with each (Zuora: `UniqueKey`):
    /// `Some` with the destination id of each row found (`None` for a row not found), or
    /// `None` when the destination cannot be searched that way.
    async fn find_delivered(&self, _batch: &RecordBatch) -> Result<Option<Vec<Option<String>>>> {
        Ok(None)
    }

    /// The key [`Destination::find_delivered`] searches by, for messages (`UniqueKey`).
    fn delivered_key(&self) -> &'static str {
        "the row key"
    }

    /// `dinmo state resolve-pending`: settles by hand the sends of `run` whose outcome the
    /// destination could not learn, for a destination that records each send in `journal`
    /// before making it (`zuora_revenue`'s uploads): `file` names one (or the run has only
    /// one), and `sent` says whether it arrived. The default journals nothing, so nothing is
    /// undecided.
    async fn resolve_undecided(
        &self,
        _journal: OutputLocation,
        _run: &RunId,
        _file: Option<&str>,
        _sent: bool,
    ) -> Result<Resolution> {
        Ok(Resolution::Settled(Vec::new()))
    }

    /// What `on_change: correct` can do here: how a row whose values changed after it was
    /// delivered is brought to its new values.
    fn correcting(&self) -> Correcting {
        Correcting::Not("this destination cannot correct what it delivered")
    }

    /// The fields an update in place can change ([`Correcting::InPlaceOrDifferences`]).
    fn updatable_fields(&self, _field: &str) -> bool {
        false
    }

    /// For [`Correcting::InPlaceOrDifferences`]: the records that carry each row now, found by
    /// the destination ids it was delivered with (and its corrections) or by the key it was
    /// sent with, each with whether it is still pending and the quantity it holds. Reads only.
    async fn locate(&self, rows: &[Locate]) -> Result<Vec<Located>> {
        Ok(rows
            .iter()
            .map(|_| Located::Unknown(format!("a `{}` destination cannot look its records up", self.kind())))
            .collect())
    }

    /// `dinmo reconcile`: hands `sink` every record `query` selects, as the destination holds
    /// it now. Reads only. The default cannot read anything back.
    async fn holdings(&self, _query: &HoldingsQuery, _sink: &mut HoldingsSink<'_>) -> Result<Holdings> {
        Ok(Holdings::Unreadable(format!(
            "a `{}` destination cannot be read back",
            self.kind()
        )))
    }

    /// Updates the record `record` in place to the values of the one row of `batch` (mapped
    /// fields, as in a delivered batch); `Ok(Err(reason))` when the destination refuses.
    /// Setting values is idempotent: sending the same update twice leaves the same record.
    async fn update_record(&self, record: &str, _batch: &RecordBatch) -> Result<std::result::Result<(), String>> {
        Ok(Err(format!(
            "a `{}` destination cannot update record {record} in place",
            self.kind()
        )))
    }

    /// Deletes delivered records by destination id (for rollback): one result per id,
    /// `Err(reason)` for those the destination would not delete.
    async fn delete_records(&self, ids: &[String]) -> Result<Vec<(String, std::result::Result<(), String>)>> {
        Ok(ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Err(format!(
                        "a `{}` destination cannot delete what it delivered",
                        self.kind()
                    )),
                )
            })
            .collect())
    }
}

/// The checks every destination shares: unknown fields, incompatible types, required fields
/// left unmapped.
pub fn default_schema_problems<D: Destination + ?Sized>(destination: &D, schema: &Schema) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    for arrow_field in schema.fields() {
        let name = arrow_field.name();
        if is_engine_column(name) {
            continue;
        }
        match destination.field(name) {
            None => problems.push(SchemaProblem {
                field: name.clone(),
                message: format!(
                    "`{name}` is not a field of a `{}` destination; known fields: {}",
                    destination.kind(),
                    destination
                        .fields()
                        .iter()
                        .map(|f| f.name.as_ref())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            Some(spec) if !spec.kind.accepts(arrow_field.data_type()) => problems.push(SchemaProblem {
                field: name.clone(),
                message: format!(
                    "`{name}` takes {} but the column is of type {}",
                    spec.kind.describe(),
                    arrow_field.data_type()
                ),
            }),
            Some(_) => {}
        }
    }
    for spec in destination.fields().iter().filter(|f| f.required) {
        if schema.field_with_name(&spec.name).is_err() && !destination.defaults_field(&spec.name) {
            problems.push(SchemaProblem {
                field: spec.name.to_string(),
                message: format!("required field `{}` is not mapped", spec.name),
            });
        }
    }
    problems
}

/// Writes the batches of one run. Rows become final when the destination acknowledges them,
/// which may be later than the call that offered them (a usage file is acknowledged when the
/// whole file is stored), so each call returns the batches that became final by then.
#[async_trait]
pub trait DestinationWriter: Send {
    /// Offers a batch; returns every batch (this one or earlier ones) whose rows are all final.
    async fn write(&mut self, batch: RecordBatch) -> Result<Vec<BatchOutcome>>;

    /// Sends whatever the writer still holds back (rows buffered for a larger request or
    /// file) and waits for every request still in flight; on failure,
    /// [`DestinationWriter::acknowledged_before_failure`] hands back what was acknowledged
    /// first. Called once before `finish`.
    async fn flush(&mut self) -> Result<Vec<BatchOutcome>> {
        Ok(Vec::new())
    }

    /// Sends nothing more: waits for the requests already under way and returns what they
    /// acknowledged; rows held back for a later request or file stay unsent (the engine keeps
    /// them pending). Called instead of `flush` when a run must stop early (it lost its sync
    /// lock); on failure, [`DestinationWriter::acknowledged_before_failure`] applies.
    async fn stop(&mut self) -> Result<Vec<BatchOutcome>> {
        Ok(Vec::new())
    }

    /// Flushes what is still open; returns the remaining outcomes and what was delivered.
    async fn finish(self: Box<Self>) -> Result<(Vec<BatchOutcome>, Delivery)>;

    /// After `write` failed: the parts of batches the destination did acknowledge before the
    /// failure, so they are committed rather than sent again.
    fn acknowledged_before_failure(&mut self) -> Vec<BatchOutcome> {
        Vec::new()
    }
}
