//! Sending a pending file through a destination and committing what it acknowledges, batch by
//! batch: after every batch, the acknowledged rows become a snapshot part and the refused rows
//! a rejected part, and the run manifest is rewritten to name them. A crash loses at most the
//! rows in flight (a destination may keep requests under way across batches, see
//! `DestinationWriter::write`), and the next run replays them from the pending file (see
//! [`crate::recovery`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use dinmo_connectors::failpoint::crash_point;
use dinmo_connectors::{BatchOutcome, Destination, DestinationWriter, ROW_KEY_COLUMN, RowStatus, WriteContext};
use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;

use crate::error::{DinmoError, Result};
use crate::progress::Progress;
use crate::state::{LeaseWatch, LocalPartWriter, RunManifest, StateStore};
use crate::sync_run::{DESTINATION_ID_COLUMN, RUN_ID_COLUMN, RejectionSummary, SyncReport};

/// Streams the batches of a local Parquet file, `DINMO_DELIVERY_BATCH_ROWS` rows at a time
/// (8,192 by default: enough for many concurrent requests per batch; smaller batches mean
/// more, smaller commits).
pub async fn read_parquet(
    path: &Path,
) -> Result<parquet::arrow::async_reader::ParquetRecordBatchStream<tokio::fs::File>> {
    let file = tokio::fs::File::open(path).await.map_err(DinmoError::io(path))?;
    let context = path.display().to_string();
    ParquetRecordBatchStreamBuilder::new(file)
        .await
        .map_err(DinmoError::parquet(context.clone()))?
        .with_batch_size(crate::settings::delivery_batch_rows()?)
        .build()
        .map_err(DinmoError::parquet(context))
}

/// Plan only: counts the rows the destination's field rules would refuse, and writes the rows
/// they let through to `sendable` (what a plan's totals describe).
pub async fn check_rules(
    pending: &Path,
    destination: &dyn Destination,
    report: &mut SyncReport,
    sendable: &Path,
) -> Result<()> {
    let mut stream = read_parquet(pending).await?;
    let mut refused = 0;
    let mut writer: Option<LocalPartWriter> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(pending.display().to_string()))?;
        let verdicts = destination
            .check_batch(&batch)
            .map_err(DinmoError::destination(report.sync_id.clone()))?;
        let keep: BooleanArray = verdicts.iter().map(|v| Some(v.is_none())).collect();
        for rejection in verdicts.into_iter().flatten() {
            refused += 1;
            tally(
                &mut report.rejections,
                rejection.code.as_str(),
                rejection.field.as_deref(),
                &rejection.message,
            );
        }
        let kept = filter_record_batch(&batch, &keep).map_err(DinmoError::arrow("checking field rules"))?;
        write_lazily(&mut writer, sendable, &kept).await?;
    }
    if let Some(writer) = writer {
        writer.finish().await?;
    }
    report.counts.rejected = refused;
    Ok(())
}

/// Counts one refusal by code and field, keeping the first message as the example.
pub fn tally(rejections: &mut Vec<RejectionSummary>, code: &str, field: Option<&str>, message: &str) {
    match rejections
        .iter_mut()
        .find(|r| r.code == code && r.field.as_deref() == field)
    {
        Some(existing) => existing.rows += 1,
        None => rejections.push(RejectionSummary {
            code: code.to_string(),
            field: field.map(str::to_string),
            example: message.to_string(),
            rows: 1,
        }),
    }
}

