//! The commands behind the CLI. Each returns a [`Status`] that maps to an exit code.

mod apply;
mod history;
mod init;
mod rollback;
mod schema;
mod state;
mod sync;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0: done, nothing left undelivered.
    Success,
    /// Exit 2: `plan --detailed-exitcode` found rows to send.
    RowsToSend,
    /// Exit 3: the run finished but the destination refused some rows.
    RowsRejected,
}

impl Status {
    /// The documented exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::RowsToSend => 2,
            Status::RowsRejected => 3,
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// Exit code for an error.
pub const ERROR_EXIT: u8 = 1;

/// Exit code for a command line dinmo cannot parse (unknown command or flag, bad flag value):
/// 64, `EX_USAGE` from sysexits.h, apart from 2 (`plan --detailed-exitcode`: rows to send).
pub const USAGE_EXIT: u8 = 64;

/// Runs the parsed command.
pub async fn dispatch(cli: Cli) -> Result<Status> {
    let global = &cli.global;
    if let Command::Completions(args) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(args.shell, &mut command, "dinmo", &mut std::io::stdout());
        return Ok(Status::Success);
    }
    match cli.command {
        Command::Validate(args) => validate::validate(global, &args).await,
        Command::Plan(args) => sync::plan(global, args).await,
        Command::Run(args) => sync::run(global, args).await,
        Command::Runs(args) => history::runs(global, &args).await,
        Command::Show(args) => history::show(global, &args).await,
        Command::Rollback(args) => rollback::rollback(global, &args).await,
        Command::State(command) => state::state(global, command).await,
        Command::Apply(args) => apply::apply(global, &args).await,
        Command::Init(args) => init::init(&args),
        Command::Schema(args) => schema::schema(&args),
        Command::Completions(_) => Ok(Status::Success),
    }
}
