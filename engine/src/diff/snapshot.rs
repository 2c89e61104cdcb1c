//! A sync's snapshot as DataFusion reads it, and its keys loaded into a key set.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext, col};
use dinmo_connectors::{ROW_KEY_COLUMN, SyncId};
use futures::StreamExt;

use super::anti_join;
use super::anti_join::DiffFiles;
use super::anti_join::SnapshotSet;
use super::key_set::{self, KeySet, Seen};
use super::staging::DirectDiff;
use crate::error::{DinmoError, Result};
use crate::project::Sync;
use crate::state::key_type;
use crate::state::row_key::binary_keys;
use crate::state::values::{CORRECTS_COLUMN, VALUE_COLUMN, value_column};
use crate::state::{KeyEncoding, LocalPartWriter, SnapshotPart, key_value_part_schema};

/// Whether a sync's snapshot keys are loaded before its model runs, when the model's primary
/// key check needs memory of its own, or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the model runs: keys that would take over a quarter of the pool wait.
    BeforeTheModel,
    /// After the model ran and its key check let its memory go.
    AfterTheModel,
}

/// How a sync's new and changed rows are told from the rows already sent.
#[derive(Debug)]
pub enum SnapshotKeys {
    /// No snapshot (a first run, or a full refresh): every row is new.
    Everything,
    /// The snapshot's keys and values in memory: the model's rows are split as they are
    /// staged.
    InMemory(Arc<SnapshotSet>),
    /// Keys that would take over a quarter of the memory limit: loaded only once the model
    /// ran and its primary key was checked, so the two sets (and the query that checks the
    /// key when its set does not fit) never hold memory at once ([`write_new_rows`]).
    Later(Snapshot),
    /// More keys than the memory limit allows in a set: the model's rows are staged to a local
    /// file and joined in DataFusion ([`write_new_rows`]).
    Join(Snapshot),
}

impl SnapshotKeys {
    /// Once the model's rows streamed past the keys in memory: the keys it did not produce
    /// (gone rows); `None` when some are gone but the keys found were not marked (the model's
    /// keys must be marked again, [`mark_model_keys`](super::mark_model_keys)). Empty for the
    /// other kinds (a join finds them itself, [`write_new_rows`]).
    pub fn gone(&self) -> Option<Vec<u128>> {
        match self {
            SnapshotKeys::InMemory(keys) => keys.gone(),
            _ => Some(Vec::new()),
        }
    }

    /// Where the sync's new and changed rows go as its model is staged (`files`, local),
    /// unless they are found by a join afterwards.
    pub fn direct<'s>(&self, index: usize, sync: &'s Sync, files: DiffFiles) -> Option<DirectDiff<'s>> {
        let keys = match self {
            SnapshotKeys::Everything => None,
            SnapshotKeys::InMemory(keys) => Some(Arc::clone(keys)),
            SnapshotKeys::Later(_) | SnapshotKeys::Join(_) => return None,
        };
        Some(DirectDiff {
            index,
            sync,
            keys,
            files,
        })
    }
}

/// Loads the keys and values of `snapshot` (`None`: a first run, or a full refresh) into a
/// key set when the session's pool can hold it in half its size, as a hash join's table
/// would. Before the model runs, keys that would take over a quarter of the pool are left for
/// later ([`SnapshotKeys::Later`]): the model's primary key check needs its own set meanwhile.
pub async fn snapshot_keys(
    ctx: &SessionContext,
    sync_id: &SyncId,
    snapshot: Option<Snapshot>,
    when: When,
) -> Result<SnapshotKeys> {
    use datafusion::execution::memory_pool::MemoryLimit;
    let Some(snapshot) = snapshot else {
        return Ok(SnapshotKeys::Everything);
    };
    let context = format!("sync `{sync_id}`: reading the snapshot's keys");
    let pool = &ctx.runtime_env().memory_pool;
    if let MemoryLimit::Finite(limit) = pool.memory_limit()
        && when == When::BeforeTheModel
        && key_set::bytes_for::<Seen>(snapshot.rows) > (limit / 4) as u64
    {
        return Ok(SnapshotKeys::Later(snapshot));
    }
    let Ok(set) = KeySet::with_capacity(pool, format!("sync `{sync_id}`: snapshot keys"), snapshot.rows) else {
        return Ok(SnapshotKeys::Join(snapshot));
    };
    let corrections = snapshot.corrections(&context).await?;
    Ok(
        match anti_join::fill(set, &snapshot.frames, &corrections, snapshot.mark_seen, &context).await? {
            Some(keys) => SnapshotKeys::InMemory(Arc::new(keys)),
            None => SnapshotKeys::Join(snapshot),
        },
    )
}

/// A sync's snapshot, ready to read.
#[derive(Debug)]
pub struct Snapshot {
    /// The parts' rows: each frame has the row key first ([`ROW_KEY_COLUMN`], as text for
    /// parts stored before manifest version 3, as 16 bytes after), then either the row's
    /// value ([`VALUE_COLUMN`], and [`CORRECTS_COLUMN`]), or, for a part stored before parts
    /// held values, every column of the part (the value is hashed from its fields).
    pub frames: Vec<DataFrame>,
    /// The parts holding rows that correct another row, in the order of the runs: each a
    /// frame of row key, value, [`CORRECTS_COLUMN`], the correcting rows only.
    pub correcting: Vec<DataFrame>,
    /// Rows of the model in it.
    pub rows: u64,
    /// Whether the split marks the keys it finds, to name the gone ones at once: worth its
    /// cost when rows were gone last run; otherwise gone rows are counted, and named by marking
    /// the model's keys again only when some are.
    pub mark_seen: bool,
}

