//! Writes a long synthetic sync history for `scripts/bench-history.sh`: `RUNS` daily runs of
//! two syncs (a Zuora REST sync and a usage-file sync) sending `ROWS` rows in all, with a
//! few refusals in every run and rows held now and then. Manifests and parts are written by
//! dinmo's own state code (`StateStore`, `LocalPartWriter`), so the files are laid out,
//! encoded and checksummed as a run writes them; only the runs themselves are skipped.
//!
//! `cargo run --release -p dinmo --example synthetic_history -- STATE_DIR [RUNS] [ROWS]`

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use dinmo::state::values::VALUE_VERSION;
use dinmo::state::{
    Counts, DESTINATION_ID_COLUMN, Folder, KeyEncoding, LocalPartWriter, MANIFEST_FORMAT_VERSION, Outcome, PartInfo,
    RUN_ID_COLUMN, RunManifest, StateStore, SyncPaths,
};
use dinmo_connectors::{ROW_KEY_COLUMN, RunId, SyncId, Timestamp};

/// A sync of the synthetic history: its id, destination type, fields and share of the rows.
struct SyncShape {
    id: &'static str,
    destination: &'static str,
    destination_type: &'static str,
    account: &'static str,
    unit: &'static str,
    quantity: &'static str,
    start: &'static str,
    units: &'static [&'static str],
    share: f64,
}

const SYNCS: [SyncShape; 2] = [
    SyncShape {
        id: "api_calls.zuora",
        destination: "zuora",
        destination_type: "zuora",
        account: "AccountNumber",
        unit: "UOM",
        quantity: "Quantity",
        start: "StartDateTime",
        units: &["API_CALL", "SMS", "EMAIL"],
        share: 0.8,
    },
    SyncShape {
        id: "storage.usage_files",
        destination: "usage_files",
        destination_type: "zuora_file",
        account: "ACCOUNT_ID",
        unit: "UOM",
        quantity: "QTY",
        start: "STARTDATE",
        units: &["GB_STORED"],
        share: 0.2,
    },
];

fn fields_schema(sync: &SyncShape) -> Vec<Field> {
    vec![
        Field::new(sync.account, DataType::Utf8, false),
        Field::new(sync.unit, DataType::Utf8, false),
        Field::new(sync.quantity, DataType::Float64, false),
        Field::new(sync.start, DataType::Timestamp(TimeUnit::Microsecond, None), false),
    ]
}

