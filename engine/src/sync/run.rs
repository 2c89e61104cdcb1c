//! One sync in one run, as one value that moves through its phases: a [`SyncRun`] is
//! prepared (what earlier runs left pending is settled, the snapshot verified and its keys
//! loaded) into a [`PreparedSync`]; its model runs once for all its syncs
//! (`diff::stage_model`), writing each sync's new rows as it goes or staging them to be
//! joined; [`PreparedSync::diff`] gives a [`DiffedSync`] that knows its new rows; and
//! [`DiffedSync::finish`] guards, then (unless planning) records the intent, sends, and
//! commits what the destination acknowledged, batch by batch ([`send_rows`]).
//!
//! A phase that fails ends the sync: its [`SyncReport`], with the error, comes back instead of
//! the next phase.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use dinmo_connectors::failpoint::crash_point;
use dinmo_connectors::{Destination, SyncId, WriteContext};
use tracing::{Instrument, Span, info, info_span};

use crate::diff::{
    Diff, DiffFiles, DirectDiff, Snapshot, SnapshotKeys, StagedModel, When, mark_model_keys, snapshot_keys,
    write_new_rows,
};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, PlannedSync};
use crate::plan::summary::summarise;
use crate::project::fingerprints::{mapping_hash, sql_hash};
use crate::project::{OnChange, OnDelete};
use crate::state::{AUTO_COMPACT_RUNS, Outcome, PartInfo, RunManifest, SyncIdentity, SyncPaths};
use crate::sync::changes::{Describing, rewrite_reasons};
use crate::sync::commit::{Commit, settle_manifest};
use crate::sync::connections::Connections;
use crate::sync::context::RunContext;
use crate::sync::corrections::{Corrections, Decision, Deletion, decide, write_with_corrections};
use crate::sync::delivery::{check_rules, deliver};
use crate::sync::gone::{GoneDecision, append_gone, decide_deletions, describe_gone, summarise_gone};
use crate::sync::progress::Progress;
use crate::sync::recovery::recover_pending;
use crate::sync::report::SyncReport;

/// Who a planned sync is, for its manifests: its ids and the fingerprints of the SQL and
/// mapping its rows come from.
pub fn identity_of(model: &PlannedModel<'_>, target: &PlannedSync<'_>) -> SyncIdentity {
    let sync = target.sync;
    SyncIdentity {
        sync_id: sync.id.clone(),
        model: sync.model.clone(),
        destination: sync.destination.clone(),
        sql_hash: sql_hash(&model.model.sql),
        mapping_hash: mapping_hash(model.model, sync),
        source_versions: model.source_versions.clone(),
    }
}

/// One sync of one run: its planned target, its position among its model's syncs (its key
/// column in the staged output), its identity, and its report so far.
#[derive(Debug)]
pub struct SyncRun<'r> {
    run: &'r RunContext,
    model: &'r PlannedModel<'r>,
    target: &'r PlannedSync<'r>,
    position: usize,
    identity: SyncIdentity,
    report: SyncReport,
    span: Span,
    clock: Instant,
}

impl<'r> SyncRun<'r> {
    /// The `position`-th selected sync of `model` in `run`.
    pub fn new(run: &'r RunContext, model: &'r PlannedModel<'r>, position: usize, target: &'r PlannedSync<'r>) -> Self {
        let mut report = SyncReport::for_target(target, 0);
        report.started_at = Some(RunContext::now());
        report.source_versions = model.source_versions.clone();
        SyncRun {
            run,
            model,
            target,
            position,
            identity: identity_of(model, target),
            report,
            span: info_span!("sync", sync = %target.sync.id, run_id = %run.run_id),
            clock: Instant::now(),
        }
    }

    /// The sync's id.
    pub fn id(&self) -> &SyncId {
        &self.identity.sync_id
    }

