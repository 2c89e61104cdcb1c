//! Running a model once: its rows conformed to the planned types, its primary key checked,
//! each sync's row key added, the new rows of the syncs diffed as it runs written to their
//! pending files, and (when a sync is joined afterwards) every row staged locally.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use dinmo_connectors::{ROW_KEY_COLUMN, SyncId};
use futures::StreamExt;

use super::anti_join::SnapshotSet;
use super::anti_join::{self, DiffCounts, DiffFiles, Known, SplitFeeds, SplitWriters};
use super::key_set::{KeySet, OutOfMemory};
use crate::error::{DinmoError, Result};
use crate::plan::models::PlannedModel;
use crate::project::Sync;
use crate::state::row_key::{binary_keys, row_hashes};
use crate::state::{LocalPartWriter, remove_local_folder};

/// The column of the staged file holding the key of the model's `index`-th selected sync,
/// as the 16 bytes of its hash ([`crate::state::row_key::binary_keys`]): written as hex only
/// for the rows that are new.
pub fn key_column(index: usize) -> String {
    format!("_dinmo_key_{index}")
}

/// Whether [`stage_model`] keeps every row of the model in a local staged table (for the syncs
/// joined afterwards), or writes only the new rows of the syncs diffed as it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagedRows {
    /// Write every row, with each sync's row key, to the staged table.
    Keep,
    /// Write no staged table.
    Skip,
}

/// One sync whose new and changed rows [`stage_model`] writes as the model runs.
#[derive(Debug)]
pub struct DirectDiff<'s> {
    /// The sync's position among the model's selected syncs.
    pub(super) index: usize,
    /// The sync.
    pub(super) sync: &'s Sync,
    /// Its snapshot's keys and values; `None` when every row is new.
    pub(super) keys: Option<Arc<SnapshotSet>>,
    /// Where its rows go.
    pub(super) files: DiffFiles,
}

/// The model's output: the rows written straight to the pending files of the syncs diffed as
/// it ran, and, when a sync is joined afterwards, the rows staged locally with one key column
/// per selected sync.
#[derive(Debug)]
pub struct StagedModel {
    /// The table name the staged rows are registered under (when they were kept).
    pub table: String,
    /// Local folder of Parquet files (one per output partition of the query).
    pub path: PathBuf,
    /// Rows the model produced.
    pub rows: u64,
    /// The model's primary key columns.
    pub(super) primary_key: Vec<String>,
    /// New and changed rows written for each directly diffed sync, by the sync's index.
    pub(super) direct_rows: Vec<(usize, DiffCounts)>,
    /// The removal of the staged files, once started ([`StagedModel::discard`]).
    pub(super) discarding: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl StagedModel {
    /// The new and changed rows written for the model's `index`-th sync while the model ran;
    /// `None` when the sync was not diffed then.
    pub fn direct_rows(&self, index: usize) -> Option<DiffCounts> {
        self.direct_rows
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, rows)| *rows)
    }

    /// Starts removing the staged files (on blocking threads) once no sync needs them any
    /// more, after the model's last diff: the removal then overlaps the delivery rather than
    /// ending the run. Once only.
    pub fn discard(&self) {
        let mut discarding = self
            .discarding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if discarding.is_none() {
            *discarding = Some(tokio::spawn(remove_local_folder(self.path.clone())));
        }
    }

    /// Starts the removal if it has not started, and waits for it.
    pub async fn discarded(&self) {
        self.discard();
        let removal = self
            .discarding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(removal) = removal
            && let Err(error) = removal.await
        {
            tracing::warn!(folder = %self.path.display(), %error, "removing the staged files stopped");
        }
    }
}

/// `batch` with each column cast to the planned type where they differ. DataFusion may hand
/// out a batch whose encoding differs from the plan's schema (a `Utf8View` or dictionary
/// column where the plan says `Utf8`, depending on the operator and the batch); staging in
/// the planned types keeps the staged file, the row keys and the checks the same whatever the
/// batch boundaries. The casts are between encodings of the same values (the plan is what
/// DataFusion promised), so none loses anything.
fn conform(batch: &RecordBatch, planned: &Schema) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    if batch
        .schema()
        .fields()
        .iter()
        .zip(planned.fields())
        .all(|(a, b)| a.data_type() == b.data_type())
    {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(planned.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::new(planned.clone()), columns)
}