fn snapshot_schema(sync: &SyncShape) -> SchemaRef {
    let mut fields = fields_schema(sync);
    fields.push(Field::new(ROW_KEY_COLUMN, DataType::FixedSizeBinary(16), false));
    fields.push(Field::new(dinmo::state::values::VALUE_COLUMN, DataType::UInt64, false));
    fields.push(Field::new(DESTINATION_ID_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(RUN_ID_COLUMN, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

fn rejected_schema(sync: &SyncShape) -> SchemaRef {
    let mut fields = fields_schema(sync);
    fields.push(Field::new(ROW_KEY_COLUMN, DataType::Utf8, false));
    for name in ["reject_code", "reject_field", "reject_message", RUN_ID_COLUMN] {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// `count` rows of `sync` for `day` (0-based), numbered from `first`.
fn rows(sync: &SyncShape, day: i64, first: u64, count: usize, run: &str, refused: bool) -> RecordBatch {
    let numbers: Vec<u64> = (first..first + count as u64).collect();
    let accounts: StringArray = numbers.iter().map(|n| Some(format!("A{:08}", n % 5000))).collect();
    let units: StringArray = numbers
        .iter()
        .map(|n| Some(sync.units[*n as usize % sync.units.len()]))
        .collect();
    let quantities: Float64Array = numbers.iter().map(|n| Some((n % 1000) as f64 / 4.0)).collect();
    let start = (20_454 + day) * 86_400_000_000; // 2026-01-01 + day
    let starts: TimestampMicrosecondArray = numbers.iter().map(|_| Some(start)).collect();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(accounts),
        Arc::new(units),
        Arc::new(quantities),
        Arc::new(starts),
    ];
    let key = |n: &u64| xxhash_rust::xxh3::xxh3_128(format!("{}:{n}", sync.id).as_bytes()).to_be_bytes();
    if refused {
        let keys: StringArray = numbers
            .iter()
            .map(|n| Some(format!("{:032x}", u128::from_be_bytes(key(n)))))
            .collect();
        columns.push(Arc::new(keys));
        columns.push(Arc::new(StringArray::from(vec![Some("invalid_value"); count])));
        columns.push(Arc::new(
            numbers
                .iter()
                .map(|n| Some(if n % 2 == 0 { sync.account } else { sync.unit }))
                .collect::<StringArray>(),
        ));
        columns.push(Arc::new(StringArray::from(vec![
            Some("The account is not active.");
            count
        ])));
        columns.push(Arc::new(StringArray::from(vec![Some(run); count])));
        return RecordBatch::try_new(rejected_schema(sync), columns).expect("rejected rows");
    }
    let keys = FixedSizeBinaryArray::try_from_iter(numbers.iter().map(key)).expect("keys");
    columns.push(Arc::new(keys));
    columns.push(Arc::new(
        numbers
            .iter()
            .map(|n| Some(xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes()) >> 1))
            .collect::<UInt64Array>(),
    ));
    columns.push(Arc::new(
        numbers
            .iter()
            .map(|n| Some(format!("8a8{n:029x}")))
            .collect::<StringArray>(),
    ));
    columns.push(Arc::new(StringArray::from(vec![Some(run); count])));
    RecordBatch::try_new(snapshot_schema(sync), columns).expect("snapshot rows")
}

async fn part(store: &StateStore, staging: &std::path::Path, relative: &str, batch: RecordBatch) -> PartInfo {
    let local = staging.join(relative.replace('/', "_"));
    let mut writer = LocalPartWriter::create(&local, batch.schema()).await.expect("a part");
    let rows = batch.num_rows() as u64;
    for start in (0..batch.num_rows()).step_by(65_536) {
        let length = 65_536.min(batch.num_rows() - start);
        writer.write(&batch.slice(start, length)).await.expect("rows written");
    }
    writer.finish().await.expect("the part finished");
    store.upload(&local, relative, rows).await.expect("the part stored")
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: synthetic_history STATE_DIR [RUNS] [ROWS]");
    let runs: i64 = args.next().map_or(365, |a| a.parse().expect("RUNS is a number"));
    let total: u64 = args.next().map_or(10_000_000, |a| a.parse().expect("ROWS is a number"));
    std::fs::create_dir_all(&dir).expect("the state folder");
    let dir = std::fs::canonicalize(&dir).expect("an absolute path");
    let store = StateStore::open(&dir.to_string_lossy()).expect("the state");
    let staging = tempfile::tempdir().expect("a staging folder");
    let per_run = total / runs as u64;
    let mut sent = 0u64;
    for day in 0..runs {
        let started = chrono::DateTime::from_timestamp((20_455 + day) * 86_400 + 3 * 3600, 0).expect("a time");
        let run_id = RunId::from(format!("{}-{:04x}", started.format("%Y%m%dT%H%M%S000Z"), day));
        for sync in &SYNCS {
            let sync_id = SyncId::from(sync.id);
            let paths = SyncPaths::of(&sync_id);
            let count = (per_run as f64 * sync.share) as usize;
            sent += count as u64;
            let first = day as u64 * count as u64;
            let snapshot = part(
                &store,
                staging.path(),
                &paths.part(Folder::Snapshot, run_id.as_str(), 0),
                rows(sync, day, first, count, run_id.as_str(), false),
            )
            .await;
            let snapshot = PartInfo {
                row_keys: KeyEncoding::Binary,
                value_version: VALUE_VERSION,
                ..snapshot
            };
            let refused = 1 + (day as usize % 7) * 3;
            let rejected = part(
                &store,
                staging.path(),
                &paths.part(Folder::Rejected, run_id.as_str(), 0),
                rows(sync, day, 1 << 40 | first, refused, run_id.as_str(), true),
            )
            .await;
            let finished = started + chrono::Duration::seconds(40 + day % 30);
            let manifest = RunManifest {
                format_version: MANIFEST_FORMAT_VERSION,
                run_id: run_id.clone(),
                sync_id: sync_id.clone(),
                model: sync.id.split('.').next().unwrap_or_default().to_string(),
                destination: sync.destination.to_string(),
                destination_type: sync.destination_type.to_string(),
                started_at: Timestamp::from(started),
                finished_at: Some(Timestamp::from(finished)),
                git_commit: Some(format!("{:040x}", day / 30)),
                model_sql_hash: "5f0e2d1c3b4a6978".into(),
                mapping_hash: "0a1b2c3d4e5f6071".into(),
                row_key_version: 1,
                source_versions: Vec::new(),
                full_refresh: false,
                counts: Counts {
                    model_rows: first + count as u64,
                    new_rows: (count + refused) as u64,
                    accepted: count as u64,
                    rejected: refused as u64,
                    ..Counts::default()
                },
                pending_part: None,
                snapshot_parts: vec![snapshot],
                rejected_parts: vec![rejected],
                held_part: None,
                recovered_by: None,
                destination_ids: Vec::new(),
                outcome: Outcome::PartiallyRejected,
                error: None,
                rollback: None,
                repairs: Vec::new(),
            };
            store.write_manifest(&manifest).await.expect("the manifest");
        }
    }
    println!(
        "wrote {runs} runs of {} syncs, {sent} rows sent, to {}",
        SYNCS.len(),
        dir.display()
    );
}
