//! One sync in one run: settle what earlier runs left pending, diff against the snapshot,
//! guard, then (unless planning) record the intent, send, and commit what the destination
//! acknowledged, batch by batch.

use datafusion::prelude::SessionContext;
use dinmo_connectors::WriteContext;
use dinmo_connectors::failpoint::crash_point;
use serde::Serialize;
use tracing::{Instrument, info, info_span};

use crate::delivery::{Commit, check_rules, deliver};
use crate::diff::{StagedModel, new_rows, snapshot_frame, write_frame};
use crate::error::{DinmoError, Result};
use crate::plan_summary::summarise;
use crate::planning::{PlannedModel, PlannedSync};
use crate::progress::Progress;
use crate::recovery::recover_pending;
use crate::row_key::ROW_KEY_VERSION;
use crate::run_context::{RunContext, mapping_hash, sql_hash};
use crate::state::{Counts, MANIFEST_FORMAT_VERSION, Outcome, RunManifest};

/// Column added to snapshot parts: where the destination put the row.
pub const DESTINATION_ID_COLUMN: &str = "_dinmo_destination_id";
/// Column added to snapshot and rejected parts: the run that sent the row.
pub const RUN_ID_COLUMN: &str = "_dinmo_run_id";

/// Rows refused for one reason on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionSummary {
    /// Machine-readable code.
    pub code: String,
    /// The destination field the refusal is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The message of the first such row.
    pub example: String,
    /// How many rows.
    pub rows: u64,
}

/// What happened (or would happen) to one sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// `<model>.<destination>`.
    pub sync_id: String,
    /// Model name.
    pub model: String,
    /// Destination name.
    pub destination: String,
    /// Destination type.
    pub destination_type: String,
    /// Whether the sync had no history.
    pub first_run: bool,
    /// Rows in the snapshot before this run.
    pub snapshot_rows: u64,
    /// Counts.
    pub counts: Counts,
    /// Refusals by reason (field rules when planning; every refusal when running).
    pub rejections: Vec<RejectionSummary>,
    /// What changed since the last run (SQL, mapping), empty when nothing did.
    pub changed_since_last_run: Vec<String>,
    /// Stopped runs whose pending rows this run settled first.
    pub recovered_runs: Vec<String>,
    /// Rows left pending by stopped runs (counted by a plan, settled by a run).
    pub pending_from_earlier_runs: u64,
    /// How the sync ended; `None` for a plan.
    pub outcome: Option<Outcome>,
    /// Destination ids (files written, import ids).
    pub destination_ids: Vec<String>,
    /// A plan's summary of the new rows.
    pub summary: Option<crate::plan_summary::PlanSummary>,
    /// The state the diff was computed against (a hash of the last run and every snapshot
    /// part's checksum); `apply` refuses a plan whose state moved.
    pub state_version: String,
    /// RFC 3339, when the sync started.
    pub started_at: String,
    /// RFC 3339, when it ended.
    pub finished_at: String,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// The error that stopped it.
    pub error: Option<String>,
}

impl SyncReport {
    /// A report with nothing in it yet, for state commands that commit rows.
    pub fn empty(sync_id: &str) -> Self {
        SyncReport {
            sync_id: sync_id.to_string(),
            ..SyncReport::default()
        }
    }

    /// The report of a sync about to run over `model_rows` model rows.
    pub fn for_target(target: &PlannedSync<'_>, model_rows: u64) -> Self {
        SyncReport {
            sync_id: target.sync.id.clone(),
            model: target.sync.model.clone(),
            destination: target.sync.destination.clone(),
            destination_type: target.destination.kind().to_string(),
            first_run: true,
            counts: Counts {
                model_rows,
                ..Counts::default()
            },
            ..SyncReport::default()
        }
    }

    /// A sync that could not start.
    pub fn failed(target: &PlannedSync<'_>, model_rows: u64, error: String) -> Self {
        SyncReport {
            first_run: false,
            error: Some(error),
            ..SyncReport::for_target(target, model_rows)
        }
    }
}

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

    let snapshot = run.state.verified_snapshot(&sync.id).await?;
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
    let snapshot_table = if run.full_refresh {
        None
    } else {
        Some(snapshot_frame(ctx, &snapshot.part_urls).await?)
    };
    let frame = new_rows(ctx, staged, index, sync, snapshot_table).await?;
    let pending_local = run.staging_dir.join(format!("{}.pending.parquet", sync.id));
    let new_count = write_frame(frame, &pending_local, &format!("sync `{}`: new rows", sync.id)).await?;
    report.counts.new_rows = new_count;
    info!(
        model_rows = staged.rows,
        new_rows = new_count,
        snapshot_rows = snapshot.rows,
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

    send_rows(
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
    .await
}

/// Who a sync is, for its manifest.
#[derive(Debug, Clone)]
pub struct SyncIdentity {
    /// `<model>.<destination>`.
    pub sync_id: String,
    /// Model name.
    pub model: String,
    /// Destination name.
    pub destination: String,
    /// xxh3 of the model SQL the rows came from.
    pub sql_hash: String,
    /// xxh3 of the mapping the rows were projected with.
    pub mapping_hash: String,
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
    let mut manifest = RunManifest {
        format_version: MANIFEST_FORMAT_VERSION,
        run_id: run.run_id.clone(),
        sync_id: sync_id.to_string(),
        model: identity.model.clone(),
        destination: identity.destination.clone(),
        destination_type: destination.kind().to_string(),
        started_at: run.started_at.clone(),
        finished_at: String::new(),
        git_commit: run.git_commit.clone(),
        model_sql_hash: identity.sql_hash.clone(),
        mapping_hash: identity.mapping_hash.clone(),
        row_key_version: ROW_KEY_VERSION,
        full_refresh: run.full_refresh,
        counts: report.counts,
        pending_part: None,
        snapshot_parts: Vec::new(),
        rejected_parts: Vec::new(),
        recovered_by: None,
        destination_ids: Vec::new(),
        outcome: Outcome::NothingToSend,
        error: None,
        rollback: None,
    };
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

    let mut commit =
        Commit::new(&run.state, &run.staging_dir, sync_id, &run.run_id, &run.run_id).guarded_by(&run.lease);
    let context = WriteContext {
        sync_id: sync_id.to_string(),
        run_id: run.run_id.clone(),
    };
    let progress = Progress::rows(run.show_progress, sync_id, new_count);
    let delivered = deliver(
        pending_local,
        destination,
        context,
        progress,
        &mut commit,
        &mut manifest,
        report,
    )
    .await;
    manifest.recount();
    manifest.finished_at = RunContext::now();
    match &delivered {
        Ok(destination_ids) => {
            manifest.destination_ids = destination_ids.clone();
            manifest.outcome = manifest.settled_outcome();
            manifest.pending_part = None;
        }
        Err(error) => {
            // The pending file stays and the manifest still names it: the next run replays it.
            manifest.outcome = Outcome::Failed;
            manifest.error = Some(error.to_string());
        }
    }
    report.counts = manifest.counts;
    report.destination_ids = manifest.destination_ids.clone();
    report.outcome = Some(manifest.outcome);
    run.state.write_manifest(&manifest).await?;
    crash_point("manifest_settled");
    if delivered.is_ok() {
        run.state.delete(&pending_path).await?;
    }
    info!(
        accepted = manifest.counts.accepted,
        rejected = manifest.counts.rejected,
        outcome = manifest.outcome.as_str(),
        "sync committed"
    );
    delivered.map(|_| ())
}
