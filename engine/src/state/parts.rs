//! Parquet files written locally first (staging, pending, snapshot and rejected parts), then
//! uploaded to the state store whole.

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{DinmoError, Result};

/// Column added to snapshot parts: where the destination put the row.
pub const DESTINATION_ID_COLUMN: &str = "_dinmo_destination_id";
/// Column added to snapshot and rejected parts: the run that sent the row.
pub const RUN_ID_COLUMN: &str = "_dinmo_run_id";

/// The columns the snapshot is read as (and a checkpoint's key parts hold): the row key.
pub fn key_part_schema() -> SchemaRef {
    std::sync::Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        dinmo_connectors::ROW_KEY_COLUMN,
        arrow::datatypes::DataType::Utf8,
        false,
    )]))
}

/// Streams batches into a local Parquet file.
pub struct LocalPartWriter {
    path: PathBuf,
    writer: AsyncArrowWriter<tokio::fs::File>,
    rows: u64,
}

impl std::fmt::Debug for LocalPartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl LocalPartWriter {
    /// Creates `path` for batches of `schema`: a part that is stored, compressed with zstd.
    pub async fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let mut properties = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
        // Row keys and destination ids never repeat: a dictionary for them is built, found
        // useless and thrown away for every page (the parquet interner was 6 % of a run).
        for column in [dinmo_connectors::ROW_KEY_COLUMN, DESTINATION_ID_COLUMN] {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        Self::create_with(path, schema, properties.build()).await
    }

    /// Creates `path` for a file that never leaves this machine and is read back once or
    /// twice (the staged model output): neither compressed nor dictionary-encoded, which in
    /// the profile of a no-op run cost a fifth of its time to produce files read once.
    pub async fn create_temporary(path: &Path, schema: SchemaRef) -> Result<Self> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .build();
        Self::create_with(path, schema, properties).await
    }

    async fn create_with(path: &Path, schema: SchemaRef, properties: WriterProperties) -> Result<Self> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(DinmoError::io(parent))?;
        }
        let file = tokio::fs::File::create(path).await.map_err(DinmoError::io(path))?;
        let writer = AsyncArrowWriter::try_new(file, schema, Some(properties))
            .map_err(DinmoError::parquet(path.display().to_string()))?;
        Ok(LocalPartWriter {
            path: path.to_path_buf(),
            writer,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(DinmoError::parquet(self.path.display().to_string()))
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the file; returns its path and row count.
    pub async fn finish(self) -> Result<(PathBuf, u64)> {
        let (path, rows, _) = self.finish_measured().await?;
        Ok((path, rows))
    }

    /// Closes the file; returns its path, row count, and the uncompressed size of its data
    /// (what holding its rows in memory costs, roughly).
    pub async fn finish_measured(self) -> Result<(PathBuf, u64, u64)> {
        let path = self.path;
        let metadata = self
            .writer
            .close()
            .await
            .map_err(DinmoError::parquet(path.display().to_string()))?;
        let bytes = metadata
            .row_groups()
            .iter()
            .map(|group| u64::try_from(group.total_byte_size()).unwrap_or(0))
            .sum();
        Ok((path, self.rows, bytes))
    }
}
