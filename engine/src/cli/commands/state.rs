//! `dinmo state verify | resolve-pending | rebuild`.

use std::collections::BTreeSet;

use super::status::Status;
use crate::cli::{CompactArgs, GlobalArgs, RebuildArgs, ResolvePendingArgs, StateCommand, UnlockArgs};
use crate::diff::{SnapshotKeys, stage_model};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, PlannedSync, plan_models};
use crate::plan::sources::register_store;
use crate::project::fingerprints::{mapping_hash, sql_hash};
use crate::project::{Project, find_project_root, load_project};
use crate::state::{Counts, LockStatus, Outcome, RunManifest, RunStamp, StateStore, SyncIdentity, Unlocked};
use crate::sync::commit::Commit;
use crate::sync::context::{RunContext, create_staging, git_commit, new_run_id};
use crate::sync::recovery::{count_delivered, resolve_by_hand, settle_by_lookup};
use dinmo_connectors::zuora_revenue::journal::{Resolution, resolve_intents};

pub async fn state(global: &GlobalArgs, command: StateCommand) -> Result<Status> {
    let root = find_project_root(global.project.as_deref())?;
    let project = load_project(&root)?;
    let state = StateStore::open(&project.state)?;
    match command {
        StateCommand::Verify => verify(&state).await,
        StateCommand::ResolvePending(args) => resolve_pending(&project, &state, &args).await,
        StateCommand::Rebuild(args) => rebuild(global, &project, &state, &args).await,
        StateCommand::Unlock(args) => unlock(&state, &args).await,
        StateCommand::Compact(args) => compact(&project, &state, &args).await,
    }
}

