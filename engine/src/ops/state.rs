//! `state verify | resolve-pending | rebuild | compact | unlock`: the operations on a project's
//! state store.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use dinmo_connectors::Resolution;
use dinmo_connectors::{RunId, SyncId};

use super::project::{Selector, query_context};
use crate::diff::{DiffFiles, SnapshotKeys, StagedRows, stage_model, write_new_rows};
use crate::error::{DinmoError, Result};
use crate::plan::models::plan_models;
use crate::plan::sources::register_store;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::{
    Compaction, Counts, Folder, LockStatus, LockTerms, Outcome, RunManifest, RunStamp, StateStore, SyncPaths, Unlocked,
};
use crate::sync::commit::Commit;
use crate::sync::context::{RunContext, create_staging, git_commit};
use crate::sync::recovery::{count_delivered, resolve_by_hand, settle_by_lookup};
use crate::sync::run::identity_of;

/// Checks every sync's manifests, parts (size and checksum), unnamed files, checkpoint and
/// lock.
#[derive(Debug)]
pub struct VerifyOp<'p> {
    project: &'p Project,
}

/// One thing `state verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The state has no sync.
    NoState { location: String },
    /// A manifest, part or checkpoint failed its check.
    Damaged { sync: SyncId, error: String },
    /// A run left rows pending.
    Pending {
        sync: SyncId,
        run: RunId,
        rows: u64,
        outcome: Outcome,
    },
    /// A file no manifest names.
    Unnamed { sync: SyncId, url: String },
    /// A checkpoint whose key count disagrees with its runs'.
    CheckpointMismatch {
        sync: SyncId,
        through: RunId,
        rows: u64,
        covered: u64,
        folder: String,
    },
    /// A sound checkpoint.
    Checkpoint {
        sync: SyncId,
        through: RunId,
        runs: usize,
        rows: u64,
        parts: usize,
    },
    /// A lock whose holder is gone.
    LockStale { sync: SyncId, url: String, holder: String },
    /// A lock held by a live run.
    Locked { sync: SyncId, holder: String },
    /// A lock that cannot be read.
    LockUnreadable { sync: SyncId, url: String, problem: String },
    /// A sync's totals.
    Totals {
        sync: SyncId,
        runs: usize,
        parts: usize,
        rows: u64,
    },
}

impl Finding {
    /// Whether it makes `state verify` fail.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Finding::Damaged { .. } | Finding::CheckpointMismatch { .. } | Finding::LockUnreadable { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::NoState { location } => write!(f, "{location}: no sync state"),
            Finding::Damaged { sync, error } => write!(f, "{sync}: {error}"),
            Finding::Pending {
                sync,
                run,
                rows,
                outcome,
            } => write!(
                f,
                "{sync}: run {run} left {rows} row(s) pending ({}); the next run reconciles them",
                outcome.as_str()
            ),
            Finding::Unnamed { sync, url } => write!(
                f,
                "{sync}: {url} is named by no manifest (a run stopped between storing it and its manifest)"
            ),
            Finding::CheckpointMismatch {
                sync,
                through,
                rows,
                covered,
                folder,
            } => write!(
                f,
                "{sync}: checkpoint through run {through} holds {rows} row key(s), its runs {covered}; delete {folder} so runs read the runs' own parts"
            ),
            Finding::Checkpoint {
                sync,
                through,
                runs,
                rows,
                parts,
            } => write!(
                f,
                "{sync}: checkpoint through run {through} covers {runs} run(s), {rows} row key(s) in {parts} part(s)"
            ),
            Finding::LockStale { sync, url, holder } => {
                write!(f, "{sync}: lock {url} is stale: {holder}; the next run takes it over")
            }
            Finding::Locked { sync, holder } => write!(f, "{sync}: locked by {holder}"),
            Finding::LockUnreadable { sync, url, problem } => write!(
                f,
                "{sync}: lock {url} cannot be read: {problem}; runs of this sync stop until it is removed \
                 with `dinmo state unlock {sync}`"
            ),
            Finding::Totals {
                sync,
                runs,
                parts,
                rows,
            } => write!(
                f,
                "{sync}: {runs} run(s), {parts} part(s) verified, {rows} row(s) in the snapshot"
            ),
        }
    }
}

