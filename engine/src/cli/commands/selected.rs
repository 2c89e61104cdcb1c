//! The project and the selection most commands act on.

use crate::error::Result;

/// Finds and loads the project, and resolves the command's selection against it.
pub(super) async fn load_selected(
    global: &crate::cli::GlobalArgs,
    args: &crate::cli::SelectionArgs,
) -> Result<(crate::project::Project, crate::project::selection::Selection)> {
    let root = crate::project::find_project_root(global.project.as_deref())?;
    let project = crate::project::load_project(&root)?;
    let selection = crate::plan::modified::select(&project, &args.select, &args.exclude, args.state.as_deref()).await?;
    Ok((project, selection))
}

/// The query engine's session for `project`: its `execution:` settings, with `--memory-limit`
/// (or `DINMO_MEMORY_LIMIT`) taking precedence over `execution.memory_limit`.
pub(super) fn query_context(
    global: &crate::cli::GlobalArgs,
    project: &crate::project::Project,
) -> Result<datafusion::prelude::SessionContext> {
    let limit = global.memory_limit.or(project.execution.memory_limit);
    crate::settings::query_context(limit, &project.execution.spill_path)
}
