//! The state as SQL tables, registered in a DataFusion session: `runs` (from the manifests),
//! `sent`, `rejected`, `pending` and `held` (each a scan of the parts the manifests name), and
//! `corrections` (the sent rows that correct another). Their fixed columns are a contract
//! (`docs/sync-history.md`, pinned by a test); the fields a sync maps follow them, named as the
//! destination names them.
//!
//! Reading takes no lock and writes nothing: the manifests are read once, and each table
//! scans the parts they named then. Parts are read where they are (no copy), by DataFusion's
//! Parquet reader, the files of one sync and one layout as one scan whose run id is a
//! per-file constant, so a table of many runs is a handful of scans.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::table_schema::TableSchemaBuilder;
use datafusion::datasource::{MemTable, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::functions::expr_fn::{encode, left};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext, cast, ident, lit, try_cast};
use dinmo_connectors::{FieldRoles, ROW_KEY_COLUMN, RunId, SyncId};
use futures::{StreamExt, TryStreamExt};

use crate::error::{DinmoError, Result};
use crate::state::values::{CORRECTS_COLUMN, is_engine_column};
use crate::state::{DESTINATION_ID_COLUMN, PartInfo, READ_CONCURRENCY, RunManifest, StateStore};
use crate::sync::changes::{BEFORE_PREFIX, CORRECTION_COLUMN, HELD_SINCE_COLUMN, REASON_COLUMN};
use crate::sync::corrections::RECORD_COLUMN;

/// The tables, in the order the docs give them.
pub const TABLES: [&str; 6] = ["runs", "sent", "rejected", "pending", "held", "corrections"];

/// The columns of `runs`, one row per sync per run.
pub const RUNS_COLUMNS: [&str; 28] = [
    "run_id",
    "sync_id",
    "model",
    "destination",
    "destination_type",
    "started_at",
    "finished_at",
    "duration_seconds",
    "outcome",
    "error",
    "git_commit",
    "model_sql_hash",
    "mapping_hash",
    "full_refresh",
    "model_rows",
    "new_rows",
    "corrections",
    "gone",
    "accepted",
    "rejected",
    "pending",
    "held",
    "destination_ids",
    "source_versions",
    "recovered_by",
    "rolled_back_at",
    "rolled_back_rows",
    "repaired_rows",
];

/// Columns of refused rows' parts: why the destination refused the row (`sync::commit`).
const REJECT_CODE: &str = "reject_code";
const REJECT_FIELD: &str = "reject_field";
const REJECT_MESSAGE: &str = "reject_message";

/// The per-file constant of a part scan: the run whose manifest names the part. Named so no
/// mapped field can take it.
const RUN_PARTITION: &str = "_dinmo_manifest_run";

/// The type quantities are read as: exact, so sums reconcile to the cent.
pub const QUANTITY_TYPE: DataType = DataType::Decimal128(38, 9);

/// A table of rows read from parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    Sent,
    Rejected,
    Pending,
    Held,
}

impl Rows {
    const ALL: [Rows; 4] = [Rows::Sent, Rows::Rejected, Rows::Pending, Rows::Held];

    fn table(self) -> &'static str {
        match self {
            Rows::Sent => "sent",
            Rows::Rejected => "rejected",
            Rows::Pending => "pending",
            Rows::Held => "held",
        }
    }

    /// The table's fixed columns, in order.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Rows::Sent => &SENT_COLUMNS,
            Rows::Rejected => &REJECTED_COLUMNS,
            Rows::Pending => &PENDING_COLUMNS,
            Rows::Held => &HELD_COLUMNS,
        }
    }

    fn parts(self, manifest: &RunManifest) -> Vec<&PartInfo> {
        match self {
            Rows::Sent => manifest.snapshot_parts.iter().collect(),
            Rows::Rejected => manifest.rejected_parts.iter().collect(),
            Rows::Pending => manifest.pending_part.iter().collect(),
            Rows::Held => manifest.held_part.iter().collect(),
        }
    }

    /// Whether a part's column is the engine's rather than a mapped field.
    fn is_own(self, name: &str) -> bool {
        is_engine_column(name)
            || (self == Rows::Rejected && [REJECT_CODE, REJECT_FIELD, REJECT_MESSAGE].contains(&name))
    }
}

