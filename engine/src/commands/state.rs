//! `dinmo state verify | resolve-pending | rebuild`.

use std::collections::BTreeSet;

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::Status;
use crate::cli::{GlobalArgs, RebuildArgs, ResolvePendingArgs, StateCommand, UnlockArgs};
use crate::delivery::{Commit, keys_in_parts, read_parquet};
use crate::diff::{new_rows, stage_model, write_frame};
use crate::error::{DinmoError, Result};
use crate::planning::plan_models;
use crate::project::{Project, find_project_root, load_project};
use crate::recovery::settle_by_unique_key;
use crate::row_key::ROW_KEY_VERSION;
use crate::run_context::{RunContext, create_staging, git_commit, mapping_hash, new_run_id, sql_hash};
use crate::selection::Selection;
use crate::sources::register_store;
use crate::state::{Counts, LockStatus, MANIFEST_FORMAT_VERSION, Outcome, RunManifest, StateStore, Unlocked};
use crate::sync_run::SyncReport;

pub async fn state(global: &GlobalArgs, command: StateCommand) -> Result<Status> {
    let root = find_project_root(global.project.as_deref())?;
    let project = load_project(&root)?;
    let state = StateStore::open(&project.state)?;
    match command {
        StateCommand::Verify => verify(&state).await,
        StateCommand::ResolvePending(args) => resolve_pending(&project, &state, &args).await,
        StateCommand::Rebuild(args) => rebuild(&project, &state, &args).await,
        StateCommand::Unlock(args) => unlock(&state, &args).await,
    }
}

async fn unlock(state: &StateStore, args: &UnlockArgs) -> Result<Status> {
    let lock = state.lock_url(&args.sync);
    match state.unlock(&args.sync, args.force).await? {
        Unlocked::NotLocked => println!("{}: not locked ({lock} does not exist)", args.sync),
        Unlocked::Removed(LockStatus::Held { holder, .. }) => {
            println!("{}: removed {lock}, held by {}", args.sync, holder.describe())
        }
        Unlocked::Removed(LockStatus::Unreadable { problem }) => {
            println!("{}: removed {lock}, which could not be read: {problem}", args.sync)
        }
        Unlocked::Removed(LockStatus::Free) => println!("{}: removed {lock}", args.sync),
    }
    Ok(Status::Success)
}

async fn verify(state: &StateStore) -> Result<Status> {
    let mut problems = 0;
    let syncs = state.sync_ids().await?;
    if syncs.is_empty() {
        println!("{}: no sync state", state.display());
    }
    for sync in syncs {
        let manifests = match state.manifests(&sync).await {
            Ok(manifests) => manifests,
            Err(error) => {
                println!("{sync}: {error}");
                problems += 1;
                continue;
            }
        };
        let mut named = BTreeSet::new();
        let (mut parts, mut rows) = (0, 0);
        for manifest in &manifests {
            for part in manifest
                .snapshot_parts
                .iter()
                .chain(&manifest.rejected_parts)
                .chain(&manifest.pending_part)
            {
                named.insert(part.path.clone());
                match state.verify_part(&sync, part).await {
                    Ok(()) => parts += 1,
                    Err(error) => {
                        println!("{sync}: {error}");
                        problems += 1;
                    }
                }
            }
            rows += manifest.snapshot_parts.iter().map(|p| p.rows).sum::<u64>();
            if let Some(pending) = &manifest.pending_part {
                println!(
                    "{sync}: run {} left {} row(s) pending ({}); the next run reconciles them",
                    manifest.run_id,
                    pending.rows,
                    manifest.outcome.as_str()
                );
            }
        }
        for folder in ["snapshot", "rejected", "pending"] {
            for path in state.files_in(&sync, folder).await? {
                if !named.contains(&path) {
                    println!(
                        "{sync}: {} is named by no manifest (a run stopped between storing it and its manifest)",
                        state.url_of(&path)
                    );
                }
            }
        }
        match state.lock_status(&sync).await? {
            LockStatus::Free => {}
            LockStatus::Held { holder, .. } if holder.expired() || holder.dead_here() => println!(
                "{sync}: lock {} is stale: {}; the next run takes it over",
                state.lock_url(&sync),
                holder.describe()
            ),
            LockStatus::Held { holder, .. } => {
                println!("{sync}: locked by {}", holder.describe())
            }
            LockStatus::Unreadable { problem } => {
                println!(
                    "{sync}: lock {} cannot be read: {problem}; runs of this sync stop until it is removed \
                     with `dinmo state unlock {sync}`",
                    state.lock_url(&sync)
                );
                problems += 1;
            }
        }
        println!(
            "{sync}: {} run(s), {parts} part(s) verified, {rows} row(s) in the snapshot",
            manifests.len()
        );
    }
    if problems > 0 {
        return Err(DinmoError::StateIntegrity {
            sync: "*".into(),
            message: format!("{problems} problem(s) found in {}", state.display()),
            remedy: "Restore the named parts from a backup of the state location.".into(),
        });
    }
    Ok(Status::Success)
}

