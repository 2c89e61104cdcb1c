//! What a sync's snapshot says the destination holds, one line per record: the *expected
//! records* file `dinmo reconcile` compares with what the destination holds.
//!
//! A row of the model was delivered as one record; its corrections change that (the module
//! documentation of [`crate::sync::changes`] says how): a difference adds a record of its own,
//! an update in place or a value accepted by hand changes the record's values, a replacement
//! takes its place, a deletion leaves no record. Only the correcting rows are held in memory
//! (parts say how many they hold); the rows of the model stream through a batch at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use dinmo_connectors::{FieldRoles, ROW_KEY_COLUMN, RunId};
use futures::StreamExt;

use crate::error::{DinmoError, Result};
use crate::state::row_key::each_hash;
use crate::state::values::corrected_keys;
use crate::state::{DESTINATION_ID_COLUMN, LocalPartWriter, PartInfo, RunManifest, StateStore};
use crate::sync::changes::{CORRECTION_COLUMN, CorrectionKind, nanos_text};

/// The columns of the expected records file.
pub fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        text("record_key"),
        text("row_key"),
        text("record_id"),
        text("unique_key"),
        text("account"),
        text("unit"),
        text("day"),
        text("quantity"),
        text("destination_id"),
        text("run_id"),
    ]))
}

/// One record the destination should hold.
#[derive(Debug, Clone, Default)]
struct Record {
    /// The row key it was sent with (a correction's own key for a difference record).
    record_key: u128,
    record_id: Option<String>,
    unique_key: Option<String>,
    account: Option<String>,
    unit: Option<String>,
    day: Option<String>,
    quantity: Option<String>,
    destination_id: Option<String>,
    run: String,
}

/// How the destination's records are named by the ids dinmo recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordIds {
    /// A recorded id is the record's own id, unless it names an import (`import:<id>`).
    Records,
    /// A recorded id names the file or upload that carried the row, never a record.
    Carriers,
}

/// What [`write`] found.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Records written.
    pub records: u64,
    /// The earliest usage date among them (`YYYY-MM-DD`).
    pub first_day: Option<String>,
    /// The latest.
    pub last_day: Option<String>,
}

