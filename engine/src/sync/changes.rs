//! Rows synced earlier whose values changed since: what the destination holds for each (its
//! values *before*, as far as dinmo sent them), what the model says now (*after*), and what
//! the difference adds up to.
//!
//! The diff finds the changed rows and writes their new values to a local file; here each
//! gets its values before, from the last run's held rows when it was held then, otherwise from
//! the sync's history: the row as first sent, then every correction of it in the order of the
//! runs (a difference record adds its quantity; an update in place, or a value accepted by
//! hand, replaces the values; an ignored change leaves them). The result is the *changes
//! file*: the fields after, `before_<field>` as text, the row key, the row's value, why it is
//! held and since when — what a run stores as its held part.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use dinmo_connectors::{FieldRoles, ROW_KEY_COLUMN, RunId};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::{DinmoError, Result};
use crate::state::row_key::{each_hash, hex_keys, normalise_decimal};
use crate::state::values::{VALUE_COLUMN, corrected_keys, is_engine_column, stored_value_hashes, value_column};
use crate::state::{
    DESTINATION_ID_COLUMN, LocalPartWriter, PartInfo, READ_CONCURRENCY, RunManifest, StateStore, read_all,
};

/// Column of the changes file and held parts: why the row is held.
pub const REASON_COLUMN: &str = "_dinmo_reason";
/// Column of the changes file and held parts: the run that first held the row.
pub const HELD_SINCE_COLUMN: &str = "_dinmo_held_since";
/// Column of correcting rows in snapshot parts: how the row was corrected
/// ([`CorrectionKind`]).
pub const CORRECTION_COLUMN: &str = "_dinmo_correction";
/// Prefix of the columns holding a changed row's values before.
pub const BEFORE_PREFIX: &str = "before_";

/// How a correcting row changed what the destination holds for the row it corrects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrectionKind {
    /// A usage record for the difference in quantity was sent: the quantity held grows by it.
    Difference,
    /// The record was updated in place: it holds the new values.
    Update,
    /// The record was deleted and the new values sent as a record of their own.
    Replace,
    /// A person said the destination holds the new values (corrected by hand).
    Accepted,
    /// A person chose to leave the destination as it is.
    Ignored,
    /// The row is gone from the model and its record was deleted (or was gone already): the
    /// key leaves the snapshot.
    Deleted,
}

impl CorrectionKind {
    /// The name stored in [`CORRECTION_COLUMN`].
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionKind::Difference => "difference",
            CorrectionKind::Update => "update",
            CorrectionKind::Replace => "replace",
            CorrectionKind::Accepted => "accepted",
            CorrectionKind::Ignored => "ignored",
            CorrectionKind::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "difference" => CorrectionKind::Difference,
            "update" => CorrectionKind::Update,
            "replace" => CorrectionKind::Replace,
            "accepted" => CorrectionKind::Accepted,
            "ignored" => CorrectionKind::Ignored,
            "deleted" => CorrectionKind::Deleted,
            _ => return None,
        })
    }
}

/// A quantity as billionths, exact for the decimals usage carries (Zuora keeps at most 9
/// decimal places).
pub type Nanos = i128;

const NANOS: i128 = 1_000_000_000;

/// `nanos` as plain decimal text without trailing zeros.
pub fn nanos_text(nanos: Nanos) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let text = format!("{sign}{}.{:09}", abs / NANOS as u128, abs % NANOS as u128);
    normalise_decimal(&text)
}

