//! `dinmo reconcile` for one sync: the model's rows now, the sync's snapshot (what dinmo
//! delivered) and what the destination holds now, compared, every row put in one
//! [`Class`].
//!
//! Three local files meet in DataFusion, so nothing is held in memory row by row: the
//! *expected records* ([`expected`]), the destination's *holdings* (read page by page into a
//! Parquet file, [`holdings`]) and the model's new and changed rows and gone keys (the diff of
//! a plan). Delivered records are matched to held ones by record id, then by the key they
//! were sent with (Zuora's `UniqueKey`), then, for records dinmo knows no id of (rows of an
//! import or a usage file on a tenant without `UniqueKey`), by their values, one held record
//! for one delivered. The comparison is written to one Parquet file, from which the report's
//! totals, counts and samples are read ([`summary`]).

pub mod class;
pub mod compare;
pub mod expected;
pub mod holdings;
pub mod repair;
pub mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::prelude::SessionContext;
use dinmo_connectors::{Destination, Holdings, HoldingsQuery, SyncId};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{DinmoError, Result};
use crate::state::{RunManifest, StateStore};
use crate::sync::run::ModelDiff;

pub use class::{Class, Period};
pub use compare::{COLUMNS, Compared};
pub use summary::{AccountTotal, ClassCount, SAMPLE_ROWS, TOTAL_ROWS};

/// Ids of delivered records looked up at a time when the period's read did not find them.
const ID_LOOKUP_CHUNK: usize = 10_000;

/// Where the destination's side came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum HeldSource {
    /// The destination's API, for these dates (`YYYY-MM-DD`, inclusive).
    Api {
        from: Option<String>,
        to: Option<String>,
        records_read: u64,
        unique_keys: bool,
    },
    /// A usage export a person downloaded.
    Export {
        file: String,
        records_read: u64,
        unique_keys: bool,
    },
    /// It cannot be read back; why.
    Unreadable { reason: String },
}

/// What reconciling one sync found.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReconciliation {
    /// The sync.
    pub sync_id: SyncId,
    /// Its destination's name.
    pub destination: String,
    /// Its destination's type.
    pub destination_type: String,
    /// The first date reconciled (`YYYY-MM-DD`, inclusive; none: every date).
    pub from: Option<String>,
    /// The last date reconciled (inclusive; none: every date).
    pub to: Option<String>,
    /// The runs reconciled (`--last-runs`), oldest first; empty: every run.
    pub runs: Vec<String>,
    /// Where the destination's side came from.
    pub held: HeldSource,
    /// Every class, with its rows (zero included).
    pub classes: Vec<ClassCount>,
    /// The records found in the destination by status (`Pending`, `Processed`).
    pub statuses: Vec<(String, u64)>,
    /// Quantities by account and unit, differing ones first (at most [`TOTAL_ROWS`]).
    pub totals: Vec<AccountTotal>,
    /// Up to [`SAMPLE_ROWS`] rows of each class other than `equal`.
    pub samples: Vec<Compared>,
    /// Missing rows whose every record is missing: what `--repair missing` returns to new.
    pub repairable_rows: u64,
    /// Their row keys.
    #[serde(skip)]
    pub repairable: Vec<String>,
    /// Missing rows `--repair missing` leaves (some of their records are held), and why.
    pub not_repairable: u64,
    /// What changed since the sync's last run that bears on the comparison (the model's SQL
    /// or mapping; snapshot parts no manifest names, whose rows count as delivered and are
    /// not compared).
    pub notes: Vec<String>,
    /// Seconds it took.
    pub seconds: f64,
    /// The comparison, row by row (local file, removed with the command's staging folder).
    #[serde(skip)]
    pub compared: PathBuf,
}

impl SyncReconciliation {
    /// Rows of `class`.
    pub fn rows(&self, class: Class) -> u64 {
        self.classes.iter().find(|c| c.class == class).map_or(0, |c| c.rows)
    }

    /// Rows that differ.
    pub fn differences(&self) -> u64 {
        self.classes
            .iter()
            .filter(|c| c.class.is_difference())
            .map(|c| c.rows)
            .sum()
    }
}

/// One sync to reconcile.
#[derive(Debug)]
pub struct Reconciling<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// Its destination's name.
    pub destination_name: &'a str,
    /// Its destination.
    pub destination: &'a dyn Destination,
    /// The state store.
    pub state: &'a StateStore,
    /// Every manifest of the sync, oldest first.
    pub manifests: &'a [RunManifest],
    /// Only the rows delivered by the last this many runs.
    pub last_runs: Option<usize>,
    /// The usage dates compared.
    pub period: Period,
    /// A usage export to read instead of the destination's API.
    pub export: Option<&'a Path>,
    /// What the model says against the snapshot.
    pub model: ModelDiff,
    /// A local folder of this sync's own.
    pub work: PathBuf,
}

