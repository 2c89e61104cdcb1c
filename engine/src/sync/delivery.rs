//! Sending a pending file through a destination and committing what it acknowledges, batch by
//! batch: the acknowledged rows become a snapshot part and the refused rows a rejected part,
//! and the run manifest is rewritten to name them, after a batch once the commit interval has
//! passed (`DINMO_COMMIT_INTERVAL_MS`, 1 s by default; 0 commits after every batch), and
//! always at the end, on a failure and when the lock is lost. A crash loses at most the rows
//! in flight and those acknowledged since the last commit (a destination may keep requests
//! under way across batches, see `DestinationWriter::write`), and the next run settles them
//! from the pending file (see [`crate::sync::recovery`]).

use std::path::Path;

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use dinmo_connectors::failpoint::crash_point;
use dinmo_connectors::{BatchOutcome, Destination, DestinationWriter, WriteContext};
use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use tracing::Instrument;

use crate::error::{DinmoError, Result};
use crate::state::{LocalPartWriter, RunManifest};
use crate::sync::commit::{Commit, write_lazily};
use crate::sync::progress::Progress;
use crate::sync::report::{SyncReport, tally};

/// Streams the batches of a local Parquet file, `batch_rows` rows at a time
/// (`DINMO_DELIVERY_BATCH_ROWS`; smaller batches mean more, smaller commits).
pub async fn read_parquet(
    path: &Path,
    batch_rows: usize,
) -> Result<parquet::arrow::async_reader::ParquetRecordBatchStream<tokio::fs::File>> {
    let file = tokio::fs::File::open(path).await.map_err(DinmoError::io(path))?;
    let context = path.display().to_string();
    ParquetRecordBatchStreamBuilder::new(file)
        .await
        .map_err(DinmoError::parquet(context.clone()))?
        .with_batch_size(batch_rows)
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
    batch_rows: usize,
) -> Result<()> {
    let mut stream = read_parquet(pending, batch_rows).await?;
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
) -> Result<Vec<String>> {
    let sync_id = context.sync_id.clone();
    let run_id = context.run_id.clone();
    let to_error = |source: dinmo_connectors::ConnectorError| match source.undecided_send().map(str::to_string) {
        Some(file) => DinmoError::SendUndecided {
            sync: sync_id.clone(),
            run: run_id.clone(),
            file,
            source: Box::new(source),
        },
        None => DinmoError::Destination {
            sync: sync_id.clone(),
            source: Box::new(source),
        },
    };
    let mut writer = destination.open(context).await.map_err(to_error)?;
    let mut batches = read_ahead(read_parquet(pending, commit.batch_rows()).await?);
    while let Some(batch) = batches.recv().await {
        let batch = batch.map_err(DinmoError::parquet(pending.display().to_string()))?;
        let rows = batch.num_rows() as u64;
        if let Err(lost) = commit.lease.check() {
            // Another run may hold the sync now: send nothing more, commit what came back.
            let answer = writer.stop().await;
            let failure = record_answer(answer, writer.as_mut(), commit).await?;
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
        let failure = record_answer(answer, writer.as_mut(), commit).await?;
        if let Some(error) = failure {
            commit.checkpoint(manifest).await?;
            progress.finish();
            return Err(to_error(error));
        }
        commit.checkpoint_if_due(manifest).await?;
        progress.advance(rows);
    }
    let answer = writer.flush().await;
    let failure = record_answer(answer, writer.as_mut(), commit).await?;
    commit.checkpoint(manifest).await?;
    if let Some(error) = failure {
        progress.finish();
        return Err(to_error(error));
    }
    let (outcomes, delivery) = writer.finish().await.map_err(to_error)?;
    for outcome in outcomes {
        commit.record(&outcome).await?;
    }
    commit.checkpoint(manifest).await?;
    crash_point("all_committed");
    progress.finish();
    Ok(delivery.destination_ids)
}

/// Batches read ahead of delivery: enough that decoding the next ones overlaps the encoding
/// and committing of the last ones.
const READ_AHEAD_BATCHES: usize = 8;

/// Decodes the batches of `stream` on a task of its own, [`READ_AHEAD_BATCHES`] ahead of the
/// caller, so decoding overlaps the destination's encoding. The task stops when the receiver
/// is dropped.
fn read_ahead(
    mut stream: parquet::arrow::async_reader::ParquetRecordBatchStream<tokio::fs::File>,
) -> tokio::sync::mpsc::Receiver<std::result::Result<arrow::record_batch::RecordBatch, parquet::errors::ParquetError>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD_BATCHES);
    tokio::spawn(
        async move {
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    break;
                }
            }
        }
        .in_current_span(),
    );
    receiver
}

/// Records the outcomes of a write or flush. After a failure it records what the destination
/// acknowledged before failing, and hands the failure back.
async fn record_answer(
    answer: dinmo_connectors::Result<Vec<BatchOutcome>>,
    writer: &mut dyn DestinationWriter,
    commit: &mut Commit<'_>,
) -> Result<Option<dinmo_connectors::ConnectorError>> {
    let (outcomes, failure) = match answer {
        Ok(outcomes) => (outcomes, None),
        Err(error) => (writer.acknowledged_before_failure(), Some(error)),
    };
    for outcome in outcomes {
        commit.record(&outcome).await?;
    }
    Ok(failure)
}