/// Each value of `array` as text for people, numbers without trailing zeros (so `12`, `12.0`
/// and `12.000` read the same), and, for numbers, in billionths too.
fn texts(array: &ArrayRef) -> (Vec<Option<String>>, Vec<Option<Nanos>>) {
    let numeric = array.data_type().is_numeric();
    if numeric && let Ok(decimals) = cast(array, &DataType::Decimal128(38, 9)) {
        let decimals = decimals.as_primitive::<Decimal128Type>();
        let nanos: Vec<Option<Nanos>> = decimals.iter().collect();
        // A value too large for 38 digits casts to null: it keeps its own text.
        let fallback = cast(array, &DataType::Utf8).ok();
        let texts = nanos
            .iter()
            .enumerate()
            .map(|(row, n)| match n {
                Some(n) => Some(nanos_text(*n)),
                None => fallback.as_ref().and_then(|f| {
                    f.as_string_opt::<i32>()
                        .and_then(|f| f.is_valid(row).then(|| f.value(row).to_string()))
                }),
            })
            .collect();
        return (texts, nanos);
    }
    let text: Vec<Option<String>> = match cast(array, &DataType::Utf8) {
        Ok(text) => text.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect(),
        Err(_) => (0..array.len())
            .map(|row| {
                arrow::util::display::array_value_to_string(array, row)
                    .ok()
                    .filter(|_| array.is_valid(row))
            })
            .collect(),
    };
    (text, vec![None; array.len()])
}

/// The quantity in row `row` of `column`, exactly (`None` when null or not a number).
pub fn quantity_at(column: &ArrayRef, row: usize) -> Option<Nanos> {
    let (_, nanos) = texts(&column.slice(row, 1));
    nanos.into_iter().next().flatten()
}

/// One row's values as the destination holds them, as far as dinmo knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    /// Field → value as text.
    pub fields: BTreeMap<String, Option<String>>,
    /// The quantity, exactly.
    pub quantity: Option<Nanos>,
    /// The destination ids of the records carrying it: the row as first delivered, then every
    /// difference record (an update in place keeps its record).
    pub records: Vec<String>,
    /// Corrections of it so far (each has a row key of its own, numbered from 1).
    pub corrections: u32,
}

/// The rows of `batch` (stored rows: fields and dinmo's columns) as [`Held`] values, by row.
fn held_values(batch: &RecordBatch, quantity_field: &str) -> Vec<Held> {
    let mut rows = vec![Held::default(); batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if is_engine_column(field.name()) {
            continue;
        }
        let (texts, nanos) = texts(column);
        for (row, (text, nanos)) in rows.iter_mut().zip(texts.into_iter().zip(nanos)) {
            row.fields.insert(field.name().clone(), text);
            if field.name() == quantity_field {
                row.quantity = nanos;
            }
        }
    }
    rows
}

/// A correction of a row, as its history records it.
#[derive(Debug, Clone)]
struct Correction {
    run: RunId,
    kind: CorrectionKind,
    values: Held,
}

/// What the history of the rows with keys `wanted` says the destination holds for each (see
/// the module's documentation). A key without a row sent in any part is left out.
pub async fn history(
    state: &StateStore,
    manifests: &[RunManifest],
    wanted: &HashSet<u128>,
    quantity_field: &str,
) -> Result<HashMap<u128, Held>> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let wanted = Arc::new(wanted.clone());
    let parts: Vec<(RunId, PartInfo)> = manifests
        .iter()
        .flat_map(|m| m.snapshot_parts.iter().map(move |p| (m.run_id.clone(), p.clone())))
        .collect();
    let found: Vec<Scanned> = futures::stream::iter(parts.into_iter().map(|(run, part)| {
        let wanted = Arc::clone(&wanted);
        let quantity_field = quantity_field.to_string();
        async move {
            let bytes = state.read(&part.path).await?;
            let context = format!("reading {}", state.url_of(&part.path));
            tokio::task::spawn_blocking(move || scan_part(bytes, &wanted, &quantity_field, run, &context))
                .await
                .map_err(|source| DinmoError::Interrupted {
                    task: "reading the history of changed rows".into(),
                    source,
                })?
        }
    }))
    .buffered(READ_CONCURRENCY)
    .try_collect()
    .await?;
    let mut held: HashMap<u128, Held> = HashMap::new();
    let mut corrections: HashMap<u128, Vec<Correction>> = HashMap::new();
    for (rows, fixes) in found {
        held.extend(rows);
        for (key, correction) in fixes {
            corrections.entry(key).or_default().push(correction);
        }
    }
    for (key, mut fixes) in corrections {
        let Some(values) = held.get_mut(&key) else { continue };
        // Stable: corrections of one run keep the order they were committed in.
        fixes.sort_by(|a, b| a.run.cmp(&b.run));
        for fix in fixes {
            apply(values, &fix, quantity_field);
        }
    }
    Ok(held)
}

