//! `reconcile`: for each selected sync, the model's rows now, the sync's snapshot and what the
//! destination holds now, compared row by row ([`crate::sync::reconcile`]); optionally every
//! differing row written to a file, and the rows missing in the destination returned to "new".
//!
//! Reads only, but for `--repair missing`, which changes the state under the syncs' locks and
//! never the destination.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use dinmo_connectors::SyncId;
use tracing::info;

use super::project::{Selector, query_context};
use super::run::diff_model;
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, plan_models};
use crate::plan::sources::register_store;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::row_key::parse_key;
use crate::state::{LockTerms, remove_local_folder};
use crate::sync::connections::Connections;
use crate::sync::context::{RunContext, RunOptions};
use crate::sync::reconcile::{COLUMNS, Period, Reconciling, SyncReconciliation, reconcile_sync, repair};

pub use crate::sync::reconcile::{AccountTotal, Class, ClassCount, Compared, HeldSource};

/// What `--repair` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairScope {
    /// Rows missing in the destination return to "new".
    Missing,
}

/// Compares every selected sync with what its destination holds.
#[derive(Debug)]
pub struct ReconcileOp<'p> {
    project: &'p Project,
    selector: Selector,
    settings: Settings,
    wait: Option<Duration>,
    period: Period,
    last_runs: Option<usize>,
    export: Option<PathBuf>,
    out: Option<PathBuf>,
    repair: Option<RepairScope>,
}

/// One sync's outcome: what reconciling found, or why it could not.
#[derive(Debug)]
pub struct ReconciledSync {
    /// The sync.
    pub sync_id: SyncId,
    /// What reconciling found, or the error that stopped it (as the report shows it).
    pub result: std::result::Result<SyncReconciliation, String>,
    /// Rows `--repair missing` returned to "new".
    pub repaired: u64,
}

/// What `reconcile` found.
#[derive(Debug)]
pub struct ReconcileReport {
    /// Each selected sync, in the project's order.
    pub syncs: Vec<ReconciledSync>,
    /// Where `--out` wrote the differing rows, and how many.
    pub out: Option<(PathBuf, u64)>,
}

impl ReconcileReport {
    /// Rows that differ, over every sync.
    pub fn differences(&self) -> u64 {
        self.syncs
            .iter()
            .filter_map(|s| s.result.as_ref().ok())
            .map(SyncReconciliation::differences)
            .sum()
    }

    /// Delivered rows that could not be checked against the destination (`unverified`), over
    /// every sync.
    pub fn unverified(&self) -> u64 {
        self.syncs
            .iter()
            .filter_map(|s| s.result.as_ref().ok())
            .map(|r| r.rows(Class::Unverified))
            .sum()
    }

    /// The first sync that could not be reconciled.
    pub fn failure(&self) -> Result<()> {
        let failed: Vec<&ReconciledSync> = self.syncs.iter().filter(|s| s.result.is_err()).collect();
        match failed.first() {
            None => Ok(()),
            Some(first) => Err(DinmoError::RunFailed {
                failed: failed.len(),
                total: self.syncs.len(),
                first: format!(
                    "{}: {}",
                    first.sync_id,
                    first.result.as_ref().err().map_or("", String::as_str)
                ),
            }),
        }
    }
}

impl<'p> ReconcileOp<'p> {
    /// A reconcile of every sync of `project`, every date, every run.
    pub fn new(project: &'p Project) -> Self {
        ReconcileOp {
            project,
            selector: Selector::default(),
            settings: Settings::default(),
            wait: None,
            period: Period::default(),
            last_runs: None,
            export: None,
            out: None,
            repair: None,
        }
    }

