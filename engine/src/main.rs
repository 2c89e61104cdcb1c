//! The `dinmo` binary: parse, log, dispatch, map to an exit code.

use std::process::ExitCode;

use clap::Parser;
use dinmo::cli::Cli;
use dinmo::cli::commands::{ERROR_EXIT, USAGE_EXIT, dispatch};
use dinmo::cli::logging;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => {
            // `--help` and `--version` print to stdout and succeed; anything else is a usage
            // error with its own exit code, never 2 (`plan --detailed-exitcode`'s "rows to send").
            let code = if usage.use_stderr() { USAGE_EXIT } else { 0 };
            if let Err(error) = usage.print() {
                eprintln!("error: cannot print the usage message: {error}");
            }
            return ExitCode::from(code);
        }
    };
    let settings = match dinmo::settings::Settings::from_env()
        .and_then(|settings| logging::init(cli.global.log_format, cli.global.quiet).map(|()| settings))
    {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(ERROR_EXIT);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(ERROR_EXIT);
        }
    };
    match runtime.block_on(dispatch(cli, settings)) {
        Ok(status) => status.exit_code(),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(ERROR_EXIT)
        }
    }
}