/// `values` after `fix`.
fn apply(values: &mut Held, fix: &Correction, quantity_field: &str) {
    match fix.kind {
        // A difference is sent only when nothing but the quantity changed (its own
        // Description says what it corrects): the other fields stay as they were.
        CorrectionKind::Difference => {
            let quantity = values.quantity.zip(fix.values.quantity).map(|(a, b)| a + b);
            values.quantity = quantity;
            values
                .fields
                .insert(quantity_field.to_string(), quantity.map(nanos_text));
            values.records.extend(fix.values.records.iter().cloned());
        }
        CorrectionKind::Update | CorrectionKind::Accepted | CorrectionKind::Replace => {
            values.fields = fix.values.fields.clone();
            values.quantity = fix.values.quantity;
            // A replacement's record is the one that holds the row now.
            if fix.kind == CorrectionKind::Replace {
                values.records = fix.values.records.clone();
            }
        }
        CorrectionKind::Ignored => {}
        // The destination holds nothing for it any more.
        CorrectionKind::Deleted => {
            values.quantity = Some(0);
            values.fields.insert(quantity_field.to_string(), Some("0".into()));
            values.records.clear();
        }
    }
    values.corrections += 1;
}

type Scanned = (Vec<(u128, Held)>, Vec<(u128, Correction)>);

/// The rows of one part whose key (or, for a correcting row, whose corrected key) is wanted.
fn scan_part(
    bytes: bytes::Bytes,
    wanted: &HashSet<u128>,
    quantity_field: &str,
    run: RunId,
    context: &str,
) -> Result<Scanned> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(DinmoError::parquet(context))?
        .build()
        .map_err(DinmoError::parquet(context))?;
    let mut rows = Vec::new();
    let mut fixes = Vec::new();
    for batch in reader {
        let batch = batch.map_err(DinmoError::arrow(context))?;
        let Some(keys) = batch.column_by_name(ROW_KEY_COLUMN) else {
            continue;
        };
        let mut hashes = Vec::with_capacity(batch.num_rows());
        each_hash(keys, |h| hashes.push(h)).map_err(DinmoError::arrow(context))?;
        let corrects = corrected_keys(&batch).map_err(DinmoError::arrow(context))?;
        let interesting: Vec<usize> = (0..batch.num_rows())
            .filter(|&row| match corrects[row] {
                Some(corrected) => wanted.contains(&corrected),
                None => hashes[row].is_some_and(|h| wanted.contains(&h)),
            })
            .collect();
        if interesting.is_empty() {
            continue;
        }
        let kinds = batch
            .column_by_name(CORRECTION_COLUMN)
            .and_then(|c| cast(c, &DataType::Utf8).ok());
        let indices = arrow::array::UInt32Array::from_iter_values(interesting.iter().map(|&r| r as u32));
        let picked = arrow::compute::take_record_batch(&batch, &indices).map_err(DinmoError::arrow(context))?;
        let mut values = held_values(&picked, quantity_field);
        if let Some(ids) = picked
            .column_by_name(DESTINATION_ID_COLUMN)
            .and_then(|c| cast(c, &DataType::Utf8).ok())
        {
            let ids = ids.as_string::<i32>();
            for (row, held) in values.iter_mut().enumerate() {
                if ids.is_valid(row) {
                    held.records.push(ids.value(row).to_string());
                }
            }
        }
        for (&row, values) in interesting.iter().zip(values) {
            match corrects[row] {
                Some(corrected) => {
                    let kind = kinds
                        .as_ref()
                        .and_then(|k| k.as_string_opt::<i32>())
                        .filter(|k| k.is_valid(row))
                        .and_then(|k| CorrectionKind::parse(k.value(row)))
                        .ok_or_else(|| DinmoError::Arrow {
                            context: context.to_string(),
                            source: arrow::error::ArrowError::InvalidArgumentError(format!(
                                "a correcting row has no valid `{CORRECTION_COLUMN}`"
                            )),
                        })?;
                    fixes.push((
                        corrected,
                        Correction {
                            run: run.clone(),
                            kind,
                            values,
                        },
                    ));
                }
                None => {
                    if let Some(key) = hashes[row] {
                        rows.push((key, values));
                    }
                }
            }
        }
    }
    Ok((rows, fixes))
}

