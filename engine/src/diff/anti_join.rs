//! The three-way split on a [`FrozenKeySet`] of the snapshot's keys and values: the
//! snapshot's keys are read into the set with each row's value (every part at once, one task
//! per partition of the scan; then the corrections, in order), then rows stream past it (as
//! the model is staged, or from the staged file) and each goes to the pending file when its key
//! is not in the set (new), to the changed file when its key is there with another value
//! (changed), or nowhere (unchanged); their keys are written out as hex. When the set does not
//! fit, the snapshot's value comes with each row from a join instead ([`Known::Joined`]).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use datafusion::prelude::DataFrame;
use dinmo_connectors::ROW_KEY_COLUMN;
use futures::StreamExt;
use tokio::task::JoinSet;

use super::key_set::{FrozenKeySet, KeySet, OutOfMemory, Seen, stored_value};
use crate::error::{DinmoError, Result};
use crate::state::row_key::{binary_key, each_hash, hex_keys};
use crate::state::values::{
    CORRECTS_COLUMN, DELETED_VALUE, VALUE_COLUMN, model_rows_of, stored_value_hashes, value_hashes,
};
use crate::state::{LocalPartWriter, PartFeed};

/// The local files a sync's diff writes: its new rows (the pending file, what is sent) and
/// its changed rows (synced before, with another value now). Both have the destination's
/// fields, then the row key as hex.
#[derive(Debug, Clone)]
pub struct DiffFiles {
    /// The new rows.
    pub pending: PathBuf,
    /// The changed rows.
    pub changed: PathBuf,
}

/// How many rows a sync's diff found in each class it writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffCounts {
    /// Rows whose key the snapshot lacks.
    pub new_rows: u64,
    /// Rows whose key the snapshot holds with another value.
    pub changed_rows: u64,
}

/// What a sync's diff found: how many rows are new and changed (their files written), and the
/// keys of the snapshot's rows the model no longer produces (gone; rows deleted by a
/// correction are not in the snapshot any more, and not gone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// New and changed rows.
    pub counts: DiffCounts,
    /// The gone rows' keys.
    pub gone: Vec<u128>,
}

/// The snapshot's keys and values in memory, with what the split found of them.
#[derive(Debug)]
pub struct SnapshotSet {
    /// The keys and values.
    pub(super) keys: FrozenKeySet<Seen>,
    /// Keys of rows not deleted.
    pub(super) live: u64,
    /// Rows of the model whose key is one of those (counted by the split).
    pub(super) matched: std::sync::atomic::AtomicU64,
}

impl SnapshotSet {
    /// Adds the rows of `stored` (the snapshot's value for each row's key) that match a row
    /// not deleted to the count of matched rows.
    fn count_matched(&self, stored: &[Option<u64>]) {
        let deleted = stored_value(DELETED_VALUE);
        let matched = stored.iter().filter(|v| v.is_some_and(|v| v != deleted)).count();
        self.matched
            .fetch_add(matched as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The keys of rows not deleted that the split did not see: `None` when the set was not
    /// marking the keys it found and some are gone (the model's keys must be marked again,
    /// [`super::join::mark_model_keys`]).
    pub(super) fn gone(&self) -> Option<Vec<u128>> {
        if !self.keys.marking() {
            let matched = self.matched.load(std::sync::atomic::Ordering::Relaxed);
            return (matched >= self.live).then(Vec::new);
        }
        Some(
            self.keys
                .unseen()
                .filter(|(_, value)| *value != stored_value(DELETED_VALUE))
                .map(|(key, _)| key)
                .collect(),
        )
    }
}

/// The row keys and values of a batch of a snapshot frame (see
/// [`Snapshot::frames`](super::Snapshot)): rows that correct another row are left out, and so
/// is a stored key that is not 32 hex digits (or 16 bytes), which matches no staged key,
/// exactly as in a join on the text.
pub(super) fn keys_and_values(batch: RecordBatch) -> std::result::Result<(Vec<u128>, Vec<u64>), ArrowError> {
    let batch = model_rows_of(batch)?;
    let keys = batch
        .column_by_name(ROW_KEY_COLUMN)
        .ok_or_else(|| ArrowError::SchemaError(format!("a snapshot part has no `{ROW_KEY_COLUMN}` column")))?;
    let values: Vec<u64> = match batch.column_by_name(VALUE_COLUMN) {
        Some(values) => values
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| ArrowError::SchemaError(format!("`{VALUE_COLUMN}` is {}", values.data_type())))?
            .values()
            .to_vec(),
        None => stored_value_hashes(&batch)?,
    };
    let mut pairs = (Vec::with_capacity(values.len()), Vec::with_capacity(values.len()));
    let mut row = 0;
    each_hash(keys, |hash| {
        if let Some(hash) = hash {
            pairs.0.push(hash);
            pairs.1.push(values[row]);
        }
        row += 1;
    })?;
    Ok(pairs)
}

/// Calls `each` with the corrected row's key and its new value for every correcting row of
/// `batch` (a frame of [`Snapshot::correcting`](super::Snapshot)).
pub(super) fn each_correction(
    batch: &RecordBatch,
    mut each: impl FnMut(u128, u64),
) -> std::result::Result<(), ArrowError> {
    let (Some(corrects), Some(values)) = (
        batch.column_by_name(CORRECTS_COLUMN),
        batch.column_by_name(VALUE_COLUMN),
    ) else {
        return Err(ArrowError::SchemaError(format!(
            "a correcting part lacks `{CORRECTS_COLUMN}` or `{VALUE_COLUMN}`"
        )));
    };
    let values = values
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| ArrowError::SchemaError(format!("`{VALUE_COLUMN}` is {}", values.data_type())))?;
    let mut row = 0;
    each_hash(corrects, |key| {
        if let Some(key) = key {
            each(key, values.value(row));
        }
        row += 1;
    })
}

