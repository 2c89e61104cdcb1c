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

/// Runs a Python script (with pyarrow, DuckDB and deltalake) with `args`.
fn python_script(script: &str, args: &[&std::path::Path]) {
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("runs python");
    assert!(output.status.success(), "{}", describe(&output));
}

/// A Delta Lake table written and then edited by delta-rs (the `deltalake` package): after a
/// DELETE, the deleted day's file stays in the folder until a VACUUM. Read as plain Parquet it
/// would be sent; the source is refused, naming the log, unless `ignore_table_log` says the
/// files are what to send.
#[test]
fn a_delta_table_read_as_parquet_is_refused_naming_its_log() {
    let project = TestProject::standard();
    let table = project.path().join("data/events");
    python_script(
        "import sys, pyarrow as pa, deltalake
path = sys.argv[1]
rows = pa.table({'account': ['A1', 'A2', 'A3', 'A4'], 'qty': [1, 2, 3, 4],
                 'day': ['2026-11-01', '2026-11-01', '2026-11-02', '2026-11-02']})
deltalake.write_deltalake(path, rows, partition_by=['day'])
deltalake.DeltaTable(path).delete(\"day = '2026-11-02'\")
assert deltalake.DeltaTable(path).to_pyarrow_table().num_rows == 2
# deltalake 1.6 aborts while the interpreter shuts down (after its work is done): leave at once.
import os
os._exit(0)",
        &[&table],
    );
    let before = project.state_digest();
    let out = project.dinmo(&["run"]);
    exits_with(
        &out,
        1,
        &[
            "is a Delta Lake table",
            "_delta_log/",
            "ignore_table_log: true",
            "events",
        ],
    );
    assert_eq!(project.state_digest(), before, "nothing sent");

    // The escape hatch: the folder's files, the deleted day's included, as the user asked.
    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write(
        "dinmo.yml",
        &yml.replace(
            "    location: data/events/\n",
            "    location: data/events/\n    options:\n      ignore_table_log: true\n",
        ),
    );
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 4"), "{}", describe(&out));
}

/// An Iceberg table's folder (its `metadata/*.metadata.json` written here by hand beside
/// Parquet data files, as Iceberg lays them out) is refused the same way.
#[test]
fn an_iceberg_table_read_as_parquet_is_refused_naming_its_metadata() {
    let project = TestProject::standard();
    project.export_day("2026-11-01", &[("A1", 1)]);
    project.write(
        "data/events/metadata/00001-6d3c.metadata.json",
        "{\"format-version\": 2}",
    );
    let out = project.dinmo(&["plan"]);
    exits_with(&out, 1, &["is an Iceberg table", "metadata/", "ignore_table_log"]);
}

/// Spark's default timestamps are INT96, in files without an Arrow schema (written here by
/// pyarrow the same way): read as nanoseconds they wrap around outside 1677–2262. dinmo must
/// send what DuckDB reads from the same file.
#[test]
fn int96_timestamps_read_as_duckdb_reads_them_over_their_whole_range() {
    let project = TestProject::new(
        "name: int96
sources:
  events:
    location: data/events/
destinations:
  files:
    type: zuora_file
    path: out
",
        &[(
            "usage.yml",
            "model: usage
sql: SELECT account, 'API_CALL' AS uom, ts AS usage_day, qty FROM events
primary_key: [account]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
        )],
    );
    let file = project.path().join("data/events/part-00000.parquet");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, datetime as dt, pyarrow as pa, pyarrow.parquet as pq, duckdb
ts = pa.array([dt.datetime(1601, 11, 1, 2, 14, 26), dt.datetime(2026, 11, 18), dt.datetime(9999, 11, 1, 23, 59, 59)],
              pa.timestamp('us'))
table = pa.table({'account': ['A1', 'A2', 'A3'], 'ts': ts, 'qty': pa.array([1, 2, 3], pa.int64())})
pq.write_table(table, sys.argv[1], use_deprecated_int96_timestamps=True, store_schema=False)
for account, ts in duckdb.sql(f\"SELECT account, strftime(ts, '%Y-%m-%dT%H:%M:%S') FROM '{sys.argv[1]}' ORDER BY account\").fetchall():
    print(f'{account},{ts}')",
        )
        .arg(&file)
        .output()
        .expect("runs python");
    assert!(output.status.success(), "{}", describe(&output));
    let duckdb: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(duckdb.len(), 3);
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    let mut sent: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            format!("{},{}", cells[0], cells[3])
        })
        .collect();
    sent.sort();
    assert_eq!(sent, duckdb);
}

