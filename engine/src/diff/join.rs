//! Diffing a sync from the model's staged rows, after the model ran: against its snapshot's
//! keys in memory, or by a DataFusion anti-join when they do not fit.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::JoinType;
use datafusion::prelude::{DataFrame, SessionContext, col, ident};
use dinmo_connectors::ROW_KEY_COLUMN;
use futures::StreamExt;

use super::anti_join;
use super::snapshot::{KEY_BYTES_IN_MEMORY, Snapshot, SnapshotKeys, When, hex_key, snapshot_keys};
use super::staging::{StagedModel, key_column};
use crate::error::{DinmoError, Result};
use crate::project::Sync;
use crate::state::LocalPartWriter;

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

/// Writes the new rows of one sync from the staged rows (staged with [`StagedRows::Keep`](super::StagedRows)) to a
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
        SnapshotKeys::Later(snapshot) => snapshot_keys(ctx, &sync.id, Some(snapshot), When::AfterTheModel).await?,
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
