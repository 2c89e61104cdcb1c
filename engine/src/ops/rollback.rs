//! `rollback RUN`: deletes what a run delivered, where the destination still allows it, and
//! returns those rows to "new".
//!
//! The rewritten snapshot part is stored before the manifest names it, and the old part is
//! removed last: a crash at any point leaves the rows counted as synced (never resent), with
//! the rollback to be run again.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use dinmo_connectors::{RunId, SyncId};

use super::project::Selector;
use crate::error::{DinmoError, Result};
use crate::plan::destinations::build_destination;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::{
    DESTINATION_ID_COLUMN, LocalPartWriter, LockTerms, PartInfo, Rollback, RunManifest, StateStore, SyncPaths,
};
use crate::sync::context::{RunContext, create_staging};

/// Rolls back one run in every selected sync it touched, under those syncs' locks (a rollback
/// must not delete records while a run of the same sync sends or commits).
#[derive(Debug)]
pub struct RollbackOp<'p> {
    project: &'p Project,
    run: RunId,
    selector: Selector,
    settings: Settings,
}

/// What a rollback did to one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The sync.
    pub sync: SyncId,
    /// The destination's name.
    pub destination: String,
    /// Rows deleted in the destination and returned to "new".
    pub deleted_rows: u64,
    /// Records the destination would not delete, each with why.
    pub not_deleted: Vec<String>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    /// The run rolled back.
    pub run: RunId,
    /// Each selected sync the run touched; `None` when the run delivered nothing to it.
    pub syncs: Vec<(SyncId, Option<RolledBack>)>,
}

impl RollbackReport {
    /// An error when a record could not be deleted.
    pub fn outcome(&self) -> Result<()> {
        let not_deleted: usize = self
            .syncs
            .iter()
            .flat_map(|(_, s)| s)
            .map(|s| s.not_deleted.len())
            .sum();
        match not_deleted {
            0 => Ok(()),
            not_deleted => Err(DinmoError::RollbackIncomplete {
                run: self.run.clone(),
                not_deleted,
            }),
        }
    }
}

impl<'p> RollbackOp<'p> {
    /// A rollback of `run` in `project`.
    pub fn new(project: &'p Project, run: RunId) -> Self {
        RollbackOp {
            project,
            run,
            selector: Selector::default(),
            settings: Settings::default(),
        }
    }

    async fn execute(self) -> Result<RollbackReport> {
        let project = self.project;
        let selection = self.selector.resolve(project).await?;
        let state = StateStore::open(&project.state)?;
        let mut touched = Vec::new();
        for sync_id in state.sync_ids().await? {
            let selected = project
                .models
                .iter()
                .flat_map(|m| m.syncs.iter().map(move |s| (m, s)))
                .any(|(m, s)| s.id == sync_id && selection.includes_sync(m, s));
            if !selected {
                continue;
            }
            if state.manifests(&sync_id).await?.iter().any(|m| m.run_id == self.run) {
                touched.push(sync_id);
            }
        }
        if touched.is_empty() {
            return Err(DinmoError::RunNotFound {
                run: self.run.clone(),
                state: state.display().to_string(),
            });
        }
        let holder = RunId::new();
        let staging = create_staging(&project.target_path, "rollback")?;
        let terms = LockTerms::new(&self.settings, None);
        let work = async {
            let mut report = RollbackReport {
                run: self.run.clone(),
                syncs: Vec::new(),
            };
            for sync in &touched {
                // Read again under the lock: a run may have settled it meanwhile.
                let manifests = state.manifests(sync).await?;
                let Some(manifest) = manifests.into_iter().find(|m| m.run_id == self.run) else {
                    continue;
                };
                let done = rollback_sync(project, &state, staging.path(), manifest).await?;
                report.syncs.push((sync.clone(), done));
            }
            Ok(report)
        };
        state
            .while_locked(&touched, &holder, terms, &Default::default(), work)
            .await
    }
}

awaitable!(RollbackOp => RollbackReport);
options!(RollbackOp { select, settings });