/// Writes the expected records of `manifests` (the runs reconciled; `corrections_from` every
/// run of the sync, for the corrections of their rows) to `path`.
pub async fn write(
    ctx: &SessionContext,
    state: &StateStore,
    manifests: &[RunManifest],
    corrections_from: &[RunManifest],
    roles: &FieldRoles,
    ids: RecordIds,
    path: &Path,
) -> Result<Expected> {
    let mut fixes: HashMap<u128, Vec<(String, CorrectionKind, Record)>> = HashMap::new();
    for manifest in corrections_from {
        for part in manifest.snapshot_parts.iter().filter(|p| p.corrections > 0) {
            let mut rows = PartRows::open(ctx, state, part, &manifest.run_id, roles, ids).await?;
            while let Some(batch) = rows.next().await? {
                for row in batch {
                    if let (Some(corrected), Some(kind)) = (row.corrects, row.kind) {
                        fixes
                            .entry(corrected)
                            .or_default()
                            .push((manifest.run_id.to_string(), kind, row.record));
                    }
                }
            }
        }
    }
    for list in fixes.values_mut() {
        // Stable: the corrections of one run keep the order they were committed in.
        list.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut writer = LocalPartWriter::create_temporary(path, schema()).await?;
    let mut found = Expected::default();
    for manifest in manifests {
        for part in &manifest.snapshot_parts {
            let mut rows = PartRows::open(ctx, state, part, &manifest.run_id, roles, ids).await?;
            while let Some(batch) = rows.next().await? {
                let mut lines: Vec<(u128, Record)> = Vec::with_capacity(batch.len());
                for row in batch.into_iter().filter(|row| row.corrects.is_none()) {
                    let key = row.record.record_key;
                    let mut records = vec![row.record];
                    for (_, kind, fix) in fixes.get(&key).into_iter().flatten() {
                        apply(&mut records, *kind, fix);
                    }
                    lines.extend(records.into_iter().map(|r| (key, r)));
                }
                if lines.is_empty() {
                    continue;
                }
                for (_, record) in &lines {
                    if let Some(day) = &record.day {
                        if found.first_day.as_ref().is_none_or(|d| day < d) {
                            found.first_day = Some(day.clone());
                        }
                        if found.last_day.as_ref().is_none_or(|d| day > d) {
                            found.last_day = Some(day.clone());
                        }
                    }
                }
                found.records += lines.len() as u64;
                writer.write(&batch_of(&lines)?).await?;
            }
        }
    }
    writer.finish().await?;
    Ok(found)
}

/// `records` (the row's records so far, the first the row as sent) after one correction.
fn apply(records: &mut Vec<Record>, kind: CorrectionKind, fix: &Record) {
    match kind {
        CorrectionKind::Difference => records.push(fix.clone()),
        CorrectionKind::Update | CorrectionKind::Accepted => {
            if let Some(first) = records.first_mut() {
                first.account = fix.account.clone();
                first.unit = fix.unit.clone();
                first.day = fix.day.clone();
                first.quantity = fix.quantity.clone();
            }
        }
        CorrectionKind::Replace => *records = vec![fix.clone()],
        CorrectionKind::Ignored => {}
        CorrectionKind::Deleted => records.clear(),
    }
}

/// One row of a snapshot part.
struct PartRow {
    record: Record,
    corrects: Option<u128>,
    kind: Option<CorrectionKind>,
}

/// The rows of one snapshot part, a batch at a time.
struct PartRows {
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    run: String,
    roles: FieldRoles,
    ids: RecordIds,
    context: String,
}

impl PartRows {
    async fn open(
        ctx: &SessionContext,
        state: &StateStore,
        part: &PartInfo,
        run: &RunId,
        roles: &FieldRoles,
        ids: RecordIds,
    ) -> Result<Self> {
        let url = state.url_of(&part.path);
        let context = format!("reading {url}");
        let frame = ctx
            .read_parquet(url.as_str(), ParquetReadOptions::default())
            .await
            .map_err(DinmoError::engine(&context))?;
        let stream = frame.execute_stream().await.map_err(DinmoError::engine(&context))?;
        Ok(PartRows {
            stream,
            run: run.to_string(),
            roles: *roles,
            ids,
            context,
        })
    }

    /// The rows of the next batch; `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<PartRow>>> {
        let context = self.context.as_str();
        let Some(batch) = self.stream.next().await else {
            return Ok(None);
        };
        let batch = batch.map_err(DinmoError::engine(context))?;
        let rows = batch.num_rows();
        let Some(keys) = batch.column_by_name(ROW_KEY_COLUMN) else {
            return Ok(Some(Vec::new()));
        };
        let mut hashes = Vec::with_capacity(rows);
        each_hash(keys, |h| hashes.push(h)).map_err(DinmoError::arrow(context))?;
        let corrects = corrected_keys(&batch).map_err(DinmoError::arrow(context))?;
        let text = |name: &str| -> Result<Vec<Option<String>>> { texts(batch.column_by_name(name), rows, context) };
        let kinds = text(CORRECTION_COLUMN)?;
        let destination_ids = text(DESTINATION_ID_COLUMN)?;
        let accounts = text(self.roles.account)?;
        let units = text(self.roles.unit)?;
        let starts = text(self.roles.start)?;
        let unique_keys = text("UniqueKey")?;
        let quantities = quantities(batch.column_by_name(self.roles.quantity), rows, context)?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let Some(key) = hashes[row] else { continue };
            let destination_id = destination_ids[row].clone();
            let record_id = match self.ids {
                RecordIds::Records => destination_id.clone().filter(|id| !id.starts_with("import:")),
                RecordIds::Carriers => None,
            };
            out.push(PartRow {
                record: Record {
                    record_key: key,
                    record_id,
                    unique_key: unique_keys[row].clone().or_else(|| Some(format!("{key:032x}"))),
                    account: accounts[row].clone(),
                    unit: units[row].clone(),
                    day: starts[row].as_deref().and_then(|s| s.get(..10)).map(str::to_string),
                    quantity: quantities[row].clone(),
                    destination_id,
                    run: self.run.clone(),
                },
                corrects: corrects[row],
                kind: kinds[row].as_deref().and_then(CorrectionKind::parse),
            });
        }
        Ok(Some(out))
    }
}

