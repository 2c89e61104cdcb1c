//! Rows synced earlier whose key the model no longer produces (*gone*): what they were sent
//! as, for reports, and, under `on_delete: rollback_pending`, whether their usage record can
//! still be deleted.
//!
//! A deletion is a correcting row of the run's pending file ([`super::corrections`]): its
//! `_dinmo_correction` is `deleted`, its record the one to delete, and its value
//! [`DELETED_VALUE`], which takes the key out of the snapshot once committed. The engine
//! deletes the record when the row is delivered (a delete that finds nothing has nothing left
//! to do, so a replay after a crash changes nothing). A record a bill run processed cannot be
//! deleted: the row is held, with the reason `cannot_delete_billed_usage`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dinmo_connectors::{Destination, FieldRoles, Located, ROW_KEY_COLUMN, RunId};
use serde::Serialize;

use crate::error::{DinmoError, Result};
use crate::state::row_key::hex_keys;
use crate::state::values::{DELETED_VALUE, VALUE_COLUMN, is_engine_column, value_column};
use crate::state::{LocalPartWriter, RunManifest, StateStore, read_all, read_parquet};
use crate::sync::changes::{
    BEFORE_PREFIX, HELD_SINCE_COLUMN, Held, REASON_COLUMN, RowLabel, history, locate_single_records, nanos_text,
};

/// One gone row.
#[derive(Debug, Clone)]
pub struct GoneRow {
    /// Its key.
    pub key: u128,
    /// What the destination holds for it, as far as dinmo knows.
    pub before: Option<Held>,
}

/// One gone row, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoneSample {
    /// Which row.
    #[serde(flatten)]
    pub row: RowLabel,
    /// The quantity the destination holds for it.
    pub quantity: Option<String>,
    /// What became of it: `reported`, `deleted`, or why it was kept.
    pub fate: String,
}

/// A sync's gone rows, summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GoneSummary {
    /// The sync's `on_delete` policy.
    pub on_delete: String,
    /// Quantity the destination holds for them.
    pub quantity: String,
    /// Rows whose usage record is (or, in a plan, would be) deleted.
    pub deleted: u64,
    /// Rows kept, by reason.
    pub kept: BTreeMap<String, u64>,
    /// The first rows by account, unit and start.
    pub sample: Vec<GoneSample>,
}

/// What becomes of one gone row under `on_delete: rollback_pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoneDecision {
    /// Delete this record (`None`: nothing is left to delete, only the state changes).
    Delete(Option<String>),
    /// Keep it, held for this reason.
    Keep(String),
}

/// The gone rows with keys `gone`, with what their history says was sent.
pub async fn describe_gone(
    state: &StateStore,
    manifests: &[RunManifest],
    gone: &[u128],
    roles: &FieldRoles,
) -> Result<Vec<GoneRow>> {
    let wanted: HashSet<u128> = gone.iter().copied().collect();
    let mut known = history(state, manifests, &wanted, roles.quantity).await?;
    Ok(gone
        .iter()
        .map(|&key| GoneRow {
            key,
            before: known.remove(&key),
        })
        .collect())
}

/// Decides, for every gone row, whether its record is deleted: only a row carried by one
/// record that the destination still has pending.
pub async fn decide_deletions(destination: &dyn Destination, rows: &[GoneRow]) -> Result<Vec<GoneDecision>> {
    let keyed = rows.iter().map(|row| (row.key, row.before.as_ref()));
    let located = locate_single_records(destination, keyed, "on_delete: rollback_pending").await?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, row)| match (row.before.as_ref(), located.get(&i)) {
            (None, _) => GoneDecision::Keep("before_unknown".into()),
            (Some(before), _) if before.records.len() > 1 => GoneDecision::Keep("cannot_delete_billed_usage".into()),
            (_, Some(Located::Records(records))) => match records.as_slice() {
                [] => GoneDecision::Delete(None),
                [record] if record.pending => GoneDecision::Delete(Some(record.id.clone())),
                _ => GoneDecision::Keep("cannot_delete_billed_usage".into()),
            },
            _ => GoneDecision::Keep("cannot_locate_record".into()),
        })
        .collect())
}

