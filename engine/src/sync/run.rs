//! One sync in one run: settle what earlier runs left pending, diff against the snapshot,
//! guard, then (unless planning) record the intent, send, and commit what the destination
//! acknowledged, batch by batch.

use datafusion::prelude::SessionContext;
use dinmo_connectors::WriteContext;
use dinmo_connectors::failpoint::crash_point;
use tracing::{Instrument, info, info_span};

use crate::diff::{Snapshot, StagedModel, snapshot_frame, write_new_rows};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, PlannedSync};
use crate::plan::summary::summarise;
use crate::project::fingerprints::{mapping_hash, sql_hash};
use crate::state::{AUTO_COMPACT_RUNS, Outcome, RunManifest, SyncIdentity};
use crate::sync::commit::{Commit, settle_manifest};
use crate::sync::context::RunContext;
use crate::sync::delivery::{check_rules, deliver};
use crate::sync::progress::Progress;
use crate::sync::recovery::recover_pending;
use crate::sync::report::SyncReport;

/// Plans, and unless `run.dry_run`, sends one sync. The report is returned even when the
/// sync fails, with the error in it.
pub async fn run_sync(
    ctx: &SessionContext,
    run: &RunContext,
    planned: &PlannedModel<'_>,
    staged: &StagedModel,
    index: usize,
    target: &PlannedSync<'_>,
) -> (SyncReport, Result<()>) {
    let sync = target.sync;
    let span = info_span!("sync", sync = %sync.id, run_id = %run.run_id);
    let mut report = SyncReport::for_target(target, staged.rows);
    report.started_at = RunContext::now();
    let clock = std::time::Instant::now();
    let result = sync_inner(ctx, run, planned, staged, index, target, &mut report)
        .instrument(span)
        .await;
    if let Err(error) = &result {
        report.error = Some(error.to_string());
    }
    report.finished_at = RunContext::now();
    report.seconds = (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    (report, result)
}

/// Recovery, snapshot, diff, guard, then a plan's rule check or the send.
///
/// Long on purpose: the order of these steps is the exactly-once argument (pending rows
/// settled before the diff, the guard before any send), so it reads top to bottom here.
async fn sync_inner(
    ctx: &SessionContext,
    run: &RunContext,
    planned: &PlannedModel<'_>,
    staged: &StagedModel,
    index: usize,
    target: &PlannedSync<'_>,
    report: &mut SyncReport,
) -> Result<()> {
    let sync = target.sync;
    let destination = target.destination.as_ref();

    // Recovery first: what an earlier run left pending is settled before anything new.
    let recovered = recover_pending(run, &sync.id, destination, report).await?;
    report.recovered_runs = recovered.runs;
    report.pending_from_earlier_runs = recovered.pending_rows;
    if run.dry_run && recovered.pending_rows > 0 {
        report.changed_since_last_run.push(format!(
            "{} row(s) left pending by a stopped run will be reconciled before new rows are sent",
            recovered.pending_rows
        ));
    }

    let started = std::time::Instant::now();
    let snapshot = run.state.verified_snapshot(&sync.id).await?;
    let verified_at = started.elapsed();
    report.state_version = crate::state::state_version(&snapshot.manifests);
    report.first_run = snapshot.manifests.is_empty() && snapshot.unnamed_parts == 0;
    if snapshot.unnamed_parts > 0 {
        report.changed_since_last_run.push(format!(
            "{} snapshot part(s) are named by no run manifest (a manifest was deleted, or a run stopped before \
             writing it); their rows still count as synced and are not sent again. `dinmo state verify` lists them",
            snapshot.unnamed_parts
        ));
    }
    report.snapshot_rows = snapshot.rows;
    let sql_hash = sql_hash(&planned.model.sql);
    let mapping_hash = mapping_hash(planned.model, sync);
    if let Some(last) = snapshot.manifests.last() {
        if last.model_sql_hash != sql_hash {
            report
                .changed_since_last_run
                .push("model SQL changed since the last run".to_string());
        }
        if last.mapping_hash != mapping_hash {
            report
                .changed_since_last_run
                .push("mapping or primary key changed since the last run".to_string());
        }
    }
    // Without a part there is nothing to join against (a first run).
    let snapshot_table = if run.full_refresh || snapshot.part_urls.is_empty() {
        None
    } else {
        Some(Snapshot {
            frame: snapshot_frame(ctx, &snapshot.part_urls).await?,
            rows: snapshot.rows,
        })
    };
    let pending_local = run.staging_dir.join(format!("{}.pending.parquet", sync.id));
    let new_count = write_new_rows(ctx, staged, index, sync, snapshot_table, &pending_local).await?;
    if index + 1 == planned.syncs.len() {
        staged.discard(); // the model's last diff: the staged rows are no longer needed
    }
    report.counts.new_rows = new_count;
    info!(
        model_rows = staged.rows,
        new_rows = new_count,
        snapshot_rows = snapshot.rows,
        snapshot_check_ms = verified_at.as_millis() as u64,
        join_ms = (started.elapsed() - verified_at).as_millis() as u64,
        "diff computed"
    );

    if let Some(limit) = sync.max_new_rows
        && new_count > limit
    {
        return Err(DinmoError::TooManyNewRows {
            sync: sync.id.clone(),
            new_rows: new_count,
            limit,
            file: planned.model.file.clone(),
        });
    }

    if run.dry_run {
        let sendable = run.staging_dir.join(format!("{}.sendable.parquet", sync.id));
        check_rules(&pending_local, destination, report, &sendable).await?;
        if let Some(options) = run.summary
            && sendable.exists()
        {
            report.summary = Some(summarise(&sendable, destination.roles(), options.top, options.sample).await?);
        }
        return Ok(());
    }

    let sent = send_rows(
        run,
        &SyncIdentity {
            sync_id: sync.id.clone(),
            model: sync.model.clone(),
            destination: sync.destination.clone(),
            sql_hash,
            mapping_hash,
        },
        destination,
        &pending_local,
        new_count,
        report,
    )
    .await;
    if sent.is_ok() && snapshot.uncovered_runs + 1 >= AUTO_COMPACT_RUNS {
        compact_after_run(run, &sync.id).await;
    }
    sent
}

/// Writes a checkpoint once enough runs are uncovered, so the next run's cost does not grow
/// with history. The rows are already committed: a failure here is logged, not the run's
/// failure, and the next run tries again.
async fn compact_after_run(run: &RunContext, sync_id: &str) {
    match run.state.compact(sync_id, &run.staging_dir).await {
        Ok(done) => info!(
            through_run = done.through_run.as_deref().unwrap_or(""),
            runs_covered = done.runs_covered,
            rows = done.rows,
            "state compacted"
        ),
        Err(error) => tracing::warn!(error = %error, "compacting the state failed; the next run tries again"),
    }
}

/// Sends the rows of a local Parquet file of destination fields: records the intent, delivers
/// batch by batch with commits, and settles the manifest. Used by `run` and by `apply`.
pub async fn send_rows(
    run: &RunContext,
    identity: &SyncIdentity,
    destination: &dyn dinmo_connectors::Destination,
    pending_local: &std::path::Path,
    new_count: u64,
    report: &mut SyncReport,
) -> Result<()> {
    let sync_id = identity.sync_id.as_str();
    let mut manifest = RunManifest::start(identity, destination.kind(), &run.stamp(), report.counts);
    if new_count == 0 {
        manifest.finished_at = RunContext::now();
        run.state.write_manifest(&manifest).await?;
        report.outcome = Some(Outcome::NothingToSend);
        return Ok(());
    }

    // Intent before send: the rows and their keys are durable, and the manifest names them,
    // before the first request leaves.
    let pending_path = format!("{sync_id}/pending/{}.parquet", run.run_id);
    manifest.pending_part = Some(run.state.upload(pending_local, &pending_path, new_count).await?);
    crash_point("pending_stored");
    manifest.outcome = Outcome::Running;
    manifest.recount();
    run.state.write_manifest(&manifest).await?;
    crash_point("intent_recorded");

    let mut commit = Commit::new(&run.state, &run.staging_dir, sync_id, &run.run_id, &run.run_id)
        .guarded_by(&run.lease)
        .committing_every(crate::settings::commit_interval()?);
    let context = WriteContext {
        sync_id: sync_id.to_string(),
        run_id: run.run_id.clone(),
        journal: Some(run.state.journal_location(sync_id)),
    };
    let progress = Progress::rows(run.show_progress, sync_id, new_count);
    let delivered = deliver(
        pending_local,
        destination,
        context,
        progress,
        &mut commit,
        &mut manifest,
    )
    .await;
    report.add_rejections(commit.take_rejections());
    match &delivered {
        Ok(destination_ids) => {
            manifest.destination_ids = destination_ids.clone();
            settle_manifest(&run.state, &mut manifest, None, None).await?;
        }
        Err(error) => {
            // The pending file stays and the manifest still names it: the next run replays it.
            manifest.recount();
            manifest.outcome = Outcome::Failed;
            manifest.error = Some(error.to_string());
            manifest.finished_at = RunContext::now();
            run.state.write_manifest(&manifest).await?;
        }
    }
    report.counts = manifest.counts;
    report.destination_ids = manifest.destination_ids.clone();
    report.outcome = Some(manifest.outcome);
    info!(
        accepted = manifest.counts.accepted,
        rejected = manifest.counts.rejected,
        outcome = manifest.outcome.as_str(),
        "sync committed"
    );
    delivered.map(|_| ())
}
