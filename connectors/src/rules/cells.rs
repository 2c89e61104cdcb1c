//! Turning Arrow columns into the values a destination writes: text, normalised decimal
//! numbers and date-times, with a reason for every value that cannot be converted.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Date64Type, Float64Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::fields::FieldKind;

/// One cell, converted for a destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text as it will be written.
    Text(String),
    /// A decimal number in plain notation (no exponent), as it will be written.
    Number(String),
    /// A date-time in UTC (time-zone-aware inputs are converted; naive ones are kept).
    DateTime(NaiveDateTime),
    /// A value that cannot become the field's kind, with the reason.
    Invalid(String),
}

/// Converts a whole column to cells of `kind`.
pub fn convert_column(kind: FieldKind, array: &ArrayRef) -> Result<Vec<Cell>, ArrowError> {
    match kind {
        FieldKind::Text => text_cells(array),
        FieldKind::Number => number_cells(array),
        FieldKind::DateTime => datetime_cells(array),
    }
}

fn text_cells(array: &ArrayRef) -> Result<Vec<Cell>, ArrowError> {
    let strings = cast(array, &DataType::Utf8)?;
    let strings = strings.as_string::<i32>();
    Ok(strings
        .iter()
        .map(|v| v.map_or(Cell::Null, |s| Cell::Text(s.to_string())))
        .collect())
}

fn number_cells(array: &ArrayRef) -> Result<Vec<Cell>, ArrowError> {
    let data_type = match array.data_type() {
        DataType::Dictionary(_, value) => value.as_ref().clone(),
        other => other.clone(),
    };
    if data_type.is_floating() {
        let floats = cast(array, &DataType::Float64)?;
        return Ok(floats
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| match v {
                None => Cell::Null,
                Some(f) if !f.is_finite() => Cell::Invalid(format!("`{f}` is not a finite number")),
                // `Display` for f64 never uses an exponent; +0.0 avoids writing "-0".
                Some(f) => Cell::Number(format!("{}", f + 0.0)),
            })
            .collect());
    }
    // Integers and decimals render exactly through a string cast; strings are checked.
    let strings = cast(array, &DataType::Utf8)?;
    let from_text = matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    Ok(strings
        .as_string::<i32>()
        .iter()
        .map(|v| match v {
            None => Cell::Null,
            Some(s) if from_text => parse_decimal_text(s),
            Some(s) => Cell::Number(s.to_string()),
        })
        .collect())
}

/// Accepts a plain decimal number (`12`, `-3.5`, `+0.25`, ` 7 `); anything else is invalid.
fn parse_decimal_text(raw: &str) -> Cell {
    let s = raw.trim();
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_ok = !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && !(unsigned.contains('.') && frac_part.is_empty());
    if !digits_ok {
        return Cell::Invalid(format!("`{raw}` is not a decimal number"));
    }
    Cell::Number(s.strip_prefix('+').unwrap_or(s).to_string())
}

fn datetime_cells(array: &ArrayRef) -> Result<Vec<Cell>, ArrowError> {
    match array.data_type() {
        DataType::Timestamp(_, tz) => {
            // The stored i64 is UTC for zone-aware timestamps and wall-clock for naive ones;
            // only the unit changes here, so the instant is preserved either way.
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            Ok(micros
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| match v.and_then(DateTime::from_timestamp_micros) {
                    Some(dt) => Cell::DateTime(dt.naive_utc()),
                    None if v.is_none() => Cell::Null,
                    None => Cell::Invalid("timestamp out of range".to_string()),
                })
                .collect())
        }
        DataType::Date32 => Ok(array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| match v {
                None => Cell::Null,
                Some(days) => Date32Type::to_naive_date_opt(days)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map_or_else(|| Cell::Invalid("date out of range".into()), Cell::DateTime),
            })
            .collect()),
        DataType::Date64 => Ok(array
            .as_primitive::<Date64Type>()
            .iter()
            .map(|v| match v {
                None => Cell::Null,
                Some(ms) => DateTime::from_timestamp_millis(ms).map_or_else(
                    || Cell::Invalid("date out of range".into()),
                    |d| Cell::DateTime(d.naive_utc()),
                ),
            })
            .collect()),
        _ => {
            let strings = cast(array, &DataType::Utf8)?;
            Ok(strings
                .as_string::<i32>()
                .iter()
                .map(|v| v.map_or(Cell::Null, parse_datetime_text))
                .collect())
        }
    }
}

/// Accepts RFC 3339 (converted to UTC), `YYYY-MM-DD[ T]HH:MM:SS[.f]` and `YYYY-MM-DD`.
fn parse_datetime_text(raw: &str) -> Cell {
    let s = raw.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Cell::DateTime(dt.naive_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Cell::DateTime(dt);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(dt) = date.and_hms_opt(0, 0, 0)
    {
        return Cell::DateTime(dt);
    }
    Cell::Invalid(format!(
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

    #[test]
    fn numbers_render_exactly() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None, Some(-2)]));
        assert_eq!(
            convert_column(FieldKind::Number, &ints).unwrap(),
            vec![Cell::Number("3".into()), Cell::Null, Cell::Number("-2".into())]
        );
        let decimals: ArrayRef = Arc::new(
            Decimal128Array::from(vec![1250, -5])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        assert_eq!(
            convert_column(FieldKind::Number, &decimals).unwrap(),
            vec![Cell::Number("12.50".into()), Cell::Number("-0.05".into())]
        );
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1e21, f64::NAN, -0.0]));
        let cells = convert_column(FieldKind::Number, &floats).unwrap();
        assert_eq!(cells[0], Cell::Number("1000000000000000000000".into()));
        assert!(matches!(cells[1], Cell::Invalid(_)));
        assert_eq!(cells[2], Cell::Number("0".into()));
    }

    #[test]
    fn numeric_strings_are_checked() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["+1.5", "1.", "abc", " 42 ", "1e3"]));
        let cells = convert_column(FieldKind::Number, &text).unwrap();
        assert_eq!(cells[0], Cell::Number("1.5".into()));
        assert!(matches!(cells[1], Cell::Invalid(_)));
        assert!(matches!(cells[2], Cell::Invalid(_)));
        assert_eq!(cells[3], Cell::Number("42".into()));
        assert!(matches!(cells[4], Cell::Invalid(_)));
    }

    #[test]
    fn zone_aware_timestamps_become_utc() {
        // 2026-11-21T10:00:00Z stored as UTC millis with a +02:00 zone label.
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_763_719_200_000]).with_timezone("+02:00"));
        let cells = convert_column(FieldKind::DateTime, &ts).unwrap();
        assert_eq!(
            cells[0],
            Cell::DateTime(
                NaiveDate::from_ymd_opt(2025, 11, 21)
                    .unwrap()
                    .and_hms_opt(10, 0, 0)
                    .unwrap()
            )
        );
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![0]));
        assert_eq!(
            convert_column(FieldKind::DateTime, &dates).unwrap()[0],
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
        let cells = convert_column(FieldKind::DateTime, &text).unwrap();
        assert_eq!(
            cells[0],
            Cell::DateTime(
                NaiveDate::from_ymd_opt(2026, 11, 21)
                    .unwrap()
                    .and_hms_opt(11, 0, 0)
                    .unwrap()
            )
        );
        assert_eq!(
            cells[1],
            Cell::DateTime(
                NaiveDate::from_ymd_opt(2026, 11, 21)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
            )
        );
        assert!(matches!(cells[2], Cell::Invalid(_)));
    }
}