    /// Only rows whose usage date is in `period` (`--from`, `--to`).
    pub fn period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }

    /// Only the rows the last `runs` runs of each sync delivered (`--last-runs`).
    pub fn last_runs(mut self, runs: Option<usize>) -> Self {
        self.last_runs = runs;
        self
    }

    /// Read what Zuora holds from this usage export instead of its API (`--zuora-export`).
    pub fn zuora_export(mut self, export: Option<PathBuf>) -> Self {
        self.export = export;
        self
    }

    /// Write every differing row, with its sync and class, to this CSV or Parquet file
    /// (`--out`).
    pub fn out(mut self, out: Option<PathBuf>) -> Self {
        self.out = out;
        self
    }

    /// Change the state where it is safe (`--repair missing`).
    pub fn repair(mut self, repair: Option<RepairScope>) -> Self {
        self.repair = repair;
        self
    }

    async fn execute(self) -> Result<ReconcileReport> {
        let project = self.project;
        if let Some(out) = &self.out {
            out_format(out)?;
        }
        let selection = self.selector.resolve(project).await?;
        let ctx = query_context(project, &self.settings)?;
        let planned = plan_models(&ctx, project, &selection).await?;
        let options = RunOptions {
            dry_run: true,
            settings: self.settings,
            ..RunOptions::default()
        };
        let run = RunContext::start(project, options, "reconcile")?;
        register_store(&ctx, &project.state)?;
        // A repair changes what it compared: the syncs are locked from before the comparison
        // to after the repair, so no run commits in between. Reading alone takes no lock.
        let syncs: Vec<SyncId> = match self.repair {
            Some(_) => planned
                .iter()
                .flat_map(|m| m.syncs.iter().map(|s| s.sync.id.clone()))
                .collect(),
            None => Vec::new(),
        };
        let terms = LockTerms::new(&self.settings, self.wait);
        let report = run
            .state
            .while_locked(
                &syncs,
                &run.run_id,
                terms,
                &run.lease,
                self.reconcile_all(&ctx, &run, &planned),
            )
            .await;
        remove_local_folder(run.staging_dir.clone()).await;
        report
    }

    /// Every planned sync reconciled, then `--out` and `--repair` (under the caller's locks).
    async fn reconcile_all(
        &self,
        ctx: &SessionContext,
        run: &RunContext,
        planned: &[PlannedModel<'_>],
    ) -> Result<ReconcileReport> {
        if self.repair.is_some() {
            for target in planned.iter().flat_map(|m| m.syncs.iter()) {
                let removed = repair::finish_stopped(&run.state, &target.sync.id).await?;
                if removed > 0 {
                    info!(sync = %target.sync.id, parts = removed, "a stopped repair finished");
                }
            }
        }
        let connections = Connections::none();
        let mut report = ReconcileReport {
            syncs: Vec::new(),
            out: None,
        };
        for model in planned {
            let (diffed, staged) = match diff_model(ctx, run, &connections, model).await {
                Ok(diffed) => diffed,
                Err((failure, _)) => {
                    for target in &model.syncs {
                        report.syncs.push(ReconciledSync {
                            sync_id: target.sync.id.clone(),
                            result: Err(failure.to_string()),
                            repaired: 0,
                        });
                    }
                    continue;
                }
            };
            for (diffed, target) in diffed.into_iter().zip(&model.syncs) {
                let sync_id = target.sync.id.clone();
                let model_diff = match diffed {
                    Ok(diffed) => diffed.into_model_diff(),
                    Err(stopped) => {
                        report.syncs.push(ReconciledSync {
                            sync_id,
                            result: Err(stopped.error.unwrap_or_else(|| "the sync stopped".into())),
                            repaired: 0,
                        });
                        continue;
                    }
                };
                let manifests = run.state.manifests(&sync_id).await?;
                let job = Reconciling {
                    sync_id: &sync_id,
                    destination_name: &target.sync.destination,
                    destination: target.destination.as_ref(),
                    state: &run.state,
                    manifests: &manifests,
                    last_runs: self.last_runs,
                    period: self.period.clone(),
                    export: self.export.as_deref(),
                    model: model_diff,
                    work: run.staging_dir.join("reconcile").join(sync_id.to_string()),
                };
                let result = reconcile_sync(ctx, job).await;
                if let Ok(found) = &result {
                    info!(sync = %sync_id, differences = found.differences(), seconds = found.seconds, "reconciled");
                }
                report.syncs.push(ReconciledSync {
                    sync_id,
                    result: result.map_err(|e| e.to_string()),
                    repaired: 0,
                });
            }
            staged.discarded().await;
        }
        if let Some(out) = &self.out {
            let rows = write_out(ctx, out, &report).await?;
            report.out = Some((out.clone(), rows));
        }
        if self.repair == Some(RepairScope::Missing) {
            self.repair_missing(run, &mut report).await?;
        }
        Ok(report)
    }

    /// Returns every repairable missing row to "new", sync by sync (under the caller's locks).
    async fn repair_missing(&self, run: &RunContext, report: &mut ReconcileReport) -> Result<()> {
        let staging = run.staging_dir.join("repair");
        std::fs::create_dir_all(&staging).map_err(DinmoError::io(&staging))?;
        let at = RunContext::now();
        for sync in report.syncs.iter_mut() {
            let Ok(found) = &sync.result else { continue };
            let keys: HashSet<u128> = found
                .repairable
                .iter()
                .filter_map(|k| parse_key(k.as_bytes()))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let reason = format!(
                "dinmo reconcile found {} row(s) delivered to `{}` that it no longer holds ({})",
                keys.len(),
                found.destination,
                held_words(&found.held)
            );
            sync.repaired = repair::return_to_new(&run.state, &sync.sync_id, &keys, &reason, at, &staging).await?;
            info!(sync = %sync.sync_id, rows = sync.repaired, "missing rows returned to new");
        }
        Ok(())
    }
}

