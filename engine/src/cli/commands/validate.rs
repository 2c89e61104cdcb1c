//! `dinmo validate`.

use super::selected::{project, selector, settings};
use super::status::Status;
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::Result;
use crate::ops::{Settings, ValidateOp};

pub async fn validate(global: &GlobalArgs, args: &ValidateArgs, defaults: Settings) -> Result<Status> {
    let project = project(global)?;
    let validated = ValidateOp::new(&project)
        .select(selector(&args.selection))
        .connect(args.connect)
        .settings(settings(global, defaults))
        .await?;
    let (models, syncs) = (validated.models, validated.syncs);
    println!(
        "{}: {models} model{} and {syncs} sync{} are valid",
        validated.project,
        if models == 1 { "" } else { "s" },
        if syncs == 1 { "" } else { "s" }
    );
    for (destination, found) in validated.connections {
        let notes = found?;
        println!("{destination}: connected");
        for note in notes {
            println!("  {note}");
        }
    }
    validated.constants?;
    Ok(Status::Success)
}
