//! `on_change: correct`: what to do with each changed row, and the rows that do it.
//!
//! A changed row is corrected by a row of its own in the run's pending file, sent and
//! committed like a new row, so the intent log, recovery and the commit that makes a row
//! final cover corrections too. Each correcting row has a row key of its own, derived from the
//! changed row's key and its correction number, and names the row it corrects
//! ([`CORRECTS_COLUMN`]), the changed row's value once corrected ([`VALUE_COLUMN`]) and how
//! ([`CORRECTION_COLUMN`]):
//!
//! - `difference`: a usage record for the positive difference in quantity, sent by the
//!   destination as any row (Zuora stores it under the derived key as `UniqueKey`, and the
//!   `Idempotency-Key` of its request follows from it);
//! - `update`: the record ([`RECORD_COLUMN`]) is updated in place to the new values, by the
//!   engine through [`Destination::update_record`] (an update sets values, so sending it again
//!   after a crash changes nothing);
//! - `replace`: a field the destination cannot update in place changed while the record
//!   ([`RECORD_COLUMN`]) is still pending: the engine deletes it, and only once it is gone
//!   is the row sent, as any row, with the new values (a record deleted already counts as
//!   deleted, so a replay after a crash neither deletes twice nor sends without deleting);
//! - `accepted`: the record already holds the new values (a crash after an update, or a
//!   person corrected it by hand): nothing is sent, the state records it.
//!
//! A change that cannot be corrected is held with a reason: `cannot_reduce_billed_usage` (the
//! quantity went down and the record is billed, or cannot be updated: Zuora takes no negative
//! quantity), `field_not_correctable` (a field other than the quantity changed and the record
//! can be neither updated nor replaced), `record_missing` (the record is no longer in the
//! destination), `quantity_unreadable` (the record's quantity is not a number dinmo reads),
//! `before_unknown` (the state has no row for it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dinmo_connectors::{Correcting, Destination, Located, ROW_KEY_COLUMN};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{DinmoError, Result};
use crate::state::row_key::hex_keys;
use crate::state::values::{
    CORRECTS_COLUMN, DELETED_VALUE, VALUE_COLUMN, is_engine_column, stored_value_hashes, value_column,
};
use crate::state::{LocalPartWriter, read_all, read_parquet};
use crate::sync::changes::{
    CORRECTION_COLUMN, ChangedRow, CorrectionKind, Nanos, locate_single_records, nanos_text, parse_nanos,
};

/// Column of correcting rows: the destination record an `update` changes (or an `accepted`
/// one found holding the values).
pub const RECORD_COLUMN: &str = "_dinmo_record";

/// What becomes of one changed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send a usage record for this positive difference in quantity.
    Difference(Nanos),
    /// Update this record in place.
    Update(String),
    /// Delete this Pending record and send the row's new values as a record of their own:
    /// `fields` changed and the destination cannot update them in place.
    Replace {
        /// The record deleted.
        record: String,
        /// The changed fields that cannot be updated in place.
        fields: Vec<String>,
    },
    /// This record already holds the new values.
    AlreadyCorrected(String),
    /// A person said the destination holds the new values (`resolve-held --accept`).
    Accepted,
    /// A person chose to leave the destination as it is (`resolve-held --ignore`).
    Ignored,
    /// A gone row held because its record could not be deleted: a person settled it
    /// (`resolve-held`); the key leaves the snapshot.
    Deleted,
    /// Hold it, for this reason.
    Hold(String),
}

