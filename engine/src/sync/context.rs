//! What every sync of one invocation shares: the run id, times, git commit, state store,
//! staging folder and flags.

use std::path::{Path, PathBuf};

use crate::error::{DinmoError, Result};
use crate::plan::summary::SummaryOptions;
use crate::project::Project;
use crate::state::{RunStamp, StateStore};

/// Shared by the syncs of one run.
#[derive(Debug)]
pub struct RunContext {
    /// `YYYYMMDDTHHMMSSmmmZ-xxxx`: sorts by start time (to the millisecond); the suffix keeps
    /// ids of runs started in the same millisecond apart (see [`new_run_id`]).
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// The project's git commit, when it is in a repository.
    pub git_commit: Option<String>,
    /// Ignore snapshots (`--full-refresh`).
    pub full_refresh: bool,
    /// Compute only (`plan`, `run --dry-run`).
    pub dry_run: bool,
    /// The state store.
    pub state: StateStore,
    /// Local folder for this run's staging files, removed when the run ends.
    pub staging_dir: PathBuf,
    /// Draw progress bars.
    pub show_progress: bool,
    /// Plans: rows in each sync's sample, and accounts listed by quantity.
    pub summary: Option<SummaryOptions>,
    /// Whether this run still holds its sync locks: checked before every batch is sent.
    pub lease: crate::state::LeaseWatch,
    /// Owns `staging_dir`: removed when the context is dropped.
    _staging: tempfile::TempDir,
}

/// How a run was asked to behave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Ignore snapshots (`--full-refresh`).
    pub full_refresh: bool,
    /// Compute only (`plan`, `run --dry-run`).
    pub dry_run: bool,
    /// Draw progress bars.
    pub show_progress: bool,
    /// Plans: what the summary holds.
    pub summary: Option<SummaryOptions>,
}

impl RunContext {
    /// A new run of `project`: a new id, the state store opened, and a staging folder under
    /// `<target>/staging/` named after the run id and `label`.
    pub fn start(project: &Project, options: RunOptions, label: &str) -> Result<Self> {
        let run_id = new_run_id();
        let staging = create_staging(&project.target_path, &format!("{run_id}{label}"))?;
        Ok(RunContext {
            started_at: RunContext::now(),
            git_commit: git_commit(&project.root),
            full_refresh: options.full_refresh,
            dry_run: options.dry_run,
            state: StateStore::open(&project.state)?,
            staging_dir: staging.path().to_path_buf(),
            show_progress: options.show_progress,
            summary: options.summary,
            lease: Default::default(),
            run_id,
            _staging: staging,
        })
    }

    /// Now, as RFC 3339 in UTC with seconds.
    pub fn now() -> String {
        crate::state::timestamp_now()
    }

    /// When and how this run started, for its manifests.
    pub fn stamp(&self) -> RunStamp {
        RunStamp {
            run_id: self.run_id.clone(),
            started_at: self.started_at.clone(),
            git_commit: self.git_commit.clone(),
            full_refresh: self.full_refresh,
        }
    }
}

/// A folder under `<target>/staging/` for one command's local files, removed when dropped.
pub fn create_staging(target: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let root = target.join("staging");
    std::fs::create_dir_all(&root).map_err(DinmoError::io(&root))?;
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(&root)
        .map_err(DinmoError::io(&root))
}

/// A new run id, `YYYYMMDDTHHMMSSmmmZ-xxxx`, from a UUID v7: its millisecond timestamp, and 16
/// of its random bits as the suffix.
///
/// Not the bare UUID: run ids name manifests and parts, and the state orders a sync's runs by
/// id. Every existing state holds ids of this form (`2026…`), which a UUID (`01…`) would sort
/// before, so the newest run would look like the oldest.
pub fn new_run_id() -> String {
    let id = uuid::Uuid::now_v7();
    let (secs, nanos) = id.get_timestamp().map_or((0, 0), |t| t.to_unix());
    let time = chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or_default(), nanos).unwrap_or_default();
    let bytes = id.as_bytes();
    format!(
        "{}-{:02x}{:02x}",
        time.format("%Y%m%dT%H%M%S%3fZ"),
        bytes[14],
        bytes[15]
    )
}

/// `git rev-parse HEAD` in `root`, when it is a repository.
pub fn git_commit(root: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_fit_file_names() {
        let id = new_run_id();
        assert_eq!(id.len(), "20261121T150600123Z-9f3a".len(), "{id}");
        assert!(id.as_bytes()[8] == b'T' && id.as_bytes()[18] == b'Z');
        let later = {
            std::thread::sleep(std::time::Duration::from_millis(2));
            new_run_id()
        };
        assert!(later > id, "{later} sorts after {id}");
    }
}