/// Reads every key and value of `snapshot` (frames of [`Snapshot::frames`](super::Snapshot))
/// into `set`, then applies `corrections` in order. `None` when the pool refused to let the
/// set grow (the parts held more keys than their manifests say): the caller joins in
/// DataFusion instead.
pub(super) async fn fill(
    set: KeySet<Seen>,
    snapshot: &[DataFrame],
    corrections: &[(u128, u64)],
    mark_seen: bool,
    context: &str,
) -> Result<Option<SnapshotSet>> {
    let set = Arc::new(set);
    let mut streams = Vec::new();
    for frame in snapshot {
        streams.extend(
            frame
                .clone()
                .execute_stream_partitioned()
                .await
                .map_err(DinmoError::engine(context))?,
        );
    }
    let mut tasks = JoinSet::new();
    for mut stream in streams {
        let set = Arc::clone(&set);
        let context = context.to_string();
        tasks.spawn(async move {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(DinmoError::engine(context.as_str()))?;
                let (keys, values) = keys_and_values(batch).map_err(DinmoError::arrow(context.as_str()))?;
                if set.insert_with(&keys, &values) == Err(OutOfMemory) {
                    return Ok(false);
                }
            }
            Ok::<bool, DinmoError>(true)
        });
    }
    let mut fitted = true;
    while let Some(done) = tasks.join_next().await {
        fitted &= done.map_err(|source| DinmoError::Interrupted {
            task: context.to_string(),
            source,
        })??;
    }
    let set = Arc::try_unwrap(set).map_err(|_| DinmoError::Arrow {
        context: context.to_string(),
        source: ArrowError::ComputeError("the snapshot's key set is still shared after its tasks ended".into()),
    })?;
    // A correction replaces the value of a key the parts hold; one of a key they do not
    // (its row was rolled back since) adds nothing.
    if fitted {
        let frozen_keys = set;
        let (keys, values): (Vec<u128>, Vec<u64>) = corrections.iter().copied().unzip();
        if frozen_keys.insert_with(&keys, &values) == Err(OutOfMemory) {
            return Ok(None);
        }
        let mut keys = frozen_keys.freeze();
        if !mark_seen {
            keys = keys.without_marking();
        }
        let deleted: std::collections::HashSet<u128> = corrections
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| keys.peek(*key) == Some(stored_value(DELETED_VALUE)))
            .collect();
        let live = keys.keys() - deleted.len() as u64;
        return Ok(Some(SnapshotSet {
            keys,
            live,
            matched: Default::default(),
        }));
    }
    Ok(None)
}

