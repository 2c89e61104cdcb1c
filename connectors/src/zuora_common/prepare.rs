//! Converts a mapped batch into per-row output fields and rule verdicts.

use std::borrow::Cow;

use arrow::array::{Array, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::destination::ROW_KEY_COLUMN;
use crate::error::{ConnectorError, Result};
use crate::rules::{Cell, CellColumn, Rejection, check_cell, convert_column};

use super::layout::{ColumnDefault, ColumnSet, LayoutColumn};

/// A batch converted for writing: one column of cells per output column.
#[derive(Debug)]
pub(crate) struct PreparedBatch {
    /// Output columns in file order, each with its cells (`None`: not mapped).
    pub columns: Vec<(LayoutColumn, Option<CellColumn>)>,
    /// The engine's row keys (null where a batch carries none).
    keys: StringArray,
    /// `Some(reason)` for every row a field rule refuses.
    pub rejections: Vec<Option<Rejection>>,
}

impl PreparedBatch {
    pub fn new(destination: &str, set: &ColumnSet, batch: &RecordBatch) -> Result<Self> {
        let schema = batch.schema();
        let mut columns: Vec<(LayoutColumn, Option<CellColumn>)> =
            set.columns.iter().map(|c| (c.clone(), None)).collect();
        for field in schema.fields() {
            if crate::destination::is_engine_column(field.name()) {
                continue;
            }
            let Some(spec) = set.column(field.name()) else {
                return Err(ConnectorError::MissingColumn {
                    destination: destination.to_string(),
                    column: field.name().clone(),
                });
            };
            let array = batch
                .column_by_name(field.name())
                .ok_or_else(|| ConnectorError::MissingColumn {
                    destination: destination.to_string(),
                    column: field.name().clone(),
                })?;
            let cells = convert_column(spec.spec.kind, array).map_err(|source| ConnectorError::Convert {
                destination: destination.to_string(),
                column: field.name().clone(),
                source,
            })?;
            match columns.iter_mut().find(|(c, _)| c.spec.name == spec.spec.name) {
                Some(slot) => slot.1 = Some(cells),
                None => columns.push((spec, Some(cells))),
            }
        }
        let keys = row_keys(destination, batch)?;
        let rejections = (0..batch.num_rows())
            .map(|row| {
                let reasons: Vec<Rejection> = columns
                    .iter()
                    .filter_map(|(column, cells)| match cells {
                        Some(cells) => check_cell(&column.spec, column.limits, cells.get(row)),
                        None => None,
                    })
                    .collect();
                combine(reasons)
            })
            .collect();
        Ok(PreparedBatch {
            columns,
            keys,
            rejections,
        })
    }

    /// The engine's row key of `row` (empty when the batch carries none).
    pub fn key(&self, row: usize) -> &str {
        if self.keys.is_valid(row) {
            self.keys.value(row)
        } else {
            ""
        }
    }

    /// The fields of `row` in output order, rendered as text (borrowed where the cell
    /// already holds its text).
    #[cfg(test)]
    pub fn render_row(&self, row: usize, account_column: &str, datetime_format: &str) -> Vec<Cow<'_, str>> {
        let account = self.index_of(account_column);
        (0..self.columns.len())
            .map(|index| self.field(index, row, account).render(datetime_format))
            .collect()
    }

    /// The text sent for `column` of `row` (the mapped value, else the column's default), or
    /// `None` when the layout has no such column.
    pub fn text_of(&self, row: usize, column: &str, account_column: &str, datetime_format: &str) -> Option<String> {
        let index = self.index_of(column)?;
        let account = self.index_of(account_column);
        Some(self.field(index, row, account).render(datetime_format).into_owned())
    }

    /// The position of output column `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(c, _)| c.spec.name == name)
    }

    /// What is written for output column `index` of `row`: the mapped value, else the
    /// column's default (`account` is the position of the account column, which a defaulted
    /// tag names).
    pub fn field(&self, index: usize, row: usize, account: Option<usize>) -> Field<'_> {
        let (column, cells) = &self.columns[index];
        let value = cells.as_ref().map(|cells| Field::of(cells.get(row)));
        match (value, column.default) {
            (Some(value), _) if !value.is_empty() => value,
            (_, ColumnDefault::RowKey) => Field::Text(self.key(row)),
            (_, ColumnDefault::AccountTag) => {
                let account = account
                    .and_then(|index| self.columns[index].1.as_ref())
                    .map_or(Field::Text(""), |cells| Field::of(cells.get(row)));
                match account {
                    Field::Text(text) => Field::Prefixed("AccountNumber:", text),
                    other => other,
                }
            }
            (value, ColumnDefault::Empty) => value.unwrap_or(Field::Text("")),
        }
    }

    /// The header of the file, in output order.
    pub fn headers(&self) -> Vec<&str> {
        self.columns.iter().map(|(c, _)| c.spec.name.as_ref()).collect()
    }
}

