//! Encoding a batch into CSV records, apart from the files they land in: batches encode on
//! blocking threads, several at a time, while the writer places their records into files in
//! order (a file's content and name do not depend on how the work was spread).

use arrow::record_batch::RecordBatch;
use chrono::format::Item;

use crate::error::{ConnectorError, EncodeError, Result};
use crate::rules::Rejection;
use crate::zuora_common::Layout;
use crate::zuora_common::encoder::{CSV_TERMINATOR, write_csv_field};
use crate::zuora_common::prepare::{Field, PreparedBatch, with_parsed_format, write_datetime};

/// A batch's rows as CSV records.
#[derive(Debug)]
pub(super) struct EncodedRows {
    /// The records of the accepted rows, one after the other.
    pub bytes: Vec<u8>,
    /// Where each accepted row's record ends in `bytes`, in row order.
    pub ends: Vec<usize>,
    /// Per row: why a field rule refused it, or `None` when it is accepted (its record is the
    /// next one in `ends`).
    pub refusals: Vec<Option<Rejection>>,
}

#[cfg(test)]
impl EncodedRows {
    /// Each row's CSV record (terminator included), `None` for a refused row, in batch order.
    pub fn records(&self) -> Vec<Option<&[u8]>> {
        let (mut start, mut accepted) = (0, 0);
        self.refusals
            .iter()
            .map(|refusal| {
                refusal.is_none().then(|| {
                    let end = self.ends[accepted];
                    let record = &self.bytes[start..end];
                    (start, accepted) = (end, accepted + 1);
                    record
                })
            })
            .collect()
    }
}

/// What every encoding of one writer shares.
#[derive(Debug, Clone)]
pub(super) struct RowEncoder {
    destination: String,
    layout: Layout,
    datetime_format: String,
}

impl RowEncoder {
    pub fn new(destination: &str, layout: Layout, datetime_format: &str) -> Self {
        RowEncoder {
            destination: destination.to_string(),
            layout,
            datetime_format: datetime_format.to_string(),
        }
    }

    /// The file header, in output order, for rows of `batch`'s columns.
    pub fn headers(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let prepared = PreparedBatch::new(&self.destination, &self.layout.column_set(), &batch.slice(0, 0))?;
        Ok(prepared.headers().into_iter().map(str::to_string).collect())
    }

    /// Checks every row of `batch` against the field rules and encodes the accepted ones,
    /// column values straight into one buffer (no text allocated per value).
    pub fn encode(&self, batch: &RecordBatch) -> Result<EncodedRows> {
        let prepared = PreparedBatch::new(&self.destination, &self.layout.column_set(), batch)?;
        with_parsed_format(&self.datetime_format, |items| {
            let items = items.ok_or_else(|| ConnectorError::Encode {
                destination: self.destination.clone(),
                file: "row".into(),
                source: EncodeError::DateTimeFormat {
                    format: self.datetime_format.clone(),
                },
            })?;
            Ok(self.encode_rows(&prepared, items))
        })
    }

    fn encode_rows(&self, prepared: &PreparedBatch, items: &[Item<'static>]) -> EncodedRows {
        let account = prepared.index_of(self.layout.account_column());
        let columns = prepared.columns.len();
        let count = prepared.rejections.len();
        let mut bytes = Vec::with_capacity(count * 32 * columns.max(1));
        let mut ends = Vec::with_capacity(count);
        let mut datetime = String::new();
        for (row, rejection) in prepared.rejections.iter().enumerate() {
            if rejection.is_some() {
                continue;
            }
            for index in 0..columns {
                if index > 0 {
                    bytes.push(b',');
                }
                match prepared.field(index, row, account) {
                    Field::Text(text) => write_csv_field(&mut bytes, "", text),
                    Field::Prefixed(prefix, text) => write_csv_field(&mut bytes, prefix, text),
                    Field::DateTime(dt) => {
                        datetime.clear();
                        write_datetime(&mut datetime, dt, items);
                        write_csv_field(&mut bytes, "", &datetime);
                    }
                }
            }
            bytes.extend_from_slice(CSV_TERMINATOR);
            ends.push(bytes.len());
        }
        EncodedRows {
            bytes,
            ends,
            refusals: prepared.rejections.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit};

    use super::*;
    use crate::destination::ROW_KEY_COLUMN;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            ArrowField::new("AccountNumber", DataType::Utf8, true),
            ArrowField::new("UnitOfMeasure", DataType::Utf8, true),
            ArrowField::new("StartDateTime", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            ArrowField::new("Quantity", DataType::Float64, true),
            ArrowField::new("Description", DataType::Utf8, true),
            ArrowField::new(ROW_KEY_COLUMN, DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![Some("A,1"), Some("A2"), None, Some("A4")])),
                Arc::new(StringArray::from(vec!["API", "API", "API", "GB"])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    1_763_719_200_000_000,
                    1_763_719_201_500_000,
                    0,
                    0,
                ])),
                Arc::new(Float64Array::from(vec![1.5, -2.0, 3.0, 0.25])),
                Arc::new(StringArray::from(vec![
                    Some("says \"hi\"\nthen stops"),
                    None,
                    None,
                    Some("é"),
                ])),
                Arc::new(StringArray::from(vec!["k1", "k2", "k3", "k4"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn records_match_the_row_by_row_rendering_and_refusals_are_kept() {
        let encoder = RowEncoder::new("files", Layout::ActiveRating, "%Y-%m-%dT%H:%M:%S");
        let input = batch();
        let encoded = encoder.encode(&input).unwrap();
        // The independent path: render each row's fields as text, then the csv crate.
        let prepared = PreparedBatch::new("files", &Layout::ActiveRating.column_set(), &input).unwrap();
        let mut expected = Vec::new();
        for row in 0..input.num_rows() {
            if prepared.rejections[row].is_none() {
                let fields = prepared.render_row(row, "AccountNumber", "%Y-%m-%dT%H:%M:%S");
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(Vec::new());
                writer.write_record(fields.iter().map(|f| f.as_ref())).unwrap();
                expected.push(Some(writer.into_inner().unwrap()));
            } else {
                expected.push(None);
            }
        }
        let got: Vec<Option<Vec<u8>>> = encoded.records().into_iter().map(|r| r.map(<[u8]>::to_vec)).collect();
        assert_eq!(got, expected);
        assert_eq!(
            String::from_utf8(got[0].clone().unwrap()).unwrap(),
            "\"A,1\",\"AccountNumber:A,1\",API,2025-11-21T10:00:00,1.5,\"says \"\"hi\"\"\nthen stops\",k1,\r\n"
        );
        assert!(
            got[1].is_none() && got[2].is_none(),
            "negative quantity, missing account"
        );
        assert_eq!(
            encoder.headers(&input).unwrap(),
            [
                "AccountNumber",
                "Tag",
                "UnitOfMeasure",
                "StartDateTime",
                "Quantity",
                "Description",
                "UniqueKey",
                "GroupId"
            ]
        );
    }
}
