//! `dinmo rollback RUN`.

use super::selected::{project, selector, settings};
use super::status::Status;
use crate::cli::{GlobalArgs, RollbackArgs};
use crate::error::Result;
use crate::ops::{RollbackOp, Settings};

pub async fn rollback(global: &GlobalArgs, args: &RollbackArgs, defaults: Settings) -> Result<Status> {
    let project = project(global)?;
    let report = RollbackOp::new(&project, args.run.clone())
        .select(selector(&args.selection))
        .settings(settings(global, defaults))
        .await?;
    for (sync, done) in &report.syncs {
        let Some(done) = done else {
            println!("{sync}: run {} delivered nothing", report.run);
            continue;
        };
        println!(
            "{sync}: deleted {} row(s) of run {} in `{}`; they count as new again",
            done.deleted_rows, report.run, done.destination
        );
        for failure in &done.not_deleted {
            println!("  not deleted: {failure}");
        }
    }
    report.outcome()?;
    Ok(Status::Success)
}
