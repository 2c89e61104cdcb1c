//! Committing what a destination answered: acknowledged rows become snapshot parts, refused
//! rows rejected parts, and the run manifest is rewritten to name them at every checkpoint.
//! Nothing reaches the snapshot that the destination did not acknowledge.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use dinmo_connectors::failpoint::crash_point;
use dinmo_connectors::{BatchOutcome, ROW_KEY_COLUMN, RowStatus, RunId, SyncId};

use crate::error::{DinmoError, Result};
use crate::state::values::{CORRECTS_COLUMN, VALUE_COLUMN, stored_value_hashes, value_column};
use crate::state::{
    DESTINATION_ID_COLUMN, Folder, KeyEncoding, LeaseWatch, LocalPartWriter, PartInfo, RUN_ID_COLUMN, RunManifest,
    StateStore, SyncPaths, with_keys_as, write_lazily,
};
use crate::sync::report::{RejectionSummary, tally};

/// Collects acknowledged rows into snapshot parts and refused rows into rejected parts, and
/// stores them at each checkpoint.
pub struct Commit<'a> {
    state: &'a StateStore,
    staging_dir: PathBuf,
    sync_id: SyncId,
    /// Part names: `<part_prefix>-<sequence>.parquet`.
    part_prefix: String,
    sequence: u32,
    /// The run recorded in each committed row.
    run_id: RunId,
    /// Rows already committed (when replaying): not committed twice.
    skip_keys: HashSet<String>,
    accepted: Option<LocalPartWriter>,
    /// Rows of `accepted` that correct another row.
    accepted_corrections: u64,
    rejected: Option<LocalPartWriter>,
    /// The run's hold on the sync: once lost, delivery sends nothing more.
    pub(crate) lease: LeaseWatch,
    /// Refusals committed so far, by reason.
    rejections: Vec<RejectionSummary>,
    /// The least time between two commits by [`Commit::checkpoint_if_due`].
    interval: std::time::Duration,
    /// Rows per batch read from the local file being delivered or settled.
    batch_rows: usize,
    /// When the last commit was stored.
    last: std::time::Instant,
}

impl std::fmt::Debug for Commit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("sync_id", &self.sync_id)
            .field("part_prefix", &self.part_prefix)
            .finish()
    }
}

impl<'a> Commit<'a> {
    /// A commit for rows of `run_id`, naming its parts after the run; the rows it settles are
    /// read `settings.delivery_batch_rows` at a time.
    pub fn new(
        state: &'a StateStore,
        staging_dir: &Path,
        sync_id: &SyncId,
        run_id: &RunId,
        settings: &crate::settings::Settings,
    ) -> Self {
        Commit {
            state,
            staging_dir: staging_dir.to_path_buf(),
            sync_id: sync_id.clone(),
            part_prefix: run_id.to_string(),
            sequence: 0,
            run_id: run_id.clone(),
            skip_keys: HashSet::new(),
            accepted: None,
            accepted_corrections: 0,
            rejected: None,
            lease: LeaseWatch::default(),
            rejections: Vec::new(),
            interval: std::time::Duration::ZERO,
            batch_rows: settings.delivery_batch_rows,
            last: std::time::Instant::now(),
        }
    }

    /// Rows per batch read from the local file being delivered or settled.
    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Names the parts after `prefix` rather than the run: parts a later command commits for
    /// the run (`<run>-recovered-<by>`, `<run>-resolved-<by>`, `<run>-rebuild`).
    pub fn naming_parts(mut self, prefix: String) -> Self {
        self.part_prefix = prefix;
        self
    }

