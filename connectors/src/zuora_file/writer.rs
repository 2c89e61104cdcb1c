//! The `zuora_file` writer: encodes accepted rows into files and acknowledges a batch once
//! every file carrying its rows is stored.

use std::collections::VecDeque;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use object_store::{ObjectStoreExt, PutPayload};
use object_store::path::Path;
use tracing::info;

use crate::destination::{BatchOutcome, Delivery, DestinationWriter, OutputLocation, RowStatus, WriteContext};
use crate::error::{ConnectorError, Result};

use super::config::ZuoraFileConfig;
use super::encoder::{EncodedFile, UsageFileEncoder};
use super::prepare::PreparedBatch;

/// A batch whose accepted rows wait for their file to be stored.
#[derive(Debug)]
struct Waiting {
    batch: RecordBatch,
    statuses: Vec<RowStatus>,
    /// The last file sequence holding one of its rows; `None` when no row was accepted.
    last_file: Option<u32>,
}

pub(super) struct ZuoraFileWriter {
    destination: String,
    config: ZuoraFileConfig,
    output: OutputLocation,
    folder: Path,
    context: WriteContext,
    encoder: Option<UsageFileEncoder>,
    waiting: VecDeque<Waiting>,
    stored_through: u32,
    delivered: Vec<String>,
}

impl ZuoraFileWriter {
    pub fn new(destination: &str, config: &ZuoraFileConfig, output: &OutputLocation, context: WriteContext) -> Result<Self> {
        let folder = output.prefix.clone().join(context.sync_id.as_str());
        Ok(ZuoraFileWriter {
            destination: destination.to_string(),
            config: config.clone(),
            output: output.clone(),
            folder,
            context,
            encoder: None,
            waiting: VecDeque::new(),
            stored_through: 0,
            delivered: Vec::new(),
        })
    }

    fn encoder_for(&mut self, prepared: &PreparedBatch) -> Result<&mut UsageFileEncoder> {
        let encoder = match self.encoder.take() {
            Some(encoder) => encoder,
            None => {
                let stem = self.context.sync_id.split('.').next().unwrap_or("usage");
                UsageFileEncoder::new(
                    &prepared.headers(),
                    self.config.max_file_bytes,
                    self.config.zip,
                    stem,
                    &self.context.run_id,
                )
                .map_err(|e| self.encode_error("header", e))?
            }
        };
        Ok(self.encoder.insert(encoder))
    }

    fn encode_error(&self, file: &str, error: super::encoder::EncodeError) -> ConnectorError {
        ConnectorError::Encode { destination: self.destination.clone(), file: file.to_string(), message: error.to_string() }
    }

    fn path_of(&self, name: &str) -> Path {
        self.folder.clone().join(name)
    }

    async fn store(&mut self, file: EncodedFile, sequence: u32) -> Result<()> {
        let path = self.path_of(&file.name);
        let bytes = file.bytes.len();
        self.output
            .store
            .put(&path, PutPayload::from(file.bytes))
            .await
            .map_err(|source| ConnectorError::Write { destination: self.destination.clone(), path: path.clone(), source })?;
        info!(destination = %self.destination, file = %path, rows = file.rows, bytes, "usage file stored");
        self.stored_through = sequence;
        self.delivered.push(format!("{}/{}", self.output.display.trim_end_matches('/'), relative(&self.output.prefix, &path)));
        Ok(())
    }

    fn release(&mut self) -> Vec<BatchOutcome> {
        let mut done = Vec::new();
        while let Some(front) = self.waiting.front() {
            if front.last_file.is_some_and(|seq| seq > self.stored_through) {
                break;
            }
            if let Some(ready) = self.waiting.pop_front() {
                done.push(BatchOutcome { batch: ready.batch, statuses: ready.statuses });
            }
        }
        done
    }
}

fn relative(prefix: &Path, path: &Path) -> String {
    match path.prefix_match(prefix) {
        Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
        None => path.to_string(),
    }
}

#[async_trait]
impl DestinationWriter for ZuoraFileWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<Vec<BatchOutcome>> {
        let prepared = PreparedBatch::new(&self.destination, self.config.layout, &batch)?;
        let account_column = self.config.layout.account_column();
        let datetime_format = self.config.datetime_format().to_string();
        let mut statuses = Vec::with_capacity(batch.num_rows());
        let mut last_file = None;
        for row in 0..batch.num_rows() {
            if let Some(rejection) = &prepared.rejections[row] {
                statuses.push(RowStatus::Rejected(rejection.clone()));
                continue;
            }
            let fields = prepared.render_row(row, account_column, &datetime_format);
            let encoder = self.encoder_for(&prepared)?;
            let before = encoder.open_sequence();
            let pushed = encoder.push(fields.iter().map(String::as_str));
            let (sequence, finished) = pushed.map_err(|e| self.encode_error("row", e))?;
            let name = self.encoder_for(&prepared)?.file_name(sequence);
            if let Some(file) = finished {
                self.store(file, before).await?;
            }
            statuses.push(RowStatus::Accepted { destination_id: Some(self.path_of(&name).to_string()) });
            last_file = Some(sequence);
        }
        self.waiting.push_back(Waiting { batch, statuses, last_file });
        Ok(self.release())
    }

    async fn finish(mut self: Box<Self>) -> Result<(Vec<BatchOutcome>, Delivery)> {
        if let Some(encoder) = self.encoder.as_mut() {
            let sequence = encoder.open_sequence();
            let finished = encoder.finish_file();
            if let Some(file) = finished.map_err(|e| self.encode_error("last file", e))? {
                self.store(file, sequence).await?;
            }
        }
        let outcomes = self.release();
        debug_assert!(self.waiting.is_empty(), "every file is stored, so every batch is final");
        Ok((outcomes, Delivery { destination_ids: std::mem::take(&mut self.delivered) }))
    }
}