/// What the diff knows of the snapshot's value of each row's key.
#[derive(Clone, Copy)]
pub(super) enum Known<'a> {
    /// No snapshot: every row is new.
    Nothing,
    /// The snapshot's keys and values in a set.
    InMemory(&'a SnapshotSet),
    /// The same, its value for each row's key already looked up.
    LookedUp(&'a SnapshotSet, &'a [Option<u64>]),
    /// The value a join found for each row, null where the snapshot lacks its key.
    Joined(&'a UInt64Array),
}

/// Streams `rows` (the staged rows projected to the destination's fields, then their key's 16
/// bytes, then, with `joined`, the snapshot's value for the key, null where it has none) into
/// the pending and changed files of `files`; returns how many rows each got. Without
/// `snapshot` and `joined`, every row is new.
pub(super) async fn write_split(
    rows: DataFrame,
    snapshot: Option<Arc<SnapshotSet>>,
    joined: bool,
    files: &DiffFiles,
    context: &str,
) -> Result<DiffCounts> {
    let fields = rows.schema().as_arrow().fields().len() - if joined { 2 } else { 1 };
    let columns: Arc<[usize]> = (0..fields).collect();
    let names: Arc<[String]> = rows.schema().as_arrow().fields()[..fields]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let schema = pending_schema(rows.schema().as_arrow(), &columns);
    let streams = rows
        .execute_stream_partitioned()
        .await
        .map_err(DinmoError::engine(context))?;
    let outputs = SplitWriters::create(files, &schema).await?;
    let mut tasks = JoinSet::new();
    for mut stream in streams {
        let Some(feeds) = outputs.feeds() else { break };
        let (snapshot, context, schema) = (snapshot.clone(), context.to_string(), Arc::clone(&schema));
        let (columns, names) = (Arc::clone(&columns), Arc::clone(&names));
        tasks.spawn(async move {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(DinmoError::engine(context.as_str()))?;
                let hashes = staged_hashes(&batch, fields).map_err(DinmoError::arrow(context.as_str()))?;
                let known = match (&snapshot, joined) {
                    (_, true) => Known::Joined(batch.column(fields + 1).as_primitive_opt::<UInt64Type>().ok_or_else(
                        || DinmoError::Arrow {
                            context: context.clone(),
                            source: ArrowError::SchemaError("the joined snapshot values are not UInt64".into()),
                        },
                    )?),
                    (Some(keys), false) => Known::InMemory(keys),
                    (None, false) => Known::Nothing,
                };
                let split = split_rows(&batch, &columns, &names, &hashes, known, &schema)
                    .map_err(DinmoError::arrow(context.as_str()))?;
                if !feeds.send(split).await {
                    break; // an encoder stopped; finishing the files says why
                }
            }
            Ok::<(), DinmoError>(())
        });
    }
    let mut scanned = Ok(());
    while let Some(done) = tasks.join_next().await {
        let done = done
            .map_err(|source| DinmoError::Interrupted {
                task: context.to_string(),
                source,
            })
            .and_then(|r| r);
        if scanned.is_ok() && done.is_err() {
            // The other partitions' work is wasted, and their streams may wait on the
            // failed one's: stop them.
            tasks.abort_all();
            scanned = done;
        }
    }
    // Every feed is gone with its task: the files can be finished.
    let written = outputs.finish().await;
    scanned?;
    written
}

/// The hashes of the staged keys (16 bytes each) in column `column` of `batch`.
pub(super) fn staged_hashes(batch: &RecordBatch, column: usize) -> std::result::Result<Vec<u128>, ArrowError> {
    let keys = batch
        .column(column)
        .as_fixed_size_binary_opt()
        .filter(|keys| keys.value_length() == 16 && keys.null_count() == 0)
        .ok_or_else(|| {
            ArrowError::InvalidArgumentError(format!(
                "the staged row keys are {}, not 16 bytes each",
                batch.column(column).data_type()
            ))
        })?;
    Ok(keys.iter().filter_map(|key| key.and_then(binary_key)).collect())
}