/// Runs the model's query once and checks the primary key is non-null and unique. The new
/// rows of each sync in `direct` go straight to its pending file; with [`StagedRows::Keep`],
/// every row is also written to `staging_dir` with each sync's row key added, for the syncs
/// joined afterwards ([`write_new_rows`](super::write_new_rows)).
///
/// Each of the query's output partitions is staged by its own task (into its own file, when
/// kept), so keying and encoding use every core; the files together are the staged table.
/// The staged file is skipped when no sync needs it: it would cost writing and reading back
/// every row.
pub async fn stage_model(
    ctx: &SessionContext,
    planned: &PlannedModel<'_>,
    staging_dir: &Path,
    direct: Vec<DirectDiff<'_>>,
    mut staged_rows: StagedRows,
) -> Result<StagedModel> {
    let model = planned.model;
    let started = std::time::Instant::now();
    let key_indices: Vec<usize> = model
        .primary_key
        .iter()
        .filter_map(|k| planned.schema.index_of(k).ok())
        .collect();
    let mut fields: Vec<Arc<Field>> = planned.schema.fields().iter().cloned().collect();
    for index in 0..planned.syncs.len() {
        fields.push(Arc::new(Field::new(
            key_column(index),
            DataType::FixedSizeBinary(16),
            false,
        )));
    }
    let staged_schema: SchemaRef = Arc::new(Schema::new(fields));
    let folder = staging_dir.join(format!("{}.model", model.name));
    let setup = StageSetup {
        planned,
        folder: &folder,
        staged_schema: &staged_schema,
        key_indices: &key_indices,
    };
    let mut pass = stage_pass(ctx, &setup, direct, staged_rows, KeyCheck::InMemory).await?;
    if !pass.checked_in_memory && staged_rows == StagedRows::Skip {
        // The primary key check did not fit the memory limit, so a query checks it; that
        // query must read the very rows the syncs are diffed with (an export may land
        // meanwhile), so the model's rows are staged after all and every sync is diffed from
        // them.
        tracing::info!(model = %model.name, "staging the model's rows for the primary key check");
        pass = stage_pass(ctx, &setup, Vec::new(), StagedRows::Keep, KeyCheck::ByQuery).await?;
        staged_rows = StagedRows::Keep;
    }
    let StagePass {
        rows,
        null_keys,
        repeated,
        checked_in_memory,
        direct_rows,
    } = pass;
    let key = model.primary_key.join(", ");
    if null_keys > 0 {
        // Files of a source that lack a key column (a renamed column, another writer) read
        // it as null: name them.
        let lacking = crate::plan::sources::files_lacking(ctx, &model.primary_key, 5).await;
        let lacking = match lacking.as_slice() {
            [] => String::new(),
            files => format!(
                ". These files lack a key column, which reads as null in their rows: {}",
                files.join("; ")
            ),
        };
        return Err(DinmoError::NullPrimaryKey {
            model: model.name.clone(),
            key: key.clone(),
            rows: null_keys,
            lacking,
        });
    }
    let table = format!("__dinmo_staged_{}", model.name.replace('-', "_"));
    let context = format!("model `{}`: reading staged output", model.name);
    if staged_rows == StagedRows::Keep {
        let url =
            ListingTableUrl::parse(format!("{}/", folder.display())).map_err(DinmoError::engine(context.clone()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(staged_schema);
        let listing = ListingTable::try_new(config).map_err(DinmoError::engine(context.clone()))?;
        ctx.register_table(table.as_str(), Arc::new(listing))
            .map_err(DinmoError::engine(context))?;
    } else {
        // Nothing staged: a repeated key is named by running the model's query again.
        ctx.register_table(table.as_str(), planned.frame.clone().into_view())
            .map_err(DinmoError::engine(context))?;
    }
    let staged_at = started.elapsed();
    if !checked_in_memory || repeated > 0 {
        // The set did not fit, or a key repeated: the query finds (and names) the repeats.
        check_unique(ctx, &table, &model.name, &model.primary_key).await?;
        if checked_in_memory {
            return Err(DinmoError::DuplicatePrimaryKey {
                model: model.name.clone(),
                key,
                examples: format!(
                    "{repeated} row(s) have the row key of another row with a different primary key (an \
                     xxh3-128 collision); nothing was sent"
                ),
            });
        }
    }
    tracing::debug!(
        model = %model.name,
        rows,
        staging_ms = staged_at.as_millis() as u64,
        key_check_ms = (started.elapsed() - staged_at).as_millis() as u64,
        "model staged and its primary key checked"
    );
    Ok(StagedModel {
        table,
        path: folder,
        rows,
        primary_key: model.primary_key.clone(),
        direct_rows,
        discarding: Default::default(),
    })
}

/// What one run of the model's query found and wrote.
#[derive(Debug)]
struct StagePass {
    rows: u64,
    null_keys: u64,
    repeated: u64,
    /// The primary key check's set fit the memory limit.
    checked_in_memory: bool,
    /// New and changed rows written for each directly diffed sync, by the sync's index.
    direct_rows: Vec<(usize, DiffCounts)>,
}

/// What every pass over one model's query shares.
#[derive(Debug)]
struct StageSetup<'a> {
    planned: &'a PlannedModel<'a>,
    /// Where the staged table's files go.
    folder: &'a Path,
    /// The model's columns, then one key column per selected sync.
    staged_schema: &'a SchemaRef,
    /// The primary key's columns.
    key_indices: &'a [usize],
}

/// Where a pass checks the primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    /// In a key set, as long as the pool holds it.
    InMemory,
    /// Left to a query (a set that did not fit before).
    ByQuery,
}

