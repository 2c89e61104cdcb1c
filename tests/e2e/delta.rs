//! `format: delta`: Delta Lake tables written and edited by delta-rs (the `deltalake` package),
//! read through delta-rs at the live or a pinned version, each checked against delta-rs's own
//! reading of the same table (`tests/fixtures/delta_tables.py`).

use std::path::Path;

use crate::support::*;

/// A project reading the Delta table at `data/events` (`options` below the source, indented
/// six spaces) into one `zuora_file` sync `usage.files`, one row per account, its start the
/// table's `at`.
fn delta_project(options: &str) -> TestProject {
    delta_project_starting(options, "at")
}

/// [`delta_project`] with `start` (SQL) as each row's start.
fn delta_project_starting(options: &str, start: &str) -> TestProject {
    TestProject::new(
        &format!(
            "name: lake
sources:
  events:
    location: data/events
    format: delta
{options}destinations:
  files:
    type: zuora_file
    path: out
"
        ),
        &[(
            "usage.yml",
            &format!(
                "model: usage
sql: SELECT account, 'API_CALL' AS uom, {start} AS usage_day, qty FROM events
primary_key: [account]
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

/// Applies `steps` of `delta_tables.py` to `table`; what it printed (`account,qty` lines for
/// a `read` step).
fn delta(table: &Path, steps: &[&str]) -> Vec<String> {
    let mut args: Vec<&std::ffi::OsStr> = vec![table.as_os_str()];
    args.extend(steps.iter().map(std::ffi::OsStr::new));
    fixture("delta_tables.py", &args)
}

/// `account,qty` of every row `usage.files` sent, the quantity as a number, sorted.
fn sent(project: &TestProject) -> Vec<String> {
    let mut rows: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(',').collect();
            let qty: f64 = cells[4].parse().expect("a quantity");
            format!("{},{qty}", cells[0])
        })
        .collect();
    rows.sort();
    rows
}

/// The same lines with the quantity as a number (delta-rs prints `%g`).
fn numbers(lines: &[String]) -> Vec<String> {
    let mut rows: Vec<String> = lines
        .iter()
        .map(|line| {
            let (account, qty) = line.split_once(',').expect("account,qty");
            format!("{account},{}", qty.parse::<f64>().expect("a quantity"))
        })
        .collect();
    rows.sort();
    rows
}

/// The source versions the manifests of `usage.files` record, in run order.
fn recorded_versions(project: &TestProject) -> Vec<String> {
    let mut manifests = project.state_files("usage.files", "runs");
    manifests.sort();
    manifests
        .iter()
        .map(|path| {
            let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            manifest["source_versions"].to_string()
        })
        .collect()
}

/// The live version after a DELETE and an append: what delta-rs reads is sent (the deleted
/// day's file, still on disk, is not), the version read is shown by `plan` and recorded in
/// the run's manifest; later versions are read as they come, and a pinned older version says
/// that it goes back.
#[test]
fn a_delta_table_is_read_at_its_live_version_and_the_version_is_recorded() {
    let project = delta_project("");
    let table = project.path().join("data/events");
    let live = delta(&table, &["create", "delete-day", "append:B1", "read"]);
    assert_eq!(live.len(), 3, "{live:?}");

    let plan = project.dinmo(&["plan"]);
    exits(&plan, 0);
    assert!(
        stdout(&plan).contains("reads: events at Delta version 2"),
        "{}",
        describe(&plan)
    );
    exits(&project.dinmo(&["run"]), 0);
    assert_eq!(sent(&project), numbers(&live));
    assert_eq!(
        recorded_versions(&project),
        [r#"[{"delta_version":2,"source":"events"}]"#]
    );

    // A saved plan holds the rows the version it read held: applied after the table moved on,
    // it sends those, and its run records that version.
    delta(&table, &["append:C1"]);
    let saved = project.path().join("review.dinmo");
    exits(&project.dinmo(&["plan", "--out", saved.to_str().unwrap()]), 0);
    delta(&table, &["append:D1"]);
    exits(&project.dinmo(&["apply", saved.to_str().unwrap()]), 0);
    let mut expected = numbers(&live);
    expected.push("C1,7.25".to_string());
    expected.sort();
    assert_eq!(sent(&project), expected);
    let versions = recorded_versions(&project);
    assert_eq!(versions.last().unwrap(), r#"[{"delta_version":3,"source":"events"}]"#);
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    assert!(stdout(&run).contains("new rows: 1"), "{}", describe(&run));
    assert_eq!(sent(&project), numbers(&delta(&table, &["read"])));

    // Pinned to version 0 (before the DELETE): delta-rs's rows of that version, and a warning
    // that the version read went back.
    project.write(
        "dinmo.yml",
        &std::fs::read_to_string(project.path().join("dinmo.yml"))
            .unwrap()
            .replace(
                "    format: delta\n",
                "    format: delta\n    options:\n      version: 0\n",
            ),
    );
    let plan = project.dinmo(&["plan", "--format", "json"]);
    exits(&plan, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let sync = &report["syncs"][0];
    assert_eq!(sync["counts"]["model_rows"], delta(&table, &["read:0"]).len());
    assert_eq!(sync["counts"]["new_rows"], 2, "A3 and A4, deleted at version 1");
    assert!(
        sync["changed_since_last_run"][0]
            .as_str()
            .unwrap()
            .contains("Delta version 0, older than version 4"),
        "{sync}"
    );
}

/// A version or instant the table cannot give, options that do not apply to a table, and a
/// location inside the table are refused, naming what to fix, before anything is sent.
#[test]
fn delta_pins_and_options_that_cannot_be_read_are_refused() {
    for (options, location, needles) in [
        (
            "    options:\n      version: 99\n",
            "data/events",
            &["version 99 of the table cannot be read"][..],
        ),
        (
            "    options:\n      timestamp: 2000-01-01T00:00:00Z\n",
            "data/events",
            &["as of 2000-01-01", "pin a later timestamp"][..],
        ),
        (
            "    options:\n      timestamp: yesterday\n",
            "data/events",
            &["timestamp `yesterday` is not an RFC 3339 instant"][..],
        ),
        (
            "    options:\n      version: 1\n      timestamp: 2026-11-01T00:00:00Z\n",
            "data/events",
            &["set `version` or `timestamp`, not both"][..],
        ),
        (
            "    options:\n      partition_columns: [day]\n",
            "data/events",
            &["`partition_columns` applies to file sources, not to `format: delta`"][..],
        ),
        (
            "",
            "data/events/day=2026-11-01",
            &["no Delta table here", "the folder that holds its `_delta_log/`"][..],
        ),
    ] {
        let project = delta_project(options);
        delta(&project.path().join("data/events"), &["create"]);
        let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
        project.write(
            "dinmo.yml",
            &yml.replace("location: data/events\n", &format!("location: {location}\n")),
        );
        refused(&project, &["run"], &[], needles);
    }
    // `version` on a file source.
    let project = TestProject::standard();
    project.export_day("2026-11-01", &[("A1", 1)]);
    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write(
        "dinmo.yml",
        &yml.replace(
            "    location: data/events/\n",
            "    location: data/events/\n    options:\n      version: 3\n",
        ),
    );
    refused(&project, &["plan"], &[], &["apply to `format: delta` sources only"]);
}

/// A version whose files a VACUUM removed cannot be read: refused before anything runs,
/// naming a missing file.
#[test]
fn a_vacuumed_version_is_refused() {
    let project = delta_project("    options:\n      version: 0\n");
    delta(&project.path().join("data/events"), &["create", "delete-day", "vacuum"]);
    refused(
        &project,
        &["run"],
        &[],
        &[
            "version 0 of the table lists files that are gone",
            "day=2026-11-02/part-",
        ],
    );
}

/// Rows deleted by a deletion vector (here an inline one, as Spark's DELETE writes) are not
/// sent: dinmo reads what delta-rs's DataFusion reader reads.
#[test]
fn rows_deleted_by_a_deletion_vector_are_not_sent() {
    let project = delta_project_starting("", "CAST('2026-11-18' AS TIMESTAMP)");
    let live = delta(&project.path().join("data/events"), &["dv", "read"]);
    assert_eq!(live.len(), 4, "delta-rs applies the vector: {live:?}");
    exits(&project.dinmo(&["run"]), 0);
    assert_eq!(sent(&project), numbers(&live));
}

/// A Delta table on S3 (moto), its log and files uploaded as delta-rs wrote them: read through
/// dinmo's S3 store, with the rows delta-rs reads locally.
#[test]
fn a_delta_table_on_s3_is_read_at_its_live_version() {
    use crate::object_store_s3::{ENV, Warehouse};
    let warehouse = Warehouse::start();
    let project = delta_project("");
    let local = project.path().join("written/events");
    let live = delta(&local, &["create", "delete-day", "append:B1", "read"]);
    let mut files = Vec::new();
    collect_files(&local, &mut files);
    for file in &files {
        let key = format!("lake/events/{}", file.strip_prefix(&local).unwrap().display());
        warehouse.put(&key, std::fs::read(file).unwrap());
    }
    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write(
        "dinmo.yml",
        &yml.replace("location: data/events", "location: s3://warehouse/lake/events/"),
    );
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    env.push(("AWS_ENDPOINT", &warehouse.moto.endpoint));
    let out = dinmo_in(project.path(), &["run"], &env);
    exits(&out, 0);
    assert!(
        stdout(&out).contains("reads: events at Delta version 2"),
        "{}",
        describe(&out)
    );
    assert_eq!(sent(&project), numbers(&live));
}
