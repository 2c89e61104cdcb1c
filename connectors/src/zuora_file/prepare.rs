//! Converts a mapped batch into per-row output fields and rule verdicts.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::destination::ROW_KEY_COLUMN;
use crate::error::{ConnectorError, Result};
use crate::field_rules::{Rejection, check_cell};
use crate::values::{Cell, convert_column};

use super::config::Layout;
use super::layout::{ColumnDefault, LayoutColumn};

/// A batch converted for writing: one column of cells per output column.
#[derive(Debug)]
pub(super) struct PreparedBatch {
    /// Output columns in file order, each with its cells (`None`: not mapped).
    pub columns: Vec<(LayoutColumn, Option<Vec<Cell>>)>,
    /// The engine's row keys.
    pub keys: Vec<String>,
    /// `Some(reason)` for every row a field rule refuses.
    pub rejections: Vec<Option<Rejection>>,
}

impl PreparedBatch {
    pub fn new(destination: &str, layout: Layout, batch: &RecordBatch) -> Result<Self> {
        let schema = batch.schema();
        let mut columns: Vec<(LayoutColumn, Option<Vec<Cell>>)> =
            layout.columns().iter().map(|c| (c.clone(), None)).collect();
        for field in schema.fields() {
            if field.name() == ROW_KEY_COLUMN {
                continue;
            }
            let Some(spec) = layout.column(field.name()) else {
                return Err(ConnectorError::MissingColumn {
                    destination: destination.to_string(),
                    column: field.name().clone(),
                });
            };
            let array = batch
                .column_by_name(field.name())
                .ok_or_else(|| ConnectorError::MissingColumn {
                    destination: destination.to_string(),
                    column: field.name().clone(),
                })?;
            let cells = convert_column(spec.spec.kind, array).map_err(|source| ConnectorError::Convert {
                destination: destination.to_string(),
                column: field.name().clone(),
                source,
            })?;
            match columns.iter_mut().find(|(c, _)| c.spec.name == spec.spec.name) {
                Some(slot) => slot.1 = Some(cells),
                None => columns.push((spec, Some(cells))),
            }
        }
        let keys = row_keys(destination, batch)?;
        let rejections = (0..batch.num_rows())
            .map(|row| {
                let reasons: Vec<Rejection> = columns
                    .iter()
                    .filter_map(|(column, cells)| match cells {
                        Some(cells) => check_cell(&column.spec, column.limits, &cells[row]),
                        None => None,
                    })
                    .collect();
                combine(reasons)
            })
            .collect();
        Ok(PreparedBatch {
            columns,
            keys,
            rejections,
        })
    }

    /// The fields of `row` in output order, rendered as text.
    pub fn render_row(&self, row: usize, account_column: &str, datetime_format: &str) -> Vec<String> {
        let account = self
            .columns
            .iter()
            .find(|(c, _)| c.spec.name == account_column)
            .and_then(|(_, cells)| cells.as_ref())
            .map(|cells| render(&cells[row], datetime_format))
            .unwrap_or_default();
        self.columns
            .iter()
            .map(|(column, cells)| {
                let value = cells.as_ref().map(|cells| render(&cells[row], datetime_format));
                match (value, column.default) {
                    (Some(v), _) if !v.is_empty() => v,
                    (_, ColumnDefault::RowKey) => self.keys[row].clone(),
                    (_, ColumnDefault::AccountTag) => format!("AccountNumber:{account}"),
                    (value, ColumnDefault::Empty) => value.unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The header of the file, in output order.
    pub fn headers(&self) -> Vec<&str> {
        self.columns.iter().map(|(c, _)| c.spec.name.as_ref()).collect()
    }
}

fn row_keys(destination: &str, batch: &RecordBatch) -> Result<Vec<String>> {
    let array = batch
        .column_by_name(ROW_KEY_COLUMN)
        .ok_or_else(|| ConnectorError::MissingColumn {
            destination: destination.to_string(),
            column: ROW_KEY_COLUMN.to_string(),
        })?;
    let strings = cast(array, &DataType::Utf8).map_err(|source| ConnectorError::Convert {
        destination: destination.to_string(),
        column: ROW_KEY_COLUMN.to_string(),
        source,
    })?;
    let strings = strings.as_string::<i32>();
    Ok((0..strings.len())
        .map(|i| {
            if strings.is_null(i) {
                String::new()
            } else {
                strings.value(i).to_string()
            }
        })
        .collect())
}

/// One rejection per row: the first reason's code, every reason's message.
fn combine(mut reasons: Vec<Rejection>) -> Option<Rejection> {
    match reasons.len() {
        0 => None,
        1 => reasons.pop(),
        _ => {
            let message = reasons
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let first = reasons.swap_remove(0);
            Some(Rejection { message, ..first })
        }
    }
}

fn render(cell: &Cell, datetime_format: &str) -> String {
    match cell {
        Cell::Null | Cell::Invalid(_) => String::new(),
        Cell::Text(text) | Cell::Number(text) => text.clone(),
        Cell::DateTime(dt) => {
            let mut out = String::new();
            // The format was validated with the config; a failure leaves the cell empty,
            // which the required-field rule then reports instead of panicking here.
            if write!(out, "{}", dt.format(datetime_format)).is_err() {
                out.clear();
            }
            out
        }
    }
}