/// Runs the model's query once for [`stage_model`]: one task per output partition.
async fn stage_pass(
    ctx: &SessionContext,
    setup: &StageSetup<'_>,
    direct: Vec<DirectDiff<'_>>,
    staged_rows: StagedRows,
    key_check: KeyCheck,
) -> Result<StagePass> {
    let StageSetup {
        planned,
        folder,
        staged_schema,
        key_indices,
    } = *setup;
    let model = planned.model;
    let seen = KeySet::empty(
        &ctx.runtime_env().memory_pool,
        format!("model `{}`: primary key check", model.name),
    );
    let mut writers = Vec::new();
    let mut outputs = Vec::new();
    for diff in direct {
        let (columns, schema) = pending_columns(&planned.schema, diff.sync)?;
        let writer = SplitWriters::create(&diff.files, &schema).await?;
        if let Some(feeds) = writer.feeds() {
            outputs.push(DirectOutput {
                index: diff.index,
                columns,
                names: diff.sync.mapping.iter().map(|m| m.field.clone()).collect(),
                keys: diff.keys,
                schema,
                pending: diff.files.pending.clone(),
                feeds,
            });
        }
        writers.push((diff.index, writer));
    }
    let first_snapshot = outputs.iter().find(|o| o.index == 0).and_then(|o| o.keys.clone());
    if let Some(snapshot) = &first_snapshot {
        snapshot.keys.mark_from_now();
    }
    let job = Arc::new(StageJob {
        model: model.name.clone(),
        file: model.file.clone(),
        planned_schema: Arc::clone(&planned.schema),
        staged_schema: Arc::clone(staged_schema),
        key_indices: key_indices.to_vec(),
        sync_ids: planned.syncs.iter().map(|s| s.sync.id.clone()).collect(),
        seen,
        seen_overflowed: std::sync::atomic::AtomicBool::new(key_check == KeyCheck::ByQuery),
        outputs,
        first_snapshot,
    });
    let streams = planned
        .frame
        .clone()
        .execute_stream_partitioned()
        .await
        .map_err(|source| job.query_error(source))?;
    let mut tasks = tokio::task::JoinSet::new();
    for (partition, stream) in streams.into_iter().enumerate() {
        let path = (staged_rows == StagedRows::Keep).then(|| folder.join(format!("part-{partition:04}.parquet")));
        tasks.spawn(stage_partition(stream, path, Arc::clone(&job)));
    }
    let (mut rows, mut null_keys, mut repeated) = (0u64, 0u64, 0u64);
    let mut failed = None;
    while let Some(done) = tasks.join_next().await {
        let done = done
            .map_err(|source| DinmoError::Interrupted {
                task: format!("staging model `{}`", model.name),
                source,
            })
            .and_then(|staged| staged);
        match done {
            Ok(staged) => {
                rows += staged.rows;
                null_keys += staged.null_keys;
                repeated += staged.repeated_keys;
            }
            Err(failure) => {
                // The other partitions' work is wasted: stop them.
                tasks.abort_all();
                failed.get_or_insert(failure);
            }
        }
    }
    // Every task is done: this is the last reference, the pending files' feeds are gone, and
    // the key set's memory goes back.
    let checked_in_memory = !job.seen_overflowed.load(std::sync::atomic::Ordering::Relaxed);
    drop(job);
    let mut direct_rows = Vec::new();
    for (index, writer) in writers {
        // An encoder that failed is why a task stopped: its error comes first.
        direct_rows.push((index, writer.finish().await?));
    }
    if let Some(failure) = failed {
        return Err(failure);
    }
    Ok(StagePass {
        rows,
        null_keys,
        repeated,
        checked_in_memory,
        direct_rows,
    })
}