/// What `state verify` found, in sync order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The state location.
    pub location: String,
    /// Everything found.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// An error when a part, checkpoint or lock is damaged.
    pub fn outcome(&self) -> Result<()> {
        match self.findings.iter().filter(|f| f.is_problem()).count() {
            0 => Ok(()),
            problems => Err(DinmoError::StateIntegrity {
                sync: "*".into(),
                message: format!("{problems} problem(s) found in {}", self.location),
                remedy: "Restore the named parts from a backup of the state location.".into(),
            }),
        }
    }
}

impl<'p> VerifyOp<'p> {
    /// Verifies the state of `project`.
    pub fn new(project: &'p Project) -> Self {
        VerifyOp { project }
    }

    async fn execute(self) -> Result<VerifyReport> {
        let state = StateStore::open(&self.project.state)?;
        let mut report = VerifyReport {
            location: state.display().to_string(),
            findings: Vec::new(),
        };
        let syncs = state.sync_ids().await?;
        if syncs.is_empty() {
            report.findings.push(Finding::NoState {
                location: state.display().to_string(),
            });
        }
        for sync in syncs {
            verify_sync(&state, &sync, &mut report.findings).await?;
        }
        Ok(report)
    }
}

awaitable!(VerifyOp => VerifyReport);

/// The findings of one sync.
async fn verify_sync(state: &StateStore, sync: &SyncId, findings: &mut Vec<Finding>) -> Result<()> {
    let damaged = |error: DinmoError| Finding::Damaged {
        sync: sync.clone(),
        error: error.to_string(),
    };
    let manifests = match state.manifests(sync).await {
        Ok(manifests) => manifests,
        Err(error) => {
            findings.push(damaged(error));
            return Ok(());
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
            match state.verify_part(sync, part).await {
                Ok(()) => parts += 1,
                Err(error) => findings.push(damaged(error)),
            }
        }
        rows += manifest.snapshot_parts.iter().map(|p| p.rows).sum::<u64>();
        if let Some(pending) = &manifest.pending_part {
            findings.push(Finding::Pending {
                sync: sync.clone(),
                run: manifest.run_id.clone(),
                rows: pending.rows,
                outcome: manifest.outcome,
            });
        }
    }
    for folder in [Folder::Snapshot, Folder::Rejected, Folder::Pending] {
        for path in state.files_in(sync, folder).await? {
            if !named.contains(&path) {
                findings.push(Finding::Unnamed {
                    sync: sync.clone(),
                    url: state.url_of(&path),
                });
            }
        }
    }
    match state.latest_checkpoint(sync).await {
        Ok(Some(checkpoint)) => {
            for part in &checkpoint.key_parts {
                match state.verify_part(sync, part).await {
                    Ok(()) => parts += 1,
                    Err(error) => findings.push(damaged(error)),
                }
            }
            let covered: u64 = checkpoint
                .runs
                .iter()
                .flat_map(|m| &m.snapshot_parts)
                .map(|p| p.rows)
                .sum();
            findings.push(match covered == checkpoint.rows {
                false => Finding::CheckpointMismatch {
                    sync: sync.clone(),
                    through: checkpoint.through_run.clone(),
                    rows: checkpoint.rows,
                    covered,
                    folder: format!("{}/", state.url_of(&SyncPaths::of(sync).folder(Folder::Checkpoints))),
                },
                true => Finding::Checkpoint {
                    sync: sync.clone(),
                    through: checkpoint.through_run.clone(),
                    runs: checkpoint.runs.len(),
                    rows: checkpoint.rows,
                    parts: checkpoint.key_parts.len(),
                },
            });
        }
        Ok(None) => {}
        Err(error) => findings.push(damaged(error)),
    }
    match state.lock_status(sync).await? {
        LockStatus::Free => {}
        LockStatus::Held { holder, .. } if holder.expired() || holder.dead_here() => {
            findings.push(Finding::LockStale {
                sync: sync.clone(),
                url: state.lock_url(sync),
                holder: holder.describe(),
            })
        }
        LockStatus::Held { holder, .. } => findings.push(Finding::Locked {
            sync: sync.clone(),
            holder: holder.describe(),
        }),
        LockStatus::Unreadable { problem } => findings.push(Finding::LockUnreadable {
            sync: sync.clone(),
            url: state.lock_url(sync),
            problem,
        }),
    }
    findings.push(Finding::Totals {
        sync: sync.clone(),
        runs: manifests.len(),
        parts,
        rows,
    });
    Ok(())
}

