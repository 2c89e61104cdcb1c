//! Recovery first: before computing anything new, a run settles every pending file an earlier
//! run left behind (it stopped between recording its intent and committing).
//!
//! Within the destination's replay window the pending file is replayed whole, as the original
//! run: the same batches with the same Idempotency-Keys, so Zuora answers what it stored the
//! first time instead of storing again, and usage files are rewritten with the same names and
//! content. Rows already committed are not committed twice. Past the window, delivered rows
//! are looked up by `UniqueKey`; when the destination cannot be searched, the run stops and
//! names the command that settles the rows by hand.

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use dinmo_connectors::{BatchOutcome, Destination, ROW_KEY_COLUMN, RowStatus, WriteContext};
use futures::StreamExt;
use tracing::{info, warn};

use crate::delivery::{Commit, deliver, keys_in_parts, read_parquet};
use crate::error::{DinmoError, Result};
use crate::progress::Progress;
use crate::run_context::RunContext;
use crate::state::{Outcome, RunManifest};
use crate::sync_run::SyncReport;

/// What recovery did for one sync.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recovered {
    /// Runs whose pending rows were settled.
    pub runs: Vec<String>,
    /// Pending rows found (a plan only counts them).
    pub pending_rows: u64,
}

/// Settles the pending files of `sync` left by earlier runs.
pub async fn recover_pending(
    run: &RunContext,
    sync_id: &str,
    destination: &dyn Destination,
    report: &mut SyncReport,
) -> Result<Recovered> {
    let mut recovered = Recovered::default();
    let manifests = run.state.manifests(sync_id).await?;
    for path in run.state.pending_files(sync_id).await? {
        let original = path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".parquet")
            .to_string();
        if original == run.run_id {
            continue;
        }
        let manifest = manifests.iter().find(|m| m.run_id == original).cloned();
        let Some(mut manifest) =
            manifest.filter(|m| matches!(m.outcome, Outcome::Running | Outcome::Failed) && m.pending_part.is_some())
        else {
            // No manifest names it as open: the run stopped before sending anything (the
            // manifest is written before the first request), or after it settled everything.
            if !run.dry_run {
                info!(sync = sync_id, run = %original, "removing a pending file with nothing left to settle");
                run.state.delete(&path).await?;
            }
            continue;
        };
        let rows = manifest.pending_part.as_ref().map_or(0, |p| p.rows);
        recovered.pending_rows += rows;
        if run.dry_run {
            continue;
        }
        warn!(sync = sync_id, run = %original, rows, "run stopped before settling its rows; reconciling them first");
        if let Some(part) = &manifest.pending_part {
            run.state.verify_part(sync_id, part).await?;
        }
        let local = run.staging_dir.join(format!("{sync_id}.recover.{original}.parquet"));
        run.state.download(&path, &local).await?;
        let committed = [manifest.snapshot_parts.clone(), manifest.rejected_parts.clone()].concat();
        let skip = keys_in_parts(&run.state, &committed).await?;
        let prefix = format!("{original}-recovered-{}", run.run_id);
        let mut commit = Commit::new(&run.state, &run.staging_dir, sync_id, &original, &prefix)
            .skipping(skip)
            .guarded_by(&run.lease);
        let age = age_of(&manifest);
        let within_window = destination
            .replay_window()
            .is_none_or(|window| age.is_some_and(|age| age < window));
        if within_window {
            let context = WriteContext {
                sync_id: sync_id.to_string(),
                run_id: original.clone(),
            };
            let ids = deliver(
                &local,
                destination,
                context,
                Progress::rows(run.show_progress, sync_id, rows),
                &mut commit,
                &mut manifest,
                report,
            )
            .await?;
            manifest.destination_ids.extend(ids);
        } else {
            settle_by_unique_key(
                &local,
                destination,
                sync_id,
                &original,
                rows,
                &mut commit,
                &mut manifest,
                report,
            )
            .await?;
        }
        manifest.recount();
        manifest.outcome = manifest.settled_outcome();
        manifest.recovered_by = Some(run.run_id.clone());
        manifest.pending_part = None;
        manifest.error = None;
        manifest.finished_at = RunContext::now();
        run.state.write_manifest(&manifest).await?;
        run.state.delete(&path).await?;
        info!(sync = sync_id, run = %original, accepted = manifest.counts.accepted, rejected = manifest.counts.rejected, "pending rows reconciled");
        recovered.runs.push(original);
    }
    Ok(recovered)
}

