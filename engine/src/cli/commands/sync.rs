//! `dinmo plan` and `dinmo run`.

use super::finish::finish;
use super::selected::{project, selector, settings, show_progress};
use super::status::Status;
use crate::cli::render::{print_plan, print_report};
use crate::cli::{GlobalArgs, PlanArgs, RunArgs};
use crate::error::Result;
use crate::ops::{RunOp, Settings, SummaryOptions};

pub async fn plan(global: &GlobalArgs, args: PlanArgs, defaults: Settings) -> Result<Status> {
    let summary = SummaryOptions {
        sample: args.sample,
        top: args.top,
    };
    let executed = match project(global) {
        Ok(project) => {
            RunOp::new(&project)
                .select(selector(&args.selection))
                .full_refresh(args.full_refresh)
                .plan(summary)
                .save_plan(args.out.clone())
                .show_progress(show_progress(global))
                .settings(settings(global, defaults))
                .await
        }
        Err(error) => Err(error),
    };
    finish("plan", global, executed, |report| {
        print_plan(report, args.format);
        let rows: u64 = report.syncs.iter().map(|s| s.counts.new_rows + s.corrected_rows).sum();
        if args.detailed_exitcode && rows > 0 {
            Status::RowsToSend
        } else {
            Status::Success
        }
    })
}

pub async fn run(global: &GlobalArgs, args: RunArgs, defaults: Settings) -> Result<Status> {
    let executed = match project(global) {
        Ok(project) => {
            RunOp::new(&project)
                .select(selector(&args.selection))
                .dry_run(args.dry_run)
                .full_refresh(args.full_refresh)
                .wait(args.wait.map(std::time::Duration::from_secs))
                .show_progress(show_progress(global))
                .settings(settings(global, defaults))
                .await
        }
        Err(error) => Err(error),
    };
    finish("run", global, executed, |report| {
        print_report(report, args.format, args.dry_run);
        let undelivered: u64 = report.syncs.iter().map(|s| s.counts.rejected + s.held_rows).sum();
        if !args.dry_run && undelivered > 0 {
            Status::Undelivered
        } else {
            Status::Success
        }
    })
}