/// How the destination's side was read, in words for the repair's reason.
fn held_words(held: &HeldSource) -> String {
    match held {
        HeldSource::Api { from, to, .. } => format!(
            "read from its API for {} to {}",
            from.as_deref().unwrap_or("the first date"),
            to.as_deref().unwrap_or("the last date")
        ),
        HeldSource::Export { file, .. } => format!("compared with the export {file}"),
        HeldSource::Unreadable { reason } => reason.clone(),
    }
}

/// Whether `--out` writes CSV (`true`) or Parquet, by its extension.
fn out_format(out: &Path) -> Result<bool> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(true),
        Some("parquet") => Ok(false),
        _ => Err(DinmoError::Argument {
            flag: "--out",
            value: out.display().to_string(),
            expected: "a file ending in .csv or .parquet",
        }),
    }
}

/// Writes every row of a class other than `equal`, with its sync, to `out`; the rows written.
async fn write_out(ctx: &SessionContext, out: &Path, report: &ReconcileReport) -> Result<u64> {
    let csv = out_format(out)?;
    let context = format!("writing {}", out.display());
    let writer = SessionContext::new_with_config_rt(ctx.copied_config(), ctx.runtime_env());
    let mut selects = Vec::new();
    for (n, sync) in report.syncs.iter().enumerate() {
        let Ok(found) = &sync.result else { continue };
        let name = format!("compared_{n}");
        writer
            .register_parquet(
                &name,
                found.compared.display().to_string(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(DinmoError::engine(&context))?;
        selects.push(format!(
            "select '{}' as sync, {} from {name} where class not in ('equal', 'unverified')",
            sync.sync_id.to_string().replace('\'', "''"),
            COLUMNS.join(", ")
        ));
    }
    if selects.is_empty() {
        selects.push(format!(
            "select {} where false",
            std::iter::once("cast(null as varchar) as sync".to_string())
                .chain(COLUMNS.iter().map(|c| format!("cast(null as varchar) as {c}")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let frame = writer
        .sql(&format!(
            "select * from ({}) order by sync, class, account, unit, start_date",
            selects.join(" union all ")
        ))
        .await
        .map_err(DinmoError::engine(&context))?;
    let rows = frame.clone().count().await.map_err(DinmoError::engine(&context))? as u64;
    let options = datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true);
    let path = out.display().to_string();
    match csv {
        true => frame.write_csv(&path, options, None).await,
        false => frame.write_parquet(&path, options, None).await,
    }
    .map_err(DinmoError::engine(&context))?;
    Ok(rows)
}

awaitable!(ReconcileOp => ReconcileReport);
options!(ReconcileOp { select, wait, settings });