/// Where the rows carried by one record each stand in `destination` now, by their index in
/// `rows` (each row's key and what the state says the destination holds for it): a row with
/// no history, or carried by several records, is not looked up. `doing` names the policy, for
/// errors.
pub async fn locate_single_records<'a>(
    destination: &dyn dinmo_connectors::Destination,
    rows: impl Iterator<Item = (u128, Option<&'a Held>)>,
    doing: &str,
) -> Result<BTreeMap<usize, dinmo_connectors::Located>> {
    let lookups: Vec<(usize, dinmo_connectors::Locate)> = rows
        .enumerate()
        .filter_map(|(i, (key, before))| {
            let before = before?;
            (before.records.len() == 1).then(|| {
                (
                    i,
                    dinmo_connectors::Locate {
                        destination_ids: before.records.clone(),
                        row_key: format!("{key:032x}"),
                    },
                )
            })
        })
        .collect();
    if lookups.is_empty() {
        return Ok(BTreeMap::new());
    }
    let asked: Vec<dinmo_connectors::Locate> = lookups.iter().map(|(_, l)| l.clone()).collect();
    let answers = destination
        .locate(&asked)
        .await
        .map_err(|source| DinmoError::Destination {
            sync: doing.into(),
            source: Box::new(source),
        })?;
    Ok(lookups.into_iter().map(|(i, _)| i).zip(answers).collect())
}

/// A changed row's field that differs, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The destination field.
    pub field: String,
    /// Its value as sent (`null`: unknown, or empty).
    pub before: Option<String>,
    /// Its value now.
    pub after: Option<String>,
}

/// A row as people recognise it in a report: its key, account, unit of measure and usage
/// start. Reports list rows in the order people look for them: by account, unit and start,
/// the key breaking ties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowLabel {
    /// The row key.
    pub key: String,
    /// Its account, unit of measure and usage start.
    pub account: Option<String>,
    pub unit: Option<String>,
    pub start: Option<String>,
}

impl RowLabel {
    /// The label of the row with key `key` and `values` (when known).
    pub fn of(key: u128, values: Option<&Held>, roles: &FieldRoles) -> Self {
        let field = |name: &str| values.and_then(|v| v.fields.get(name).cloned().flatten());
        RowLabel {
            key: format!("{key:032x}"),
            account: field(roles.account),
            unit: field(roles.unit),
            start: field(roles.start),
        }
    }

    /// The order rows are listed in.
    pub fn order(&self, other: &Self) -> std::cmp::Ordering {
        (&self.account, &self.unit, &self.start, &self.key).cmp(&(
            &other.account,
            &other.unit,
            &other.start,
            &other.key,
        ))
    }
}

/// One changed row, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSample {
    /// Which row.
    #[serde(flatten)]
    pub row: RowLabel,
    /// The fields that differ.
    pub changes: Vec<FieldChange>,
    /// Why it is held, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The quantity difference of the changed rows of one account and unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeTotal {
    /// The account.
    pub account: String,
    /// The unit of measure.
    pub unit: String,
    /// Changed rows.
    pub rows: u64,
    /// Quantity sent for them.
    pub before: String,
    /// Quantity the model says now.
    pub after: String,
    /// `after - before`: positive is usage not billed yet, negative usage billed too much.
    pub difference: String,
}

