//! A sync's snapshot as DataFusion reads it, and its keys loaded into a key set.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{DataFrame, SessionContext, col};
use dinmo_connectors::{ROW_KEY_COLUMN, SyncId};
use std::path::PathBuf;

use super::anti_join;
use super::key_set::{self, FrozenKeySet, KeySet};
use super::staging::DirectDiff;
use crate::error::{DinmoError, Result};
use crate::project::Sync;
use crate::state::{KeyEncoding, SnapshotPart, key_part_schema};

/// Whether a sync's snapshot keys are loaded before its model runs, when the model's primary
/// key check needs memory of its own, or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the model runs: keys that would take over a quarter of the pool wait.
    BeforeTheModel,
    /// After the model ran and its key check let its memory go.
    AfterTheModel,
}

/// How a sync's new rows are told from the rows already sent.
#[derive(Debug)]
pub enum SnapshotKeys {
    /// No snapshot (a first run, or a full refresh): every row is new.
    Everything,
    /// The snapshot's keys in memory: the model's rows are filtered as they are staged.
    InMemory(Arc<FrozenKeySet>),
    /// Keys that would take over a quarter of the memory limit: loaded only once the model
    /// ran and its primary key was checked, so the two sets (and the query that checks the
    /// key when its set does not fit) never hold memory at once ([`write_new_rows`]).
    Later(Snapshot),
    /// More keys than the memory limit allows in a set: the model's rows are staged to a local
    /// file and joined in DataFusion ([`write_new_rows`]).
    Join(Snapshot),
}

impl SnapshotKeys {
    /// Where the sync's new rows go as its model is staged (`pending`, a local file), unless
    /// they are found by a join afterwards.
    pub fn direct<'s>(&self, index: usize, sync: &'s Sync, pending: PathBuf) -> Option<DirectDiff<'s>> {
        let keys = match self {
            SnapshotKeys::Everything => None,
            SnapshotKeys::InMemory(keys) => Some(Arc::clone(keys)),
            SnapshotKeys::Later(_) | SnapshotKeys::Join(_) => return None,
        };
        Some(DirectDiff {
            index,
            sync,
            keys,
            pending,
        })
    }
}

/// Loads the keys of `snapshot` (`None`: a first run, or a full refresh) into a key set when
/// the session's pool can hold it in half its size, as a hash join's table would. Before the
/// model runs, keys that would take over a quarter of the pool are left for later
/// ([`SnapshotKeys::Later`]): the model's primary key check needs its own set meanwhile.
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
        && key_set::bytes_for(snapshot.rows) > (limit / 4) as u64
    {
        return Ok(SnapshotKeys::Later(snapshot));
    }
    let Ok(set) = KeySet::with_capacity(pool, format!("sync `{sync_id}`: snapshot keys"), snapshot.rows) else {
        return Ok(SnapshotKeys::Join(snapshot));
    };
    Ok(match anti_join::fill(set, &snapshot.frames, &context).await? {
        Some(keys) => SnapshotKeys::InMemory(Arc::new(keys)),
        None => SnapshotKeys::Join(snapshot),
    })
}

/// What a 32-hex-digit key costs in a hash table: the string, its offset, and the table's
/// entry.
pub(super) const KEY_BYTES_IN_MEMORY: u64 = 56;

/// A sync's snapshot, ready to join.
#[derive(Debug)]
pub struct Snapshot {
    /// One column of row keys ([`ROW_KEY_COLUMN`]) per way the parts store them: text for
    /// parts stored before manifest version 3, 16 bytes after.
    pub frames: Vec<DataFrame>,
    /// Keys in it (the rows of its parts).
    pub rows: u64,
}

impl Snapshot {
    /// The snapshot read from `parts` (`rows` keys in all).
    pub fn read(ctx: &SessionContext, parts: &[SnapshotPart], rows: u64) -> Result<Snapshot> {
        let mut frames = Vec::new();
        for encoding in [KeyEncoding::Hex, KeyEncoding::Binary] {
            let urls: Vec<&str> = parts
                .iter()
                .filter(|part| part.row_keys == encoding)
                .map(|part| part.url.as_str())
                .collect();
            if !urls.is_empty() {
                frames.push(key_frame(ctx, &urls, encoding)?);
            }
        }
        Ok(Snapshot { frames, rows })
    }

    /// Every key as hex text, in one frame (what the staged rows are joined with).
    pub(super) fn hex_frame(&self, ctx: &SessionContext) -> Result<DataFrame> {
        let context = "reading the snapshot";
        let mut hex = Vec::with_capacity(self.frames.len());
        for frame in &self.frames {
            let key = match frame.schema().field(0).data_type() {
                DataType::FixedSizeBinary(_) => hex_key(ROW_KEY_COLUMN),
                _ => col(ROW_KEY_COLUMN),
            };
            let frame = DataFrame::new(ctx.state(), frame.clone().into_unoptimized_plan())
                .select(vec![key.alias(ROW_KEY_COLUMN)])
                .map_err(DinmoError::engine(context))?;
            hex.push(frame);
        }
        let mut frames = hex.into_iter();
        let Some(first) = frames.next() else {
            let schema = key_part_schema(KeyEncoding::Hex);
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(DinmoError::engine(context))?;
            return ctx.read_table(Arc::new(empty)).map_err(DinmoError::engine(context));
        };
        frames.try_fold(first, |all, frame| {
            all.union(frame).map_err(DinmoError::engine(context))
        })
    }
}

/// A key column of 16 bytes (staged, or in a snapshot part) as row keys (32 hex digits), in
/// DataFusion.
pub(super) fn hex_key(key: &str) -> datafusion::prelude::Expr {
    datafusion::functions::expr_fn::encode(col(key), datafusion::prelude::lit("hex"))
}

/// Parts that store their row keys as `encoding` says, as a one-column table of them.
fn key_frame(ctx: &SessionContext, part_urls: &[&str], encoding: KeyEncoding) -> Result<DataFrame> {
    let context = "reading the snapshot";
    let urls = part_urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(DinmoError::engine(context))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(key_part_schema(encoding));
    let table = ListingTable::try_new(config).map_err(DinmoError::engine(context))?;
    ctx.read_table(Arc::new(table)).map_err(DinmoError::engine(context))
}
