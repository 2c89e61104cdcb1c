//! `dinmo apply plan.dinmo`: send exactly the rows of a saved plan, without re-running any
//! model, if no sync's state moved since the plan was made.

use std::io::IsTerminal;

use tracing::{error, info};

use super::finish::finish;
use super::status::Status;
use crate::cli::render::print_report;
use crate::cli::{ApplyArgs, GlobalArgs};
use crate::error::{DinmoError, Result};
use crate::plan::destinations::build_destination;
use crate::plan::saved::read_plan;
use crate::plan::sources::register_store;
use crate::project::{find_project_root, load_project};
use crate::state::{SyncIdentity, state_version};
use crate::sync::context::{RunContext, RunOptions};
use crate::sync::report::{RunReport, SyncReport};
use crate::sync::run::send_rows;

pub async fn apply(global: &GlobalArgs, args: &ApplyArgs) -> Result<Status> {
    let executed = execute(global, args).await;
    finish("apply", global, executed, |report| {
        print_report(report, args.format, false);
        let rejected: u64 = report.syncs.iter().map(|s| s.counts.rejected).sum();
        if rejected > 0 {
            Status::RowsRejected
        } else {
            Status::Success
        }
    })
}

/// Checks every sync's state against the plan's before sending anything, then sends each
/// sync's saved rows through `send_rows`, as a run does.
///
/// Long on purpose: all the checks come before the first send, in one place.
async fn execute(global: &GlobalArgs, args: &ApplyArgs) -> Result<RunReport> {
    let root = find_project_root(global.project.as_deref())?;
    let project = load_project(&root)?;
    let options = RunOptions {
        show_progress: !global.quiet && std::io::stderr().is_terminal(),
        ..RunOptions::default()
    };
    let run = RunContext::start(&project, options, "-apply")?;
    let (plan, rows) = read_plan(&args.plan, &run.staging_dir.join("plan"))?;
    if plan.project != project.name {
        return Err(DinmoError::PlanFile {
            path: args.plan.clone(),
            message: format!("it was made for project `{}`, not `{}`", plan.project, project.name),
        });
    }
    let ctx = super::selected::query_context(global, &project)?;
    register_store(&ctx, &project.state)?;
    let sync_ids: Vec<String> = plan.syncs.iter().map(|s| s.sync_id.clone()).collect();
    let wait = args.wait.map(std::time::Duration::from_secs);
    let work = async {
        // Every sync's state must be what the plan saw, checked before anything is sent.
        let mut destinations = Vec::new();
        for saved in &plan.syncs {
            let current = run.state.verified_snapshot(&saved.sync_id).await?;
            let pending = run.state.pending_files(&saved.sync_id).await?;
            let version = state_version(&current.manifests);
            if version != saved.state_version || !pending.is_empty() {
                return Err(DinmoError::StalePlan {
                    sync: saved.sync_id.clone(),
                    message: format!("state version {version}, the plan's {}", saved.state_version),
                });
            }
            let def = project
                .destination(&saved.destination)
                .ok_or_else(|| DinmoError::PlanFile {
                    path: args.plan.clone(),
                    message: format!("destination `{}` is no longer in dinmo.yml", saved.destination),
                })?;
            destinations.push(build_destination(def)?);
        }
        let mut report = RunReport::new(&project.name, &run, &project.state);
        for (saved, destination) in plan.syncs.iter().zip(&destinations) {
            destination
                .connect()
                .await
                .map_err(DinmoError::destination(saved.destination.clone()))?;
            let Some((_, local)) = rows.iter().find(|(id, _)| *id == saved.sync_id) else {
                continue;
            };
            let mut sync_report = SyncReport {
                sync_id: saved.sync_id.clone(),
                model: saved.model.clone(),
                destination: saved.destination.clone(),
                destination_type: destination.kind().to_string(),
                ..SyncReport::default()
            };
            sync_report.counts.model_rows = saved.model_rows;
            sync_report.counts.new_rows = saved.new_rows;
            let identity = SyncIdentity {
                sync_id: saved.sync_id.clone(),
                model: saved.model.clone(),
                destination: saved.destination.clone(),
                sql_hash: saved.model_sql_hash.clone(),
                mapping_hash: saved.mapping_hash.clone(),
            };
            if let Err(failure) = send_rows(
                &run,
                &identity,
                destination.as_ref(),
                local,
                saved.new_rows,
                &mut sync_report,
            )
            .await
            {
                error!(sync = %saved.sync_id, error = %failure, "sync failed");
                sync_report.error = Some(failure.to_string());
            }
            report.syncs.push(sync_report);
        }
        report.finished_at = RunContext::now();
        info!(plan = %args.plan.display(), syncs = report.syncs.len(), "plan applied");
        Ok(report)
    };
    run.state
        .while_locked(&sync_ids, &run.run_id, wait, &run.lease, work)
        .await
}