async fn compact(project: &Project, state: &StateStore, args: &CompactArgs) -> Result<Status> {
    let syncs = match args.syncs.is_empty() {
        true => state.sync_ids().await?,
        false => args.syncs.clone(),
    };
    let holder = new_run_id();
    let staging = create_staging(&project.target_path, "compact")?;
    let wait = args.wait.map(std::time::Duration::from_secs);
    state
        .while_locked(&syncs, &holder, wait, &Default::default(), async {
            for sync in &syncs {
                let done = state.compact(sync, staging.path()).await?;
                match &done.through_run {
                    Some(through) => println!(
                        "{sync}: checkpoint through run {through}: {} run(s) newly covered, {} row key(s) in {} part(s), {} old checkpoint object(s) removed",
                        done.runs_covered, done.rows, done.key_parts, done.removed
                    ),
                    None => println!("{sync}: nothing to compact (no settled run)"),
                }
            }
            Ok(())
        })
        .await?;
    Ok(Status::Success)
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

/// `dinmo state verify`: every sync's manifests, parts (size and checksum), unnamed files and
/// lock, printed; exit 1 when a part or lock is damaged.
///
/// Long on purpose: one report printed in sync order, each check a few lines of output.
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
        match state.latest_checkpoint(&sync).await {
            Ok(Some(checkpoint)) => {
                for part in &checkpoint.key_parts {
                    match state.verify_part(&sync, part).await {
                        Ok(()) => parts += 1,
                        Err(error) => {
                            println!("{sync}: {error}");
                            problems += 1;
                        }
                    }
                }
                let covered: u64 = checkpoint
                    .runs
                    .iter()
                    .flat_map(|m| &m.snapshot_parts)
                    .map(|p| p.rows)
                    .sum();
                if covered != checkpoint.rows {
                    println!(
                        "{sync}: checkpoint through run {} holds {} row key(s), its runs {covered}; delete {} so runs read the runs' own parts",
                        checkpoint.through_run,
                        checkpoint.rows,
                        state.url_of(&format!("{sync}/checkpoints/"))
                    );
                    problems += 1;
                } else {
                    println!(
                        "{sync}: checkpoint through run {} covers {} run(s), {} row key(s) in {} part(s)",
                        checkpoint.through_run,
                        checkpoint.runs.len(),
                        checkpoint.rows,
                        checkpoint.key_parts.len()
                    );
                }
            }
            Ok(None) => {}
            Err(error) => {
                println!("{sync}: {error}");
                problems += 1;
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

/// What `resolve-pending` settled.
enum Resolved {
    /// Pending rows, committed or left to the diff.
    Rows(u64),
    /// Upload journal records (their rows are settled by the next run's replay).
    Uploads(Vec<String>),
}

async fn resolve_pending(project: &Project, state: &StateStore, args: &ResolvePendingArgs) -> Result<Status> {
    let resolver = new_run_id();
    let syncs = std::slice::from_ref(&args.sync);
    let resolved = state
        .while_locked(syncs, &resolver, None, &Default::default(), async {
            let not_found = || DinmoError::RunNotFound {
                run: args.run.clone(),
                state: format!("{} (sync {})", state.display(), args.sync),
            };
            let manifest = state
                .manifests(&args.sync)
                .await?
                .into_iter()
                .find(|m| m.run_id == args.run && m.pending_part.is_some())
                .ok_or_else(not_found)?;
            // Uploads recorded but never answered (zuora_revenue): settle those files; the
            // next run replays the run's rows through the journal and settles the rest.
            let resolution = resolve_intents(
                state.journal_location(&args.sync),
                &args.run,
                args.file.as_deref(),
                args.sent,
            )
            .await
            .map_err(DinmoError::destination(args.sync.clone()))?;
            let to_resolve = |problem: String, undecided: Vec<String>| DinmoError::UploadsToResolve {
                sync: args.sync.clone(),
                run: args.run.clone(),
                problem,
                undecided: if undecided.is_empty() {
                    "none".into()
                } else {
                    undecided.join(", ")
                },
            };
            match resolution {
                Resolution::Settled(uploads) if !uploads.is_empty() => return Ok(Resolved::Uploads(uploads)),
                Resolution::Settled(_) if args.file.is_some() => {
                    return Err(to_resolve("--file names no undecided upload".into(), Vec::new()));
                }
                Resolution::Settled(_) => {}
                Resolution::Ambiguous(undecided) => {
                    return Err(to_resolve("several uploads are undecided".into(), undecided));
                }
                Resolution::NotUndecided { file, undecided } => {
                    return Err(to_resolve(format!("`{file}` is not an undecided upload"), undecided));
                }
            }
            let staging = create_staging(&project.target_path, "resolve")?;
            resolve_by_hand(state, staging.path(), manifest, args.sent, &resolver)
                .await
                .map(Resolved::Rows)
        })
        .await?;
    let rows = match resolved {
        Resolved::Rows(rows) => rows,
        Resolved::Uploads(files) => {
            let how = if args.sent { "sent" } else { "not sent" };
            println!(
                "{}: upload(s) of run {} recorded as {how}: {}; the next run settles the run's rows through them",
                args.sync,
                args.run,
                files.join(", ")
            );
            return Ok(Status::Success);
        }
    };
    let recorded = if args.sent {
        "delivered"
    } else {
        "not sent; the next run offers them again"
    };
    println!(
        "{}: {rows} pending row(s) of run {} recorded as {recorded}",
        args.sync, args.run
    );
    Ok(Status::Success)
}

async fn rebuild(global: &GlobalArgs, project: &Project, state: &StateStore, args: &RebuildArgs) -> Result<Status> {
    let selection = crate::plan::modified::select(
        project,
        &args.selection.select,
        &args.selection.exclude,
        args.selection.state.as_deref(),
    )
    .await?;
    let ctx = super::selected::query_context(global, project)?;
    let planned = plan_models(&ctx, project, &selection).await?;
    register_store(&ctx, &project.state)?;
    let run = RunStamp {
        run_id: new_run_id(),
        started_at: RunContext::now(),
        git_commit: git_commit(&project.root),
        full_refresh: false,
    };
    let staging = create_staging(&project.target_path, "rebuild")?;
    let syncs: Vec<String> = planned
        .iter()
        .flat_map(|m| m.syncs.iter().map(|s| s.sync.id.clone()))
        .collect();
    state
        .while_locked(&syncs, &run.run_id, None, &Default::default(), async {
            for model in &planned {
                let mut rebuilt = Vec::new();
                for (index, target) in model.syncs.iter().enumerate() {
                    if !state.manifests(&target.sync.id).await?.is_empty() {
                        println!(
                            "{}: has state; rebuild is for a sync whose state is gone (see `dinmo state verify`)",
                            target.sync.id
                        );
                        continue;
                    }
                    let local = staging.path().join(format!("{}.rebuild.parquet", target.sync.id));
                    rebuilt.push((index, target, local));
                }
                if rebuilt.is_empty() {
                    continue;
                }
                // Every row of the model is a row of the rebuilt snapshot.
                let direct = rebuilt
                    .iter()
                    .filter_map(|(index, _, local)| SnapshotKeys::Everything.direct(*index, local.clone()))
                    .collect();
                let staged = stage_model(&ctx, model, staging.path(), direct, false).await?;
                for (index, target, local) in rebuilt {
                    let rows = staged.direct_rows(index).unwrap_or_default();
                    rebuild_sync(
                        state,
                        staging.path(),
                        &run,
                        model,
                        target,
                        &local,
                        staged.rows,
                        rows,
                        args.write,
                    )
                    .await?;
                }
            }
            Ok(Status::Success)
        })
        .await
}

/// Records (with `--write`) or counts the rows of `local` that the destination finds.
#[allow(clippy::too_many_arguments)]
async fn rebuild_sync(
    state: &StateStore,
    staging: &std::path::Path,
    run: &RunStamp,
    model: &PlannedModel<'_>,
    target: &PlannedSync<'_>,
    local: &std::path::Path,
    model_rows: u64,
    rows: u64,
    write: bool,
) -> Result<()> {
    let sync = target.sync;
    let destination = target.destination.as_ref();
    if !write {
        let found = count_delivered(local, destination, &sync.id, &run.run_id, rows).await?;
        println!(
            "{}: {found} of {rows} model row(s) are in `{}`; run again with --write to record them",
            sync.id, sync.destination
        );
        return Ok(());
    }
    let identity = SyncIdentity {
        sync_id: sync.id.clone(),
        model: sync.model.clone(),
        destination: sync.destination.clone(),
        sql_hash: sql_hash(&model.model.sql),
        mapping_hash: mapping_hash(model.model, sync),
    };
    let counts = Counts {
        model_rows,
        ..Counts::default()
    };
    let mut manifest = RunManifest::start(&identity, destination.kind(), run, counts);
    manifest.outcome = Outcome::Succeeded;
    manifest.error = Some("rebuilt from the destination's records by `dinmo state rebuild`".into());
    let prefix = format!("{}-rebuild", run.run_id);
    let mut commit = Commit::new(state, staging, &sync.id, &run.run_id, &prefix);
    let found = settle_by_lookup(
        local,
        destination,
        &sync.id,
        &run.run_id,
        rows,
        &mut commit,
        &mut manifest,
    )
    .await?;
    manifest.counts.new_rows = found;
    manifest.recount();
    manifest.finished_at = RunContext::now();
    state.write_manifest(&manifest).await?;
    println!(
        "{}: recorded {} of {rows} model row(s) found in `{}`",
        sync.id, manifest.counts.accepted, sync.destination
    );
    Ok(())
}
