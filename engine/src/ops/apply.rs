//! `apply`: sends exactly the rows of a saved plan, without running any model, if no sync's
//! state moved since the plan was made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{error, info};

use crate::error::{DinmoError, Result};
use crate::plan::destinations::build_destination;
use crate::plan::saved::read_plan;
use crate::plan::sources::register_store;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::{LockTerms, state_version};
use crate::sync::context::{RunContext, RunOptions};
use crate::sync::report::{RunReport, SyncReport};
use crate::sync::run::send_rows;

/// Sends a saved plan's rows: every sync's state is checked against the plan's before anything
/// is sent, then each sync's rows go through [`send_rows`], as a run sends them.
#[derive(Debug)]
pub struct ApplyOp<'p> {
    project: &'p Project,
    plan: PathBuf,
    wait: Option<Duration>,
    show_progress: bool,
    settings: Settings,
}

impl<'p> ApplyOp<'p> {
    /// Applies the plan file at `plan` to `project`.
    pub fn new(project: &'p Project, plan: &Path) -> Self {
        ApplyOp {
            project,
            plan: plan.to_path_buf(),
            wait: None,
            show_progress: false,
            settings: Settings::default(),
        }
    }

    async fn execute(self) -> Result<RunReport> {
        let project = self.project;
        let options = RunOptions {
            show_progress: self.show_progress,
            settings: self.settings,
            ..RunOptions::default()
        };
        let run = RunContext::start(project, options, "-apply")?;
        let (plan, rows) = read_plan(&self.plan, &run.staging_dir.join("plan"))?;
        if plan.project != project.name {
            return Err(DinmoError::PlanFile {
                path: self.plan.clone(),
                message: format!("it was made for project `{}`, not `{}`", plan.project, project.name),
            });
        }
        let ctx = super::project::query_context(project, &self.settings)?;
        register_store(&ctx, &project.state)?;
        let sync_ids: Vec<_> = plan.syncs.iter().map(|s| s.sync_id.clone()).collect();
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
                        path: self.plan.clone(),
                        message: format!("destination `{}` is no longer in dinmo.yml", saved.destination),
                    })?;
                destinations.push(build_destination(def)?);
            }
            let mut report = RunReport::new(&project.name, &run);
            for ((saved, destination), (_, local)) in plan.syncs.iter().zip(&destinations).zip(&rows) {
                destination
                    .connect()
                    .await
                    .map_err(DinmoError::destination_named(&saved.destination))?;
                let mut sync_report = SyncReport {
                    sync_id: saved.sync_id.clone(),
                    model: saved.model.clone(),
                    destination: saved.destination.clone(),
                    destination_type: destination.kind().to_string(),
                    ..SyncReport::default()
                };
                sync_report.counts.model_rows = saved.model_rows;
                sync_report.counts.new_rows = saved.new_rows.saturating_sub(saved.corrections);
                sync_report.counts.corrections = saved.corrections;
                sync_report.changed_rows = saved.changed_rows;
                sync_report.corrected_rows = saved.corrections;
                sync_report.held_rows = saved.held_rows;
                sync_report.gone_rows = saved.gone_rows;
                let sent = send_rows(
                    &run,
                    &saved.identity(),
                    destination.as_ref(),
                    local,
                    saved.new_rows,
                    None,
                    &mut sync_report,
                )
                .await;
                if let Err(failure) = sent {
                    error!(sync = %saved.sync_id, error = %failure, "sync failed");
                    sync_report.error = Some(failure.to_string());
                }
                report.syncs.push(sync_report);
            }
            report.finished_at = Some(RunContext::now());
            info!(plan = %self.plan.display(), syncs = report.syncs.len(), "plan applied");
            Ok(report)
        };
        let terms = LockTerms::new(&self.settings, self.wait);
        run.state
            .while_locked(&sync_ids, &run.run_id, terms, &run.lease, work)
            .await
    }
}

awaitable!(ApplyOp => RunReport);
options!(ApplyOp {
    wait,
    show_progress,
    settings
});