fn row_keys(destination: &str, batch: &RecordBatch) -> Result<StringArray> {
    let array = batch
        .column_by_name(ROW_KEY_COLUMN)
        .ok_or_else(|| ConnectorError::MissingColumn {
            destination: destination.to_string(),
            column: ROW_KEY_COLUMN.to_string(),
        })?;
    let strings = cast(array, &DataType::Utf8).map_err(|source| ConnectorError::Convert {
        destination: destination.to_string(),
        column: ROW_KEY_COLUMN.to_string(),
        source,
    })?;
    Ok(strings.as_string::<i32>().clone())
}

/// One rejection per row: the first reason's code, every reason's message.
fn combine(mut reasons: Vec<Rejection>) -> Option<Rejection> {
    match reasons.len() {
        0 => None,
        1 => reasons.pop(),
        _ => {
            let message = reasons
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let first = reasons.swap_remove(0);
            Some(Rejection { message, ..first })
        }
    }
}

/// One output field of a row, before it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    /// Text as written (numbers included; empty for no value).
    Text(&'a str),
    /// Text after a fixed prefix (a defaulted tag: `AccountNumber:<account>`).
    Prefixed(&'static str, &'a str),
    /// A date-time, written in the destination's format.
    DateTime(chrono::NaiveDateTime),
}

impl<'a> Field<'a> {
    fn of(cell: Cell<'a>) -> Self {
        match cell {
            Cell::Null | Cell::Invalid(_) => Field::Text(""),
            Cell::Text(text) | Cell::Number(text) => Field::Text(text),
            Cell::DateTime(dt) => Field::DateTime(dt),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Field::Text(""))
    }

    /// The field as text, date-times in `datetime_format`.
    pub fn render(self, datetime_format: &str) -> Cow<'a, str> {
        match self {
            Field::Text(text) => Cow::Borrowed(text),
            Field::Prefixed(prefix, text) => Cow::Owned(format!("{prefix}{text}")),
            Field::DateTime(dt) => {
                let mut out = String::new();
                // The format was validated with the config; one that does not parse leaves
                // the text empty rather than panicking here.
                with_parsed_format(datetime_format, |items| {
                    if let Some(items) = items {
                        write_datetime(&mut out, dt, items);
                    }
                });
                Cow::Owned(out)
            }
        }
    }
}

