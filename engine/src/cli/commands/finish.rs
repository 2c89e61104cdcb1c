//! The end of `plan`, `run` and `apply`: the report printed, the exit status decided, and
//! `run_results.json` written whatever happened.

use super::status::{ERROR_EXIT, Status};
use crate::cli::GlobalArgs;
use crate::cli::run_results::write_run_results;
use crate::error::Result;
use crate::project::{find_project_root, load_project};
use crate::sync::report::RunReport;

/// Prints the report, decides the status, and writes `run_results.json` whatever happened.
pub(super) fn finish(
    command: &str,
    global: &GlobalArgs,
    executed: Result<RunReport>,
    show: impl FnOnce(&RunReport) -> Status,
) -> Result<Status> {
    let target = artifact_dir(global);
    match executed {
        Ok(report) => {
            let status = show(&report);
            let outcome = report.failure().map(|()| status);
            let code = match &outcome {
                Ok(status) => status.code(),
                Err(_) => ERROR_EXIT,
            };
            let error = outcome.as_ref().err().map(ToString::to_string);
            write_run_results(&target, command, Some(&report), error.as_deref(), code);
            outcome
        }
        Err(error) => {
            write_run_results(&target, command, None, Some(&error.to_string()), ERROR_EXIT);
            Err(error)
        }
    }
}

/// Where artifacts go: the project's `target-path`, or `<project>/target` when the project
/// cannot be loaded (the failure is recorded there too).
fn artifact_dir(global: &GlobalArgs) -> std::path::PathBuf {
    match find_project_root(global.project.as_deref()) {
        Ok(root) => load_project(&root)
            .map(|p| p.target_path)
            .unwrap_or_else(|_| root.join("target")),
        Err(_) => std::env::current_dir().unwrap_or_default().join("target"),
    }
}
