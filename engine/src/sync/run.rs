//! One sync in one run, in two halves around its model's run: [`prepare_sync`] settles what
//! earlier runs left pending and loads the snapshot's keys; the model then runs once for all
//! its syncs (`diff::stage_model`), writing each sync's new rows as it goes; [`finish_sync`]
//! guards, then (unless planning) records the intent, sends, and commits what the destination
//! acknowledged, batch by batch.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use dinmo_connectors::WriteContext;
use dinmo_connectors::failpoint::crash_point;
use tracing::{Instrument, Span, info, info_span};

use crate::diff::{DirectDiff, Snapshot, SnapshotKeys, StagedModel, snapshot_keys, write_new_rows};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, PlannedSync};
use crate::plan::summary::summarise;
use crate::project::fingerprints::{mapping_hash, sql_hash};
use crate::state::{AUTO_COMPACT_RUNS, Outcome, RunManifest, SyncIdentity};
use crate::sync::commit::{Commit, settle_manifest};
use crate::sync::connections::Connections;
use crate::sync::context::RunContext;
use crate::sync::delivery::{check_rules, deliver};
use crate::sync::progress::Progress;
use crate::sync::recovery::recover_pending;
use crate::sync::report::SyncReport;

/// A sync ready for its model to run: what earlier runs left pending is settled, and its
/// snapshot is verified and its keys loaded.
#[derive(Debug)]
pub struct PreparedSync {
    /// The sync's position among its model's selected syncs.
    pub index: usize,
    report: SyncReport,
    span: Span,
    clock: Instant,
    keys: Option<SnapshotKeys>,
    /// Where its new rows are written.
    pending: PathBuf,
    /// New rows found from the staged model output, after the model ran.
    joined: Option<Result<u64>>,
    facts: SyncFacts,
}

impl PreparedSync {
    /// Where the model's run writes this sync's new rows, unless they are found by a join
    /// after it ([`PreparedSync::diff_staged`]).
    pub fn direct(&self) -> Option<DirectDiff> {
        self.keys.as_ref()?.direct(self.index, self.pending.clone())
    }

    /// Whether the new rows are found from the staged model output, after the model ran.
    pub fn needs_staged_rows(&self) -> bool {
        matches!(self.keys, Some(SnapshotKeys::Later(_) | SnapshotKeys::Join(_)))
    }

    /// Once the model ran: lets go of the snapshot's keys (their memory goes back before the
    /// rows are sent) when the new rows were written as the model ran; otherwise (the keys did
    /// not fit in memory, or the model's rows were staged for its primary key check) writes
    /// them from the staged model output. The outcome is the sync's, reported by
    /// [`finish_sync`].
    pub async fn diff_staged(&mut self, ctx: &SessionContext, planned: &PlannedModel<'_>, staged: &StagedModel) {
        let (Some(keys), Some(target)) = (self.keys.take(), planned.syncs.get(self.index)) else {
            return;
        };
        if staged.direct_rows(self.index).is_some() {
            return;
        }
        let written = write_new_rows(ctx, staged, self.index, target.sync, keys, &self.pending)
            .instrument(self.span.clone())
            .await;
        self.joined = Some(written);
    }
}

/// The first half of a sync, before its model runs: recovery, then the snapshot verified and
/// its keys loaded. A failure is the sync's alone: its report, with the error in it, comes
/// back instead.
pub async fn prepare_sync(
    ctx: &SessionContext,
    run: &RunContext,
    connections: &Connections,
    planned: &PlannedModel<'_>,
    index: usize,
    target: &PlannedSync<'_>,
) -> std::result::Result<PreparedSync, SyncReport> {
    let span = info_span!("sync", sync = %target.sync.id, run_id = %run.run_id);
    let mut report = SyncReport::for_target(target, 0);
    report.started_at = RunContext::now();
    let clock = Instant::now();
    let prepared = prepare_inner(ctx, run, connections, planned, target, &mut report)
        .instrument(span.clone())
        .await;
    match prepared {
        Ok((keys, facts)) => Ok(PreparedSync {
            index,
            report,
            span,
            clock,
            keys: Some(keys),
            pending: run.staging_dir.join(format!("{}.pending.parquet", target.sync.id)),
            joined: None,
            facts,
        }),
        Err(error) => Err(failed(report, clock, &span, error)),
    }
}

/// What preparing a sync found, for its second half.
#[derive(Debug)]
struct SyncFacts {
    sql_hash: String,
    mapping_hash: String,
    snapshot_rows: u64,
    uncovered_runs: usize,
    verified_in: Duration,
    loaded_in: Duration,
}