/// Settles, by hand, the pending rows of a stopped run that a run cannot settle itself: they
/// were delivered (`sent`) or not. For a destination that journals its uploads
/// (`zuora_revenue`), the undecided uploads are what is settled; the next run settles the
/// run's rows through them.
#[derive(Debug)]
pub struct ResolvePendingOp<'p> {
    project: &'p Project,
    sync: SyncId,
    run: RunId,
    sent: bool,
    file: Option<String>,
    settings: Settings,
}

/// What `resolve-pending` settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Pending rows, committed as delivered or left to the next run's diff.
    Rows(u64),
    /// Upload journal records; their rows are settled by the next run's replay.
    Uploads(Vec<String>),
}

impl<'p> ResolvePendingOp<'p> {
    /// Resolves the pending rows `run` left in `sync` as delivered (`sent`) or not.
    pub fn new(project: &'p Project, sync: SyncId, run: RunId, sent: bool) -> Self {
        ResolvePendingOp {
            project,
            sync,
            run,
            sent,
            file: None,
            settings: Settings::default(),
        }
    }

    /// Only the undecided upload `file` (`--file`).
    pub fn file(mut self, file: Option<String>) -> Self {
        self.file = file;
        self
    }

    async fn execute(self) -> Result<Resolved> {
        let state = StateStore::open(&self.project.state)?;
        let resolver = RunId::new();
        let terms = LockTerms::new(&self.settings, None);
        let syncs = std::slice::from_ref(&self.sync);
        state
            .while_locked(
                syncs,
                &resolver,
                terms,
                &Default::default(),
                self.resolve(&state, &resolver),
            )
            .await
    }

    async fn resolve(&self, state: &StateStore, resolver: &RunId) -> Result<Resolved> {
        let not_found = || DinmoError::RunNotFound {
            run: self.run.clone(),
            state: format!("{} (sync {})", state.display(), self.sync),
        };
        let manifest = state
            .manifests(&self.sync)
            .await?
            .into_iter()
            .find(|m| m.run_id == self.run && m.pending_part.is_some())
            .ok_or_else(not_found)?;
        let def = self.project.destination(&manifest.destination);
        let destination = def.map(crate::plan::destinations::build_destination).transpose()?;
        // Uploads recorded but never answered: settle those files; the next run replays the
        // run's rows through the journal and settles the rest.
        let journal = state.journal_location(&self.sync);
        let resolution = match &destination {
            Some(destination) => destination
                .resolve_undecided(journal, &self.run, self.file.as_deref(), self.sent)
                .await
                .map_err(DinmoError::destination(self.sync.clone()))?,
            None => Resolution::Settled(Vec::new()),
        };
        let to_resolve = |problem: String, undecided: Vec<String>| DinmoError::SendsToResolve {
            sync: self.sync.clone(),
            run: self.run.clone(),
            problem,
            undecided: if undecided.is_empty() {
                "none".into()
            } else {
                undecided.join(", ")
            },
        };
        match resolution {
            Resolution::Settled(uploads) if !uploads.is_empty() => return Ok(Resolved::Uploads(uploads)),
            Resolution::Settled(_) if self.file.is_some() => {
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
        let staging = create_staging(&self.project.target_path, "resolve")?;
        resolve_by_hand(state, staging.path(), manifest, self.sent, resolver, &self.settings)
            .await
            .map(Resolved::Rows)
    }
}

awaitable!(ResolvePendingOp => Resolved);
options!(ResolvePendingOp { settings });

/// Rebuilds the state of syncs whose state is gone, from what their destination holds: every
/// row of the model that the destination finds by its own keys is recorded as delivered
/// (`write`), or only counted.
#[derive(Debug)]
pub struct RebuildOp<'p> {
    project: &'p Project,
    selector: Selector,
    write: bool,
    settings: Settings,
}

/// What `state rebuild` did for one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuilt {
    /// The sync has state; rebuild leaves it.
    HasState { sync: SyncId },
    /// `found` of the model's `rows` are in the destination (nothing written).
    Counted {
        sync: SyncId,
        destination: String,
        found: u64,
        rows: u64,
    },
    /// `recorded` of the model's `rows` were found and recorded as delivered.
    Recorded {
        sync: SyncId,
        destination: String,
        recorded: u64,
        rows: u64,
    },
}

