//! `target/run_results.json`: what a command that runs syncs did, for orchestrators and CI.
//! Written after every `plan`, `run` and `apply`, also when it fails. The layout is versioned
//! by `metadata.schema_version` and documented in docs/cli-reference.md.

use std::path::Path;

use serde::Serialize;

use crate::ops::{RejectionSummary, RunId, RunReport, SyncReport, Timestamp};

/// Version of the `run_results.json` layout.
pub const RUN_RESULTS_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    schema_version: u32,
    dinmo_version: &'static str,
    command: &'a str,
    generated_at: String,
}

#[derive(Debug, Serialize)]
struct RunResults<'a> {
    metadata: Metadata<'a>,
    /// Whether the command succeeded (exit 0, or 2/3 with every row settled).
    success: bool,
    /// The exit code the command ended with.
    exit_code: u8,
    run_id: Option<&'a str>,
    project: Option<&'a str>,
    started_at: Option<String>,
    /// `""` while unfinished.
    finished_at: Option<String>,
    results: Vec<SyncResult<'a>>,
    /// Errors that stopped the command or a model before its syncs ran.
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SyncResult<'a> {
    sync_id: &'a str,
    model: &'a str,
    destination: &'a str,
    destination_type: &'a str,
    /// `planned`, `succeeded`, `nothing_to_send`, `partially_rejected`, `failed`, `error`.
    status: &'a str,
    counts: &'a crate::ops::Counts,
    /// Rows synced earlier that the model no longer produces.
    gone_rows: u64,
    /// Rows synced earlier whose values differ now, and what became of them.
    changes: Changes<'a>,
    recovered_runs: &'a [RunId],
    destination_ids: &'a [String],
    rejections: &'a [RejectionSummary],
    changed_since_last_run: &'a [String],
    timing: Timing,
    error: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Changes<'a> {
    /// `hold`, `correct` or `ignore`.
    on_change: &'a str,
    changed_rows: u64,
    held_rows: u64,
    newly_held_rows: u64,
    corrected_rows: u64,
    ignored_changes: u64,
    /// `after - before` over the changed rows, when they were described.
    quantity_difference: Option<&'a str>,
    /// Held rows by reason.
    held_reasons: Option<&'a std::collections::BTreeMap<String, u64>>,
}

#[derive(Debug, Serialize)]
struct Timing {
    #[serde(with = "crate::ops::optional_timestamp")]
    started_at: Option<Timestamp>,
    #[serde(with = "crate::ops::optional_timestamp")]
    finished_at: Option<Timestamp>,
    seconds: f64,
}

fn status(sync: &SyncReport, planned: bool) -> &'static str {
    match (&sync.error, sync.outcome) {
        (Some(_), _) => "error",
        (None, Some(outcome)) => outcome.as_str(),
        (None, None) if planned => "planned",
        (None, None) => "error",
    }
}

/// Writes `<target>/run_results.json`; a failure to write is reported on stderr only, so it
/// never hides the command's own outcome.
pub fn write_run_results(target: &Path, command: &str, report: Option<&RunReport>, error: Option<&str>, exit_code: u8) {
    let planned = command == "plan" || report.is_some_and(|r| r.dry_run);
    let mut errors: Vec<String> = report.map(|r| r.model_errors.clone()).unwrap_or_default();
    errors.extend(error.map(str::to_string));
    let results = RunResults {
        metadata: Metadata {
            schema_version: RUN_RESULTS_SCHEMA_VERSION,
            dinmo_version: env!("CARGO_PKG_VERSION"),
            command,
            generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        success: exit_code != 1,
        exit_code,
        run_id: report.map(|r| r.run_id.as_str()),
        project: report.map(|r| r.project.as_str()),
        started_at: report.map(|r| r.started_at.to_string()),
        finished_at: report.map(|r| r.finished_at.map(|t| t.to_string()).unwrap_or_default()),
        results: report
            .map(|r| {
                r.syncs
                    .iter()
                    .map(|s| SyncResult {
                        sync_id: &s.sync_id,
                        model: &s.model,
                        destination: &s.destination,
                        destination_type: &s.destination_type,
                        status: status(s, planned),
                        counts: &s.counts,
                        gone_rows: s.gone_rows,
                        changes: Changes {
                            on_change: &s.on_change,
                            changed_rows: s.changed_rows,
                            held_rows: s.held_rows,
                            newly_held_rows: s.newly_held_rows,
                            corrected_rows: s.corrected_rows,
                            ignored_changes: s.ignored_changes,
                            quantity_difference: s.changes.as_ref().map(|c| c.quantity_difference.as_str()),
                            held_reasons: s.changes.as_ref().map(|c| &c.reasons),
                        },
                        recovered_runs: &s.recovered_runs,
                        destination_ids: &s.destination_ids,
                        rejections: &s.rejections,
                        changed_since_last_run: &s.changed_since_last_run,
                        timing: Timing {
                            started_at: s.started_at,
                            finished_at: s.finished_at,
                            seconds: s.seconds,
                        },
                        error: s.error.as_deref(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        errors,
    };
    let path = target.join("run_results.json");
    let written = std::fs::create_dir_all(target)
        .and_then(|()| serde_json::to_vec_pretty(&results).map_err(std::io::Error::other))
        .and_then(|json| std::fs::write(&path, json));
    if let Err(e) = written {
        eprintln!("warning: cannot write {}: {e}", path.display());
    }
}
