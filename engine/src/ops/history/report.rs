//! `dinmo report`: what the sync history page shows, each number read by SQL over the history
//! tables ([`super::tables`]) — the same tables `dinmo query` reads, so every number on the
//! page can be checked with a query.

use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use dinmo_connectors::Timestamp;

use super::query::history_session;
use crate::error::{DinmoError, Result};
use crate::project::Project;
use crate::settings::Settings;

/// Gathers the history page's numbers.
#[derive(Debug)]
pub struct ReportOp<'p> {
    project: &'p Project,
    settings: Settings,
    days: Option<u32>,
}

/// One bar of a chart, one row of its table: a value of `series` at `x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The day (`YYYY-MM-DD`) or run.
    pub x: String,
    /// The sync, unit, refusal code, outcome or correction kind.
    pub series: String,
    /// Rows.
    pub rows: u64,
    /// Their total quantity, exactly (empty when the rows carry none).
    pub quantity: String,
}

/// Refusals of one code and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The refusal code.
    pub code: String,
    /// The field refused (empty when the refusal names none).
    pub field: String,
    /// Rows refused.
    pub rows: u64,
    /// The syncs they came from.
    pub syncs: String,
    /// The first and last run that refused them.
    pub first_run: String,
    /// See `first_run`.
    pub last_run: String,
    /// One of the messages.
    pub message: String,
}

/// One sync's part of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The run.
    pub run_id: String,
    /// The sync.
    pub sync_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// Seconds from start to finish (none while running).
    pub duration_seconds: Option<f64>,
    /// How it ended.
    pub outcome: String,
    /// Rows the model produced.
    pub model_rows: u64,
    /// Rows not sent before.
    pub new_rows: u64,
    /// Rows sent to correct earlier ones.
    pub corrections: u64,
    /// Rows gone from the model.
    pub gone: u64,
    /// Rows the destination acknowledged.
    pub accepted: u64,
    /// Rows refused.
    pub rejected: u64,
    /// Rows neither acknowledged nor refused.
    pub pending: u64,
    /// Rows held because their values changed after they were sent.
    pub held: u64,
    /// The project's git commit.
    pub git_commit: String,
    /// The error that stopped it.
    pub error: String,
}

/// Rows one run held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRows {
    /// The run that held them.
    pub run_id: String,
    /// The sync.
    pub sync_id: String,
    /// Rows held.
    pub rows: u64,
    /// Their total quantity as sent.
    pub quantity_before: String,
    /// Their total quantity now.
    pub quantity_now: String,
    /// Why (one of the reasons).
    pub reason: String,
}

/// The totals at the top of the page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs (not syncs × runs).
    pub runs: u64,
    /// Syncs with runs.
    pub syncs: u64,
    /// The first and last run's start, RFC 3339.
    pub first_run: String,
    /// See `first_run`.
    pub last_run: String,
    /// Rows sent (every row of `sent`).
    pub sent_rows: u64,
    /// Their total quantity.
    pub sent_quantity: String,
    /// Rows refused.
    pub rejected_rows: u64,
    /// Rows pending.
    pub pending_rows: u64,
    /// Rows held.
    pub held_rows: u64,
    /// Rows sent to correct earlier ones.
    pub correction_rows: u64,
}

/// The history page's numbers.
#[derive(Debug, Clone)]
pub struct HistoryReport {
    /// The state location.
    pub state: String,
    /// When the numbers were read.
    pub generated_at: Timestamp,
    /// The first day included, with `--days`.
    pub since: Option<String>,
    /// Totals.
    pub summary: Summary,
    /// Rows and quantity sent per day (of the run) per sync.
    pub sent_by_sync: Vec<Point>,
    /// Rows and quantity sent per day per unit of measure.
    pub sent_by_unit: Vec<Point>,
    /// Rows refused per day per refusal code.
    pub refused_by_code: Vec<Point>,
    /// Refusals by code and field.
    pub refusals: Vec<Refusal>,
    /// Every sync's part of every run, oldest first.
    pub runs: Vec<RunRow>,
    /// Runs per sync per outcome (`x` the sync, `series` the outcome).
    pub outcomes: Vec<Point>,
    /// Rows held, per run per sync.
    pub held: Vec<HeldRows>,
    /// Rows sent to correct earlier ones, per day per kind of correction.
    pub corrections_by_kind: Vec<Point>,
    /// The newest run, one row per sync.
    pub latest: Vec<RunRow>,
}

