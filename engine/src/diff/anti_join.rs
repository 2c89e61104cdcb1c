//! The anti-join on a [`FrozenKeySet`]: the snapshot's keys are read into the set (every
//! part at once, one task per partition of the scan), then rows stream past it (as the model
//! is staged, or from the staged file) and those whose key is not in it go to the pending
//! file, their keys written out as hex.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use tokio::task::JoinSet;

use super::key_set::{FrozenKeySet, KeySet, OutOfMemory};
use crate::error::{DinmoError, Result};
use crate::state::LocalPartWriter;
use crate::state::row_key::{binary_key, each_hash, hex_keys};

/// Reads every key of `snapshot` (one-column frames of row keys, as text or bytes) into
/// `set`. `None` when the pool refused to let the set grow (the parts held more keys than
/// their manifests say): the caller joins in DataFusion instead.
pub(super) async fn fill(set: KeySet, snapshot: &[DataFrame], context: &str) -> Result<Option<FrozenKeySet>> {
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
            let mut hashes = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(DinmoError::engine(context.as_str()))?;
                hashes.clear();
                // A stored key that is not 32 hex digits (or 16 bytes) matches no staged key,
                // exactly as in a join on the text: it is left out.
                each_hash(batch.column(0), |hash| hashes.extend(hash)).map_err(DinmoError::arrow(context.as_str()))?;
                if set.insert(&hashes) == Err(OutOfMemory) {
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
    Ok(fitted.then(|| set.freeze()))
}

/// Streams `rows` (the staged rows, projected, their key's 16 bytes in the last column) into
/// a pending file at `path`, keeping those whose key is not in `snapshot` (all of them
/// without one) with the key as hex; returns how many it kept.
pub(super) async fn write_unseen(
    rows: DataFrame,
    snapshot: Option<Arc<FrozenKeySet>>,
    path: &Path,
    context: &str,
) -> Result<u64> {
    let mut fields: Vec<Arc<Field>> = rows.schema().as_arrow().fields().iter().cloned().collect();
    if let Some(key) = fields.last_mut() {
        *key = Arc::new(Field::new(key.name(), DataType::Utf8, false));
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let streams = rows
        .execute_stream_partitioned()
        .await
        .map_err(DinmoError::engine(context))?;
    let writer = LocalPartWriter::create_pending(path, Arc::clone(&schema)).await?;
    let mut tasks = JoinSet::new();
    for mut stream in streams {
        let Some(feed) = writer.feed() else { break };
        let (snapshot, context, schema) = (snapshot.clone(), context.to_string(), Arc::clone(&schema));
        tasks.spawn(async move {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(DinmoError::engine(context.as_str()))?;
                let unseen =
                    unseen(&batch, snapshot.as_deref(), &schema).map_err(DinmoError::arrow(context.as_str()))?;
                if unseen.num_rows() > 0 && !feed.send(unseen).await {
                    break; // the encoder stopped; finishing the file says why
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
        if scanned.is_ok() {
            scanned = done;
        }
    }
    // Every feed is gone with its task: the file can be finished.
    let written = writer.finish().await;
    scanned?;
    Ok(written?.1)
}

/// The rows of `batch` whose key (the 16 bytes in its last column) is not in `snapshot`,
/// as `schema` (the key as hex).
fn unseen(
    batch: &RecordBatch,
    snapshot: Option<&FrozenKeySet>,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    let last = batch.num_columns() - 1;
    let keys = batch
        .column(last)
        .as_fixed_size_binary_opt()
        .filter(|keys| keys.value_length() == 16 && keys.null_count() == 0)
        .ok_or_else(|| {
            ArrowError::InvalidArgumentError(format!(
                "the staged row keys are {}, not 16 bytes each",
                batch.column(last).data_type()
            ))
        })?;
    let hashes: Vec<u128> = keys.iter().filter_map(|key| key.and_then(binary_key)).collect();
    let columns: Vec<usize> = (0..last).collect();
    unseen_rows(batch, &columns, &hashes, snapshot, schema)
}

/// The rows of `batch` whose key (`hashes`, one per row) is not in `snapshot` (all of them
/// without one), as `schema`: the columns `columns` of `batch`, then the key as hex.
///
/// The keys are in hand before they are looked up, in a loop of lookups alone: the lookups
/// miss the cache, and only a short loop lets the processor have many of them under way at
/// once. Parsing and looking up in one loop took five times as long (measured on 11 M keys).
pub(super) fn unseen_rows(
    batch: &RecordBatch,
    columns: &[usize],
    hashes: &[u128],
    snapshot: Option<&FrozenKeySet>,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    if hashes.len() != batch.num_rows() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{} row keys for {} rows",
            hashes.len(),
            batch.num_rows()
        )));
    }
    let projected = batch.project(columns)?;
    let (mut columns, keys) = match snapshot {
        Some(snapshot) => {
            let keep = BooleanArray::new(
                BooleanBuffer::collect_bool(hashes.len(), |row| !snapshot.contains(hashes[row])),
                None,
            );
            let kept: Vec<u128> = hashes
                .iter()
                .zip(keep.values().iter())
                .filter(|(_, k)| *k)
                .map(|(h, _)| *h)
                .collect();
            (
                filter_record_batch(&projected, &keep)?.columns().to_vec(),
                hex_keys(&kept)?,
            )
        }
        None => (projected.columns().to_vec(), hex_keys(hashes)?),
    };
    columns.push(keys);
    RecordBatch::try_new(Arc::clone(schema), columns)
}
