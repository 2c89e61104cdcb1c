//! One sync in one run: diff against the snapshot, guard, then (unless planning) record the
//! intent, send, and commit what the destination acknowledged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use dinmo_connectors::{BatchOutcome, Destination, DestinationWriter, RowStatus, WriteContext};
use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use serde::Serialize;
use tracing::{Instrument, info, info_span};

use crate::diff::{StagedModel, new_rows, snapshot_frame, write_frame};
use crate::error::{DinmoError, Result};
use crate::planning::{PlannedModel, PlannedSync};
use crate::progress::Progress;
use crate::row_key::ROW_KEY_VERSION;
use crate::run_context::{RunContext, mapping_hash, sql_hash};
use crate::state::{Counts, LocalPartWriter, MANIFEST_FORMAT_VERSION, Outcome, PartInfo, RunManifest, StateStore};

/// Rows per batch handed to a destination: enough for many concurrent requests per batch.
const READ_BATCH_ROWS: usize = 8192;

/// Column added to snapshot parts: where the destination put the row.
pub const DESTINATION_ID_COLUMN: &str = "_dinmo_destination_id";
/// Column added to snapshot and rejected parts: the run that sent the row.
pub const RUN_ID_COLUMN: &str = "_dinmo_run_id";

/// Rows refused for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionSummary {
    /// Machine-readable code.
    pub code: String,
    /// The message of the first such row.
    pub example: String,
    /// How many rows.
    pub rows: u64,
}

/// What happened (or would happen) to one sync.
#[derive(Debug, Clone, Serialize)]
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
    /// How the sync ended; `None` for a plan.
    pub outcome: Option<Outcome>,
    /// Destination ids (files written, import ids).
    pub destination_ids: Vec<String>,
    /// The error that stopped it.
    pub error: Option<String>,
}

impl SyncReport {
    /// A sync that could not start.
    pub fn failed(target: &PlannedSync<'_>, model_rows: u64, error: String) -> Self {
        SyncReport {
            sync_id: target.sync.id.clone(),
            model: target.sync.model.clone(),
            destination: target.sync.destination.clone(),
            destination_type: target.destination.kind().to_string(),
            first_run: false,
            snapshot_rows: 0,
            counts: Counts {
                model_rows,
                ..Counts::default()
            },
            rejections: Vec::new(),
            changed_since_last_run: Vec::new(),
            outcome: None,
            destination_ids: Vec::new(),
            error: Some(error),
        }
    }
}

