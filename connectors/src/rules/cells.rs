//! Turning Arrow columns into the values a destination writes: text, normalised decimal
//! numbers and date-times, with a reason for every value that cannot be converted.

use std::collections::HashMap;
use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Date64Type, Float64Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::fields::FieldKind;

/// One cell of a [`CellColumn`], converted for a destination (borrowed from the column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// Text as it will be written.
    Text(&'a str),
    /// A decimal number in plain notation (no exponent), as it will be written.
    Number(&'a str),
    /// A date-time in UTC (time-zone-aware inputs are converted; naive ones are kept).
    DateTime(NaiveDateTime),
    /// A value that cannot become the field's kind, with the reason.
    Invalid(&'a str),
}

/// A whole column converted to one field kind, held column-wise: text and numbers in one
/// Arrow string array (no allocation per value), date-times as values, and the reason for
/// each value that cannot be converted.
#[derive(Debug, Clone)]
pub struct CellColumn {
    values: Values,
    /// Rows whose value cannot become the field's kind (null in `values`), with the reason.
    invalid: HashMap<usize, String>,
}

#[derive(Debug, Clone)]
enum Values {
    Text(StringArray),
    Number(StringArray),
    DateTime(Vec<Option<NaiveDateTime>>),
}

impl CellColumn {
    /// The cell of `row`.
    pub fn get(&self, row: usize) -> Cell<'_> {
        let value = match &self.values {
            Values::Text(strings) if strings.is_valid(row) => Some(Cell::Text(strings.value(row))),
            Values::Number(strings) if strings.is_valid(row) => Some(Cell::Number(strings.value(row))),
            Values::DateTime(values) => values[row].map(Cell::DateTime),
            Values::Text(_) | Values::Number(_) => None,
        };
        match value {
            Some(cell) => cell,
            None => self
                .invalid
                .get(&row)
                .map_or(Cell::Null, |reason| Cell::Invalid(reason)),
        }
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Text(strings) | Values::Number(strings) => strings.len(),
            Values::DateTime(values) => values.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every cell, in row order.
    pub fn iter(&self) -> impl Iterator<Item = Cell<'_>> {
        (0..self.len()).map(|row| self.get(row))
    }
}

/// Converts a whole column to cells of `kind`.
pub fn convert_column(kind: FieldKind, array: &ArrayRef) -> Result<CellColumn, ArrowError> {
    match kind {
        FieldKind::Text => text_cells(array),
        FieldKind::Number => number_cells(array),
        FieldKind::DateTime => datetime_cells(array),
    }
}

fn text_cells(array: &ArrayRef) -> Result<CellColumn, ArrowError> {
    // A string column is taken as it is; anything else is rendered once, column-wise.
    let strings = cast(array, &DataType::Utf8)?;
    Ok(CellColumn {
        values: Values::Text(strings.as_string::<i32>().clone()),
        invalid: HashMap::new(),
    })
}

fn number_cells(array: &ArrayRef) -> Result<CellColumn, ArrowError> {
    let data_type = match array.data_type() {
        DataType::Dictionary(_, value) => value.as_ref().clone(),
        other => other.clone(),
    };
    let mut invalid = HashMap::new();
    if data_type.is_floating() {
        let floats = cast(array, &DataType::Float64)?;
        let floats = floats.as_primitive::<Float64Type>();
        let mut out = StringBuilder::with_capacity(floats.len(), floats.len() * 8);
        let mut shortest = ryu::Buffer::new();
        for (row, value) in floats.iter().enumerate() {
            match value {
                None => out.append_null(),
                Some(f) if !f.is_finite() => {
                    invalid.insert(row, format!("`{f}` is not a finite number"));
                    out.append_null();
                }
                Some(f) => append_plain(&mut out, &mut shortest, f),
            }
        }
        return Ok(CellColumn {
            values: Values::Number(out.finish()),
            invalid,
        });
    }
    // Integers and decimals render exactly through a string cast; strings are checked.
    let strings = cast(array, &DataType::Utf8)?;
    let strings = strings.as_string::<i32>();
    if !matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        return Ok(CellColumn {
            values: Values::Number(strings.clone()),
            invalid,
        });
    }
    let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
    for (row, value) in strings.iter().enumerate() {
        match value.map(parse_decimal_text) {
            None => out.append_null(),
            Some(Ok(number)) => out.append_value(number),
            Some(Err(reason)) => {
                invalid.insert(row, reason);
                out.append_null();
            }
        }
    }
    Ok(CellColumn {
        values: Values::Number(out.finish()),
        invalid,
    })
}