/// Each value of `column` as text (all `None` when the part has no such column).
fn texts(column: Option<&ArrayRef>, rows: usize, context: &str) -> Result<Vec<Option<String>>> {
    let Some(column) = column else {
        return Ok(vec![None; rows]);
    };
    let text = cast(column, &DataType::Utf8).map_err(DinmoError::arrow(context))?;
    Ok(text.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect())
}

/// Each quantity of `column` as plain decimal text without trailing zeros.
fn quantities(column: Option<&ArrayRef>, rows: usize, context: &str) -> Result<Vec<Option<String>>> {
    let Some(column) = column else {
        return Ok(vec![None; rows]);
    };
    let decimals = cast(column, &DataType::Decimal128(38, 9)).map_err(DinmoError::arrow(context))?;
    let decimals = decimals.as_primitive::<Decimal128Type>();
    Ok((0..rows)
        .map(|row| decimals.is_valid(row).then(|| nanos_text(decimals.value(row))))
        .collect())
}

fn batch_of(lines: &[(u128, Record)]) -> Result<RecordBatch> {
    let column = |f: &dyn Fn(&(u128, Record)) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(lines.iter().map(f)))
    };
    RecordBatch::try_new(
        schema(),
        vec![
            column(&|(_, r)| Some(format!("{:032x}", r.record_key))),
            column(&|(row, _)| Some(format!("{row:032x}"))),
            column(&|(_, r)| r.record_id.clone()),
            column(&|(_, r)| r.unique_key.clone()),
            column(&|(_, r)| r.account.clone()),
            column(&|(_, r)| r.unit.clone()),
            column(&|(_, r)| r.day.clone()),
            column(&|(_, r)| r.quantity.clone()),
            column(&|(_, r)| r.destination_id.clone()),
            column(&|(_, r)| Some(r.run.clone())),
        ],
    )
    .map_err(DinmoError::arrow("writing the expected records"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: u128, id: &str, quantity: &str) -> Record {
        Record {
            record_key: key,
            record_id: Some(id.into()),
            account: Some("A-1".into()),
            unit: Some("GB".into()),
            day: Some("2026-01-05".into()),
            quantity: Some(quantity.into()),
            ..Record::default()
        }
    }

    #[test]
    fn corrections_fold_into_the_records_the_destination_holds() {
        let sent = record(1, "r1", "10");
        // A difference adds a record of its own; an update changes the first record's values.
        let mut records = vec![sent.clone()];
        apply(&mut records, CorrectionKind::Difference, &record(2, "r2", "5"));
        apply(&mut records, CorrectionKind::Update, &record(3, "ignored", "12"));
        let held: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.record_id.as_deref().unwrap(), r.quantity.as_deref().unwrap()))
            .collect();
        assert_eq!(held, vec![("r1", "12"), ("r2", "5")]);
        // A replacement takes every record's place; an ignored change leaves them; a deletion
        // leaves none.
        apply(&mut records, CorrectionKind::Replace, &record(4, "r4", "7"));
        apply(&mut records, CorrectionKind::Ignored, &record(5, "x", "99"));
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].record_key, records[0].quantity.as_deref()), (4, Some("7")));
        apply(&mut records, CorrectionKind::Deleted, &record(6, "x", "0"));
        assert!(records.is_empty());
    }
}