fn tally(rejections: &mut Vec<RejectionSummary>, code: &str, message: &str) {
    match rejections.iter_mut().find(|r| r.code == code) {
        Some(existing) => existing.rows += 1,
        None => rejections.push(RejectionSummary {
            code: code.to_string(),
            example: message.to_string(),
            rows: 1,
        }),
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
    let mut report = SyncReport {
        sync_id: sync.id.clone(),
        model: sync.model.clone(),
        destination: sync.destination.clone(),
        destination_type: target.destination.kind().to_string(),
        first_run: true,
        snapshot_rows: 0,
        counts: Counts {
            model_rows: staged.rows,
            ..Counts::default()
        },
        rejections: Vec::new(),
        changed_since_last_run: Vec::new(),
        outcome: None,
        destination_ids: Vec::new(),
        error: None,
    };
    let result = sync_inner(ctx, run, planned, staged, index, target, &mut report)
        .instrument(span)
        .await;
    if let Err(error) = &result {
        report.error = Some(error.to_string());
    }
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
    let snapshot = run.state.verified_snapshot(&sync.id).await?;
    report.first_run = snapshot.manifests.is_empty();
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
        return check_rules(&pending_local, target.destination.as_ref(), report).await;
    }

    let mut manifest = RunManifest {
        format_version: MANIFEST_FORMAT_VERSION,
        run_id: run.run_id.clone(),
        sync_id: sync.id.clone(),
        model: sync.model.clone(),
        destination: sync.destination.clone(),
        destination_type: target.destination.kind().to_string(),
        started_at: run.started_at.clone(),
        finished_at: String::new(),
        git_commit: run.git_commit.clone(),
        model_sql_hash: sql_hash,
        mapping_hash,
        row_key_version: ROW_KEY_VERSION,
        full_refresh: run.full_refresh,
        counts: report.counts,
        snapshot_part: None,
        rejected_part: None,
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

    // Intent before send: the rows and their keys are durable before anything leaves.
    let pending_path = format!("{}/pending/{}.parquet", sync.id, run.run_id);
    run.state.upload(&pending_local, &pending_path, new_count).await?;

    let mut commit = Commit::new(&run.staging_dir, &sync.id, &run.run_id);
    let delivered = deliver(
        &pending_local,
        target.destination.as_ref(),
        run,
        sync.id.as_str(),
        new_count,
        &mut commit,
        report,
    )
    .await;
    // Whatever happened, rows the destination acknowledged are committed.
    let (snapshot_part, rejected_part) = commit.finish(&run.state).await?;
    manifest.counts.accepted = snapshot_part.as_ref().map_or(0, |p| p.rows);
    manifest.counts.rejected = rejected_part.as_ref().map_or(0, |p| p.rows);
    manifest.counts.pending = new_count - manifest.counts.accepted - manifest.counts.rejected;
    manifest.snapshot_part = snapshot_part;
    manifest.rejected_part = rejected_part;
    manifest.finished_at = RunContext::now();
    report.counts = manifest.counts;
    match &delivered {
        Ok(destination_ids) => {
            manifest.destination_ids = destination_ids.clone();
            manifest.outcome = if manifest.counts.rejected > 0 {
                Outcome::PartiallyRejected
            } else {
                Outcome::Succeeded
            };
        }
        Err(error) => {
            manifest.outcome = Outcome::Failed;
            manifest.error = Some(error.to_string());
        }
    }
    report.destination_ids = manifest.destination_ids.clone();
    report.outcome = Some(manifest.outcome);
    run.state.write_manifest(&manifest).await?;
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

/// Streams the batches of a local Parquet file.
async fn read_parquet(path: &Path) -> Result<parquet::arrow::async_reader::ParquetRecordBatchStream<tokio::fs::File>> {
    let file = tokio::fs::File::open(path).await.map_err(DinmoError::io(path))?;
    let context = path.display().to_string();
    ParquetRecordBatchStreamBuilder::new(file)
        .await
        .map_err(DinmoError::parquet(context.clone()))?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(DinmoError::parquet(context))
}

/// Plan only: counts the rows the destination's field rules would refuse.
async fn check_rules(pending: &Path, destination: &dyn Destination, report: &mut SyncReport) -> Result<()> {
    let mut stream = read_parquet(pending).await?;
    let mut refused = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(pending.display().to_string()))?;
        let verdicts = destination
            .check_batch(&batch)
            .map_err(DinmoError::destination(report.sync_id.clone()))?;
        for rejection in verdicts.into_iter().flatten() {
            refused += 1;
            tally(&mut report.rejections, rejection.code.as_str(), &rejection.message);
        }
    }
    report.counts.rejected = refused;
    Ok(())
}

/// Sends the pending rows; returns the destination ids on success.
async fn deliver(
    pending: &Path,
    destination: &dyn Destination,
    run: &RunContext,
    sync_id: &str,
    total: u64,
    commit: &mut Commit,
    report: &mut SyncReport,
) -> Result<Vec<String>> {
    let to_error = |source| DinmoError::Destination {
        sync: sync_id.to_string(),
        source: Box::new(source),
    };
    let mut writer = destination
        .open(WriteContext {
            sync_id: sync_id.to_string(),
            run_id: run.run_id.clone(),
        })
        .await
        .map_err(to_error)?;
    let progress = Progress::rows(run.show_progress, sync_id, total);
    let mut stream = read_parquet(pending).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(pending.display().to_string()))?;
        let rows = batch.num_rows() as u64;
        let answer = writer.write(batch).await;
        if let Some(error) = settle(answer, writer.as_mut(), commit, report).await? {
            progress.finish();
            return Err(to_error(error));
        }
        progress.advance(rows);
    }
    let answer = writer.flush().await;
    if let Some(error) = settle(answer, writer.as_mut(), commit, report).await? {
        progress.finish();
        return Err(to_error(error));
    }
    let (outcomes, delivery) = writer.finish().await.map_err(to_error)?;
    for outcome in outcomes {
        commit.record(&outcome, report).await?;
    }
    progress.finish();
    Ok(delivery.destination_ids)
}

/// Commits the outcomes of a write or flush. After a failure it commits what the destination
/// acknowledged before failing, and hands the failure back.
async fn settle(
    answer: dinmo_connectors::Result<Vec<BatchOutcome>>,
    writer: &mut dyn DestinationWriter,
    commit: &mut Commit,
    report: &mut SyncReport,
) -> Result<Option<dinmo_connectors::ConnectorError>> {
    let (outcomes, failure) = match answer {
        Ok(outcomes) => (outcomes, None),
        Err(error) => (writer.acknowledged_before_failure(), Some(error)),
    };
    for outcome in outcomes {
        commit.record(&outcome, report).await?;
    }
    Ok(failure)
}