/// The fixed columns of `sent`.
pub const SENT_COLUMNS: [&str; 11] = [
    "sync_id",
    "run_id",
    "destination_id",
    "row_key",
    "corrects",
    "correction",
    "record",
    "account",
    "unit",
    "quantity",
    "usage_date",
];
/// The fixed columns of `rejected`.
pub const REJECTED_COLUMNS: [&str; 10] = [
    "sync_id",
    "run_id",
    "row_key",
    "code",
    "field",
    "message",
    "account",
    "unit",
    "quantity",
    "usage_date",
];
/// The fixed columns of `pending`.
pub const PENDING_COLUMNS: [&str; 7] = [
    "sync_id",
    "run_id",
    "row_key",
    "account",
    "unit",
    "quantity",
    "usage_date",
];
/// The fixed columns of `held`.
pub const HELD_COLUMNS: [&str; 10] = [
    "sync_id",
    "run_id",
    "held_since",
    "reason",
    "row_key",
    "account",
    "unit",
    "quantity",
    "quantity_before",
    "usage_date",
];

/// The type of a fixed column of the row tables.
fn fixed_type(column: &str) -> DataType {
    match column {
        "quantity" | "quantity_before" => QUANTITY_TYPE,
        "usage_date" => DataType::Date32,
        _ => DataType::Utf8,
    }
}

/// What was registered, for messages.
#[derive(Debug, Clone, Default)]
pub struct HistoryTables {
    /// Manifests read: one per sync per run.
    pub manifests: usize,
    /// Parts each row table scans.
    pub parts: BTreeMap<&'static str, usize>,
}

/// One part to scan, with what its rows are read as.
#[derive(Debug, Clone)]
struct Part {
    sync: SyncId,
    run: RunId,
    destination_type: String,
    info: PartInfo,
}

/// Parts of one sync, one destination type and one layout: one scan.
#[derive(Debug)]
struct Group {
    sync: SyncId,
    destination_type: String,
    schema: SchemaRef,
    files: Vec<PartitionedFile>,
}

/// Reads every manifest of `state` and registers the history tables in `ctx` (whose session
/// must reach the state's store: [`crate::plan::sources::register_store`]).
pub async fn register_history(ctx: &SessionContext, state: &StateStore) -> Result<HistoryTables> {
    let manifests = state.every_manifest().await?;

    let runs = runs_batch(&manifests).map_err(DinmoError::arrow("building the runs table"))?;
    let runs =
        MemTable::try_new(runs.schema(), vec![vec![runs]]).map_err(DinmoError::engine("registering the runs table"))?;
    register(ctx, "runs", Arc::new(runs))?;

    let url = ObjectStoreUrl::parse(state.location().base_url.as_str())
        .map_err(DinmoError::engine(format!("reading the state at {}", state.display())))?;
    let mut parts = BTreeMap::new();
    for rows in Rows::ALL {
        let found: Vec<Part> = manifests
            .iter()
            .flat_map(|m| {
                rows.parts(m).into_iter().map(|info| Part {
                    sync: m.sync_id.clone(),
                    run: m.run_id.clone(),
                    destination_type: m.destination_type.clone(),
                    info: info.clone(),
                })
            })
            .collect();
        parts.insert(rows.table(), found.len());
        let groups = group(ctx, state, found).await?;
        let table = rows_table(ctx, &url, rows, groups)?;
        ctx.register_table(rows.table(), table.into_view())
            .map_err(DinmoError::engine(format!("registering the {} table", rows.table())))?;
    }
    let corrections = ctx
        .table("sent")
        .await
        .and_then(|sent| sent.filter(ident("corrects").is_not_null()))
        .map_err(DinmoError::engine("registering the corrections table"))?;
    register(ctx, "corrections", corrections.into_view())?;
    Ok(HistoryTables {
        manifests: manifests.len(),
        parts,
    })
}

fn register(ctx: &SessionContext, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
    ctx.register_table(name, table)
        .map(|_| ())
        .map_err(DinmoError::engine(format!("registering the {name} table")))
}