/// What a sync's changed rows add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// The destination fields summarised: account, unit, quantity, start.
    pub fields: [String; 4],
    /// Total quantity difference, `after - before`, over the rows whose both quantities are
    /// known.
    pub quantity_difference: String,
    /// By account and unit, ordered by account then unit.
    pub by_account_unit: Vec<ChangeTotal>,
    /// Rows held, by reason.
    pub reasons: BTreeMap<String, u64>,
    /// The first rows by key, with what changed.
    pub sample: Vec<ChangeSample>,
}

/// A sync's changed rows, described.
#[derive(Debug)]
pub struct ChangeSet {
    /// The changes file (see the module's documentation).
    pub file: PathBuf,
    /// Rows in it.
    pub rows: u64,
    /// Rows the last run did not hold already.
    pub newly: u64,
    /// Their summary.
    pub summary: ChangeSummary,
}

/// Where one changed row stands.
#[derive(Debug, Clone)]
pub struct ChangedRow {
    /// Its key.
    pub key: u128,
    /// The values the destination holds for it, when known.
    pub before: Option<Held>,
    /// Its values now.
    pub after: Held,
    /// The run that first held it (this one when new).
    pub held_since: RunId,
}

/// What describing a sync's changed rows needs: where its history is, who is asking.
#[derive(Debug)]
pub struct Describing<'a> {
    /// The state.
    pub state: &'a StateStore,
    /// The sync's manifests, oldest first.
    pub manifests: &'a [RunManifest],
    /// The destination's account, unit, quantity and start fields.
    pub roles: FieldRoles,
    /// The run describing them.
    pub run: &'a RunId,
    /// Whether the values before of rows the last run held are taken from its held part
    /// (holding only reads them); otherwise every row's history is read (correcting needs
    /// its records and the number of its corrections).
    pub reuse_held: bool,
    /// Rows listed in the summary.
    pub sample: usize,
}

impl Describing<'_> {
    /// Describes the changed rows in `changed` (a diff's changed file): finds their values
    /// before and writes the changes file at `out`, every row with the reason `reason` (a
    /// caller that corrects some rows rewrites it, [`rewrite_reasons`]).
    pub async fn describe(&self, changed: &Path, out: &Path, reason: &str) -> Result<(ChangeSet, Vec<ChangedRow>)> {
        let (state, manifests, roles, run) = (self.state, self.manifests, &self.roles, self.run);
        let context = format!("reading the changed rows in {}", changed.display());
        let batches = read_all(changed).await?;
        let mut keys = Vec::new();
        let mut after = Vec::new();
        for batch in &batches {
            if let Some(column) = batch.column_by_name(ROW_KEY_COLUMN) {
                each_hash(column, |h| keys.push(h.unwrap_or_default())).map_err(DinmoError::arrow(context.clone()))?;
            }
            after.extend(held_values(batch, roles.quantity));
        }
        // The last run's held rows: since when they are held, and (when reused) their values
        // before.
        let mut prior: HashMap<u128, (Held, RunId)> = HashMap::new();
        if let Some(part) = manifests.last().and_then(|m| m.held_part.as_ref()) {
            for batch in state.read_part(part).await? {
                for (key, values, since) in read_held(&batch, roles.quantity)? {
                    prior.insert(key, (values, since));
                }
            }
        }
        let missing: HashSet<u128> = keys
            .iter()
            .copied()
            .filter(|k| !(self.reuse_held && prior.contains_key(k)))
            .collect();
        let mut known = history(state, manifests, &missing, roles.quantity).await?;
        let rows: Vec<ChangedRow> = keys
            .iter()
            .zip(after)
            .map(|(&key, after)| {
                let since = prior.get(&key).map(|(_, since)| since.clone());
                let before = match known.remove(&key) {
                    Some(before) => Some(before),
                    None if self.reuse_held => prior.get(&key).map(|(before, _)| before.clone()),
                    None => None,
                };
                ChangedRow {
                    key,
                    before,
                    after,
                    held_since: since.unwrap_or_else(|| run.clone()),
                }
            })
            .collect();
        let newly = rows.iter().filter(|r| &r.held_since == run).count() as u64;
        let reasons = vec![reason.to_string(); rows.len()];
        let summary = summarise(&rows, &reasons, roles, self.sample);
        write_changes(&batches, &rows, &reasons, out).await?;
        Ok((
            ChangeSet {
                file: out.to_path_buf(),
                rows: rows.len() as u64,
                newly,
                summary,
            },
            rows,
        ))
    }

    /// The summary of `rows` with their reasons (`None`: not held, corrected).
    pub fn summary(&self, rows: &[ChangedRow], reasons: &[Option<String>]) -> ChangeSummary {
        let reasons: Vec<String> = reasons
            .iter()
            .map(|r| r.clone().unwrap_or_else(|| "corrected".to_string()))
            .collect();
        summarise(rows, &reasons, &self.roles, self.sample)
    }
}

