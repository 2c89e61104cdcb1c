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
