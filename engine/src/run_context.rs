//! What every sync of one invocation shares: the run id, times, git commit, state store,
//! staging folder and flags.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::project::{Model, Sync};
use crate::state::StateStore;

/// Shared by the syncs of one run.
#[derive(Debug)]
pub struct RunContext {
    /// `YYYYMMDDTHHMMSSmmmZ-xxxx`: sorts by start time (to the millisecond); the suffix keeps
    /// ids of runs started in the same millisecond apart.
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
}

/// What a plan summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Rows in the sample.
    pub sample: usize,
    /// Accounts listed.
    pub top: usize,
}

impl RunContext {
    /// Now, as RFC 3339 in UTC with seconds.
    pub fn now() -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// A folder under `<target>/staging/` for one command's local files, removed when dropped.
pub fn create_staging(target: &Path, prefix: &str) -> crate::error::Result<tempfile::TempDir> {
    let root = target.join("staging");
    std::fs::create_dir_all(&root).map_err(crate::error::DinmoError::io(&root))?;
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir_in(&root)
        .map_err(crate::error::DinmoError::io(&root))
}

/// A new run id.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let entropy = format!(
        "{}-{}",
        std::process::id(),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        xxh3_64(entropy.as_bytes()) & 0xffff
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

/// xxh3-64 of the model's SQL, hex.
pub fn sql_hash(sql: &str) -> String {
    format!("{:016x}", xxh3_64(sql.trim().as_bytes()))
}

/// xxh3-64 of the sync's mapping and the model's primary key, hex.
pub fn mapping_hash(model: &Model, sync: &Sync) -> String {
    let mut text = format!("pk={}\n", model.primary_key.join(","));
    for mapped in &sync.mapping {
        text.push_str(&format!("{}={}\n", mapped.field, mapped.column));
    }
    format!("{:016x}", xxh3_64(text.as_bytes()))
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