/// Rolls one sync back from its run: deletes what the run delivered where the destination
/// allows it, stores the snapshot part of the rows still delivered, then the manifest, then
/// removes the old parts. `None` when the run delivered nothing to it.
async fn rollback_sync(
    project: &Project,
    state: &StateStore,
    staging: &std::path::Path,
    mut manifest: RunManifest,
) -> Result<Option<RolledBack>> {
    let (sync_id, run) = (manifest.sync_id.clone(), manifest.run_id.clone());
    let parts = manifest.snapshot_parts.clone();
    if parts.is_empty() {
        return Ok(None);
    }
    // A checkpoint may hold this run's keys and manifest: drop it before anything changes,
    // so no run reads a key this rollback returns to "new" (the next runs write a new one).
    state.drop_checkpoints(&sync_id).await?;
    let def = project
        .destination(&manifest.destination)
        .ok_or_else(|| DinmoError::RunNotFound {
            run: run.clone(),
            state: format!(
                "{} (destination `{}` is no longer in dinmo.yml)",
                state.display(),
                manifest.destination
            ),
        })?;
    let destination = build_destination(def)?;

    // The rows and ids the run delivered.
    let context = format!("reading the snapshot parts of run {run}");
    let mut batches = Vec::new();
    for part in &parts {
        state.verify_part(&sync_id, part).await?;
        batches.extend(state.read_part(part).await?);
    }
    let mut ids = BTreeSet::new();
    for batch in &batches {
        ids.extend(destination_ids(batch, &context)?.into_iter().flatten());
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let results = destination
        .delete_records(&ids)
        .await
        .map_err(DinmoError::destination(sync_id.clone()))?;
    let not_deleted: Vec<String> = results
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|why| format!("{id}: {why}")))
        .collect();
    let deleted: BTreeSet<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id.as_str())
        .collect();

    // Keep the rows whose record is still in the destination.
    let at = RunContext::now();
    let new_path = SyncPaths::of(&sync_id).rollback_part(&run, at);
    let local = staging.join(format!("{sync_id}.parquet"));
    let values_current = parts.iter().all(PartInfo::holds_values);
    let (new_part, deleted_rows) =
        store_kept_rows(state, &batches, &deleted, &local, &new_path, values_current, &context).await?;
    manifest.snapshot_parts = new_part.into_iter().collect();
    manifest.recount();
    manifest.rollback = Some(Rollback {
        at,
        deleted_rows,
        not_deleted: not_deleted.clone(),
    });
    state.write_manifest(&manifest).await?;
    for part in &parts {
        state.delete(&part.path).await?;
    }
    Ok(Some(RolledBack {
        sync: sync_id,
        destination: manifest.destination,
        deleted_rows,
        not_deleted,
    }))
}

/// The destination id of each row of a snapshot part.
fn destination_ids(batch: &RecordBatch, context: &str) -> Result<Vec<Option<String>>> {
    let Some(column) = batch.column_by_name(DESTINATION_ID_COLUMN).map(Arc::clone) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let strings = cast(&column, &DataType::Utf8).map_err(DinmoError::arrow(context))?;
    Ok(strings
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

/// Stores the rows whose record was not deleted as one snapshot part at `path` (none when no
/// row is left), and counts the deleted rows.
async fn store_kept_rows(
    state: &StateStore,
    batches: &[RecordBatch],
    deleted: &BTreeSet<&str>,
    local: &std::path::Path,
    path: &str,
    values_current: bool,
    context: &str,
) -> Result<(Option<PartInfo>, u64)> {
    let mut writer: Option<LocalPartWriter> = None;
    let (mut deleted_rows, mut corrections) = (0u64, 0u64);
    // The kept rows keep the parts' values only when every part holds today's version.
    let values = values_current
        && batches
            .first()
            .is_some_and(|b| b.column_by_name(crate::state::values::VALUE_COLUMN).is_some());
    for batch in batches {
        let keep: BooleanArray = destination_ids(batch, context)?
            .iter()
            .map(|id| Some(!id.as_deref().is_some_and(|id| deleted.contains(id))))
            .collect();
        deleted_rows += (keep.len() - keep.true_count()) as u64;
        let kept = filter_record_batch(batch, &keep).map_err(DinmoError::arrow(context))?;
        corrections += kept
            .column_by_name(crate::state::values::CORRECTS_COLUMN)
            .map_or(0, |c| (c.len() - c.null_count()) as u64);
        if writer.is_none() {
            writer = Some(LocalPartWriter::create(local, kept.schema()).await?);
        }
        if let Some(writer) = writer.as_mut() {
            writer.write(&kept).await?;
        }
    }
    let Some(writer) = writer else {
        return Ok((None, deleted_rows));
    };
    let (local, rows) = writer.finish().await?;
    // The rows were read with their keys spelled as hex (`read_part`), so the part is stored
    // so, and its entry says so (`upload`'s default).
    let part = match rows {
        0 => None,
        _ => Some(PartInfo {
            value_version: if values { crate::state::values::VALUE_VERSION } else { 0 },
            corrections,
            ..state.upload(&local, path, rows).await?
        }),
    };
    Ok((part, deleted_rows))
}
