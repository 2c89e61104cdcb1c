//! What every sync of one invocation shares: the run id, times, git commit, state store,
//! staging folder and flags.

use std::path::{Path, PathBuf};

use dinmo_connectors::{RunId, SyncId, Timestamp};

use crate::error::{DinmoError, Result};
use crate::plan::summary::SummaryOptions;
use crate::project::Project;
use crate::state::{RunStamp, StateStore};

/// Shared by the syncs of one run.
#[derive(Debug)]
pub struct RunContext {
    /// Sorts by start time (see [`RunId::new`]).
    pub run_id: RunId,
    /// When it started.
    pub started_at: Timestamp,
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
    /// The settings it runs with.
    pub settings: crate::settings::Settings,
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
    /// The settings it runs with.
    pub settings: crate::settings::Settings,
}

impl RunContext {
    /// A new run of `project`: a new id, the state store opened, and a staging folder under
    /// `<target>/staging/` named after the run id and `label`.
    pub fn start(project: &Project, options: RunOptions, label: &str) -> Result<Self> {
        let run_id = RunId::new();
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
            settings: options.settings,
            run_id,
            _staging: staging,
        })
    }

    /// Now.
    pub fn now() -> Timestamp {
        Timestamp::now()
    }

    /// The local file a sync's new rows are written to before they are sent (or saved in a
    /// plan).
    pub fn local_pending(&self, sync: &SyncId) -> PathBuf {
        self.staging_dir.join(format!("{sync}.pending.parquet"))
    }

    /// The local files of a sync's diff: its new rows (the pending file) and its changed rows.
    pub fn local_diff(&self, sync: &SyncId) -> crate::diff::DiffFiles {
        crate::diff::DiffFiles {
            pending: self.local_pending(sync),
            changed: self.staging_dir.join(format!("{sync}.changed.parquet")),
        }
    }

    /// The local file of a plan's rows that the destination's field rules let through.
    pub fn local_sendable(&self, sync: &SyncId) -> PathBuf {
        self.staging_dir.join(format!("{sync}.sendable.parquet"))
    }

    /// When and how this run started, for its manifests.
    pub fn stamp(&self) -> RunStamp {
        RunStamp {
            run_id: self.run_id.clone(),
            started_at: self.started_at,
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
