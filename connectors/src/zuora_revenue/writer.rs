//! The `zuora_revenue` writer: accepted rows go into files of at most `max_lines` lines; each
//! finished file is stored (file mode) or uploaded and followed to staged or failed (api mode,
//! at most two at a time); a batch is handed back once every row in it has a final status.
//! A failed upload is whole: each of its rows is rejected with Revenue's message, and the
//! next run offers them again.

use crate::ids::SyncId;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use tracing::info;

use super::request::{OpenFile, ReadyFile, file_name};
use super::template::{PreparedRows, Rules};
use super::upload::{FileOutcome, Uploader};
use crate::destination::{BatchOutcome, Delivery, DestinationWriter, OutputLocation, RowStatus, WriteContext};
use crate::error::Result;
use crate::rules::{RejectCode, Rejection};
use crate::zuora_common::ack::AckQueue;

/// Where finished files go.
#[derive(Debug)]
pub(super) enum Sink {
    /// A folder: `<output>/<sync>/<file>`, one atomic put each.
    Folder(OutputLocation),
    /// The Revenue upload API.
    Api(Arc<Uploader>),
}

/// Files sent but not yet settled, at most this many (Revenue's per-tenant upload limit).
const IN_FLIGHT: usize = 2;

type Settling = BoxFuture<'static, (ReadyFile, Result<FileOutcome>)>;

pub(super) struct RevenueWriter {
    destination: String,
    rules: Rules,
    max_lines: usize,
    context: WriteContext,
    sink: Sink,
    open: Option<OpenFile>,
    next_sequence: u32,
    /// Batches waiting for the files holding their rows to be settled.
    waiting: AckQueue,
    in_flight: FuturesOrdered<Settling>,
    delivered: Vec<String>,
}

impl RevenueWriter {
    pub fn new(destination: &str, rules: Rules, max_lines: usize, context: WriteContext, sink: Sink) -> Self {
        RevenueWriter {
            destination: destination.to_string(),
            rules,
            max_lines,
            context,
            sink,
            open: None,
            next_sequence: 1,
            waiting: AckQueue::default(),
            in_flight: FuturesOrdered::new(),
            delivered: Vec::new(),
        }
    }

    /// Closes the open file and sends it on its way; waits for the oldest file in flight
    /// when two already are.
    async fn close_file(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let name = file_name(&self.context.sync_id, &self.context.run_id, open.sequence);
        let file = open.finish(name);
        match &self.sink {
            Sink::Folder(output) => {
                let outcome = store(&self.destination, output, &self.context.sync_id, &file).await;
                self.settle(file, outcome)
            }
            Sink::Api(uploader) => {
                let uploader = Arc::clone(uploader);
                if self.in_flight.len() >= IN_FLIGHT
                    && let Err(error) = self.settle_next().await
                {
                    // The other upload still in flight finishes first: dropped half way, it
                    // would leave Revenue holding a file nobody recorded an answer for.
                    if let Err(later) = self.settle_all().await {
                        tracing::warn!(destination = %self.destination, error = %later, "another upload failed too");
                    }
                    return Err(error);
                }
                self.in_flight.push_back(Box::pin(async move {
                    let outcome = uploader.deliver(&file).await;
                    (file, outcome)
                }));
                Ok(())
            }
        }
    }

    /// Waits for the oldest file in flight and applies its outcome.
    async fn settle_next(&mut self) -> Result<()> {
        match self.in_flight.next().await {
            Some((file, outcome)) => self.settle(file, outcome),
            None => Ok(()),
        }
    }