impl Snapshot {
    /// The snapshot read from `parts`, corrected by `corrections` (`rows` rows of the model
    /// in all).
    pub async fn read(
        ctx: &SessionContext,
        parts: &[SnapshotPart],
        corrections: &[SnapshotPart],
        rows: u64,
    ) -> Result<Snapshot> {
        let context = "reading the snapshot";
        let mut frames = Vec::new();
        for encoding in [KeyEncoding::Hex, KeyEncoding::Binary] {
            let urls: Vec<&str> = parts
                .iter()
                .filter(|part| part.row_keys == encoding && part.values)
                .map(|part| part.url.as_str())
                .collect();
            if !urls.is_empty() {
                frames.push(listing(ctx, &urls, value_part_schema(encoding))?);
            }
        }
        for part in parts.iter().filter(|part| !part.values) {
            let frame = ctx
                .read_parquet(part.url.as_str(), ParquetReadOptions::default())
                .await
                .map_err(DinmoError::engine(context))?;
            // Values of another version are hashed again from the fields.
            let frame = frame
                .drop_columns(&[VALUE_COLUMN])
                .map_err(DinmoError::engine(context))?;
            frames.push(frame);
        }
        let mut correcting = Vec::new();
        for part in corrections {
            let frame = listing(ctx, &[part.url.as_str()], value_part_schema(part.row_keys))?
                .filter(col(CORRECTS_COLUMN).is_not_null())
                .map_err(DinmoError::engine(context))?;
            correcting.push(frame);
        }
        Ok(Snapshot {
            frames,
            correcting,
            rows,
            mark_seen: false,
        })
    }

    /// Every correction's key (the row it corrects) and value, in order: a later one for the
    /// same key replaces an earlier one.
    pub(super) async fn corrections(&self, context: &str) -> Result<Vec<(u128, u64)>> {
        let mut corrections = Vec::new();
        for frame in &self.correcting {
            for batch in frame.clone().collect().await.map_err(DinmoError::engine(context))? {
                anti_join::each_correction(&batch, |key, value| corrections.push((key, value)))
                    .map_err(DinmoError::arrow(context))?;
            }
        }
        Ok(corrections)
    }

    /// The snapshot's keys (16 bytes) and values, corrected, as one local Parquet file at
    /// `path` read back as a frame: what the staged rows are joined with when the keys do not
    /// fit in memory. Parts that hold values are read two columns at a time; the values of
    /// older parts are hashed from their fields as they stream past.
    pub(super) async fn key_values(&self, ctx: &SessionContext, path: &Path) -> Result<DataFrame> {
        let context = "reading the snapshot's keys and values";
        let corrections: std::collections::HashMap<u128, u64> = self.corrections(context).await?.into_iter().collect();
        let schema = key_value_part_schema();
        let mut writer = LocalPartWriter::create_temporary(path, Arc::clone(&schema)).await?;
        for frame in &self.frames {
            let mut stream = frame
                .clone()
                .execute_stream()
                .await
                .map_err(DinmoError::engine(context))?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(DinmoError::engine(context))?;
                let (keys, values) = anti_join::keys_and_values(batch).map_err(DinmoError::arrow(context))?;
                let values: Vec<u64> = keys
                    .iter()
                    .zip(values)
                    .map(|(key, value)| corrections.get(key).copied().unwrap_or(value))
                    .collect();
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        binary_keys(&keys).map_err(DinmoError::arrow(context))?,
                        value_column(values),
                    ],
                )
                .map_err(DinmoError::arrow(context))?;
                writer.write(&batch).await?;
            }
        }
        let (path, _) = writer.finish().await?;
        ctx.read_parquet(
            path.display().to_string(),
            ParquetReadOptions::default().schema(&schema),
        )
        .await
        .map_err(DinmoError::engine(context))
    }
}

/// The columns a part that holds values is read as: row key (stored as `encoding` says),
/// value, and the key of the row it corrects (null on a row of the model, and in every part
/// that corrects nothing).
fn value_part_schema(encoding: KeyEncoding) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(ROW_KEY_COLUMN, key_type(encoding), false),
        Field::new(VALUE_COLUMN, DataType::UInt64, false),
        Field::new(CORRECTS_COLUMN, DataType::Utf8, true),
    ]))
}

/// The parts at `part_urls`, read as `schema` (a column a part lacks reads as null).
fn listing(ctx: &SessionContext, part_urls: &[&str], schema: SchemaRef) -> Result<DataFrame> {
    let context = "reading the snapshot";
    let urls = part_urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(DinmoError::engine(context))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(DinmoError::engine(context))?;
    ctx.read_table(Arc::new(table)).map_err(DinmoError::engine(context))
}