/// Rewrites a changes file's reasons (`reasons[i]` for its `i`-th row); `None` leaves a row
/// out (it is not held).
pub async fn rewrite_reasons(file: &Path, reasons: &[Option<String>]) -> Result<u64> {
    let context = format!("rewriting {}", file.display());
    let batches = read_all(file).await?;
    let tmp = file.with_extension("rewrite.parquet");
    let mut writer: Option<LocalPartWriter> = None;
    let mut offset = 0;
    for batch in batches {
        let rows = batch.num_rows();
        let mine = &reasons[offset..offset + rows];
        offset += rows;
        let keep: arrow::array::BooleanArray = mine.iter().map(|r| Some(r.is_some())).collect();
        let index = batch
            .schema()
            .index_of(REASON_COLUMN)
            .map_err(DinmoError::arrow(context.clone()))?;
        let mut columns = batch.columns().to_vec();
        columns[index] = Arc::new(StringArray::from(mine.to_vec()));
        let batch = RecordBatch::try_new(batch.schema(), columns).map_err(DinmoError::arrow(context.clone()))?;
        let kept = arrow::compute::filter_record_batch(&batch, &keep).map_err(DinmoError::arrow(context.clone()))?;
        crate::state::write_lazily(&mut writer, &tmp, &kept).await?;
    }
    let written = match writer {
        Some(writer) => writer.finish().await?.1,
        None => 0,
    };
    if written > 0 {
        tokio::fs::rename(&tmp, file).await.map_err(DinmoError::io(file))?;
    } else {
        let _ = tokio::fs::remove_file(file).await;
    }
    Ok(written)
}

/// The rows of a held part (or changes file): key, values before, and since when.
pub fn read_held(batch: &RecordBatch, quantity_field: &str) -> Result<Vec<(u128, Held, RunId)>> {
    let schema = batch.schema();
    let mut before = vec![Held::default(); batch.num_rows()];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let Some(name) = field.name().strip_prefix(BEFORE_PREFIX) else {
            continue;
        };
        let (texts, nanos) = texts(column);
        for (row, (text, nanos)) in before.iter_mut().zip(texts.into_iter().zip(nanos)) {
            if name == quantity_field {
                row.quantity = text.as_deref().and_then(parse_nanos).or(nanos);
            }
            row.fields.insert(name.to_string(), text);
        }
    }
    let mut keys = Vec::new();
    if let Some(column) = batch.column_by_name(ROW_KEY_COLUMN) {
        each_hash(column, |h| keys.push(h.unwrap_or_default())).map_err(DinmoError::arrow("reading a held part"))?;
    }
    let since = batch
        .column_by_name(HELD_SINCE_COLUMN)
        .and_then(|c| c.as_string_opt::<i32>().cloned());
    Ok(keys
        .into_iter()
        .zip(before)
        .enumerate()
        .map(|(row, (key, held))| {
            let run = since
                .as_ref()
                .filter(|s| s.is_valid(row))
                .map(|s| RunId::from(s.value(row).to_string()))
                .unwrap_or_default();
            (key, held, run)
        })
        .collect())
}

