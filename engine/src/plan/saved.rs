//! Saved plans: `dinmo plan --out plan.dinmo` stores the exact rows each sync would send and
//! the state they were computed against; `dinmo apply plan.dinmo` sends exactly those rows,
//! without re-running any model, and only if no sync's state moved since.
//!
//! The file is a ZIP: `plan.json` (what and against which state), `plan.json.xxh3` (its
//! checksum) and `rows/<sync>.parquet` (the rows, each checksummed in `plan.json`). An altered
//! file is refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use dinmo_connectors::{RunId, SyncId, Timestamp};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::{DinmoError, Result};

/// Version of the saved-plan layout.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What a saved plan holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// [`PLAN_FORMAT_VERSION`].
    pub format_version: u32,
    /// The dinmo that wrote it.
    pub dinmo_version: String,
    /// Project name.
    pub project: String,
    /// RFC 3339.
    pub created_at: Timestamp,
    /// The project's git commit when planned.
    pub git_commit: Option<String>,
    /// The plan's run id.
    pub plan_run_id: RunId,
    /// One entry per sync with rows to send.
    pub syncs: Vec<SavedSync>,
}

/// One sync of a saved plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSync {
    /// `<model>.<destination>`.
    pub sync_id: SyncId,
    /// Model name.
    pub model: String,
    /// Destination name.
    pub destination: String,
    /// xxh3 of the model SQL.
    pub model_sql_hash: String,
    /// xxh3 of the mapping.
    pub mapping_hash: String,
    /// The versions of the versioned (Delta Lake) sources the rows were read from: the rows
    /// are in the plan, so `apply` sends what these versions held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_versions: Vec<crate::state::SourceVersion>,
    /// Rows the model produced.
    pub model_rows: u64,
    /// Rows to send: new rows and corrections.
    pub new_rows: u64,
    /// Of `new_rows`, the corrections of rows whose values changed after they were sent.
    #[serde(default)]
    pub corrections: u64,
    /// Rows whose values changed after they were sent, when planned.
    #[serde(default)]
    pub changed_rows: u64,
    /// Of those, and of the gone rows, the rows the plan held (nothing is sent for them).
    #[serde(default)]
    pub held_rows: u64,
    /// Rows sent earlier whose key the model no longer produced, when planned.
    #[serde(default)]
    pub gone_rows: u64,
    /// The sync's state when planned; `apply` refuses if it differs.
    pub state_version: String,
    /// Entry holding the rows.
    pub rows_file: String,
    /// xxh3 of that entry.
    pub rows_xxh3: String,
}

impl SavedSync {
    /// Who the sync was when planned, for the manifests of the run that applies it.
    pub fn identity(&self) -> crate::state::SyncIdentity {
        crate::state::SyncIdentity {
            sync_id: self.sync_id.clone(),
            model: self.model.clone(),
            destination: self.destination.clone(),
            sql_hash: self.model_sql_hash.clone(),
            mapping_hash: self.mapping_hash.clone(),
            source_versions: self.source_versions.clone(),
        }
    }
}

