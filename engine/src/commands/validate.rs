//! `dinmo validate`.

use datafusion::prelude::SessionContext;

use super::Status;
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::Result;
use crate::planning::connect_destinations;
use crate::planning::plan_models;
use crate::selection::load_selected;

pub async fn validate(global: &GlobalArgs, args: &ValidateArgs) -> Result<Status> {
    let selection = &args.selection;
    let (project, selection) = load_selected(global, selection).await?;
    let ctx = SessionContext::new();
    let planned = plan_models(&ctx, &project, &selection).await?;
    let syncs: usize = planned.iter().map(|m| m.syncs.len()).sum();
    println!(
        "{}: {} model{} and {} sync{} are valid",
        project.name,
        planned.len(),
        if planned.len() == 1 { "" } else { "s" },
        syncs,
        if syncs == 1 { "" } else { "s" }
    );
    if args.connect {
        for (destination, found) in connect_destinations(&planned).await {
            match found {
                Ok(notes) => {
                    println!("{destination}: connected");
                    for note in notes {
                        println!("  {note}");
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(Status::Success)
}