/// Reconciles one sync (see the module documentation).
pub async fn reconcile_sync(ctx: &SessionContext, job: Reconciling<'_>) -> Result<SyncReconciliation> {
    let started = Instant::now();
    let stopped = repair::stopped_repairs(job.state, job.sync_id).await?;
    if let Some(first) = stopped.first() {
        return Err(DinmoError::Reconcile {
            sync: job.sync_id.clone(),
            message: format!(
                "a repair stopped before removing the {} snapshot part(s) it replaced (first: {first}); their rows still count as delivered. Run `dinmo reconcile --repair missing` to finish it",
                stopped.len()
            ),
        });
    }
    if job.export.is_some() && job.destination.kind() == "zuora_revenue" {
        return Err(DinmoError::Reconcile {
            sync: job.sync_id.clone(),
            message:
                "a usage export is Zuora Billing's, and this sync sends to Zuora Revenue; leave it out with --exclude"
                    .into(),
        });
    }
    std::fs::create_dir_all(&job.work).map_err(DinmoError::io(&job.work))?;
    let roles = job.destination.roles();
    let runs: &[RunManifest] = match job.last_runs {
        Some(n) => &job.manifests[job.manifests.len().saturating_sub(n)..],
        None => job.manifests,
    };
    let ids = match job.destination.kind() {
        "zuora" => expected::RecordIds::Records,
        _ => expected::RecordIds::Carriers,
    };
    let expected_path = job.work.join("expected.parquet");
    let found = expected::write(ctx, job.state, runs, job.manifests, &roles, ids, &expected_path).await?;
    tracing::debug!(
        records = found.records,
        seconds = started.elapsed().as_secs_f64(),
        "expected records written"
    );

    // The dates read from the destination: the period asked for, else the delivered rows'.
    let period = job.period.clone();
    let from = period.from.map(|d| d.to_string()).or(found.first_day.clone());
    let to = period.to.map(|d| d.to_string()).or(found.last_day.clone());
    let held_path = job.work.join("held.parquet");
    let by_id_path = job.work.join("held_by_id.parquet");
    holdings::empty(&by_id_path)?;
    let held = match job.export {
        Some(export) => {
            let (unique_keys, records_read) = holdings::read_export(job.sync_id, export, &held_path)?;
            HeldSource::Export {
                file: export.display().to_string(),
                records_read,
                unique_keys,
            }
        }
        None => match (&from, &to) {
            (Some(first), Some(last)) => {
                let query = HoldingsQuery::Period {
                    from: shift(job.sync_id, first, -1)?,
                    to: shift(job.sync_id, last, 2)?,
                };
                match holdings::read(job.sync_id, job.destination, &query, &held_path).await? {
                    (Holdings::Read { unique_keys }, records_read) => {
                        let by_id = look_up_unmatched(ctx, &job, &expected_path, &held_path, &by_id_path).await?;
                        HeldSource::Api {
                            from: from.clone(),
                            to: to.clone(),
                            records_read: records_read + by_id,
                            unique_keys,
                        }
                    }
                    (Holdings::Unreadable(reason), _) => HeldSource::Unreadable { reason },
                }
            }
            // Nothing delivered and no period: nothing to read. Asking for no ids tells, without
            // a request, whether the destination can be read back at all.
            _ => {
                holdings::empty(&held_path)?;
                match job
                    .destination
                    .holdings(&HoldingsQuery::Ids(Vec::new()), &mut |_| Ok(()))
                    .await
                {
                    Ok(Holdings::Unreadable(reason)) => HeldSource::Unreadable { reason },
                    _ => HeldSource::Api {
                        from: None,
                        to: None,
                        records_read: 0,
                        unique_keys: false,
                    },
                }
            }
        },
    };
    tracing::debug!(held = ?held, seconds = started.elapsed().as_secs_f64(), "held records read");
    let readable = !matches!(held, HeldSource::Unreadable { .. });
    if !held_path.exists() {
        holdings::empty(&held_path)?;
    }

    let compare_ctx = comparing_session(ctx);
    let gone = job.model.gone.iter().map(|k| format!("{k:032x}")).collect();
    let inputs = compare::Inputs {
        expected: &expected_path,
        held: &[&held_path, &by_id_path],
        readable,
        new_rows: Some(job.model.new_rows.as_path()),
        changed_rows: Some(job.model.changed_rows.as_path()),
        gone,
        roles,
        period: period.clone(),
        extra_period: Period {
            from: from
                .as_deref()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            to: to
                .as_deref()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        },
    };
    compare::register(&compare_ctx, &inputs, &job.work).await?;
    let compared = job.work.join("compared.parquet");
    compare::materialise(&compare_ctx, &compared).await?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "compared");

    let summary = summary::summarise(&compare_ctx).await?;
    Ok(SyncReconciliation {
        sync_id: job.sync_id.clone(),
        destination: job.destination_name.to_string(),
        destination_type: job.destination.kind().to_string(),
        from,
        to,
        runs: match job.last_runs {
            Some(_) => runs.iter().map(|m| m.run_id.to_string()).collect(),
            None => Vec::new(),
        },
        held,
        classes: summary.classes,
        statuses: summary.statuses,
        totals: summary.totals,
        samples: summary.samples,
        not_repairable: summary.not_repairable,
        repairable_rows: summary.repairable.len() as u64,
        repairable: summary.repairable,
        seconds: started.elapsed().as_secs_f64(),
        notes: job.model.notes,
        compared,
    })
}

