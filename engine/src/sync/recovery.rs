//! Recovery first: before computing anything new, a run settles every pending file an earlier
//! run left behind (it stopped between recording its intent and committing).
//!
//! Within the destination's replay window the pending file is replayed whole, as the original
//! run: the same batches with the same Idempotency-Keys, so Zuora answers what it stored the
//! first time instead of storing again, and usage files are rewritten with the same names and
//! content. Rows already committed are not committed twice. Past the window, delivered rows
//! are looked up in the destination by its own keys (Zuora: `UniqueKey`); when the destination
//! cannot be searched, the run stops and names the command that settles the rows by hand
//! (`dinmo state resolve-pending`, also here: [`resolve_by_hand`]).

use std::path::Path;

use chrono::Utc;
use dinmo_connectors::{BatchOutcome, Destination, RowStatus, WriteContext};
use futures::StreamExt;
use tracing::{info, warn};

use dinmo_connectors::{RunId, SyncId};

use crate::error::{DinmoError, Result};
use crate::state::{Outcome, RunManifest, StateStore, read_parquet};
use crate::sync::commit::{Commit, keys_in_parts, settle_manifest};
use crate::sync::connections::Connections;
use crate::sync::context::RunContext;
use crate::sync::delivery::deliver;
use crate::sync::progress::Progress;
use crate::sync::report::SyncReport;

/// What recovery did for one sync.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recovered {
    /// Runs whose pending rows were settled.
    pub runs: Vec<RunId>,
    /// Pending rows found (a plan only counts them).
    pub pending_rows: u64,
}

/// Settles the pending files of `sync` left by earlier runs, through `destination` (named
/// `destination_name`), which must be reachable when there is something to replay.
pub async fn recover_pending(
    run: &RunContext,
    sync_id: &SyncId,
    destination_name: &str,
    destination: &dyn Destination,
    connections: &Connections,
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
            .into();
        let original: RunId = original;
        if original == run.run_id {
            continue;
        }
        let manifest = manifests.iter().find(|m| m.run_id == original).cloned();
        let Some(manifest) =
            manifest.filter(|m| matches!(m.outcome, Outcome::Running | Outcome::Failed) && m.pending_part.is_some())
        else {
            // No manifest names it as open: the run stopped before sending anything (the
            // manifest is written before the first request), or after it settled everything.
            if !run.dry_run {
                info!(sync = %sync_id, run = %original, "removing a pending file with nothing left to settle");
                run.state.delete(&path).await?;
            }
            continue;
        };
        recovered.pending_rows += manifest.pending_part.as_ref().map_or(0, |p| p.rows);
        if run.dry_run {
            continue;
        }
        if let Some(message) = connections.failure(destination_name).await? {
            return Err(DinmoError::Unreachable {
                destination: destination_name.to_string(),
                message,
            });
        }
        recover_run(run, sync_id, destination, manifest, report).await?;
        recovered.runs.push(original);
    }
    Ok(recovered)
}

/// Settles the pending rows of one stopped run: replays them within the destination's replay
/// window, looks them up past it.
async fn recover_run(
    run: &RunContext,
    sync_id: &SyncId,
    destination: &dyn Destination,
    mut manifest: RunManifest,
    report: &mut SyncReport,
) -> Result<()> {
    let original = manifest.run_id.clone();
    let Some(part) = manifest.pending_part.clone() else {
        return Ok(());
    };
    warn!(sync = %sync_id, run = %original, rows = part.rows, "run stopped before settling its rows; reconciling them first");
    run.state.verify_part(sync_id, &part).await?;
    let local = run.staging_dir.join(format!("{sync_id}.recover.{original}.parquet"));
    run.state.download(&part.path, &local).await?;
    let prefix = format!("{original}-recovered-{}", run.run_id);
    let mut commit = Commit::new(&run.state, &run.staging_dir, sync_id, &original, &run.settings)
        .naming_parts(prefix)
        .skipping(committed_keys(&run.state, &manifest).await?)
        .guarded_by(&run.lease);
    let within_window = destination
        .replay_window()
        .is_none_or(|window| age_of(&manifest).is_some_and(|age| age < window));
    if within_window {
        let context = WriteContext {
            sync_id: sync_id.clone(),
            run_id: original.clone(),
            journal: Some(run.state.journal_location(sync_id)),
        };
        let progress = Progress::rows(run.show_progress, sync_id, part.rows);
        let delivered = deliver(&local, destination, context, progress, &mut commit, &mut manifest).await;
        report.add_rejections(commit.take_rejections());
        manifest.destination_ids.extend(delivered?.destination_ids);
    } else {
        let settled = settle_by_lookup(
            &local,
            destination,
            sync_id,
            &original,
            part.rows,
            &mut commit,
            &mut manifest,
        )
        .await;
        report.add_rejections(commit.take_rejections());
        settled?;
    }
    manifest.recovered_by = Some(run.run_id.clone());
    settle_manifest(&run.state, &mut manifest, None, None).await?;
    info!(sync = %sync_id, run = %original, accepted = manifest.counts.accepted, rejected = manifest.counts.rejected, "pending rows reconciled");
    Ok(())
}

