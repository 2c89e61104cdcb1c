//! `dinmo rollback RUN`: delete what a run delivered, where the destination still allows it,
//! and return those rows to "new".
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

use super::selected::load_selected;
use super::status::Status;
use crate::cli::{GlobalArgs, RollbackArgs};
use crate::error::{DinmoError, Result};
use crate::plan::destinations::build_destination;
use crate::state::DESTINATION_ID_COLUMN;
use crate::state::{LocalPartWriter, PartInfo, Rollback, StateStore};
use crate::sync::context::RunContext;

pub async fn rollback(global: &GlobalArgs, args: &RollbackArgs) -> Result<Status> {
    let (project, selection) = load_selected(global, &args.selection).await?;
    let state = StateStore::open(&project.state)?;
    // The syncs the run touched take their locks like `run` does: a rollback must not delete
    // records while a run of the same sync sends or commits.
    let mut touched = Vec::new();
    for sync_id in state.sync_ids().await? {
        if state.manifests(&sync_id).await?.iter().any(|m| m.run_id == args.run) {
            touched.push(sync_id);
        }
    }
    let work = rollback_locked(&project, &selection, &state, args);
    let run_id = crate::sync::context::new_run_id();
    state
        .while_locked(&touched, &run_id, None, &Default::default(), work)
        .await
}

async fn rollback_locked(
    project: &crate::project::Project,
    selection: &crate::project::selection::Selection,
    state: &StateStore,
    args: &RollbackArgs,
) -> Result<Status> {
    let staging = tempfile::Builder::new()
        .prefix("rollback-")
        .tempdir()
        .map_err(DinmoError::io(std::env::temp_dir()))?;
    let mut found = false;
    let mut not_deleted_total = 0;
    for sync_id in state.sync_ids().await? {
        let selected = project
            .models
            .iter()
            .flat_map(|m| m.syncs.iter().map(move |s| (m, s)))
            .any(|(m, s)| s.id == sync_id && selection.includes_sync(m, s));
        if !selected {
            continue;
        }
        let Some(manifest) = state
            .manifests(&sync_id)
            .await?
            .into_iter()
            .find(|m| m.run_id == args.run)
        else {
            continue;
        };
        found = true;
        not_deleted_total += rollback_sync(project, state, staging.path(), &sync_id, manifest, &args.run).await?;
    }
    if !found {
        return Err(DinmoError::RunNotFound {
            run: args.run.clone(),
            state: state.display().to_string(),
        });
    }
    if not_deleted_total > 0 {
        return Err(DinmoError::RollbackIncomplete {
            run: args.run.clone(),
            not_deleted: not_deleted_total,
        });
    }
    Ok(Status::Success)
}

/// Rolls one sync back from `run`: deletes what the run delivered where the destination
/// allows it, stores the snapshot part of the rows still delivered, then the manifest, then
/// removes the old parts. Returns how many records could not be deleted.
async fn rollback_sync(
    project: &crate::project::Project,
    state: &StateStore,
    staging: &std::path::Path,
    sync_id: &str,
    mut manifest: crate::state::RunManifest,
    run: &str,
) -> Result<usize> {
    let parts = manifest.snapshot_parts.clone();
    if parts.is_empty() {
        println!("{sync_id}: run {} delivered nothing", run);
        return Ok(0);
    }
    // A checkpoint may hold this run's keys and manifest: drop it before anything changes,
    // so no run reads a key this rollback returns to "new" (the next runs write a new one).
    state.drop_checkpoints(sync_id).await?;
    let def = project
        .destination(&manifest.destination)
        .ok_or_else(|| DinmoError::RunNotFound {
            run: run.to_string(),
            state: format!(
                "{} (destination `{}` is no longer in dinmo.yml)",
                state.display(),
                manifest.destination
            ),
        })?;
    let destination = build_destination(def)?;

    // The rows and ids the run delivered.
    let context = format!("reading the snapshot parts of run {}", run);
    let mut batches = Vec::new();
    for part in &parts {
        state.verify_part(sync_id, part).await?;
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
        .map_err(DinmoError::destination(sync_id))?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|why| format!("{id}: {why}")))
        .collect();
    let deleted: BTreeSet<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id.as_str())
        .collect();

    // Keep the rows whose record is still in the destination.
    let new_path = format!(
        "{sync_id}/snapshot/{run}-rollback-{}.parquet",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ")
    );
    let local = staging.join(format!("{sync_id}.parquet"));
    let (new_part, deleted_rows) = store_kept_rows(state, &batches, &deleted, &local, &new_path, &context).await?;
    manifest.snapshot_parts = new_part.into_iter().collect();
    manifest.recount();
    manifest.rollback = Some(Rollback {
        at: RunContext::now(),
        deleted_rows,
        not_deleted: failed.clone(),
    });
    state.write_manifest(&manifest).await?;
    for part in &parts {
        state.delete(&part.path).await?;
    }
    println!(
        "{sync_id}: deleted {deleted_rows} row(s) of run {} in `{}`; they count as new again",
        run, manifest.destination
    );
    for failure in &failed {
        println!("  not deleted: {failure}");
    }
    Ok(failed.len())
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
    context: &str,
) -> Result<(Option<PartInfo>, u64)> {
    let mut writer: Option<LocalPartWriter> = None;
    let mut deleted_rows = 0u64;
    for batch in batches {
        let keep: BooleanArray = destination_ids(batch, context)?
            .iter()
            .map(|id| Some(!id.as_deref().is_some_and(|id| deleted.contains(id))))
            .collect();
        deleted_rows += (keep.len() - keep.true_count()) as u64;
        let kept = filter_record_batch(batch, &keep).map_err(DinmoError::arrow(context))?;
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
        _ => Some(state.upload(&local, path, rows).await?),
    };
    Ok((part, deleted_rows))
}
