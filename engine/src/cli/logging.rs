//! `tracing` to stderr, as text or JSON lines. `DINMO_LOG` overrides the level filter
//! (e.g. `DINMO_LOG=dinmo=debug`); a filter that does not parse is an error naming it. Text is
//! coloured only when stderr is a terminal and `NO_COLOR` is unset or empty (no-color.org).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::error::{DinmoError, Result};
use crate::settings::LOG;

/// Installs the global subscriber.
pub fn init(format: LogFormat, quiet: bool) -> Result<()> {
    // delta-rs and its kernel log every snapshot and scan at info: theirs is for debugging.
    let default = if quiet {
        "error"
    } else {
        "info,deltalake_core=warn,buoyant_kernel=warn,buoyant_kernel_engine=warn"
    };
    let filter = match std::env::var(LOG) {
        Ok(value) => EnvFilter::try_new(&value)
            .ok()
            .filter(|_| !value.trim().is_empty())
            .ok_or(DinmoError::Setting {
                variable: LOG,
                value,
                expected: "a log filter such as `info`, `warn` or `dinmo=debug,warn`",
            })?,
        Err(std::env::VarError::NotPresent) => EnvFilter::new(default),
        Err(std::env::VarError::NotUnicode(raw)) => {
            return Err(DinmoError::Setting {
                variable: LOG,
                value: raw.to_string_lossy().into_owned(),
                expected: "a log filter in UTF-8",
            });
        }
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    // A second install (tests calling twice) keeps the first subscriber: not an error.
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    Ok(())
}