    /// [`Commit::checkpoint_if_due`] commits at most once per `interval`.
    pub fn committing_every(mut self, interval: std::time::Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sending stops once `lease` reports the sync lock lost.
    pub fn guarded_by(mut self, lease: &LeaseWatch) -> Self {
        self.lease = lease.clone();
        self
    }

    /// Rows with these keys are already committed and are not committed again.
    pub fn skipping(mut self, keys: HashSet<String>) -> Self {
        self.skip_keys = keys;
        self
    }

    /// Adds an outcome's rows to the open parts.
    pub async fn record(&mut self, outcome: &BatchOutcome) -> Result<()> {
        let context = format!("sync `{}`: committing", self.sync_id);
        let fresh: Vec<bool> = match self.skip_keys.is_empty() {
            true => vec![true; outcome.statuses.len()],
            false => {
                let keys = key_strings(&outcome.batch, &context)?;
                keys.iter().map(|k| !self.skip_keys.contains(k)).collect()
            }
        };
        let accepted_mask: BooleanArray = outcome
            .statuses
            .iter()
            .zip(&fresh)
            .map(|(s, fresh)| Some(*fresh && matches!(s, RowStatus::Accepted { .. })))
            .collect();
        let rejected_mask: BooleanArray = outcome
            .statuses
            .iter()
            .zip(&fresh)
            .map(|(s, fresh)| Some(*fresh && matches!(s, RowStatus::Rejected(_))))
            .collect();
        let rows = outcome.statuses.len();
        let run_ids: ArrayRef = Arc::new(StringArray::from(vec![self.run_id.as_str(); rows]));

        if accepted_mask.true_count() > 0 {
            let ids: ArrayRef = Arc::new(StringArray::from_iter(outcome.statuses.iter().map(|s| match s {
                RowStatus::Accepted { destination_id } => destination_id.as_deref(),
                RowStatus::Rejected(_) => None,
            })));
            let batch = extend(
                &with_values(&outcome.batch, &context)?,
                &[(DESTINATION_ID_COLUMN, ids), (RUN_ID_COLUMN, Arc::clone(&run_ids))],
                &context,
            )?;
            let batch = filter_record_batch(&batch, &accepted_mask).map_err(DinmoError::arrow(context.clone()))?;
            self.accepted_corrections += batch
                .column_by_name(CORRECTS_COLUMN)
                .map_or(0, |c| (c.len() - c.null_count()) as u64);
            // Rows without keys cannot be committed: nothing would keep them from being sent
            // again.
            let batch = batch
                .schema()
                .index_of(ROW_KEY_COLUMN)
                .and_then(|_| with_keys_as(batch, KeyEncoding::Binary))
                .map_err(DinmoError::arrow(context.clone()))?;
            let path = self
                .staging_dir
                .join(format!("{}.{}.snapshot.parquet", self.sync_id, self.part_prefix));
            write_lazily(&mut self.accepted, &path, &batch).await?;
        }
        if rejected_mask.true_count() > 0 {
            let mut codes = Vec::with_capacity(rows);
            let mut fields = Vec::with_capacity(rows);
            let mut messages = Vec::with_capacity(rows);
            for (status, fresh) in outcome.statuses.iter().zip(&fresh) {
                match status {
                    RowStatus::Rejected(r) => {
                        if *fresh {
                            tally(&mut self.rejections, r.code.as_str(), r.field.as_deref(), &r.message);
                        }
                        codes.push(Some(r.code.as_str().to_string()));
                        fields.push(r.field.clone());
                        messages.push(Some(r.message.clone()));
                    }
                    RowStatus::Accepted { .. } => {
                        codes.push(None);
                        fields.push(None);
                        messages.push(None);
                    }
                }
            }
            let batch = extend(
                &outcome.batch,
                &[
                    ("reject_code", Arc::new(StringArray::from(codes)) as ArrayRef),
                    ("reject_field", Arc::new(StringArray::from(fields))),
                    ("reject_message", Arc::new(StringArray::from(messages))),
                    (RUN_ID_COLUMN, run_ids),
                ],
                &context,
            )?;
            let batch = filter_record_batch(&batch, &rejected_mask).map_err(DinmoError::arrow(context))?;
            let path = self
                .staging_dir
                .join(format!("{}.{}.rejected.parquet", self.sync_id, self.part_prefix));
            write_lazily(&mut self.rejected, &path, &batch).await?;
        }
        Ok(())
    }

    /// The refusals committed since the last call, by reason (for the sync's report).
    pub fn take_rejections(&mut self) -> Vec<RejectionSummary> {
        std::mem::take(&mut self.rejections)
    }

    /// [`Commit::checkpoint`], unless the last one was less than the commit interval ago.
    pub async fn checkpoint_if_due(&mut self, manifest: &mut RunManifest) -> Result<()> {
        if self.last.elapsed() < self.interval {
            return Ok(());
        }
        self.checkpoint(manifest).await
    }

    /// Stores the open parts (the snapshot part first: it is what prevents a resend) and
    /// rewrites the manifest to name them.
    pub async fn checkpoint(&mut self, manifest: &mut RunManifest) -> Result<()> {
        self.last = std::time::Instant::now();
        let started = self.last;
        let mut stored = false;
        for (slot, folder) in [
            (self.accepted.take(), Folder::Snapshot),
            (self.rejected.take(), Folder::Rejected),
        ] {
            let Some(writer) = slot else { continue };
            let (local, rows) = writer.finish().await?;
            let relative = SyncPaths::of(&self.sync_id).part(folder, &self.part_prefix, self.sequence);
            let mut part = self.state.upload(&local, &relative, rows).await?;
            crash_point("part_stored");
            if folder == Folder::Snapshot {
                part.row_keys = KeyEncoding::Binary;
                part.value_version = crate::state::values::VALUE_VERSION;
                part.corrections = std::mem::take(&mut self.accepted_corrections);
                manifest.snapshot_parts.push(part);
            } else {
                manifest.rejected_parts.push(part);
            }
            stored = true;
        }
        if stored {
            self.sequence += 1;
            manifest.recount();
            self.state.write_manifest(manifest).await?;
            crash_point("checkpoint_committed");
            tracing::debug!(
                sync = %self.sync_id,
                accepted = manifest.counts.accepted,
                ms = started.elapsed().as_millis() as u64,
                "checkpoint committed"
            );
        }
        Ok(())
    }
}

/// The row keys of a batch, as strings.
fn key_strings(batch: &RecordBatch, context: &str) -> Result<Vec<String>> {
    let Some(keys) = batch.column_by_name(ROW_KEY_COLUMN) else {
        return Ok(vec![String::new(); batch.num_rows()]);
    };
    let keys = cast(keys, &DataType::Utf8).map_err(DinmoError::arrow(context))?;
    Ok(keys
        .as_string::<i32>()
        .iter()
        .map(|k| k.unwrap_or_default().to_string())
        .collect())
}

/// `batch` (rows as sent) with each row's value ([`VALUE_COLUMN`]) after its fields, unless
/// it carries them already (rows that correct another row carry the corrected row's value).
fn with_values(batch: &RecordBatch, context: &str) -> Result<RecordBatch> {
    if batch.column_by_name(VALUE_COLUMN).is_some() {
        return Ok(batch.clone());
    }
    let values = stored_value_hashes(batch).map_err(DinmoError::arrow(context))?;
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    fields.push(Field::new(VALUE_COLUMN, DataType::UInt64, false));
    columns.push(value_column(values));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DinmoError::arrow(context))
}

