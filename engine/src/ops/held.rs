//! `state resolve-held`: a person settles rows a run held because their values changed after
//! they were sent. What they decide is recorded like any correction (rows of the sync's
//! snapshot that name the row they correct), under a run of its own, so `runs` and `show` list
//! it and the next run no longer finds those rows changed.

use std::collections::HashSet;
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use dinmo_connectors::{ROW_KEY_COLUMN, RunId, SyncId};

use crate::error::{DinmoError, Result};
use crate::plan::destinations::build_destination;
use crate::project::Project;
use crate::settings::Settings;
use crate::state::row_key::each_hash;
use crate::state::values::{DELETED_VALUE, VALUE_COLUMN};
use crate::state::{LocalPartWriter, LockTerms, PartInfo, SyncIdentity, SyncPaths, write_lazily};
use crate::sync::changes::{BEFORE_PREFIX, Describing};
use crate::sync::context::{RunContext, RunOptions};
use crate::sync::corrections::{Corrections, Decision, write_with_corrections};
use crate::sync::report::SyncReport;
use crate::sync::run::send_rows;

/// What a person decided about held rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldDecision {
    /// The destination holds the new values already (corrected by hand): record them.
    Accept,
    /// Leave the destination as it is: record that, and stop holding them.
    Ignore,
    /// Send the positive difference in quantity as a usage row of its own.
    SendDifference,
}

impl HeldDecision {
    fn as_str(self) -> &'static str {
        match self {
            HeldDecision::Accept => "accepted",
            HeldDecision::Ignore => "ignored",
            HeldDecision::SendDifference => "sent as a difference",
        }
    }
}

/// What `resolve-held` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHeld {
    /// The sync.
    pub sync: SyncId,
    /// The run recording it.
    pub run: RunId,
    /// What was decided.
    pub decision: &'static str,
    /// Rows settled (sent or recorded).
    pub settled: u64,
    /// Rows still held afterwards.
    pub still_held: u64,
}

/// Settles held rows of one sync: all of them, or those whose row keys are given.
#[derive(Debug)]
pub struct ResolveHeldOp<'p> {
    project: &'p Project,
    sync: SyncId,
    keys: Vec<String>,
    decision: HeldDecision,
    wait: Option<Duration>,
    settings: Settings,
}

impl<'p> ResolveHeldOp<'p> {
    /// Settles the rows `sync` holds as `decision` says.
    pub fn new(project: &'p Project, sync: SyncId, decision: HeldDecision) -> Self {
        ResolveHeldOp {
            project,
            sync,
            keys: Vec::new(),
            decision,
            wait: None,
            settings: Settings::default(),
        }
    }

    /// Only the held rows with these row keys (as `show --rows` and the reports print them).
    pub fn keys(mut self, keys: Vec<String>) -> Self {
        self.keys = keys;
        self
    }

    async fn execute(self) -> Result<ResolvedHeld> {
        let options = RunOptions {
            settings: self.settings,
            ..RunOptions::default()
        };
        let run = RunContext::start(self.project, options, "-resolve-held")?;
        let terms = LockTerms::new(&self.settings, self.wait);
        let syncs = std::slice::from_ref(&self.sync);
        run.state
            .while_locked(syncs, &run.run_id, terms, &run.lease, self.resolve(&run))
            .await
    }

