//! The diff: each sync's snapshot keys are loaded ([`snapshot_keys`]), then the model runs
//! once ([`stage_model`]): its primary key is checked, each sync's row key is added, and the
//! rows whose key is not in a sync's snapshot go straight to that sync's pending file.
//! Batches stream throughout; the model's rows are never collected into memory.
//!
//! Both checks hold row keys as 128-bit hashes in a [`KeySet`] (the primary-key check while
//! staging, the snapshot's keys for the anti-join), with its memory accounted to the session's
//! pool. When the pool cannot hold a set, DataFusion does the job instead (a GROUP BY over the
//! model's query; for the snapshot, the model's rows are staged to a local file and joined, a
//! hash or sort-merge join), spilling where it must.

mod anti_join;
mod key_set;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use datafusion::common::JoinType;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{DataFrame, SessionContext, col, ident};
use dinmo_connectors::ROW_KEY_COLUMN;
use futures::StreamExt;
use key_set::{FrozenKeySet, KeySet, OutOfMemory};

use crate::error::{DinmoError, Result};
use crate::plan::models::PlannedModel;
use crate::project::Sync;
use crate::state::row_key::{binary_keys, row_hashes};
use crate::state::{KeyEncoding, LocalPartWriter, PartFeed, SnapshotPart, key_part_schema, remove_local_folder};

/// The column of the staged file holding the key of the model's `index`-th selected sync,
/// as the 16 bytes of its hash ([`crate::state::row_key::binary_keys`]): written as hex only
/// for the rows that are new.
pub fn key_column(index: usize) -> String {
    format!("_dinmo_key_{index}")
}

/// How a sync's new rows are told from the rows already sent.
#[derive(Debug)]
pub enum SnapshotKeys {
    /// No snapshot (a first run, or a full refresh): every row is new.
    Everything,
    /// The snapshot's keys in memory: the model's rows are filtered as they are staged.
    InMemory(Arc<FrozenKeySet>),
    /// Keys that would take over a quarter of the memory limit: loaded only once the model
    /// ran and its primary key was checked, so the two sets (and the query that checks the
    /// key when its set does not fit) never hold memory at once ([`write_new_rows`]).
    Later(Snapshot),
    /// More keys than the memory limit allows in a set: the model's rows are staged to a local
    /// file and joined in DataFusion ([`write_new_rows`]).
    Join(Snapshot),
}

impl SnapshotKeys {
    /// Where the sync's new rows go as its model is staged (`pending`, a local file), unless
    /// they are found by a join afterwards.
    pub fn direct(&self, index: usize, pending: PathBuf) -> Option<DirectDiff> {
        let keys = match self {
            SnapshotKeys::Everything => None,
            SnapshotKeys::InMemory(keys) => Some(Arc::clone(keys)),
            SnapshotKeys::Later(_) | SnapshotKeys::Join(_) => return None,
        };
        Some(DirectDiff { index, keys, pending })
    }
}

/// One sync whose new rows [`stage_model`] writes as the model runs.
#[derive(Debug)]
pub struct DirectDiff {
    /// The sync's position among the model's selected syncs.
    index: usize,
    /// Its snapshot's keys; `None` when every row is new.
    keys: Option<Arc<FrozenKeySet>>,
    /// The local pending file for its new rows.
    pending: PathBuf,
}