/// A session for the comparison on `ctx`'s memory pool and spill folder. Its joins are hash
/// joins, whose build sides are held in memory (DataFusion's sort-merge joins, which spill,
/// were measured slower and no smaller here; docs/performance.md, "Reconcile"): memory grows
/// with the records of the period compared, and past `--memory-limit` the command stops
/// naming it.
fn comparing_session(ctx: &SessionContext) -> SessionContext {
    SessionContext::new_with_config_rt(ctx.copied_config(), ctx.runtime_env())
}

/// `day` (`YYYY-MM-DD`) moved by `days`.
fn shift(sync: &SyncId, day: &str, days: i64) -> Result<String> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| DinmoError::Reconcile {
        sync: sync.clone(),
        message: format!(
            "a delivered row's usage date starts `{day}`, not a date (YYYY-MM-DD); give the dates to read with --from and --to"
        ),
    })?;
    Ok((date + chrono::Duration::days(days)).to_string())
}

/// Reads by id the delivered records the period's read did not find (moved to another date,
/// or deleted), into `by_id`; how many were found.
async fn look_up_unmatched(
    ctx: &SessionContext,
    job: &Reconciling<'_>,
    expected: &Path,
    held: &Path,
    by_id: &Path,
) -> Result<u64> {
    let lookup = comparing_session(ctx);
    let context = "finding the delivered records the period's read did not find";
    lookup
        .register_parquet("e", expected.display().to_string(), Default::default())
        .await
        .map_err(DinmoError::engine(context))?;
    lookup
        .register_parquet("h", held.display().to_string(), Default::default())
        .await
        .map_err(DinmoError::engine(context))?;
    let mut stream = lookup
        .sql("select distinct record_id from e where record_id is not null and not exists (select 1 from h where h.id = e.record_id)")
        .await
        .map_err(DinmoError::engine(context))?
        .execute_stream()
        .await
        .map_err(DinmoError::engine(context))?;
    let mut ids: Vec<String> = Vec::new();
    let mut chunks: Vec<PathBuf> = Vec::new();
    let mut found = 0;
    let mut read = async |ids: Vec<String>, chunks: &mut Vec<PathBuf>| -> Result<()> {
        let path = job.work.join(format!("held_by_id_{}.parquet", chunks.len()));
        let (_, rows) = holdings::read(job.sync_id, job.destination, &HoldingsQuery::Ids(ids), &path).await?;
        found += rows;
        chunks.push(path);
        Ok(())
    };
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(DinmoError::engine(context))?;
        let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(DinmoError::arrow(context))?;
        ids.extend(
            arrow::array::AsArray::as_string::<i32>(&column)
                .iter()
                .flatten()
                .map(str::to_string),
        );
        if ids.len() >= ID_LOOKUP_CHUNK {
            read(std::mem::take(&mut ids), &mut chunks).await?;
        }
    }
    if !ids.is_empty() {
        read(ids, &mut chunks).await?;
    }
    // One file of every record found by id.
    if !chunks.is_empty() {
        let urls: Vec<String> = chunks.iter().map(|p| p.display().to_string()).collect();
        let frame = comparing_session(ctx)
            .read_parquet(urls, Default::default())
            .await
            .map_err(DinmoError::engine(context))?;
        compare::write_one_file(frame, by_id).await?;
    }
    Ok(found)
}