impl Decision {
    /// The reason it is held, when it is.
    pub fn held(&self) -> Option<String> {
        match self {
            Decision::Hold(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    /// What reports say of the row: why it is held, or how it is corrected when that needs
    /// saying (`None`: corrected).
    pub fn label(&self) -> Option<String> {
        match self {
            Decision::Hold(reason) => Some(reason.clone()),
            Decision::Replace { fields, .. } => {
                Some(format!("replaced: {} cannot be updated in place", fields.join(", ")))
            }
            _ => None,
        }
    }
}

/// Fields (other than the quantity) whose value before differs from after.
fn other_changes(row: &ChangedRow, quantity_field: &str) -> Vec<String> {
    let Some(before) = &row.before else {
        return Vec::new();
    };
    row.after
        .fields
        .iter()
        .filter(|(name, after)| name.as_str() != quantity_field && before.fields.get(*name) != Some(after))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Decides, for every changed row, how `destination` is brought to its new values.
pub async fn decide(destination: &dyn Destination, rows: &[ChangedRow], quantity_field: &str) -> Result<Vec<Decision>> {
    let correcting = destination.correcting();
    // Only a row carried by one record can be updated in place; look those up.
    let located = match correcting {
        Correcting::InPlaceOrDifferences => {
            let keyed = rows.iter().map(|row| (row.key, row.before.as_ref()));
            locate_single_records(destination, keyed, "on_change: correct").await?
        }
        _ => BTreeMap::new(),
    };
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, row)| decide_one(destination, correcting, row, located.get(&i), quantity_field))
        .collect())
}

fn decide_one(
    destination: &dyn Destination,
    correcting: Correcting,
    row: &ChangedRow,
    located: Option<&Located>,
    quantity_field: &str,
) -> Decision {
    let hold = |reason: &str| Decision::Hold(reason.to_string());
    if let Correcting::Not(_) = correcting {
        return hold("cannot_correct");
    }
    let Some(before) = &row.before else {
        return hold("before_unknown");
    };
    let others = other_changes(row, quantity_field);
    let mut difference = before.quantity.zip(row.after.quantity).map(|(b, a)| a - b);
    if let Some(Located::Records(records)) = located
        && let [record] = records.as_slice()
    {
        // What the record holds is the truth: the state may not know of an update whose
        // answer a crash lost, or of an edit by hand.
        let holds = match record.quantity.as_deref() {
            Some(text) => match parse_nanos(text) {
                Some(holds) => Some(holds),
                // What the record holds is unknown: no difference can be trusted.
                None => return hold("quantity_unreadable"),
            },
            None => None,
        };
        if holds.is_some() && holds == row.after.quantity && others.is_empty() {
            return Decision::AlreadyCorrected(record.id.clone());
        }
        if record.pending {
            let fixed: Vec<String> = others
                .iter()
                .filter(|f| !destination.updatable_fields(f))
                .cloned()
                .collect();
            if fixed.is_empty() {
                return Decision::Update(record.id.clone());
            }
            // Pending, it can still be deleted: the new values go out as a record of their own.
            return Decision::Replace {
                record: record.id.clone(),
                fields: fixed,
            };
        }
        if let Some(holds) = holds {
            difference = row.after.quantity.map(|a| a - holds);
        }
    }
    if let Some(Located::Records(records)) = located
        && records.is_empty()
    {
        return hold("record_missing");
    }
    if !others.is_empty() {
        return hold("field_not_correctable");
    }
    match difference {
        None => hold("quantity_unknown"),
        Some(d) if d > 0 => Decision::Difference(d),
        Some(d) if d < 0 => hold("cannot_reduce_billed_usage"),
        Some(_) => hold("unexplained_change"),
    }
}

/// The row key of the `number`-th correction of the row with key `key`.
fn correction_key(key: u128, number: u32) -> u128 {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(b"dinmo-correction\0");
    bytes.extend_from_slice(&key.to_be_bytes());
    bytes.extend_from_slice(&number.to_be_bytes());
    xxh3_128(&bytes)
}

/// The columns a pending file with corrections has after the destination's fields and the
/// row key.
fn correction_fields() -> [Field; 4] {
    [
        Field::new(CORRECTS_COLUMN, DataType::Utf8, true),
        Field::new(VALUE_COLUMN, DataType::UInt64, false),
        Field::new(CORRECTION_COLUMN, DataType::Utf8, true),
        Field::new(RECORD_COLUMN, DataType::Utf8, true),
    ]
}

/// A gone row whose record is deleted (`on_delete: rollback_pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The gone row's key.
    pub key: u128,
    /// Its correction number.
    pub number: u32,
    /// The record to delete (`None`: the destination has none any more).
    pub record: Option<String>,
}

