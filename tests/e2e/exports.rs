//! Exports as warehouses and lakehouses write them (delta-rs, pyarrow as Spark writes, DuckDB),
//! each read as DuckDB (or delta-rs) reads the same files, or refused naming what to fix.

use std::path::Path;

use crate::support::*;

/// A project whose source `events` is `source` (its YAML lines below `events:`), feeding one
/// `zuora_file` sync (`usage.files`) of the rows of `sql`, keyed by `key`: `sql` gives
/// `account`, `uom`, `usage_day` and `qty`.
fn export_project(source: &str, sql: &str, key: &str) -> TestProject {
    TestProject::new(
        &format!(
            "name: exports
sources:
  events:
{source}destinations:
  files:
    type: zuora_file
    path: out
"
        ),
        &[(
            "usage.yml",
            &format!(
                "model: usage
sql: {sql}
primary_key: [{key}]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
"
            ),
        )],
    )
}

/// One usage row per account of `events` (a day fixed), from `location`.
fn accounts_project(location: &str, options: &str) -> TestProject {
    export_project(
        &format!("    location: {location}\n{options}"),
        "SELECT account, 'API_CALL' AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, qty FROM events",
        "account",
    )
}

/// Runs a Python script (with pyarrow, DuckDB and deltalake) with `args`; the lines it prints.
fn python_lines(script: &str, args: &[&Path]) -> Vec<String> {
    let mut argv: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), script.as_ref()];
    argv.extend(args.iter().map(|a| a.as_os_str()));
    python_output(argv)
}

/// Cells `columns` (0: AccountNumber, 2: UnitOfMeasure, 3: StartDateTime, 4: Quantity) of
/// every row `usage.files` sent, comma-joined, sorted.
fn sent(project: &TestProject, columns: &[usize]) -> Vec<String> {
    let mut rows: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            columns.iter().map(|&c| cells[c]).collect::<Vec<_>>().join(",")
        })
        .collect();
    rows.sort();
    rows
}

/// Writes one (account, qty = 1) Parquet file per `(path, account)` under the project.
fn write_files(project: &TestProject, files: &[(&str, &str)]) {
    let mut script = String::from("import os, pyarrow as pa, pyarrow.parquet as pq\n");
    for (path, account) in files {
        let path = project.path().join(path);
        script.push_str(&format!(
            "os.makedirs({parent:?}, exist_ok=True)\npq.write_table(pa.table({{'account': [{account:?}], 'qty': pa.array([1], pa.int64())}}), {path:?})\n",
            parent = path.parent().unwrap().display().to_string(),
            path = path.display().to_string(),
        ));
    }
    python_lines(&script, &[]);
}

