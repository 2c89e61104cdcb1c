//! `dinmo apply plan.dinmo`.

use super::finish::finish;
use super::selected::{project, settings, show_progress};
use super::status::Status;
use crate::cli::render::print_report;
use crate::cli::{ApplyArgs, GlobalArgs};
use crate::error::Result;
use crate::ops::{ApplyOp, Settings};

pub async fn apply(global: &GlobalArgs, args: &ApplyArgs, defaults: Settings) -> Result<Status> {
    let executed = match project(global) {
        Ok(project) => {
            ApplyOp::new(&project, &args.plan)
                .wait(args.wait.map(std::time::Duration::from_secs))
                .show_progress(show_progress(global))
                .settings(settings(global, defaults))
                .await
        }
        Err(error) => Err(error),
    };
    finish("apply", global, executed, |report| {
        print_report(report, args.format, false);
        let undelivered: u64 = report.syncs.iter().map(|s| s.counts.rejected + s.held_rows).sum();
        if undelivered > 0 {
            Status::Undelivered
        } else {
            Status::Success
        }
    })
}
