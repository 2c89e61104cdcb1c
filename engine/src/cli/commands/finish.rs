//! The end of `plan`, `run` and `apply`: the report printed, the exit status decided, and
//! `run_results.json` written whatever happened.

use super::status::{ERROR_EXIT, Status};
use crate::cli::GlobalArgs;
use crate::cli::run_results::write_run_results;
use crate::error::Result;
use crate::ops::{RunReport, artifact_dir};

/// Prints the report, decides the status, and writes `run_results.json` whatever happened.
pub(super) fn finish(
    command: &str,
    global: &GlobalArgs,
    executed: Result<RunReport>,
    show: impl FnOnce(&RunReport) -> Status,
) -> Result<Status> {
    let target = artifact_dir(global.project.as_deref());
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
