//! Parquet written by another tool (pyarrow; see tests/fixtures/generate_pyarrow_fixture.py):
//! a timestamp with a +02:00 zone, decimals, dictionary-encoded strings, a nullable column.

use crate::support::*;

#[test]
fn pyarrow_parquet_with_zoned_timestamps_decimals_and_dictionaries() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pyarrow/usage.parquet");
    let project = TestProject::new(
        &format!(
            "name: thirdparty
sources:
  usage:
    location: {}
destinations:
  files:
    type: zuora_file
    path: out
",
            fixture.display()
        ),
        &[(
            "usage.yml",
            "model: usage
sql: SELECT usage_id, account, uom, used_at, amount, note FROM usage
primary_key: [usage_id, used_at]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: used_at
      Quantity: amount
      Description: note
",
        )],
    );
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    let mut rows: Vec<String> = project
        .output_rows("usage.files")
        .into_iter()
        // Drop the UniqueKey (column 7) and GroupId: checked elsewhere.
        .map(|r| r.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect();
    rows.sort();
    // 01:30+02:00 is 23:30 UTC the day before; decimals keep their scale; null stays empty.
    assert_eq!(
        rows,
        [
            "A00000001,AccountNumber:A00000001,API_CALL,2026-11-21T22:15:00,42.000,calls",
            "A00000001,AccountNumber:A00000001,GB_STORED,2026-11-20T23:30:00,12.500,nightly snapshot",
            "A00000002,AccountNumber:A00000002,GB_STORED,2026-11-21T10:00:00,0.125,",
        ]
    );
}
