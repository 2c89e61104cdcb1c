//! The `zuora_file` writer: encodes accepted rows into files and acknowledges a batch once
//! every file carrying its rows is stored.
//!
//! Batches are encoded on blocking threads, up to one per core at a time; their records are
//! placed into files in batch order, so names and contents are the same however the work was
//! spread, and a replay rewrites the same files.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use object_store::path::Path;
use tokio::task::JoinHandle;
use tracing::{Instrument, info};

use crate::destination::{BatchOutcome, Delivery, DestinationWriter, OutputLocation, RowStatus, WriteContext};
use crate::error::{ConnectorError, Result};

use super::config::ZuoraFileConfig;
use super::request::{EncodedRows, RowEncoder};
use crate::zuora_common::ack::AckQueue;
use crate::zuora_common::encoder::{EncodedFile, UsageFileEncoder};

/// Files stored at once: enough to keep placing rows while a file is written, few enough
/// that finished files waiting for the store do not pile up in memory.
const STORES_UNDER_WAY: usize = 2;

/// A batch being encoded on a blocking thread.
#[derive(Debug)]
struct Encoding {
    batch: RecordBatch,
    rows: JoinHandle<Result<EncodedRows>>,
}

pub(super) struct ZuoraFileWriter {
    destination: String,
    config: ZuoraFileConfig,
    output: OutputLocation,
    folder: Path,
    context: WriteContext,
    rows: RowEncoder,
    /// Batches being encoded, in the order they were offered.
    encoding: VecDeque<Encoding>,
    /// How many batches may be encoded at once.
    parallelism: usize,
    encoder: Option<UsageFileEncoder>,
    /// Batches waiting for the files holding their rows to be stored.
    waiting: AckQueue,
    /// Files being stored, oldest first, with their sequence numbers.
    storing: VecDeque<(u32, JoinHandle<Result<Path>>)>,
    delivered: Vec<String>,
}

impl ZuoraFileWriter {
    pub fn new(
        destination: &str,
        config: &ZuoraFileConfig,
        output: &OutputLocation,
        context: WriteContext,
    ) -> Result<Self> {
        let folder = output.prefix.clone().join(context.sync_id.as_str());
        Ok(ZuoraFileWriter {
            destination: destination.to_string(),
            config: config.clone(),
            output: output.clone(),
            folder,
            context,
            rows: RowEncoder::new(destination, config.layout(), config.datetime_format()),
            encoding: VecDeque::new(),
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            encoder: None,
            waiting: AckQueue::default(),
            storing: VecDeque::new(),
            delivered: Vec::new(),
        })
    }