impl<'p> RebuildOp<'p> {
    /// Counts what the destination holds of each selected sync without state.
    pub fn new(project: &'p Project) -> Self {
        RebuildOp {
            project,
            selector: Selector::default(),
            write: false,
            settings: Settings::default(),
        }
    }

    /// Record what was found (`--write`), rather than only count it.
    pub fn write(mut self, write: bool) -> Self {
        self.write = write;
        self
    }

    async fn execute(self) -> Result<Vec<Rebuilt>> {
        let project = self.project;
        let state = StateStore::open(&project.state)?;
        let selection = self.selector.resolve(project).await?;
        let ctx = query_context(project, &self.settings)?;
        let planned = plan_models(&ctx, project, &selection).await?;
        register_store(&ctx, &project.state)?;
        let run = RunStamp {
            run_id: RunId::new(),
            started_at: RunContext::now(),
            git_commit: git_commit(&project.root),
            full_refresh: false,
        };
        let staging = create_staging(&project.target_path, "rebuild")?;
        let syncs: Vec<SyncId> = planned
            .iter()
            .flat_map(|m| m.syncs.iter().map(|s| s.sync.id.clone()))
            .collect();
        let terms = LockTerms::new(&self.settings, None);
        let work = async {
            let mut done = Vec::new();
            for model in &planned {
                let mut rebuilt = Vec::new();
                for (position, target) in model.syncs.iter().enumerate() {
                    if !state.manifests(&target.sync.id).await?.is_empty() {
                        done.push(Rebuilt::HasState {
                            sync: target.sync.id.clone(),
                        });
                        continue;
                    }
                    let local = DiffFiles {
                        pending: staging.path().join(format!("{}.rebuild.parquet", target.sync.id)),
                        changed: staging
                            .path()
                            .join(format!("{}.rebuild-changed.parquet", target.sync.id)),
                    };
                    rebuilt.push((position, target, local));
                }
                if rebuilt.is_empty() {
                    continue;
                }
                // Every row of the model is a row of the rebuilt snapshot.
                let direct = rebuilt
                    .iter()
                    .filter_map(|(position, target, local)| {
                        SnapshotKeys::Everything.direct(*position, target.sync, local.clone())
                    })
                    .collect();
                let staged = stage_model(&ctx, model, staging.path(), direct, StagedRows::Skip).await?;
                for (position, target, files) in rebuilt {
                    // Written as the model ran, or (when the primary key check had the rows
                    // staged after all) from the staged rows, as a run's diff does.
                    let rows = match staged.direct_rows(position) {
                        Some(counts) => counts.new_rows,
                        None => {
                            write_new_rows(&ctx, &staged, position, target.sync, SnapshotKeys::Everything, &files)
                                .await?
                                .counts
                                .new_rows
                        }
                    };
                    let local = files.pending;
                    let sync = target.sync;
                    let destination = target.destination.as_ref();
                    if !self.write {
                        let batch_rows = self.settings.delivery_batch_rows;
                        let found =
                            count_delivered(&local, destination, &sync.id, &run.run_id, rows, batch_rows).await?;
                        done.push(Rebuilt::Counted {
                            sync: sync.id.clone(),
                            destination: sync.destination.clone(),
                            found,
                            rows,
                        });
                        continue;
                    }
                    let counts = Counts {
                        model_rows: staged.rows,
                        ..Counts::default()
                    };
                    let mut manifest =
                        RunManifest::start(&identity_of(model, target), destination.kind(), &run, counts);
                    manifest.outcome = Outcome::Succeeded;
                    manifest.error = Some("rebuilt from the destination's records by `dinmo state rebuild`".into());
                    let mut commit = Commit::new(&state, staging.path(), &sync.id, &run.run_id, &self.settings)
                        .naming_parts(format!("{}-rebuild", run.run_id));
                    let found = settle_by_lookup(
                        &local,
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
                    manifest.finished_at = Some(RunContext::now());
                    state.write_manifest(&manifest).await?;
                    done.push(Rebuilt::Recorded {
                        sync: sync.id.clone(),
                        destination: sync.destination.clone(),
                        recorded: manifest.counts.accepted,
                        rows,
                    });
                }
            }
            Ok(done)
        };
        state
            .while_locked(&syncs, &run.run_id, terms, &Default::default(), work)
            .await
    }
}

awaitable!(RebuildOp => Vec<Rebuilt>);
options!(RebuildOp { select, settings });

/// Writes a checkpoint of every settled run of each sync, so later runs read one index and
/// its key parts rather than every manifest.
#[derive(Debug)]
pub struct CompactOp<'p> {
    project: &'p Project,
    syncs: Vec<SyncId>,
    wait: Option<Duration>,
    settings: Settings,
}

