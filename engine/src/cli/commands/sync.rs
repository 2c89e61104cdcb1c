//! `dinmo plan` and `dinmo run`.

use std::io::IsTerminal;

use tracing::{Instrument, error, info, info_span};

use super::finish::finish;
use super::selected::load_selected;
use super::status::Status;
use crate::cli::render::{print_plan, print_report};
use crate::cli::{GlobalArgs, PlanArgs, RunArgs, SelectionArgs};
use crate::diff::stage_model;
use crate::error::{DinmoError, Result};
use crate::plan::models::{destinations_used, plan_models};
use crate::plan::saved::{PLAN_FORMAT_VERSION, SavedPlan, SavedSync, write_plan};
use crate::plan::sources::register_store;
use crate::plan::summary::SummaryOptions;
use crate::project::fingerprints::{mapping_hash, sql_hash};
use crate::state::remove_local_folder;
use crate::sync::connections::Connections;
use crate::sync::context::{RunContext, RunOptions};
use crate::sync::report::{RunReport, SyncReport};
use crate::sync::run::{PreparedSync, finish_sync, prepare_sync};

pub async fn plan(global: &GlobalArgs, args: PlanArgs) -> Result<Status> {
    let summary = SummaryOptions {
        sample: args.sample,
        top: args.top,
    };
    let executed = execute(
        global,
        &args.selection,
        true,
        args.full_refresh,
        None,
        Some(summary),
        args.out.as_deref(),
    )
    .await;
    finish("plan", global, executed, |report| {
        print_plan(report, args.format);
        let rows: u64 = report.syncs.iter().map(|s| s.counts.new_rows).sum();
        if args.detailed_exitcode && rows > 0 {
            Status::RowsToSend
        } else {
            Status::Success
        }
    })
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> Result<Status> {
    let wait = args.wait.map(std::time::Duration::from_secs);
    let executed = execute(
        global,
        &args.selection,
        args.dry_run,
        args.full_refresh,
        wait,
        None,
        None,
    )
    .await;
    finish("run", global, executed, |report| {
        print_report(report, args.format, args.dry_run);
        let rejected: u64 = report.syncs.iter().map(|s| s.counts.rejected).sum();
        if !args.dry_run && rejected > 0 {
            Status::RowsRejected
        } else {
            Status::Success
        }
    })
}

/// Loads, validates, and runs (or plans) every selected sync. A failing sync does not stop
/// the others; its error is in its report.
///
/// Long on purpose: the run's one sequence (load, plan, take locks, connect destinations,
/// prepare each model's syncs, run the model once, finish its syncs, save the plan); the steps
/// are calls, and splitting would pass the same seven values around.
async fn execute(
    global: &GlobalArgs,
    selection: &SelectionArgs,
    dry_run: bool,
    full_refresh: bool,
    wait: Option<std::time::Duration>,
    summary: Option<SummaryOptions>,
    save_plan: Option<&std::path::Path>,
) -> Result<RunReport> {
    let (project, selection) = load_selected(global, selection).await?;
    let ctx = super::selected::query_context(global, &project)?;
    let planned = plan_models(&ctx, &project, &selection).await?;

    let options = RunOptions {
        full_refresh,
        dry_run,
        show_progress: !global.quiet && std::io::stderr().is_terminal(),
        summary,
    };
    let run = RunContext::start(&project, options, "")?;
    register_store(&ctx, &project.state)?;
    // One run per sync at a time; a plan only reads and takes no lock.
    let syncs: Vec<String> = match dry_run {
        true => Vec::new(),
        false => planned
            .iter()
            .flat_map(|m| m.syncs.iter().map(|s| s.sync.id.clone()))
            .collect(),
    };
    let span = info_span!("run", run_id = %run.run_id, project = %project.name, dry_run, full_refresh);
    let work = async {
        info!(models = planned.len(), "run started");
        let mut report = RunReport::new(&project.name, &run, &project.state);
        // Authenticate and load what the field rules need (units of measure) once per
        // destination, while the first model runs.
        let connections = match dry_run {
            true => Connections::none(),
            false => Connections::start(destinations_used(&planned)),
        };
        for model in &planned {
            // Each sync's earlier runs settled and its snapshot's keys loaded, then the model
            // runs once, writing each sync's new rows as it goes.
            let mut ready = Vec::new();
            let mut stopped = Vec::new();
            for (index, target) in model.syncs.iter().enumerate() {
                match prepare_sync(&ctx, &run, &connections, model, index, target).await {
                    Ok(prepared) => ready.push(prepared),
                    Err(failed) => stopped.push((index, failed)),
                }
            }
            let direct = ready.iter().filter_map(PreparedSync::direct).collect();
            let keep_staged = ready.iter().any(PreparedSync::needs_staged_rows);
            let staged = match stage_model(&ctx, model, &run.staging_dir, direct, keep_staged).await {
                Ok(staged) => staged,
                Err(failure) => {
                    // A query that failed reading its data: name the file at fault if one is.
                    let failure = match failure {
                        DinmoError::ModelQuery { .. } => crate::plan::sources::diagnose(&ctx).await.unwrap_or(failure),
                        other => other,
                    };
                    error!(model = %model.model.name, error = %failure, "model failed");
                    report.model_errors.push(failure.to_string());
                    report.syncs.extend(stopped.into_iter().map(|(_, failed)| failed));
                    continue;
                }
            };
            for prepared in &mut ready {
                prepared.diff_staged(&ctx, model, &staged).await;
            }
            staged.discard(); // the last diff is done: the staged rows are no longer needed
            let mut finished = stopped;
            for prepared in ready {
                let index = prepared.index;
                let Some(target) = model.syncs.get(index) else {
                    continue;
                };
                // A destination that cannot be reached fails only its own syncs.
                let report = match connections.failure(&target.sync.destination).await? {
                    Some(failure) => SyncReport::failed(target, staged.rows, failure),
                    None => finish_sync(&run, model, &staged, prepared).await,
                };
                finished.push((index, report));
            }
            finished.sort_by_key(|(index, _)| *index);
            for (_, mut sync_report) in finished {
                sync_report.counts.model_rows = staged.rows;
                report.syncs.push(sync_report);
            }
            staged.discarded().await;
        }
        report.finished_at = RunContext::now();
        if let Some(path) = save_plan {
            save(path, &project, &planned, &run, &report)?;
        }
        info!(syncs = report.syncs.len(), "run finished");
        Ok(report)
    }
    .instrument(span);
    let report = run
        .state
        .while_locked(&syncs, &run.run_id, wait, &run.lease, work)
        .await;
    // The run's local files (pending, sendable), removed together rather than one by one as
    // the staging folder is dropped (each drops its pages from the page cache).
    remove_local_folder(run.staging_dir.clone()).await;
    report
}

/// Writes the plan's rows and state versions to `path` for `dinmo apply`.
fn save(
    path: &std::path::Path,
    project: &crate::project::Project,
    planned: &[crate::plan::models::PlannedModel<'_>],
    run: &RunContext,
    report: &RunReport,
) -> Result<()> {
    report.failure()?;
    let mut syncs = Vec::new();
    let mut rows = Vec::new();
    for sync in report.syncs.iter().filter(|s| s.counts.new_rows > 0) {
        let Some(model) = planned.iter().find(|m| m.model.name == sync.model) else {
            continue;
        };
        let Some(target) = model.syncs.iter().find(|t| t.sync.id == sync.sync_id) else {
            continue;
        };
        syncs.push(SavedSync {
            sync_id: sync.sync_id.clone(),
            model: sync.model.clone(),
            destination: sync.destination.clone(),
            model_sql_hash: sql_hash(&model.model.sql),
            mapping_hash: mapping_hash(model.model, target.sync),
            model_rows: sync.counts.model_rows,
            new_rows: sync.counts.new_rows,
            state_version: sync.state_version.clone(),
            rows_file: format!("rows/{}.parquet", sync.sync_id),
            rows_xxh3: String::new(),
        });
        rows.push((
            sync.sync_id.clone(),
            run.staging_dir.join(format!("{}.pending.parquet", sync.sync_id)),
        ));
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
