//! The diff: each sync's snapshot keys and values are loaded ([`snapshot_keys`], [`snapshot`]),
//! then the model runs once ([`stage_model`], [`staging`]): its primary key is checked, each
//! sync's row key is added, and each row is *new* (its key is not in the sync's snapshot: to
//! the pending file), *changed* (its key is there with another value, the hash of the fields
//! it was sent with, [`crate::state::values`]: to the changed file) or *unchanged* (left out).
//! A sync whose keys were left for later is diffed from the staged rows afterwards
//! ([`write_new_rows`], [`join`]). Batches stream throughout; the model's rows are never
//! collected into memory. (Snapshot keys the model no longer produces are *gone*; they are
//! counted from the totals, `SyncRun`.)
//!
//! Both checks hold row keys as 128-bit hashes in a [`key_set`] (the primary-key check while
//! staging, the snapshot's keys and values for the split, [`anti_join`]), with its memory
//! accounted to the session's pool. When the pool cannot hold a set, DataFusion does the job
//! instead (a GROUP BY over the model's query; for the snapshot, the model's rows are staged to
//! a local file and joined, a hash or sort-merge join), spilling where it must.

mod anti_join;
mod join;
mod key_set;
mod snapshot;
mod staging;

use arrow::array::{AsArray, RecordBatch};
use dinmo_connectors::ROW_KEY_COLUMN;

pub use anti_join::{Diff, DiffCounts, DiffFiles};
pub use join::{mark_model_keys, write_new_rows};
pub use snapshot::{Snapshot, SnapshotKeys, When, snapshot_keys};
pub use staging::{DirectDiff, StagedModel, StagedRows, key_column, stage_model};