/// The keys of the rows a run already committed (snapshot and rejected parts): a replay does
/// not commit them twice.
async fn committed_keys(state: &StateStore, manifest: &RunManifest) -> Result<std::collections::HashSet<String>> {
    let committed = [manifest.snapshot_parts.clone(), manifest.rejected_parts.clone()].concat();
    keys_in_parts(state, &committed).await
}

fn age_of(manifest: &RunManifest) -> Option<std::time::Duration> {
    (Utc::now() - manifest.started_at.time()).to_std().ok()
}

/// Past the replay window (and for `dinmo state rebuild`): rows the destination finds by its
/// own keys are committed as delivered; the rest were never stored, so they stay out of the
/// snapshot and the diff offers them as new. Returns how many were found.
pub async fn settle_by_lookup(
    local: &Path,
    destination: &dyn Destination,
    sync_id: &SyncId,
    original: &RunId,
    rows: u64,
    commit: &mut Commit<'_>,
    manifest: &mut RunManifest,
) -> Result<u64> {
    let mut found_rows = 0;
    let mut stream = read_parquet(local, commit.batch_rows()).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(local.display().to_string()))?;
        let found = look_up(destination, &batch, sync_id, original, rows, PAST_THE_WINDOW).await?;
        // Only the found rows are committed; the others are simply left to the diff.
        let accepted: Vec<u32> = (0..found.len())
            .filter(|&i| found[i].is_some())
            .map(|i| i as u32)
            .collect();
        found_rows += accepted.len() as u64;
        let statuses = accepted
            .iter()
            .map(|&i| RowStatus::Accepted {
                destination_id: found[i as usize].as_deref().map(Into::into),
            })
            .collect();
        let indices = arrow::array::UInt32Array::from(accepted);
        let kept = arrow::compute::take_record_batch(&batch, &indices).map_err(DinmoError::arrow("reconciling"))?;
        commit.record(&BatchOutcome { batch: kept, statuses }).await?;
        commit.checkpoint(manifest).await?;
    }
    Ok(found_rows)
}

/// How many rows of a local file the destination finds by its own keys, without committing
/// anything (`dinmo state rebuild` without `--write`).
pub async fn count_delivered(
    local: &Path,
    destination: &dyn Destination,
    sync_id: &SyncId,
    run: &RunId,
    rows: u64,
    batch_rows: usize,
) -> Result<u64> {
    let mut found = 0;
    let mut stream = read_parquet(local, batch_rows).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(local.display().to_string()))?;
        found += look_up(destination, &batch, sync_id, run, rows, "the destination")
            .await?
            .iter()
            .filter(|id| id.is_some())
            .count() as u64;
    }
    Ok(found)
}

/// The destination's id of each row of `batch` it finds; an error naming the command that
/// settles the rows by hand when it cannot be searched.
async fn look_up(
    destination: &dyn Destination,
    batch: &arrow::record_batch::RecordBatch,
    sync_id: &SyncId,
    run: &RunId,
    rows: u64,
    why: &str,
) -> Result<Vec<Option<String>>> {
    destination
        .find_delivered(batch)
        .await
        .map_err(DinmoError::destination(sync_id.clone()))?
        .ok_or_else(|| DinmoError::PendingUndecidable {
            sync: sync_id.clone(),
            run: run.clone(),
            rows,
            reason: format!("{why} cannot be searched by {}", destination.delivered_key()),
        })
}

/// Why rows past the replay window need a lookup (the start of the sentence).
const PAST_THE_WINDOW: &str = "they are older than the destination's replay window and it";

/// `dinmo state resolve-pending SYNC RUN --sent|--not-sent`: settles a stopped run's pending
/// rows as the operator found them in the destination. `--sent` commits every pending row
/// (not yet committed) as delivered; `--not-sent` leaves them to the next run's diff.
/// `resolver` is the id of the command's own run, recorded as what settled them.
pub async fn resolve_by_hand(
    state: &StateStore,
    staging_dir: &Path,
    mut manifest: RunManifest,
    sent: bool,
    resolver: &RunId,
    settings: &crate::settings::Settings,
) -> Result<u64> {
    let sync_id = manifest.sync_id.clone();
    let run_id = manifest.run_id.clone();
    let Some(pending) = manifest.pending_part.clone() else {
        return Ok(0);
    };
    state.verify_part(&sync_id, &pending).await?;
    let outcome = if sent {
        let local = staging_dir.join("pending.parquet");
        state.download(&pending.path, &local).await?;
        let prefix = format!("{run_id}-resolved-{resolver}");
        let mut commit = Commit::new(state, staging_dir, &sync_id, &run_id, settings)
            .naming_parts(prefix)
            .skipping(committed_keys(state, &manifest).await?);
        let mut stream = read_parquet(&local, commit.batch_rows()).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(DinmoError::parquet(local.display().to_string()))?;
            let statuses = vec![RowStatus::Accepted { destination_id: None }; batch.num_rows()];
            commit.record(&BatchOutcome { batch, statuses }).await?;
        }
        commit.checkpoint(&mut manifest).await?;
        None
    } else {
        Some(Outcome::Failed)
    };
    manifest.recovered_by = Some(resolver.clone());
    let how = if sent { "sent" } else { "not sent" };
    settle_manifest(
        state,
        &mut manifest,
        outcome,
        Some(format!("pending rows resolved by hand as {how}")),
    )
    .await?;
    Ok(pending.rows)
}
