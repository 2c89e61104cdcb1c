//! `dinmo reconcile`.

use super::selected::{project, selector, settings};
use super::status::Status;
use crate::cli::render::reconcile as render;
use crate::cli::{GlobalArgs, PlanFormat, ReconcileArgs, RepairArg};
use crate::error::Result;
use crate::ops::{Period, ReconcileOp, RepairScope, Settings};

pub async fn reconcile(global: &GlobalArgs, args: &ReconcileArgs, defaults: Settings) -> Result<Status> {
    let project = project(global)?;
    let report = ReconcileOp::new(&project)
        .select(selector(&args.selection))
        .settings(settings(global, defaults))
        .wait(args.wait.map(std::time::Duration::from_secs))
        .period(Period {
            from: args.from,
            to: args.to,
        })
        .last_runs(args.last_runs.map(|n| n as usize))
        .zuora_export(args.zuora_export.clone())
        .out(args.out.clone())
        .repair(args.repair.map(|RepairArg::Missing| RepairScope::Missing))
        .await?;
    let text = match args.format {
        PlanFormat::Text => render::text(&report),
        PlanFormat::Markdown => render::markdown(&report),
        PlanFormat::Json => render::json(&report)?,
    };
    print!("{text}");
    report.failure()?;
    Ok(match report.differences() {
        0 => Status::Success,
        _ => Status::Differences,
    })
}