    /// Recovery first (what an earlier run left pending is settled before anything new), then
    /// the snapshot, verified, and its keys.
    pub async fn prepare(mut self, ctx: &SessionContext, connections: &Connections) -> Prepared<'r> {
        let span = self.span.clone();
        match self.prepare_inner(ctx, connections).instrument(span).await {
            Ok((keys, facts)) => Ok(PreparedSync {
                files: self.run.local_diff(self.id()),
                sync: self,
                keys,
                facts,
            }),
            Err(error) => Err(self.failed(error)),
        }
    }

    async fn prepare_inner(
        &mut self,
        ctx: &SessionContext,
        connections: &Connections,
    ) -> Result<(SnapshotKeys, SyncFacts)> {
        let (run, sync) = (self.run, self.target.sync);
        let report = &mut self.report;
        let recovered = recover_pending(
            run,
            &sync.id,
            &sync.destination,
            self.target.destination.as_ref(),
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
        if let Some(last) = snapshot.manifests.last() {
            if last.model_sql_hash != self.identity.sql_hash {
                report
                    .changed_since_last_run
                    .push("model SQL changed since the last run".to_string());
            }
            if last.mapping_hash != self.identity.mapping_hash {
                report
                    .changed_since_last_run
                    .push("mapping or primary key changed since the last run".to_string());
            }
            for now in &self.identity.source_versions {
                if let Some(before) = last.source_versions.iter().find(|v| v.source == now.source)
                    && before.delta_version > now.delta_version
                {
                    report.changed_since_last_run.push(format!(
                        "source `{}` is read at Delta version {}, older than version {} that the last run read (a \
                         pinned version, or the table was restored): rows the later version held and this one does \
                         not count as gone",
                        now.source, now.delta_version, before.delta_version
                    ));
                }
            }
        }
        // Without a part there is nothing to join against (a first run).
        let table = if run.full_refresh || snapshot.parts.is_empty() {
            None
        } else {
            let mut read = Snapshot::read(ctx, &snapshot.parts, &snapshot.corrections, snapshot.rows).await?;
            // Rows gone last run are likely gone again: mark keys as they are found.
            read.mark_seen = snapshot.manifests.last().is_some_and(|m| m.counts.gone > 0);
            Some(read)
        };
        let keys = snapshot_keys(ctx, &sync.id, table, When::BeforeTheModel).await?;
        let facts = SyncFacts {
            manifests: snapshot.manifests,
            snapshot_rows: snapshot.rows,
            uncovered_runs: snapshot.uncovered_runs,
            verified_in,
            loaded_in: started.elapsed() - verified_in,
        };
        Ok((keys, facts))
    }

    /// The report of this sync, stopped at `error`, logged.
    fn failed(self, error: DinmoError) -> SyncReport {
        let SyncRun {
            mut report,
            span,
            clock,
            ..
        } = self;
        span.in_scope(|| tracing::error!(error = %error, "sync failed"));
        report.error = Some(error.to_string());
        report.finished_at = Some(RunContext::now());
        report.seconds = seconds(clock);
        report
    }

    /// The report of this sync, finished.
    fn finished(self) -> SyncReport {
        let SyncRun { mut report, clock, .. } = self;
        report.finished_at = Some(RunContext::now());
        report.seconds = seconds(clock);
        report
    }
}