/// Decimal text as billionths (more than 9 decimal places are cut), with or without an
/// exponent (`1.5E2`, as a JSON number may be written); `None` for anything else.
pub fn parse_nanos(text: &str) -> Option<Nanos> {
    let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
        return parse_plain_nanos(text);
    };
    let exponent: i32 = exponent.strip_prefix('+').unwrap_or(exponent).parse().ok()?;
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all = format!("{int}{frac}");
    // The decimal point moves `exponent` places from after the integer digits.
    let point = i32::try_from(int.len()).ok()?.checked_add(exponent)?;
    let shifted = if point <= 0 {
        format!("{sign}0.{}{all}", "0".repeat(usize::try_from(-point).ok()?.min(64)))
    } else if point as usize >= all.len() {
        format!("{sign}{all}{}", "0".repeat((point as usize - all.len()).min(64)))
    } else {
        format!("{sign}{}.{}", &all[..point as usize], &all[point as usize..])
    };
    parse_plain_nanos(&shifted)
}

fn parse_plain_nanos(text: &str) -> Option<Nanos> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_digits: String = frac.chars().take(9).collect();
    if !frac_digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while frac_digits.len() < 9 {
        frac_digits.push('0');
    }
    let frac: i128 = frac_digits.parse().ok()?;
    Some(sign * (int.checked_mul(NANOS)? + frac))
}

fn summarise(rows: &[ChangedRow], reasons: &[String], roles: &FieldRoles, sample: usize) -> ChangeSummary {
    let field = |held: &Held, name: &str| held.fields.get(name).cloned().flatten();
    let mut total: Nanos = 0;
    let mut groups: BTreeMap<(String, String), (u64, Nanos, Nanos)> = BTreeMap::new();
    for row in rows {
        let account = field(&row.after, roles.account).unwrap_or_default();
        let unit = field(&row.after, roles.unit).unwrap_or_default();
        let before = row.before.as_ref().and_then(|b| b.quantity);
        let group = groups.entry((account, unit)).or_default();
        group.0 += 1;
        if let (Some(before), Some(after)) = (before, row.after.quantity) {
            total += after - before;
            group.1 += before;
            group.2 += after;
        }
    }
    let mut reasons_count = BTreeMap::new();
    for reason in reasons {
        *reasons_count.entry(reason.clone()).or_insert(0) += 1;
    }
    let mut ordered: Vec<(usize, RowLabel)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i, RowLabel::of(r.key, Some(&r.after), roles)))
        .collect();
    ordered.sort_by(|a, b| a.1.order(&b.1));
    let sample = ordered
        .into_iter()
        .take(sample)
        .map(|(i, label)| {
            let row = &rows[i];
            let changes = row
                .after
                .fields
                .iter()
                .filter_map(|(name, after)| {
                    let before = row.before.as_ref().map(|b| field(b, name));
                    match before {
                        Some(before) if &before == after => None,
                        before => Some(FieldChange {
                            field: name.clone(),
                            before: before.flatten(),
                            after: after.clone(),
                        }),
                    }
                })
                .collect();
            ChangeSample {
                row: label,
                changes,
                reason: Some(reasons[i].clone()),
            }
        })
        .collect();
    ChangeSummary {
        fields: [roles.account, roles.unit, roles.quantity, roles.start].map(String::from),
        quantity_difference: nanos_text(total),
        by_account_unit: groups
            .into_iter()
            .map(|((account, unit), (rows, before, after))| ChangeTotal {
                account,
                unit,
                rows,
                before: nanos_text(before),
                after: nanos_text(after),
                difference: nanos_text(after - before),
            })
            .collect(),
        reasons: reasons_count,
        sample,
    }
}

