//! `dinmo validate`.

use super::selected::load_selected;
use super::status::Status;
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, connect_destinations, destinations_used, plan_models};
use crate::project::ConfigReport;

pub async fn validate(global: &GlobalArgs, args: &ValidateArgs) -> Result<Status> {
    let selection = &args.selection;
    let (project, selection) = load_selected(global, selection).await?;
    let ctx = super::selected::query_context(global, &project)?;
    let planned = plan_models(&ctx, &project, &selection).await?;
    let syncs: usize = planned.iter().map(|m| m.syncs.len()).sum();
    println!(
        "{}: {} model{} and {} sync{} are valid",
        project.name,
        planned.len(),
        if planned.len() == 1 { "" } else { "s" },
        syncs,
        if syncs == 1 { "" } else { "s" }
    );
    if args.connect {
        for (destination, found) in connect_destinations(destinations_used(&planned)).await {
            match found {
                Ok(notes) => {
                    println!("{destination}: connected");
                    for note in notes {
                        println!("  {note}");
                    }
                }
                Err(error) => return Err(error),
            }
        }
        check_constants(&planned)?;
    }
    Ok(Status::Success)
}

/// After connecting: every mapped field is one the connected destination has (a Revenue
/// template's columns), and mapped columns that are literals in the model's SQL
/// (`'API_CALL' AS uom`), which carry one value in every row, are checked against what it
/// accepts; each problem with the mapping line of the model file.
fn check_constants(planned: &[PlannedModel<'_>]) -> Result<()> {
    let mut report = ConfigReport::default();
    for model in planned {
        for sync in &model.syncs {
            for mapped in &sync.sync.mapping {
                if let Some(reason) = sync.destination.check_field(&mapped.field) {
                    report.push(
                        &model.model.file,
                        mapped.position,
                        format!("sync `{}`: {reason}", sync.sync.id),
                    );
                    continue;
                }
                let Some(value) = literal_column(&model.frame, &mapped.column) else {
                    continue;
                };
                if let Some(reason) = sync.destination.check_constant(&mapped.field, &value) {
                    report.push(
                        &model.model.file,
                        mapped.position,
                        format!(
                            "sync `{}`: {} is mapped to `{}`, the literal '{value}': {reason}",
                            sync.sync.id, mapped.field, mapped.column
                        ),
                    );
                }
            }
        }
    }
    report.into_result().map_err(DinmoError::Config)
}

/// The value of `column` when the model's final projection computes it as a string literal.
fn literal_column(frame: &datafusion::dataframe::DataFrame, column: &str) -> Option<String> {
    use datafusion::logical_expr::{Expr, LogicalPlan};
    use datafusion::scalar::ScalarValue;
    let mut plan = frame.logical_plan();
    // Sorts, limits and filters keep the projection's columns.
    let projection = loop {
        match plan {
            LogicalPlan::Projection(projection) => break projection,
            LogicalPlan::Sort(sort) => plan = &sort.input,
            LogicalPlan::Limit(limit) => plan = &limit.input,
            LogicalPlan::Filter(filter) => plan = &filter.input,
            _ => return None,
        }
    };
    let index = projection.schema.index_of_column_by_name(None, column)?;
    let mut expr = projection.expr.get(index)?;
    loop {
        match expr {
            Expr::Alias(alias) => expr = &alias.expr,
            Expr::Cast(cast) => expr = &cast.expr,
            Expr::Literal(
                ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v)) | ScalarValue::Utf8View(Some(v)),
                _,
            ) => {
                return Some(v.clone());
            }
            _ => return None,
        }
    }
}