/// The correcting rows to write: for the changed rows of the file `changed` (in its order),
/// what `decisions` says; and `deletions`.
#[derive(Debug, Clone, Copy)]
pub struct Corrections<'a> {
    /// A diff's changed file, when rows changed.
    pub changed: Option<&'a Path>,
    /// Its rows, described.
    pub rows: &'a [ChangedRow],
    /// What becomes of each.
    pub decisions: &'a [Decision],
    /// Gone rows whose records are deleted.
    pub deletions: &'a [Deletion],
}

/// Writes to `out` the rows of `pending` (the new rows, when there are any) followed by the
/// correcting rows of `corrections`, with the correction columns, and a `Description` saying
/// what a difference corrects when the destination has that field. Every field is nullable
/// (a deletion carries none). Returns the correcting rows written.
pub async fn write_with_corrections(
    destination: &dyn Destination,
    pending: Option<&Path>,
    corrections: Corrections<'_>,
    quantity_field: &str,
    out: &Path,
) -> Result<u64> {
    let Corrections {
        changed,
        rows,
        decisions,
        deletions,
    } = corrections;
    let context = format!("writing corrections to {}", out.display());
    let arrow = |e| DinmoError::arrow(context.clone())(e);
    let changed_batches = match changed {
        Some(changed) => read_all(changed).await?,
        None => Vec::new(),
    };
    let base_schema = match (pending, changed_batches.first()) {
        (Some(pending), _) => read_parquet(pending, 1).await?.schema().clone(),
        (None, Some(first)) => first.schema(),
        (None, None) => return Ok(0),
    };
    let changed_all = concat_batches(&base_schema, &changed_batches).map_err(arrow)?;
    let describe = destination.field("Description").is_some();
    let mut fields: Vec<Field> = base_schema
        .fields()
        .iter()
        .filter(|f| !is_engine_column(f.name()))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    if describe && !fields.iter().any(|f| f.name() == "Description") {
        fields.push(Field::new("Description", DataType::Utf8, true));
    }
    let field_count = fields.len();
    fields.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
    fields.extend(correction_fields());
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let mut writer = LocalPartWriter::create_pending(out, Arc::clone(&schema)).await?;
    let new_rows = match pending {
        Some(pending) => read_all(pending).await?,
        None => Vec::new(),
    };
    for batch in new_rows {
        let values = stored_value_hashes(&batch).map_err(arrow)?;
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in &schema.fields()[..field_count] {
            columns.push(match batch.column_by_name(field.name()) {
                Some(column) => Arc::clone(column),
                None => arrow::array::new_null_array(field.data_type(), n),
            });
        }
        columns.push(Arc::clone(batch.column_by_name(ROW_KEY_COLUMN).ok_or_else(|| {
            DinmoError::Arrow {
                context: context.clone(),
                source: arrow::error::ArrowError::SchemaError(format!("no `{ROW_KEY_COLUMN}`")),
            }
        })?));
        columns.push(arrow::array::new_null_array(&DataType::Utf8, n));
        columns.push(value_column(values));
        columns.push(arrow::array::new_null_array(&DataType::Utf8, n));
        columns.push(arrow::array::new_null_array(&DataType::Utf8, n));
        writer
            .write(&RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow)?)
            .await?;
    }

    let chosen: Vec<usize> = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| !matches!(d, Decision::Hold(_)))
        .map(|(i, _)| i)
        .collect();
    if !chosen.is_empty() {
        let indices = UInt32Array::from_iter_values(chosen.iter().map(|&i| i as u32));
        let picked = take_record_batch(&changed_all, &indices).map_err(arrow)?;
        let after_values: Vec<u64> = stored_value_hashes(&picked)
            .map_err(arrow)?
            .into_iter()
            .zip(&chosen)
            .map(|(value, &i)| match decisions[i] {
                Decision::Deleted => DELETED_VALUE,
                _ => value,
            })
            .collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in &schema.fields()[..field_count] {
            let name = field.name();
            let column = if name == quantity_field {
                let differences: Vec<Option<i128>> = chosen
                    .iter()
                    .map(|&i| match &decisions[i] {
                        Decision::Difference(d) => Some(*d),
                        // An update or an accepted correction carries the new values.
                        _ => rows[i].after.quantity,
                    })
                    .collect();
                let decimals = arrow::array::Decimal128Array::from(differences)
                    .with_precision_and_scale(38, 9)
                    .map_err(arrow)?;
                cast(&decimals, field.data_type()).map_err(arrow)?
            } else if name == "Description" && describe {
                let original = picked.column_by_name(name).and_then(|c| cast(c, &DataType::Utf8).ok());
                let texts: StringArray = chosen
                    .iter()
                    .enumerate()
                    .map(|(j, &i)| match &decisions[i] {
                        Decision::Difference(d) => Some(description(&rows[i], *d, quantity_field)),
                        decision => original
                            .as_ref()
                            .and_then(|o| {
                                let o = o.as_any().downcast_ref::<StringArray>()?;
                                o.is_valid(j).then(|| o.value(j).to_string())
                            })
                            .or_else(|| match decision {
                                // Unmapped, the replacement says what it replaces.
                                Decision::Replace { record, fields } => {
                                    Some(replacement_description(&rows[i], record, fields))
                                }
                                _ => None,
                            }),
                    })
                    .collect();
                cast(&texts, field.data_type()).map_err(arrow)?
            } else {
                match picked.column_by_name(name) {
                    Some(column) => Arc::clone(column),
                    None => arrow::array::new_null_array(field.data_type(), chosen.len()),
                }
            };
            columns.push(column);
        }
        let keys: Vec<u128> = chosen
            .iter()
            .map(|&i| {
                let number = rows[i].before.as_ref().map_or(0, |b| b.corrections) + 1;
                correction_key(rows[i].key, number)
            })
            .collect();
        columns.push(hex_keys(&keys).map_err(arrow)?);
        let corrected: Vec<u128> = chosen.iter().map(|&i| rows[i].key).collect();
        columns.push(hex_keys(&corrected).map_err(arrow)?);
        columns.push(Arc::new(UInt64Array::from(after_values)));
        columns.push(Arc::new(StringArray::from_iter_values(chosen.iter().map(
            |&i| match &decisions[i] {
                Decision::Difference(_) => CorrectionKind::Difference.as_str(),
                Decision::Update(_) => CorrectionKind::Update.as_str(),
                Decision::Replace { .. } => CorrectionKind::Replace.as_str(),
                Decision::Ignored => CorrectionKind::Ignored.as_str(),
                Decision::Deleted => CorrectionKind::Deleted.as_str(),
                Decision::AlreadyCorrected(_) | Decision::Accepted | Decision::Hold(_) => {
                    CorrectionKind::Accepted.as_str()
                }
            },
        ))));
        columns.push(Arc::new(StringArray::from_iter(chosen.iter().map(
            |&i| match &decisions[i] {
                Decision::Update(record) | Decision::AlreadyCorrected(record) | Decision::Replace { record, .. } => {
                    Some(record.as_str())
                }
                _ => None,
            },
        ))));
        writer
            .write(&RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow)?)
            .await?;
    }
    if !deletions.is_empty() {
        let n = deletions.len();
        let mut columns: Vec<ArrayRef> = schema.fields()[..field_count]
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), n))
            .collect();
        let keys: Vec<u128> = deletions.iter().map(|d| correction_key(d.key, d.number)).collect();
        columns.push(hex_keys(&keys).map_err(arrow)?);
        let deleted: Vec<u128> = deletions.iter().map(|d| d.key).collect();
        columns.push(hex_keys(&deleted).map_err(arrow)?);
        columns.push(Arc::new(UInt64Array::from(vec![DELETED_VALUE; n])));
        columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            CorrectionKind::Deleted.as_str(),
            n,
        ))));
        columns.push(Arc::new(StringArray::from_iter(
            deletions.iter().map(|d| d.record.as_deref()),
        )));
        writer
            .write(&RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow)?)
            .await?;
    }
    writer.finish().await?;
    Ok((chosen.len() + deletions.len()) as u64)
}