/// The summary of `rows` with what becomes of each (`fates[i]`: `reported`, `deleted`, or a
/// reason it is kept).
pub fn summarise_gone(
    rows: &[GoneRow],
    fates: &[String],
    on_delete: &str,
    roles: &FieldRoles,
    sample: usize,
) -> GoneSummary {
    let mut summary = GoneSummary {
        on_delete: on_delete.to_string(),
        ..GoneSummary::default()
    };
    let mut quantity = 0;
    for (row, fate) in rows.iter().zip(fates) {
        quantity += row.before.as_ref().and_then(|b| b.quantity).unwrap_or(0);
        match fate.as_str() {
            "deleted" => summary.deleted += 1,
            "reported" => {}
            reason => *summary.kept.entry(reason.to_string()).or_insert(0) += 1,
        }
    }
    summary.quantity = nanos_text(quantity);
    let mut samples: Vec<GoneSample> = rows
        .iter()
        .zip(fates)
        .map(|(row, fate)| {
            let before = row.before.as_ref();
            GoneSample {
                row: RowLabel::of(row.key, before, roles),
                quantity: before.and_then(|b| b.quantity).map(nanos_text),
                fate: fate.clone(),
            }
        })
        .collect();
    samples.sort_by(|a, b| a.row.order(&b.row));
    samples.truncate(sample);
    summary.sample = samples;
    summary
}

/// Adds gone rows held (`on_delete: rollback_pending` could not delete their record) to the
/// changes file at `out`, creating it when no changed row is held, with the fields of
/// `template` (a pending file): their fields after empty, their values before, the reason, and
/// [`DELETED_VALUE`](crate::state::values::DELETED_VALUE) as their value, which marks a held
/// row as gone.
pub async fn append_gone(out: &Path, template: &Path, rows: &[(GoneRow, String)], run: &RunId) -> Result<()> {
    let context = format!("writing {}", out.display());
    let arrow = |e| DinmoError::arrow(context.clone())(e);
    let existing = match tokio::fs::try_exists(out).await.map_err(DinmoError::io(out))? {
        true => read_all(out).await?,
        false => Vec::new(),
    };
    let schema: SchemaRef = match existing.first() {
        Some(batch) => batch.schema(),
        None => {
            let fields: Vec<Field> = read_parquet(template, 1)
                .await?
                .schema()
                .fields()
                .iter()
                .filter(|f| !is_engine_column(f.name()))
                .map(|f| f.as_ref().clone())
                .collect();
            let mut all: Vec<Field> = fields.iter().map(|f| f.clone().with_nullable(true)).collect();
            for field in &fields {
                all.push(Field::new(
                    format!("{BEFORE_PREFIX}{}", field.name()),
                    DataType::Utf8,
                    true,
                ));
            }
            all.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
            all.push(Field::new(VALUE_COLUMN, DataType::UInt64, false));
            all.push(Field::new(REASON_COLUMN, DataType::Utf8, true));
            all.push(Field::new(HELD_SINCE_COLUMN, DataType::Utf8, false));
            Arc::new(Schema::new(all))
        }
    };
    let n = rows.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name();
        columns.push(if let Some(before) = name.strip_prefix(BEFORE_PREFIX) {
            Arc::new(
                rows.iter()
                    .map(|(row, _)| {
                        row.before
                            .as_ref()
                            .and_then(|b| b.fields.get(before).cloned().flatten())
                    })
                    .collect::<StringArray>(),
            )
        } else if name == ROW_KEY_COLUMN {
            hex_keys(&rows.iter().map(|(row, _)| row.key).collect::<Vec<_>>()).map_err(arrow)?
        } else if name == VALUE_COLUMN {
            value_column(vec![DELETED_VALUE; n])
        } else if name == REASON_COLUMN {
            Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, r)| r.as_str())))
        } else if name == HELD_SINCE_COLUMN {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(run.as_str(), n)))
        } else {
            arrow::array::new_null_array(field.data_type(), n)
        });
    }
    let gone = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow)?;
    let tmp = out.with_extension("gone.parquet");
    let mut writer = LocalPartWriter::create_pending(&tmp, schema).await?;
    for batch in existing.iter().chain([&gone]) {
        writer.write(batch).await?;
    }
    writer.finish().await?;
    tokio::fs::rename(&tmp, out).await.map_err(DinmoError::io(out))
}
