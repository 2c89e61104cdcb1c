//! Usage records as Zuora JSON, and the deterministic Idempotency-Keys of each request.

use crate::ids::{RunId, SyncId};
use xxhash_rust::xxh3::Xxh3;

use crate::rules::Cell;
use crate::zuora_common::ColumnDefault;
use crate::zuora_common::prepare::PreparedBatch;

/// The body of `POST /v1/action/create` for `rows`: `{"type":"Usage","objects":[...]}`.
pub(crate) fn create_usage_json(prepared: &PreparedBatch, rows: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + rows.len() * 256);
    out.extend_from_slice(br#"{"type":"Usage","objects":["#);
    for (i, &row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_usage_object(&mut out, prepared, row);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The body of `POST /v1/object/usage` for `row`.
pub(crate) fn usage_object_json(prepared: &PreparedBatch, row: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_usage_object(&mut out, prepared, row);
    out
}

/// The JSON usage object for `row`, written straight to `out` (a request carries up to 50 of
/// them; building a `serde_json::Value` tree per record cost more than the rest of the request).
/// Numbers are written as their decimal text, never through `f64`: Zuora keeps quantities as
/// Decimal(22,9), more digits than an `f64` holds. Date-times carry an explicit UTC offset.
fn write_usage_object(out: &mut Vec<u8>, prepared: &PreparedBatch, row: usize) {
    out.push(b'{');
    let mut first = true;
    for (column, cells) in &prepared.columns {
        let cell = cells.as_ref().map(|cells| cells.get(row));
        let value = match cell {
            Some(Cell::Text(text)) if !text.is_empty() => Json::Text(text),
            Some(Cell::Number(text)) if is_json_number(text) => Json::Raw(text),
            Some(Cell::Number(text)) => Json::Text(text),
            Some(Cell::DateTime(dt)) => Json::DateTime(dt),
            _ if column.default == ColumnDefault::RowKey => Json::Text(prepared.key(row)),
            _ => continue,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(out, &column.spec.name);
        out.push(b':');
        match value {
            Json::Text(text) => write_string(out, text),
            Json::Raw(text) => out.extend_from_slice(text.as_bytes()),
            Json::DateTime(dt) => {
                let text = format!("{}+00:00", dt.format("%Y-%m-%dT%H:%M:%S"));
                write_string(out, &text);
            }
        }
    }
    out.push(b'}');
}

/// The body of `PUT /v1/object/usage/{id}` for `row`: the fields `updatable` lets through
/// (`ProxyModifyUsage` takes Quantity, StartDateTime, EndDateTime, UOM and custom fields).
pub(crate) fn update_usage_json(prepared: &PreparedBatch, row: usize, updatable: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    let mut first = true;
    for (column, cells) in &prepared.columns {
        if !updatable(&column.spec.name) {
            continue;
        }
        let value = match cells.as_ref().map(|cells| cells.get(row)) {
            Some(Cell::Text(text)) if !text.is_empty() => Json::Text(text),
            Some(Cell::Number(text)) if is_json_number(text) => Json::Raw(text),
            Some(Cell::Number(text)) => Json::Text(text),
            Some(Cell::DateTime(dt)) => Json::DateTime(dt),
            _ => continue,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(&mut out, &column.spec.name);
        out.push(b':');
        match value {
            Json::Text(text) => write_string(&mut out, text),
            Json::Raw(text) => out.extend_from_slice(text.as_bytes()),
            Json::DateTime(dt) => {
                let text = format!("{}+00:00", dt.format("%Y-%m-%dT%H:%M:%S"));
                write_string(&mut out, &text);
            }
        }
    }
    out.push(b'}');
    out
}

enum Json<'a> {
    Text(&'a str),
    Raw(&'a str),
    DateTime(chrono::NaiveDateTime),
}

/// `-?digits(.digits)?`: the plain decimals `values` produces, valid JSON numbers as they are.
fn is_json_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && all_digits(fraction) && (whole == "0" || !whole.starts_with('0'))
}

/// `text` as a JSON string (RFC 8259 section 7: quote, backslash and control characters escaped).
fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for byte in text.bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

/// `dinmo-<32 hex>` from the sync, the run that first sends the rows, the method and the rows:
/// a retry (or a replay of that run's pending batches) gets Zuora's stored answer instead of a
/// second insert, while a later run (after a rollback deleted the records) sends afresh rather
/// than receiving the answer for records that no longer exist.
pub fn idempotency_key(sync_id: &SyncId, run_id: &RunId, method: &str, row_keys: &[&str]) -> String {
    let mut hasher = Xxh3::new();
    hasher.update(sync_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(run_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(method.as_bytes());
    for key in row_keys {
        hasher.update(&[0]);
        hasher.update(key.as_bytes());
    }
    format!("dinmo-{:032x}", hasher.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "plain",
            "quote \" and \\ back",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}",
            "é ü 日本 🚀",
            "",
        ] {
            let mut out = Vec::new();
            write_string(&mut out, text);
            let parsed: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed, text);
        }
    }

    #[test]
    fn numbers_keep_every_digit() {
        for (text, plain) in [
            ("1234567890123.123456789", true),
            ("-0.5", true),
            ("0", true),
            ("10", true),
            ("007", false),
            ("1.", false),
            (".5", false),
            ("1e5", false),
            ("", false),
            ("-", false),
        ] {
            assert_eq!(is_json_number(text), plain, "{text}");
        }
        let body = format!("{{\"q\":{}}}", "1234567890123.123456789");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(value["q"].is_number());
    }

    #[test]
    fn a_create_body_carries_every_record_and_every_digit() {
        use std::sync::Arc;

        use arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray, TimestampSecondArray};
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

        let schema = Arc::new(Schema::new(vec![
            Field::new("AccountNumber", DataType::Utf8, false),
            Field::new("UOM", DataType::Utf8, false),
            Field::new("StartDateTime", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("Quantity", DataType::Decimal128(22, 9), false),
            Field::new(crate::ROW_KEY_COLUMN, DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["A-1", "A \"2\""])),
            Arc::new(StringArray::from(vec!["API_CALL", "GB"])),
            Arc::new(TimestampSecondArray::from(vec![1_767_225_600, 1_767_225_601])),
            Arc::new(
                Decimal128Array::from(vec![1_234_567_890_123_123_456_789_i128, 500_000_000])
                    .with_precision_and_scale(22, 9)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec!["k1", "k2"])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let prepared = PreparedBatch::new("zuora", &crate::zuora::fields::REST_COLUMNS, &batch).unwrap();
        let body = create_usage_json(&prepared, &[0, 1]);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains(r#""Quantity":1234567890123.123456789"#), "{text}");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["type"], "Usage");
        let objects = value["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["AccountNumber"], "A \"2\"");
        assert_eq!(objects[0]["StartDateTime"], "2026-01-01T00:00:00+00:00");
        assert_eq!(objects[0]["UniqueKey"], "k1");
        let single: serde_json::Value = serde_json::from_slice(&usage_object_json(&prepared, 1)).unwrap();
        assert_eq!(single, objects[1]);
    }

    #[test]
    fn keys_depend_on_sync_run_method_and_rows_only() {
        let a = idempotency_key(&"m.z".into(), &"r1".into(), "actions", &["k1", "k2"]);
        assert_eq!(
            a,
            idempotency_key(&"m.z".into(), &"r1".into(), "actions", &["k1", "k2"])
        );
        assert_ne!(
            a,
            idempotency_key(&"m.z".into(), &"r1".into(), "actions", &["k2", "k1"])
        );
        assert_ne!(a, idempotency_key(&"m.z".into(), &"r1".into(), "object", &["k1", "k2"]));
        assert_ne!(
            a,
            idempotency_key(&"m.y".into(), &"r1".into(), "actions", &["k1", "k2"])
        );
        assert_ne!(
            a,
            idempotency_key(&"m.z".into(), &"r2".into(), "actions", &["k1", "k2"]),
            "a new run sends afresh"
        );
        assert!(a.len() <= 255 && a.starts_with("dinmo-"));
    }
}