/// What a difference record says it is (Zuora keeps at most 200 characters).
fn description(row: &ChangedRow, difference: Nanos, quantity_field: &str) -> String {
    let before = row
        .before
        .as_ref()
        .and_then(|b| b.quantity)
        .map_or("?".to_string(), nanos_text);
    let after = row.after.quantity.map_or("?".to_string(), nanos_text);
    let number = row.before.as_ref().map_or(0, |b| b.corrections) + 1;
    let text = format!(
        "dinmo correction {number} of usage {:032x}: {quantity_field} {before} -> {after}, +{}",
        row.key,
        nanos_text(difference)
    );
    text.chars().take(200).collect()
}

/// What a replacement record says it is, when the model maps no `Description` (Zuora keeps
/// at most 200 characters).
fn replacement_description(row: &ChangedRow, record: &str, fields: &[String]) -> String {
    let number = row.before.as_ref().map_or(0, |b| b.corrections) + 1;
    let text = format!(
        "dinmo correction {number} of usage {:032x}: replaces record {record} ({} changed)",
        row.key,
        fields.join(", ")
    );
    text.chars().take(200).collect()
}

/// The rows of a pending batch the engine settles itself (updates in place, and corrections
/// found made), apart from those the destination's writer sends: `(sent, settled)`.
pub fn split_settled(batch: RecordBatch) -> Result<(RecordBatch, Option<RecordBatch>)> {
    let Some(kinds) = batch.column_by_name(CORRECTION_COLUMN) else {
        return Ok((batch, None));
    };
    let kinds = cast(kinds, &DataType::Utf8).map_err(DinmoError::arrow("reading corrections"))?;
    let kinds = kinds
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DinmoError::Arrow {
            context: "reading corrections".into(),
            source: arrow::error::ArrowError::SchemaError(format!("`{CORRECTION_COLUMN}` is not text")),
        })?;
    let settled: arrow::array::BooleanArray = kinds
        .iter()
        .map(|k| {
            Some(matches!(
                k,
                Some(kind) if kind == CorrectionKind::Update.as_str()
                    || kind == CorrectionKind::Replace.as_str()
                    || kind == CorrectionKind::Accepted.as_str()
                    || kind == CorrectionKind::Ignored.as_str()
                    || kind == CorrectionKind::Deleted.as_str()
            ))
        })
        .collect();
    if settled.true_count() == 0 {
        return Ok((batch, None));
    }
    let sent_mask = arrow::compute::not(&settled).map_err(DinmoError::arrow("reading corrections"))?;
    let sent =
        arrow::compute::filter_record_batch(&batch, &sent_mask).map_err(DinmoError::arrow("reading corrections"))?;
    let settled =
        arrow::compute::filter_record_batch(&batch, &settled).map_err(DinmoError::arrow("reading corrections"))?;
    Ok((sent, Some(settled)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::changes::Held;

    #[test]
    fn correction_keys_differ_by_row_and_number() {
        assert_ne!(correction_key(1, 1), correction_key(1, 2));
        assert_ne!(correction_key(1, 1), correction_key(2, 1));
        assert_eq!(correction_key(7, 3), correction_key(7, 3));
    }

    /// One unit of quantity, in billionths.
    const UNIT: i128 = 1_000_000_000;

    fn row(before: Option<i128>, after: i128, other_before: &str) -> ChangedRow {
        let held = |q: i128, other: &str| Held {
            fields: BTreeMap::from([
                ("Quantity".to_string(), Some(nanos_text(q * UNIT))),
                ("Description".to_string(), Some(other.to_string())),
            ]),
            quantity: Some(q * UNIT),
            records: vec!["r1".into()],
            corrections: 0,
        };
        ChangedRow {
            key: 1,
            before: before.map(|b| held(b, other_before)),
            after: held(after, "day"),
            held_since: "run".to_string().into(),
        }
    }

    #[derive(Debug)]
    struct Files;

    #[async_trait::async_trait]
    impl Destination for Files {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn fields(&self) -> &[dinmo_connectors::FieldSpec] {
            &[]
        }
        fn roles(&self) -> dinmo_connectors::FieldRoles {
            dinmo_connectors::FieldRoles {
                account: "A",
                unit: "U",
                quantity: "Quantity",
                start: "S",
            }
        }
        fn check_batch(
            &self,
            _: &RecordBatch,
        ) -> dinmo_connectors::Result<Vec<Option<dinmo_connectors::rules::Rejection>>> {
            Ok(Vec::new())
        }
        async fn open(
            &self,
            _: dinmo_connectors::WriteContext,
        ) -> dinmo_connectors::Result<Box<dyn dinmo_connectors::DestinationWriter>> {
            unimplemented!("not used")
        }
        fn correcting(&self) -> Correcting {
            Correcting::Differences
        }
    }

    #[test]
    fn files_send_a_raise_and_hold_a_cut_or_another_field() {
        let d = |row: &ChangedRow| decide_one(&Files, Correcting::Differences, row, None, "Quantity");
        assert_eq!(d(&row(Some(10), 14, "day")), Decision::Difference(4 * UNIT));
        assert_eq!(
            d(&row(Some(10), 7, "day")),
            Decision::Hold("cannot_reduce_billed_usage".into())
        );
        assert_eq!(
            d(&row(Some(10), 14, "other")),
            Decision::Hold("field_not_correctable".into())
        );
        assert_eq!(d(&row(None, 14, "day")), Decision::Hold("before_unknown".into()));
    }

    #[test]
    fn a_pending_record_is_updated_and_a_billed_one_gets_the_difference() {
        let record = |pending: bool, quantity: &str| {
            Located::Records(vec![dinmo_connectors::RecordState {
                id: "r1".into(),
                pending,
                quantity: Some(quantity.into()),
            }])
        };
        let d = |row: &ChangedRow, located: &Located| {
            decide_one(&Files, Correcting::InPlaceOrDifferences, row, Some(located), "Quantity")
        };
        let raised = row(Some(10), 14, "day");
        assert_eq!(d(&raised, &record(true, "10")), Decision::Update("r1".into()));
        assert_eq!(d(&raised, &record(false, "10")), Decision::Difference(4 * UNIT));
        assert_eq!(
            d(&raised, &record(false, "11")),
            Decision::Difference(3 * UNIT),
            "what the record holds is the truth, not the state"
        );
        assert_eq!(d(&raised, &record(false, "1.1E1")), Decision::Difference(3 * UNIT));
        let moved = row(Some(10), 14, "other");
        assert_eq!(
            d(&moved, &record(true, "10")),
            Decision::Replace {
                record: "r1".into(),
                fields: vec!["Description".into()]
            },
            "a pending record whose other field cannot be updated is replaced"
        );
        assert_eq!(
            d(&moved, &record(false, "10")),
            Decision::Hold("field_not_correctable".into())
        );
        assert_eq!(
            d(&raised, &record(false, "12,5")),
            Decision::Hold("quantity_unreadable".into()),
            "a quantity that cannot be read is not guessed from the state"
        );
        assert_eq!(
            d(&row(Some(10), 7, "day"), &record(false, "10")),
            Decision::Hold("cannot_reduce_billed_usage".into())
        );
        assert_eq!(
            d(&raised, &record(false, "14")),
            Decision::AlreadyCorrected("r1".into()),
            "a record already holding the new quantity is not sent to again"
        );
        assert_eq!(
            d(&raised, &Located::Records(vec![])),
            Decision::Hold("record_missing".into())
        );
    }
}
