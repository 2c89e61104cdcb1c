//! Parquet files written locally first (staging, pending, snapshot and rejected parts), then
//! uploaded to the state store whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowLeafColumn, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::manifest::KeyEncoding;
use super::row_key::{binary_keys, hashes_of, hex_keys};
use crate::error::{DinmoError, Result};

/// Column added to snapshot parts: where the destination put the row.
pub const DESTINATION_ID_COLUMN: &str = "_dinmo_destination_id";
/// Column added to snapshot and rejected parts: the run that sent the row.
pub const RUN_ID_COLUMN: &str = "_dinmo_run_id";

/// The columns the snapshot is read as (and a checkpoint's key parts hold): the row key,
/// stored as `encoding` says.
pub fn key_part_schema(encoding: KeyEncoding) -> SchemaRef {
    std::sync::Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        dinmo_connectors::ROW_KEY_COLUMN,
        key_type(encoding),
        false,
    )]))
}

/// The columns of a checkpoint's key parts: the row key as 16 bytes, and the row's value
/// ([`VALUE_COLUMN`](super::values::VALUE_COLUMN)).
pub fn key_value_part_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(dinmo_connectors::ROW_KEY_COLUMN, key_type(KeyEncoding::Binary), false),
        Field::new(super::values::VALUE_COLUMN, DataType::UInt64, false),
    ]))
}

/// The Arrow type of a row key stored as `encoding` says.
pub fn key_type(encoding: KeyEncoding) -> DataType {
    match encoding {
        KeyEncoding::Hex => DataType::Utf8,
        KeyEncoding::Binary => DataType::FixedSizeBinary(16),
    }
}

/// How a column of `data_type` stores row keys; `None` when it cannot hold them.
pub fn encoding_of(data_type: &DataType) -> Option<KeyEncoding> {
    match data_type {
        DataType::FixedSizeBinary(16) => Some(KeyEncoding::Binary),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(KeyEncoding::Hex),
        _ => None,
    }
}

/// `batch` with its row keys ([`ROW_KEY_COLUMN`](dinmo_connectors::ROW_KEY_COLUMN)) stored as
/// `encoding` says: as 16 bytes for a snapshot part, as hex text for whoever reads a part's
/// rows. A batch without the column, or whose keys are stored so already, comes back as it
/// is; keys that are not row keys are an error.
pub fn with_keys_as(batch: RecordBatch, encoding: KeyEncoding) -> Result<RecordBatch, ArrowError> {
    let Ok(index) = batch.schema().index_of(dinmo_connectors::ROW_KEY_COLUMN) else {
        return Ok(batch);
    };
    let stored = batch.column(index).data_type();
    let other_way = match encoding {
        KeyEncoding::Hex => matches!(stored, DataType::FixedSizeBinary(_)),
        KeyEncoding::Binary => stored != &key_type(KeyEncoding::Binary),
    };
    if !other_way {
        return Ok(batch);
    }
    let hashes = hashes_of(batch.column(index))?;
    let keys = match encoding {
        KeyEncoding::Hex => hex_keys(&hashes)?,
        KeyEncoding::Binary => binary_keys(&hashes)?,
    };
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = Field::new(
        dinmo_connectors::ROW_KEY_COLUMN,
        key_type(encoding),
        fields[index].is_nullable(),
    );
    let mut columns = batch.columns().to_vec();
    columns[index] = keys;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Streams batches into a local Parquet file. The encoding and compression run on a blocking
/// thread of their own, fed through a short channel, so the task handing batches over (the
/// diff, delivery's commits) keeps working meanwhile. That thread hands each column to an encoder thread of its own (see [`encode`]).
pub struct LocalPartWriter {
    path: PathBuf,
    /// `None` once the file is being finished.
    batches: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    /// The encoding thread: the uncompressed size of the data it wrote. `None` once joined.
    encoder: Option<tokio::task::JoinHandle<Result<u64>>>,
    /// Rows handed over, by [`LocalPartWriter::write`] and by every [`PartFeed`].
    rows: Arc<AtomicU64>,
}

/// A handle through which other tasks append batches to a [`LocalPartWriter`]'s file, straight
/// into its encoder's queue: several tasks write one file without a queue of their own in
/// front. The file is finished by the writer, once every feed is dropped.
#[derive(Debug, Clone)]
pub struct PartFeed {
    batches: tokio::sync::mpsc::Sender<RecordBatch>,
    rows: Arc<AtomicU64>,
}

impl PartFeed {
    /// Appends a batch; `false` when the encoder has stopped (it failed: finishing the writer
    /// says why).
    pub async fn send(&self, batch: RecordBatch) -> bool {
        let rows = batch.num_rows() as u64;
        let sent = self.batches.send(batch).await.is_ok();
        if sent {
            self.rows.fetch_add(rows, Ordering::Relaxed);
        }
        sent
    }
}

/// Rows of a row group in the staged files. A writer holds a whole row group in memory
/// before writing it, one per staging task, so the row group bounds the staging's memory
/// (`docs/performance.md` has the measurements behind the size).
const LOCAL_ROW_GROUP_ROWS: usize = 128 * 1024;

/// The largest dictionary page of a pending file or stored part: a column of few values
/// (accounts, units, a usage file's id) keeps its dictionary, one of many (quantities, times)
/// falls back to plain encoding after a few thousand values instead of the 1 MiB default,
/// having interned every value until then (the parquet interner was a tenth of a
/// first run's profile; the parts came out the same size, `docs/performance.md`).
const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// Batches waiting for the encoder: enough to keep it busy, few enough to bound memory.
const QUEUED_BATCHES: usize = 4;

impl std::fmt::Debug for LocalPartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartWriter")
            .field("path", &self.path)
            .field("rows", &self.rows())
            .finish()
    }
}

