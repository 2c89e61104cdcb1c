//! What the destination holds, read into a local Parquet file of
//! [`holdings_schema`](dinmo_connectors::holdings_schema) a page at a time: from the
//! destination's API, or from a usage export a person downloaded from Zuora.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use dinmo_connectors::{Destination, Holdings, HoldingsQuery, ReceiverFailed, SyncId, holdings_schema};
use parquet::arrow::ArrowWriter;

use crate::error::{DinmoError, Result};

/// A local Parquet file of held records being written; records without an id (an export
/// without its `ID` column) are given one (`line:<n>`), so each can be matched once.
struct HeldFile {
    writer: ArrowWriter<std::fs::File>,
    rows: u64,
    context: String,
}

impl HeldFile {
    fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(DinmoError::io(path))?;
        let context = format!("writing {}", path.display());
        let writer = ArrowWriter::try_new(file, holdings_schema(), None).map_err(DinmoError::parquet(&context))?;
        Ok(HeldFile {
            writer,
            rows: 0,
            context,
        })
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = match batch.column(0).null_count() {
            0 => batch,
            _ => {
                let ids = batch.column(0).as_string::<i32>();
                let named: StringArray = (0..ids.len())
                    .map(|row| match ids.is_valid(row) {
                        true => Some(ids.value(row).to_string()),
                        false => Some(format!("line:{}", self.rows + row as u64 + 1)),
                    })
                    .collect();
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                columns[0] = Arc::new(named);
                RecordBatch::try_new(holdings_schema(), columns).map_err(DinmoError::arrow(&self.context))?
            }
        };
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch).map_err(DinmoError::parquet(&self.context))
    }

    fn finish(self) -> Result<u64> {
        self.writer.close().map_err(DinmoError::parquet(&self.context))?;
        Ok(self.rows)
    }
}

/// Reads what `destination` holds for `query` into `path`; the records read, and what the
/// destination could say.
pub async fn read(
    sync: &SyncId,
    destination: &dyn Destination,
    query: &HoldingsQuery,
    path: &Path,
) -> Result<(Holdings, u64)> {
    let mut file = HeldFile::create(path)?;
    let mut failure: Option<DinmoError> = None;
    let outcome = destination
        .holdings(query, &mut |batch| {
            // The error is kept, and reported in place of the destination's own result.
            file.write(batch).map_err(|error| {
                failure = Some(error);
                ReceiverFailed
            })
        })
        .await;
    if let Some(error) = failure {
        return Err(error);
    }
    let holdings = outcome.map_err(DinmoError::destination(sync.clone()))?;
    let rows = file.finish()?;
    Ok((holdings, rows))
}

/// Reads the usage export at `export` into `path`; whether it carries `Unique Key`, and the
/// records read.
pub fn read_export(sync: &SyncId, export: &Path, path: &Path) -> Result<(bool, u64)> {
    let mut file = HeldFile::create(path)?;
    let mut failure: Option<DinmoError> = None;
    let outcome = dinmo_connectors::zuora_common::export::read_usage_export(export, &mut |batch| {
        file.write(batch).map_err(|error| {
            failure = Some(error);
            ReceiverFailed
        })
    });
    if let Some(error) = failure {
        return Err(error);
    }
    let unique_keys = outcome.map_err(DinmoError::destination(sync.clone()))?;
    Ok((unique_keys, file.finish()?))
}

/// An empty holdings file at `path` (nothing read).
pub fn empty(path: &Path) -> Result<()> {
    HeldFile::create(path)?.finish().map(|_| ())
}