    async fn resolve(&self, run: &RunContext) -> Result<ResolvedHeld> {
        let sync = &self.sync;
        let nothing_held = |why: &str| DinmoError::NothingHeld {
            sync: sync.clone(),
            message: why.to_string(),
        };
        if !run.state.pending_files(sync).await?.is_empty() {
            return Err(nothing_held(
                "a stopped run left rows pending; run `dinmo run` first, which settles them and finds the changed rows again",
            ));
        }
        let manifests = run.state.manifests(sync).await?;
        let Some(last) = manifests.last() else {
            return Err(nothing_held("it has no runs"));
        };
        let Some(held_part) = &last.held_part else {
            return Err(nothing_held(&format!(
                "its last run ({}) held nothing; `dinmo plan` shows what would be held now",
                last.run_id
            )));
        };
        let def = self
            .project
            .destination(&last.destination)
            .ok_or_else(|| nothing_held(&format!("destination `{}` is no longer in dinmo.yml", last.destination)))?;
        let destination = build_destination(def)?;

        // The held rows, split into those settled now and those left held.
        let wanted: HashSet<String> = self.keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        let mut found = HashSet::new();
        let (mut chosen, mut left) = (Vec::new(), Vec::new());
        for batch in run.state.read_part(held_part).await? {
            let mut keys = Vec::with_capacity(batch.num_rows());
            if let Some(column) = batch.column_by_name(ROW_KEY_COLUMN) {
                each_hash(column, |h| {
                    keys.push(h.map(|h| format!("{h:032x}")).unwrap_or_default())
                })
                .map_err(DinmoError::arrow("reading the held rows"))?;
            }
            let pick: BooleanArray = keys
                .iter()
                .map(|k| Some(wanted.is_empty() || wanted.contains(k)))
                .collect();
            found.extend(keys.iter().filter(|k| wanted.contains(*k)).cloned());
            let skip = arrow::compute::not(&pick).map_err(DinmoError::arrow("reading the held rows"))?;
            chosen.push(filter_record_batch(&batch, &pick).map_err(DinmoError::arrow("reading the held rows"))?);
            left.push(filter_record_batch(&batch, &skip).map_err(DinmoError::arrow("reading the held rows"))?);
        }
        let missing: Vec<&String> = wanted.iter().filter(|k| !found.contains(*k)).collect();
        if !missing.is_empty() {
            return Err(nothing_held(&format!(
                "it does not hold row key(s) {} (its last run {} holds {} row(s); `dinmo show {} --rows DIR` lists them)",
                missing.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                last.run_id,
                held_part.rows,
                last.run_id
            )));
        }

        // The chosen rows as a changed file (their fields after, and key), described again
        // from the history: their corrections are numbered after every earlier one.
        let changed = run.staging_dir.join(format!("{sync}.resolve.changed.parquet"));
        let mut writer: Option<LocalPartWriter> = None;
        // Held rows the model no longer produces (their record could not be deleted).
        let mut gone = Vec::new();
        for batch in &chosen {
            if let Some(values) = batch.column_by_name(VALUE_COLUMN) {
                let values = arrow::compute::cast(values, &arrow::datatypes::DataType::UInt64)
                    .map_err(DinmoError::arrow("reading the held rows"))?;
                let values = values.as_primitive::<arrow::datatypes::UInt64Type>();
                gone.extend(values.iter().map(|v| v == Some(DELETED_VALUE)));
            }
            write_lazily(&mut writer, &changed, &after_fields(batch)?).await?;
        }
        let Some(writer) = writer else {
            return Err(nothing_held("no held row was chosen"));
        };
        writer.finish().await?;
        let describing = Describing {
            state: &run.state,
            manifests: &manifests,
            roles: destination.roles(),
            run: &run.run_id,
            reuse_held: false,
            sample: 0,
        };
        let described = run.staging_dir.join(format!("{sync}.resolve.described.parquet"));
        let (_, rows) = describing.describe(&changed, &described, "").await?;
        let decisions: Vec<Decision> = rows
            .iter()
            .zip(&gone)
            .map(|(row, &gone)| match self.decision {
                // A gone row: its record was deleted by hand, or stays; either way the key
                // leaves the snapshot.
                HeldDecision::Accept | HeldDecision::Ignore if gone => Ok(Decision::Deleted),
                HeldDecision::Accept => Ok(Decision::Accepted),
                HeldDecision::Ignore => Ok(Decision::Ignored),
                HeldDecision::SendDifference if gone => Err(DinmoError::NothingHeld {
                    sync: sync.clone(),
                    message: format!(
                        "held row {:032x} is gone from the model; there is no difference to send. Delete or credit it in \
                         Zuora, then settle it with `--accept` (or `--ignore` to leave it)",
                        row.key
                    ),
                }),
                HeldDecision::SendDifference => {
                    let difference = row
                        .before
                        .as_ref()
                        .and_then(|b| b.quantity)
                        .zip(row.after.quantity)
                        .map(|(b, a)| a - b);
                    match difference {
                        Some(d) if d > 0 => Ok(Decision::Difference(d)),
                        _ => Err(DinmoError::CannotSendDifference {
                            sync: sync.clone(),
                            key: format!("{:032x}", row.key),
                            difference: difference.map_or("unknown".into(), crate::sync::changes::nanos_text),
                        }),
                    }
                }
            })
            .collect::<Result<_>>()?;
        let corrections = run.staging_dir.join(format!("{sync}.resolve.pending.parquet"));
        let settled = write_with_corrections(
            destination.as_ref(),
            None,
            Corrections {
                changed: Some(&changed),
                rows: &rows,
                decisions: &decisions,
                deletions: &[],
            },
            destination.roles().quantity,
            &corrections,
        )
        .await?;

        // The rows left held stay held under this run.
        let still_held: u64 = left.iter().map(|b| b.num_rows() as u64).sum();
        let held_part = match still_held {
            0 => None,
            _ => Some(store_left(run, sync, &left).await?),
        };
        if self.decision == HeldDecision::SendDifference {
            destination
                .connect()
                .await
                .map_err(DinmoError::destination_named(&last.destination))?;
        }
        let identity = SyncIdentity {
            sync_id: sync.clone(),
            model: last.model.clone(),
            destination: last.destination.clone(),
            sql_hash: last.model_sql_hash.clone(),
            mapping_hash: last.mapping_hash.clone(),
            source_versions: last.source_versions.clone(),
        };
        let mut report = SyncReport {
            sync_id: sync.clone(),
            ..SyncReport::default()
        };
        report.counts.corrections = settled;
        send_rows(
            run,
            &identity,
            destination.as_ref(),
            &corrections,
            settled,
            held_part,
            &mut report,
        )
        .await?;
        if report.counts.rejected > 0 {
            return Err(DinmoError::RunFailed {
                failed: 1,
                total: 1,
                first: format!(
                    "sync `{sync}`: the destination refused {} of the {settled} correction(s); `dinmo show {} --rows DIR` lists them with the reason",
                    report.counts.rejected, run.run_id
                ),
            });
        }
        Ok(ResolvedHeld {
            sync: sync.clone(),
            run: run.run_id.clone(),
            decision: self.decision.as_str(),
            settled,
            still_held,
        })
    }
}

/// The fields after and the row key of held rows (what a diff's changed file holds).
fn after_fields(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let keep: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            let name = f.name();
            name == ROW_KEY_COLUMN || !(name.starts_with(BEFORE_PREFIX) || dinmo_connectors::is_engine_column(name))
        })
        .map(|(i, _)| i)
        .collect();
    batch.project(&keep).map_err(DinmoError::arrow("reading the held rows"))
}

/// Stores the rows left held as the held part of the resolving run.
async fn store_left(run: &RunContext, sync: &SyncId, left: &[RecordBatch]) -> Result<PartInfo> {
    let local = run.staging_dir.join(format!("{sync}.resolve.held.parquet"));
    let mut writer: Option<LocalPartWriter> = None;
    let mut rows = 0;
    for batch in left.iter().filter(|b| b.num_rows() > 0) {
        rows += batch.num_rows() as u64;
        write_lazily(&mut writer, &local, batch).await?;
    }
    if let Some(writer) = writer {
        writer.finish().await?;
    }
    run.state
        .upload(&local, &SyncPaths::of(sync).held(&run.run_id), rows)
        .await
}

awaitable!(ResolveHeldOp => ResolvedHeld);
options!(ResolveHeldOp { wait, settings });