impl LocalPartWriter {
    /// Creates `path` for batches of `schema`: a part that is stored, compressed with zstd.
    pub async fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES);
        // Row keys never repeat: a dictionary for them is built, found useless and thrown away
        // for every page (the parquet interner was 6 % of a run). Destination ids keep theirs:
        // a usage file's rows share its id (tens of thousands of rows, one 60-byte string),
        // and a per-record id only costs the dictionary's first page before parquet falls
        // back to plain encoding.
        properties =
            properties.set_column_dictionary_enabled(ColumnPath::from(dinmo_connectors::ROW_KEY_COLUMN), false);
        // Nothing prunes on dinmo's own columns, and their minimum and maximum cost two
        // comparisons a value. The destination's fields keep theirs, for whoever queries the
        // parts.
        for column in [
            dinmo_connectors::ROW_KEY_COLUMN,
            DESTINATION_ID_COLUMN,
            RUN_ID_COLUMN,
            super::values::VALUE_COLUMN,
        ] {
            properties = properties.set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
        }
        // Value hashes are random 64-bit words, like the keys: no dictionary, no compression.
        let value = ColumnPath::from(super::values::VALUE_COLUMN);
        properties = properties
            .set_column_dictionary_enabled(value.clone(), false)
            .set_column_compression(value, Compression::UNCOMPRESSED);
        // Keys stored as their 16 bytes are random: zstd cannot shrink them, only spend time
        // trying.
        let key = schema.field_with_name(dinmo_connectors::ROW_KEY_COLUMN).ok();
        if key.and_then(|key| encoding_of(key.data_type())) == Some(KeyEncoding::Binary) {
            properties = properties.set_column_compression(
                ColumnPath::from(dinmo_connectors::ROW_KEY_COLUMN),
                Compression::UNCOMPRESSED,
            );
        }
        Self::create_with(path, schema, properties.build()).await
    }

    /// Creates `path` for a run's pending rows: stored until the run settles, then deleted.
    /// LZ4 rather than zstd, for a file that lives minutes and is written while the diff
    /// waits. The row keys are not compressed at all: without entropy coding, 32 hex digits
    /// barely shrink. No statistics: the file is read whole, once or twice, and nothing prunes
    /// on it. (`docs/performance.md` has the measurements.)
    pub async fn create_pending(path: &Path, schema: SchemaRef) -> Result<Self> {
        let key = ColumnPath::from(dinmo_connectors::ROW_KEY_COLUMN);
        let properties = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_column_dictionary_enabled(key.clone(), false)
            .set_column_compression(key, Compression::UNCOMPRESSED)
            .build();
        Self::create_with(path, schema, properties).await
    }

    /// Creates `path` for a file that never leaves this machine and is read back once or
    /// twice (the staged model output): neither compressed nor dictionary-encoded, which in
    /// the profile of a no-op run cost a fifth of its time to produce files read once, and
    /// without statistics (its reads filter nothing).
    pub async fn create_temporary(path: &Path, schema: SchemaRef) -> Result<Self> {
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(LOCAL_ROW_GROUP_ROWS))
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .build();
        Self::create_with(path, schema, properties).await
    }

    async fn create_with(path: &Path, schema: SchemaRef, properties: WriterProperties) -> Result<Self> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(DinmoError::io(parent))?;
        }
        let file = create_local_file(path).await?;
        let file = file.into_std().await;
        let group_rows = properties
            .max_row_group_row_count()
            .unwrap_or(parquet::file::properties::DEFAULT_MAX_ROW_GROUP_ROW_COUNT)
            .max(1);
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties))
            .map_err(DinmoError::parquet(path.display().to_string()))?;
        let (batches, queue) = tokio::sync::mpsc::channel(QUEUED_BATCHES);
        let context = path.display().to_string();
        let encoder = tokio::task::spawn_blocking(move || encode(writer, schema, group_rows, queue, context));
        Ok(LocalPartWriter {
            path: path.to_path_buf(),
            batches: Some(batches),
            encoder: Some(encoder),
            rows: Arc::default(),
        })
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        let sent = match &self.batches {
            Some(batches) => batches.send(batch.clone()).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The encoder stopped taking batches: it failed, and says why when joined.
        self.batches = None;
        match self.join().await {
            Ok(_) => Err(self.stopped(None)),
            Err(error) => Err(error),
        }
    }

    /// Waits for the encoding thread (once; later calls find it gone).
    async fn join(&mut self) -> Result<u64> {
        match self.encoder.take() {
            Some(encoder) => match encoder.await {
                Ok(written) => written,
                Err(source) => Err(self.stopped(Some(source))),
            },
            None => Err(self.stopped(None)),
        }
    }

    /// The error for an encoder that stopped without saying why (it panicked or was cancelled).
    fn stopped(&self, source: Option<tokio::task::JoinError>) -> DinmoError {
        match source {
            Some(source) => DinmoError::Interrupted {
                task: format!("writing {}", self.path.display()),
                source,
            },
            None => DinmoError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("the Parquet encoder stopped before the file was finished"),
            },
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// A handle for other tasks to append batches through; `None` once the file is being
    /// finished.
    pub fn feed(&self) -> Option<PartFeed> {
        self.batches.as_ref().map(|batches| PartFeed {
            batches: batches.clone(),
            rows: Arc::clone(&self.rows),
        })
    }

    /// Closes the file; returns its path and row count.
    pub async fn finish(self) -> Result<(PathBuf, u64)> {
        let (path, rows, _) = self.finish_measured().await?;
        Ok((path, rows))
    }

    /// Closes the file; returns its path, row count, and the uncompressed size of its data
    /// (what holding its rows in memory costs, roughly). Every [`PartFeed`] must be dropped
    /// first: the encoder writes the footer once the last sender of its queue is gone.
    pub async fn finish_measured(mut self) -> Result<(PathBuf, u64, u64)> {
        // Closing the queue tells the encoder to write the footer.
        self.batches = None;
        let bytes = self.join().await?;
        let rows = self.rows.load(Ordering::Relaxed);
        Ok((self.path, rows, bytes))
    }
}

