//! Exports as warehouses write them: files of one source written by DuckDB and pyarrow, with
//! drifting types and columns (tests/fixtures/drift_exports.py writes them).

use crate::support::*;

fn project_yml(options: &str) -> String {
    format!(
        "name: drift
sources:
  events:
    location: data/events/
{options}destinations:
  files:
    type: zuora_file
    path: out
"
    )
}

/// Calls per account and day, as the example project counts them.
const DAILY: &str = "model: daily
sql: |
  SELECT account_number, 'API_CALL' AS uom, date_trunc('day', ts) AS usage_day, sum(n) AS calls
  FROM events WHERE event_type = 'api_call'
  GROUP BY account_number, date_trunc('day', ts)
primary_key: [account_number, uom, usage_day]
syncs:
  - destination: files
    mapping:
      AccountNumber: account_number
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: calls
";

fn drift_project(scenario: &str, options: &str, model: &str) -> TestProject {
    let project = TestProject::new(&project_yml(options), &[("daily.yml", model)]);
    write_drift_exports(scenario, &project.path().join("data"));
    project
}

#[test]
fn days_written_by_duckdb_and_pyarrow_make_one_table() {
    // Days 1-2 by DuckDB (plain strings, INTEGER, microseconds), day 3 by pyarrow
    // (dictionary strings, int64, nanoseconds, a new column).
    let project = drift_project("mixed_writers", "", DAILY);
    let run = dinmo_in(project.path(), &["run"], &[("DINMO_LOG", "info")]);
    exits(&run, 0);
    let mut rows = project.output_rows("daily.files");
    rows.sort();
    // 10 events a day with n = 0..9 over accounts i % 3: A0 gets 0+3+6+9, A1 1+4+7, A2 2+5+8.
    let quantities: Vec<String> = rows
        .iter()
        .map(|row| {
            let fields: Vec<&str> = row.split(',').collect();
            format!("{} {} {}", fields[0], &fields[3][..10], fields[4])
        })
        .collect();
    let mut want = Vec::new();
    for day in ["2026-11-01", "2026-11-02", "2026-11-03"] {
        for (account, sum) in [("A0", 18), ("A1", 12), ("A2", 15)] {
            want.push(format!("{account} {day} {sum}"));
        }
    }
    want.sort();
    assert_eq!(quantities, want);
    let log = stderr(&run);
    assert!(
        log.contains("column=account_number") && log.contains("column=region"),
        "the unified columns are logged: {log}"
    );
}

#[test]
fn the_same_drift_reads_the_same_whatever_the_batch_size() {
    // Staging casts every batch to the planned types, so batch boundaries change nothing; the
    // model here is the CASE over a dictionary-encoded column.
    let model = DAILY.edit(
        "SELECT account_number,",
        "SELECT CASE WHEN account_number = '' THEN 'none' ELSE account_number END AS account_number,",
    );
    let mut outputs = Vec::new();
    for batch_size in ["1", "7", "8192"] {
        let project = drift_project("mixed_writers", "", &model);
        let run = dinmo_in(
            project.path(),
            &["plan", "--format", "json"],
            &[("DATAFUSION_EXECUTION_BATCH_SIZE", batch_size)],
        );
        assert_eq!(code(&run), 0, "batch size {batch_size}: {}", describe(&run));
        let report: serde_json::Value = serde_json::from_str(&stdout(&run)).unwrap();
        outputs.push(report["syncs"][0]["counts"].clone());
    }
    assert_eq!(outputs[0]["new_rows"], 9);
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
}

#[test]
fn text_in_one_file_and_numbers_in_another_is_one_error_naming_column_types_and_files() {
    let project = drift_project("string_vs_int", "", DAILY);
    let err = refused(
        &project,
        &["plan"],
        &[],
        &[
            "column `account_number` is Utf8View in file://",
            "day=2026-11-01/part-0.parquet but Int64 in file://",
            "day=2026-11-02/part-0.parquet",
            "pin the column's type in the source's `schema:`",
            "model `daily`: not planned: source `events` failed (its error is the one reported at dinmo.yml)",
        ],
    );
    // Said once: the model reading it does not add "table not found".
    assert!(!err.contains("not found"), "{err}");

    // Pinning the column as text reads both.
    project.write(
        "dinmo.yml",
        &project_yml("    schema:\n      account_number: VARCHAR\n"),
    );
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    assert!(
        project
            .output_rows("daily.files")
            .iter()
            .any(|row| row.starts_with("42,"))
    );
}

