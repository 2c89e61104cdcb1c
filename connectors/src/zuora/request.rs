//! Usage records as Zuora JSON, and the deterministic Idempotency-Keys of each request.

use serde_json::{Map, Number, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::values::Cell;
use crate::zuora_file::ColumnDefault;
use crate::zuora_file::prepare::PreparedBatch;

/// The JSON usage object for `row`. Date-times carry an explicit UTC offset.
pub(crate) fn usage_object(prepared: &PreparedBatch, row: usize) -> Value {
    let mut object = Map::new();
    for (column, cells) in &prepared.columns {
        let value = match cells.as_ref().map(|cells| &cells[row]) {
            Some(Cell::Text(text)) if !text.is_empty() => Value::String(text.clone()),
            Some(Cell::Number(text)) => match text.parse::<f64>().ok().and_then(Number::from_f64) {
                Some(number) => Value::Number(number),
                None => Value::String(text.clone()),
            },
            Some(Cell::DateTime(dt)) => Value::String(format!("{}+00:00", dt.format("%Y-%m-%dT%H:%M:%S"))),
            _ if column.default == ColumnDefault::RowKey => Value::String(prepared.keys[row].clone()),
            _ => continue,
        };
        object.insert(column.spec.name.to_string(), value);
    }
    Value::Object(object)
}

/// `dinmo-<32 hex>` from the sync, the run that first sends the rows, the method and the rows:
/// a retry (or a replay of that run's pending batches) gets Zuora's stored answer instead of a
/// second insert, while a later run (after a rollback deleted the records) sends afresh rather
/// than receiving the answer for records that no longer exist.
pub fn idempotency_key(sync_id: &str, run_id: &str, method: &str, row_keys: &[&str]) -> String {
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
    fn keys_depend_on_sync_run_method_and_rows_only() {
        let a = idempotency_key("m.z", "r1", "actions", &["k1", "k2"]);
        assert_eq!(a, idempotency_key("m.z", "r1", "actions", &["k1", "k2"]));
        assert_ne!(a, idempotency_key("m.z", "r1", "actions", &["k2", "k1"]));
        assert_ne!(a, idempotency_key("m.z", "r1", "object", &["k1", "k2"]));
        assert_ne!(a, idempotency_key("m.y", "r1", "actions", &["k1", "k2"]));
        assert_ne!(
            a,
            idempotency_key("m.z", "r2", "actions", &["k1", "k2"]),
            "a new run sends afresh"
        );
        assert!(a.len() <= 255 && a.starts_with("dinmo-"));
    }
}