/// Creates the local file `path` afresh: a file already there is removed first, not
/// truncated. A local file stored into a local state is linked there, not copied
/// ([`StateStore::upload`](super::StateStore::upload)), so rewriting it in place would rewrite
/// the stored part too.
pub async fn create_local_file(path: &Path) -> Result<tokio::fs::File> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(DinmoError::io(path)(error)),
    }
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(DinmoError::io(path))
}

/// Removes `folder` with everything in it, each file on a blocking thread of its own: removing
/// a large file also drops its pages from the page cache, which is slow one file after the
/// other. A file or folder that cannot be removed is
/// logged and left behind (a run's staging folder is removed once more when the run ends).
pub async fn remove_local_folder(folder: PathBuf) {
    let listed = folder.clone();
    let files = match tokio::task::spawn_blocking(move || files_under(&listed)).await {
        Ok(Ok(files)) => files,
        Ok(Err(error)) => {
            tracing::warn!(folder = %folder.display(), %error, "could not list a local folder to remove it");
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(folder = %folder.display(), %error, "listing a local folder to remove it stopped");
            Vec::new()
        }
    };
    let removals: Vec<_> = files
        .into_iter()
        .map(|file| tokio::task::spawn_blocking(move || std::fs::remove_file(&file).map_err(|e| (file, e))))
        .collect();
    for removal in removals {
        match removal.await {
            Ok(Ok(())) => {}
            Ok(Err((file, error))) => tracing::warn!(file = %file.display(), %error, "could not remove a local file"),
            Err(error) => tracing::warn!(%error, "removing a local file stopped"),
        }
    }
    let removed = folder.clone();
    match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&removed)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
        Ok(Err(error)) => tracing::warn!(folder = %folder.display(), %error, "could not remove a local folder"),
        Err(error) => tracing::warn!(folder = %folder.display(), %error, "removing a local folder stopped"),
    }
}