/// The columns of the model's rows that become `sync`'s destination fields, and the pending
/// file's schema: those fields in the model's types, then the row key as text (what
/// [`new_rows`] gives for a joined sync).
fn pending_columns(schema: &SchemaRef, sync: &Sync) -> Result<(Vec<usize>, SchemaRef)> {
    let mut columns = Vec::with_capacity(sync.mapping.len());
    let mut fields = Vec::with_capacity(sync.mapping.len() + 1);
    for mapped in &sync.mapping {
        let index = schema.index_of(&mapped.column).map_err(|source| DinmoError::Arrow {
            context: format!("sync `{}`: mapping the field `{}`", sync.id, mapped.field),
            source,
        })?;
        let column = schema.field(index);
        columns.push(index);
        fields.push(Field::new(
            mapped.field.as_str(),
            column.data_type().clone(),
            column.is_nullable(),
        ));
    }
    fields.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
    Ok((columns, Arc::new(Schema::new(fields))))
}

/// Where one staging task sends a directly diffed sync's new and changed rows.
#[derive(Debug)]
struct DirectOutput {
    index: usize,
    /// The model's columns that are the destination's fields, in the pending file's order.
    columns: Vec<usize>,
    /// The destination's fields, in that order.
    names: Vec<String>,
    keys: Option<Arc<SnapshotSet>>,
    schema: SchemaRef,
    pending: PathBuf,
    feeds: SplitFeeds,
}

/// What every staging task of one model shares.
#[derive(Debug)]
struct StageJob {
    model: String,
    file: PathBuf,
    planned_schema: SchemaRef,
    staged_schema: SchemaRef,
    key_indices: Vec<usize>,
    sync_ids: Vec<SyncId>,
    /// Row keys seen so far (the first sync's, or the key of an unnamed sync), to find a
    /// primary key that repeats.
    seen: KeySet,
    /// The pool could not hold `seen`: it was emptied, and the query checks the key instead.
    seen_overflowed: std::sync::atomic::AtomicBool,
    /// The syncs whose new rows are written as the model runs.
    outputs: Vec<DirectOutput>,
    /// The first sync's snapshot keys, when they are in memory: the primary-key check marks
    /// the keys they hold there ([`StageJob::remember_first`]).
    first_snapshot: Option<Arc<SnapshotSet>>,
}