/// What compacting one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The sync.
    pub sync: SyncId,
    /// Its checkpoint.
    pub done: Compaction,
}

impl<'p> CompactOp<'p> {
    /// Compacts `syncs` (every sync with state when empty).
    pub fn new(project: &'p Project, syncs: Vec<SyncId>) -> Self {
        CompactOp {
            project,
            syncs,
            wait: None,
            settings: Settings::default(),
        }
    }

    async fn execute(self) -> Result<Vec<Compacted>> {
        let state = StateStore::open(&self.project.state)?;
        let syncs = match self.syncs.is_empty() {
            true => state.sync_ids().await?,
            false => self.syncs.clone(),
        };
        let holder = RunId::new();
        let staging = create_staging(&self.project.target_path, "compact")?;
        let terms = LockTerms::new(&self.settings, self.wait);
        state
            .while_locked(&syncs, &holder, terms, &Default::default(), async {
                let mut done = Vec::new();
                for sync in &syncs {
                    done.push(Compacted {
                        sync: sync.clone(),
                        done: state.compact(sync, staging.path()).await?,
                    });
                }
                Ok(done)
            })
            .await
    }
}

awaitable!(CompactOp => Vec<Compacted>);
options!(CompactOp { wait, settings });

/// Removes a sync's lock: one whose holder is gone, or (with `force`) any.
#[derive(Debug)]
pub struct UnlockOp<'p> {
    project: &'p Project,
    sync: SyncId,
    force: bool,
}

/// What `state unlock` did.
#[derive(Debug, Clone)]
pub struct UnlockedLock {
    /// The sync.
    pub sync: SyncId,
    /// The lock object's URL.
    pub url: String,
    /// What was there.
    pub unlocked: Unlocked,
}

impl<'p> UnlockOp<'p> {
    /// Unlocks `sync`; `force` removes a lock a live run holds.
    pub fn new(project: &'p Project, sync: SyncId, force: bool) -> Self {
        UnlockOp { project, sync, force }
    }

    async fn execute(self) -> Result<UnlockedLock> {
        let state = StateStore::open(&self.project.state)?;
        let unlocked = state.unlock(&self.sync, self.force).await?;
        Ok(UnlockedLock {
            url: state.lock_url(&self.sync),
            sync: self.sync,
            unlocked,
        })
    }
}

awaitable!(UnlockOp => UnlockedLock);
