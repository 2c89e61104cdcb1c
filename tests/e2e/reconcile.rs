//! `dinmo reconcile`: what each sync delivered, what its model says now and what Zuora holds
//! now, compared, through the real binary against the simulators. Zuora is changed behind
//! dinmo's back through its own API, as a person in the UI or another pipeline would: records
//! deleted, edited, added, and processed by a bill run.

use reqwest::Method;
use serde_json::{Value, json};
use zuora_sim::SimConfig;

use crate::support::*;
use crate::zuora::{Sim, export, run_against, zuora_project};

/// The exit code of `reconcile` when it found differences.
const DIFFERENCES: i32 = 4;

/// `count` rows on one day, one account each (A00000001…), unit API_CALL, quantity 10 + i.
fn day_rows(count: usize) -> Vec<(String, String, i64)> {
    (0..count)
        .map(|i| (format!("A{:08}", 1 + i), "API_CALL".to_string(), 10 + i as i64))
        .collect()
}

/// `reconcile ARGS --format json`, its exit code and report.
fn reconcile(project: &TestProject, sim: &Sim, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["reconcile", "--format", "json"];
    all.extend_from_slice(args);
    let output = run_against(project, sim, &all);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(&output)));
    (code(&output), report)
}

/// Rows of each class in the first sync of a JSON report, by class name.
fn classes(report: &Value) -> std::collections::BTreeMap<String, u64> {
    report["syncs"][0]["classes"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"))
        .iter()
        .map(|c| (c["class"].as_str().unwrap().to_string(), c["rows"].as_u64().unwrap()))
        .filter(|(_, rows)| *rows > 0)
        .collect()
}

fn expect(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

/// The id of the simulator's record of `account`.
fn record_of(sim: &Sim, account: &str) -> String {
    sim.records()
        .iter()
        .find(|r| r.account_number == account)
        .unwrap_or_else(|| panic!("no record of {account}"))
        .id
        .clone()
}

/// Checks the exit code and that stdout says each of `needles`; stdout.
fn prints(output: &std::process::Output, expected: i32, needles: &[&str]) -> String {
    exits(output, expected);
    let out = stdout(output);
    for needle in needles {
        assert!(out.contains(needle), "missing {needle:?} in:\n{}", describe(output));
    }
    out
}

/// Changes Zuora as a person or another pipeline would: through its API.
fn behind_dinmos_back(sim: &Sim, method: Method, path: &str, body: Option<Value>) {
    let (status, _, answer) = sim.request(method.clone(), path, body);
    assert_eq!(status, 200, "{method} {path}: {answer}");
}

#[test]
fn every_class_is_found_when_zuora_and_the_warehouse_move_after_a_run() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-01-05", &day_rows(6));
    exits(&run_against(&project, &sim, &["run"]), 0);
    assert_eq!(sim.records().len(), 6);

    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!((status, classes(&report)), (0, expect(&[("equal", 6)])), "{report:#}");

    // Zuora moves: one record deleted, one edited, one added by someone else, then a bill run.
    behind_dinmos_back(
        &sim,
        Method::DELETE,
        &format!("/v1/object/usage/{}", record_of(&sim, "A00000001")),
        None,
    );
    behind_dinmos_back(
        &sim,
        Method::PUT,
        &format!("/v1/object/usage/{}", record_of(&sim, "A00000002")),
        Some(json!({"Quantity": 999})),
    );
    behind_dinmos_back(
        &sim,
        Method::POST,
        "/v1/object/usage",
        Some(
            json!({"AccountNumber": "A00000003", "UOM": "API_CALL", "Quantity": 7, "StartDateTime": "2026-01-05T12:00:00"}),
        ),
    );
    behind_dinmos_back(&sim, Method::POST, "/sim/process", None);
    // The warehouse moves: a late event restates one row, one row is gone, one is new.
    let mut rows = day_rows(6);
    rows[3].2 = 500;
    rows.remove(4);
    rows.push(("A00000011".into(), "API_CALL".into(), 1));
    export(&project, "2026-01-05", &rows);

    let out = project.path().join("differences.csv");
    let out_arg = out.display().to_string();
    let (status, report) = reconcile(&project, &sim, &["--out", &out_arg]);
    assert_eq!(status, DIFFERENCES, "{report:#}");
    assert_eq!(
        classes(&report),
        expect(&[
            ("equal", 2),
            ("missing", 1),
            ("different", 1),
            ("extra", 1),
            ("changed", 1),
            ("gone", 1),
            ("new", 1)
        ]),
        "{report:#}"
    );
    // Every record found was processed by the bill run: five of dinmo's and the extra one.
    assert_eq!(report["syncs"][0]["statuses"], json!([["Processed", 6]]), "{report:#}");
    let samples = report["syncs"][0]["samples"].as_array().unwrap();
    let sample = |class: &str| {
        samples
            .iter()
            .find(|s| s["class"] == class)
            .unwrap_or_else(|| panic!("{report:#}"))
    };
    assert_eq!(sample("missing")["account"], "A00000001");
    assert_eq!(
        (
            &sample("different")["delivered_quantity"],
            &sample("different")["zuora_quantity"]
        ),
        (&json!("11"), &json!("999"))
    );
    assert_eq!(
        (&sample("extra")["account"], &sample("extra")["zuora_quantity"]),
        (&json!("A00000003"), &json!("7"))
    );
    assert_eq!(
        (
            &sample("changed")["delivered_quantity"],
            &sample("changed")["model_quantity"]
        ),
        (&json!("13"), &json!("500"))
    );
    assert_eq!(sample("gone")["account"], "A00000005");
    assert_eq!(sample("new")["account"], "A00000011");
    // Every differing row, with its class, in the file; the equal ones are not.
    let written = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 1 + 6, "{written}");
    assert!(
        lines[0].starts_with("sync,class,row_key,record_id,account"),
        "{written}"
    );
    for class in ["missing", "different", "extra", "changed", "gone", "new"] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(&format!(",{class},"))).count(),
            1,
            "{class}: {written}"
        );
    }
    // The same rows as Parquet.
    let parquet = project.path().join("differences.parquet");
    let parquet_arg = parquet.display().to_string();
    let (status, _) = reconcile(&project, &sim, &["--out", &parquet_arg]);
    assert_eq!(status, DIFFERENCES);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(std::fs::File::open(&parquet).unwrap(), 1024)
            .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
    assert_eq!(batches[0].schema().field(1).name(), "class");
    // Reconcile reads only: Zuora holds what it held.
    assert_eq!(sim.records().len(), 6);

    // Outside the dates asked for, nothing differs.
    let (status, report) = reconcile(&project, &sim, &["--from", "2026-01-06", "--to", "2026-01-31"]);
    assert_eq!((status, classes(&report)), (0, expect(&[])), "{report:#}");

    // The text and markdown reports say the same.
    let text = run_against(&project, &sim, &["reconcile"]);
    prints(
        &text,
        DIFFERENCES,
        &[
            "missing in Zuora (1 row(s))",
            "A00000002 API_CALL 2026-01-05 delivered 11, Zuora holds 999",
            "found in Zuora: Processed 6",
        ],
    );
    let markdown = run_against(&project, &sim, &["reconcile", "--format", "markdown"]);
    prints(
        &markdown,
        DIFFERENCES,
        &["| missing in Zuora | 1 |", "| A00000002 | API_CALL |"],
    );
}