async fn resolve_pending(project: &Project, state: &StateStore, args: &ResolvePendingArgs) -> Result<Status> {
    let run_id = new_run_id();
    let mut locks = state
        .lock_syncs(std::slice::from_ref(&args.sync), &run_id, None, &Default::default())
        .await?;
    let result = resolve_pending_locked(project, state, args, &run_id).await;
    locks.release().await;
    result
}

async fn resolve_pending_locked(
    project: &Project,
    state: &StateStore,
    args: &ResolvePendingArgs,
    run_id: &str,
) -> Result<Status> {
    let not_found = || DinmoError::RunNotFound {
        run: args.run.clone(),
        state: format!("{} (sync {})", state.display(), args.sync),
    };
    let mut manifest = state
        .manifests(&args.sync)
        .await?
        .into_iter()
        .find(|m| m.run_id == args.run)
        .ok_or_else(not_found)?;
    let pending = manifest.pending_part.clone().ok_or_else(not_found)?;
    state.verify_part(&args.sync, &pending).await?;
    if args.sent {
        let staging = create_staging(&project.target_path, "resolve")?;
        let local = staging.path().join("pending.parquet");
        state.download(&pending.path, &local).await?;
        let committed = [manifest.snapshot_parts.clone(), manifest.rejected_parts.clone()].concat();
        let skip = keys_in_parts(state, &committed).await?;
        let mut commit = Commit::new(
            state,
            staging.path(),
            &args.sync,
            &args.run,
            &format!("{}-resolved-{run_id}", args.run),
        )
        .skipping(skip);
        let mut report = SyncReport::empty(&args.sync);
        let mut stream = read_parquet(&local).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(DinmoError::parquet(local.display().to_string()))?;
            let statuses = vec![dinmo_connectors::RowStatus::Accepted { destination_id: None }; batch.num_rows()];
            commit
                .record(&dinmo_connectors::BatchOutcome { batch, statuses }, &mut report)
                .await?;
        }
        commit.checkpoint(&mut manifest).await?;
        manifest.outcome = manifest.settled_outcome();
    } else {
        manifest.outcome = Outcome::Failed;
    }
    manifest.recount();
    manifest.error = Some(format!(
        "pending rows resolved by hand as {}",
        if args.sent { "sent" } else { "not sent" }
    ));
    manifest.recovered_by = Some(run_id.to_string());
    manifest.pending_part = None;
    manifest.finished_at = RunContext::now();
    state.write_manifest(&manifest).await?;
    state.delete(&pending.path).await?;
    println!(
        "{}: {} pending row(s) of run {} recorded as {}",
        args.sync,
        pending.rows,
        args.run,
        if args.sent {
            "delivered"
        } else {
            "not sent; the next run offers them again"
        }
    );
    Ok(Status::Success)
}

