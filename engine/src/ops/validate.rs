//! `validate`: every selected model plans and passes its checks; with `connect`, every
//! destination it uses is reached and the mapped literals are checked against what it accepts.

use super::project::{Selector, query_context};
use crate::error::{DinmoError, Result};
use crate::plan::models::{PlannedModel, connect_destinations, destinations_used, plan_models};
use crate::project::{ConfigReport, Project};
use crate::settings::Settings;

/// Plans every selected model without running it.
#[derive(Debug)]
pub struct ValidateOp<'p> {
    project: &'p Project,
    selector: Selector,
    connect: bool,
    settings: Settings,
}

/// What `validate` found.
#[derive(Debug)]
pub struct Validated {
    /// The project's name.
    pub project: String,
    /// Models planned.
    pub models: usize,
    /// Syncs planned.
    pub syncs: usize,
    /// With `connect`: each destination's findings, or why it could not be reached.
    pub connections: Vec<(String, Result<Vec<String>>)>,
    /// With `connect`: mapped fields the connected destinations do not have, and literals
    /// they refuse.
    pub constants: Result<()>,
}

impl<'p> ValidateOp<'p> {
    /// Validates `project`.
    pub fn new(project: &'p Project) -> Self {
        ValidateOp {
            project,
            selector: Selector::default(),
            connect: false,
            settings: Settings::default(),
        }
    }

    /// Also reach every destination (`--connect`).
    pub fn connect(mut self, connect: bool) -> Self {
        self.connect = connect;
        self
    }

    async fn execute(self) -> Result<Validated> {
        let selection = self.selector.resolve(self.project).await?;
        let ctx = query_context(self.project, &self.settings)?;
        let planned = plan_models(&ctx, self.project, &selection).await?;
        let mut validated = Validated {
            project: self.project.name.clone(),
            models: planned.len(),
            syncs: planned.iter().map(|m| m.syncs.len()).sum(),
            connections: Vec::new(),
            constants: Ok(()),
        };
        if self.connect {
            validated.connections = connect_destinations(destinations_used(&planned)).await;
            if validated.connections.iter().all(|(_, found)| found.is_ok()) {
                validated.constants = check_constants(&planned);
            }
        }
        Ok(validated)
    }
}

awaitable!(ValidateOp => Validated);
options!(ValidateOp { select, settings });

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