/// A Delta Lake table written and then edited by delta-rs (the `deltalake` package): after a
/// DELETE, the deleted day's file stays in the folder until a VACUUM. Read as plain Parquet it
/// would be sent; the source is refused, naming the log, unless `ignore_table_log` says the
/// files are what to send.
#[test]
fn a_delta_table_read_as_parquet_is_refused_naming_its_log() {
    let project = TestProject::standard();
    let table = project.path().join("data/events");
    python_lines(
        "import sys, os, pyarrow as pa, deltalake
path = sys.argv[1]
rows = pa.table({'account': ['A1', 'A2', 'A3', 'A4'], 'qty': [1, 2, 3, 4],
                 'day': ['2026-11-01', '2026-11-01', '2026-11-02', '2026-11-02']})
deltalake.write_deltalake(path, rows, partition_by=['day'])
deltalake.DeltaTable(path).delete(\"day = '2026-11-02'\")
assert deltalake.DeltaTable(path).to_pyarrow_table().num_rows == 2
# deltalake 1.6 aborts while the interpreter shuts down (after its work is done): leave at once.
os._exit(0)",
        &[&table],
    );
    let before = project.state_digest();
    exits_with(
        &project.dinmo(&["run"]),
        1,
        &[
            "is a Delta Lake table",
            "_delta_log/",
            "ignore_table_log: true",
            "events",
        ],
    );
    assert_eq!(project.state_digest(), before, "nothing sent");
    // A source pointing at one partition of the table is inside it all the same.
    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write(
        "dinmo.yml",
        &yml.replace(
            "    location: data/events/\n",
            "    location: data/events/day=2026-11-02/\n",
        ),
    );
    exits_with(
        &project.dinmo(&["plan"]),
        1,
        &["is a Delta Lake table, or inside one", "data/events/_delta_log/"],
    );
    project.write("dinmo.yml", &yml);

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
    exits_with(
        &project.dinmo(&["plan"]),
        1,
        &["is an Iceberg table", "metadata/", "ignore_table_log"],
    );
}

/// Spark's default timestamps are INT96, in files without an Arrow schema (written here by
/// pyarrow the same way): read as nanoseconds they wrap around outside 1677–2262. INT96 holds
/// UTC instants, so it unifies with another tool's UTC-adjusted TIMESTAMP_MICROS file of the
/// same export without `naive_timestamp_zone`. dinmo must send what DuckDB reads.
#[test]
fn int96_timestamps_read_as_duckdb_reads_them_over_their_whole_range() {
    let project = export_project(
        "    location: data/events/\n",
        "SELECT account, 'API_CALL' AS uom, ts AS usage_day, qty FROM events",
        "account",
    );
    let file = project.path().join("data/events/part-00000.parquet");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let duckdb = python_lines(
        "import sys, datetime as dt, pyarrow as pa, pyarrow.parquet as pq, duckdb
ts = pa.array([dt.datetime(1601, 11, 1, 2, 14, 26), dt.datetime(2026, 11, 18), dt.datetime(9999, 11, 1, 23, 59, 59)],
              pa.timestamp('us'))
table = pa.table({'account': ['A1', 'A2', 'A3'], 'ts': ts, 'qty': pa.array([1, 2, 3], pa.int64())})
pq.write_table(table, sys.argv[1], use_deprecated_int96_timestamps=True, store_schema=False)
# Another tool's file of the same export: TIMESTAMP_MICROS adjusted to UTC.
zoned = pa.table({'account': ['A4'], 'ts': pa.array([dt.datetime(2026, 11, 19, 12, tzinfo=dt.timezone.utc)], pa.timestamp('us', tz='UTC')),
                  'qty': pa.array([4], pa.int64())})
pq.write_table(zoned, sys.argv[1].replace('part-00000', 'part-00001'))
duckdb.sql(\"SET TimeZone = 'UTC'\")
folder = sys.argv[1].rsplit('/', 1)[0]
for account, ts in duckdb.sql(f\"SELECT account, strftime(ts, '%Y-%m-%dT%H:%M:%S') FROM read_parquet('{folder}/*.parquet', union_by_name = true) ORDER BY account\").fetchall():
    print(f'{account},{ts}')",
        &[&file],
    );
    assert_eq!(duckdb.len(), 4);
    exits(&project.dinmo(&["run"]), 0);
    assert_eq!(sent(&project, &[0, 3]), duckdb);
}

/// A CSV export (written by DuckDB, as Spark or a warehouse unload writes it) whose account
/// numbers have leading zeros in rows past what type inference samples: a number would send
/// `0001042` as `1042`, another customer's account. They are sent as DuckDB's sniffer reads
/// them, as text.
#[test]
fn csv_identifiers_with_leading_zeros_stay_text() {
    let project = export_project(
        "    location: data/events/\n    format: csv\n",
        "SELECT account_number AS account, 'API_CALL' AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, \
         SUM(qty) AS qty FROM events GROUP BY account_number",
        "account",
    );
    let file = project.path().join("data/events/part-00000.csv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let duckdb = python_lines(
        "import sys, duckdb
duckdb.sql(\"\"\"COPY (SELECT CASE WHEN i < 3000 THEN CAST(1000 + i AS VARCHAR) ELSE lpad(CAST(i AS VARCHAR), 7, '0') END
                 AS account_number, 1 AS qty FROM range(3005) t(i)) TO '\"\"\" + sys.argv[1] + \"' (HEADER)\")
for row in duckdb.sql(f\"SELECT account_number FROM read_csv('{sys.argv[1]}') WHERE account_number LIKE '0%' ORDER BY 1\").fetchall():
    print(row[0])",
        &[&file],
    );
    assert_eq!(duckdb.len(), 5, "DuckDB reads the zeros as text");
    exits(&project.dinmo(&["run"]), 0);
    let accounts = sent(&project, &[0]);
    assert_eq!(accounts.len(), 3005);
    for account in &duckdb {
        assert!(accounts.contains(account), "{account} not sent as written");
    }
}

/// Compressed CSV (gzip, Snowflake's default unload) and NDJSON (zstd; bzip2 and xz are read
/// the same way) written by DuckDB: read by their extension, every row sent as DuckDB sums
/// them. Two compressions in one source are refused, naming a file of each.
#[test]
fn compressed_csv_and_ndjson_are_read_by_their_extension() {
    for (format, copy, extension) in [
        ("csv", "(HEADER, COMPRESSION gzip)", "csv.gz"),
        ("json", "(FORMAT json, COMPRESSION zstd)", "json.zst"),
    ] {
        let project = export_project(
            &format!("    location: data/events/\n    format: {format}\n"),
            "SELECT account, 'API_CALL' AS uom, CAST(day AS TIMESTAMP) AS usage_day, SUM(qty) AS qty FROM events \
             GROUP BY account, day",
            "account, usage_day",
        );
        let folder = project.path().join("data/events/day=2026-11-18");
        std::fs::create_dir_all(&folder).unwrap();
        let duckdb = python_lines(
            &format!(
                "import sys, duckdb
for part in range(2):
    duckdb.sql(f\"\"\"COPY (SELECT 'A' || (i % 7) AS account, i AS qty FROM range({{part * 500}}, {{part * 500 + 500}}) t(i))
                    TO '{{sys.argv[1]}}/part-{{part}}.{extension}' {copy}\"\"\")
for account, qty in duckdb.sql(f\"SELECT account, SUM(qty) FROM read_{format}('{{sys.argv[1]}}/*.{extension}') GROUP BY 1 ORDER BY 1\").fetchall():
    print(f'{{account}},{{qty}}')"
            ),
            &[&folder],
        );
        assert_eq!(duckdb.len(), 7, "{format}");
        exits(&project.dinmo(&["run"]), 0);
        assert_eq!(sent(&project, &[0, 4]), duckdb, "{format}");

        // A file of another compression beside them.
        std::fs::copy(
            folder.join(format!("part-0.{extension}")),
            folder.join(format!("part-9.{format}.xz")),
        )
        .unwrap();
        exits_with(
            &project.dinmo(&["plan"]),
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
    let project = export_project(
        "    location: data/events/\n",
        "SELECT account, COALESCE(region, 'none') AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, qty \
         FROM events WHERE region IS NULL OR region <> 'us'",
        "account",
    );
    let duckdb = python_lines(
        "import sys, pyarrow as pa, pyarrow.dataset as ds, duckdb
rows = pa.table({'account': ['A1', 'A2', 'A3'], 'qty': pa.array([1, 2, 3], pa.int64()), 'region': ['eu', None, 'us']})
ds.write_dataset(rows, sys.argv[1], format='parquet', partitioning=['region'], partitioning_flavor='hive')
query = f\"SELECT account, COALESCE(region, 'none') FROM read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true) WHERE region IS NULL OR region <> 'us' ORDER BY 1\"
for account, region in duckdb.sql(query).fetchall():
    print(f'{account},{region}')",
        &[&project.path().join("data/events")],
    );
    assert_eq!(duckdb, ["A1,eu", "A2,none"]);
    exits(&project.dinmo(&["run"]), 0);
    assert_eq!(sent(&project, &[0, 2]), duckdb);
}

/// Every file under a source's location is read or named: date folders (a common unload
/// layout) and a glob through them are read, names starting with `_` or `.` skipped as Spark
/// skips them; a folder that is not `key=value` beside partition folders, a file at the top of
/// a partitioned folder, and two partition layouts in one source are refused, naming the
/// files.
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
        exits(&project.dinmo(&["run"]), 0);
        assert_eq!(sent(&project, &[0]), ["A1", "A2"], "{location}");
    }

    let refused = |options: &str, files: &[(&str, &str)], needles: &[&str]| {
        let project = accounts_project("data/events/", options);
        write_files(&project, files);
        exits_with(&project.dinmo(&["plan"]), 1, needles);
    };
    refused(
        "",
        &[
            ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
            ("data/events/2026-11-03/part-0.parquet", "A2"),
        ],
        &["different partition layouts", "`dt=…/`", "2026-11-03/part-0.parquet"],
    );
    refused(
        "    options:\n      partition_columns: [dt]\n",
        &[
            ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
            ("data/events/stray.parquet", "A2"),
        ],
        &["never be read", "stray.parquet (at the top of the partitioned folder)"],
    );
    refused(
        "",
        &[
            ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
            ("data/events/dt=2026-11-02/region=eu/part-0.parquet", "A2"),
        ],
        &[
            "different partition layouts",
            "`dt=…/``region=…/`",
            "region=eu/part-0.parquet",
        ],
    );
}

/// A glob with a wildcard in a `key=value` folder segment selects folder by folder, as a
/// shell does; a stale retry's file beside a day's export repeats its keys, and the error
/// names both files; `exclude:` leaves the stale file out. Compared with DuckDB's reading of
/// the files the globs select.
#[test]
fn globs_select_folder_by_folder_and_exclude_leaves_files_out() {
    let files = [
        ("data/events/dt=2026-11-01/part-0.parquet", "A1"),
        ("data/events/dt=2026-11-02/part-0.parquet", "A2"),
        ("data/events/dt=2026-11-02/attempt-1.parquet", "A2"),
        ("data/events/notes/readme.parquet", "N1"),
    ];
    let project = accounts_project("data/events/dt=*/*.parquet", "");
    write_files(&project, &files);
    exits_with(
        &project.dinmo(&["run"]),
        1,
        &[
            "primary key (account) is not unique: (account=A2) ×2",
            "dt=2026-11-02/attempt-1.parquet and file://",
            "dt=2026-11-02/part-0.parquet",
        ],
    );
    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write(
        "dinmo.yml",
        &yml.replace(
            "    location: data/events/dt=*/*.parquet\n",
            "    location: data/events/dt=*/*.parquet\n    options:\n      exclude: [\"**/attempt-*\"]\n",
        ),
    );
    let duckdb = python_lines(
        "import sys, duckdb
for (account,) in duckdb.sql(f\"SELECT account FROM read_parquet('{sys.argv[1]}/dt=*/part-*.parquet') ORDER BY 1\").fetchall():
    print(account)",
        &[&project.path().join("data/events")],
    );
    assert_eq!(duckdb, ["A1", "A2"]);
    exits(&project.dinmo(&["run"]), 0);
    assert_eq!(sent(&project, &[0]), duckdb);
    // A glob that is not one is said.
    project.write(
        "dinmo.yml",
        &yml.replace(
            "    location: data/events/dt=*/*.parquet\n",
            "    location: data/events/\n    options:\n      exclude: [\"[\"]\n",
        ),
    );
    exits_with(&project.dinmo(&["plan"]), 1, &["exclude glob `[` is not a glob"]);
}

/// Polars' `partition_by` keeps the partition column in the files and in the folder names:
/// read as Polars reads it back; a file in the wrong folder is refused, naming it.
#[test]
fn a_polars_partitioned_export_reads_when_folder_and_file_agree() {
    let project = export_project(
        "    location: data/events/\n",
        "SELECT account, 'API_CALL' AS uom, CAST(dt AS TIMESTAMP) AS usage_day, qty FROM events",
        "account",
    );
    let polars = python_lines(
        "import sys, datetime as dt, polars as pl
rows = pl.DataFrame({'account': ['A1', 'A2', 'A3'], 'qty': [1, 2, 3],
                     'dt': [dt.date(2026, 11, 1), dt.date(2026, 11, 1), dt.date(2026, 11, 2)]})
rows.write_parquet(sys.argv[1], partition_by=['dt'])
for account, day in pl.read_parquet(sys.argv[1], hive_partitioning=True).sort('account').select('account', 'dt').iter_rows():
    print(f'{account},{day}T00:00:00')",
        &[&project.path().join("data/events")],
    );
    assert_eq!(polars.len(), 3);
    exits(&project.dinmo(&["run"]), 0);
    assert_eq!(sent(&project, &[0, 3]), polars);

    let folder = project.path().join("data/events/dt=2026-11-02");
    let wrong = folder.join("00000001.parquet");
    let misplaced = std::fs::read_dir(project.path().join("data/events/dt=2026-11-01"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(misplaced, &wrong).unwrap();
    refused(
        &project,
        &["run"],
        &[],
        &[
            "dt=2026-11-02/00000001.parquet holds the partition column `dt` with `2026-11-01`",
            "its folder `dt=2026-11-02`",
        ],
    );
}

/// A column whose name changed case in a newer day's files, a file lacking the key column,
/// and a JSON array file in an NDJSON source are refused naming the files and what to do.
#[test]
fn a_column_that_changed_case_and_a_json_array_are_named() {
    let project = accounts_project("data/events/", "");
    write_files(&project, &[("data/events/dt=2026-11-01/part-0.parquet", "A1")]);
    std::fs::create_dir_all(project.path().join("data/events/dt=2026-11-02")).unwrap();
    python_lines(
        "import sys, pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({'ACCOUNT': ['A2'], 'qty': pa.array([1], pa.int64())}), sys.argv[1])",
        &[&project.path().join("data/events/dt=2026-11-02/part-0.parquet")],
    );
    refused(
        &project,
        &["plan"],
        &[],
        &[
            "column `account` in file://",
            "dt=2026-11-01/part-0.parquet is `ACCOUNT` in",
            "dt=2026-11-02/part-0.parquet",
            "case-sensitive",
        ],
    );

    // A newer file without the key column at all: its rows' key is null, and the error names it.
    std::fs::remove_file(project.path().join("data/events/dt=2026-11-02/part-0.parquet")).unwrap();
    python_lines(
        "import sys, pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({'customer': ['A2'], 'qty': pa.array([1], pa.int64())}), sys.argv[1])",
        &[&project.path().join("data/events/dt=2026-11-02/part-0.parquet")],
    );
    refused(
        &project,
        &["run"],
        &[],
        &[
            "primary key (account) is null in 1 row(s)",
            "These files lack a key column",
            "dt=2026-11-02/part-0.parquet (no `account`)",
        ],
    );

    let project = accounts_project("data/events/", "    format: json\n");
    project.write(
        "data/events/part-0.json",
        "[\n  {\"account\": \"A1\", \"qty\": 1},\n  {\"account\": \"A2\", \"qty\": 2}\n]\n",
    );
    refused(
        &project,
        &["plan"],
        &[],
        &["part-0.json is a JSON array", "newline-delimited JSON"],
    );
}

/// Exports written by Apache Spark itself (pyspark, local mode, its defaults: INT96
/// timestamps, `_SUCCESS` and `.crc` files, a null partition as `__HIVE_DEFAULT_PARTITION__`,
/// gzip CSV) are read as DuckDB reads the same files.
#[test]
fn spark_exports_read_as_duckdb_reads_them() {
    let project = TestProject::new(
        "name: spark
sources:
  events:
    location: exports/events/
  accounts:
    location: exports/accounts/
    format: csv
destinations:
  files:
    type: zuora_file
    path: out
",
        &[
            (
                "usage.yml",
                "model: usage
sql: SELECT account, COALESCE(dt, 'none') AS uom, ts AS usage_day, qty FROM events
primary_key: [account]
syncs:
  - destination: files
    mapping:
      AccountNumber: account
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
            ),
            (
                "accounts.yml",
                "model: accounts
sql: SELECT account_number, 'API_CALL' AS uom, CAST('2026-11-18' AS TIMESTAMP) AS usage_day, qty FROM accounts
primary_key: [account_number]
syncs:
  - destination: files
    mapping:
      AccountNumber: account_number
      UnitOfMeasure: uom
      StartDateTime: usage_day
      Quantity: qty
",
            ),
        ],
    );
    // Needs pyspark and a Java 17+ runtime (`.ci/run` installs both).
    let lines = fixture("spark_exports.py", &[project.path().join("exports").as_os_str()]);
    let duckdb = |prefix: &str| -> Vec<String> {
        let mut rows: Vec<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .collect();
        rows.sort();
        rows
    };
    exits(&project.dinmo(&["run"]), 0);
    // account, dt (none when null), ts.
    let events: Vec<String> = sent(&project, &[0, 2, 3])
        .into_iter()
        .filter(|row| row.starts_with('A'))
        .map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            let day = if cells[1] == "none" { "" } else { cells[1] };
            format!("{},{day},{}", cells[0], cells[2].trim_end_matches('Z'))
        })
        .collect();
    assert_eq!(events, duckdb("events "));
    let accounts: Vec<String> = project
        .output_rows("accounts.files")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            format!("{},{}", cells[0], cells[4])
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(accounts, duckdb("accounts "));
}