/// Reads back the keys of a batch (for tests and reports).
pub fn keys_of(batch: &RecordBatch) -> Vec<String> {
    batch
        .column_by_name(ROW_KEY_COLUMN)
        .map(|keys| {
            keys.as_string::<i32>()
                .iter()
                .map(|k| k.unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use datafusion::datasource::MemTable;

    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::project::{MappedField, Sync};
    use crate::state::row_key::binary_keys;
    use crate::state::values::value_hashes;
    use crate::state::{KeyEncoding, LocalPartWriter, SnapshotPart};

    fn sync() -> Sync {
        Sync {
            id: "m.d".into(),
            model: "m".into(),
            destination: "d".into(),
            mapping: vec![
                MappedField {
                    field: "AccountNumber".into(),
                    column: "account".into(),
                    position: None,
                },
                MappedField {
                    field: "Quantity".into(),
                    column: "qty".into(),
                    position: None,
                },
            ],
            mapping_position: None,
            max_new_rows: None,
            on_change: Default::default(),
            on_delete: Default::default(),
            allow_billing_and_revenue: false,
            position: None,
        }
    }

    fn hex(keys: &[u128]) -> Vec<String> {
        keys.iter().map(|k| format!("{k:032x}")).collect()
    }

    /// Rows with the keys of hashes `keys`, account `acct-<key>` and quantity `qty(key)`, as
    /// the model's columns (`account`, `qty`) or the destination's fields.
    fn rows(keys: &[u128], qty: impl Fn(u128) -> i64, names: [&str; 2]) -> (Vec<Field>, Vec<arrow::array::ArrayRef>) {
        let accounts: Vec<String> = keys.iter().map(|k| format!("acct-{k}")).collect();
        (
            vec![
                Field::new(names[0], DataType::Utf8, false),
                Field::new(names[1], DataType::Int64, false),
            ],
            vec![
                Arc::new(StringArray::from(accounts)),
                Arc::new(Int64Array::from_iter_values(keys.iter().map(|&k| qty(k)))),
            ],
        )
    }

    /// A staged table whose rows have the keys of hashes `keys`, with quantity `key * 10`.
    async fn staged_with(ctx: &SessionContext, keys: &[u128]) -> StagedModel {
        let (mut fields, mut columns) = rows(keys, |k| k as i64 * 10, ["account", "qty"]);
        fields.push(Field::new(key_column(0), DataType::FixedSizeBinary(16), false));
        columns.push(binary_keys(keys).unwrap());
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        // Two batches, so the split sees a stream rather than one array.
        let (first, second) = (batch.slice(0, 2), batch.slice(2, batch.num_rows() - 2));
        let table = MemTable::try_new(schema, vec![vec![first, second]]).unwrap();
        ctx.register_table("staged", Arc::new(table)).unwrap();
        StagedModel {
            table: "staged".into(),
            path: PathBuf::new(),
            rows: keys.len() as u64,
            primary_key: vec!["account".into()],
            direct_rows: Vec::new(),
            discarding: Default::default(),
        }
    }

    /// A snapshot holding the rows of hashes `keys` as sent, with quantity `qty(key)`: the
    /// first in a part as an earlier release stored it (hex keys, no values: they are hashed
    /// from its fields), the rest in a part with 16-byte keys and values.
    async fn snapshot_of(
        ctx: &SessionContext,
        folder: &std::path::Path,
        keys: &[u128],
        qty: impl Fn(u128) -> i64,
    ) -> Snapshot {
        let (old, new) = keys.split_at(keys.len().min(1));
        let (mut fields, mut columns) = rows(old, &qty, ["AccountNumber", "Quantity"]);
        fields.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
        columns.push(crate::state::row_key::hex_keys(old).unwrap());
        let old_part = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();

        let (fields, columns) = rows(new, &qty, ["AccountNumber", "Quantity"]);
        let fields_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let values = value_hashes(&fields_batch, &[0, 1], &["AccountNumber", "Quantity"]).unwrap();
        let new_part = RecordBatch::try_new(
            crate::state::key_value_part_schema(),
            vec![binary_keys(new).unwrap(), crate::state::values::value_column(values)],
        )
        .unwrap();
        let mut parts = Vec::new();
        for (name, batch, row_keys, values) in [
            ("old.parquet", old_part, KeyEncoding::Hex, false),
            ("new.parquet", new_part, KeyEncoding::Binary, true),
        ] {
            let path = folder.join(name);
            let mut writer = LocalPartWriter::create(&path, batch.schema()).await.unwrap();
            writer.write(&batch).await.unwrap();
            writer.finish().await.unwrap();
            parts.push(SnapshotPart {
                url: path.display().to_string(),
                row_keys,
                values,
            });
        }
        Snapshot::read(ctx, &parts, &[], keys.len() as u64).await.unwrap()
    }

    fn read_keys(path: &std::path::Path) -> Vec<String> {
        let file = std::fs::File::open(path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        let mut keys: Vec<String> = reader.flat_map(|b| keys_of(&b.unwrap())).collect();
        keys.sort();
        keys
    }

    /// The new and changed rows' keys, found both ways: with the snapshot in a key set and by
    /// a join in DataFusion (which must agree).
    async fn split_keys(
        keys: &[u128],
        snapshot: &[u128],
        qty: impl Fn(u128) -> i64 + Copy,
    ) -> (Vec<String>, Vec<String>) {
        let folder = tempfile::tempdir().unwrap();
        let mut found = Vec::new();
        for joined in [false, true] {
            let ctx = SessionContext::new();
            let staged = staged_with(&ctx, keys).await;
            let read = snapshot_of(&ctx, folder.path(), snapshot, qty).await;
            let loaded = if joined {
                SnapshotKeys::Join(read)
            } else {
                snapshot_keys(&ctx, &"m.d".into(), Some(read), When::AfterTheModel)
                    .await
                    .unwrap()
            };
            let files = DiffFiles {
                pending: folder.path().join(format!("pending-{joined}.parquet")),
                changed: folder.path().join(format!("changed-{joined}.parquet")),
            };
            let diff = write_new_rows(&ctx, &staged, 0, &sync(), loaded, &files).await.unwrap();
            let split = (read_keys(&files.pending), read_keys(&files.changed));
            assert_eq!(diff.counts.new_rows, split.0.len() as u64);
            assert_eq!(diff.counts.changed_rows, split.1.len() as u64);
            let mut gone = diff.gone;
            gone.sort_unstable();
            let mut want: Vec<u128> = snapshot.iter().copied().filter(|k| !keys.contains(k)).collect();
            want.sort_unstable();
            assert_eq!(gone, want, "gone keys (joined: {joined})");
            found.push(split);
        }
        assert_eq!(found[0], found[1], "the key set and DataFusion disagree");
        found.remove(0)
    }

    #[tokio::test]
    async fn rows_are_new_changed_or_unchanged() {
        // Staged quantities are key * 10; the snapshot sent key * 10, except for key 3 (and
        // u128::MAX, in the part stored the old way) where it sent something else.
        let sent = |k: u128| if k == 3 || k == u128::MAX { 7 } else { k as i64 * 10 };
        let (new, changed) = split_keys(&[1, 2, 3, 4, u128::MAX], &[u128::MAX, 2, 3, 4, 9], sent).await;
        assert_eq!(new, hex(&[1]));
        assert_eq!(changed, hex(&[3, u128::MAX]));
    }

    #[tokio::test]
    async fn an_empty_snapshot_makes_everything_new_and_a_full_one_nothing() {
        let same = |k: u128| k as i64 * 10;
        assert_eq!(split_keys(&[1, 2, 3], &[], same).await, (hex(&[1, 2, 3]), vec![]));
        assert_eq!(split_keys(&[1, 2, 3], &[1, 2, 3], same).await, (vec![], vec![]));
    }
}