/// Reads each part's schema from its footer ([`READ_CONCURRENCY`] at a time, into the
/// session's metadata cache, where the scans find it again) and groups the parts by sync,
/// destination type and schema.
async fn group(ctx: &SessionContext, state: &StateStore, parts: Vec<Part>) -> Result<Vec<Group>> {
    let store = Arc::clone(&state.location().store);
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    let schemas: Vec<(Part, PartitionedFile, SchemaRef)> = futures::stream::iter(parts)
        .map(|part| {
            let (store, cache) = (Arc::clone(&store), Arc::clone(&cache));
            async move {
                let file = PartitionedFile::new_from_meta(object_store::ObjectMeta {
                    location: state.object_path(&part.info.path),
                    last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                    size: part.info.bytes,
                    e_tag: None,
                    version: None,
                })
                .with_partition_values(vec![ScalarValue::Utf8(Some(part.run.to_string()))]);
                let schema = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
                    .with_file_metadata_cache(Some(cache))
                    .fetch_schema()
                    .await
                    .map_err(DinmoError::engine(format!(
                        "reading {}, which run {} of sync `{}` recorded ({} bytes); if a rollback or repair \
                         was not running meanwhile (then query again), it is damaged or missing: \
                         `dinmo state verify` checks every part against its manifest",
                        state.url_of(&part.info.path),
                        part.run,
                        part.sync,
                        part.info.bytes
                    )))?;
                Ok::<_, DinmoError>((part, file, Arc::new(schema)))
            }
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let mut groups: Vec<Group> = Vec::new();
    for (part, file, schema) in schemas {
        let same = groups.iter_mut().find(|g| {
            g.sync == part.sync && g.destination_type == part.destination_type && g.schema.fields() == schema.fields()
        });
        match same {
            Some(group) => group.files.push(file),
            None => groups.push(Group {
                sync: part.sync,
                destination_type: part.destination_type,
                schema,
                files: vec![file],
            }),
        }
    }
    Ok(groups)
}

/// The table of `rows`: each group's scan brought to the table's columns, one after another.
fn rows_table(ctx: &SessionContext, url: &ObjectStoreUrl, rows: Rows, groups: Vec<Group>) -> Result<DataFrame> {
    let context = || format!("building the {} table", rows.table());
    let fixed = rows.columns();
    let mapped = mapped_fields(rows, &groups, fixed);
    let mut table: Option<DataFrame> = None;
    for group in groups {
        let present = |name: &str| group.schema.field_with_name(name).ok().map(|f| f.data_type().clone());
        let names: Vec<&str> = group.schema.fields().iter().map(|f| f.name().as_str()).collect();
        let roles = dinmo_connectors::registry::stored_roles(&group.destination_type, &names);
        let role = |pick: fn(&FieldRoles) -> &'static str| roles.as_ref().map(pick).filter(|f| names.contains(f));
        let mut exprs: Vec<Expr> = fixed
            .iter()
            .map(|column| {
                let value = match *column {
                    "sync_id" => Some(lit(group.sync.as_str())),
                    "run_id" => Some(ident(RUN_PARTITION)),
                    "destination_id" => present(DESTINATION_ID_COLUMN).map(|_| ident(DESTINATION_ID_COLUMN)),
                    "row_key" => present(ROW_KEY_COLUMN).map(|t| key_text(ROW_KEY_COLUMN, &t)),
                    "corrects" => present(CORRECTS_COLUMN).map(|t| key_text(CORRECTS_COLUMN, &t)),
                    "correction" => present(CORRECTION_COLUMN).map(|_| ident(CORRECTION_COLUMN)),
                    "record" => present(RECORD_COLUMN).map(|_| ident(RECORD_COLUMN)),
                    "code" => present(REJECT_CODE).map(|_| ident(REJECT_CODE)),
                    "field" => present(REJECT_FIELD).map(|_| ident(REJECT_FIELD)),
                    "message" => present(REJECT_MESSAGE).map(|_| ident(REJECT_MESSAGE)),
                    "held_since" => present(HELD_SINCE_COLUMN).map(|_| ident(HELD_SINCE_COLUMN)),
                    "reason" => present(REASON_COLUMN).map(|_| ident(REASON_COLUMN)),
                    "account" => role(|r| r.account).map(ident),
                    "unit" => role(|r| r.unit).map(ident),
                    "quantity" => role(|r| r.quantity).map(ident),
                    "quantity_before" => role(|r| r.quantity)
                        .map(|f| format!("{BEFORE_PREFIX}{f}"))
                        .filter(|f| names.contains(&f.as_str()))
                        .map(|f| try_cast(ident(f), QUANTITY_TYPE)),
                    "usage_date" => role(|r| r.start).and_then(|f| present(f).map(|t| date_of(f, &t))),
                    _ => None,
                };
                typed(value, fixed_type(column)).alias(*column)
            })
            .collect();
        for (name, exposed, data_type) in &mapped {
            let value = present(name).map(|_| ident(name.as_str()));
            exprs.push(typed(value, data_type.clone()).alias(exposed));
        }
        let scan = PartsTable::new(url.clone(), Arc::clone(&group.schema), group.files);
        let frame = ctx
            .read_table(Arc::new(scan))
            .and_then(|frame| frame.select(exprs))
            .map_err(DinmoError::engine(context()))?;
        table = Some(match table {
            None => frame,
            Some(before) => before.union(frame).map_err(DinmoError::engine(context()))?,
        });
    }
    match table {
        Some(table) => Ok(table),
        None => {
            let fields: Vec<Field> = fixed
                .iter()
                .map(|c| Field::new(*c, fixed_type(c), true))
                .chain(
                    mapped
                        .iter()
                        .map(|(_, exposed, t)| Field::new(exposed, t.clone(), true)),
                )
                .collect();
            let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])
                .map_err(DinmoError::engine(context()))?;
            ctx.read_table(Arc::new(empty)).map_err(DinmoError::engine(context()))
        }
    }
}