fn seconds(clock: Instant) -> f64 {
    (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// A prepared sync, or the report of one that stopped.
pub type Prepared<'r> = std::result::Result<PreparedSync<'r>, SyncReport>;

/// What preparing a sync found, for its later phases.
#[derive(Debug)]
struct SyncFacts {
    /// The sync's manifests, oldest first.
    manifests: Vec<RunManifest>,
    snapshot_rows: u64,
    uncovered_runs: usize,
    verified_in: Duration,
    loaded_in: Duration,
}

/// A sync ready for its model to run: what earlier runs left pending is settled, its snapshot
/// is verified and its keys are loaded.
#[derive(Debug)]
pub struct PreparedSync<'r> {
    sync: SyncRun<'r>,
    keys: SnapshotKeys,
    facts: SyncFacts,
    /// Where its new and changed rows are written.
    files: DiffFiles,
}

impl<'r> PreparedSync<'r> {
    /// Where the model's run writes this sync's new rows, unless they are found by a join
    /// after it ([`PreparedSync::diff`]).
    pub fn direct(&self) -> Option<DirectDiff<'r>> {
        self.keys
            .direct(self.sync.position, self.sync.target.sync, self.files.clone())
    }

    /// Whether the new rows are found from the staged model output, after the model ran.
    pub fn needs_staged_rows(&self) -> bool {
        matches!(self.keys, SnapshotKeys::Later(_) | SnapshotKeys::Join(_))
    }

    /// Once the model ran: the new rows the model's run wrote for this sync, or, when they
    /// were not written as it ran (the keys did not fit in memory, or the model's rows were
    /// staged for its primary key check), the rows the staged output has beyond the snapshot.
    /// The snapshot's keys are let go either way, so their memory is back before rows are sent.
    pub async fn diff(self, ctx: &SessionContext, staged: &StagedModel) -> Diffed<'r> {
        let PreparedSync {
            sync,
            keys,
            facts,
            files,
        } = self;
        let diff = match staged.direct_rows(sync.position) {
            Some(counts) => match keys.gone() {
                Some(gone) => Ok(Diff { counts, gone }),
                None => mark_model_keys(ctx, staged, sync.position, sync.id(), &keys)
                    .instrument(sync.span.clone())
                    .await
                    .map(|gone| Diff { counts, gone }),
            },
            None => {
                write_new_rows(ctx, staged, sync.position, sync.target.sync, keys, &files)
                    .instrument(sync.span.clone())
                    .await
            }
        };
        match diff {
            Ok(diff) => Ok(DiffedSync {
                sync,
                facts,
                files,
                diff,
            }),
            Err(error) => Err(sync.failed(error)),
        }
    }
}

/// What a sync's model says against its snapshot ([`DiffedSync::into_model_diff`]).
#[derive(Debug)]
pub struct ModelDiff {
    /// Local Parquet file of the rows whose key the snapshot lacks (may not exist: none).
    pub new_rows: PathBuf,
    /// Local Parquet file of the rows whose values changed since they were sent (may not
    /// exist: none).
    pub changed_rows: PathBuf,
    /// The keys of the snapshot's rows the model no longer produces.
    pub gone: Vec<u128>,
    /// What changed since the last run that the diff reads differently (SQL, mapping, parts
    /// no manifest names), as a plan reports it.
    pub notes: Vec<String>,
}

/// A diffed sync, or the report of one that stopped.
pub type Diffed<'r> = std::result::Result<DiffedSync<'r>, SyncReport>;

/// A sync whose new rows are in its local pending file, and its changed rows in its changed
/// file.
#[derive(Debug)]
pub struct DiffedSync<'r> {
    sync: SyncRun<'r>,
    facts: SyncFacts,
    files: DiffFiles,
    /// Its new and changed rows counted, and the keys of the snapshot's rows the model no
    /// longer produces.
    diff: Diff,
}

impl DiffedSync<'_> {
    /// What the model says against the snapshot, without acting on it (`dinmo reconcile`):
    /// the new rows and the changed rows (each in its local file, with its row key) and the
    /// keys of the gone rows.
    pub fn into_model_diff(self) -> ModelDiff {
        ModelDiff {
            new_rows: self.files.pending,
            changed_rows: self.files.changed,
            gone: self.diff.gone,
            notes: self.sync.report.changed_since_last_run,
        }
    }

    /// The guard, then a plan's rule check or the send. A destination that cannot be reached
    /// fails only its own syncs.
    pub async fn finish(self, connections: &Connections, model_rows: u64) -> Result<SyncReport> {
        let target = self.sync.target;
        if let Some(failure) = connections.failure(&target.sync.destination).await? {
            return Ok(SyncReport::failed(target, model_rows, failure));
        }
        let DiffedSync {
            mut sync,
            facts,
            files,
            diff,
        } = self;
        sync.report.counts.model_rows = model_rows;
        let span = sync.span.clone();
        let result = finish_inner(&mut sync, &facts, &files, &diff, model_rows)
            .instrument(span)
            .await;
        Ok(match result {
            Ok(()) => sync.finished(),
            Err(error) => sync.failed(error),
        })
    }
}