#[test]
fn a_zone_on_some_files_only_needs_naive_timestamp_zone() {
    let project = drift_project("zoned_naive", "", DAILY);
    refused(
        &project,
        &["plan"],
        &[],
        &["column `ts` is Timestamp(µs, \"UTC\")", "set `naive_timestamp_zone`"],
    );

    // Said to be at +01:00, the column is read in +01:00: the naive 2026-11-02 00:30 is
    // 2026-11-01 23:30 UTC, and its day (in +01:00) starts at 2026-11-01 23:00 UTC.
    project.write(
        "dinmo.yml",
        &project_yml("    options:\n      naive_timestamp_zone: \"+01:00\"\n"),
    );
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    let rows = project.output_rows("daily.files");
    assert!(
        rows.iter()
            .any(|row| row.starts_with("N1,") && row.contains(",2026-11-01T23:00:00,")),
        "{rows:?}"
    );

    project.write(
        "dinmo.yml",
        &project_yml("    options:\n      naive_timestamp_zone: Mars/Olympus\n"),
    );
    refused(
        &project,
        &["validate"],
        &[],
        &["naive_timestamp_zone `Mars/Olympus` is not a time zone"],
    );
}

#[test]
fn a_pinned_schema_names_the_file_that_breaks_it() {
    let project = drift_project("pinned_wide", "    schema:\n      n: INT\n", DAILY);
    refused(
        &project,
        &["plan"],
        &[],
        &[
            "column `n` is Int64 in file://",
            "day=2026-11-02/part-0.parquet",
            "does not fit the type the source's `schema:` pins (Int32)",
        ],
    );

    project.write(
        "dinmo.yml",
        &project_yml("    schema:\n      n: BIGINT\n      missing: INT\n"),
    );
    refused(
        &project,
        &["plan"],
        &[],
        &["column `missing` is pinned in the source's `schema:` but no file has it"],
    );

    project.write("dinmo.yml", &project_yml("    schema:\n      n: NOSUCHTYPE\n"));
    refused(
        &project,
        &["plan"],
        &[],
        &["schema: column `n`: `NOSUCHTYPE` is not a type DataFusion knows"],
    );

    project.write("dinmo.yml", &project_yml("    schema:\n      n: DECIMAL(20, 0)\n"));
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
}

#[test]
fn csv_files_with_different_headers_are_named() {
    let project = TestProject::new(
        "name: csv
sources:
  events:
    location: data/
    format: csv
destinations:
  files:
    type: zuora_file
    path: out
",
        &[("daily.yml", DAILY)],
    );
    project.write(
        "data/a.csv",
        "account_number,event_type,ts,n\nA1,api_call,2026-11-01T00:00:00,1\n",
    );
    project.write(
        "data/b.csv",
        "account_number,ts,event_type,n\nA1,2026-11-02T00:00:00,api_call,1\n",
    );
    refused(
        &project,
        &["plan"],
        &[],
        &[
            "CSV files are read by column position",
            "a.csv has [account_number, event_type, ts, n]",
            "b.csv has [account_number, ts, event_type, n]",
        ],
    );

    // Same header, numbers in one file and text in the other: text.
    project.write(
        "data/a.csv",
        "account_number,event_type,ts,n\n17,api_call,2026-11-01T00:00:00,1\n",
    );
    project.write(
        "data/b.csv",
        "account_number,event_type,ts,n\nA-42,api_call,2026-11-02T00:00:00,1\n",
    );
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    let rows = project.output_rows("daily.files");
    assert!(rows.iter().any(|row| row.starts_with("17,")), "{rows:?}");
    assert!(rows.iter().any(|row| row.starts_with("A-42,")), "{rows:?}");
}