/// Appends finite `value` in plain notation: the shortest digits that read back as `value`,
/// never an exponent, no sign on zero (what `Display` writes for `value + 0.0`), without
/// `Display`'s formatting machinery.
///
/// Three ways, fastest first, each giving `Display`'s text (a unit test compares them on
/// 400,000 values). Every one rests on this: a spelling with at most 15 significant digits
/// that reads back as `value` is the only one of its length that does (two such spellings are
/// at least 1e-15 apart, relatively; the values that read back as one double span at most
/// 2.2e-16), so it is the shortest, whoever finds it.
/// 1. A value with at most six decimals and 15 digits (a usage quantity, most often): scaled
///    by a power of ten to a whole number, checked to read back, written with `itoa`.
/// 2. `ryu` (about a third of `Display`'s time), when its text has no exponent (values from
///    1e-5 to 1e16) and at most 15 significant digits. With 16 or 17, two spellings of the
///    same length can both read back, and `ryu` and `Display` do not always pick the same one
///    (-221138436506831.62 and .63).
/// 3. `Display`.
fn append_plain(out: &mut StringBuilder, shortest: &mut ryu::Buffer, value: f64) {
    let value = value + 0.0;
    if let Some((whole, decimals)) = as_decimal(value) {
        let mut text = [0u8; 24];
        let written = spell_decimal(&mut text, value < 0.0, whole, decimals);
        // Digits, a sign and a point: ASCII.
        if let Ok(text) = std::str::from_utf8(&text[..written]) {
            out.append_value(text);
            return;
        }
    }
    if let Some(rounded) = rounded_to_nanos(value) {
        out.append_value(rounded);
        return;
    }
    let text = shortest.format_finite(value);
    let text = text.strip_suffix(".0").unwrap_or(text);
    let significant = text
        .bytes()
        .skip_while(|b| matches!(b, b'-' | b'0' | b'.'))
        .filter(u8::is_ascii_digit)
        .count();
    if significant <= 15 && !text.contains('e') {
        out.append_value(text);
    } else {
        // Writing into the builder cannot fail.
        let _ = write!(out, "{value}");
        out.append_value("");
    }
}

/// `value` rounded to the 9 decimal places Zuora stores, when its shortest decimal has more:
/// a binary float's arithmetic leaves such tails (`0.1 * 3` is `0.30000000000000004`), which a
/// user means as `0.3`. The nearest 9-place decimal to the float's exact binary value (what
/// `{:.9}` prints), without trailing zeros; `None` for a value exact at 9 places or fewer.
fn rounded_to_nanos(value: f64) -> Option<String> {
    let magnitude = value.abs();
    // 17 significant digits leave at most 9 after the point from 10^7 up; below, a value is
    // exact at 9 places when its billionths read back as it.
    if magnitude >= 1e7 || (magnitude * 1e9).round() / 1e9 == magnitude {
        return None;
    }
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    Some(if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    })
}

/// `|value|` as `whole / 10^decimals` with at most six decimals and 15 digits, when that
/// decimal reads back as `value` exactly: `whole` is below 2^53, so converting it is exact, and
/// the division rounds correctly, as reading the decimal text does.
fn as_decimal(value: f64) -> Option<(u64, usize)> {
    const SCALES: [f64; 7] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];
    let magnitude = value.abs();
    for (decimals, &scale) in SCALES.iter().enumerate() {
        let scaled = magnitude * scale;
        if scaled >= 1e15 {
            return None;
        }
        if scaled.fract() == 0.0 && (scaled / scale) == magnitude {
            return Some((scaled as u64, decimals));
        }
    }
    None
}

