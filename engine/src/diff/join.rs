//! Diffing a sync from the model's staged rows, after the model ran: against its snapshot's
//! keys in memory, or by a DataFusion anti-join when they do not fit.

use std::path::Path;

use datafusion::common::JoinType;
use datafusion::prelude::{DataFrame, SessionContext, col, ident};
use dinmo_connectors::ROW_KEY_COLUMN;

use super::anti_join;
use super::key_set;
use super::snapshot::{Snapshot, SnapshotKeys, When, snapshot_keys};
use super::anti_join::{DiffCounts, DiffFiles};
use super::staging::{StagedModel, key_column};
use crate::error::{DinmoError, Result};
use crate::project::Sync;
use crate::state::values::VALUE_COLUMN;

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
/// DataFusion: the way when the snapshot's keys do not fit the memory limit (see
/// [`write_new_rows`]). The snapshot's keys and values are first written to a local file at
/// `local` ([`Snapshot::key_values`]).
async fn joined_rows(
    ctx: &SessionContext,
    staged: &StagedModel,
    sync_index: usize,
    sync: &Sync,
    snapshot: Snapshot,
    local: &Path,
) -> Result<DataFrame> {
    let context = format!("sync `{}`: diff", sync.id);
    choose_join(ctx, key_set::bytes_for::<u64>(snapshot.rows)).await?;
    // Frames plan with the session's settings of when they were made: both sides are made (or
    // made again) after the join's strategy is set, or the setting would not reach the join.
    let known = snapshot
        .key_values(ctx, local)
        .await?
        .select(vec![
            col(ROW_KEY_COLUMN).alias(SNAPSHOT_KEY),
            col(VALUE_COLUMN).alias(SNAPSHOT_VALUE),
        ])
        .map_err(DinmoError::engine(context.clone()))?;
    let key = key_column(sync_index);
    let staged_frame = ctx
        .table(staged.table.as_str())
        .await
        .map_err(DinmoError::engine(context.clone()))?;
    // The snapshot's keys are the hash table (two narrow columns) and the staged rows stream
    // past it: memory follows the snapshot's key count, not the width of the model's rows.
    let mut projection = projection(sync, ident(&key));
    projection.push(col(SNAPSHOT_VALUE));
    known
        .join(staged_frame, JoinType::Right, &[SNAPSHOT_KEY], &[key.as_str()], None)
        .and_then(|joined| joined.select(projection))
        .map_err(DinmoError::engine(context))
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
) -> Result<DiffCounts> {
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
            let frame = joined_rows(ctx, staged, sync_index, sync, snapshot, &local).await?;
            let written = anti_join::write_split(frame, None, true, files, &context).await;
            remove_local_file(&local).await;
            return written;
        }
    };
    let rows = ctx
        .table(staged.table.as_str())
        .await
        .and_then(|frame| frame.select(projection(sync, col(key_column(sync_index)))))
        .map_err(DinmoError::engine(context.clone()))?;
    anti_join::write_split(rows, keys, false, files, &context).await
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