/// Sends `pending` through `destination` as run `context.run_id` (the original run's id when
/// replaying), committing into `manifest` after every batch and counting rows on `progress`.
/// Returns the destination ids.
pub async fn deliver(
    pending: &Path,
    destination: &dyn Destination,
    context: WriteContext,
    progress: Progress,
    commit: &mut Commit<'_>,
    manifest: &mut RunManifest,
    report: &mut SyncReport,
) -> Result<Vec<String>> {
    let sync_id = context.sync_id.clone();
    let to_error = |source| DinmoError::Destination {
        sync: sync_id.clone(),
        source: Box::new(source),
    };
    let mut writer = destination.open(context).await.map_err(to_error)?;
    let mut stream = read_parquet(pending).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(pending.display().to_string()))?;
        let rows = batch.num_rows() as u64;
        if let Err(lost) = commit.lease.check() {
            // Another run may hold the sync now: send nothing more, commit what came back.
            let answer = writer.stop().await;
            let failure = settle(answer, writer.as_mut(), commit, report).await?;
            commit.checkpoint(manifest).await?;
            progress.finish();
            if let Some(error) = failure {
                tracing::error!(sync = %sync_id, error = %error, "while stopping");
            }
            return Err(lost);
        }
        crash_point("before_batch_sent");
        let answer = writer.write(batch).await;
        crash_point("batch_answered");
        let failure = settle(answer, writer.as_mut(), commit, report).await?;
        commit.checkpoint(manifest).await?;
        if let Some(error) = failure {
            progress.finish();
            return Err(to_error(error));
        }
        progress.advance(rows);
    }
    let answer = writer.flush().await;
    let failure = settle(answer, writer.as_mut(), commit, report).await?;
    commit.checkpoint(manifest).await?;
    if let Some(error) = failure {
        progress.finish();
        return Err(to_error(error));
    }
    let (outcomes, delivery) = writer.finish().await.map_err(to_error)?;
    for outcome in outcomes {
        commit.record(&outcome, report).await?;
    }
    commit.checkpoint(manifest).await?;
    crash_point("all_committed");
    progress.finish();
    Ok(delivery.destination_ids)
}

/// Records the outcomes of a write or flush. After a failure it records what the destination
/// acknowledged before failing, and hands the failure back.
async fn settle(
    answer: dinmo_connectors::Result<Vec<BatchOutcome>>,
    writer: &mut dyn DestinationWriter,
    commit: &mut Commit<'_>,
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

/// Collects acknowledged rows into snapshot parts and refused rows into rejected parts, and
/// stores them at each checkpoint.
pub struct Commit<'a> {
    state: &'a StateStore,
    staging_dir: PathBuf,
    sync_id: String,
    /// Part names: `<part_prefix>-<sequence>.parquet`.
    part_prefix: String,
    sequence: u32,
    /// The run recorded in each committed row.
    run_id: String,
    /// Rows already committed (when replaying): not committed twice.
    skip_keys: HashSet<String>,
    accepted: Option<LocalPartWriter>,
    rejected: Option<LocalPartWriter>,
    /// The run's hold on the sync: once lost, [`deliver`] sends nothing more.
    lease: LeaseWatch,
}

impl std::fmt::Debug for Commit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("sync_id", &self.sync_id)
            .field("part_prefix", &self.part_prefix)
            .finish()
    }
}

impl<'a> Commit<'a> {
    /// A commit for rows of `run_id`, naming its parts after `part_prefix`.
    pub fn new(state: &'a StateStore, staging_dir: &Path, sync_id: &str, run_id: &str, part_prefix: &str) -> Self {
        Commit {
            state,
            staging_dir: staging_dir.to_path_buf(),
            sync_id: sync_id.to_string(),
            part_prefix: part_prefix.to_string(),
            sequence: 0,
            run_id: run_id.to_string(),
            skip_keys: HashSet::new(),
            accepted: None,
            rejected: None,
            lease: LeaseWatch::default(),
        }
    }

    /// Sending stops once `lease` reports the sync lock lost.
    pub fn guarded_by(mut self, lease: &LeaseWatch) -> Self {
        self.lease = lease.clone();
        self
    }

    /// Rows with these keys are already committed and are not committed again.
    pub fn skipping(mut self, keys: HashSet<String>) -> Self {
        self.skip_keys = keys;
        self
    }