impl StageJob {
    /// Adds row keys to the primary-key check; returns how many were seen before. When the
    /// pool cannot hold them, the set is emptied and the query will check instead.
    fn remember(&self, hashes: &[u128]) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        if self.seen_overflowed.load(Relaxed) {
            return 0;
        }
        match self.seen.insert(hashes) {
            Ok(repeated) => repeated,
            Err(OutOfMemory) => {
                tracing::info!(model = %self.model, "the primary key check does not fit the memory limit: a query checks it instead");
                self.seen_overflowed.store(true, Relaxed);
                self.seen.clear();
                0
            }
        }
    }

    /// [`StageJob::remember`] for the first sync's keys: when its snapshot's keys are in
    /// memory, a key the snapshot holds is checked by marking it there (a second mark is a
    /// repeat), and only the others go to the primary-key set. A run that finds nothing new
    /// then builds no second set of every key; and every key the snapshot holds is marked, so
    /// its gone rows are named at once.
    fn remember_first(&self, hashes: &[u128]) -> (u64, Option<Vec<Option<u64>>>) {
        let Some(snapshot) = &self.first_snapshot else {
            return (self.remember(hashes), None);
        };
        let mut repeated = 0;
        let mut absent = Vec::new();
        // The values found, so the first sync's split does not look its keys up again.
        let values: Vec<Option<u64>> = hashes
            .iter()
            .map(|&hash| match snapshot.keys.mark(hash) {
                Some((repeat, value)) => {
                    repeated += u64::from(repeat);
                    Some(value)
                }
                None => {
                    absent.push(hash);
                    None
                }
            })
            .collect();
        (repeated + self.remember(&absent), Some(values))
    }

    fn query_error(&self, source: datafusion::error::DataFusionError) -> DinmoError {
        if matches!(
            source.find_root(),
            datafusion::error::DataFusionError::ResourcesExhausted(_)
        ) {
            return DinmoError::engine(format!("model `{}` ({})", self.model, self.file.display()))(source);
        }
        DinmoError::ModelQuery {
            model: self.model.clone(),
            file: self.file.clone(),
            source: Box::new(source),
        }
    }
}

/// Stages one output partition of the model: conforms each batch to the planned types, counts
/// rows with a null key column (once one is seen, nothing more is written), computes each
/// sync's row key, sends the new rows of each directly diffed sync to its pending file, and
/// (with a `path`) writes the rows with their keys there.
async fn stage_partition(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    path: Option<PathBuf>,
    job: Arc<StageJob>,
) -> Result<StagedPartition> {
    let mut writer = match &path {
        Some(path) => Some(LocalPartWriter::create_temporary(path, Arc::clone(&job.staged_schema)).await?),
        None => None,
    };
    let (mut rows, mut null_keys, mut repeated_keys) = (0u64, 0u64, 0u64);
    let context = || format!("model `{}`: staging", job.model);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|source| job.query_error(source))?;
        let batch = conform(&batch, &job.planned_schema).map_err(DinmoError::arrow(context()))?;
        null_keys += job
            .key_indices
            .iter()
            .map(|&i| batch.column(i).logical_nulls())
            .fold(None::<arrow::buffer::NullBuffer>, |all, nulls| {
                arrow::buffer::NullBuffer::union(all.as_ref(), nulls.as_ref())
            })
            .map_or(0, |valid| valid.null_count() as u64);
        if null_keys > 0 {
            continue; // keep counting; nothing with a null key is staged
        }
        rows += batch.num_rows() as u64;
        let mut columns = batch.columns().to_vec();
        for (index, sync_id) in job.sync_ids.iter().enumerate() {
            let hashes = row_hashes(sync_id, &batch, &job.key_indices).map_err(DinmoError::arrow(context()))?;
            let mut looked_up = None;
            if index == 0 {
                let (repeated, values) = job.remember_first(&hashes);
                repeated_keys += repeated;
                looked_up = values;
            }
            for output in job.outputs.iter().filter(|o| o.index == index) {
                let known = match (output.keys.as_deref(), looked_up.as_deref()) {
                    (Some(keys), Some(values)) => Known::LookedUp(keys, values),
                    (Some(keys), None) => Known::InMemory(keys),
                    (None, _) => Known::Nothing,
                };
                let names: Vec<&str> = output.names.iter().map(String::as_str).collect();
                let split = anti_join::split_rows(&batch, &output.columns, &names, &hashes, known, &output.schema)
                    .map_err(DinmoError::arrow(context()))?;
                if !output.feeds.send(split).await {
                    // The pending file's encoder stopped; finishing it says why.
                    return Err(DinmoError::Io {
                        path: output.pending.clone(),
                        source: std::io::Error::other("the pending file's encoder stopped"),
                    });
                }
            }
            if writer.is_some() {
                columns.push(binary_keys(&hashes).map_err(DinmoError::arrow(context()))?);
            }
        }
        if job.sync_ids.is_empty() {
            let hashes = row_hashes("", &batch, &job.key_indices).map_err(DinmoError::arrow(context()))?;
            repeated_keys += job.remember(&hashes);
        }
        if let Some(writer) = writer.as_mut() {
            let keyed =
                RecordBatch::try_new(Arc::clone(&job.staged_schema), columns).map_err(DinmoError::arrow(context()))?;
            writer.write(&keyed).await?;
        }
    }
    if let Some(writer) = writer {
        writer.finish().await?;
    }
    Ok(StagedPartition {
        rows,
        null_keys,
        repeated_keys,
    })
}

