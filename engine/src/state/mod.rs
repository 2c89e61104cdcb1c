//! The state store: per sync, the snapshot parts of acknowledged rows, run manifests, pending
//! intents and rejected rows, on any `object_store` backend. [`paths`] spells the layout.

mod checkpoint;
mod compact;
mod lock;
mod manifest;
mod parts;
pub mod paths;
pub mod row_key;
mod store;
pub mod values;

pub use checkpoint::{AUTO_COMPACT_RUNS, Checkpoint, Compaction};
pub use lock::{LeaseWatch, LockHolder, LockStatus, LockTerms, SyncLocks, Unlocked};
pub use manifest::{
    Counts, KeyEncoding, MANIFEST_FORMAT_VERSION, Outcome, PartInfo, Repair, Rollback, RunManifest, RunStamp,
    SourceVersion, SyncIdentity,
};
pub use parts::{
    DESTINATION_ID_COLUMN, LocalPartWriter, PartFeed, RUN_ID_COLUMN, key_part_schema, key_type, key_value_part_schema,
    read_all, read_parquet, remove_local_folder, with_keys_as, write_lazily,
};
pub use paths::{Folder, SyncPaths};
pub use store::{READ_CONCURRENCY, SnapshotPart, StateStore, VerifiedSnapshot};

/// A hash of a sync's history: the last run and every snapshot part with its checksum. Any
/// run, commit, recovery or rollback changes it.
pub fn state_version(manifests: &[RunManifest]) -> String {
    let mut text = String::new();
    for manifest in manifests {
        text.push_str(&manifest.run_id);
        text.push(';');
        text.push_str(manifest.outcome.as_str());
        for part in manifest
            .snapshot_parts
            .iter()
            .chain(&manifest.rejected_parts)
            .chain(&manifest.pending_part)
        {
            text.push_str(&format!("|{}:{}", part.path, part.xxh3));
        }
        text.push('\n');
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}
