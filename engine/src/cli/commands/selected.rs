//! What most commands start from: the project, the selection and the settings, from the
//! arguments.

use crate::cli::{GlobalArgs, SelectionArgs};
use crate::error::Result;
use crate::ops::{Project, Selector, Settings, open_project, open_project_to_read_state};

/// Finds and loads the project `--project` names (or the working directory's).
pub(super) fn project(global: &GlobalArgs) -> Result<Project> {
    open_project(global.project.as_deref())
}

/// Loads the project to read its history only: destinations' credentials are not needed.
pub(super) fn project_to_read(global: &GlobalArgs) -> Result<Project> {
    open_project_to_read_state(global.project.as_deref())
}

/// The selection the arguments ask for.
pub(super) fn selector(args: &SelectionArgs) -> Selector {
    Selector {
        select: args.select.clone(),
        exclude: args.exclude.clone(),
        compare_state: args.state.clone(),
    }
}

/// The settings resolved at start-up, with `--memory-limit`.
pub(super) fn settings(global: &GlobalArgs, settings: Settings) -> Settings {
    settings.with_memory_limit(global.memory_limit)
}

/// Whether to draw progress bars: not with `--quiet`, and only on a terminal.
pub(super) fn show_progress(global: &GlobalArgs) -> bool {
    use std::io::IsTerminal;
    !global.quiet && std::io::stderr().is_terminal()
}