/// A CSV export (written by DuckDB, as Spark or a warehouse unload writes it) whose account
/// numbers have leading zeros in rows past what type inference samples: a number would send
/// `0001042` as `1042`, another customer's account. They are sent as DuckDB's sniffer reads
/// them, as text; the quantity column stays a number.
#[test]
fn csv_identifiers_with_leading_zeros_stay_text() {
    let project = TestProject::new(
        "name: csvzeros
sources:
  events:
    location: data/events/
    format: csv
destinations:
  files:
    type: zuora_file
    path: out
",
        &[(
            "usage.yml",
            "model: usage
sql: SELECT account_number, 'API_CALL' AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, SUM(qty) AS qty FROM events GROUP BY account_number
primary_key: [account_number]
syncs:
  - destination: files
    mapping:
      AccountNumber: account_number
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
        )],
    );
    let file = project.path().join("data/events/part-00000.csv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, duckdb
duckdb.sql(\"\"\"COPY (SELECT CASE WHEN i < 3000 THEN CAST(1000 + i AS VARCHAR) ELSE lpad(CAST(i AS VARCHAR), 7, '0') END
                 AS account_number, 1 AS qty FROM range(3005) t(i)) TO '\"\"\" + sys.argv[1] + \"' (HEADER)\")
for row in duckdb.sql(f\"SELECT account_number FROM read_csv('{sys.argv[1]}') WHERE account_number LIKE '0%' ORDER BY 1\").fetchall():
    print(row[0])",
        )
        .arg(&file)
        .output()
        .expect("runs python");
    assert!(output.status.success(), "{}", describe(&output));
    let duckdb: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(duckdb.len(), 5, "DuckDB reads the zeros as text");
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    let accounts: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|row| row.split(',').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(accounts.len(), 3005);
    for account in &duckdb {
        assert!(
            accounts.contains(account),
            "{account} not sent as written: {:?}",
            &accounts[..5]
        );
    }
}

/// A project reading `events` in `format`, one usage row per (account, day) summed.
fn summing_project(format: &str) -> TestProject {
    TestProject::new(
        &format!(
            "name: compressed
sources:
  events:
    location: data/events/
    format: {format}
destinations:
  files:
    type: zuora_file
    path: out
"
        ),
        &[(
            "usage.yml",
            "model: usage
sql: SELECT account, 'API_CALL' AS uom, CAST(day AS TIMESTAMP) AS usage_day, SUM(qty) AS qty FROM events GROUP BY account, day
primary_key: [account, usage_day]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
        )],
    )
}

/// Compressed CSV (gzip, Snowflake's default unload) and NDJSON (zstd, bzip2 and xz are read
/// the same way) written by DuckDB: read by their extension, every row sent as DuckDB sums
/// them. Two compressions in one source are refused, naming a file of each.
#[test]
fn compressed_csv_and_ndjson_are_read_by_their_extension() {
    for (format, copy, extension) in [
        ("csv", "(HEADER, COMPRESSION gzip)", "csv.gz"),
        ("json", "(FORMAT json, COMPRESSION zstd)", "json.zst"),
    ] {
        let project = summing_project(format);
        let folder = project.path().join("data/events/day=2026-11-18");
        std::fs::create_dir_all(&folder).unwrap();
        let output = std::process::Command::new(python())
            .arg("-c")
            .arg(format!(
                "import sys, duckdb
for part in range(2):
    duckdb.sql(f\"\"\"COPY (SELECT 'A' || (i % 7) AS account, i AS qty FROM range({{part * 500}}, {{part * 500 + 500}}) t(i))
                    TO '{{sys.argv[1]}}/part-{{part}}.{extension}' {copy}\"\"\")
for account, qty in duckdb.sql(f\"SELECT account, SUM(qty) FROM read_{format}('{{sys.argv[1]}}/*.{extension}') GROUP BY 1 ORDER BY 1\").fetchall():
    print(f'{{account}},{{qty}}')"
            ))
            .arg(&folder)
            .output()
            .expect("runs python");
        assert!(output.status.success(), "{format}: {}", describe(&output));
        let duckdb: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(duckdb.len(), 7, "{format}");
        let out = project.dinmo(&["run"]);
        exits(&out, 0);
        let mut sent: Vec<String> = project
            .output_rows("usage.files")
            .iter()
            .map(|row| {
                let cells: Vec<&str> = row.split(',').collect();
                format!("{},{}", cells[0], cells[4])
            })
            .collect();
        sent.sort();
        assert_eq!(sent, duckdb, "{format}");

        // A file of another compression beside them.
        std::fs::copy(
            folder.join(format!("part-0.{extension}")),
            folder.join(format!("part-9.{format}.xz")),
        )
        .unwrap();
        let out = project.dinmo(&["plan"]);
        exits_with(
            &out,
            1,
            &["mix compressions", &format!("part-9.{format}.xz"), "file_extension"],
        );
    }
}

/// A null partition value, which Spark, Hive and pyarrow write as the folder
/// `region=__HIVE_DEFAULT_PARTITION__`, reads as NULL, as DuckDB reads it; a filter on the
/// partition column still works.
#[test]
fn the_hive_default_partition_reads_as_null() {
    let project = TestProject::new(
        "name: hive
sources:
  events:
    location: data/events/
destinations:
  files:
    type: zuora_file
    path: out
",
        &[(
            "usage.yml",
            "model: usage
sql: SELECT account, COALESCE(region, 'none') AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, qty FROM events WHERE region IS NULL OR region <> 'us'
primary_key: [account]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
        )],
    );
    let folder = project.path().join("data/events");
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, pyarrow as pa, pyarrow.dataset as ds, duckdb
rows = pa.table({'account': ['A1', 'A2', 'A3'], 'qty': pa.array([1, 2, 3], pa.int64()), 'region': ['eu', None, 'us']})
ds.write_dataset(rows, sys.argv[1], format='parquet', partitioning=['region'], partitioning_flavor='hive')
query = f\"SELECT account, COALESCE(region, 'none') FROM read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true) WHERE region IS NULL OR region <> 'us' ORDER BY 1\"
for account, region in duckdb.sql(query).fetchall():
    print(f'{account},{region}')",
        )
        .arg(&folder)
        .output()
        .expect("runs python");
    assert!(output.status.success(), "{}", describe(&output));
    let duckdb: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(duckdb, ["A1,eu", "A2,none"]);
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    let mut sent: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            format!("{},{}", cells[0], cells[2])
        })
        .collect();
    sent.sort();
    assert_eq!(sent, duckdb);
}

