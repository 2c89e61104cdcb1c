//! `state:modified`: the syncs whose SQL or mapping differ from the last run in a state.

use std::collections::HashSet;

use dinmo_connectors::SyncId;

use crate::error::Result;
use crate::project::Project;
use crate::project::fingerprints::{mapping_hash, sql_hash};
use crate::project::selection::Selection;
use crate::state::StateStore;
use crate::storage::resolve_location;

/// Parses the selectors, resolves `state:modified` against `compare_state` (a state location;
/// the project's own when `None`), and checks each `--select` matches something.
pub async fn select(
    project: &Project,
    select: &[String],
    exclude: &[String],
    compare_state: Option<&str>,
) -> Result<Selection> {
    let mut selection = Selection::parse(select, exclude)?;
    if selection.needs_state() {
        let location = compare_state.map_or_else(|| project.state.clone(), |s| resolve_location(&project.root, s));
        selection = selection.with_modified(modified_syncs(project, &StateStore::open(&location)?).await?);
    }
    selection.check_matches(project)?;
    Ok(selection)
}

/// The syncs whose last manifest in `state` has other SQL or mapping fingerprints (or that
/// have none).
pub async fn modified_syncs(project: &Project, state: &StateStore) -> Result<HashSet<SyncId>> {
    let mut modified = HashSet::new();
    for model in &project.models {
        for sync in &model.syncs {
            let last = state.manifests(&sync.id).await?.pop();
            let same = last.is_some_and(|m| {
                m.model_sql_hash == sql_hash(&model.sql) && m.mapping_hash == mapping_hash(model, sync)
            });
            if !same {
                modified.insert(sync.id.clone());
            }
        }
    }
    Ok(modified)
}