/// Every file under `folder`, in its subfolders too; none when it does not exist.
fn files_under(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(next) = folders.pop() {
        let entries = match std::fs::read_dir(&next) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                folders.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// The encoding thread: writes every queued batch, then the footer once the queue closes.
///
/// The columns of a row group are encoded in parallel, one thread each (parquet's
/// `ArrowColumnWriter`s), and appended to the file in order when the row group is full, so
/// a wide file does not hold one core while the others wait.
fn encode(
    writer: ArrowWriter<std::fs::File>,
    schema: SchemaRef,
    group_rows: usize,
    mut queue: tokio::sync::mpsc::Receiver<RecordBatch>,
    context: String,
) -> Result<u64> {
    let failed = |source| DinmoError::parquet(context.clone())(source);
    let (mut file, columns) = writer.into_serialized_writer().map_err(&failed)?;
    let mut carried: Option<RecordBatch> = None;
    let mut more = true;
    for index in 0.. {
        if !more && carried.is_none() {
            break;
        }
        let writers = columns.create_column_writers(index).map_err(&failed)?;
        let mut rows = 0;
        let chunks = std::thread::scope(|scope| {
            let workers: Vec<_> = writers
                .into_iter()
                .map(|mut column| {
                    let (sender, leaves) = std::sync::mpsc::sync_channel::<ArrowLeafColumn>(QUEUED_BATCHES);
                    let worker = scope.spawn(move || {
                        for leaf in leaves {
                            column.write(&leaf)?;
                        }
                        column.close()
                    });
                    (sender, worker)
                })
                .collect();
            let mut sent = Ok(true);
            while rows < group_rows && matches!(sent, Ok(true)) {
                let batch = match carried.take() {
                    Some(batch) => batch,
                    None => match queue.blocking_recv() {
                        Some(batch) => batch,
                        None => {
                            more = false;
                            break;
                        }
                    },
                };
                // A batch that would overfill the row group is split; the rest starts the next.
                let room = group_rows - rows;
                let batch = if batch.num_rows() > room {
                    carried = Some(batch.slice(room, batch.num_rows() - room));
                    batch.slice(0, room)
                } else {
                    batch
                };
                rows += batch.num_rows();
                // `Ok(false)`: an encoder failed, and joining it says why.
                sent = send_leaves(&batch, &schema, &workers);
            }
            let mut chunks = Vec::with_capacity(workers.len());
            for (sender, worker) in workers {
                drop(sender);
                chunks.push(match worker.join() {
                    Ok(chunk) => chunk,
                    Err(_) => Err(parquet::errors::ParquetError::General(
                        "a column's encoder stopped unexpectedly".into(),
                    )),
                });
            }
            sent.and_then(|_| chunks.into_iter().collect::<parquet::errors::Result<Vec<_>>>())
        })
        .map_err(&failed)?;
        if rows == 0 {
            break;
        }
        let mut group = file.next_row_group().map_err(&failed)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group).map_err(&failed)?;
        }
        group.close().map_err(&failed)?;
    }
    // Writes the footer and flushes the file.
    let metadata = file.close().map_err(&failed)?;
    Ok(metadata
        .row_groups()
        .iter()
        .map(|group| u64::try_from(group.total_byte_size()).unwrap_or(0))
        .sum())
}