/// A pending file's schema: the fields `columns` of `schema`, then the row key as text.
pub(super) fn pending_schema(schema: &Schema, columns: &[usize]) -> SchemaRef {
    let mut fields: Vec<Field> = columns.iter().map(|&i| schema.field(i).clone()).collect();
    fields.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// One batch's rows split: the new ones and the changed ones, each as the pending schema.
#[derive(Debug)]
pub(super) struct Split {
    pub new: RecordBatch,
    pub changed: RecordBatch,
}

/// The rows of `batch` split by their key (`hashes`, one per row) against what is `known` of
/// the snapshot, as `schema`: the columns `columns` of `batch` (the destination's fields,
/// named `names`), then the key as hex. A row is new when the snapshot lacks its key, changed
/// when it holds the key with another value; the rest are unchanged and left out.
///
/// The keys are in hand before they are looked up, in a loop of lookups alone: the lookups
/// miss the cache, and only a short loop lets the processor have many of them under way at
/// once. Parsing and looking up in one loop took five times as long (measured on 11 M keys).
/// Values are hashed only for a batch with a key the snapshot holds.
pub(super) fn split_rows(
    batch: &RecordBatch,
    columns: &[usize],
    names: &[&str],
    hashes: &[u128],
    known: Known<'_>,
    schema: &SchemaRef,
) -> std::result::Result<Split, ArrowError> {
    if hashes.len() != batch.num_rows() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{} row keys for {} rows",
            hashes.len(),
            batch.num_rows()
        )));
    }
    let stored: Vec<Option<u64>> = match known {
        Known::Nothing => {
            let new = with_keys(batch.project(columns)?, hashes, schema)?;
            let changed = RecordBatch::new_empty(Arc::clone(schema));
            return Ok(Split { new, changed });
        }
        Known::InMemory(snapshot) => {
            let stored: Vec<Option<u64>> = hashes.iter().map(|&hash| snapshot.keys.see(hash)).collect();
            snapshot.count_matched(&stored);
            stored
        }
        Known::LookedUp(snapshot, values) => {
            snapshot.count_matched(values);
            values.to_vec()
        }
        Known::Joined(values) => values.iter().map(|v| v.map(stored_value)).collect(),
    };
    let new = BooleanArray::new(
        BooleanBuffer::collect_bool(hashes.len(), |row| stored[row].is_none()),
        None,
    );
    let changed = if new.true_count() == hashes.len() {
        BooleanArray::new(BooleanBuffer::new_unset(hashes.len()), None)
    } else {
        let values = value_hashes(batch, columns, names)?;
        BooleanArray::new(
            BooleanBuffer::collect_bool(hashes.len(), |row| {
                stored[row].is_some_and(|stored| stored != stored_value(values[row]))
            }),
            None,
        )
    };
    let projected = batch.project(columns)?;
    let pick = |mask: &BooleanArray| -> std::result::Result<RecordBatch, ArrowError> {
        if mask.true_count() == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(schema)));
        }
        let kept: Vec<u128> = hashes
            .iter()
            .zip(mask.values().iter())
            .filter(|(_, k)| *k)
            .map(|(h, _)| *h)
            .collect();
        with_keys(filter_record_batch(&projected, mask)?, &kept, schema)
    };
    Ok(Split {
        new: pick(&new)?,
        changed: pick(&changed)?,
    })
}

/// `fields` with the row keys of `hashes` as hex after them, as `schema`.
fn with_keys(fields: RecordBatch, hashes: &[u128], schema: &SchemaRef) -> std::result::Result<RecordBatch, ArrowError> {
    let mut columns = fields.columns().to_vec();
    columns.push(hex_keys(hashes)?);
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// The pending and changed files of one sync being written.
#[derive(Debug)]
pub(super) struct SplitWriters {
    new: LocalPartWriter,
    changed: LocalPartWriter,
}

/// Feeds of a sync's pending and changed files, for one task.
#[derive(Debug, Clone)]
pub(super) struct SplitFeeds {
    new: PartFeed,
    changed: PartFeed,
}

impl SplitFeeds {
    /// Appends a split batch; `false` when an encoder has stopped (finishing says why).
    pub(super) async fn send(&self, split: Split) -> bool {
        (split.new.num_rows() == 0 || self.new.send(split.new).await)
            && (split.changed.num_rows() == 0 || self.changed.send(split.changed).await)
    }
}

impl SplitWriters {
    /// Creates the two files of `files` for batches of `schema`.
    pub(super) async fn create(files: &DiffFiles, schema: &SchemaRef) -> Result<Self> {
        Ok(SplitWriters {
            new: LocalPartWriter::create_pending(&files.pending, Arc::clone(schema)).await?,
            changed: LocalPartWriter::create_pending(&files.changed, Arc::clone(schema)).await?,
        })
    }

    /// A feed for one more task; `None` once an encoder stopped.
    pub(super) fn feeds(&self) -> Option<SplitFeeds> {
        Some(SplitFeeds {
            new: self.new.feed()?,
            changed: self.changed.feed()?,
        })
    }

    /// Finishes both files (every feed must be gone); the rows each got.
    pub(super) async fn finish(self) -> Result<DiffCounts> {
        let new = self.new.finish().await;
        let changed = self.changed.finish().await;
        Ok(DiffCounts {
            new_rows: new?.1,
            changed_rows: changed?.1,
        })
    }
}
