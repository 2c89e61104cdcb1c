//! What a reviewer needs to judge a plan: quantity totals by unit and by account, the range
//! of usage times, and a sample of rows, computed in DataFusion over the new rows. Everything
//! is ordered so the same inputs always give the same summary.

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::array_value_to_string;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use dinmo_connectors::{FieldRoles, ROW_KEY_COLUMN};
use serde::Serialize;

use crate::error::{DinmoError, Result};
use crate::state::row_key::normalise_decimal;

/// What a plan summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Rows in the sample.
    pub sample: usize,
    /// Accounts listed.
    pub top: usize,
}

/// One group's total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Total {
    /// The unit or account.
    pub key: String,
    /// Rows in the group.
    pub rows: u64,
    /// Sum of Quantity, exact, without trailing zeros.
    pub quantity: String,
}

/// The accounts beyond the top N, summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherAccounts {
    /// How many accounts.
    pub accounts: u64,
    /// Their rows.
    pub rows: u64,
    /// Their quantity.
    pub quantity: String,
}

/// The summary of one sync's new rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// The destination fields summarised: account, unit, quantity, start.
    pub fields: [String; 4],
    /// Quantity over every row (for Revenue, the total `Usage Amount`).
    pub total_quantity: Option<String>,
    /// Quantity by unit of measure, by unit.
    pub by_unit: Vec<Total>,
    /// Quantity by account: the top N by quantity (ties by account).
    pub by_account: Vec<Total>,
    /// The remaining accounts, summed.
    pub other_accounts: Option<OtherAccounts>,
    /// Earliest usage start.
    pub first_start: Option<String>,
    /// Latest usage start.
    pub last_start: Option<String>,
    /// Columns of the sample (destination fields).
    pub sample_columns: Vec<String>,
    /// Up to N rows, ordered by row key.
    pub sample: Vec<Vec<String>>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn query(ctx: &SessionContext, sql: &str, context: &str) -> Result<Vec<RecordBatch>> {
    // Aggregates and LIMITed rows only: small by construction.
    ctx.sql(sql)
        .await
        .map_err(DinmoError::engine(context))?
        .collect()
        .await
        .map_err(DinmoError::engine(context))
}

fn cell(batch: &RecordBatch, column: usize, row: usize, context: &str) -> Result<String> {
    let array = batch.column(column);
    if array.is_null(row) {
        return Ok(String::new());
    }
    array_value_to_string(array, row).map_err(DinmoError::arrow(context))
}

fn totals(batches: &[RecordBatch], context: &str) -> Result<Vec<Total>> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(Total {
                key: cell(batch, 0, row, context)?,
                rows: cell(batch, 1, row, context)?.parse().unwrap_or(0),
                quantity: normalise_decimal(&cell(batch, 2, row, context)?),
            });
        }
    }
    Ok(out)
}

/// Summarises the new rows in `pending` (a local Parquet file of destination fields).
/// A sequence of small SQL queries (totals, units, accounts, time range, sample), each read
/// into its field of the summary.
pub async fn summarise(pending: &Path, roles: FieldRoles, top: usize, sample: usize) -> Result<PlanSummary> {
    let context = "summarising the plan";
    let ctx = SessionContext::new();
    let location = pending.to_string_lossy().into_owned();
    ctx.register_parquet("plan_rows", location.as_str(), ParquetReadOptions::default())
        .await
        .map_err(DinmoError::engine(context))?;
    let schema = ctx
        .table("plan_rows")
        .await
        .map_err(DinmoError::engine(context))?
        .schema()
        .as_arrow()
        .clone();
    let has = |name: &str| schema.field_with_name(name).is_ok();
    let mut summary = PlanSummary {
        fields: [roles.account, roles.unit, roles.quantity, roles.start].map(String::from),
        ..PlanSummary::default()
    };
    let quantity = if has(roles.quantity) {
        format!("try_cast({} AS DECIMAL(38, 9))", quote(roles.quantity))
    } else {
        "NULL".into()
    };
    let group = |key: &str| {
        if has(key) {
            format!("CAST({} AS VARCHAR)", quote(key))
        } else {
            "''".into()
        }
    };

    let by_unit = format!(
        "SELECT {unit} AS k, count(*) AS n, sum({quantity}) AS q FROM plan_rows GROUP BY 1 ORDER BY 1",
        unit = group(roles.unit)
    );
    summary.by_unit = totals(&query(&ctx, &by_unit, context).await?, context)?;
    let total = query(&ctx, &format!("SELECT sum({quantity}) FROM plan_rows"), context).await?;
    if let Some(batch) = total.first().filter(|b| b.num_rows() > 0) {
        summary.total_quantity = Some(normalise_decimal(&cell(batch, 0, 0, context)?)).filter(|q| !q.is_empty());
    }

    let ranked = format!(
        "WITH g AS (SELECT {account} AS k, count(*) AS n, sum({quantity}) AS q FROM plan_rows GROUP BY 1), \
         r AS (SELECT k, n, q, row_number() OVER (ORDER BY q DESC NULLS LAST, k ASC) AS rank FROM g)",
        account = group(roles.account)
    );
    let top_sql = format!("{ranked} SELECT k, n, q FROM r WHERE rank <= {top} ORDER BY rank");
    summary.by_account = totals(&query(&ctx, &top_sql, context).await?, context)?;
    let rest_sql = format!("{ranked} SELECT count(*), sum(n), sum(q) FROM r WHERE rank > {top}");
    let rest = query(&ctx, &rest_sql, context).await?;
    if let Some(batch) = rest.first().filter(|b| b.num_rows() > 0) {
        let accounts: u64 = cell(batch, 0, 0, context)?.parse().unwrap_or(0);
        if accounts > 0 {
            summary.other_accounts = Some(OtherAccounts {
                accounts,
                rows: cell(batch, 1, 0, context)?.parse().unwrap_or(0),
                quantity: normalise_decimal(&cell(batch, 2, 0, context)?),
            });
        }
    }

    if has(roles.start) {
        let start = format!("try_cast({} AS TIMESTAMP)", quote(roles.start));
        let range = query(
            &ctx,
            &format!("SELECT min({start}), max({start}) FROM plan_rows"),
            context,
        )
        .await?;
        if let Some(batch) = range.first().filter(|b| b.num_rows() > 0) {
            summary.first_start = Some(cell(batch, 0, 0, context)?).filter(|s| !s.is_empty());
            summary.last_start = Some(cell(batch, 1, 0, context)?).filter(|s| !s.is_empty());
        }
    }

    if sample > 0 {
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != ROW_KEY_COLUMN)
            .collect();
        let list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let rows = query(
            &ctx,
            &format!(
                "SELECT {list} FROM plan_rows ORDER BY {} LIMIT {sample}",
                quote(ROW_KEY_COLUMN)
            ),
            context,
        )
        .await?;
        for batch in &rows {
            for row in 0..batch.num_rows() {
                summary.sample.push(
                    (0..batch.num_columns())
                        .map(|c| cell(batch, c, row, context))
                        .collect::<Result<_>>()?,
                );
            }
        }
        summary.sample_columns = columns;
    }
    Ok(summary)
}
