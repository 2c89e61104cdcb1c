//! `plan` and `run`: every selected model runs once; each of its syncs is prepared, diffed and
//! finished ([`SyncRun`]), under the syncs' locks when rows are sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use tracing::{Instrument, error, info, info_span};

use super::project::{Selector, query_context};
use crate::diff::{StagedModel, StagedRows, stage_model};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, destinations_used, plan_models};
use crate::plan::saved::{PLAN_FORMAT_VERSION, SavedPlan, SavedSync, write_plan};
use crate::plan::sources::register_store;
use crate::plan::summary::SummaryOptions;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::{LockTerms, remove_local_folder};
use crate::sync::connections::Connections;
use crate::sync::context::{RunContext, RunOptions};
use crate::sync::report::{RunReport, SyncReport};
use crate::sync::run::{Diffed, Prepared, SyncRun};

/// Runs (or plans) every selected sync of a project. A failing sync does not stop the others;
/// its error is in its report.
#[derive(Debug)]
pub struct RunOp<'p> {
    project: &'p Project,
    selector: Selector,
    dry_run: bool,
    full_refresh: bool,
    wait: Option<Duration>,
    summary: Option<SummaryOptions>,
    save_plan: Option<PathBuf>,
    show_progress: bool,
    settings: Settings,
}

impl<'p> RunOp<'p> {
    /// A run of every sync of `project` that sends its new rows.
    pub fn new(project: &'p Project) -> Self {
        RunOp {
            project,
            selector: Selector::default(),
            dry_run: false,
            full_refresh: false,
            wait: None,
            summary: None,
            save_plan: None,
            show_progress: false,
            settings: Settings::default(),
        }
    }

    /// Compute only: nothing is sent and no lock is taken (`plan`, `run --dry-run`).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Ignore the snapshots: every row of the model is new (`--full-refresh`).
    pub fn full_refresh(mut self, full_refresh: bool) -> Self {
        self.full_refresh = full_refresh;
        self
    }

    /// A plan: a dry run whose report summarises each sync's new rows.
    pub fn plan(mut self, summary: SummaryOptions) -> Self {
        self.dry_run = true;
        self.summary = Some(summary);
        self
    }

    /// Save the plan's rows and state versions to `path`, for `apply` (`plan --out`).
    pub fn save_plan(mut self, path: Option<PathBuf>) -> Self {
        self.save_plan = path;
        self
    }

    async fn execute(self) -> Result<RunReport> {
        let project = self.project;
        let selection = self.selector.resolve(project).await?;
        let ctx = query_context(project, &self.settings)?;
        let planned = plan_models(&ctx, project, &selection).await?;
        let options = RunOptions {
            full_refresh: self.full_refresh,
            dry_run: self.dry_run,
            show_progress: self.show_progress,
            summary: self.summary,
            settings: self.settings,
        };
        let run = RunContext::start(project, options, "")?;
        register_store(&ctx, &project.state)?;
        // One run per sync at a time; a plan only reads and takes no lock.
        let syncs = match self.dry_run {
            true => Vec::new(),
            false => planned
                .iter()
                .flat_map(|m| m.syncs.iter().map(|s| s.sync.id.clone()))
                .collect(),
        };
        let span = info_span!("run", run_id = %run.run_id, project = %project.name, dry_run = self.dry_run, full_refresh = self.full_refresh);
        let work = async {
            info!(models = planned.len(), "run started");
            let mut report = RunReport::new(&project.name, &run);
            // Authenticate and load what the field rules need (units of measure) once per
            // destination, while the first model runs.
            let connections = match self.dry_run {
                true => Connections::none(),
                false => Connections::start(destinations_used(&planned)),
            };
            for model in &planned {
                run_model(&ctx, &run, &connections, model, &mut report).await?;
            }
            report.finished_at = Some(RunContext::now());
            if let Some(path) = &self.save_plan {
                save(path, project, &planned, &run, &report)?;
            }
            info!(syncs = report.syncs.len(), "run finished");
            Ok(report)
        }
        .instrument(span);
        let terms = LockTerms::new(&self.settings, self.wait);
        let report = run
            .state
            .while_locked(&syncs, &run.run_id, terms, &run.lease, work)
            .await;
        // The run's local files (pending, sendable), removed together rather than one by one as
        // the staging folder is dropped (each drops its pages from the page cache).
        remove_local_folder(run.staging_dir.clone()).await;
        report
    }
}

awaitable!(RunOp => RunReport);
options!(RunOp {
    select,
    wait,
    show_progress,
    settings
});