/// The guard, then a plan's rule check or the send: the guard comes before any send, and the
/// intent before the first request.
async fn finish_inner(
    sync: &mut SyncRun<'_>,
    facts: &SyncFacts,
    files: &DiffFiles,
    diff: &Diff,
    model_rows: u64,
) -> Result<()> {
    let (run, target) = (sync.run, sync.target);
    let counts = diff.counts;
    let destination = target.destination.as_ref();
    let pending = files.pending.as_path();
    let new_rows = counts.new_rows;
    let report = &mut sync.report;
    report.counts.new_rows = new_rows;
    report.changed_rows = counts.changed_rows;
    report.gone_rows = diff.gone.len() as u64;
    report.counts.gone = report.gone_rows;
    info!(
        model_rows,
        new_rows,
        snapshot_rows = facts.snapshot_rows,
        snapshot_check_ms = facts.verified_in.as_millis() as u64,
        keys_ms = facts.loaded_in.as_millis() as u64,
        "diff computed"
    );

    if let Some(limit) = target.sync.max_new_rows
        && new_rows > limit
    {
        return Err(DinmoError::TooManyNewRows {
            sync: target.sync.id.clone(),
            new_rows,
            limit,
            file: sync.model.model.file.clone(),
        });
    }

    let held = settle_changes(run, target, &sync.model.model.file, facts, files, diff, report).await?;

    if run.dry_run {
        let sendable = run.local_sendable(&target.sync.id);
        check_rules(
            pending,
            destination,
            report,
            &sendable,
            run.settings.delivery_batch_rows,
        )
        .await?;
        if let Some(options) = run.summary
            && sendable.exists()
        {
            report.summary = Some(summarise(&sendable, destination.roles(), options.top, options.sample).await?);
        }
        return Ok(());
    }

    let held_part = match held {
        Some(held) => Some(store_held(run, &target.sync.id, &held).await?),
        None => None,
    };
    let to_send = new_rows + report.counts.corrections;
    let sent = send_rows(run, &sync.identity, destination, pending, to_send, held_part, report).await;
    if sent.is_ok() && facts.uncovered_runs + 1 >= AUTO_COMPACT_RUNS {
        compact_after_run(run, &target.sync.id).await;
    }
    sent
}

