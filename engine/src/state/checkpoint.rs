//! Checkpoints: what keeps a run's cost independent of how many runs came before, in the
//! spirit of Delta Lake's checkpoints.
//!
//! ```text
//! <sync>/checkpoints/<run>.json            the index: every manifest up to run <run>, and the
//!                                          key parts holding every row key of their snapshot parts
//! <sync>/checkpoints/<run>-NNNNN.parquet   a key part (one column, the row key's 16 bytes)
//! ```
//!
//! A run reads the newest checkpoint (one object), the manifests written after it, and the
//! key parts plus the snapshot parts of the runs after it: a handful of objects, however long
//! the history. Checkpoints only ever add a way to read what is already there: the manifests
//! and snapshot parts they cover stay where they are (they are the record `history`,
//! `rollback` and `show` read), so a checkpoint that is lost or deleted costs speed, never a
//! key. Written in an order that is safe to stop at any point: key parts first, then the
//! index (one atomic put, which is what makes the checkpoint count), then the clean-up of
//! older checkpoints.

use dinmo_connectors::{RunId, SyncId, Timestamp};
use serde::{Deserialize, Serialize};

use super::manifest::{PartInfo, RunManifest};

/// Version of the checkpoint layout. 2: key parts hold the row keys as 16 bytes (each key
/// part says so, [`PartInfo::row_keys`]); a version 1 checkpoint's hex key parts are read as
/// they are, and merged into binary ones by a later compaction.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;

/// A run compacts its sync's state once this many runs are not covered by a checkpoint.
pub const AUTO_COMPACT_RUNS: usize = 32;

/// Key parts a checkpoint may hold before a compaction merges them into one.
pub const MAX_KEY_PARTS: usize = 8;

/// `<sync>/checkpoints/<run>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The sync.
    pub sync_id: SyncId,
    /// The newest run it covers; it covers every run up to this one.
    pub through_run: RunId,
    /// RFC 3339.
    pub created_at: Timestamp,
    /// The manifests of the runs it covers, oldest first, as they were when it was written
    /// (every one settled: no pending rows).
    pub runs: Vec<RunManifest>,
    /// Parts holding the row key of every row in the snapshot parts of `runs`.
    pub key_parts: Vec<PartInfo>,
    /// Rows across `key_parts`.
    pub rows: u64,
}

impl Checkpoint {
    /// The ids of the runs it covers, for checking many runs against it.
    pub fn covered_runs(&self) -> std::collections::HashSet<&str> {
        self.runs.iter().map(|m| m.run_id.as_str()).collect()
    }

    /// Whether its key parts hold each row's value; those written by earlier releases hold
    /// keys only, and the state is read as if they were not there.
    pub fn holds_values(&self) -> bool {
        self.key_parts.iter().all(PartInfo::holds_values)
    }
}

/// Whether a run can be covered: it has nothing pending and is not in progress, so nothing
/// will change its manifest again (only `rollback` does, and it drops the checkpoints first).
pub fn is_settled(manifest: &RunManifest) -> bool {
    manifest.pending_part.is_none() && manifest.outcome != super::manifest::Outcome::Running
}

/// What `compact` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The run the newest checkpoint covers through, if there is one.
    pub through_run: Option<RunId>,
    /// Runs newly covered.
    pub runs_covered: usize,
    /// Row keys in the checkpoint.
    pub rows: u64,
    /// Key parts in the checkpoint.
    pub key_parts: usize,
    /// Older checkpoint objects deleted.
    pub removed: usize,
}
