//! Writing checkpoints ([`super::checkpoint`]): `dinmo state compact`, and a run once
//! [`AUTO_COMPACT_RUNS`](super::checkpoint::AUTO_COMPACT_RUNS) runs are uncovered.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use dinmo_connectors::ROW_KEY_COLUMN;
use dinmo_connectors::failpoint::crash_point;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;

use super::checkpoint::{CHECKPOINT_FORMAT_VERSION, Checkpoint, Compaction, MAX_KEY_PARTS, is_settled};
use super::manifest::{KeyEncoding, PartInfo, RunManifest};
use super::parts::{LocalPartWriter, key_value_part_schema};
use super::paths::SyncPaths;
use super::row_key::{binary_keys, hashes_of};
use super::store::{READ_CONCURRENCY, StateStore};
use super::values::{CORRECTS_COLUMN, VALUE_COLUMN, model_rows_of, stored_value_hashes, value_column};
use crate::error::{DinmoError, Result};
use dinmo_connectors::SyncId;

impl StateStore {
    /// Writes a checkpoint covering every settled run of `sync` up to its first unsettled
    /// one, then removes older checkpoints. The caller holds the sync's lock. Each part the
    /// new checkpoint reads is verified first; the rows of the key parts are checked against
    /// the parts they came from. Stopped at any point, the state stays valid (see
    /// [`super::checkpoint`]).
    pub async fn compact(&self, sync: &SyncId, staging: &Path) -> Result<Compaction> {
        let (manifests, current) = self.manifests_and_checkpoint(sync).await?;
        // A checkpoint written before key parts held values is started over: the runs' own
        // parts hold the values, and the new checkpoint carries them.
        let current = current.filter(Checkpoint::holds_values);
        let covered = current.as_ref().map(Checkpoint::covered_runs).unwrap_or_default();
        let fresh: Vec<&RunManifest> = manifests
            .iter()
            .take_while(|m| is_settled(m))
            .filter(|m| !covered.contains(m.run_id.as_str()))
            .collect();
        drop(covered);
        if fresh.is_empty() {
            let removed = self.remove_stale_checkpoints(sync, current.as_ref()).await?;
            return Ok(Compaction {
                through_run: current.as_ref().map(|c| c.through_run.clone()),
                runs_covered: 0,
                rows: current.as_ref().map_or(0, |c| c.rows),
                key_parts: current.as_ref().map_or(0, |c| c.key_parts.len()),
                removed,
            });
        }
        let mut runs: Vec<RunManifest> = current.as_ref().map(|c| c.runs.clone()).unwrap_or_default();
        runs.extend(fresh.iter().map(|m| (*m).clone()));
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        let through_run = runs.last().map(|m| m.run_id.clone()).unwrap_or_default();

        let fresh_parts: Vec<PartInfo> = fresh.iter().flat_map(|m| m.snapshot_parts.iter().cloned()).collect();
        let old_parts = current.map(|c| c.key_parts).unwrap_or_default();
        let (mut key_parts, merge) = if old_parts.len() < MAX_KEY_PARTS {
            (old_parts, fresh_parts)
        } else {
            // Too many key parts: merge them all with the fresh ones into one.
            (Vec::new(), [old_parts, fresh_parts].concat())
        };
        let expected: u64 = merge.iter().map(PartInfo::model_rows).sum();
        if expected > 0 {
            let relative = SyncPaths::of(sync).checkpoint_keys(&through_run, key_parts.len());
            let local = staging.join(relative.replace('/', "_"));
            let mut writer = LocalPartWriter::create(&local, key_value_part_schema()).await?;
            // Every part is downloaded and verified (size, checksum) before its keys are read,
            // READ_CONCURRENCY at a time, in order.
            let mut downloads = futures::stream::iter(merge.iter().map(|part| async move {
                let local = staging.join(format!("compact-{}", part.path.replace('/', "_")));
                self.download_verified(sync, part, &local).await.map(|()| (part, local))
            }))
            .buffered(READ_CONCURRENCY);
            while let Some((part, downloaded)) = downloads.try_next().await? {
                self.copy_keys(sync, part, &downloaded, &mut writer).await?;
            }
            if writer.rows() != expected {
                return Err(DinmoError::StateIntegrity {
                    sync: sync.clone(),
                    message: format!(
                        "compacting: the parts hold {} row keys, their manifests say {expected}",
                        writer.rows()
                    ),
                    remedy: "Run `dinmo state verify`; nothing was changed.".to_string(),
                });
            }
            let (local, rows) = writer.finish().await?;
            let mut part = self.upload(&local, &relative, rows).await?;
            part.row_keys = KeyEncoding::Binary;
            part.value_version = super::values::VALUE_VERSION;
            key_parts.push(part);
            crash_point("checkpoint_keys_stored");
        }
        let checkpoint = Checkpoint {
            format_version: CHECKPOINT_FORMAT_VERSION,
            sync_id: sync.clone(),
            through_run: through_run.clone(),
            created_at: dinmo_connectors::Timestamp::now(),
            rows: key_parts.iter().map(|p| p.rows).sum(),
            key_parts,
            runs,
        };
        self.write_json(&SyncPaths::of(sync).checkpoint_index(&through_run), &checkpoint)
            .await?;
        crash_point("checkpoint_written");
        let removed = self.remove_stale_checkpoints(sync, Some(&checkpoint)).await?;
        Ok(Compaction {
            through_run: Some(through_run),
            runs_covered: fresh.len(),
            rows: checkpoint.rows,
            key_parts: checkpoint.key_parts.len(),
            removed,
        })
    }