/// What becomes of the sync's changed rows under its `on_change` policy and of its gone rows
/// under its `on_delete` policy: the rows held (their changes file is returned, to be stored
/// with the run), and the corrections and deletions added to the pending file (and counted in
/// the report).
async fn settle_changes(
    run: &RunContext,
    target: &PlannedSync<'_>,
    model_file: &std::path::Path,
    facts: &SyncFacts,
    files: &DiffFiles,
    diff: &Diff,
    report: &mut SyncReport,
) -> Result<Option<PathBuf>> {
    let (counts, gone) = (diff.counts, diff.gone.as_slice());
    let destination = target.destination.as_ref();
    let (on_change, on_delete) = (target.sync.on_change, target.sync.on_delete);
    report.on_change = on_change.as_str().to_string();
    let describing = Describing {
        state: &run.state,
        manifests: &facts.manifests,
        roles: destination.roles(),
        run: &run.run_id,
        reuse_held: on_change == OnChange::Hold,
        sample: CHANGE_SAMPLE,
    };
    let quantity = destination.roles().quantity;
    let held_file = files.changed.with_extension("held.parquet");
    if on_change != OnChange::Ignore {
        let guards = [
            (
                target.sync.max_new_rows,
                "its max_new_rows",
                format!(" (max_new_rows in {})", model_file.display()),
            ),
            (
                Some(run.settings.changed_rows_limit),
                "the rows a run describes at once",
                format!(" ({} in the environment)", crate::settings::CHANGED_ROWS_LIMIT),
            ),
        ];
        for (limit, why, remedy) in guards {
            if let Some(limit) = limit
                && counts.changed_rows > limit
            {
                return Err(DinmoError::TooManyChangedRows {
                    sync: target.sync.id.clone(),
                    changed: counts.changed_rows,
                    limit,
                    why,
                    remedy,
                });
            }
        }
    }
    let mut held = false;
    let (mut rows, mut decisions) = (Vec::new(), Vec::new());
    match on_change {
        _ if counts.changed_rows == 0 => {}
        OnChange::Ignore => report.ignored_changes = counts.changed_rows,
        OnChange::Hold => {
            let (changes, _) = describing.describe(&files.changed, &held_file, HOLD_REASON).await?;
            report.held_rows = changes.rows;
            report.newly_held_rows = changes.newly;
            report.changes = Some(changes.summary);
            held = true;
        }
        OnChange::Correct => {
            let (_, described) = describing.describe(&files.changed, &held_file, HOLD_REASON).await?;
            decisions = decide(destination, &described, quantity).await?;
            let reasons: Vec<Option<String>> = decisions.iter().map(Decision::held).collect();
            let labels: Vec<Option<String>> = decisions.iter().map(Decision::label).collect();
            report.changes = Some(describing.summary(&described, &labels));
            report.held_rows = reasons.iter().filter(|r| r.is_some()).count() as u64;
            report.newly_held_rows = described
                .iter()
                .zip(&reasons)
                .filter(|(row, reason)| reason.is_some() && row.held_since == run.run_id)
                .count() as u64;
            report.corrected_rows = decisions.iter().filter(|d| d.held().is_none()).count() as u64;
            held = rewrite_reasons(&held_file, &reasons).await? > 0;
            rows = described;
        }
    }

    // Gone rows: listed; under `rollback_pending`, their Pending records deleted.
    let mut deletions = Vec::new();
    let mut kept = Vec::new();
    if !gone.is_empty() {
        let gone_rows = describe_gone(&run.state, &facts.manifests, gone, &destination.roles()).await?;
        let fates: Vec<String> = match on_delete {
            OnDelete::Report => vec!["reported".to_string(); gone_rows.len()],
            OnDelete::RollbackPending => {
                let choices = decide_deletions(destination, &gone_rows).await?;
                let mut fates = Vec::with_capacity(choices.len());
                for (row, choice) in gone_rows.iter().zip(choices) {
                    match choice {
                        GoneDecision::Delete(record) => {
                            deletions.push(Deletion {
                                key: row.key,
                                number: row.before.as_ref().map_or(0, |b| b.corrections) + 1,
                                record,
                            });
                            fates.push("deleted".to_string());
                        }
                        GoneDecision::Keep(reason) => {
                            kept.push((row.clone(), reason.clone()));
                            fates.push(reason);
                        }
                    }
                }
                fates
            }
        };
        report.gone = Some(summarise_gone(
            &gone_rows,
            &fates,
            on_delete.as_str(),
            &destination.roles(),
            CHANGE_SAMPLE,
        ));
        report.held_rows += kept.len() as u64;
    }

    let corrections = decisions.iter().filter(|d| d.held().is_none()).count() + deletions.len();
    if corrections > 0 {
        let with_corrections = files.pending.with_extension("corrections.parquet");
        let written = write_with_corrections(
            destination,
            Some(&files.pending),
            Corrections {
                changed: (!decisions.is_empty()).then_some(files.changed.as_path()),
                rows: &rows,
                decisions: &decisions,
                deletions: &deletions,
            },
            quantity,
            &with_corrections,
        )
        .await?;
        report.counts.corrections = written;
        // The pending file now holds the new rows and the corrections: what is sent, and what
        // a saved plan carries.
        tokio::fs::rename(&with_corrections, &files.pending)
            .await
            .map_err(DinmoError::io(&files.pending))?;
    }
    if !kept.is_empty() {
        append_gone(&held_file, &files.pending, &kept, &run.run_id).await?;
        held = true;
    }
    Ok(held.then_some(held_file))
}

