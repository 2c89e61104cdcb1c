//! Diffing a sync from the model's staged rows, after the model ran: against its snapshot's
//! keys in memory, or by a DataFusion anti-join when they do not fit.

use std::path::Path;

use datafusion::common::JoinType;
use datafusion::prelude::{DataFrame, SessionContext, col, ident, lit};
use dinmo_connectors::ROW_KEY_COLUMN;

use super::anti_join;
use super::anti_join::{Diff, DiffFiles};
use super::key_set::{self, Seen};
use super::snapshot::{SnapshotKeys, When, snapshot_keys};
use super::staging::{StagedModel, key_column};
use crate::error::{DinmoError, Result};
use crate::project::Sync;
use crate::state::values::{DELETED_VALUE, VALUE_COLUMN};

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

/// The staged rows of one sync projected to the destination's fields and its key (16 bytes),
/// each with the snapshot's value for its key (null where the snapshot lacks it), joined in
/// DataFusion with `known` (the snapshot's keys and values, [`Snapshot::key_values`]): the way
/// when the snapshot's keys do not fit the memory limit (see [`write_new_rows`]).
async fn joined_rows(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    sync: &Sync,
    known: DataFrame,
) -> Result<DataFrame> {
    let context = format!("sync `{}`: diff", sync.id);
    let key = key_column(sync_index);
    // Only the destination's fields and the key go into the join (a sort-merge join sorts
    // whole rows: the narrower, the less it needs).
    let staged_frame = ctx
        .table(staged.table.as_str())
        .await
        .and_then(|frame| frame.select(projection(sync, ident(&key))))
        .map_err(DinmoError::engine(context.clone()))?;
    // The snapshot's keys are the hash table (two narrow columns) and the staged rows stream
    // past it: memory follows the snapshot's key count, not the width of the model's rows.
    let mut columns: Vec<_> = sync.mapping.iter().map(|m| ident(&m.field)).collect();
    columns.push(col(ROW_KEY_COLUMN));
    columns.push(col(SNAPSHOT_VALUE));
    known
        .join(staged_frame, JoinType::Right, &[SNAPSHOT_KEY], &[ROW_KEY_COLUMN], None)
        .and_then(|joined| joined.select(columns))
        .map_err(DinmoError::engine(context))
}

/// The keys of `known` (the snapshot's keys and values) the staged rows of one sync lack, but
/// those of deleted rows: its gone rows, by an anti-join in DataFusion.
async fn gone_by_join(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    known: DataFrame,
) -> Result<Vec<u128>> {
    let context = "finding the gone rows";
    let key = key_column(sync_index);
    let staged_keys = ctx
        .table(staged.table.as_str())
        .await
        .and_then(|frame| frame.select(vec![ident(&key)]))
        .map_err(DinmoError::engine(context))?;
    let gone = known
        .filter(col(SNAPSHOT_VALUE).not_eq(lit(stored_value_of_deleted())))
        .and_then(|frame| frame.join(staged_keys, JoinType::LeftAnti, &[SNAPSHOT_KEY], &[key.as_str()], None))
        .and_then(|frame| frame.select(vec![col(SNAPSHOT_KEY)]))
        .map_err(DinmoError::engine(context))?
        .collect()
        .await
        .map_err(DinmoError::engine(context))?;
    let mut keys = Vec::new();
    for batch in gone {
        crate::state::row_key::each_hash(batch.column(0), |h| keys.extend(h)).map_err(DinmoError::arrow(context))?;
    }
    Ok(keys)
}

/// [`DELETED_VALUE`] as the key values file holds it.
fn stored_value_of_deleted() -> u64 {
    key_set::stored_value(DELETED_VALUE)
}

/// The snapshot's columns in the join, apart from the staged rows' own.
const SNAPSHOT_KEY: &str = "__dinmo_snapshot_key";
const SNAPSHOT_VALUE: &str = "__dinmo_snapshot_value";

/// The destination's fields, then `key` as [`ROW_KEY_COLUMN`].
fn projection(sync: &Sync, key: datafusion::prelude::Expr) -> Vec<datafusion::prelude::Expr> {
    let mut projection: Vec<_> = sync.mapping.iter().map(|m| ident(&m.column).alias(&m.field)).collect();
    projection.push(key.alias(ROW_KEY_COLUMN));
    projection
}