/// Writes the changes file: the changed rows' fields after (as the model gives them), their
/// values before as text, key, value, reason and since when.
async fn write_changes(batches: &[RecordBatch], rows: &[ChangedRow], reasons: &[String], out: &Path) -> Result<()> {
    let context = format!("writing {}", out.display());
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let after_fields: Vec<Field> = first
        .schema()
        .fields()
        .iter()
        .filter(|f| !is_engine_column(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    let mut fields = after_fields.clone();
    for field in &after_fields {
        fields.push(Field::new(
            format!("{BEFORE_PREFIX}{}", field.name()),
            DataType::Utf8,
            true,
        ));
    }
    fields.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(VALUE_COLUMN, DataType::UInt64, false));
    fields.push(Field::new(REASON_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(HELD_SINCE_COLUMN, DataType::Utf8, false));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut writer = LocalPartWriter::create_pending(out, Arc::clone(&schema)).await?;
    let mut offset = 0;
    for batch in batches {
        let n = batch.num_rows();
        let mine = &rows[offset..offset + n];
        let why = &reasons[offset..offset + n];
        offset += n;
        let mut columns: Vec<ArrayRef> = after_fields
            .iter()
            .map(|f| batch.column_by_name(f.name()).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| DinmoError::Arrow {
                context: context.clone(),
                source: arrow::error::ArrowError::SchemaError("the changed rows' batches differ".into()),
            })?;
        for field in &after_fields {
            let before: StringArray = mine
                .iter()
                .map(|r| {
                    r.before
                        .as_ref()
                        .and_then(|b| b.fields.get(field.name()).cloned().flatten())
                })
                .collect();
            columns.push(Arc::new(before));
        }
        let keys: Vec<u128> = mine.iter().map(|r| r.key).collect();
        columns.push(hex_keys(&keys).map_err(DinmoError::arrow(context.clone()))?);
        columns.push(value_column(
            stored_value_hashes(batch).map_err(DinmoError::arrow(context.clone()))?,
        ));
        columns.push(Arc::new(StringArray::from_iter_values(why.iter())));
        columns.push(Arc::new(StringArray::from_iter_values(
            mine.iter().map(|r| r.held_since.to_string()),
        )));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(DinmoError::arrow(context.clone()))?;
        writer.write(&batch).await?;
    }
    writer.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_and_print_exactly() {
        assert_eq!(parse_nanos("12"), Some(12 * NANOS));
        assert_eq!(parse_nanos("-0.5"), Some(-NANOS / 2));
        assert_eq!(parse_nanos("1.000000001"), Some(NANOS + 1));
        assert_eq!(parse_nanos("x"), None);
        assert_eq!(parse_nanos("1.5E2"), Some(150 * NANOS));
        assert_eq!(parse_nanos("1.25e-1"), Some(NANOS / 8));
        assert_eq!(parse_nanos("-2E+0"), Some(-2 * NANOS));
        assert_eq!(parse_nanos("12e"), None);
        assert_eq!(parse_nanos("1.2.3"), None);
        assert_eq!(nanos_text(12 * NANOS), "12");
        assert_eq!(nanos_text(-NANOS / 2), "-0.5");
        assert_eq!(nanos_text(0), "0");
    }

    #[test]
    fn a_difference_adds_its_quantity_and_an_update_replaces_the_values() {
        let held = |q: i128| Held {
            fields: BTreeMap::from([("Quantity".to_string(), Some(nanos_text(q * NANOS)))]),
            quantity: Some(q * NANOS),
            ..Held::default()
        };
        let mut values = held(10);
        let fix = |kind, q| Correction {
            run: RunId::from("r".to_string()),
            kind,
            values: held(q),
        };
        let quantity = |h: &Held| (h.quantity, h.fields["Quantity"].clone());
        apply(&mut values, &fix(CorrectionKind::Difference, 4), "Quantity");
        assert_eq!(quantity(&values), quantity(&held(14)));
        apply(&mut values, &fix(CorrectionKind::Ignored, 99), "Quantity");
        assert_eq!(quantity(&values), quantity(&held(14)));
        apply(&mut values, &fix(CorrectionKind::Update, 11), "Quantity");
        assert_eq!(quantity(&values), quantity(&held(11)));
        apply(&mut values, &fix(CorrectionKind::Accepted, 12), "Quantity");
        assert_eq!(quantity(&values), quantity(&held(12)));
        assert_eq!(values.corrections, 4, "each correction is numbered");
    }
}