/// Why a changed row is held under `on_change: hold`.
pub const HOLD_REASON: &str = "on_change_hold";

/// Changed rows listed, before and after, in a report.
const CHANGE_SAMPLE: usize = 10;

/// Stores a run's held rows (`held/<run>.parquet`).
async fn store_held(run: &RunContext, sync_id: &SyncId, local: &std::path::Path) -> Result<PartInfo> {
    let rows = count_rows(local).await?;
    run.state
        .upload(local, &SyncPaths::of(sync_id).held(&run.run_id), rows)
        .await
}

/// Rows in a local Parquet file, from its footer.
async fn count_rows(path: &std::path::Path) -> Result<u64> {
    let file = tokio::fs::File::open(path).await.map_err(DinmoError::io(path))?;
    let builder = parquet::arrow::ParquetRecordBatchStreamBuilder::new(file)
        .await
        .map_err(DinmoError::parquet(path.display().to_string()))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Writes a checkpoint once enough runs are uncovered, so the next run's cost does not grow
/// with history. The rows are already committed: a failure here is logged, not the run's
/// failure, and the next run tries again.
async fn compact_after_run(run: &RunContext, sync_id: &SyncId) {
    match run.state.compact(sync_id, &run.staging_dir).await {
        Ok(done) => info!(
            through_run = done.through_run.as_ref().map_or("", |r| r.as_str()),
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
    destination: &dyn Destination,
    pending_local: &std::path::Path,
    new_count: u64,
    held_part: Option<PartInfo>,
    report: &mut SyncReport,
) -> Result<()> {
    let sync_id = &identity.sync_id;
    let mut manifest = RunManifest::start(identity, destination.kind(), &run.stamp(), report.counts);
    manifest.held_part = held_part;
    if new_count == 0 {
        manifest.finished_at = Some(RunContext::now());
        run.state.write_manifest(&manifest).await?;
        report.outcome = Some(Outcome::NothingToSend);
        return Ok(());
    }

    // Intent before send: the rows and their keys are durable, and the manifest names them,
    // before the first request leaves.
    let pending_path = SyncPaths::of(sync_id).pending(&run.run_id);
    manifest.pending_part = Some(run.state.upload(pending_local, &pending_path, new_count).await?);
    crash_point("pending_stored");
    manifest.outcome = Outcome::Running;
    manifest.recount();
    run.state.write_manifest(&manifest).await?;
    crash_point("intent_recorded");

    let mut commit = Commit::new(&run.state, &run.staging_dir, sync_id, &run.run_id, &run.settings)
        .guarded_by(&run.lease)
        .committing_every(run.settings.commit_interval);
    let context = WriteContext {
        sync_id: sync_id.clone(),
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
        Ok(delivery) => {
            manifest.destination_ids = delivery.destination_ids.clone();
            report.fallbacks = delivery.fallbacks.clone();
            settle_manifest(&run.state, &mut manifest, None, None).await?;
        }
        Err(error) => {
            // The pending file stays and the manifest still names it: the next run replays it.
            manifest.recount();
            manifest.outcome = Outcome::Failed;
            manifest.error = Some(error.to_string());
            manifest.finished_at = Some(RunContext::now());
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
