//! The commands behind the CLI: each parses its arguments into a library operation
//! ([`crate::ops`]), awaits it, and renders what it returns. Each returns a [`Status`] that maps
//! to an exit code.

mod apply;
mod finish;
mod history;
mod init;
mod reconcile;
mod rollback;
mod schema;
mod selected;
mod state;
mod status;
mod sync;
mod validate;

pub use status::{ERROR_EXIT, Status, USAGE_EXIT};

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::ops::Settings;

/// Runs the parsed command with the settings read at start-up.
pub async fn dispatch(cli: Cli, settings: Settings) -> Result<Status> {
    let global = &cli.global;
    if let Command::Completions(args) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(args.shell, &mut command, "dinmo", &mut std::io::stdout());
        return Ok(Status::Success);
    }
    match cli.command {
        Command::Validate(args) => validate::validate(global, &args, settings).await,
        Command::Plan(args) => sync::plan(global, args, settings).await,
        Command::Run(args) => sync::run(global, args, settings).await,
        Command::Runs(args) => history::runs(global, &args).await,
        Command::Show(args) => history::show(global, &args).await,
        Command::Query(args) => history::query(global, &args, settings).await,
        Command::Report(args) => history::report(global, &args, settings).await,
        Command::Rollback(args) => rollback::rollback(global, &args, settings).await,
        Command::State(command) => state::state(global, command, settings).await,
        Command::Apply(args) => apply::apply(global, &args, settings).await,
        Command::Reconcile(args) => reconcile::reconcile(global, &args, settings).await,
        Command::Init(args) => init::init(&args),
        Command::Schema(args) => schema::schema(&args),
        Command::Completions(_) => Ok(Status::Success),
    }
}