    fn encoder_for(&mut self, batch: &RecordBatch) -> Result<&mut UsageFileEncoder> {
        let encoder = match self.encoder.take() {
            Some(encoder) => encoder,
            None => {
                let stem = self.context.sync_id.split('.').next().unwrap_or("usage");
                let headers = self.rows.headers(batch)?;
                let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                UsageFileEncoder::new(
                    &headers,
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

    fn encode_error(&self, file: &str, error: crate::zuora_common::EncodeError) -> ConnectorError {
        ConnectorError::Encode {
            destination: self.destination.clone(),
            file: file.to_string(),
            source: error,
        }
    }

    fn path_of(&self, name: &str) -> Path {
        self.folder.clone().join(name)
    }

    /// Starts storing a finished file on a task of its own, so the rows after it are placed
    /// meanwhile. At most [`STORES_UNDER_WAY`] at once; a batch is acknowledged only once every
    /// file before its last one is stored ([`ZuoraFileWriter::reap_stores`]).
    async fn store(&mut self, file: EncodedFile, sequence: u32) -> Result<()> {
        let path = self.path_of(&file.name);
        let (output, destination) = (self.output.clone(), self.destination.clone());
        let task = async move {
            let bytes = file.bytes.len();
            output.put(&destination, &path, file.bytes).await?;
            info!(destination = %destination, file = %path, rows = file.rows, bytes, "usage file stored");
            Ok(path)
        };
        self.storing.push_back((sequence, tokio::spawn(task.in_current_span())));
        while self.storing.len() > STORES_UNDER_WAY {
            self.reap_oldest_store().await?;
        }
        Ok(())
    }

    /// Records the stores that are done, oldest first, stopping at the first still under way;
    /// with `all`, waits for every one.
    async fn reap_stores(&mut self, all: bool) -> Result<()> {
        while let Some((_, task)) = self.storing.front() {
            if !all && !task.is_finished() {
                break;
            }
            self.reap_oldest_store().await?;
        }
        Ok(())
    }

    async fn reap_oldest_store(&mut self) -> Result<()> {
        let Some((sequence, task)) = self.storing.pop_front() else {
            return Ok(());
        };
        let path = task.await.map_err(|source| ConnectorError::Interrupted {
            destination: self.destination.clone(),
            source,
        })??;
        self.waiting.stored_through(sequence);
        self.delivered.push(self.output.display_of(&path));
        Ok(())
    }

    /// Waits for the oldest batch being encoded and places its records into files, a file's
    /// worth at a time.
    async fn place_oldest(&mut self) -> Result<()> {
        let Some(Encoding { batch, rows }) = self.encoding.pop_front() else {
            return Ok(());
        };
        let encoded = rows.await.map_err(|source| ConnectorError::Interrupted {
            destination: self.destination.clone(),
            source,
        })??;
        // The accepted records, in row order: how many went to which file.
        let mut placed: Vec<(usize, u32)> = Vec::new();
        let (mut taken, mut start) = (0, 0);
        while taken < encoded.ends.len() {
            let encoder = self.encoder_for(&batch)?;
            let before = encoder.open_sequence();
            let pushed = encoder.push_encoded_many(&encoded.bytes, start, &encoded.ends[taken..]);
            let (count, sequence, finished) = pushed.map_err(|e| self.encode_error("row", e))?;
            if let Some(file) = finished {
                self.store(file, before).await?;
            }
            placed.push((count, sequence));
            taken += count;
            start = encoded.ends[taken - 1];
        }
        let mut statuses = Vec::with_capacity(batch.num_rows());
        let mut files = placed.into_iter();
        // The file of the accepted rows now being given statuses, its id, and rows left in it.
        let mut current: Option<(Arc<str>, usize)> = None;
        let mut last_file = None;
        for refusal in encoded.refusals {
            if let Some(rejection) = refusal {
                statuses.push(RowStatus::Rejected(rejection));
                continue;
            }
            if current.as_ref().is_none_or(|(_, left)| *left == 0) {
                // There are as many accepted rows as placed records.
                let Some((count, sequence)) = files.next() else {
                    break;
                };
                let name = self.encoder_for(&batch)?.file_name(sequence);
                current = Some((self.path_of(&name).to_string().into(), count));
                last_file = Some(sequence);
            }
            if let Some((id, left)) = current.as_mut() {
                *left -= 1;
                statuses.push(RowStatus::Accepted {
                    destination_id: Some(Arc::clone(id)),
                });
            }
        }
        self.waiting
            .push(batch, statuses.into_iter().map(Some).collect(), last_file);
        Ok(())
    }

    fn release(&mut self) -> Vec<BatchOutcome> {
        self.waiting.release()
    }
}

#[async_trait]
impl DestinationWriter for ZuoraFileWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<Vec<BatchOutcome>> {
        let rows = self.rows.clone();
        let input = batch.clone();
        self.encoding.push_back(Encoding {
            batch,
            rows: tokio::task::spawn_blocking(move || rows.encode(&input)),
        });
        while self.encoding.len() > self.parallelism {
            self.place_oldest().await?;
        }
        self.reap_stores(false).await?;
        Ok(self.release())
    }

    /// Places nothing more (batches still being encoded stay pending) and waits for the files
    /// being stored, so no write outlives a run that lost its lock; returns the batches whose
    /// files are all stored.
    async fn stop(&mut self) -> Result<Vec<BatchOutcome>> {
        self.reap_stores(true).await?;
        Ok(self.release())
    }

    async fn finish(mut self: Box<Self>) -> Result<(Vec<BatchOutcome>, Delivery)> {
        while !self.encoding.is_empty() {
            self.place_oldest().await?;
        }
        if let Some(encoder) = self.encoder.as_mut() {
            let sequence = encoder.open_sequence();
            let finished = encoder.finish_file();
            if let Some(file) = finished.map_err(|e| self.encode_error("last file", e))? {
                self.store(file, sequence).await?;
            }
        }
        self.reap_stores(true).await?;
        let outcomes = self.release();
        debug_assert!(self.waiting.is_empty(), "every file is stored, so every batch is final");
        Ok((
            outcomes,
            Delivery {
                destination_ids: std::mem::take(&mut self.delivered),
                fallbacks: Vec::new(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};

    use super::*;
    use crate::destination::{Destination, ROW_KEY_COLUMN};
    use crate::zuora_file::ZuoraFileDestination;
    use crate::zuora_file::config::LayoutName;

    fn batch(start: usize, rows: usize, negative_every: Option<usize>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("AccountNumber", DataType::Utf8, false),
            Field::new("UnitOfMeasure", DataType::Utf8, false),
            Field::new("StartDateTime", DataType::Utf8, false),
            Field::new("Quantity", DataType::Int64, false),
            Field::new("Description", DataType::Utf8, true),
            Field::new(ROW_KEY_COLUMN, DataType::Utf8, false),
        ]));
        let ids: Vec<usize> = (start..start + rows).collect();
        let quantity = |i: usize| match negative_every {
            Some(n) if i.is_multiple_of(n) => -1,
            _ => i as i64,
        };
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("A{i:08}")))),
                Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "API_CALL"))),
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|_| "2026-11-21T00:00:00Z"),
                )),
                Arc::new(Int64Array::from_iter_values(ids.iter().map(|&i| quantity(i)))),
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| format!("usage row {i} {}", "x".repeat(60))),
                )),
                Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("{i:032x}")))),
            ],
        )
        .unwrap()
    }

    fn destination(store: Arc<InMemory>) -> ZuoraFileDestination {
        let config = ZuoraFileConfig {
            path: "mem://out".into(),
            layout: Some(LayoutName::ActiveRating),
            max_file_bytes: 64 * 1024,
            zip: false,
            datetime_format: None,
        };
        let output = OutputLocation {
            store,
            prefix: Path::from("out"),
            display: "mem://out".into(),
        };
        ZuoraFileDestination::new("files", config, output).unwrap()
    }

    fn context() -> WriteContext {
        WriteContext {
            sync_id: "calls.files".into(),
            run_id: "20261121T150600000Z-9f3a".into(),
            journal: None,
        }
    }

    /// Every row of the handed-back batches is accepted and sits in a file already stored.
    async fn assert_every_row_stored(store: &InMemory, outcomes: &[BatchOutcome]) {
        for outcome in outcomes {
            for status in &outcome.statuses {
                let RowStatus::Accepted {
                    destination_id: Some(id),
                } = status
                else {
                    panic!("{status:?}")
                };
                store.head(&Path::from(id.as_ref())).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn batches_are_acknowledged_only_once_their_files_are_stored() {
        let store = Arc::new(InMemory::new());
        let destination = destination(Arc::clone(&store));
        let mut writer = destination.open(context()).await.unwrap();
        let mut acknowledged = Vec::new();
        for i in 0..10 {
            let outcomes = writer.write(batch(i * 200, 200, None)).await.unwrap();
            assert_every_row_stored(&store, &outcomes).await;
            acknowledged.extend(outcomes);
        }
        assert!(acknowledged.len() < 10, "the last batches wait for the open file");
        let (rest, delivery) = writer.finish().await.unwrap();
        acknowledged.extend(rest);
        assert_eq!(acknowledged.iter().map(BatchOutcome::accepted).sum::<usize>(), 2000);

        let files: Vec<_> = store
            .list(Some(&Path::from("out/calls.files")))
            .try_collect()
            .await
            .unwrap();
        assert!(
            files.len() > 2,
            "2000 rows of ~130 bytes split at 64 KiB: {} file(s)",
            files.len()
        );
        assert_eq!(delivery.destination_ids.len(), files.len());
        let mut rows = Vec::new();
        for file in &files {
            assert!(file.size <= 64 * 1024, "{} has {} bytes", file.location, file.size);
            assert!(file.location.filename().unwrap().len() <= 50);
            let text = store.get(&file.location).await.unwrap().bytes().await.unwrap();
            let text = String::from_utf8(text.to_vec()).unwrap();
            rows.extend(text.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()));
        }
        rows.sort();
        rows.dedup();
        assert_eq!(rows.len(), 2000, "every row in exactly one file");
    }

    #[tokio::test]
    async fn a_stopped_writer_waits_for_its_files_and_acknowledges_only_stored_rows() {
        let store = Arc::new(InMemory::new());
        let destination = destination(Arc::clone(&store));
        let mut writer = destination.open(context()).await.unwrap();
        let mut acknowledged = Vec::new();
        for i in 0..6 {
            acknowledged.extend(writer.write(batch(i * 200, 200, None)).await.unwrap());
        }
        acknowledged.extend(writer.stop().await.unwrap());
        let rows: usize = acknowledged.iter().map(BatchOutcome::accepted).sum();
        assert!(rows < 1200, "the open file and the batches being encoded are not sent");
        assert_every_row_stored(&store, &acknowledged).await;
        let files: Vec<_> = store.list(None).try_collect().await.unwrap();
        let stored_rows: usize = {
            let mut n = 0;
            for file in &files {
                let text = store.get(&file.location).await.unwrap().bytes().await.unwrap();
                n += String::from_utf8(text.to_vec()).unwrap().lines().count() - 1;
            }
            n
        };
        assert!(stored_rows >= rows, "{stored_rows} stored, {rows} acknowledged");
    }

    #[tokio::test]
    async fn rule_violations_are_rejected_and_never_written() {
        let store = Arc::new(InMemory::new());
        let destination = destination(Arc::clone(&store));
        let input = batch(0, 10, Some(3));
        let verdicts = destination.check_batch(&input).unwrap();
        assert_eq!(verdicts.iter().filter(|v| v.is_some()).count(), 4, "rows 0, 3, 6, 9");
        let mut writer = destination.open(context()).await.unwrap();
        let mut outcomes = writer.write(input).await.unwrap();
        outcomes.extend(writer.finish().await.unwrap().0);
        assert_eq!(outcomes.len(), 1);
        assert_eq!((outcomes[0].accepted(), outcomes[0].rejected()), (6, 4));
        let RowStatus::Rejected(reason) = &outcomes[0].statuses[3] else {
            panic!("row 3 must be rejected")
        };
        assert_eq!(reason.field.as_deref(), Some("Quantity"));
        let files: Vec<_> = store.list(None).try_collect().await.unwrap();
        let text = store.get(&files[0].location).await.unwrap().bytes().await.unwrap();
        assert_eq!(String::from_utf8(text.to_vec()).unwrap().lines().count(), 1 + 6);
    }

    #[tokio::test]
    async fn a_batch_of_only_rejected_rows_is_final_without_a_file() {
        let destination = destination(Arc::new(InMemory::new()));
        let mut writer = destination.open(context()).await.unwrap();
        let mut outcomes = writer.write(batch(0, 3, Some(1))).await.unwrap();
        let (rest, delivery) = writer.finish().await.unwrap();
        outcomes.extend(rest);
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].rejected(), 3);
        assert!(delivery.destination_ids.is_empty());
    }
}