    /// Adds an outcome's rows to the open parts.
    pub async fn record(&mut self, outcome: &BatchOutcome, report: &mut SyncReport) -> Result<()> {
        let context = format!("sync `{}`: committing", self.sync_id);
        let keys = key_strings(&outcome.batch, &context)?;
        let fresh: Vec<bool> = keys.iter().map(|k| !self.skip_keys.contains(k)).collect();
        let accepted_mask: BooleanArray = outcome
            .statuses
            .iter()
            .zip(&fresh)
            .map(|(s, fresh)| Some(*fresh && matches!(s, RowStatus::Accepted { .. })))
            .collect();
        let rejected_mask: BooleanArray = outcome
            .statuses
            .iter()
            .zip(&fresh)
            .map(|(s, fresh)| Some(*fresh && matches!(s, RowStatus::Rejected(_))))
            .collect();
        let rows = outcome.statuses.len();
        let run_ids: ArrayRef = Arc::new(StringArray::from(vec![self.run_id.as_str(); rows]));

        if accepted_mask.true_count() > 0 {
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
            let path = self
                .staging_dir
                .join(format!("{}.{}.snapshot.parquet", self.sync_id, self.part_prefix));
            write_lazily(&mut self.accepted, &path, &batch).await?;
        }
        if rejected_mask.true_count() > 0 {
            let mut codes = Vec::with_capacity(rows);
            let mut fields = Vec::with_capacity(rows);
            let mut messages = Vec::with_capacity(rows);
            for (status, fresh) in outcome.statuses.iter().zip(&fresh) {
                match status {
                    RowStatus::Rejected(r) => {
                        if *fresh {
                            tally(&mut report.rejections, r.code.as_str(), r.field.as_deref(), &r.message);
                        }
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
            let path = self
                .staging_dir
                .join(format!("{}.{}.rejected.parquet", self.sync_id, self.part_prefix));
            write_lazily(&mut self.rejected, &path, &batch).await?;
        }
        Ok(())
    }

    /// Stores the open parts (the snapshot part first: it is what prevents a resend) and
    /// rewrites the manifest to name them.
    pub async fn checkpoint(&mut self, manifest: &mut RunManifest) -> Result<()> {
        let mut stored = false;
        for (slot, folder) in [(self.accepted.take(), "snapshot"), (self.rejected.take(), "rejected")] {
            let Some(writer) = slot else { continue };
            let (local, rows) = writer.finish().await?;
            let relative = format!(
                "{}/{folder}/{}-{:05}.parquet",
                self.sync_id, self.part_prefix, self.sequence
            );
            let part = self.state.upload(&local, &relative, rows).await?;
            crash_point("part_stored");
            match folder {
                "snapshot" => manifest.snapshot_parts.push(part),
                _ => manifest.rejected_parts.push(part),
            }
            stored = true;
        }
        if stored {
            self.sequence += 1;
            manifest.recount();
            self.state.write_manifest(manifest).await?;
            crash_point("checkpoint_committed");
        }
        Ok(())
    }
}

/// The row keys of a batch, as strings.
fn key_strings(batch: &RecordBatch, context: &str) -> Result<Vec<String>> {
    let Some(keys) = batch.column_by_name(ROW_KEY_COLUMN) else {
        return Ok(vec![String::new(); batch.num_rows()]);
    };
    let keys = cast(keys, &DataType::Utf8).map_err(DinmoError::arrow(context))?;
    Ok(keys
        .as_string::<i32>()
        .iter()
        .map(|k| k.unwrap_or_default().to_string())
        .collect())
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

/// The row keys stored in parts (snapshot or rejected), for skipping them when replaying.
pub async fn keys_in_parts(state: &StateStore, parts: &[crate::state::PartInfo]) -> Result<HashSet<String>> {
    let mut keys = HashSet::new();
    for part in parts {
        let context = format!("reading {}", state.url_of(&part.path));
        for batch in state.read_part(part).await? {
            keys.extend(key_strings(&batch, &context)?);
        }
    }
    Ok(keys)
}