/// Recovery first: what an earlier run left pending is settled before anything new. Then the
/// snapshot, verified, and its keys.
async fn prepare_inner(
    ctx: &SessionContext,
    run: &RunContext,
    connections: &Connections,
    planned: &PlannedModel<'_>,
    target: &PlannedSync<'_>,
    report: &mut SyncReport,
) -> Result<(SnapshotKeys, SyncFacts)> {
    let sync = target.sync;
    let recovered = recover_pending(
        run,
        &sync.id,
        &sync.destination,
        target.destination.as_ref(),
        connections,
        report,
    )
    .await?;
    report.recovered_runs = recovered.runs;
    report.pending_from_earlier_runs = recovered.pending_rows;
    if run.dry_run && recovered.pending_rows > 0 {
        report.changed_since_last_run.push(format!(
            "{} row(s) left pending by a stopped run will be reconciled before new rows are sent",
            recovered.pending_rows
        ));
    }

    let started = Instant::now();
    let snapshot = run.state.verified_snapshot(&sync.id).await?;
    let verified_in = started.elapsed();
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
    let (sql_hash, mapping_hash) = (sql_hash(&planned.model.sql), mapping_hash(planned.model, sync));
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
    let table = if run.full_refresh || snapshot.parts.is_empty() {
        None
    } else {
        Some(Snapshot::read(ctx, &snapshot.parts, snapshot.rows)?)
    };
    let keys = snapshot_keys(ctx, &sync.id, table, true).await?;
    let facts = SyncFacts {
        sql_hash,
        mapping_hash,
        snapshot_rows: snapshot.rows,
        uncovered_runs: snapshot.uncovered_runs,
        verified_in,
        loaded_in: started.elapsed() - verified_in,
    };
    Ok((keys, facts))
}

/// The report of a sync that stopped at `error`, logged.
fn failed(mut report: SyncReport, clock: Instant, span: &Span, error: DinmoError) -> SyncReport {
    span.in_scope(|| tracing::error!(error = %error, "sync failed"));
    report.error = Some(error.to_string());
    report.finished_at = RunContext::now();
    report.seconds = (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    report
}

/// The second half of a sync, once its model ran: the guard, then a plan's rule check or the
/// send. A failure is in the report (and logged).
pub async fn finish_sync(
    run: &RunContext,
    planned: &PlannedModel<'_>,
    staged: &StagedModel,
    mut prepared: PreparedSync,
) -> SyncReport {
    let span = prepared.span.clone();
    prepared.report.counts.model_rows = staged.rows;
    let result = finish_inner(run, planned, staged, &mut prepared)
        .instrument(span.clone())
        .await;
    let PreparedSync { mut report, clock, .. } = prepared;
    match result {
        Ok(()) => {
            report.finished_at = RunContext::now();
            report.seconds = (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            report
        }
        Err(error) => failed(report, clock, &span, error),
    }
}

/// The guard, then a plan's rule check or the send.
///
/// Long on purpose: the order of these steps is the exactly-once argument (the guard before
/// any send, the intent before the first request), so it reads top to bottom here.
async fn finish_inner(
    run: &RunContext,
    planned: &PlannedModel<'_>,
    staged: &StagedModel,
    prepared: &mut PreparedSync,
) -> Result<()> {
    let Some(target) = planned.syncs.get(prepared.index) else {
        return Ok(());
    };
    let sync = target.sync;
    let destination = target.destination.as_ref();
    let new_count = match prepared.joined.take() {
        Some(joined) => joined?,
        // Every sync is diffed during the model's run or after it: the other case is a bug,
        // and sends nothing rather than guess.
        None => staged.direct_rows(prepared.index).ok_or_else(|| DinmoError::Io {
            path: prepared.pending.clone(),
            source: std::io::Error::other("the sync's new rows were never written"),
        })?,
    };
    let report = &mut prepared.report;
    report.counts.new_rows = new_count;
    info!(
        model_rows = staged.rows,
        new_rows = new_count,
        snapshot_rows = prepared.facts.snapshot_rows,
        snapshot_check_ms = prepared.facts.verified_in.as_millis() as u64,
        keys_ms = prepared.facts.loaded_in.as_millis() as u64,
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

    let pending_local = &prepared.pending;
    if run.dry_run {
        let sendable = run.staging_dir.join(format!("{}.sendable.parquet", sync.id));
        check_rules(pending_local, destination, report, &sendable).await?;
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
            sql_hash: prepared.facts.sql_hash.clone(),
            mapping_hash: prepared.facts.mapping_hash.clone(),
        },
        destination,
        pending_local,
        new_count,
        report,
    )
    .await;
    if sent.is_ok() && prepared.facts.uncovered_runs + 1 >= AUTO_COMPACT_RUNS {
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