impl<'p> ReportOp<'p> {
    /// The report of `project`'s whole history.
    pub fn new(project: &'p Project) -> Self {
        ReportOp {
            project,
            settings: Settings::default(),
            days: None,
        }
    }

    /// Only runs started in the last `days` days.
    pub fn days(mut self, days: Option<u32>) -> Self {
        self.days = days;
        self
    }

    async fn execute(self) -> Result<HistoryReport> {
        let (ctx, state, _) = history_session(self.project, &self.settings).await?;
        let generated_at = Timestamp::now();
        let since = self.days.map(|days| {
            (generated_at.time() - chrono::Duration::days(i64::from(days)))
                .date_naive()
                .to_string()
        });
        let filter = match &since {
            Some(day) => format!("WHERE started_at >= TIMESTAMP '{day}T00:00:00Z'"),
            None => String::new(),
        };
        sql(&ctx, &format!("CREATE VIEW report_runs AS SELECT * FROM runs {filter}")).await?;
        // The sent rows summed per run, unit and kind of correction, in one scan: every chart
        // and total of sent rows reads this, not the rows again.
        sql(
            &ctx,
            &format!(
                "CREATE TABLE sent_per_run AS SELECT sync_id, run_id, coalesce(unit, '(none)') AS unit, correction, \
                 count(*) AS n, sum(quantity) AS q FROM {} GROUP BY 1, 2, 3, 4",
                covered("sent")
            ),
        )
        .await?;
        Ok(HistoryReport {
            state: state.display().to_string(),
            generated_at,
            since,
            summary: summary(&ctx).await?,
            sent_by_sync: points(&ctx, &per_day("sent_per_run", "sync_id", "sum(n)", "sum(q)")).await?,
            sent_by_unit: points(&ctx, &per_day("sent_per_run", "unit", "sum(n)", "sum(q)")).await?,
            refused_by_code: points(
                &ctx,
                &per_day("rejected", "coalesce(code, '(none)')", "count(*)", "sum(quantity)"),
            )
            .await?,
            refusals: refusals(&ctx).await?,
            runs: runs(&ctx, "SELECT * FROM report_runs").await?,
            outcomes: points(
                &ctx,
                "SELECT sync_id, outcome, count(*), '' FROM report_runs GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .await?,
            held: held(&ctx).await?,
            corrections_by_kind: points(
                &ctx,
                &per_day(
                    "(SELECT * FROM sent_per_run WHERE correction IS NOT NULL)",
                    "correction",
                    "sum(n)",
                    "sum(q)",
                ),
            )
            .await?,
            latest: runs(
                &ctx,
                "SELECT * FROM report_runs WHERE run_id = (SELECT max(run_id) FROM report_runs)",
            )
            .await?,
        })
    }
}

awaitable!(ReportOp => HistoryReport);
options!(ReportOp { settings });

/// `rows` and `quantity` (aggregates over `table`) per day (of the run) per `series`: summed
/// per run first, so the join with the runs is small however many rows there are.
fn per_day(table: &str, series: &str, rows: &str, quantity: &str) -> String {
    format!(
        "WITH per_run AS (
             SELECT sync_id, run_id, {series} AS series, {rows} AS n, {quantity} AS q
             FROM {table} GROUP BY 1, 2, 3)
         SELECT CAST(CAST(r.started_at AS DATE) AS VARCHAR), p.series, sum(p.n), sum(p.q)
         FROM per_run p JOIN report_runs r ON p.sync_id = r.sync_id AND p.run_id = r.run_id
         GROUP BY 1, 2 ORDER BY 1, 2"
    )
}

/// Rows of `table` from the runs the report covers.
fn covered(table: &str) -> String {
    format!(
        "(SELECT t.* FROM {table} t JOIN (SELECT DISTINCT sync_id, run_id FROM report_runs) r \
         ON t.sync_id = r.sync_id AND t.run_id = r.run_id)"
    )
}