/// Loads the keys of `snapshot` (`None`: a first run, or a full refresh) into a key set when
/// the session's pool can hold it in half its size, as a hash join's table would. With
/// `before_the_model`, keys that would take over a quarter of the pool are left for later
/// ([`SnapshotKeys::Later`]): the model's primary key check needs its own set meanwhile.
pub async fn snapshot_keys(
    ctx: &SessionContext,
    sync_id: &str,
    snapshot: Option<Snapshot>,
    before_the_model: bool,
) -> Result<SnapshotKeys> {
    use datafusion::execution::memory_pool::MemoryLimit;
    let Some(snapshot) = snapshot else {
        return Ok(SnapshotKeys::Everything);
    };
    let context = format!("sync `{sync_id}`: reading the snapshot's keys");
    let pool = &ctx.runtime_env().memory_pool;
    if let MemoryLimit::Finite(limit) = pool.memory_limit()
        && before_the_model
        && key_set::bytes_for(snapshot.rows) > (limit / 4) as u64
    {
        return Ok(SnapshotKeys::Later(snapshot));
    }
    let Ok(set) = KeySet::with_capacity(pool, format!("sync `{sync_id}`: snapshot keys"), snapshot.rows) else {
        return Ok(SnapshotKeys::Join(snapshot));
    };
    Ok(match anti_join::fill(set, &snapshot.frames, &context).await? {
        Some(keys) => SnapshotKeys::InMemory(Arc::new(keys)),
        None => SnapshotKeys::Join(snapshot),
    })
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
    /// New rows written to each directly diffed sync's pending file, by the sync's index.
    direct_rows: Vec<(usize, u64)>,
    /// The removal of the staged files, once started ([`StagedModel::discard`]).
    discarding: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl StagedModel {
    /// The new rows written to the pending file of the model's `index`-th sync while the model
    /// ran; `None` when the sync was not diffed then.
    pub fn direct_rows(&self, index: usize) -> Option<u64> {
        self.direct_rows
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, rows)| *rows)
    }

    /// Starts removing the staged files (on blocking threads) once no sync needs them any
    /// more, after the model's last diff: the removal then overlaps the delivery rather than
    /// ending the run (0.23 s, one core, for the 10 M-row runs' staged files). Once only.
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
/// rows of each sync in `direct` go straight to its pending file; with `keep_staged`, every
/// row is also written to `staging_dir` with each sync's row key added, for the syncs joined
/// afterwards ([`write_new_rows`]).
///
/// Each of the query's output partitions is staged by its own task (into its own file, when
/// kept), so keying and encoding use every core; the files together are the staged table.
/// Skipping the staged file when no sync needs it saves writing and reading back every row:
/// 0.7 s of a 10 M-row first run.
pub async fn stage_model(
    ctx: &SessionContext,
    planned: &PlannedModel<'_>,
    staging_dir: &Path,
    direct: Vec<DirectDiff>,
    mut keep_staged: bool,
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
    let mut pass = stage_pass(
        ctx,
        planned,
        &folder,
        &staged_schema,
        key_indices.clone(),
        direct,
        keep_staged,
        true,
    )
    .await?;
    if !pass.checked_in_memory && !keep_staged {
        // The primary key check did not fit the memory limit, so a query checks it; that
        // query must read the very rows the syncs are diffed with (an export may land
        // meanwhile), so the model's rows are staged after all and every sync is diffed from
        // them.
        tracing::info!(model = %model.name, "staging the model's rows for the primary key check");
        pass = stage_pass(
            ctx,
            planned,
            &folder,
            &staged_schema,
            key_indices,
            Vec::new(),
            true,
            false,
        )
        .await?;
        keep_staged = true;
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
        return Err(DinmoError::NullPrimaryKey {
            model: model.name.clone(),
            key: key.clone(),
            rows: null_keys,
        });
    }
    let table = format!("__dinmo_staged_{}", model.name.replace('-', "_"));
    let context = format!("model `{}`: reading staged output", model.name);
    if keep_staged {
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
    /// New rows written to each directly diffed sync's pending file, by the sync's index.
    direct_rows: Vec<(usize, u64)>,
}

/// Runs the model's query once for [`stage_model`]: one task per output partition. Without
/// `check_in_memory` (a set that did not fit before), the primary key is left to the query.
#[allow(clippy::too_many_arguments)] // the pass's inputs, each used once; a struct would only name them again
async fn stage_pass(
    ctx: &SessionContext,
    planned: &PlannedModel<'_>,
    folder: &Path,
    staged_schema: &SchemaRef,
    key_indices: Vec<usize>,
    direct: Vec<DirectDiff>,
    keep_staged: bool,
    check_in_memory: bool,
) -> Result<StagePass> {
    let model = planned.model;
    let seen = KeySet::empty(
        &ctx.runtime_env().memory_pool,
        format!("model `{}`: primary key check", model.name),
    );
    let mut writers = Vec::new();
    let mut outputs = Vec::new();
    for diff in direct {
        let Some(target) = planned.syncs.get(diff.index) else {
            continue;
        };
        let (columns, schema) = pending_columns(&planned.schema, target.sync)?;
        let writer = LocalPartWriter::create_pending(&diff.pending, Arc::clone(&schema)).await?;
        if let Some(feed) = writer.feed() {
            outputs.push(DirectOutput {
                index: diff.index,
                columns,
                keys: diff.keys,
                schema,
                pending: diff.pending.clone(),
                feed,
            });
        }
        writers.push((diff.index, writer));
    }
    let job = Arc::new(StageJob {
        model: model.name.clone(),
        file: model.file.clone(),
        planned_schema: Arc::clone(&planned.schema),
        staged_schema: Arc::clone(staged_schema),
        key_indices,
        sync_ids: planned.syncs.iter().map(|s| s.sync.id.clone()).collect(),
        seen,
        seen_overflowed: std::sync::atomic::AtomicBool::new(!check_in_memory),
        outputs,
    });
    let streams = planned
        .frame
        .clone()
        .execute_stream_partitioned()
        .await
        .map_err(|source| job.query_error(source))?;
    let mut tasks = tokio::task::JoinSet::new();
    for (partition, stream) in streams.into_iter().enumerate() {
        let path = keep_staged.then(|| folder.join(format!("part-{partition:04}.parquet")));
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
        let (_, written) = writer.finish().await?;
        direct_rows.push((index, written));
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

/// Where one staging task sends a directly diffed sync's new rows.
#[derive(Debug)]
struct DirectOutput {
    index: usize,
    /// The model's columns that are the destination's fields, in the pending file's order.
    columns: Vec<usize>,
    keys: Option<Arc<FrozenKeySet>>,
    schema: SchemaRef,
    pending: PathBuf,
    feed: PartFeed,
}

/// What every staging task of one model shares.
#[derive(Debug)]
struct StageJob {
    model: String,
    file: PathBuf,
    planned_schema: SchemaRef,
    staged_schema: SchemaRef,
    key_indices: Vec<usize>,
    sync_ids: Vec<String>,
    /// Row keys seen so far (the first sync's, or the key of an unnamed sync), to find a
    /// primary key that repeats.
    seen: KeySet,
    /// The pool could not hold `seen`: it was emptied, and the query checks the key instead.
    seen_overflowed: std::sync::atomic::AtomicBool,
    /// The syncs whose new rows are written as the model runs.
    outputs: Vec<DirectOutput>,
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
            if index == 0 {
                repeated_keys += job.remember(&hashes);
            }
            for output in job.outputs.iter().filter(|o| o.index == index) {
                let new =
                    anti_join::unseen_rows(&batch, &output.columns, &hashes, output.keys.as_deref(), &output.schema)
                        .map_err(DinmoError::arrow(context()))?;
                if new.num_rows() > 0 && !output.feed.send(new).await {
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

/// What a 32-hex-digit key costs in a hash table: the string, its offset, and the table's
/// entry.
const KEY_BYTES_IN_MEMORY: u64 = 56;

/// A sync's snapshot, ready to join.
#[derive(Debug)]
pub struct Snapshot {
    /// One column of row keys ([`ROW_KEY_COLUMN`]) per way the parts store them: text for
    /// parts stored before manifest version 3, 16 bytes after.
    pub frames: Vec<DataFrame>,
    /// Keys in it (the rows of its parts).
    pub rows: u64,
}

impl Snapshot {
    /// The snapshot read from `parts` (`rows` keys in all).
    pub fn read(ctx: &SessionContext, parts: &[SnapshotPart], rows: u64) -> Result<Snapshot> {
        let mut frames = Vec::new();
        for encoding in [KeyEncoding::Hex, KeyEncoding::Binary] {
            let urls: Vec<&str> = parts
                .iter()
                .filter(|part| part.row_keys == encoding)
                .map(|part| part.url.as_str())
                .collect();
            if !urls.is_empty() {
                frames.push(key_frame(ctx, &urls, encoding)?);
            }
        }
        Ok(Snapshot { frames, rows })
    }

    /// Every key as hex text, in one frame (what the staged rows are joined with).
    fn hex_frame(&self, ctx: &SessionContext) -> Result<DataFrame> {
        let context = "reading the snapshot";
        let mut hex = Vec::with_capacity(self.frames.len());
        for frame in &self.frames {
            let key = match frame.schema().field(0).data_type() {
                DataType::FixedSizeBinary(_) => hex_key(ROW_KEY_COLUMN),
                _ => col(ROW_KEY_COLUMN),
            };
            let frame = DataFrame::new(ctx.state(), frame.clone().into_unoptimized_plan())
                .select(vec![key.alias(ROW_KEY_COLUMN)])
                .map_err(DinmoError::engine(context))?;
            hex.push(frame);
        }
        let mut frames = hex.into_iter();
        let Some(first) = frames.next() else {
            let schema = key_part_schema(KeyEncoding::Hex);
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(DinmoError::engine(context))?;
            return ctx.read_table(Arc::new(empty)).map_err(DinmoError::engine(context));
        };
        frames.try_fold(first, |all, frame| {
            all.union(frame).map_err(DinmoError::engine(context))
        })
    }
}

/// The anti-join's strategy for a hash table of `bytes`: a hash join, unless the session has a
/// memory limit and the table would take more than half of it, in which case a sort-merge
/// join, which spills where a hash table cannot.
async fn choose_join(ctx: &SessionContext, bytes: u64) -> Result<()> {
    use datafusion::execution::memory_pool::MemoryLimit;
    let prefer_hash = match ctx.runtime_env().memory_pool.memory_limit() {
        MemoryLimit::Finite(limit) => bytes <= (limit / 2) as u64,
        MemoryLimit::Infinite | MemoryLimit::Unknown => true,
    };
    if !prefer_hash {
        tracing::info!(
            table_bytes = bytes,
            "the snapshot's keys would take over half the memory limit: the anti-join sorts (and spills) instead of hashing"
        );
    }
    ctx.sql(&format!("SET datafusion.optimizer.prefer_hash_join = {prefer_hash}"))
        .await
        .map_err(DinmoError::engine("choosing the anti-join's strategy"))?;
    Ok(())
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
    Err(DinmoError::DuplicatePrimaryKey {
        model: model.to_string(),
        key: key.join(", "),
        examples: examples.join("; "),
    })
}

/// Parts that store their row keys as `encoding` says, as a one-column table of them.
fn key_frame(ctx: &SessionContext, part_urls: &[&str], encoding: KeyEncoding) -> Result<DataFrame> {
    let context = "reading the snapshot";
    let urls = part_urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(DinmoError::engine(context))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(key_part_schema(encoding));
    let table = ListingTable::try_new(config).map_err(DinmoError::engine(context))?;
    ctx.read_table(Arc::new(table)).map_err(DinmoError::engine(context))
}

/// A key column of 16 bytes (staged, or in a snapshot part) as row keys (32 hex digits), in
/// DataFusion.
fn hex_key(key: &str) -> datafusion::prelude::Expr {
    datafusion::functions::expr_fn::encode(col(key), datafusion::prelude::lit("hex"))
}

/// New rows of one sync, in DataFusion: staged rows whose key is not in the snapshot,
/// projected to the destination's fields plus [`ROW_KEY_COLUMN`]. The way when a key set
/// does not fit the memory limit (see [`write_new_rows`]).
pub async fn new_rows(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    sync: &Sync,
    snapshot: Option<Snapshot>,
) -> Result<DataFrame> {
    let context = format!("sync `{}`: diff", sync.id);
    if let Some(snapshot) = &snapshot {
        choose_join(ctx, snapshot.rows.saturating_mul(KEY_BYTES_IN_MEMORY)).await?;
    }
    // Frames plan with the session's settings of when they were made: both sides are made (or
    // made again) after the join's strategy is set, or the setting would not reach the join.
    let key = key_column(sync_index);
    let hex = format!("{key}_hex");
    let staged_frame = ctx
        .table(staged.table.as_str())
        .await
        .and_then(|frame| frame.with_column(&hex, hex_key(&key)))
        .map_err(DinmoError::engine(context.clone()))?;
    // The snapshot's keys are the hash table (one narrow column) and the staged rows stream
    // past it: memory follows the snapshot's key count, not the width of the model's rows.
    let new = match snapshot {
        Some(snapshot) => snapshot
            .hex_frame(ctx)?
            .join(
                staged_frame,
                JoinType::RightAnti,
                &[ROW_KEY_COLUMN],
                &[hex.as_str()],
                None,
            )
            .map_err(DinmoError::engine(context.clone()))?,
        None => staged_frame,
    };
    new.select(projection(sync, col(hex.as_str())))
        .map_err(DinmoError::engine(context))
}

/// The destination's fields, then `key` as [`ROW_KEY_COLUMN`].
fn projection(sync: &Sync, key: datafusion::prelude::Expr) -> Vec<datafusion::prelude::Expr> {
    let mut projection: Vec<_> = sync.mapping.iter().map(|m| ident(&m.column).alias(&m.field)).collect();
    projection.push(key.alias(ROW_KEY_COLUMN));
    projection
}

/// Writes the new rows of one sync from the staged rows (staged with `keep_staged`) to a
/// local pending file at `path`; returns how many there are.
///
/// With the snapshot's keys in memory, the staged rows stream past them; otherwise DataFusion
/// joins ([`new_rows`]), sorting and spilling when the keys would not fit a hash table.
pub async fn write_new_rows(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    sync: &Sync,
    keys: SnapshotKeys,
    path: &Path,
) -> Result<u64> {
    let context = format!("sync `{}`: new rows", sync.id);
    let keys = match keys {
        SnapshotKeys::Later(snapshot) => snapshot_keys(ctx, &sync.id, Some(snapshot), false).await?,
        keys => keys,
    };
    let keys = match keys {
        SnapshotKeys::Everything => None,
        SnapshotKeys::InMemory(keys) => Some(keys),
        SnapshotKeys::Later(snapshot) | SnapshotKeys::Join(snapshot) => {
            let frame = new_rows(ctx, staged, sync_index, sync, Some(snapshot)).await?;
            return write_frame(frame, path, &context).await;
        }
    };
    let rows = ctx
        .table(staged.table.as_str())
        .await
        .and_then(|frame| frame.select(projection(sync, col(key_column(sync_index)))))
        .map_err(DinmoError::engine(context.clone()))?;
    anti_join::write_unseen(rows, keys, path, &context).await
}

/// Streams `frame` into a local pending file; returns the row count.
pub async fn write_frame(frame: DataFrame, path: &Path, context: &str) -> Result<u64> {
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut stream = frame.execute_stream().await.map_err(DinmoError::engine(context))?;
    let mut writer = LocalPartWriter::create_pending(path, schema).await?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch.map_err(DinmoError::engine(context))?).await?;
    }
    Ok(writer.finish().await?.1)
}

/// Reads back the keys of a batch (for tests and reports).
pub fn keys_of(batch: &RecordBatch) -> Vec<String> {
    batch
        .column_by_name(ROW_KEY_COLUMN)
        .map(|keys| {
            keys.as_string::<i32>()
                .iter()
                .map(|k| k.unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use datafusion::datasource::MemTable;

    use super::*;
    use crate::project::MappedField;

    fn sync() -> Sync {
        Sync {
            id: "m.d".into(),
            model: "m".into(),
            destination: "d".into(),
            mapping: vec![
                MappedField {
                    field: "AccountNumber".into(),
                    column: "account".into(),
                    position: None,
                },
                MappedField {
                    field: "Quantity".into(),
                    column: "qty".into(),
                    position: None,
                },
            ],
            mapping_position: None,
            max_new_rows: None,
            allow_billing_and_revenue: false,
            position: None,
        }
    }

    fn hex(keys: &[u128]) -> Vec<String> {
        keys.iter().map(|k| format!("{k:032x}")).collect()
    }

    /// A staged table whose rows have the keys of hashes `keys`.
    async fn staged_with(ctx: &SessionContext, keys: &[u128]) -> StagedModel {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, false),
            Field::new(key_column(0), DataType::FixedSizeBinary(16), false),
        ]));
        let accounts: Vec<String> = keys.iter().map(|k| format!("acct-{k}")).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(accounts)),
                Arc::new(Int64Array::from_iter_values(0..keys.len() as i64)),
                binary_keys(keys).unwrap(),
            ],
        )
        .unwrap();
        // Two batches, so the join sees a stream rather than one array.
        let (first, second) = (batch.slice(0, 2), batch.slice(2, batch.num_rows() - 2));
        let table = MemTable::try_new(schema, vec![vec![first, second]]).unwrap();
        ctx.register_table("staged", Arc::new(table)).unwrap();
        StagedModel {
            table: "staged".into(),
            path: PathBuf::new(),
            rows: keys.len() as u64,
            direct_rows: Vec::new(),
            discarding: Default::default(),
        }
    }

    /// A snapshot holding the row keys of hashes `keys`: the first as hex text (a part stored
    /// before manifest version 3), the rest as 16 bytes, so both are read side by side.
    fn snapshot_of(ctx: &SessionContext, keys: &[u128]) -> Snapshot {
        let (old, new) = keys.split_at(keys.len().min(1));
        let frame = |encoding: KeyEncoding, column: arrow::array::ArrayRef| {
            let schema = key_part_schema(encoding);
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
            ctx.read_table(Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
                .unwrap()
        };
        Snapshot {
            frames: vec![
                frame(KeyEncoding::Hex, Arc::new(StringArray::from(hex(old)))),
                frame(KeyEncoding::Binary, binary_keys(new).unwrap()),
            ],
            rows: keys.len() as u64,
        }
    }

    /// The new rows' keys and columns, found both ways: in DataFusion and with a key set
    /// (which must agree).
    async fn new_keys(
        ctx: &SessionContext,
        staged: &StagedModel,
        snapshot: impl Fn() -> Option<Snapshot>,
    ) -> (Vec<String>, Vec<String>) {
        let frame = new_rows(ctx, staged, 0, &sync(), snapshot()).await.unwrap();
        let batches = frame.collect().await.unwrap();
        let mut keys: Vec<String> = batches.iter().flat_map(keys_of).collect();
        keys.sort();
        let columns: Vec<String> = batches
            .first()
            .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
            .unwrap_or_default();

        let folder = tempfile::tempdir().unwrap();
        let pending = folder.path().join("pending.parquet");
        let loaded = snapshot_keys(ctx, "m.d", snapshot(), false).await.unwrap();
        let written = write_new_rows(ctx, staged, 0, &sync(), loaded, &pending).await.unwrap();
        let file = std::fs::File::open(&pending).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let mut from_set: Vec<String> = batches.iter().flat_map(keys_of).collect();
        from_set.sort();
        assert_eq!(from_set, keys, "the key set and DataFusion disagree");
        assert_eq!(written, keys.len() as u64);
        if let Some(batch) = batches.first() {
            let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            assert_eq!(names, columns);
        }
        (keys, columns)
    }

    #[tokio::test]
    async fn keeps_only_rows_whose_key_is_not_in_the_snapshot() {
        let ctx = SessionContext::new();
        let staged = staged_with(&ctx, &[1, 2, 3, u128::MAX]).await;
        let (keys, columns) = new_keys(&ctx, &staged, || Some(snapshot_of(&ctx, &[2, u128::MAX, 9]))).await;
        assert_eq!(keys, hex(&[1, 3]));
        assert_eq!(columns, ["AccountNumber", "Quantity", ROW_KEY_COLUMN]);
    }

    #[tokio::test]
    async fn an_empty_snapshot_keeps_everything_and_a_full_one_nothing() {
        let ctx = SessionContext::new();
        let staged = staged_with(&ctx, &[1, 2, 3]).await;
        let empty = || {
            Some(Snapshot {
                frames: Vec::new(),
                rows: 0,
            })
        };
        assert_eq!(new_keys(&ctx, &staged, empty).await.0, hex(&[1, 2, 3]));
        assert!(
            new_keys(&ctx, &staged, || Some(snapshot_of(&ctx, &[1, 2, 3])))
                .await
                .0
                .is_empty()
        );
        // --full-refresh: no snapshot at all.
        assert_eq!(new_keys(&ctx, &staged, || None).await.0, hex(&[1, 2, 3]));
    }
}