fn plan_error(path: &Path, message: impl Into<String>) -> DinmoError {
    DinmoError::PlanFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn archive_error(path: &Path, what: &str) -> impl FnOnce(zip::result::ZipError) -> DinmoError {
    let (path, what) = (path.to_path_buf(), what.to_string());
    move |source| DinmoError::PlanArchive { path, what, source }
}

fn json_error(path: &Path) -> impl FnOnce(serde_json::Error) -> DinmoError {
    let path = path.to_path_buf();
    move |source| DinmoError::PlanJson { path, source }
}

fn file_xxh3(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(DinmoError::io(path))?;
    let mut hasher = Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(DinmoError::io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("{:016x}", hasher.digest()))
}

/// Writes `plan` with its rows (`sync id → local Parquet file`) to `path`, atomically.
pub fn write_plan(path: &Path, mut plan: SavedPlan, rows: &[(SyncId, PathBuf)]) -> Result<()> {
    let partial = path.with_extension("dinmo.partial");
    let file = std::fs::File::create(&partial).map_err(DinmoError::io(&partial))?;
    let mut zip = ZipWriter::new(file);
    // Parquet is compressed already.
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    for sync in &mut plan.syncs {
        let Some((_, local)) = rows.iter().find(|(id, _)| *id == sync.sync_id) else {
            return Err(plan_error(path, format!("no rows for sync `{}`", sync.sync_id)));
        };
        sync.rows_xxh3 = file_xxh3(local)?;
        zip.start_file(sync.rows_file.as_str(), options)
            .map_err(archive_error(path, &format!("`{}`", sync.rows_file)))?;
        let mut source = std::fs::File::open(local).map_err(DinmoError::io(local))?;
        std::io::copy(&mut source, &mut zip).map_err(DinmoError::io(local))?;
    }
    let json = serde_json::to_vec_pretty(&plan).map_err(json_error(path))?;
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file("plan.json", deflated)
        .map_err(archive_error(path, "`plan.json`"))?;
    zip.write_all(&json).map_err(DinmoError::io(path))?;
    zip.start_file("plan.json.xxh3", deflated)
        .map_err(archive_error(path, "`plan.json.xxh3`"))?;
    zip.write_all(format!("{:016x}", xxh3_64(&json)).as_bytes())
        .map_err(DinmoError::io(path))?;
    zip.finish().map_err(archive_error(path, "finishing the archive"))?;
    std::fs::rename(&partial, path).map_err(DinmoError::io(path))
}

/// Reads and verifies a saved plan, extracting each sync's rows into `into`.
pub fn read_plan(path: &Path, into: &Path) -> Result<(SavedPlan, Vec<(SyncId, PathBuf)>)> {
    let file = std::fs::File::open(path).map_err(DinmoError::io(path))?;
    let mut zip = ZipArchive::new(file).map_err(archive_error(path, "not a dinmo plan"))?;
    let mut read_entry = |name: &str| -> Result<Vec<u8>> {
        let mut entry = zip.by_name(name).map_err(archive_error(path, &format!("`{name}`")))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|source| archive_error(path, &format!("`{name}`"))(source.into()))?;
        Ok(bytes)
    };
    let json = read_entry("plan.json")?;
    let recorded = String::from_utf8_lossy(&read_entry("plan.json.xxh3")?)
        .trim()
        .to_string();
    if format!("{:016x}", xxh3_64(&json)) != recorded {
        return Err(plan_error(
            path,
            "plan.json does not match its checksum: the plan file was altered",
        ));
    }
    let plan: SavedPlan = serde_json::from_slice(&json).map_err(json_error(path))?;
    if plan.format_version != PLAN_FORMAT_VERSION {
        return Err(plan_error(
            path,
            format!("plan format {} is not {PLAN_FORMAT_VERSION}", plan.format_version),
        ));
    }
    std::fs::create_dir_all(into).map_err(DinmoError::io(into))?;
    let mut rows = Vec::new();
    for (index, sync) in plan.syncs.iter().enumerate() {
        let local = into.join(format!("{index}.parquet"));
        let mut entry = zip
            .by_name(&sync.rows_file)
            .map_err(archive_error(path, &format!("`{}`", sync.rows_file)))?;
        let mut out = std::fs::File::create(&local).map_err(DinmoError::io(&local))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| {
            plan_error(
                path,
                format!(
                    "the rows of `{}` cannot be read ({e}): the plan file was altered or damaged",
                    sync.sync_id
                ),
            )
        })?;
        drop(out);
        if file_xxh3(&local)? != sync.rows_xxh3 {
            return Err(plan_error(
                path,
                format!(
                    "the rows of `{}` do not match their checksum: the plan file was altered",
                    sync.sync_id
                ),
            ));
        }
        rows.push((sync.sync_id.clone(), local));
    }
    Ok((plan, rows))
}