/// Hands each column of `batch` to its encoder thread; `false` when one has stopped (it
/// failed, and its error comes out when it is joined).
fn send_leaves(
    batch: &RecordBatch,
    schema: &SchemaRef,
    workers: &[(
        std::sync::mpsc::SyncSender<ArrowLeafColumn>,
        std::thread::ScopedJoinHandle<'_, parquet::errors::Result<ArrowColumnChunk>>,
    )],
) -> parquet::errors::Result<bool> {
    let types = |s: &arrow::datatypes::Schema| s.fields().iter().map(|f| f.data_type().clone()).collect::<Vec<_>>();
    if types(&batch.schema()) != types(schema) {
        return Err(parquet::errors::ParquetError::ArrowError(format!(
            "a batch of other columns ({}) than the file's ({})",
            batch.schema(),
            schema
        )));
    }
    let mut workers = workers.iter();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, column)? {
            match workers.next() {
                Some((sender, _)) if sender.send(leaf).is_ok() => {}
                _ => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Writes `batch` to the file at `path`, creating it (with `batch`'s schema) on the first batch.
pub async fn write_lazily(writer: &mut Option<LocalPartWriter>, path: &Path, batch: &RecordBatch) -> Result<()> {
    if writer.is_none() {
        *writer = Some(LocalPartWriter::create(path, batch.schema()).await?);
    }
    match writer {
        Some(writer) => writer.write(batch).await,
        None => Ok(()),
    }
}

/// Every batch of a small local Parquet file dinmo wrote (changed or held rows, corrections),
/// read whole.
pub async fn read_all(path: &Path) -> Result<Vec<RecordBatch>> {
    use futures::StreamExt;
    let mut stream = read_parquet(path, 8192).await?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.map_err(DinmoError::parquet(path.display().to_string()))?);
    }
    Ok(batches)
}

/// Streams the batches of a local Parquet file, `batch_rows` rows at a time
/// (`DINMO_DELIVERY_BATCH_ROWS`; smaller batches mean more, smaller commits).
pub async fn read_parquet(
    path: &Path,
    batch_rows: usize,
) -> Result<parquet::arrow::async_reader::ParquetRecordBatchStream<tokio::fs::File>> {
    let file = tokio::fs::File::open(path).await.map_err(DinmoError::io(path))?;
    let context = path.display().to_string();
    parquet::arrow::ParquetRecordBatchStreamBuilder::new(file)
        .await
        .map_err(DinmoError::parquet(context.clone()))?
        .with_batch_size(batch_rows)
        .build()
        .map_err(DinmoError::parquet(context))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn keys(range: std::ops::Range<usize>) -> RecordBatch {
        let values: Vec<String> = range.map(|i| format!("{i:032x}")).collect();
        RecordBatch::try_new(
            key_part_schema(KeyEncoding::Hex),
            vec![Arc::new(StringArray::from(values))],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn batches_written_on_the_encoding_thread_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/part.parquet");
        let mut writer = LocalPartWriter::create(&path, key_part_schema(KeyEncoding::Hex))
            .await
            .unwrap();
        // More batches than the queue holds, so the writer waits for the encoder.
        for start in (0..10_000).step_by(1_000) {
            writer.write(&keys(start..start + 1_000)).await.unwrap();
        }
        assert_eq!(writer.rows(), 10_000);
        let (written, rows, bytes) = writer.finish_measured().await.unwrap();
        assert_eq!((written.as_path(), rows), (path.as_path(), 10_000));
        assert!(bytes >= 10_000 * 32, "uncompressed size {bytes}");
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let read: Vec<String> = reader.flat_map(|batch| crate::diff::keys_of(&batch.unwrap())).collect();
        let expected: Vec<String> = (0..10_000).map(|i| format!("{i:032x}")).collect();
        assert_eq!(read, expected);
    }

    #[tokio::test]
    async fn columns_encoded_in_parallel_read_back_as_written_in_full_row_groups() {
        use arrow::array::{Float64Array, ListArray, TimestampMicrosecondArray};
        use arrow::datatypes::Int64Type;
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        let schema = Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("quantity", DataType::Float64, true),
            // A nested column has leaves of its own, each with its own encoder.
            Field::new_list("tags", Field::new_list_field(DataType::Int64, true), true),
            Field::new(dinmo_connectors::ROW_KEY_COLUMN, DataType::Utf8, false),
        ]));
        let batch = |start: usize| {
            let rows = start..start + 750;
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from_iter(
                        rows.clone().map(|i| (i % 7 != 0).then(|| format!("A{}", i % 13))),
                    )),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(rows.clone().map(|i| i as i64 * 1_000_000))
                            .with_timezone("UTC"),
                    ),
                    Arc::new(Float64Array::from_iter(
                        rows.clone().map(|i| (i % 5 != 0).then_some(i as f64 / 4.0)),
                    )),
                    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(rows.clone().map(
                        |i| {
                            (i % 3 != 0).then(|| {
                                (0..i % 4)
                                    .map(|j| (j != 2).then_some((i * j) as i64))
                                    .collect::<Vec<_>>()
                            })
                        },
                    ))),
                    Arc::new(StringArray::from_iter_values(rows.map(|i| format!("{i:032x}")))),
                ],
            )
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_compression(Compression::LZ4_RAW)
            .build();
        let mut writer = LocalPartWriter::create_with(&path, Arc::clone(&schema), properties)
            .await
            .unwrap();
        let written: Vec<RecordBatch> = (0..10).map(|i| batch(i * 750)).collect();
        for batch in &written {
            writer.write(batch).await.unwrap();
        }
        assert_eq!(writer.finish().await.unwrap().1, 7_500);
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [1000, 1000, 1000, 1000, 1000, 1000, 1000, 500]);
        assert_eq!(
            reader.schema(),
            &schema,
            "the Arrow types come back, time zone included"
        );
        let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        assert_eq!(
            arrow::compute::concat_batches(&schema, &read).unwrap(),
            arrow::compute::concat_batches(&schema, &written).unwrap()
        );

        let empty = dir.path().join("empty.parquet");
        let writer = LocalPartWriter::create(&empty, Arc::clone(&schema)).await.unwrap();
        assert_eq!(writer.finish().await.unwrap().1, 0);
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&empty).unwrap()).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }

    /// On a local state a part is linked into place, not copied: the stored file is the local
    /// one, with the size and checksum a copy would record; writing the local path again
    /// (the next part of a run reuses it) leaves the stored part as it was.
    #[tokio::test]
    async fn a_part_stored_into_a_local_state_is_linked_and_never_rewritten() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("staging/part.parquet");
        let write = |range: std::ops::Range<usize>| {
            let local = local.clone();
            async move {
                let mut writer = LocalPartWriter::create(&local, key_part_schema(KeyEncoding::Hex))
                    .await
                    .unwrap();
                writer.write(&keys(range)).await.unwrap();
                writer.finish().await.unwrap();
            }
        };
        write(0..1_000).await;
        let first = std::fs::read(&local).unwrap();
        let state = super::super::StateStore::open(&dir.path().join("state").display().to_string()).unwrap();
        let info = state.upload(&local, "s.d/snapshot/a.parquet", 1_000).await.unwrap();
        let stored = dir.path().join("state/s.d/snapshot/a.parquet");
        assert_eq!(
            std::fs::metadata(&stored).unwrap().ino(),
            std::fs::metadata(&local).unwrap().ino(),
            "linked, not copied"
        );
        assert_eq!(info.bytes, first.len() as u64);
        assert_eq!(info.xxh3, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&first)));
        assert!(
            std::fs::read_dir(stored.parent().unwrap()).unwrap().count() == 1,
            "no temporary name is left beside the part"
        );

        write(5_000..5_010).await;
        assert_ne!(std::fs::read(&local).unwrap(), first);
        assert_eq!(std::fs::read(&stored).unwrap(), first, "the stored part is unchanged");
        state.verify_part(&"s.d".into(), &info).await.unwrap();
    }

    /// Where the staging folder and the state are on two file systems (here `/dev/shm`, a
    /// tmpfs, and the temporary folder), the part cannot be linked and is copied, with the same
    /// size and checksum.
    #[tokio::test]
    async fn a_part_that_cannot_be_linked_is_copied() {
        use std::os::unix::fs::MetadataExt;
        let Ok(staging) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("no /dev/shm here: nothing on another file system to store from");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let device = |path: &std::path::Path| std::fs::metadata(path).unwrap().dev();
        if device(staging.path()) == device(dir.path()) {
            eprintln!("the temporary folder is on /dev/shm's file system: nothing to copy across");
            return;
        }
        let local = staging.path().join("part.parquet");
        let mut writer = LocalPartWriter::create(&local, key_part_schema(KeyEncoding::Hex))
            .await
            .unwrap();
        writer.write(&keys(0..1_000)).await.unwrap();
        writer.finish().await.unwrap();
        let bytes = std::fs::read(&local).unwrap();
        let state = super::super::StateStore::open(&dir.path().join("state").display().to_string()).unwrap();
        let info = state.upload(&local, "s.d/snapshot/a.parquet", 1_000).await.unwrap();
        let stored = dir.path().join("state/s.d/snapshot/a.parquet");
        assert_ne!(device(&local), device(&stored), "two file systems: stored by a copy");
        assert_eq!(std::fs::read(&stored).unwrap(), bytes);
        assert_eq!(info.bytes, bytes.len() as u64);
        assert_eq!(info.xxh3, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)));
        assert_eq!(
            std::fs::read_dir(stored.parent().unwrap()).unwrap().count(),
            1,
            "no temporary name is left beside the part"
        );
        state.verify_part(&"s.d".into(), &info).await.unwrap();
    }

    #[tokio::test]
    async fn a_local_folder_is_removed_with_its_files_and_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("staging");
        for file in [
            "a.parquet",
            "model/part-0000.parquet",
            "model/part-0001.parquet",
            "model/deeper/x",
        ] {
            let path = folder.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"rows").unwrap();
        }
        remove_local_folder(folder.clone()).await;
        assert!(!folder.exists());
        // Removing it again, or one that never was, is quiet.
        remove_local_folder(folder).await;
        remove_local_folder(dir.path().join("never")).await;
        assert!(dir.path().exists());
    }

    #[tokio::test]
    async fn a_batch_the_file_cannot_take_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LocalPartWriter::create(&dir.path().join("p.parquet"), key_part_schema(KeyEncoding::Hex))
            .await
            .unwrap();
        // A batch of another schema: the encoder refuses it and stops; the error comes back on
        // a later write or at the finish, never a panic or a wait without end.
        let other = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
                "x",
                arrow::datatypes::DataType::Int64,
                false,
            )])),
            vec![Arc::new(arrow::array::Int64Array::from(vec![1]))],
        )
        .unwrap();
        let mut failed = false;
        for _ in 0..(QUEUED_BATCHES + 2) {
            if writer.write(&other).await.is_err() {
                failed = true;
                break;
            }
        }
        let finished = writer.finish().await;
        assert!(
            failed || finished.is_err(),
            "the refused batch must surface as an error"
        );
    }
}
