//! Plans every selected model's SQL without running it and checks its output schema against
//! the primary key and each sync's mapping and destination rules. Every problem is collected
//! and reported together, with the model file's line and column.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use dinmo_connectors::{Correcting, Destination, ROW_KEY_COLUMN};

use crate::error::{DinmoError, Result};
use crate::plan::destinations::build_destination;
use crate::plan::sources::register_source;

use crate::project::selection::Selection;
use crate::project::{ConfigReport, Model, OnChange, OnDelete, Project, Sync};
use crate::state::SourceVersion;
use crate::state::row_key::check_key_type;

/// A model whose SQL planned and whose schema passed every check.
#[derive(Debug)]
pub struct PlannedModel<'p> {
    /// The model.
    pub model: &'p Model,
    /// The planned query, not yet run.
    pub frame: DataFrame,
    /// Its output schema.
    pub schema: SchemaRef,
    /// The selected syncs.
    pub syncs: Vec<PlannedSync<'p>>,
    /// The version read of each versioned (Delta Lake) source the SQL reads.
    pub source_versions: Vec<SourceVersion>,
}

/// A sync ready to run.
#[derive(Debug)]
pub struct PlannedSync<'p> {
    /// The sync.
    pub sync: &'p Sync,
    /// Its destination.
    pub destination: Arc<dyn Destination>,
}

/// Registers every source and plans the selected models; returns the located problems of
/// all of them at once when any is found.
pub async fn plan_models<'p>(
    ctx: &SessionContext,
    project: &'p Project,
    selection: &Selection,
) -> Result<Vec<PlannedModel<'p>>> {
    let mut report = ConfigReport::default();
    let project_file = project.project_file();
    let mut failed_sources = Vec::new();
    let mut versions = Vec::new();
    for source in &project.sources {
        match register_source(ctx, source).await {
            Ok(version) => versions.extend(version),
            Err(error) => {
                report.push(&project_file, source.position, error.to_string());
                failed_sources.push(source.name.as_str());
            }
        }
    }
    let mut destinations: Vec<(&str, Arc<dyn Destination>)> = Vec::new();
    for def in &project.destinations {
        match build_destination(def) {
            Ok(destination) => destinations.push((def.name.as_str(), destination)),
            Err(error) => report.push(&project_file, def.position, error.to_string()),
        }
    }
    let mut planned = Vec::new();
    for model in project.models.iter().filter(|m| selection.includes_model(m)) {
        let syncs: Vec<&Sync> = model
            .syncs
            .iter()
            .filter(|s| selection.includes_sync(model, s))
            .collect();
        if let Some(failed) = reads_source(ctx, model, &failed_sources) {
            // Said once, at the source; planning would only add "table not found".
            report.push(
                &model.file,
                model.sql_position,
                format!(
                    "model `{}`: not planned: source `{failed}` failed (its error is the one reported at dinmo.yml)",
                    model.name
                ),
            );
            continue;
        }
        if let Some(mut ok) = plan_model(ctx, model, &syncs, &destinations, &mut report).await {
            ok.source_versions = versions
                .iter()
                .filter(|v| reads_source(ctx, model, &[v.source.as_str()]).is_some())
                .cloned()
                .collect();
            planned.push(ok);
        }
    }
    report.into_result().map_err(DinmoError::Config)?;
    Ok(planned)
}

/// The first of `sources` that `model`'s SQL reads, if any.
fn reads_source<'a>(ctx: &SessionContext, model: &Model, sources: &[&'a str]) -> Option<&'a str> {
    if sources.is_empty() {
        return None;
    }
    let state = ctx.state();
    let dialect = state.config_options().sql_parser.dialect;
    // A statement that does not parse is reported by planning, with DataFusion's message.
    let statement = state.sql_to_statement(&model.sql, &dialect).ok()?;
    let tables = state.resolve_table_references(&statement).ok()?;
    sources
        .iter()
        .find(|name| tables.iter().any(|table| table.table() == **name))
        .copied()
}