/// Every mapped field across `groups`, in the order first seen, with the name it is exposed
/// as (a field named exactly like a fixed column gets `field_` in front) and its type (text
/// where parts disagree).
fn mapped_fields(rows: Rows, groups: &[Group], fixed: &[&str]) -> Vec<(String, String, DataType)> {
    let mut order: Vec<String> = Vec::new();
    let mut types: BTreeMap<String, DataType> = BTreeMap::new();
    for field in groups.iter().flat_map(|g| g.schema.fields().iter()) {
        let name = field.name();
        if rows.is_own(name) {
            continue;
        }
        let data_type = plain(field.data_type());
        match types.get(name) {
            None => {
                order.push(name.clone());
                types.insert(name.clone(), data_type);
            }
            Some(t) if *t != data_type => {
                types.insert(name.clone(), DataType::Utf8);
            }
            Some(_) => {}
        }
    }
    order
        .into_iter()
        .map(|name| {
            let clashes = fixed.contains(&name.as_str());
            let exposed = if clashes { format!("field_{name}") } else { name.clone() };
            let data_type = types.remove(&name).unwrap_or(DataType::Utf8);
            (name, exposed, data_type)
        })
        .collect()
}

/// The type a mapped field is shown as: a dictionary as its values, any text as `Utf8`, so
/// that parts written by different models agree.
fn plain(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(_, values) => plain(values),
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// `value` as `data_type`, or a null of it.
fn typed(value: Option<Expr>, data_type: DataType) -> Expr {
    match value {
        Some(value) => cast(value, data_type),
        None => cast(lit(ScalarValue::Null), data_type),
    }
}

/// A row-key column as 32 lower-case hex digits, however the part stores it.
fn key_text(column: &str, stored: &DataType) -> Expr {
    match stored {
        DataType::FixedSizeBinary(_) | DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            encode(cast(ident(column), DataType::Binary), lit("hex"))
        }
        _ => ident(column),
    }
}

/// The usage date of a start field: a date as it is, a time stamp's date (in UTC when it has a
/// zone), text's first ten characters when they are an ISO date (null otherwise: the field
/// itself holds the text as sent).
fn date_of(field: &str, stored: &DataType) -> Expr {
    match stored {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => cast(ident(field), DataType::Date32),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            try_cast(left(cast(ident(field), DataType::Utf8), lit(10i64)), DataType::Date32)
        }
        _ => cast(lit(ScalarValue::Null), DataType::Date32),
    }
}

/// Parts of one group, scanned by DataFusion's Parquet reader with the run of each file as a
/// constant column ([`RUN_PARTITION`]).
#[derive(Debug)]
struct PartsTable {
    url: ObjectStoreUrl,
    file_schema: SchemaRef,
    schema: SchemaRef,
    files: Vec<PartitionedFile>,
}

impl PartsTable {
    fn new(url: ObjectStoreUrl, file_schema: SchemaRef, files: Vec<PartitionedFile>) -> Self {
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.push(run_field());
        PartsTable {
            url,
            schema: Arc::new(Schema::new(fields)),
            file_schema,
            files,
        }
    }
}

fn run_field() -> FieldRef {
    Arc::new(Field::new(RUN_PARTITION, DataType::Utf8, false))
}

#[async_trait]
impl TableProvider for PartsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let table_schema = TableSchemaBuilder::new(Arc::clone(&self.file_schema))
            .with_table_partition_cols(vec![run_field()])
            .build();
        let config = FileScanConfigBuilder::new(self.url.clone(), Arc::new(ParquetSource::new(table_schema)))
            .with_file_groups(balanced(&self.files, state.config().target_partitions()))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        ParquetFormat::default()
            .with_options(state.table_options().parquet.clone())
            .create_physical_plan(state, config)
            .await
    }
}

