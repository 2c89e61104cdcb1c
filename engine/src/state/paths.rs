//! Where a sync's state lives, relative to the state location: the only place a state path is
//! spelled.
//!
//! ```text
//! <sync>/runs/<run>.json                   a run's manifest
//! <sync>/pending/<run>.parquet             rows about to be sent, with their keys
//! <sync>/snapshot/<prefix>-<nnnnn>.parquet rows the destination acknowledged (keys as bytes)
//! <sync>/snapshot/<run>-rollback-<at>.parquet  what a rollback kept of a run
//! <sync>/rejected/<prefix>-<nnnnn>.parquet rows the destination refused, with code and message
//! <sync>/held/<run>.parquet                rows whose values changed, held by the run
//! <sync>/checkpoints/<run>.json            every manifest up to <run>
//! <sync>/checkpoints/<run>-<nnnnn>.parquet the row keys of their snapshot parts
//! <sync>/uploads/<run>/<file>.json         a destination's own journal (zuora_revenue)
//! <sync>/lock                              held by the run in progress
//! ```
//!
//! `<prefix>` is the run id, or `<run>-recovered-<run>` / `<run>-resolved-<run>` /
//! `<run>-rebuild` for parts a later command committed for that run.

use dinmo_connectors::{RunId, SyncId, Timestamp};

/// A sync's folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Run manifests.
    Runs,
    /// Rows about to be sent.
    Pending,
    /// Acknowledged rows.
    Snapshot,
    /// Refused rows.
    Rejected,
    /// Changed rows a run held.
    Held,
    /// Checkpoints of settled runs.
    Checkpoints,
    /// A destination's journal.
    Uploads,
}

impl Folder {
    /// The folder's name.
    pub fn name(self) -> &'static str {
        match self {
            Folder::Runs => "runs",
            Folder::Pending => "pending",
            Folder::Snapshot => "snapshot",
            Folder::Rejected => "rejected",
            Folder::Held => "held",
            Folder::Checkpoints => "checkpoints",
            Folder::Uploads => "uploads",
        }
    }

    /// Whether an object `<sync>/<name>…` marks `<sync>` as a sync with state.
    pub fn marks_a_sync(name: &str) -> bool {
        matches!(name, "runs" | "lock" | "snapshot" | "pending")
    }
}

/// The paths of one sync's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPaths<'a> {
    sync: &'a SyncId,
}

impl<'a> SyncPaths<'a> {
    /// The paths of `sync`.
    pub fn of(sync: &'a SyncId) -> Self {
        SyncPaths { sync }
    }

    /// `<sync>/<folder>`.
    pub fn folder(&self, folder: Folder) -> String {
        format!("{}/{}", self.sync, folder.name())
    }

    /// `<sync>/runs/<run>.json`.
    pub fn manifest(&self, run: &RunId) -> String {
        format!("{}/{run}.json", self.folder(Folder::Runs))
    }

    /// `<sync>/pending/<run>.parquet`.
    pub fn pending(&self, run: &RunId) -> String {
        format!("{}/{run}.parquet", self.folder(Folder::Pending))
    }

    /// `<sync>/held/<run>.parquet`.
    pub fn held(&self, run: &RunId) -> String {
        format!("{}/{run}.parquet", self.folder(Folder::Held))
    }

    /// The `sequence`-th snapshot or rejected part committed under `prefix`.
    pub fn part(&self, folder: Folder, prefix: &str, sequence: u32) -> String {
        format!("{}/{prefix}-{sequence:05}.parquet", self.folder(folder))
    }

    /// The snapshot part a rollback of `run` at `at` keeps.
    pub fn rollback_part(&self, run: &RunId, at: Timestamp) -> String {
        format!(
            "{}/{run}-rollback-{}.parquet",
            self.folder(Folder::Snapshot),
            at.time().format("%Y%m%dT%H%M%S%3fZ")
        )
    }

    /// Part `n` of `run`'s snapshot stored again by its `generation`-th repair (`dinmo
    /// reconcile --repair missing`). Named by the manifest's state alone, so a repair retried
    /// after a crash writes the same objects again rather than leaving others behind.
    pub fn repair_part(&self, run: &RunId, generation: usize, n: usize) -> String {
        format!("{}/{run}-repair{generation}-{n}.parquet", self.folder(Folder::Snapshot))
    }

    /// The index of a checkpoint through `run`.
    pub fn checkpoint_index(&self, run: &RunId) -> String {
        format!("{}/{run}.json", self.folder(Folder::Checkpoints))
    }

    /// The `sequence`-th key part of a checkpoint through `run`.
    pub fn checkpoint_keys(&self, run: &RunId, sequence: usize) -> String {
        format!("{}/{run}-{sequence:05}.parquet", self.folder(Folder::Checkpoints))
    }

    /// `<sync>/lock`.
    pub fn lock(&self) -> String {
        format!("{}/lock", self.sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_the_layout_existing_states_hold() {
        let sync = SyncId::from("usage-zuora");
        let run = RunId::from("20261121T150600123Z-9f3a");
        let paths = SyncPaths::of(&sync);
        assert_eq!(paths.manifest(&run), "usage-zuora/runs/20261121T150600123Z-9f3a.json");
        assert_eq!(
            paths.pending(&run),
            "usage-zuora/pending/20261121T150600123Z-9f3a.parquet"
        );
        assert_eq!(
            paths.part(Folder::Snapshot, run.as_str(), 3),
            "usage-zuora/snapshot/20261121T150600123Z-9f3a-00003.parquet"
        );
        assert_eq!(
            paths.checkpoint_keys(&run, 0),
            "usage-zuora/checkpoints/20261121T150600123Z-9f3a-00000.parquet"
        );
        assert_eq!(
            paths.checkpoint_index(&run),
            "usage-zuora/checkpoints/20261121T150600123Z-9f3a.json"
        );
        assert_eq!(paths.lock(), "usage-zuora/lock");
        assert_eq!(paths.folder(Folder::Uploads), "usage-zuora/uploads");
    }
}
