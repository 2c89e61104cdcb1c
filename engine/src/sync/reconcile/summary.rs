//! The report's numbers, read from the compared rows ([`super::compare`]): rows and
//! quantities by class, records found by status, quantities by account and unit, samples of
//! each difference, and the rows `--repair missing` may return to new.

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::class::Class;
use super::compare::{Compared, rows, texts};
use crate::error::Result;

/// Rows of each class listed in a report.
pub const SAMPLE_ROWS: usize = 20;

/// Accounts and units listed in a report's totals.
pub const TOTAL_ROWS: usize = 500;

/// Rows of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCount {
    /// The class.
    pub class: Class,
    /// Rows in it.
    pub rows: u64,
    /// Sum of the quantities delivered (none for extra and new rows).
    pub delivered_quantity: Option<String>,
    /// Sum of the quantities held.
    pub zuora_quantity: Option<String>,
}

/// Quantities of one account and unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountTotal {
    /// The account.
    pub account: Option<String>,
    /// The unit of measure.
    pub unit: Option<String>,
    /// Delivered by dinmo.
    pub delivered: Option<String>,
    /// Held by the destination (matched and extra records).
    pub in_zuora: Option<String>,
    /// What the model says now (delivered rows as the model has them, and new rows).
    pub in_warehouse: Option<String>,
    /// Rows of this account and unit in a class other than `equal`.
    pub differing_rows: u64,
}

/// What [`summarise`] reads.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every class, with its rows (zero included).
    pub classes: Vec<ClassCount>,
    /// The records found in the destination by status.
    pub statuses: Vec<(String, u64)>,
    /// Quantities by account and unit, differing ones first (at most [`TOTAL_ROWS`]).
    pub totals: Vec<AccountTotal>,
    /// Up to [`SAMPLE_ROWS`] rows of each class that is a difference.
    pub samples: Vec<Compared>,
    /// The row keys of the missing rows whose every record is missing.
    pub repairable: Vec<String>,
    /// Missing rows some of whose records are held.
    pub not_repairable: u64,
}

/// Reads the report's numbers from the table `compared` of `ctx`.
pub async fn summarise(ctx: &SessionContext) -> Result<Summary> {
    let mut classes: Vec<ClassCount> = Class::ALL
        .iter()
        .map(|&class| ClassCount {
            class,
            rows: 0,
            delivered_quantity: None,
            zuora_quantity: None,
        })
        .collect();
    for row in texts(
        ctx,
        "select class, count(*), sum(delivered_quantity), sum(zuora_quantity) from compared group by class",
    )
    .await?
    {
        if let Some(class) = row[0].as_deref().and_then(Class::parse)
            && let Some(slot) = classes.iter_mut().find(|c| c.class == class)
        {
            slot.rows = row[1].as_deref().and_then(|n| n.parse().ok()).unwrap_or(0);
            slot.delivered_quantity = row[2].clone();
            slot.zuora_quantity = row[3].clone();
        }
    }
    let statuses = texts(
        ctx,
        "select zuora_status, count(*) from compared where zuora_status is not null group by zuora_status order by zuora_status",
    )
    .await?
    .into_iter()
    .filter_map(|row| Some((row[0].clone()?, row[1].as_deref()?.parse().ok()?)))
    .collect();
    let totals = texts(
        ctx,
        &format!(
            "select account, unit, sum(delivered_quantity), sum(zuora_quantity), \
             sum(case when class in ('changed', 'new') then model_quantity when class in ('gone', 'extra') then 0 else delivered_quantity end), \
             sum(case when class in ('equal', 'unverified') then 0 else 1 end) as differing \
             from compared group by account, unit order by differing desc, account, unit limit {TOTAL_ROWS}"
        ),
    )
    .await?
    .into_iter()
    .map(|row| AccountTotal {
        account: row[0].clone(),
        unit: row[1].clone(),
        delivered: row[2].clone(),
        in_zuora: row[3].clone(),
        in_warehouse: row[4].clone(),
        differing_rows: row[5].as_deref().and_then(|n| n.parse().ok()).unwrap_or(0),
    })
    .collect();
    let mut samples = Vec::new();
    for class in Class::ALL.into_iter().filter(|c| c.is_difference()) {
        samples.extend(rows(ctx, &format!("class = '{}'", class.as_str()), SAMPLE_ROWS).await?);
    }
    // A row is repairable when every record delivered for it is missing.
    let repairable: Vec<String> = texts(
        ctx,
        "select row_key from compared where row_key is not null and class <> 'new' group by row_key \
         having sum(case when class = 'missing' then 1 else 0 end) = count(*) order by row_key",
    )
    .await?
    .into_iter()
    .filter_map(|mut row| row.pop().flatten())
    .collect();
    let missing_rows: u64 = texts(
        ctx,
        "select count(distinct row_key) from compared where class = 'missing'",
    )
    .await?
    .first()
    .and_then(|row| row[0].as_deref()?.parse::<u64>().ok())
    .unwrap_or(0);
    Ok(Summary {
        classes,
        statuses,
        totals,
        samples,
        not_repairable: missing_rows.saturating_sub(repairable.len() as u64),
        repairable,
    })
}