/// What one staging task did.
#[derive(Debug)]
struct StagedPartition {
    /// Rows the partition produced (with no null key column).
    rows: u64,
    /// Rows with a null key column (none of them staged).
    null_keys: u64,
    /// Rows whose key was seen before.
    repeated_keys: u64,
}

/// Fails with up to five example keys when the primary key repeats.
async fn check_unique(ctx: &SessionContext, table: &str, model: &str, key: &[String]) -> Result<()> {
    let quoted: Vec<String> = key.iter().map(|k| format!("\"{}\"", k.replace('"', "\"\""))).collect();
    let list = quoted.join(", ");
    let sql = format!(
        "SELECT {list}, count(*) AS n FROM \"{table}\" GROUP BY {list} HAVING count(*) > 1 ORDER BY n DESC, {list} LIMIT 5"
    );
    let context = format!("model `{model}`: primary key check");
    let frame = ctx.sql(&sql).await.map_err(DinmoError::engine(context.clone()))?;
    // At most five rows.
    let batches = frame.collect().await.map_err(DinmoError::engine(context.clone()))?;
    let mut examples = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let mut values = Vec::new();
            for (i, name) in key.iter().enumerate() {
                let value = array_value_to_string(batch.column(i), row).map_err(DinmoError::arrow(context.clone()))?;
                values.push(format!("{name}={value}"));
            }
            let count =
                array_value_to_string(batch.column(key.len()), row).map_err(DinmoError::arrow(context.clone()))?;
            examples.push(format!("({}) ×{count}", values.join(", ")));
        }
    }
    if examples.is_empty() {
        return Ok(());
    }
    // The source files holding the first repeated key, when the model passes its key
    // columns through under their names.
    let mut first = Vec::new();
    for (i, name) in key.iter().enumerate() {
        if let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) {
            let value = array_value_to_string(batch.column(i), 0).map_err(DinmoError::arrow(context.clone()))?;
            first.push((name.clone(), value));
        }
    }
    let files = crate::plan::sources::files_holding(ctx, &first, 5).await;
    let files = match files.as_slice() {
        [] => String::new(),
        files => format!(
            ". The first is in {} (a day exported twice, or a file an aborted job left?)",
            files.join(" and ")
        ),
    };
    Err(DinmoError::DuplicatePrimaryKey {
        model: model.to_string(),
        key: key.join(", "),
        examples: format!("{}{files}", examples.join("; ")),
    })
}