    /// Deletes every checkpoint of `sync` (indexes first, so none ever names a missing key
    /// part). `rollback` calls it before changing a run a checkpoint may cover.
    pub async fn drop_checkpoints(&self, sync: &SyncId) -> Result<usize> {
        self.remove_stale_checkpoints(sync, None).await
    }

    /// Deletes checkpoint objects `keep` does not use: older indexes first, then key parts
    /// no index names any more (also those of a compaction that stopped before its index).
    async fn remove_stale_checkpoints(&self, sync: &SyncId, keep: Option<&Checkpoint>) -> Result<usize> {
        let objects = self.checkpoint_objects(sync).await?;
        let kept_index = keep.map(|c| SyncPaths::of(sync).checkpoint_index(&c.through_run));
        let kept_parts: Vec<&str> = keep
            .iter()
            .flat_map(|c| &c.key_parts)
            .map(|p| p.path.as_str())
            .collect();
        let stale_indexes: Vec<&String> = objects
            .iter()
            .filter(|p| p.ends_with(".json") && Some(p.as_str()) != kept_index.as_deref())
            .collect();
        for path in &stale_indexes {
            self.delete(path).await?;
        }
        crash_point("checkpoint_indexes_removed");
        let stale_parts: Vec<&String> = objects
            .iter()
            .filter(|p| !p.ends_with(".json") && !kept_parts.contains(&p.as_str()))
            .collect();
        for path in &stale_parts {
            self.delete(path).await?;
        }
        Ok(stale_indexes.len() + stale_parts.len())
    }

    /// Appends the row keys of a part, downloaded to `local`, with each row's value, to
    /// `writer`, reading only those two columns of a part that holds values (every column of
    /// one stored before parts did, to hash the values from its fields); rows that correct
    /// another row are left out (the runs' parts keep them). Then removes the download.
    async fn copy_keys(
        &self,
        sync: &SyncId,
        part: &PartInfo,
        local: &Path,
        writer: &mut LocalPartWriter,
    ) -> Result<()> {
        let context = format!("compacting {}", self.url_of(&part.path));
        let file = tokio::fs::File::open(local).await.map_err(DinmoError::io(local))?;
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(DinmoError::parquet(context.clone()))?;
        if builder.schema().column_with_name(ROW_KEY_COLUMN).is_none() {
            return Err(DinmoError::StateIntegrity {
                sync: sync.clone(),
                message: format!("part {} has no `{ROW_KEY_COLUMN}` column", self.url_of(&part.path)),
                remedy: "Restore the part from a backup of the state location.".to_string(),
            });
        }
        let has_corrections = builder.schema().column_with_name(CORRECTS_COLUMN).is_some();
        let builder = if part.holds_values() {
            let mut columns = vec![ROW_KEY_COLUMN, VALUE_COLUMN];
            if has_corrections {
                columns.push(CORRECTS_COLUMN);
            }
            let mask = ProjectionMask::columns(builder.parquet_schema(), columns);
            builder.with_projection(mask)
        } else {
            builder
        };
        let mut stream = builder.build().map_err(DinmoError::parquet(context.clone()))?;
        // Hex keys (parts stored before manifest version 3) become their 16 bytes here: a
        // compaction is what moves an old state to the new layout.
        let schema = key_value_part_schema();
        let damaged = |source: arrow::error::ArrowError| DinmoError::StateIntegrity {
            sync: sync.clone(),
            message: format!("part {}: {source}", self.url_of(&part.path)),
            remedy: "Restore the part from a backup of the state location.".to_string(),
        };
        while let Some(batch) = stream.try_next().await.map_err(DinmoError::parquet(context.clone()))? {
            let batch = model_rows_of(batch).map_err(damaged)?;
            let key = batch.column_by_name(ROW_KEY_COLUMN).cloned();
            let hashes = key
                .as_ref()
                .map(hashes_of)
                .transpose()
                .map_err(damaged)?
                .unwrap_or_default();
            let values = match batch.column_by_name(VALUE_COLUMN) {
                Some(values) if part.holds_values() => Arc::clone(values),
                _ => value_column(stored_value_hashes(&batch).map_err(damaged)?),
            };
            let keys = binary_keys(&hashes).map_err(DinmoError::arrow(context.clone()))?;
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![keys, values])
                .map_err(DinmoError::arrow(context.clone()))?;
            writer.write(&batch).await?;
        }
        tokio::fs::remove_file(local).await.map_err(DinmoError::io(local))
    }
}