#[test]
fn repair_missing_offers_exactly_the_missing_rows_again_and_the_next_run_sends_them_once() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-01-05", &day_rows(5));
    exits(&run_against(&project, &sim, &["run"]), 0);
    for account in ["A00000002", "A00000004"] {
        behind_dinmos_back(
            &sim,
            Method::DELETE,
            &format!("/v1/object/usage/{}", record_of(&sim, account)),
            None,
        );
    }
    assert_eq!(sim.records().len(), 3);

    let (status, report) = reconcile(&project, &sim, &["--repair", "missing"]);
    assert_eq!(
        (status, classes(&report)),
        (DIFFERENCES, expect(&[("equal", 3), ("missing", 2)])),
        "{report:#}"
    );
    assert_eq!(report["syncs"][0]["repaired"], 2, "{report:#}");
    // The reason is recorded with the run that delivered them.
    let manifests = project.state_files("usage.zuora", "runs");
    let manifest = std::fs::read_to_string(&manifests[0]).unwrap();
    assert!(
        manifest.contains("\"repairs\"") && manifest.contains("no longer holds"),
        "{manifest}"
    );
    // Nothing was sent or deleted by reconcile.
    assert_eq!(sim.records().len(), 3);

    let plan = run_against(&project, &sim, &["plan", "--detailed-exitcode"]);
    exits(&plan, 2);
    exits(&run_against(&project, &sim, &["run"]), 0);
    let records = sim.records();
    assert_eq!(records.len(), 5, "{records:?}");
    for account in ["A00000002", "A00000004"] {
        let held: Vec<_> = records.iter().filter(|r| r.account_number == account).collect();
        assert_eq!(held.len(), 1, "{account}: {records:?}");
    }
    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!((status, classes(&report)), (0, expect(&[("equal", 5)])), "{report:#}");
    // And the next run sends nothing.
    exits(&run_against(&project, &sim, &["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn imported_rows_on_a_tenant_without_unique_key_are_matched_by_their_values() {
    let sim = Sim::start(SimConfig {
        unique_key_queryable: false,
        ..SimConfig::default()
    });
    let project = zuora_project(&sim, "import", "");
    export(&project, "2026-01-05", &day_rows(4));
    exits(&run_against(&project, &sim, &["run"]), 0);
    export(&project, "2026-01-06", &day_rows(3));
    exits(&run_against(&project, &sim, &["run"]), 0);
    assert_eq!(sim.records().len(), 7);
    assert!(sim.records().iter().all(|r| r.import_id.is_some()));

    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!((status, classes(&report)), (0, expect(&[("equal", 7)])), "{report:#}");
    assert_eq!(report["syncs"][0]["held"]["unique_keys"], false, "{report:#}");

    // A record of the second import deleted, one of the first edited: found as missing and,
    // since values are all that match them, as missing plus extra.
    let second: Vec<_> = sim
        .records()
        .into_iter()
        .filter(|r| r.start_date_time.starts_with("2026-01-06"))
        .collect();
    behind_dinmos_back(
        &sim,
        Method::DELETE,
        &format!("/v1/object/usage/{}", second[0].id),
        None,
    );
    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!(
        (status, classes(&report)),
        (DIFFERENCES, expect(&[("equal", 6), ("missing", 1)])),
        "{report:#}"
    );

    // The last run only: the first day's rows are left out.
    let (status, report) = reconcile(&project, &sim, &["--last-runs", "1"]);
    assert_eq!(
        (status, classes(&report)),
        (DIFFERENCES, expect(&[("equal", 2), ("missing", 1)])),
        "{report:#}"
    );
    assert_eq!(
        report["syncs"][0]["runs"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
}

/// A usage export as Zuora's Usage data source writes one: `<Object>: <Label>` headers;
/// `(account, unit, date, quantity, unique key)` rows.
fn data_source_export(path: &std::path::Path, rows: &[(&str, &str, &str, &str, Option<&str>)]) {
    let keys = rows.iter().any(|r| r.4.is_some());
    let mut text = String::from(
        "Account: Account Number,Usage: ID,Usage: Unit of Measure,Usage: Start Date,Usage: Quantity,Usage: RBS Status",
    );
    text.push_str(if keys { ",Usage: Unique Key\n" } else { "\n" });
    for (n, (account, unit, day, quantity, key)) in rows.iter().enumerate() {
        text.push_str(&format!("{account},8a90{n:028},{unit},{day},{quantity},Pending"));
        if keys {
            text.push_str(&format!(",{}", key.unwrap_or_default()));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The rows of the usage file `file` (standard or Active Rating layout) as an export would
/// list them once Zuora imported it: account, unit, date, quantity, unique key.
fn imported(file: &std::path::Path) -> Vec<(String, String, String, String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let (a, u, d, q, k) = (
        at("AccountNumber"),
        at("UnitOfMeasure"),
        at("StartDateTime"),
        at("Quantity"),
        at("UniqueKey"),
    );
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (
                cells[a].into(),
                cells[u].into(),
                cells[d].into(),
                cells[q].into(),
                cells[k].into(),
            )
        })
        .collect()
}

#[test]
fn a_file_never_uploaded_is_found_against_zuoras_usage_export() {
    let project = TestProject::standard();
    project.export_day("2026-01-05", &[("A1", 5), ("A2", 6), ("A3", 7), ("A4", 8)]);
    exits(&project.dinmo(&["run"]), 0);
    project.export_day("2026-01-06", &[("A1", 7), ("A2", 8)]);
    exits(&project.dinmo(&["run"]), 0);
    let mut files = project.output_files("usage.files");
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let export = project.path().join("usage-export.csv");
    let export_arg = export.display().to_string();
    let reconcile_export = |project: &TestProject| {
        let output = project.dinmo(&["reconcile", "--format", "json", "--zuora-export", &export_arg]);
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(&output)));
        (code(&output), report)
    };

    // Only the first file was uploaded, and someone uploaded a row by hand; an export without
    // the Unique Key column: rows are matched by their values.
    let first = imported(&files[0]);
    let mut rows: Vec<(&str, &str, &str, &str, Option<&str>)> = first
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), r.3.as_str(), None))
        .collect();
    rows.push(("A2", "API_CALL", "2026-01-06", "1", None));
    data_source_export(&export, &rows);
    let (status, report) = reconcile_export(&project);
    assert_eq!(status, DIFFERENCES, "{report:#}");
    assert_eq!(
        classes(&report),
        expect(&[("equal", 4), ("missing", 2), ("extra", 1)]),
        "{report:#}"
    );
    // The missing rows name the file that carried them: the one never uploaded.
    let second = files[1].file_name().unwrap().to_string_lossy().into_owned();
    for sample in report["syncs"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["class"] == "missing")
    {
        assert!(
            sample["destination_id"].as_str().unwrap().ends_with(&second),
            "{sample}"
        );
    }
    assert_eq!(report["syncs"][0]["held"]["source"], "export", "{report:#}");

    // With Unique Key: a record edited in Zuora is `different`; and the warehouse moved.
    let mut rows: Vec<(&str, &str, &str, &str, Option<&str>)> = first
        .iter()
        .map(|r| {
            (
                r.0.as_str(),
                r.1.as_str(),
                r.2.as_str(),
                if r.0 == "A2" { "60" } else { r.3.as_str() },
                Some(r.4.as_str()),
            )
        })
        .collect();
    rows.push(("A2", "API_CALL", "2026-01-06", "1", None));
    data_source_export(&export, &rows);
    project.export_day("2026-01-05", &[("A1", 5), ("A2", 6), ("A3", 70), ("A5", 1)]);
    let (status, report) = reconcile_export(&project);
    assert_eq!(status, DIFFERENCES, "{report:#}");
    assert_eq!(
        classes(&report),
        expect(&[
            ("equal", 1),
            ("different", 1),
            ("changed", 1),
            ("gone", 1),
            ("new", 1),
            ("missing", 2),
            ("extra", 1)
        ]),
        "{report:#}"
    );
    assert_eq!(report["syncs"][0]["held"]["unique_keys"], true, "{report:#}");

    // An export dinmo cannot read is refused, naming the file and what is missing.
    std::fs::write(&export, "Account Number,Quantity\nA1,5\n").unwrap();
    let refused = project.dinmo(&["reconcile", "--zuora-export", &export_arg]);
    exits(&refused, 1);
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        said.contains("usage-export.csv") && said.contains("unitofmeasure"),
        "{said}"
    );
}