async fn rebuild(project: &Project, state: &StateStore, args: &RebuildArgs) -> Result<Status> {
    let selection = Selection::resolve(
        project,
        &args.selection.select,
        &args.selection.exclude,
        args.selection.state.as_deref(),
    )
    .await?;
    let ctx = SessionContext::new();
    let planned = plan_models(&ctx, project, &selection).await?;
    register_store(&ctx, &project.state)?;
    let run_id = new_run_id();
    let staging = create_staging(&project.target_path, "rebuild")?;
    let syncs: Vec<String> = planned
        .iter()
        .flat_map(|m| m.syncs.iter().map(|s| s.sync.id.clone()))
        .collect();
    let mut locks = state.lock_syncs(&syncs, &run_id, None, &Default::default()).await?;
    let result = async {
        for model in &planned {
            let staged = stage_model(&ctx, model, staging.path()).await?;
            for (index, target) in model.syncs.iter().enumerate() {
                let sync = target.sync;
                if !state.manifests(&sync.id).await?.is_empty() {
                    println!(
                        "{}: has state; rebuild is for a sync whose state is gone (see `dinmo state verify`)",
                        sync.id
                    );
                    continue;
                }
                let frame = new_rows(&ctx, &staged, index, sync, None).await?;
                let local = staging.path().join(format!("{}.rebuild.parquet", sync.id));
                let rows = write_frame(frame, &local, &format!("sync `{}`: rebuild", sync.id)).await?;
                let destination = target.destination.as_ref();
                let mut manifest = RunManifest {
                    format_version: MANIFEST_FORMAT_VERSION,
                    run_id: run_id.clone(),
                    sync_id: sync.id.clone(),
                    model: sync.model.clone(),
                    destination: sync.destination.clone(),
                    destination_type: destination.kind().to_string(),
                    started_at: RunContext::now(),
                    finished_at: String::new(),
                    git_commit: git_commit(&project.root),
                    model_sql_hash: sql_hash(&model.model.sql),
                    mapping_hash: mapping_hash(model.model, sync),
                    row_key_version: ROW_KEY_VERSION,
                    full_refresh: false,
                    counts: Counts {
                        model_rows: staged.rows,
                        ..Counts::default()
                    },
                    pending_part: None,
                    snapshot_parts: Vec::new(),
                    rejected_parts: Vec::new(),
                    recovered_by: None,
                    destination_ids: Vec::new(),
                    outcome: Outcome::Succeeded,
                    error: Some("rebuilt from the destination's records by `dinmo state rebuild`".into()),
                    rollback: None,
                };
                let mut report = SyncReport::empty(&sync.id);
                let mut commit = Commit::new(state, staging.path(), &sync.id, &run_id, &format!("{run_id}-rebuild"));
                // Without --write the parts are collected in a throwaway manifest only.
                if args.write {
                    settle_by_unique_key(
                        &local,
                        destination,
                        &sync.id,
                        &run_id,
                        rows,
                        &mut commit,
                        &mut manifest,
                        &mut report,
                    )
                    .await?;
                    manifest.counts.new_rows = manifest.snapshot_parts.iter().map(|p| p.rows).sum();
                    manifest.recount();
                    manifest.finished_at = RunContext::now();
                    state.write_manifest(&manifest).await?;
                    println!(
                        "{}: recorded {} of {rows} model row(s) found in `{}`",
                        sync.id, manifest.counts.accepted, sync.destination
                    );
                } else {
                    let found = count_found(&local, destination, &sync.id, &run_id, rows).await?;
                    println!(
                        "{}: {found} of {rows} model row(s) are in `{}`; run again with --write to record them",
                        sync.id, sync.destination
                    );
                }
            }
        }
        Ok(Status::Success)
    }
    .await;
    locks.release().await;
    result
}

async fn count_found(
    local: &std::path::Path,
    destination: &dyn dinmo_connectors::Destination,
    sync: &str,
    run: &str,
    rows: u64,
) -> Result<u64> {
    let mut found = 0;
    let mut stream = read_parquet(local).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::parquet(local.display().to_string()))?;
        let keys = crate::recovery::unique_keys(&batch)?;
        let hits = destination
            .find_delivered(&keys)
            .await
            .map_err(DinmoError::destination(sync.to_string()))?
            .ok_or_else(|| DinmoError::PendingUndecidable {
                sync: sync.into(),
                run: run.into(),
                rows,
                reason: "the destination cannot be searched by UniqueKey".into(),
            })?;
        found += hits.len() as u64;
    }
    Ok(found)
}