/// `files` in at most `partitions` groups of about equal bytes, largest first to the
/// lightest group.
fn balanced(files: &[PartitionedFile], partitions: usize) -> Vec<FileGroup> {
    let count = partitions.clamp(1, files.len().max(1));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); count];
    let mut by_size: Vec<&PartitionedFile> = files.iter().collect();
    by_size.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
    for file in by_size {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lightest.0 += file.object_meta.size;
            lightest.1.push(file.clone());
        }
    }
    groups
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

/// The `runs` table: one row per manifest.
fn runs_batch(manifests: &[RunManifest]) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let text = |f: &dyn Fn(&RunManifest) -> Option<String>| -> ArrayRef {
        Arc::new(manifests.iter().map(f).collect::<StringArray>())
    };
    let count = |f: &dyn Fn(&RunManifest) -> u64| -> ArrayRef {
        Arc::new(
            manifests
                .iter()
                .map(|m| Some(i64::try_from(f(m)).unwrap_or(i64::MAX)))
                .collect::<Int64Array>(),
        )
    };
    let time = |f: &dyn Fn(&RunManifest) -> Option<i64>| -> ArrayRef {
        Arc::new(
            manifests
                .iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let list = |f: &dyn Fn(&RunManifest) -> Vec<String>| -> ArrayRef {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for m in manifests {
            for value in f(m) {
                builder.values().append_value(value);
            }
            builder.append(true);
        }
        Arc::new(builder.finish())
    };
    let micros = |t: &dinmo_connectors::Timestamp| t.time().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        text(&|m| Some(m.run_id.to_string())),
        text(&|m| Some(m.sync_id.to_string())),
        text(&|m| Some(m.model.clone())),
        text(&|m| Some(m.destination.clone())),
        text(&|m| Some(m.destination_type.clone())),
        time(&|m| Some(micros(&m.started_at))),
        time(&|m| m.finished_at.as_ref().map(micros)),
        Arc::new(
            manifests
                .iter()
                .map(|m| {
                    m.finished_at
                        .as_ref()
                        .map(|end| (micros(end) - micros(&m.started_at)) as f64 / 1e6)
                })
                .collect::<Float64Array>(),
        ),
        text(&|m| Some(m.outcome.as_str().to_string())),
        text(&|m| m.error.clone()),
        text(&|m| m.git_commit.clone()),
        text(&|m| Some(m.model_sql_hash.clone())),
        text(&|m| Some(m.mapping_hash.clone())),
        Arc::new(manifests.iter().map(|m| Some(m.full_refresh)).collect::<BooleanArray>()),
        count(&|m| m.counts.model_rows),
        count(&|m| m.counts.new_rows),
        count(&|m| m.counts.corrections),
        count(&|m| m.counts.gone),
        count(&|m| m.counts.accepted),
        count(&|m| m.counts.rejected),
        count(&|m| m.counts.pending),
        count(&|m| m.held_part.as_ref().map_or(0, |p| p.rows)),
        list(&|m| m.destination_ids.clone()),
        list(&|m| m.source_versions.iter().map(ToString::to_string).collect()),
        text(&|m| m.recovered_by.as_ref().map(ToString::to_string)),
        time(&|m| m.rollback.as_ref().map(|r| micros(&r.at))),
        Arc::new(
            manifests
                .iter()
                .map(|m| {
                    m.rollback
                        .as_ref()
                        .map(|r| i64::try_from(r.deleted_rows).unwrap_or(i64::MAX))
                })
                .collect::<Int64Array>(),
        ),
        count(&|m| m.repairs.iter().map(|r| r.rows).sum()),
    ];
    let fields: Vec<Field> = RUNS_COLUMNS
        .iter()
        .zip(&columns)
        .map(|(name, column)| {
            let nullable = !matches!(
                *name,
                "run_id" | "sync_id" | "model" | "destination" | "destination_type" | "started_at" | "outcome"
            );
            Field::new(*name, column.data_type().clone(), nullable)
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn runs_has_every_pinned_column_with_its_type() {
        let batch = runs_batch(&[]).expect("an empty runs table");
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, RUNS_COLUMNS);
        assert_eq!(
            batch
                .schema()
                .field_with_name("started_at")
                .map(|f| f.data_type().clone())
                .ok(),
            Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        );
    }

    #[test]
    fn files_are_spread_by_size() {
        let files: Vec<PartitionedFile> = [100, 10, 60, 50]
            .iter()
            .map(|s| PartitionedFile::new(format!("f{s}"), *s))
            .collect();
        let groups = balanced(&files, 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.files().iter().map(|f| f.object_meta.size).sum())
            .collect();
        assert_eq!(sizes, vec![110, 110]);
        assert_eq!(balanced(&files, 8).len(), 4);
        assert!(balanced(&[], 2).is_empty());
    }
}