#[test]
fn reconcile_refuses_an_out_file_it_cannot_write_before_reading_anything() {
    let project = TestProject::standard();
    project.export_day("2026-01-05", &[("A1", 5)]);
    exits(&project.dinmo(&["run"]), 0);
    let refused = project.dinmo(&["reconcile", "--out", "differences.xlsx"]);
    exits_with(&refused, 1, &["--out", ".csv or .parquet"]);
    let bad_date = project.dinmo(&["reconcile", "--from", "05/01/2026"]);
    exits_with(&bad_date, 64, &["not a date (YYYY-MM-DD)"]);
}

/// A repair killed at `point`: nothing is sent twice or lost. The next `reconcile` says what to
/// do, `--repair missing` finishes, and the next run sends the missing rows once.
#[cfg(feature = "failpoints")]
fn repair_crashed_at(point: &str) {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-01-05", &day_rows(5));
    exits(&run_against(&project, &sim, &["run"]), 0);
    behind_dinmos_back(
        &sim,
        Method::DELETE,
        &format!("/v1/object/usage/{}", record_of(&sim, "A00000003")),
        None,
    );

    let (id, secret) = (sim.client_id(), sim.secret());
    let env = [
        ("ZUORA_CLIENT_ID", id.as_str()),
        ("ZUORA_CLIENT_SECRET", secret.as_str()),
        ("DINMO_CRASH_AT", point),
    ];
    let crashed = dinmo_in(project.path(), &["reconcile", "--repair", "missing"], &env);
    assert!(
        stderr(&crashed).contains("crash point"),
        "{point}: {}",
        describe(&crashed)
    );
    // Until the repair is finished the row counts as delivered: nothing is sent for it.
    exits(&run_against(&project, &sim, &["run"]), 0);
    assert_eq!(sim.records().len(), 4, "{point}");

    let after = run_against(&project, &sim, &["reconcile"]);
    if point == "repair_manifest_written" {
        prints(&after, 1, &[]);
        assert!(
            stderr(&after).contains("reconcile --repair missing` to finish it"),
            "{}",
            describe(&after)
        );
    } else {
        prints(&after, DIFFERENCES, &["missing in Zuora (1 row(s))"]);
    }
    exits(
        &run_against(&project, &sim, &["reconcile", "--repair", "missing"]),
        DIFFERENCES,
    );
    exits(&run_against(&project, &sim, &["run"]), 0);
    let records = sim.records();
    assert_eq!(records.len(), 5, "{point}: {records:?}");
    assert_eq!(
        records.iter().filter(|r| r.account_number == "A00000003").count(),
        1,
        "{point}"
    );
    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!(
        (status, classes(&report)),
        (0, expect(&[("equal", 5)])),
        "{point}: {report:#}"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_repair_killed_part_way_never_sends_a_row_twice_and_is_finished_by_the_next() {
    for point in ["repair_parts_stored", "repair_manifest_written"] {
        repair_crashed_at(point);
    }
}

#[test]
fn a_read_of_several_pages_through_throttles_and_errors_finds_every_record_once() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "import", "    max_attempts: 4\n");
    // 2,100 records: two pages of ZOQL.
    for day in 0..3 {
        let rows: Vec<(String, String, i64)> = (0..700)
            .map(|i| (format!("A{:08}", 1 + i % 12), format!("U{}", i / 12), i as i64))
            .collect();
        export(&project, &format!("2026-01-0{}", day + 1), &rows);
    }
    let mut config = sim.sim.state.lock().config.clone();
    config.units_of_measure = (0..60).map(|u| format!("U{u}")).collect();
    sim.sim.state.lock().config = config;
    exits(&run_against(&project, &sim, &["run"]), 0);
    assert_eq!(sim.records().len(), 2_100);

    sim.faults(zuora_sim::Faults {
        throttle_rate: 0.2,
        rate_limited_rate: 0.1,
        error_rate: 0.1,
        seed: 11,
        ..zuora_sim::Faults::default()
    });
    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!(
        (status, classes(&report)),
        (0, expect(&[("equal", 2_100)])),
        "{report:#}"
    );
    let counters = sim.sim.state.lock().counters.clone();
    assert!(
        counters
            .by_endpoint
            .get("POST /v1/action/queryMore")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{counters:?}"
    );

    // Zuora down: the reconcile fails naming the request, and repairs nothing.
    sim.faults(zuora_sim::Faults::default());
    behind_dinmos_back(
        &sim,
        Method::DELETE,
        &format!("/v1/object/usage/{}", sim.records()[5].id),
        None,
    );
    sim.faults(zuora_sim::Faults {
        error_rate: 1.0,
        ..zuora_sim::Faults::default()
    });
    let before = project.state_digest();
    let failed = run_against(&project, &sim, &["reconcile", "--repair", "missing"]);
    exits(&failed, 1);
    assert!(
        stderr(&failed).contains("/v1/action/query") && stderr(&failed).contains("4 attempts"),
        "{}",
        describe(&failed)
    );
    assert_eq!(project.state_digest(), before, "nothing repaired on a failed read");
}

