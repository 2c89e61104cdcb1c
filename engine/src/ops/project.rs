//! What every operation starts from: the project, found and loaded; the selection of models
//! and syncs it acts on; and the query engine's session.

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;

use crate::error::{DinmoError, Result};
use crate::project::Project;
use crate::project::selection::Selection;
use crate::settings::Settings;

/// Finds the project (in `dir`, or the working directory or its nearest parent holding a
/// `dinmo.yml`) and loads it, every problem of its files reported together.
pub fn open_project(dir: Option<&Path>) -> Result<Project> {
    let root = crate::project::find_project_root(dir)?;
    crate::project::load_project(&root)
}

/// Finds and loads the project to read its state's history: without checking destinations'
/// settings, so their credentials are not needed ([`crate::project::load_project_to_read_state`]).
pub fn open_project_to_read_state(dir: Option<&Path>) -> Result<Project> {
    let root = crate::project::find_project_root(dir)?;
    crate::project::load_project_to_read_state(&root)
}

/// Where a command's artifacts go: the project's `target-path`, or `<project>/target` when
/// the project cannot be loaded (so a failure is recorded too).
pub fn artifact_dir(dir: Option<&Path>) -> PathBuf {
    match crate::project::find_project_root(dir) {
        Ok(root) => crate::project::load_project(&root)
            .map(|p| p.target_path)
            .unwrap_or_else(|_| root.join("target")),
        Err(_) => std::env::current_dir().unwrap_or_default().join("target"),
    }
}

/// A byte size as `execution.memory_limit` spells it (`4GB`, `512MB`, `2GiB`).
pub fn parse_byte_size(text: &str) -> std::result::Result<u64, String> {
    crate::project::byte_size::parse_byte_size(text)
}

/// The JSON Schema of `dinmo.yml` (`project`) or of a model file, for editors.
pub fn config_schema(project: bool) -> Result<String> {
    let schema = match project {
        true => schemars::schema_for!(crate::project::project_file::ProjectFile),
        false => schemars::schema_for!(crate::project::model_file::ModelFile),
    };
    serde_json::to_string_pretty(&schema).map_err(|source| DinmoError::Json {
        what: "the JSON Schema".into(),
        source,
    })
}

/// The models and syncs an operation acts on: `--select`, `--exclude`, and the state
/// `state:modified` compares with. The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Model names, `tag:<tag>`, `sync:<model>.<destination>`, `state:modified`; a union.
    pub select: Vec<String>,
    /// Left out (same forms).
    pub exclude: Vec<String>,
    /// The state location `state:modified` compares with; default: the project's own.
    pub compare_state: Option<String>,
}

impl Selector {
    /// The selection in `project`; a selector that matches nothing is an error.
    pub(crate) async fn resolve(&self, project: &Project) -> Result<Selection> {
        crate::plan::modified::select(project, &self.select, &self.exclude, self.compare_state.as_deref()).await
    }
}

/// The query engine's session for `project`: its `execution:` settings, with the settings'
/// memory limit (`--memory-limit`, `DINMO_MEMORY_LIMIT`) taking precedence.
pub(crate) fn query_context(project: &Project, settings: &Settings) -> Result<SessionContext> {
    let limit = settings.memory_limit.or(project.execution.memory_limit);
    crate::settings::query_context(limit, &project.execution.spill_path)
}
