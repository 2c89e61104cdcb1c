//! `dinmo state verify | resolve-pending | resolve-held | rebuild | compact | unlock`.

use super::selected::{project, selector, settings};
use super::status::Status;
use crate::cli::{GlobalArgs, StateCommand};
use crate::error::Result;
use crate::ops::{
    CompactOp, HeldDecision, LockStatus, RebuildOp, Rebuilt, ResolveHeldOp, ResolvePendingOp, Resolved, Settings,
    UnlockOp, Unlocked, VerifyOp,
};

pub async fn state(global: &GlobalArgs, command: StateCommand, defaults: Settings) -> Result<Status> {
    let project = project(global)?;
    let settings = settings(global, defaults);
    match command {
        StateCommand::Verify => {
            let report = VerifyOp::new(&project).await?;
            for finding in &report.findings {
                println!("{finding}");
            }
            report.outcome()?;
        }
        StateCommand::ResolvePending(args) => {
            let resolved = ResolvePendingOp::new(&project, args.sync.clone(), args.run.clone(), args.sent)
                .file(args.file.clone())
                .settings(settings)
                .await?;
            match resolved {
                Resolved::Uploads(files) => {
                    let how = if args.sent { "sent" } else { "not sent" };
                    println!(
                        "{}: upload(s) of run {} recorded as {how}: {}; the next run settles the run's rows through them",
                        args.sync,
                        args.run,
                        files.join(", ")
                    );
                }
                Resolved::Rows(rows) => {
                    let recorded = if args.sent {
                        "delivered"
                    } else {
                        "not sent; the next run offers them again"
                    };
                    println!(
                        "{}: {rows} pending row(s) of run {} recorded as {recorded}",
                        args.sync, args.run
                    );
                }
            }
        }
        StateCommand::ResolveHeld(args) => {
            let decision = if args.accept {
                HeldDecision::Accept
            } else if args.ignore {
                HeldDecision::Ignore
            } else {
                HeldDecision::SendDifference
            };
            let resolved = ResolveHeldOp::new(&project, args.sync.clone(), decision)
                .keys(args.keys.clone())
                .wait(args.wait.map(std::time::Duration::from_secs))
                .settings(settings)
                .await?;
            println!(
                "{}: {} held row(s) {} (run {}); {} still held",
                resolved.sync, resolved.settled, resolved.decision, resolved.run, resolved.still_held
            );
        }
        StateCommand::Rebuild(args) => {
            let rebuilt = RebuildOp::new(&project)
                .select(selector(&args.selection))
                .write(args.write)
                .settings(settings)
                .await?;
            for sync in rebuilt {
                match sync {
                    Rebuilt::HasState { sync } => println!(
                        "{sync}: has state; rebuild is for a sync whose state is gone (see `dinmo state verify`)"
                    ),
                    Rebuilt::Counted {
                        sync,
                        destination,
                        found,
                        rows,
                    } => println!(
                        "{sync}: {found} of {rows} model row(s) are in `{destination}`; run again with --write to record them"
                    ),
                    Rebuilt::Recorded {
                        sync,
                        destination,
                        recorded,
                        rows,
                    } => println!("{sync}: recorded {recorded} of {rows} model row(s) found in `{destination}`"),
                }
            }
        }
        StateCommand::Compact(args) => {
            let compacted = CompactOp::new(&project, args.syncs.clone())
                .wait(args.wait.map(std::time::Duration::from_secs))
                .settings(settings)
                .await?;
            for sync in compacted {
                let (name, done) = (sync.sync, sync.done);
                match &done.through_run {
                    Some(through) => println!(
                        "{name}: checkpoint through run {through}: {} run(s) newly covered, {} row key(s) in {} part(s), {} old checkpoint object(s) removed",
                        done.runs_covered, done.rows, done.key_parts, done.removed
                    ),
                    None => println!("{name}: nothing to compact (no settled run)"),
                }
            }
        }
        StateCommand::Unlock(args) => {
            let done = UnlockOp::new(&project, args.sync.clone(), args.force).await?;
            let (sync, lock) = (&done.sync, &done.url);
            match done.unlocked {
                Unlocked::NotLocked => println!("{sync}: not locked ({lock} does not exist)"),
                Unlocked::Removed(LockStatus::Held { holder, .. }) => {
                    println!("{sync}: removed {lock}, held by {}", holder.describe())
                }
                Unlocked::Removed(LockStatus::Unreadable { problem }) => {
                    println!("{sync}: removed {lock}, which could not be read: {problem}")
                }
                Unlocked::Removed(LockStatus::Free) => println!("{sync}: removed {lock}"),
            }
        }
    }
    Ok(Status::Success)
}