#[test]
fn reconcile_says_what_changed_since_the_last_run() {
    let project = TestProject::standard();
    project.export_day("2026-01-05", &[("A1", 5)]);
    exits(&project.dinmo(&["run"]), 0);
    project.write(
        "models/usage.yml",
        &MODEL.edit("FROM events", "FROM events WHERE qty >= 0"),
    );
    let export = project.path().join("usage.csv");
    std::fs::write(
        &export,
        "Account Number,Unit of Measure,Start Date,Quantity\nA1,API_CALL,2026-01-05,5\n",
    )
    .unwrap();
    let output = project.dinmo(&["reconcile", "--zuora-export", &export.display().to_string()]);
    prints(&output, 0, &["note: model SQL changed since the last run", "equal 1"]);
    // Without an export, a file destination says how to give it one.
    let output = project.dinmo(&["reconcile"]);
    prints(
        &output,
        0,
        &[
            "unverified 1",
            "--zuora-export FILE",
            "1 delivered row(s) could not be checked",
        ],
    );
}

#[test]
fn a_record_moved_to_another_month_by_hand_is_found_by_its_id() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-01-05", &day_rows(3));
    exits(&run_against(&project, &sim, &["run"]), 0);
    behind_dinmos_back(
        &sim,
        Method::PUT,
        &format!("/v1/object/usage/{}", record_of(&sim, "A00000002")),
        Some(json!({"StartDateTime": "2026-03-01T00:00:00"})),
    );
    let (status, report) = reconcile(&project, &sim, &[]);
    assert_eq!(
        (status, classes(&report)),
        (DIFFERENCES, expect(&[("equal", 2), ("different", 1)])),
        "{report:#}"
    );
    let moved = &report["syncs"][0]["samples"][0];
    assert_eq!(
        (&moved["start_date"], &moved["zuora_start_date"]),
        (&json!("2026-01-05"), &json!("2026-03-01")),
        "{report:#}"
    );
    // Read by the period, then the one record by its id: not missing, not a second query of the
    // whole tenant.
    assert_eq!(report["syncs"][0]["held"]["records_read"], 3, "{report:#}");
    let queries = sim
        .sim
        .state
        .lock()
        .counters
        .by_endpoint
        .get("POST /v1/action/query")
        .copied();
    assert!(queries.is_some_and(|n| n >= 2), "{queries:?}");
}