fn extend(batch: &RecordBatch, extra: &[(&str, ArrayRef)], context: &str) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    for (name, array) in extra {
        fields.push(Field::new(*name, DataType::Utf8, true));
        columns.push(Arc::clone(array));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DinmoError::arrow(context))
}

/// The row keys stored in parts (snapshot or rejected), for skipping them when replaying.
pub async fn keys_in_parts(state: &StateStore, parts: &[PartInfo]) -> Result<HashSet<String>> {
    let mut keys = HashSet::new();
    for part in parts {
        let context = format!("reading {}", state.url_of(&part.path));
        for batch in state.read_part(part).await? {
            keys.extend(key_strings(&batch, &context)?);
        }
    }
    Ok(keys)
}

/// Settles a run's manifest once every pending row of it is decided: recounts, records
/// `outcome` (`None`: the outcome the counts give) and `error`, stops naming the pending part, and writes it; only then removes the
/// pending file, which no manifest names any more. Used by a run that finished sending, by
/// recovery, and by `dinmo state resolve-pending`.
pub async fn settle_manifest(
    state: &StateStore,
    manifest: &mut RunManifest,
    outcome: Option<crate::state::Outcome>,
    error: Option<String>,
) -> Result<()> {
    manifest.recount();
    manifest.outcome = outcome.unwrap_or_else(|| manifest.settled_outcome());
    manifest.error = error;
    let pending = manifest.pending_part.take();
    manifest.finished_at = Some(dinmo_connectors::Timestamp::now());
    state.write_manifest(manifest).await?;
    crash_point("manifest_settled");
    if let Some(pending) = pending {
        state.delete(&pending.path).await?;
    }
    Ok(())
}