fn age_of(manifest: &RunManifest) -> Option<std::time::Duration> {
    let started: DateTime<Utc> = DateTime::parse_from_rfc3339(&manifest.started_at)
        .ok()?
        .with_timezone(&Utc);
    (Utc::now() - started).to_std().ok()
}

/// Past the replay window: rows found by `UniqueKey` are committed as delivered; the rest were
/// never stored, so they stay out of the snapshot and the diff offers them as new.
#[allow(clippy::too_many_arguments)]
pub async fn settle_by_unique_key(
    local: &std::path::Path,
    destination: &dyn Destination,
    sync_id: &str,
    original: &str,
    rows: u64,
    commit: &mut Commit<'_>,
    manifest: &mut RunManifest,
    report: &mut SyncReport,
) -> Result<()> {
    let undecidable = |reason: String| DinmoError::PendingUndecidable {
        sync: sync_id.into(),
        run: original.into(),
        rows,
        reason,
    };
    let mut stream = read_parquet(local).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(local.display().to_string()))?;
        let keys = unique_keys(&batch)?;
        let found = destination
            .find_delivered(&keys)
            .await
            .map_err(DinmoError::destination(sync_id.to_string()))?
            .ok_or_else(|| {
                undecidable(
                    "they are older than the destination's replay window and it cannot be searched by UniqueKey".into(),
                )
            })?;
        let statuses: Vec<RowStatus> = keys
            .iter()
            .map(|k| match found.get(k) {
                Some(id) => RowStatus::Accepted {
                    destination_id: Some(id.clone()),
                },
                None => RowStatus::Rejected(dinmo_connectors::Rejection {
                    code: dinmo_connectors::RejectCode::Destination("not_found_after_replay_window".into()),
                    field: None,
                    message: "not found in the destination by UniqueKey; offered again as new".into(),
                }),
            })
            .collect();
        // Only the found rows are committed; the others are simply left to the diff.
        let accepted: Vec<u32> = statuses
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, RowStatus::Accepted { .. }))
            .map(|(i, _)| i as u32)
            .collect();
        let indices = arrow::array::UInt32Array::from(accepted);
        let kept = arrow::compute::take_record_batch(&batch, &indices).map_err(DinmoError::arrow("reconciling"))?;
        let kept_statuses = indices.values().iter().map(|&i| statuses[i as usize].clone()).collect();
        commit
            .record(
                &BatchOutcome {
                    batch: kept,
                    statuses: kept_statuses,
                },
                report,
            )
            .await?;
        commit.checkpoint(manifest).await?;
    }
    Ok(())
}

/// The `UniqueKey` each row was sent with: the mapped one, else the row key.
pub fn unique_keys(batch: &RecordBatch) -> Result<Vec<String>> {
    let column = |name: &str| -> Result<Option<StringArray>> {
        match batch.column_by_name(name) {
            Some(array) => Ok(Some(
                cast(array, &DataType::Utf8)
                    .map_err(DinmoError::arrow("reconciling"))?
                    .as_string::<i32>()
                    .clone(),
            )),
            None => Ok(None),
        }
    };
    let mapped = column("UniqueKey")?;
    let keys = column(ROW_KEY_COLUMN)?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let mapped = mapped
                .as_ref()
                .filter(|m| !m.is_null(i))
                .map(|m| m.value(i).to_string());
            mapped.unwrap_or_else(|| keys.as_ref().map(|k| k.value(i).to_string()).unwrap_or_default())
        })
        .collect())
}
