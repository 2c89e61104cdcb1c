//! The diff: each sync's snapshot keys are loaded ([`snapshot_keys`], [`snapshot`]), then the
//! model runs once ([`stage_model`], [`staging`]): its primary key is checked, each sync's row
//! key is added, and the rows whose key is not in a sync's snapshot go straight to that sync's
//! pending file. A sync whose keys were left for later is diffed from the staged rows
//! afterwards ([`write_new_rows`], [`join`]). Batches stream throughout; the model's rows are
//! never collected into memory.
//!
//! Both checks hold row keys as 128-bit hashes in a [`key_set`] (the primary-key check while
//! staging, the snapshot's keys for the anti-join, [`anti_join`]), with its memory accounted to
//! the session's pool. When the pool cannot hold a set, DataFusion does the job instead (a
//! GROUP BY over the model's query; for the snapshot, the model's rows are staged to a local
//! file and joined, a hash or sort-merge join), spilling where it must.

mod anti_join;
mod join;
mod key_set;
mod snapshot;
mod staging;

use arrow::array::{AsArray, RecordBatch};
use dinmo_connectors::ROW_KEY_COLUMN;

pub use join::{new_rows, write_frame, write_new_rows};
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
    use crate::state::{KeyEncoding, key_part_schema};

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
            allow_billing_and_revenue: false,
            position: None,
        }
    }

    fn hex(keys: &[u128]) -> Vec<String> {
        keys.iter().map(|k| format!("{k:032x}")).collect()
    }

    /// A staged table whose rows have the keys of hashes `keys`.
    async fn staged_with(ctx: &SessionContext, keys: &[u128]) -> StagedModel {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, false),
            Field::new(key_column(0), DataType::FixedSizeBinary(16), false),
        ]));
        let accounts: Vec<String> = keys.iter().map(|k| format!("acct-{k}")).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(accounts)),
                Arc::new(Int64Array::from_iter_values(0..keys.len() as i64)),
                binary_keys(keys).unwrap(),
            ],
        )
        .unwrap();
        // Two batches, so the join sees a stream rather than one array.
        let (first, second) = (batch.slice(0, 2), batch.slice(2, batch.num_rows() - 2));
        let table = MemTable::try_new(schema, vec![vec![first, second]]).unwrap();
        ctx.register_table("staged", Arc::new(table)).unwrap();
        StagedModel {
            table: "staged".into(),
            path: PathBuf::new(),
            rows: keys.len() as u64,
            direct_rows: Vec::new(),
            discarding: Default::default(),
        }
    }

    /// A snapshot holding the row keys of hashes `keys`: the first as hex text (a part stored
    /// before manifest version 3), the rest as 16 bytes, so both are read side by side.
    fn snapshot_of(ctx: &SessionContext, keys: &[u128]) -> Snapshot {
        let (old, new) = keys.split_at(keys.len().min(1));
        let frame = |encoding: KeyEncoding, column: arrow::array::ArrayRef| {
            let schema = key_part_schema(encoding);
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
            ctx.read_table(Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
                .unwrap()
        };
        Snapshot {
            frames: vec![
                frame(KeyEncoding::Hex, Arc::new(StringArray::from(hex(old)))),
                frame(KeyEncoding::Binary, binary_keys(new).unwrap()),
            ],
            rows: keys.len() as u64,
        }
    }

    /// The new rows' keys and columns, found both ways: in DataFusion and with a key set
    /// (which must agree).
    async fn new_keys(
        ctx: &SessionContext,
        staged: &StagedModel,
        snapshot: impl Fn() -> Option<Snapshot>,
    ) -> (Vec<String>, Vec<String>) {
        let frame = new_rows(ctx, staged, 0, &sync(), snapshot()).await.unwrap();
        let batches = frame.collect().await.unwrap();
        let mut keys: Vec<String> = batches.iter().flat_map(keys_of).collect();
        keys.sort();
        let columns: Vec<String> = batches
            .first()
            .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
            .unwrap_or_default();

        let folder = tempfile::tempdir().unwrap();
        let pending = folder.path().join("pending.parquet");
        let loaded = snapshot_keys(ctx, &"m.d".into(), snapshot(), When::AfterTheModel)
            .await
            .unwrap();
        let written = write_new_rows(ctx, staged, 0, &sync(), loaded, &pending).await.unwrap();
        let file = std::fs::File::open(&pending).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let mut from_set: Vec<String> = batches.iter().flat_map(keys_of).collect();
        from_set.sort();
        assert_eq!(from_set, keys, "the key set and DataFusion disagree");
        assert_eq!(written, keys.len() as u64);
        if let Some(batch) = batches.first() {
            let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            assert_eq!(names, columns);
        }
        (keys, columns)
    }

    #[tokio::test]
    async fn keeps_only_rows_whose_key_is_not_in_the_snapshot() {
        let ctx = SessionContext::new();
        let staged = staged_with(&ctx, &[1, 2, 3, u128::MAX]).await;
        let (keys, columns) = new_keys(&ctx, &staged, || Some(snapshot_of(&ctx, &[2, u128::MAX, 9]))).await;
        assert_eq!(keys, hex(&[1, 3]));
        assert_eq!(columns, ["AccountNumber", "Quantity", ROW_KEY_COLUMN]);
    }

    #[tokio::test]
    async fn an_empty_snapshot_keeps_everything_and_a_full_one_nothing() {
        let ctx = SessionContext::new();
        let staged = staged_with(&ctx, &[1, 2, 3]).await;
        let empty = || {
            Some(Snapshot {
                frames: Vec::new(),
                rows: 0,
            })
        };
        assert_eq!(new_keys(&ctx, &staged, empty).await.0, hex(&[1, 2, 3]));
        assert!(
            new_keys(&ctx, &staged, || Some(snapshot_of(&ctx, &[1, 2, 3])))
                .await
                .0
                .is_empty()
        );
        // --full-refresh: no snapshot at all.
        assert_eq!(new_keys(&ctx, &staged, || None).await.0, hex(&[1, 2, 3]));
    }
}