async fn summary(ctx: &SessionContext) -> Result<Summary> {
    let text = format!(
        "SELECT
           (SELECT count(DISTINCT run_id) FROM report_runs) AS runs,
           (SELECT count(DISTINCT sync_id) FROM report_runs) AS syncs,
           (SELECT min(started_at) FROM report_runs) AS first_run,
           (SELECT max(started_at) FROM report_runs) AS last_run,
           (SELECT sum(n) FROM sent_per_run) AS sent_rows,
           (SELECT sum(q) FROM sent_per_run) AS sent_quantity,
           (SELECT count(*) FROM {rejected}) AS rejected_rows,
           (SELECT count(*) FROM {pending}) AS pending_rows,
           (SELECT count(*) FROM {held}) AS held_rows,
           (SELECT sum(n) FROM sent_per_run WHERE correction IS NOT NULL) AS correction_rows",
        rejected = covered("rejected"),
        pending = covered("pending"),
        held = covered("held"),
    );
    let rows = sql(ctx, &text).await?;
    let Some(row) = rows.first() else {
        return Ok(Summary::default());
    };
    Ok(Summary {
        runs: number(&row[0]),
        syncs: number(&row[1]),
        first_run: row[2].clone(),
        last_run: row[3].clone(),
        sent_rows: number(&row[4]),
        sent_quantity: row[5].clone(),
        rejected_rows: number(&row[6]),
        pending_rows: number(&row[7]),
        held_rows: number(&row[8]),
        correction_rows: number(&row[9]),
    })
}

async fn points(ctx: &SessionContext, text: &str) -> Result<Vec<Point>> {
    Ok(sql(ctx, text)
        .await?
        .into_iter()
        .map(|row| Point {
            x: row[0].clone(),
            series: row[1].clone(),
            rows: number(&row[2]),
            quantity: row[3].clone(),
        })
        .collect())
}

async fn refusals(ctx: &SessionContext) -> Result<Vec<Refusal>> {
    let text = format!(
        "SELECT coalesce(code, '(none)'), coalesce(field, ''), count(*), string_agg(DISTINCT sync_id, ', '),
                min(run_id), max(run_id), min(message)
         FROM {} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        covered("rejected")
    );
    Ok(sql(ctx, &text)
        .await?
        .into_iter()
        .map(|row| Refusal {
            code: row[0].clone(),
            field: row[1].clone(),
            rows: number(&row[2]),
            syncs: row[3].clone(),
            first_run: row[4].clone(),
            last_run: row[5].clone(),
            message: row[6].clone(),
        })
        .collect())
}

async fn runs(ctx: &SessionContext, from: &str) -> Result<Vec<RunRow>> {
    let text = format!(
        "SELECT run_id, sync_id, started_at, duration_seconds, outcome, model_rows, new_rows, corrections, gone,
                accepted, rejected, pending, held, git_commit, error
         FROM ({from}) ORDER BY run_id, sync_id"
    );
    Ok(sql(ctx, &text)
        .await?
        .into_iter()
        .map(|row| RunRow {
            run_id: row[0].clone(),
            sync_id: row[1].clone(),
            started_at: row[2].clone(),
            duration_seconds: row[3].parse().ok(),
            outcome: row[4].clone(),
            model_rows: number(&row[5]),
            new_rows: number(&row[6]),
            corrections: number(&row[7]),
            gone: number(&row[8]),
            accepted: number(&row[9]),
            rejected: number(&row[10]),
            pending: number(&row[11]),
            held: number(&row[12]),
            git_commit: row[13].clone(),
            error: row[14].clone(),
        })
        .collect())
}

async fn held(ctx: &SessionContext) -> Result<Vec<HeldRows>> {
    let text = format!(
        "SELECT run_id, sync_id, count(*), sum(quantity_before), sum(quantity), min(reason)
         FROM {} GROUP BY 1, 2 ORDER BY 1, 2",
        covered("held")
    );
    Ok(sql(ctx, &text)
        .await?
        .into_iter()
        .map(|row| HeldRows {
            run_id: row[0].clone(),
            sync_id: row[1].clone(),
            rows: number(&row[2]),
            quantity_before: row[3].clone(),
            quantity_now: row[4].clone(),
            reason: row[5].clone(),
        })
        .collect())
}

fn number(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// Runs `text` and reads every value as its display text (null as empty).
async fn sql(ctx: &SessionContext, text: &str) -> Result<Vec<Vec<String>>> {
    let context = "reading the sync history for the report";
    let batches: Vec<RecordBatch> = ctx
        .sql(text)
        .await
        .map_err(DinmoError::engine(context))?
        .collect()
        .await
        .map_err(DinmoError::engine(context))?;
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(DinmoError::arrow(context))?;
        for i in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| match column.is_valid(i) {
                        true => f.value(i).to_string(),
                        false => String::new(),
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}