/// Appends `dt` written with the format `items` to `out`. An item a naive date-time cannot
/// fill (a time zone, which the config's validation refuses) leaves nothing appended.
///
/// Formats made of zero-padded years, months, days, hours, minutes and seconds between
/// literals (every default, and most formats people write) are written digit by digit;
/// anything else goes through chrono, straight into `out` (chrono's `Display` would render
/// into a fresh `String` first).
pub(crate) fn write_datetime(out: &mut String, dt: chrono::NaiveDateTime, items: &[chrono::format::Item<'static>]) {
    let start = out.len();
    if write_plain_datetime(out, dt, items) {
        return;
    }
    out.truncate(start);
    if dt.format_with_items(items.iter()).write_to(out).is_err() {
        out.truncate(start);
    }
}

/// [`write_datetime`] for the common items only; `false` (with `out` partly written) when an
/// item or value needs chrono: another item or padding, a year outside 0–9999, a leap second.
///
/// The date's fields are decoded once, and digits are cut with constant divisors (a power of
/// ten held in a variable costs two hardware divisions per digit).
fn write_plain_datetime(out: &mut String, dt: chrono::NaiveDateTime, items: &[chrono::format::Item<'static>]) -> bool {
    use chrono::format::{Item, Numeric, Pad};
    use chrono::{Datelike, Timelike};
    let (date, time) = (dt.date(), dt.time());
    let year = date.year();
    if !(0..10_000).contains(&year) || time.nanosecond() >= 1_000_000_000 {
        // Outside four digits, or a leap second (chrono writes it as 60).
        return false;
    }
    let seconds = time.num_seconds_from_midnight();
    for item in items {
        match item {
            Item::Literal(text) | Item::Space(text) => out.push_str(text),
            Item::OwnedLiteral(text) | Item::OwnedSpace(text) => out.push_str(text),
            Item::Numeric(Numeric::Year, Pad::Zero) => {
                let year = year as u32;
                push_two_digits(out, year / 100);
                push_two_digits(out, year % 100);
            }
            Item::Numeric(Numeric::Month, Pad::Zero) => push_two_digits(out, date.month()),
            Item::Numeric(Numeric::Day, Pad::Zero) => push_two_digits(out, date.day()),
            Item::Numeric(Numeric::Hour, Pad::Zero) => push_two_digits(out, seconds / 3600),
            Item::Numeric(Numeric::Minute, Pad::Zero) => push_two_digits(out, seconds / 60 % 60),
            Item::Numeric(Numeric::Second, Pad::Zero) => push_two_digits(out, seconds % 60),
            _ => return false,
        }
    }
    true
}

/// Writes `value` (below 100) as two digits.
fn push_two_digits(out: &mut String, value: u32) {
    out.push(char::from(b'0' + (value / 10 % 10) as u8));
    out.push(char::from(b'0' + (value % 10) as u8));
}

/// Runs `f` with `format` parsed into chrono's items, parsed once per thread and format
/// rather than once per value. `None` when the format does not parse.
pub(crate) fn with_parsed_format<T>(format: &str, f: impl FnOnce(Option<&[chrono::format::Item<'static>]>) -> T) -> T {
    type Parsed = Option<(String, Option<Vec<chrono::format::Item<'static>>>)>;
    thread_local! {
        static PARSED: std::cell::RefCell<Parsed> = const { std::cell::RefCell::new(None) };
    }
    PARSED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.as_ref().is_none_or(|(text, _)| text != format) {
            let items = chrono::format::StrftimeItems::new(format).parse_to_owned().ok();
            *cached = Some((format.to_string(), items));
        }
        f(cached.as_ref().and_then(|(_, items)| items.as_deref()))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Decimal128Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::zuora_common::Layout;

    fn batch(fields: Vec<(&str, arrow::array::ArrayRef)>) -> RecordBatch {
        let schema = Schema::new(
            fields
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), fields.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    #[test]
    fn date_times_written_digit_by_digit_match_chrono() {
        use chrono::{NaiveDate, NaiveTime};
        let formats = [
            "%Y-%m-%dT%H:%M:%S",
            "%m/%d/%Y",
            "%Y-%m-%d %H:%M:%S",
            "%d.%m.%Y %H:%M",
            "%Y%m%d",
            "%Y-%m-%dT%H:%M:%S%.3f",
            "%b %e %Y %I:%M %p",
            "%-m/%-d/%Y",
        ];
        let mut times: Vec<chrono::NaiveDateTime> = Vec::new();
        for (y, m, d) in [
            (2026, 11, 21),
            (1, 1, 1),
            (999, 12, 31),
            (9999, 12, 31),
            (12_000, 1, 2),
            (-44, 3, 15),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            for (h, min, sec, nano) in [(0, 0, 0, 0), (9, 5, 7, 123_456_789), (23, 59, 59, 1_500_000_000)] {
                times.push(date.and_time(NaiveTime::from_hms_nano_opt(h, min, sec, nano).unwrap()));
            }
        }
        for format in ["%Y-%m-%dT%H:%M:%S", "%m/%d/%Y"] {
            let items = chrono::format::StrftimeItems::new(format).parse_to_owned().unwrap();
            assert!(
                write_plain_datetime(&mut String::new(), times[1], &items),
                "the defaults take the short way"
            );
        }
        for format in formats {
            let items = chrono::format::StrftimeItems::new(format).parse_to_owned().unwrap();
            for dt in &times {
                let mut ours = String::from("x");
                write_datetime(&mut ours, *dt, &items);
                assert_eq!(ours, format!("x{}", dt.format(format)), "{format} of {dt:?}");
            }
        }
    }

    #[test]
    fn legacy_rows_use_the_locale_date_and_default_the_unique_key() {
        let input = batch(vec![
            ("ACCOUNT_ID", Arc::new(StringArray::from(vec!["A1"]))),
            ("UOM", Arc::new(StringArray::from(vec!["GB"]))),
            (
                "QTY",
                Arc::new(
                    Decimal128Array::from(vec![12345])
                        .with_precision_and_scale(10, 3)
                        .unwrap(),
                ),
            ),
            ("STARTDATE", Arc::new(Date32Array::from(vec![20_778]))), // 2026-11-21
            (
                ROW_KEY_COLUMN,
                Arc::new(StringArray::from(vec!["0123456789abcdef0123456789abcdef"])),
            ),
        ]);
        let prepared = PreparedBatch::new("legacy", &Layout::Standard.column_set(), &input).unwrap();
        assert_eq!(
            prepared.headers(),
            [
                "ACCOUNT_ID",
                "UOM",
                "QTY",
                "STARTDATE",
                "ENDDATE",
                "SUBSCRIPTION_ID",
                "CHARGE_ID",
                "DESCRIPTION",
                "UNIQUE_KEY"
            ]
        );
        assert!(prepared.rejections[0].is_none());
        assert_eq!(
            prepared.render_row(0, Layout::Standard.account_column(), "%m/%d/%Y"),
            [
                "A1",
                "GB",
                "12.345",
                "11/21/2026",
                "",
                "",
                "",
                "",
                "0123456789abcdef0123456789abcdef"
            ]
        );
    }

    #[test]
    fn current_rows_default_the_tag_and_keep_a_mapped_unique_key() {
        let input = batch(vec![
            ("AccountNumber", Arc::new(StringArray::from(vec!["A1", "A2"]))),
            ("UnitOfMeasure", Arc::new(StringArray::from(vec!["API", "API"]))),
            (
                "StartDateTime",
                Arc::new(StringArray::from(vec!["2026-11-21T10:00:00+01:00", "2026-11-21"])),
            ),
            ("Quantity", Arc::new(StringArray::from(vec!["3", "4.5"]))),
            ("UniqueKey", Arc::new(StringArray::from(vec![Some("mine-1"), None]))),
            ("CustomFields.Region__c", Arc::new(StringArray::from(vec!["EU", "US"]))),
            (ROW_KEY_COLUMN, Arc::new(StringArray::from(vec!["k1", "k2"]))),
        ]);
        let prepared = PreparedBatch::new("files", &Layout::ActiveRating.column_set(), &input).unwrap();
        assert_eq!(prepared.headers().last(), Some(&"CustomFields.Region__c"));
        let format = "%Y-%m-%dT%H:%M:%S";
        assert_eq!(
            prepared.render_row(0, "AccountNumber", format),
            [
                "A1",
                "AccountNumber:A1",
                "API",
                "2026-11-21T09:00:00",
                "3",
                "",
                "mine-1",
                "",
                "EU"
            ]
        );
        assert_eq!(
            prepared.render_row(1, "AccountNumber", format)[6],
            "k2",
            "a null UniqueKey falls back to the row key"
        );
    }

    #[test]
    fn every_broken_field_of_a_row_is_named() {
        let input = batch(vec![
            (
                "AccountNumber",
                Arc::new(StringArray::from(vec![Some("x".repeat(51)), None])),
            ),
            ("UnitOfMeasure", Arc::new(StringArray::from(vec!["API", "API"]))),
            (
                "StartDateTime",
                Arc::new(StringArray::from(vec!["yesterday", "2026-11-21"])),
            ),
            ("Quantity", Arc::new(StringArray::from(vec!["-1", "1"]))),
            (ROW_KEY_COLUMN, Arc::new(StringArray::from(vec!["k1", "k2"]))),
        ]);
        let prepared = PreparedBatch::new("files", &Layout::ActiveRating.column_set(), &input).unwrap();
        let first = prepared.rejections[0].as_ref().unwrap();
        assert_eq!(first.code.as_str(), "too_long");
        assert!(
            first.message.contains("AccountNumber has 51 characters"),
            "{}",
            first.message
        );
        assert!(
            first.message.contains("StartDateTime: `yesterday` is not a date-time"),
            "{}",
            first.message
        );
        assert!(
            first.message.contains("Quantity is -1; it must be zero or more"),
            "{}",
            first.message
        );
        let second = prepared.rejections[1].as_ref().unwrap();
        assert_eq!(second.message, "AccountNumber is required but has no value");
    }
}