/// Collects acknowledged rows into the snapshot part and refused rows into the rejected part.
struct Commit {
    staging_dir: PathBuf,
    sync_id: String,
    run_id: String,
    accepted: Option<LocalPartWriter>,
    rejected: Option<LocalPartWriter>,
}

impl Commit {
    fn new(staging_dir: &Path, sync_id: &str, run_id: &str) -> Self {
        Commit {
            staging_dir: staging_dir.to_path_buf(),
            sync_id: sync_id.to_string(),
            run_id: run_id.to_string(),
            accepted: None,
            rejected: None,
        }
    }

    async fn record(&mut self, outcome: &BatchOutcome, report: &mut SyncReport) -> Result<()> {
        let context = format!("sync `{}`: committing", self.sync_id);
        let accepted_mask: BooleanArray = outcome
            .statuses
            .iter()
            .map(|s| Some(matches!(s, RowStatus::Accepted { .. })))
            .collect();
        let rejected_mask = arrow::compute::not(&accepted_mask).map_err(DinmoError::arrow(context.clone()))?;
        let rows = outcome.statuses.len();
        let run_ids: ArrayRef = Arc::new(StringArray::from(vec![self.run_id.as_str(); rows]));

        if outcome.accepted() > 0 {
            let ids: ArrayRef = Arc::new(StringArray::from_iter(outcome.statuses.iter().map(|s| match s {
                RowStatus::Accepted { destination_id } => destination_id.clone(),
                RowStatus::Rejected(_) => None,
            })));
            let batch = extend(
                &outcome.batch,
                &[(DESTINATION_ID_COLUMN, ids), (RUN_ID_COLUMN, Arc::clone(&run_ids))],
                &context,
            )?;
            let batch = filter_record_batch(&batch, &accepted_mask).map_err(DinmoError::arrow(context.clone()))?;
            let path = self.staging_dir.join(format!("{}.snapshot.parquet", self.sync_id));
            write_lazily(&mut self.accepted, &path, &batch).await?;
        }
        if outcome.rejected() > 0 {
            let mut codes = Vec::with_capacity(rows);
            let mut fields = Vec::with_capacity(rows);
            let mut messages = Vec::with_capacity(rows);
            for status in &outcome.statuses {
                match status {
                    RowStatus::Rejected(r) => {
                        tally(&mut report.rejections, r.code.as_str(), &r.message);
                        codes.push(Some(r.code.as_str().to_string()));
                        fields.push(r.field.clone());
                        messages.push(Some(r.message.clone()));
                    }
                    RowStatus::Accepted { .. } => {
                        codes.push(None);
                        fields.push(None);
                        messages.push(None);
                    }
                }
            }
            let batch = extend(
                &outcome.batch,
                &[
                    ("reject_code", Arc::new(StringArray::from(codes)) as ArrayRef),
                    ("reject_field", Arc::new(StringArray::from(fields))),
                    ("reject_message", Arc::new(StringArray::from(messages))),
                    (RUN_ID_COLUMN, run_ids),
                ],
                &context,
            )?;
            let batch = filter_record_batch(&batch, &rejected_mask).map_err(DinmoError::arrow(context))?;
            let path = self.staging_dir.join(format!("{}.rejected.parquet", self.sync_id));
            write_lazily(&mut self.rejected, &path, &batch).await?;
        }
        Ok(())
    }

    /// Uploads the parts: the snapshot part first, since it is what prevents a resend.
    async fn finish(self, state: &StateStore) -> Result<(Option<PartInfo>, Option<PartInfo>)> {
        let mut parts = [None, None];
        for (slot, (writer, folder)) in parts
            .iter_mut()
            .zip([(self.accepted, "snapshot"), (self.rejected, "rejected")])
        {
            if let Some(writer) = writer {
                let (local, rows) = writer.finish().await?;
                let relative = format!("{}/{folder}/{}.parquet", self.sync_id, self.run_id);
                *slot = Some(state.upload(&local, &relative, rows).await?);
            }
        }
        let [snapshot, rejected] = parts;
        Ok((snapshot, rejected))
    }
}

async fn write_lazily(writer: &mut Option<LocalPartWriter>, path: &Path, batch: &RecordBatch) -> Result<()> {
    if writer.is_none() {
        *writer = Some(LocalPartWriter::create(path, batch.schema()).await?);
    }
    match writer {
        Some(writer) => writer.write(batch).await,
        None => Ok(()),
    }
}

fn extend(batch: &RecordBatch, extra: &[(&str, ArrayRef)], context: &str) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    for (name, array) in extra {
        fields.push(Field::new(*name, DataType::Utf8, true));
        columns.push(Arc::clone(array));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DinmoError::arrow(context))
}
