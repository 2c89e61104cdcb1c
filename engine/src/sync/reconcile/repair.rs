//! `dinmo reconcile --repair missing`: the rows whose every record the destination no longer
//! holds return to "new", so the next run offers them again, as a rollback returns its rows;
//! nothing is deleted or sent here.
//!
//! Under the sync's lock (the caller's), each run's snapshot parts holding such a row are
//! stored again without it (and without the rows correcting it), the manifest names the new
//! parts and records why and which parts they replace, then the old parts are removed. A
//! crash at any point leaves the rows counted as synced, never sent twice: before the manifest
//! is written nothing changed; after it, the old parts (named by no manifest, so their rows
//! still count as synced) are removed by the next repair ([`finish_stopped`]), which
//! `reconcile` asks for ([`stopped_repairs`]).

use std::collections::HashSet;
use std::path::Path;

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use dinmo_connectors::failpoint::crash_point;
use dinmo_connectors::{ROW_KEY_COLUMN, SyncId, Timestamp};
use futures::StreamExt;

use crate::error::{DinmoError, Result};
use crate::state::row_key::each_hash;
use crate::state::values::corrected_keys;
use crate::state::{Folder, LocalPartWriter, PartInfo, Repair, StateStore, SyncPaths, read_parquet};

/// Returns the rows with keys `keys` to "new" in `sync`'s snapshot, recording `reason`;
/// the rows returned.
pub async fn return_to_new(
    state: &StateStore,
    sync: &SyncId,
    keys: &HashSet<u128>,
    reason: &str,
    at: Timestamp,
    staging: &Path,
) -> Result<u64> {
    finish_stopped(state, sync).await?;
    if keys.is_empty() {
        return Ok(0);
    }
    // A checkpoint may hold these keys: dropped before anything changes, so no run reads a
    // key this repair returns to "new" (the next runs write a new one).
    state.drop_checkpoints(sync).await?;
    let mut returned = 0;
    for mut manifest in state.manifests(sync).await? {
        let mut parts = Vec::with_capacity(manifest.snapshot_parts.len());
        let mut replaced = Vec::new();
        let mut removed_here = 0;
        for (n, part) in manifest.snapshot_parts.iter().enumerate() {
            let local = staging.join(format!("{}-{n}.parquet", manifest.run_id));
            state.download_verified(sync, part, &local).await?;
            let kept = staging.join(format!("{}-{n}-kept.parquet", manifest.run_id));
            let (rows, corrections, removed, dropped) = keep_others(&local, &kept, keys).await?;
            if dropped == 0 {
                parts.push(part.clone());
                continue;
            }
            removed_here += removed;
            replaced.push(part.path.clone());
            if rows > 0 {
                let path = SyncPaths::of(sync).repair_part(&manifest.run_id, manifest.repairs.len() + 1, n);
                let stored = state.upload(&kept, &path, rows).await?;
                parts.push(PartInfo {
                    row_keys: part.row_keys,
                    value_version: part.value_version,
                    corrections,
                    ..stored
                });
            }
        }
        if removed_here == 0 {
            continue;
        }
        manifest.snapshot_parts = parts;
        manifest.recount();
        manifest.repairs.push(Repair {
            at,
            rows: removed_here,
            reason: reason.to_string(),
            replaced: replaced.clone(),
        });
        crash_point("repair_parts_stored");
        state.write_manifest(&manifest).await?;
        crash_point("repair_manifest_written");
        for path in replaced {
            state.delete(&path).await?;
        }
        returned += removed_here;
    }
    Ok(returned)
}

/// The parts repairs of `sync` replaced that are still in the state (a repair stopped before
/// removing them): their rows count as synced until they are removed.
pub async fn stopped_repairs(state: &StateStore, sync: &SyncId) -> Result<Vec<String>> {
    let replaced: HashSet<String> = state
        .manifests(sync)
        .await?
        .iter()
        .flat_map(|m| m.repairs.iter().flat_map(|r| r.replaced.iter().cloned()))
        .collect();
    if replaced.is_empty() {
        return Ok(Vec::new());
    }
    let present = state.files_in(sync, Folder::Snapshot).await?;
    Ok(present.into_iter().filter(|p| replaced.contains(p)).collect())
}

/// Removes the parts a stopped repair replaced (see [`stopped_repairs`]).
pub async fn finish_stopped(state: &StateStore, sync: &SyncId) -> Result<usize> {
    let stopped = stopped_repairs(state, sync).await?;
    for path in &stopped {
        state.delete(path).await?;
    }
    Ok(stopped.len())
}

/// Copies the rows of the part at `local` to `kept`, but those with a key in `keys` and the
/// rows correcting them; the rows kept, the correcting rows among them, the rows of the model
/// left out, and every row left out.
async fn keep_others(local: &Path, kept: &Path, keys: &HashSet<u128>) -> Result<(u64, u64, u64, u64)> {
    let context = local.display().to_string();
    let mut stream = read_parquet(local, 8192).await?;
    let mut writer: Option<LocalPartWriter> = None;
    let (mut rows, mut corrections, mut removed, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(&context))?;
        let mut drop = vec![false; batch.num_rows()];
        let mut correcting = vec![false; batch.num_rows()];
        if let Some(column) = batch.column_by_name(ROW_KEY_COLUMN) {
            let mut row = 0;
            each_hash(column, |h| {
                drop[row] = h.is_some_and(|h| keys.contains(&h));
                row += 1;
            })
            .map_err(DinmoError::arrow(&context))?;
        }
        let corrects = corrected_keys(&batch).map_err(DinmoError::arrow(&context))?;
        for (row, corrected) in corrects.iter().enumerate() {
            correcting[row] = corrected.is_some();
            drop[row] |= corrected.is_some_and(|h| keys.contains(&h));
        }
        let keep: BooleanArray = drop.iter().map(|d| Some(!d)).collect();
        removed += drop.iter().zip(&correcting).filter(|(d, c)| **d && !**c).count() as u64;
        dropped += drop.iter().filter(|d| **d).count() as u64;
        corrections += correcting.iter().zip(&drop).filter(|(c, d)| **c && !**d).count() as u64;
        let batch = filter_record_batch(&batch, &keep).map_err(DinmoError::arrow(&context))?;
        rows += batch.num_rows() as u64;
        if writer.is_none() {
            writer = Some(LocalPartWriter::create(kept, batch.schema()).await?);
        }
        if let Some(writer) = writer.as_mut() {
            writer.write(&batch).await?;
        }
    }
    if let Some(writer) = writer {
        writer.finish().await?;
    }
    Ok((rows, corrections, removed, dropped))
}