/// Writes `whole / 10^decimals` (a minus first when `negative`) into `out`, without trailing
/// zeros after the point; returns the length.
fn spell_decimal(out: &mut [u8; 24], negative: bool, whole: u64, decimals: usize) -> usize {
    let unit = 10u64.pow(decimals as u32);
    let (integer, mut fraction) = (whole / unit, whole % unit);
    let mut length = 0;
    if negative && whole != 0 {
        out[0] = b'-';
        length = 1;
    }
    let mut digits = itoa::Buffer::new();
    let integer = digits.format(integer).as_bytes();
    out[length..length + integer.len()].copy_from_slice(integer);
    length += integer.len();
    let mut places = decimals;
    while places > 0 && fraction % 10 == 0 {
        fraction /= 10;
        places -= 1;
    }
    if places > 0 {
        out[length] = b'.';
        for place in (0..places).rev() {
            out[length + 1 + place] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        length += 1 + places;
    }
    length
}

/// Accepts a plain decimal number (`12`, `-3.5`, `+0.25`, ` 7 `) and returns it as written
/// (trimmed, without a leading `+`); anything else is invalid.
fn parse_decimal_text(raw: &str) -> Result<&str, String> {
    let s = raw.trim();
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_ok = !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && !(unsigned.contains('.') && frac_part.is_empty());
    if !digits_ok {
        return Err(format!("`{raw}` is not a decimal number"));
    }
    Ok(s.strip_prefix('+').unwrap_or(s))
}

fn datetime_cells(array: &ArrayRef) -> Result<CellColumn, ArrowError> {
    let mut invalid = HashMap::new();
    let out_of_range = |what: &str| Err(format!("{what} out of range"));
    let values = match array.data_type() {
        DataType::Timestamp(_, tz) => {
            // The stored i64 is UTC for zone-aware timestamps and wall-clock for naive ones;
            // only the unit changes here, so the instant is preserved either way.
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            let values = micros.as_primitive::<TimestampMicrosecondType>().iter();
            each_datetime(values, &mut invalid, |v| match DateTime::from_timestamp_micros(v) {
                Some(dt) => Ok(dt.naive_utc()),
                None => out_of_range("timestamp"),
            })
        }
        DataType::Date32 => {
            let values = array.as_primitive::<Date32Type>().iter();
            each_datetime(values, &mut invalid, |days| {
                match Date32Type::to_naive_date_opt(days).and_then(|d| d.and_hms_opt(0, 0, 0)) {
                    Some(dt) => Ok(dt),
                    None => out_of_range("date"),
                }
            })
        }
        DataType::Date64 => {
            let values = array.as_primitive::<Date64Type>().iter();
            each_datetime(values, &mut invalid, |ms| match DateTime::from_timestamp_millis(ms) {
                Some(dt) => Ok(dt.naive_utc()),
                None => out_of_range("date"),
            })
        }
        _ => {
            let strings = cast(array, &DataType::Utf8)?;
            each_datetime(strings.as_string::<i32>().iter(), &mut invalid, parse_datetime_text)
        }
    };
    Ok(CellColumn {
        values: Values::DateTime(values),
        invalid,
    })
}

/// Converts each present value with `convert`; a value it refuses becomes null, its reason
/// recorded under its row in `invalid`.
fn each_datetime<T>(
    values: impl Iterator<Item = Option<T>>,
    invalid: &mut HashMap<usize, String>,
    convert: impl Fn(T) -> Result<NaiveDateTime, String>,
) -> Vec<Option<NaiveDateTime>> {
    values
        .enumerate()
        .map(|(row, value)| match value.map(&convert) {
            None => None,
            Some(Ok(dt)) => Some(dt),
            Some(Err(reason)) => {
                invalid.insert(row, reason);
                None
            }
        })
        .collect()
}

/// Accepts RFC 3339 (converted to UTC), `YYYY-MM-DD[ T]HH:MM:SS[.f]` and `YYYY-MM-DD`.
fn parse_datetime_text(raw: &str) -> Result<NaiveDateTime, String> {
    let s = raw.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.naive_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(dt);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(dt) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(dt);
    }
    Err(format!(
        "`{raw}` is not a date-time (expected ISO 8601, e.g. 2026-11-21T13:45:00Z)"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };

    use super::*;

    fn convert(kind: FieldKind, array: &ArrayRef) -> CellColumn {
        convert_column(kind, array).unwrap()
    }

    #[test]
    fn numbers_render_exactly() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None, Some(-2)]));
        assert_eq!(
            convert(FieldKind::Number, &ints).iter().collect::<Vec<_>>(),
            vec![Cell::Number("3"), Cell::Null, Cell::Number("-2")]
        );
        let decimals: ArrayRef = Arc::new(
            Decimal128Array::from(vec![1250, -5])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        assert_eq!(
            convert(FieldKind::Number, &decimals).iter().collect::<Vec<_>>(),
            vec![Cell::Number("12.50"), Cell::Number("-0.05")]
        );
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1e21, f64::NAN, -0.0]));
        let cells = convert(FieldKind::Number, &floats);
        assert_eq!(cells.get(0), Cell::Number("1000000000000000000000"));
        assert!(matches!(cells.get(1), Cell::Invalid(_)));
        assert_eq!(cells.get(2), Cell::Number("0"));
    }

    #[test]
    fn floats_are_written_as_display_writes_them() {
        // Random bit patterns (every magnitude), cents and ten-thousandths (what usage
        // quantities look like), integers, and the edges of ryu's plain notation.
        let mut rng = fastrand::Rng::with_seed(13);
        let mut values: Vec<f64> = (0..200_000)
            .map(|_| f64::from_bits(rng.u64(..)))
            .filter(|f| f.is_finite())
            .collect();
        values.extend((0..100_000).map(|i| f64::from(rng.i32(..)) / 100.0 + f64::from(i % 3)));
        values.extend((0..100_000).map(|_| f64::from(rng.u32(..100_000)) / 10_000.0));
        values.extend((0..100_000).map(|_| rng.u64(..10u64.pow(16)) as f64 / 10f64.powi(rng.i32(0..16))));
        values.extend((-1000..1000).map(f64::from));
        values.extend([
            0.0,
            -0.0,
            1e-5,
            9.9999e-6,
            1e-6,
            1e15,
            1e16,
            9.999999999999998e15,
            1e17,
            0.1 + 0.2,
            -0.5,
            -12.25,
            999_999_999_999_999.0,
            99_999_999.999_999,
            123_456_789.123_456,
            1.5e-7,
            0.1,
            0.7,
        ]);
        values.extend([f64::MIN_POSITIVE, f64::MAX, f64::MIN, 5e-324, -5e-324]);
        let cells = convert(
            FieldKind::Number,
            &(Arc::new(Float64Array::from(values.clone())) as ArrayRef),
        );
        for (row, value) in values.iter().enumerate() {
            let shown = format!("{}", value + 0.0);
            let places = shown.split_once('.').map_or(0, |(_, fraction)| fraction.len());
            if places <= 9 {
                assert_eq!(cells.get(row), Cell::Number(&shown), "{value:e}");
            } else {
                // Rounded to 9 places: within half a billionth, and no more places.
                let Cell::Number(text) = cells.get(row) else {
                    panic!("{value:e} is not a number cell")
                };
                let back: f64 = text.parse().unwrap();
                assert!(
                    (back - value).abs() <= 0.5e-9 + f64::EPSILON * value.abs(),
                    "{value:e} -> {text}"
                );
                assert!(
                    text.split_once('.').is_none_or(|(_, f)| f.len() <= 9),
                    "{value:e} -> {text}"
                );
            }
        }
    }

    #[test]
    fn float_tails_are_rounded_to_nine_places() {
        let values = vec![
            0.1 * 3.0,
            0.1 + 0.2,
            1.0 / 3.0,
            -2.0 / 3.0,
            1e-10,
            -1e-10,
            2.6e-9,
            12.25,
            1.5e-7,
        ];
        let cells = convert(FieldKind::Number, &(Arc::new(Float64Array::from(values)) as ArrayRef));
        let expected = [
            "0.3",
            "0.3",
            "0.333333333",
            "-0.666666667",
            "0",
            "0",
            "0.000000003",
            "12.25",
            "0.00000015",
        ];
        for (row, expected) in expected.iter().enumerate() {
            assert_eq!(cells.get(row), Cell::Number(expected), "row {row}");
        }
    }

    #[test]
    fn numeric_strings_are_checked() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["+1.5", "1.", "abc", " 42 ", "1e3"]));
        let cells = convert(FieldKind::Number, &text);
        assert_eq!(cells.get(0), Cell::Number("1.5"));
        assert!(matches!(cells.get(1), Cell::Invalid(_)));
        assert!(matches!(cells.get(2), Cell::Invalid(_)));
        assert_eq!(cells.get(3), Cell::Number("42"));
        assert!(matches!(cells.get(4), Cell::Invalid(_)));
    }

    #[test]
    fn zone_aware_timestamps_become_utc() {
        // 2026-11-21T10:00:00Z stored as UTC millis with a +02:00 zone label.
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_763_719_200_000]).with_timezone("+02:00"));
        let cells = convert(FieldKind::DateTime, &ts);
        assert_eq!(
            cells.get(0),
            Cell::DateTime(
                NaiveDate::from_ymd_opt(2025, 11, 21)
                    .unwrap()
                    .and_hms_opt(10, 0, 0)
                    .unwrap()
            )
        );
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![0]));
        assert_eq!(
            convert(FieldKind::DateTime, &dates).get(0),
            Cell::DateTime(
                NaiveDate::from_ymd_opt(1970, 1, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
            )
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            "2026-11-21T12:00:00+01:00",
            "2026-11-21",
            "21/11/2026",
        ]));
        let cells = convert(FieldKind::DateTime, &text);
        assert_eq!(
            cells.get(0),
            Cell::DateTime(
                NaiveDate::from_ymd_opt(2026, 11, 21)
                    .unwrap()
                    .and_hms_opt(11, 0, 0)
                    .unwrap()
            )
        );
        assert_eq!(
            cells.get(1),
            Cell::DateTime(
                NaiveDate::from_ymd_opt(2026, 11, 21)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
            )
        );
        assert!(matches!(cells.get(2), Cell::Invalid(_)));
    }
}
