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
use arrow::record_batch::RecordBatch;
use dinmo_connectors::failpoint::crash_point;
use dinmo_connectors::rules::{RejectCode, Rejection};
use dinmo_connectors::{BatchOutcome, Destination, DestinationWriter, RowStatus, SyncId, WriteContext};
use futures::StreamExt;
use tracing::Instrument;

use crate::error::{DinmoError, Result};
use crate::state::{LocalPartWriter, RunManifest, read_parquet, write_lazily};
use crate::sync::changes::{CORRECTION_COLUMN, CorrectionKind};
use crate::sync::commit::Commit;
use crate::sync::corrections::{RECORD_COLUMN, split_settled};
use crate::sync::progress::Progress;
use crate::sync::report::{SyncReport, tally};

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
) -> Result<dinmo_connectors::Delivery> {
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
        let (mut batch, settled) = split_settled(batch)?;
        if let Some(settled) = settled {
            let (outcome, replacements) = settle(destination, settled, &sync_id).await?;
            commit.record(&outcome).await?;
            // Replacements whose old record is gone are sent with the rest.
            if let Some(replacements) = replacements {
                batch = arrow::compute::concat_batches(&batch.schema(), [&batch, &replacements])
                    .map_err(DinmoError::arrow("sending replacements"))?;
            }
        }
        if batch.num_rows() == 0 {
            commit.checkpoint_if_due(manifest).await?;
            progress.advance(rows);
            continue;
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
    Ok(delivery)
}

/// Batches read ahead of delivery: enough that decoding the next ones overlaps the encoding
/// and committing of the last ones.
/// Settles correcting rows the destination's writer does not send: an update in place or a
/// deletion goes to the destination record by record (a deletion of a record already gone
/// counts as done); a correction found already made is acknowledged as it is. A replacement's
/// old record is deleted here, and the replacement returned to be sent (or rejected, when
/// the record could not be deleted: it is never sent beside the record it replaces).
async fn settle(
    destination: &dyn Destination,
    rows: RecordBatch,
    sync_id: &SyncId,
) -> Result<(BatchOutcome, Option<RecordBatch>)> {
    let kinds = text_column(&rows, CORRECTION_COLUMN)?;
    let records = text_column(&rows, RECORD_COLUMN)?;
    let mut statuses = Vec::with_capacity(rows.num_rows());
    let (mut settled, mut to_send) = (Vec::new(), Vec::new());
    for row in 0..rows.num_rows() {
        let record = records[row].clone();
        let status = match (kinds[row].as_deref(), record) {
            (Some(kind), Some(record)) if kind == CorrectionKind::Replace.as_str() => {
                match delete_record(destination, &record, sync_id).await? {
                    Ok(()) => {
                        to_send.push(row as u32);
                        continue;
                    }
                    Err(reason) => RowStatus::Rejected(Rejection {
                        code: RejectCode::Destination("replace_refused".into()),
                        field: None,
                        message: format!(
                            "deleting record {record} to replace it (its replacement was not sent): {reason}"
                        ),
                    }),
                }
            }
            (Some(kind), Some(record)) if kind == CorrectionKind::Update.as_str() => {
                crash_point("before_update");
                let answer = destination
                    .update_record(&record, &rows.slice(row, 1))
                    .await
                    .map_err(DinmoError::destination(sync_id.clone()))?;
                crash_point("update_answered");
                // Refused (a bill run processed it meanwhile), the record may hold the values
                // already, set by an earlier attempt whose answer a crash lost.
                let refused = match answer {
                    Ok(()) => None,
                    Err(reason) => (!holds_quantity(destination, &record, &rows, row).await?).then_some(reason),
                };
                match refused {
                    None => RowStatus::Accepted {
                        destination_id: Some(record.as_str().into()),
                    },
                    Some(reason) => RowStatus::Rejected(Rejection {
                        code: RejectCode::Destination("update_refused".into()),
                        field: None,
                        message: format!("updating record {record}: {reason}"),
                    }),
                }
            }
            (Some(kind), Some(record)) if kind == CorrectionKind::Deleted.as_str() => {
                match delete_record(destination, &record, sync_id).await? {
                    Ok(()) => RowStatus::Accepted {
                        destination_id: Some(record.as_str().into()),
                    },
                    Err(reason) => RowStatus::Rejected(Rejection {
                        code: RejectCode::Destination("delete_refused".into()),
                        field: None,
                        message: format!("deleting record {record}: {reason}"),
                    }),
                }
            }
            (_, record) => RowStatus::Accepted {
                destination_id: record.map(|r| r.as_str().into()),
            },
        };
        settled.push(row as u32);
        statuses.push(status);
    }
    let take = |indices: Vec<u32>| {
        arrow::compute::take_record_batch(&rows, &arrow::array::UInt32Array::from(indices))
            .map_err(DinmoError::arrow("settling corrections"))
    };
    let replacements = if to_send.is_empty() { None } else { Some(take(to_send)?) };
    let outcome = BatchOutcome {
        batch: take(settled)?,
        statuses,
    };
    Ok((outcome, replacements))
}

/// Deletes one record (one already gone counts as deleted); `Err(reason)` when the
/// destination refuses.
async fn delete_record(
    destination: &dyn Destination,
    record: &str,
    sync_id: &SyncId,
) -> Result<std::result::Result<(), String>> {
    crash_point("before_delete");
    let answer = destination
        .delete_records(&[record.to_string()])
        .await
        .map_err(DinmoError::destination(sync_id.clone()))?;
    crash_point("delete_answered");
    Ok(match answer.into_iter().next().map(|(_, result)| result) {
        Some(result) => result,
        None => Err("no answer".into()),
    })
}

/// Whether `record` holds the quantity of row `row` of `rows` (an update's values).
async fn holds_quantity(destination: &dyn Destination, record: &str, rows: &RecordBatch, row: usize) -> Result<bool> {
    let quantity_field = destination.roles().quantity;
    let Some(column) = rows.column_by_name(quantity_field) else {
        return Ok(false);
    };
    let wanted = crate::sync::changes::quantity_at(column, row);
    let located = destination
        .locate(&[dinmo_connectors::Locate {
            destination_ids: vec![record.to_string()],
            row_key: String::new(),
        }])
        .await
        .map_err(|source| DinmoError::Destination {
            sync: "on_change: correct".into(),
            source: Box::new(source),
        })?;
    Ok(match located.first() {
        Some(dinmo_connectors::Located::Records(records)) => records.iter().any(|r| {
            r.id == record
                && r.quantity.as_deref().and_then(crate::sync::changes::parse_nanos) == wanted
                && wanted.is_some()
        }),
        _ => false,
    })
}

/// A text column of `batch` as strings (all `None` when it is missing).
fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let Some(column) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let text = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
        .map_err(DinmoError::arrow(format!("reading `{name}`")))?;
    let text = text
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .ok_or_else(|| DinmoError::Arrow {
            context: format!("reading `{name}`"),
            source: arrow::error::ArrowError::SchemaError(format!("`{name}` is not text")),
        })?;
    Ok(text.iter().map(|v| v.map(str::to_string)).collect())
}

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