/// Writes the new and changed rows of one sync from the staged rows (staged with
/// [`StagedRows::Keep`](super::StagedRows)) to the local files of `files`; returns how many
/// of each there are.
///
/// With the snapshot's keys in memory, the staged rows stream past them; otherwise DataFusion
/// joins ([`joined_rows`]), sorting and spilling when the keys would not fit a hash table.
pub async fn write_new_rows(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    sync: &Sync,
    keys: SnapshotKeys,
    files: &DiffFiles,
) -> Result<Diff> {
    let context = format!("sync `{}`: new rows", sync.id);
    let keys = match keys {
        SnapshotKeys::Later(snapshot) => snapshot_keys(ctx, &sync.id, Some(snapshot), When::AfterTheModel).await?,
        keys => keys,
    };
    let keys = match keys {
        SnapshotKeys::Everything => None,
        SnapshotKeys::InMemory(keys) => Some(keys),
        SnapshotKeys::Later(snapshot) | SnapshotKeys::Join(snapshot) => {
            let local = files.pending.with_extension("snapshot.parquet");
            choose_join(ctx, key_set::bytes_for::<Seen>(snapshot.rows)).await?;
            // Frames plan with the session's settings of when they were made: both sides are
            // made after the join's strategy is set, or the setting would not reach the join.
            let known = snapshot
                .key_values(ctx, &local)
                .await?
                .select(vec![
                    col(ROW_KEY_COLUMN).alias(SNAPSHOT_KEY),
                    col(VALUE_COLUMN).alias(SNAPSHOT_VALUE),
                ])
                .map_err(DinmoError::engine(context.clone()))?;
            let frame = joined_rows(ctx, staged, sync_index, sync, known.clone()).await?;
            let counts = anti_join::write_split(frame, None, true, files, &context).await;
            let gone = match counts {
                Ok(_) => gone_by_join(ctx, staged, sync_index, known).await,
                Err(_) => Ok(Vec::new()),
            };
            remove_local_file(&local).await;
            return Ok(Diff {
                counts: counts?,
                gone: gone?,
            });
        }
    };
    let rows = ctx
        .table(staged.table.as_str())
        .await
        .and_then(|frame| frame.select(projection(sync, col(key_column(sync_index)))))
        .map_err(DinmoError::engine(context.clone()))?;
    let counts = anti_join::write_split(rows, keys.clone(), false, files, &context).await?;
    let keys = keys.map(SnapshotKeys::InMemory).unwrap_or(SnapshotKeys::Everything);
    let gone = match keys.gone() {
        Some(gone) => gone,
        None => mark_model_keys(ctx, staged, sync_index, &sync.id, &keys).await?,
    };
    Ok(Diff { counts, gone })
}

/// The gone rows' keys, when the split only counted them: the model's keys (from the staged
/// rows, or by running the model's query again when they were not kept) are marked in the
/// snapshot's keys, and those left unmarked are gone.
pub async fn mark_model_keys(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    sync_id: &dinmo_connectors::SyncId,
    keys: &SnapshotKeys,
) -> Result<Vec<u128>> {
    let SnapshotKeys::InMemory(set) = keys else {
        return Ok(Vec::new());
    };
    let context = format!("sync `{sync_id}`: naming the gone rows");
    set.keys.mark_from_now();
    let frame = ctx
        .table(staged.table.as_str())
        .await
        .map_err(DinmoError::engine(context.clone()))?;
    let key = key_column(sync_index);
    let staged_keys = frame.schema().has_column_with_unqualified_name(&key);
    let columns: Vec<_> = if staged_keys {
        vec![ident(&key)]
    } else {
        staged.primary_key.iter().map(ident).collect()
    };
    let mut stream = frame
        .select(columns)
        .map(|f| f.execute_stream())
        .map_err(DinmoError::engine(context.clone()))?
        .await
        .map_err(DinmoError::engine(context.clone()))?;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch.map_err(DinmoError::engine(context.clone()))?;
        let hashes = if staged_keys {
            anti_join::staged_hashes(&batch, 0).map_err(DinmoError::arrow(context.clone()))?
        } else {
            let all: Vec<usize> = (0..batch.num_columns()).collect();
            crate::state::row_key::row_hashes(sync_id, &batch, &all).map_err(DinmoError::arrow(context.clone()))?
        };
        for hash in hashes {
            set.keys.see(hash);
        }
    }
    Ok(keys.gone().unwrap_or_default())
}

/// Removes a local file dinmo wrote for itself; one that is already gone is fine, another
/// failure is logged (the staging folder is emptied at the next run anyway).
async fn remove_local_file(path: &Path) {
    if let Err(error) = tokio::fs::remove_file(path).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), %error, "cannot remove a local file");
    }
}
