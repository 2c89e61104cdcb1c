//! What a run did (or a plan would do): one [`SyncReport`] per sync in a [`RunReport`].

use dinmo_connectors::{RunId, SyncId, Timestamp};
use serde::Serialize;

use crate::error::{DinmoError, Result};
use crate::plan::models::PlannedSync;
use crate::state::{Counts, Outcome};
use crate::sync::context::RunContext;

/// Version of the JSON report layout.
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// Everything one `plan` or `run` did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Project name.
    pub project: String,
    /// Run id.
    pub run_id: RunId,
    /// Whether nothing was sent.
    pub dry_run: bool,
    /// Whether snapshots were ignored.
    pub full_refresh: bool,
    /// RFC 3339.
    pub started_at: Timestamp,
    /// RFC 3339.
    #[serde(with = "dinmo_connectors::ids::optional_timestamp")]
    pub finished_at: Option<Timestamp>,
    /// One entry per sync that got past its model.
    pub syncs: Vec<SyncReport>,
    /// Models that failed before their syncs could run.
    pub model_errors: Vec<String>,
}

impl RunReport {
    /// An empty report for `run`.
    pub fn new(project: &str, run: &RunContext) -> Self {
        RunReport {
            format_version: REPORT_FORMAT_VERSION,
            project: project.to_string(),
            run_id: run.run_id.clone(),
            dry_run: run.dry_run,
            full_refresh: run.full_refresh,
            started_at: run.started_at,
            finished_at: None,
            syncs: Vec::new(),
            model_errors: Vec::new(),
        }
    }

    /// An error when any model or sync failed.
    pub fn failure(&self) -> Result<()> {
        let errors: Vec<&String> = self
            .model_errors
            .iter()
            .chain(self.syncs.iter().filter_map(|s| s.error.as_ref()))
            .collect();
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(DinmoError::RunFailed {
                failed: errors.len(),
                total: self.syncs.len() + self.model_errors.len(),
                first: (*first).clone(),
            }),
        }
    }
}

/// Rows refused for one reason on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionSummary {
    /// Machine-readable code.
    pub code: String,
    /// The destination field the refusal is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The message of the first such row.
    pub example: String,
    /// How many rows.
    pub rows: u64,
}

/// What happened (or would happen) to one sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// `<model>.<destination>`.
    pub sync_id: SyncId,
    /// Model name.
    pub model: String,
    /// Destination name.
    pub destination: String,
    /// Destination type.
    pub destination_type: String,
    /// Whether the sync had no history.
    pub first_run: bool,
    /// Rows in the snapshot before this run.
    pub snapshot_rows: u64,
    /// Rows synced earlier whose key the model no longer produces (a restatement removed
    /// them): nothing is sent for them, and the destination still holds them. 0 on a first
    /// run and with `--full-refresh`.
    pub gone_rows: u64,
    /// Rows synced earlier whose values (the fields they were sent with) differ now. Never
    /// counted as new.
    pub changed_rows: u64,
    /// The sync's `on_change` policy: `hold`, `correct` or `ignore`.
    pub on_change: String,
    /// Rows held (nothing sent for them) at the end of this run, or that a plan would hold:
    /// changed rows, and gone rows whose record could not be deleted; a run that holds any
    /// exits 3.
    pub held_rows: u64,
    /// Of `held_rows`, those the last run did not hold already.
    pub newly_held_rows: u64,
    /// Changed rows left as they are (`on_change: ignore`).
    pub ignored_changes: u64,
    /// Changed rows corrected in the destination (or that a plan would correct).
    pub corrected_rows: u64,
    /// The changed rows: before and after, totals of the quantity difference.
    pub changes: Option<crate::sync::changes::ChangeSummary>,
    /// The gone rows: what was sent for them, and what became of them.
    pub gone: Option<crate::sync::gone::GoneSummary>,
    /// Counts.
    pub counts: Counts,
    /// Refusals by reason (field rules when planning; every refusal when running).
    pub rejections: Vec<RejectionSummary>,
    /// What changed since the last run (SQL, mapping), empty when nothing did.
    pub changed_since_last_run: Vec<String>,
    /// The version read of each versioned (Delta Lake) source the model reads.
    pub source_versions: Vec<crate::state::SourceVersion>,
    /// Stopped runs whose pending rows this run settled first.
    pub recovered_runs: Vec<RunId>,
    /// Rows left pending by stopped runs (counted by a plan, settled by a run).
    pub pending_from_earlier_runs: u64,
    /// How the sync ended; `None` for a plan.
    pub outcome: Option<Outcome>,
    /// Destination ids (files written, import ids).
    pub destination_ids: Vec<String>,
    /// Rows the destination sent another way than configured, and why (a usage import Zuora
    /// failed, whose rows went through `actions`).
    pub fallbacks: Vec<dinmo_connectors::Fallback>,
    /// A plan's summary of the new rows.
    pub summary: Option<crate::plan::summary::PlanSummary>,
    /// The state the diff was computed against (a hash of the last run and every snapshot
    /// part's checksum); `apply` refuses a plan whose state moved.
    pub state_version: String,
    /// RFC 3339, when the sync started.
    #[serde(with = "dinmo_connectors::ids::optional_timestamp")]
    pub started_at: Option<Timestamp>,
    /// RFC 3339, when it ended.
    #[serde(with = "dinmo_connectors::ids::optional_timestamp")]
    pub finished_at: Option<Timestamp>,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// The error that stopped it.
    pub error: Option<String>,
}

impl SyncReport {
    /// Of `held_rows`, the changed rows (the rest are gone rows whose record could not be
    /// deleted).
    pub fn held_changed_rows(&self) -> u64 {
        let gone_kept: u64 = self.gone.as_ref().map_or(0, |g| g.kept.values().sum());
        self.held_rows.saturating_sub(gone_kept)
    }

    /// The report of a sync about to run over `model_rows` model rows.
    pub fn for_target(target: &PlannedSync<'_>, model_rows: u64) -> Self {
        SyncReport {
            sync_id: target.sync.id.clone(),
            model: target.sync.model.clone(),
            destination: target.sync.destination.clone(),
            destination_type: target.destination.kind().to_string(),
            first_run: true,
            counts: Counts {
                model_rows,
                ..Counts::default()
            },
            ..SyncReport::default()
        }
    }

    /// Adds refusals counted elsewhere (by a commit) to this report's, by reason.
    pub fn add_rejections(&mut self, rejections: Vec<RejectionSummary>) {
        for rejection in rejections {
            match self
                .rejections
                .iter_mut()
                .find(|r| r.code == rejection.code && r.field == rejection.field)
            {
                Some(existing) => existing.rows += rejection.rows,
                None => self.rejections.push(rejection),
            }
        }
    }

    /// A sync that could not start.
    pub fn failed(target: &PlannedSync<'_>, model_rows: u64, error: String) -> Self {
        SyncReport {
            first_run: false,
            error: Some(error),
            ..SyncReport::for_target(target, model_rows)
        }
    }
}

/// Counts one refusal by code and field, keeping the first message as the example.
pub fn tally(rejections: &mut Vec<RejectionSummary>, code: &str, field: Option<&str>, message: &str) {
    match rejections
        .iter_mut()
        .find(|r| r.code == code && r.field.as_deref() == field)
    {
        Some(existing) => existing.rows += 1,
        None => rejections.push(RejectionSummary {
            code: code.to_string(),
            field: field.map(str::to_string),
            example: message.to_string(),
            rows: 1,
        }),
    }
}