/// One model: each sync prepared, the model run once, each sync diffed
/// ([`diff_model`]) and finished. The reports keep the syncs' order.
async fn run_model(
    ctx: &SessionContext,
    run: &RunContext,
    connections: &Connections,
    model: &PlannedModel<'_>,
    report: &mut RunReport,
) -> Result<()> {
    let (diffed, staged) = match diff_model(ctx, run, connections, model).await {
        Ok(diffed) => diffed,
        Err((failure, stopped)) => {
            error!(model = %model.model.name, error = %failure, "model failed");
            report.model_errors.push(failure.to_string());
            report.syncs.extend(stopped);
            return Ok(());
        }
    };
    for sync in diffed {
        let mut sync_report: SyncReport = match sync {
            Ok(sync) => sync.finish(connections, staged.rows).await?,
            Err(stopped) => stopped,
        };
        sync_report.counts.model_rows = staged.rows;
        report.syncs.push(sync_report);
    }
    staged.discarded().await;
    Ok(())
}

/// A model's syncs prepared (earlier runs settled, each snapshot's keys loaded), the model run
/// once, each sync diffed, in the syncs' order; the staged rows are let go (the caller awaits
/// [`StagedModel::discarded`]). When the model's query fails: the error (naming the file at
/// fault, when one is) and the reports of the syncs that stopped while being prepared.
pub(super) async fn diff_model<'r>(
    ctx: &SessionContext,
    run: &'r RunContext,
    connections: &Connections,
    model: &'r PlannedModel<'r>,
) -> std::result::Result<(Vec<Diffed<'r>>, StagedModel), (DinmoError, Vec<SyncReport>)> {
    let mut prepared: Vec<Prepared<'_>> = Vec::new();
    for (position, target) in model.syncs.iter().enumerate() {
        prepared.push(
            SyncRun::new(run, model, position, target)
                .prepare(ctx, connections)
                .await,
        );
    }
    let ready = prepared.iter().filter_map(|p| p.as_ref().ok());
    let direct = ready.clone().filter_map(|p| p.direct()).collect();
    let staged_rows = match ready.into_iter().any(|p| p.needs_staged_rows()) {
        true => StagedRows::Keep,
        false => StagedRows::Skip,
    };
    let staged = match stage_model(ctx, model, &run.staging_dir, direct, staged_rows).await {
        Ok(staged) => staged,
        Err(failure) => {
            // A query that failed reading its data: name the file at fault if one is.
            let failure = match failure {
                DinmoError::ModelQuery { .. } => crate::plan::sources::diagnose(ctx).await.unwrap_or(failure),
                other => other,
            };
            return Err((failure, prepared.into_iter().filter_map(Result::err).collect()));
        }
    };
    let mut diffed: Vec<Diffed<'_>> = Vec::with_capacity(prepared.len());
    for sync in prepared {
        diffed.push(match sync {
            Ok(sync) => sync.diff(ctx, &staged).await,
            Err(stopped) => Err(stopped),
        });
    }
    staged.discard(); // the last diff is done: the staged rows are no longer needed
    Ok((diffed, staged))
}

/// Writes the plan's rows and state versions to `path` for `dinmo apply`.
fn save(
    path: &Path,
    project: &Project,
    planned: &[PlannedModel<'_>],
    run: &RunContext,
    report: &RunReport,
) -> Result<()> {
    report.failure()?;
    let mut syncs = Vec::new();
    let mut rows = Vec::new();
    for sync in report
        .syncs
        .iter()
        .filter(|s| s.counts.new_rows + s.counts.corrections > 0)
    {
        let found = planned
            .iter()
            .flat_map(|m| m.syncs.iter().map(move |t| (m, t)))
            .find(|(_, t)| t.sync.id == sync.sync_id);
        let Some((model, target)) = found else {
            continue;
        };
        let identity = crate::sync::run::identity_of(model, target);
        syncs.push(SavedSync {
            sync_id: sync.sync_id.clone(),
            model: sync.model.clone(),
            destination: sync.destination.clone(),
            model_sql_hash: identity.sql_hash,
            mapping_hash: identity.mapping_hash,
            source_versions: identity.source_versions,
            model_rows: sync.counts.model_rows,
            new_rows: sync.counts.new_rows + sync.counts.corrections,
            corrections: sync.counts.corrections,
            changed_rows: sync.changed_rows,
            held_rows: sync.held_rows,
            gone_rows: sync.gone_rows,
            state_version: sync.state_version.clone(),
            rows_file: format!("rows/{}.parquet", sync.sync_id),
            rows_xxh3: String::new(),
        });
        rows.push((sync.sync_id.clone(), run.local_pending(&sync.sync_id)));
    }
    let plan = SavedPlan {
        format_version: PLAN_FORMAT_VERSION,
        dinmo_version: env!("CARGO_PKG_VERSION").to_string(),
        project: project.name.clone(),
        created_at: RunContext::now(),
        git_commit: run.git_commit.clone(),
        plan_run_id: run.run_id.clone(),
        syncs,
    };
    write_plan(path, plan, &rows)?;
    info!(plan = %path.display(), "plan saved");
    Ok(())
}