/// Writes one (account, qty = 1) Parquet file per `(path, account)` under the project, with
/// pyarrow.
fn write_files(project: &TestProject, files: &[(&str, &str)]) {
    let mut script = String::from("import sys, os, pyarrow as pa, pyarrow.parquet as pq\n");
    for (path, account) in files {
        let path = project.path().join(path);
        script.push_str(&format!(
            "os.makedirs({parent:?}, exist_ok=True)\npq.write_table(pa.table({{'account': [{account:?}], 'qty': pa.array([1], pa.int64())}}), {path:?})\n",
            parent = path.parent().unwrap().display().to_string(),
            path = path.display().to_string(),
        ));
    }
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .output()
        .expect("runs python");
    assert!(output.status.success(), "{}", describe(&output));
}

/// A project reading `location`, one usage row per account.
fn accounts_project(location: &str, options: &str) -> TestProject {
    TestProject::new(
        &format!(
            "name: layouts
sources:
  events:
    location: {location}
{options}destinations:
  files:
    type: zuora_file
    path: out
"
        ),
        &[(
            "usage.yml",
            "model: usage
sql: SELECT account, 'API_CALL' AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, qty FROM events
primary_key: [account]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
        )],
    )
}

/// Every file under a source's location is read or named: date folders (a common unload
/// layout) and a glob through them are read, names starting with `_` or `.` skipped as Spark
/// skips them; a folder that is not `key=value` beside
/// partition folders, a file at the top of a partitioned folder, and two partition layouts
/// in one source are refused, naming the files.
#[test]
fn every_file_under_a_source_is_read_or_named() {
    let dated = [
        ("data/events/2026/11/01/part-0.parquet", "A1"),
        ("data/events/2026/11/02/part-0.parquet", "A2"),
        // What Spark skips, dinmo skips: an aborted attempt's files, hidden files.
        ("data/events/_temporary/0/task_0/part-0.parquet", "T1"),
        ("data/events/2026/11/02/.part-1.parquet", "T2"),
        ("data/events/2026/11/02/_part-2.parquet", "T3"),
    ];
    for location in ["data/events/", "data/events/*/*/*/*.parquet"] {
        let project = accounts_project(location, "");
        write_files(&project, &dated);
        let out = project.dinmo(&["run"]);
        exits(&out, 0);
        assert!(stdout(&out).contains("new rows: 2"), "{location}: {}", describe(&out));
    }

    let project = accounts_project("data/events/", "");
    write_files(
        &project,
        &[
            ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
            ("data/events/2026-11-03/part-0.parquet", "A2"),
        ],
    );
    exits_with(
        &project.dinmo(&["plan"]),
        1,
        &["different partition layouts", "`dt=…/`", "2026-11-03/part-0.parquet"],
    );

    let project = accounts_project("data/events/", "    options:\n      partition_columns: [dt]\n");
    write_files(
        &project,
        &[
            ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
            ("data/events/stray.parquet", "A2"),
        ],
    );
    exits_with(
        &project.dinmo(&["plan"]),
        1,
        &["never be read", "stray.parquet (at the top of the partitioned folder)"],
    );

    let project = accounts_project("data/events/", "");
    write_files(
        &project,
        &[
            ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
            ("data/events/dt=2026-11-02/region=eu/part-0.parquet", "A2"),
        ],
    );
    exits_with(
        &project.dinmo(&["plan"]),
        1,
        &[
            "different partition layouts",
            "`dt=…/``region=…/`",
            "region=eu/part-0.parquet",
        ],
    );
}