/// Plans one model: its SQL planned by DataFusion, the primary key and each sync's mapping
/// checked against the planned schema, every problem collected into `report`.
/// Every check adds its problems to the same report, so a user sees every problem of a model
/// at once.
async fn plan_model<'p>(
    ctx: &SessionContext,
    model: &'p Model,
    syncs: &[&'p Sync],
    destinations: &[(&str, Arc<dyn Destination>)],
    report: &mut ConfigReport,
) -> Option<PlannedModel<'p>> {
    let frame = match ctx.sql(&model.sql).await {
        Ok(frame) => frame,
        Err(error) => {
            report.push(
                &model.file,
                model.sql_position,
                format!("model `{}`: SQL does not plan: {error}", model.name),
            );
            return None;
        }
    };
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let before = report.problems().len();
    let columns = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for field in schema.fields() {
        if field.name().starts_with("_dinmo") {
            report.push(
                &model.file,
                model.sql_position,
                format!("column `{}`: names starting with `_dinmo` are reserved", field.name()),
            );
        }
    }
    for key in &model.primary_key {
        match schema.field_with_name(key) {
            Err(_) => report.push(
                &model.file,
                model.primary_key_position,
                format!("primary key column `{key}` is not produced by the model (columns: {columns})"),
            ),
            Ok(field) => {
                if let Err(why) = check_key_type(field.data_type()) {
                    report.push(
                        &model.file,
                        model.primary_key_position,
                        format!("primary key column `{key}` {why}"),
                    );
                }
            }
        }
    }
    let mut planned_syncs = Vec::new();
    for sync in syncs {
        let Some((_, destination)) = destinations.iter().find(|(name, _)| *name == sync.destination) else {
            continue; // an unknown destination was reported while loading
        };
        let mut mapped_fields = Vec::new();
        let mut unresolved = Vec::new();
        for mapped in &sync.mapping {
            match schema.field_with_name(&mapped.column) {
                Ok(field) => mapped_fields.push(Field::new(&mapped.field, field.data_type().clone(), true)),
                Err(_) => {
                    unresolved.push(mapped.field.as_str());
                    report.push(
                    &model.file,
                    mapped.position,
                    format!(
                        "sync `{}`: {} is mapped to column `{}`, which the model does not produce (columns: {columns})",
                        sync.id, mapped.field, mapped.column
                    ),
                    )
                }
            }
        }
        // A field whose column is missing was reported above; "not mapped" would repeat it.
        let problems = destination.validate_schema(&Schema::new(mapped_fields));
        for problem in problems.into_iter().filter(|p| !unresolved.contains(&p.field.as_str())) {
            let at = sync
                .mapping
                .iter()
                .find(|m| m.field == problem.field)
                .and_then(|m| m.position)
                .or(sync.mapping_position);
            report.push(&model.file, at, format!("sync `{}`: {}", sync.id, problem.message));
        }
        if let Some(reserved) = sync
            .mapping
            .iter()
            .find(|m| dinmo_connectors::is_engine_column(&m.field))
        {
            report.push(
                &model.file,
                sync.mapping_position,
                format!(
                    "sync `{}`: `{}` is reserved (dinmo's own columns start with `_dinmo_`, like `{ROW_KEY_COLUMN}`)",
                    sync.id, reserved.field
                ),
            );
        }
        if let (OnChange::Correct, Correcting::Not(why)) = (sync.on_change, destination.correcting()) {
            report.push(
                &model.file,
                sync.position,
                format!(
                    "sync `{}`: `on_change: correct` is not possible with a `{}` destination: {why}",
                    sync.id,
                    destination.kind()
                ),
            );
        }
        if sync.on_delete == OnDelete::RollbackPending && destination.kind() != "zuora" {
            report.push(
                &model.file,
                sync.position,
                format!(
                    "sync `{}`: `on_delete: rollback_pending` deletes Pending usage records, which only a `zuora` destination can; a `{}` destination takes `on_delete: report`",
                    sync.id,
                    destination.kind()
                ),
            );
        }
        planned_syncs.push(PlannedSync {
            sync,
            destination: Arc::clone(destination),
        });
    }
    (report.problems().len() == before).then_some(PlannedModel {
        model,
        frame,
        schema,
        syncs: planned_syncs,
        source_versions: Vec::new(),
    })
}

/// The destinations the planned syncs use, once each, in name order.
pub fn destinations_used(planned: &[PlannedModel<'_>]) -> Vec<(String, Arc<dyn Destination>)> {
    let mut seen: Vec<(String, Arc<dyn Destination>)> = Vec::new();
    for sync in planned.iter().flat_map(|m| &m.syncs) {
        if !seen.iter().any(|(name, _)| *name == sync.sync.destination) {
            seen.push((sync.sync.destination.clone(), Arc::clone(&sync.destination)));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    seen
}

/// Connects `destinations` all at once; returns each one's findings or error, in their order.
pub async fn connect_destinations(
    destinations: Vec<(String, Arc<dyn Destination>)>,
) -> Vec<(String, Result<Vec<String>>)> {
    let connecting = destinations.into_iter().map(|(name, destination)| async move {
        let found = connect_destination(&name, destination.as_ref()).await;
        (name, found)
    });
    futures::future::join_all(connecting).await
}

/// Connects to the destination named `name` (what [`Destination::connect`] found, or why it
/// could not).
pub async fn connect_destination(name: &str, destination: &dyn Destination) -> Result<Vec<String>> {
    destination.connect().await.map_err(DinmoError::destination_named(name))
}