    /// Waits for every file in flight. On failure the others are still awaited and applied
    /// (what they acknowledged must be committed); the first error is returned.
    async fn settle_all(&mut self) -> Result<()> {
        let mut first_error = None;
        while let Some((file, outcome)) = self.in_flight.next().await {
            if let Err(error) = self.settle(file, outcome) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Gives every row of `file` its final status.
    fn settle(&mut self, file: ReadyFile, outcome: Result<FileOutcome>) -> Result<()> {
        let status = match outcome? {
            FileOutcome::Partial { id, rejected } => {
                self.delivered.push(id.clone());
                let accepted = RowStatus::Accepted {
                    destination_id: Some(id.into()),
                };
                for (line, &(batch, row)) in file.members.iter().enumerate() {
                    let status = match rejected.iter().find(|(at, _)| *at == line as u64) {
                        Some((_, message)) => RowStatus::Rejected(Rejection {
                            code: RejectCode::Destination("revenue_row_rejected".into()),
                            field: None,
                            message: format!("{}: {message}", file.name),
                        }),
                        None => accepted.clone(),
                    };
                    self.waiting.settle(batch, row, &status);
                }
                return Ok(());
            }
            FileOutcome::Delivered { id } => {
                self.delivered.push(id.clone());
                RowStatus::Accepted {
                    destination_id: Some(id.into()),
                }
            }
            FileOutcome::Failed { message } => RowStatus::Rejected(Rejection {
                code: RejectCode::Destination("revenue_upload_failed".into()),
                field: None,
                message: format!("{}: {message}", file.name),
            }),
        };
        for &(batch, row) in &file.members {
            self.waiting.settle(batch, row, &status);
        }
        Ok(())
    }

    /// The batches at the front whose rows are all final.
    fn release(&mut self) -> Vec<BatchOutcome> {
        self.waiting.release()
    }
}

/// File mode: one atomic put under `<output>/<sync>/<name>`.
async fn store(destination: &str, output: &OutputLocation, sync_id: &SyncId, file: &ReadyFile) -> Result<FileOutcome> {
    let path = output.prefix.clone().join(sync_id.as_str()).join(file.name.as_str());
    output.put(destination, &path, file.bytes.clone()).await?;
    info!(destination, file = %path, rows = file.rows(), "revenue usage file stored");
    Ok(FileOutcome::Delivered {
        id: output.display_of(&path),
    })
}

#[async_trait]
impl DestinationWriter for RevenueWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<Vec<BatchOutcome>> {
        let prepared = PreparedRows::new(&self.destination, &self.rules, &batch)?;
        let statuses: Vec<Option<RowStatus>> = prepared
            .rejections
            .iter()
            .map(|r| r.clone().map(RowStatus::Rejected))
            .collect();
        let number = self.waiting.push(batch, statuses, None);
        for row in 0..prepared.rejections.len() {
            if prepared.rejections[row].is_some() {
                continue;
            }
            if self.open.is_none() {
                let sequence = self.next_sequence;
                self.next_sequence += 1;
                let headers = prepared.headers.iter().map(String::as_str);
                self.open = Some(OpenFile::new(sequence, headers));
            }
            if let Some(open) = self.open.as_mut() {
                let key = prepared.keys.get(row).map_or("", String::as_str);
                open.push((number, row as u32), key, prepared.row(row));
                if open.lines() >= self.max_lines {
                    self.close_file().await?;
                }
            }
        }
        Ok(self.release())
    }

    async fn flush(&mut self) -> Result<Vec<BatchOutcome>> {
        self.close_file().await?;
        self.settle_all().await?;
        Ok(self.release())
    }

    async fn stop(&mut self) -> Result<Vec<BatchOutcome>> {
        self.settle_all().await?;
        Ok(self.release())
    }

    async fn finish(mut self: Box<Self>) -> Result<(Vec<BatchOutcome>, Delivery)> {
        let outcomes = self.flush().await?;
        Ok((
            outcomes,
            Delivery {
                destination_ids: std::mem::take(&mut self.delivered),
                fallbacks: Vec::new(),
            },
        ))
    }

    fn acknowledged_before_failure(&mut self) -> Vec<BatchOutcome> {
        self.waiting.drain_final()
    }
}
