//! The report of a plan or run, on stdout as text or JSON.

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::{DinmoError, Result};
use crate::run_context::RunContext;
use crate::sync_run::SyncReport;

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
    pub run_id: String,
    /// Whether nothing was sent.
    pub dry_run: bool,
    /// Whether snapshots were ignored.
    pub full_refresh: bool,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
    /// One entry per sync that got past its model.
    pub syncs: Vec<SyncReport>,
    /// Models that failed before their syncs could run.
    pub model_errors: Vec<String>,
}

impl RunReport {
    /// An empty report for `run`.
    pub fn new(project: &str, run: &RunContext, _state: &str) -> Self {
        RunReport {
            format_version: REPORT_FORMAT_VERSION,
            project: project.to_string(),
            run_id: run.run_id.clone(),
            dry_run: run.dry_run,
            full_refresh: run.full_refresh,
            started_at: run.started_at.clone(),
            finished_at: String::new(),
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

/// Prints the report on stdout.
pub fn print_report(report: &RunReport, format: OutputFormat, is_plan: bool) {
    match format {
        OutputFormat::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("cannot encode the report as JSON: {e}"),
        },
        OutputFormat::Text => print!("{}", render_text(report, is_plan)),
    }
}

/// The text form of a report.
pub fn render_text(report: &RunReport, is_plan: bool) -> String {
    let mut out = String::new();
    let verb = if is_plan { "plan" } else { "run" };
    out.push_str(&format!(
        "dinmo {verb} {} (project {})\n",
        report.run_id, report.project
    ));
    if report.full_refresh {
        out.push_str("  full refresh: snapshots ignored, every model row counts as new\n");
    }
    for sync in &report.syncs {
        out.push_str(&format!(
            "\n  {} → {} ({})\n",
            sync.sync_id, sync.destination, sync.destination_type
        ));
        let history = if sync.first_run {
            "first run".to_string()
        } else {
            format!("{} rows already synced", sync.snapshot_rows)
        };
        out.push_str(&format!(
            "    model rows: {}  new rows: {}  ({history})\n",
            sync.counts.model_rows, sync.counts.new_rows
        ));
        for change in &sync.changed_since_last_run {
            out.push_str(&format!("    warning: {change}\n"));
        }
        if is_plan {
            if sync.counts.rejected > 0 {
                out.push_str(&format!("    field rules would refuse: {}\n", sync.counts.rejected));
            }
        } else if sync.outcome.is_some() {
            out.push_str(&format!(
                "    accepted: {}  rejected: {}  pending: {}\n",
                sync.counts.accepted, sync.counts.rejected, sync.counts.pending
            ));
        }
        for rejection in &sync.rejections {
            out.push_str(&format!(
                "      {} × {}: {}\n",
                rejection.rows, rejection.code, rejection.example
            ));
        }
        for id in &sync.destination_ids {
            out.push_str(&format!("    wrote {id}\n"));
        }
        if let Some(outcome) = sync.outcome {
            out.push_str(&format!("    outcome: {}\n", outcome.as_str()));
        }
        if let Some(error) = &sync.error {
            out.push_str(&format!("    error: {error}\n"));
        }
    }
    for error in &report.model_errors {
        out.push_str(&format!("\n  error: {error}\n"));
    }
    let new: u64 = report.syncs.iter().map(|s| s.counts.new_rows).sum();
    if is_plan {
        out.push_str(&format!(
            "\n{new} new row(s) to send across {} sync(s); nothing was sent\n",
            report.syncs.len()
        ));
    } else {
        let accepted: u64 = report.syncs.iter().map(|s| s.counts.accepted).sum();
        let rejected: u64 = report.syncs.iter().map(|s| s.counts.rejected).sum();
        out.push_str(&format!(
            "\nsent {accepted} row(s), {rejected} rejected, across {} sync(s)\n",
            report.syncs.len()
        ));
    }
    out
}
