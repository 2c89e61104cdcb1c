//! First run, second run, new data, rejected rows offered again, every source format.

use crate::support::*;

#[test]
fn first_run_sends_everything_then_nothing_then_only_new_rows() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20)]);
    project.export_day("2026-11-19", &[("A1", 11)]);

    let first = project.dinmo(&["run"]);
    exits(&first, 0);
    let rows = project.output_rows("usage.files");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let staging: Vec<_> = std::fs::read_dir(project.path().join("target/staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(staging.is_empty(), "the run's local files are gone: {staging:?}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("A1,AccountNumber:A1,API_CALL,2026-11-18T00:00:00,10,,")),
        "{rows:#?}"
    );

    let second = project.dinmo(&["run"]);
    exits(&second, 0);
    assert!(stdout(&second).contains("new rows: 0"), "{}", describe(&second));
    assert_eq!(
        project.output_files("usage.files").len(),
        1,
        "a run with nothing new writes no file"
    );

    project.export_day("2026-11-20", &[("A1", 12), ("A3", 30)]);
    let third = project.dinmo(&["run"]);
    exits(&third, 0);
    let files = project.output_files("usage.files");
    assert_eq!(files.len(), 2);
    let newest = std::fs::read_to_string(&files[1]).unwrap();
    let new_rows: Vec<&str> = newest.lines().skip(1).collect();
    assert_eq!(new_rows.len(), 2, "{newest}");
    assert!(new_rows.iter().all(|r| r.contains("2026-11-20T00:00:00")), "{newest}");
    // Every row exactly once across all files.
    let mut keys: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|r| r.split(',').nth(6).unwrap().to_string())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5);
}

#[test]
fn rejected_rows_are_kept_with_their_reason_and_offered_again() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", -5)]);

    let first = project.dinmo(&["run"]);
    exits(&first, 3);
    assert!(
        stdout(&first).contains("1 × negative_quantity (Quantity): Quantity is -5; it must be zero or more"),
        "{}",
        describe(&first)
    );
    assert_eq!(project.output_rows("usage.files").len(), 1);
    assert_eq!(project.state_files("usage.files", "rejected").len(), 1);

    // Not in the snapshot, so the next run offers it again, and refuses it again.
    let second = project.dinmo(&["run"]);
    exits(&second, 3);
    assert!(stdout(&second).contains("new rows: 1"), "{}", describe(&second));

    // Fixed upstream: now it is sent, once.
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 5)]);
    let third = project.dinmo(&["run"]);
    exits(&third, 0);
    let rows = project.output_rows("usage.files");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.starts_with("A2,") && r.contains(",5,")),
        "{rows:#?}"
    );

    let show = project.dinmo(&["runs", "--format", "json"]);
    exits(&show, 0);
    let runs: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let outcomes: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "partially_rejected", "partially_rejected"]);
}

#[test]
fn csv_json_and_glob_sources_are_tables() {
    let project = TestProject::new(
        "name: formats
sources:
  csv_events:
    location: data/csv/*.csv
    format: csv
    options: { delimiter: ';' }
  json_events:
    location: data/json/
    format: json
destinations:
  files:
    type: zuora_file
    path: out
",
        &[(
            "both.yml",
            "model: both
sql: |
  SELECT account, CAST(qty AS BIGINT) AS qty, CAST(day AS DATE) AS day FROM csv_events
  UNION ALL
  SELECT account, CAST(qty AS BIGINT), CAST(day AS DATE) FROM json_events
primary_key: [account, day]
syncs:
  - destination: files
    mapping: { AccountNumber: account, UnitOfMeasure: account, StartDateTime: day, Quantity: qty }
",
        )],
    );
    project.write("data/csv/a.csv", "account;qty;day\nC1;1;2026-11-01\nC2;2;2026-11-01\n");
    project.write("data/csv/ignored.txt", "not,a,source\n");
    project.write(
        "data/json/events.json",
        "{\"account\":\"J1\",\"qty\":3,\"day\":\"2026-11-02\"}\n",
    );
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    let mut accounts: Vec<String> = project
        .output_rows("both.files")
        .iter()
        .map(|r| r.split(',').next().unwrap().to_string())
        .collect();
    accounts.sort();
    assert_eq!(accounts, ["C1", "C2", "J1"]);
}

/// A restatement that removes rows already sent (bot traffic taken out of a day) is counted as
/// gone in every report, and nothing is sent for it.
#[test]
fn rows_removed_after_they_were_sent_are_reported_as_gone() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20), ("A3", 30)]);
    project.export_day("2026-11-19", &[("A1", 11)]);
    exits(&project.dinmo(&["run"]), 0);

    // The day is restated without A2 and A3.
    project.export_day("2026-11-18", &[("A1", 10)]);
    let plan = project.dinmo(&["plan"]);
    exits(&plan, 0);
    assert!(
        stdout(&plan).contains(
            "gone: 2 row(s) synced earlier are no longer in the model (on_delete: report); nothing is sent for them \
             and the destination still holds 50"
        ) && stdout(&plan).contains("A2 API_CALL 2026-11-18T00:00:00: 20 (reported)"),
        "{}",
        describe(&plan)
    );
    let json = project.dinmo(&["plan", "--format", "json"]);
    exits(&json, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["syncs"][0]["gone_rows"], 2, "{report:#}");
    assert_eq!(report["syncs"][0]["counts"]["new_rows"], 0, "{report:#}");
    let markdown = project.dinmo(&["plan", "--format", "markdown"]);
    assert!(
        stdout(&markdown).contains("- gone: 2 row(s) synced earlier are no longer in the model (on_delete: report)")
            && stdout(&markdown).contains("| A3 | API_CALL | 2026-11-18T00:00:00 | 30 | `reported` |"),
        "{}",
        describe(&markdown)
    );

    let files_before = project.output_files("usage.files").len();
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    assert!(stdout(&run).contains("gone: 2 row(s)"), "{}", describe(&run));
    assert_eq!(
        project.output_files("usage.files").len(),
        files_before,
        "nothing is sent"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("target/run_results.json")).unwrap())
            .unwrap();
    assert_eq!(results["results"][0]["gone_rows"], 2, "{results:#}");

    // With every row back, nothing is gone.
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20), ("A3", 30)]);
    let plan = project.dinmo(&["plan", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(report["syncs"][0]["gone_rows"], 0, "{report:#}");
}

#[test]
fn the_readmes_late_events_walkthrough_prints_what_the_readme_shows() {
    let dir = tempfile::tempdir().unwrap();
    copy_project(&repository_root().join("models"), dir.path());
    let project = dir.path();
    exits(&dinmo_in(project, &["run"], &[]), 0);
    copy_project(&project.join("next_day/events"), &project.join("exports/events"));
    exits(&dinmo_in(project, &["run"], &[]), 0);
    std::fs::copy(
        project.join("next_day/late_events/day=2026-11-19/part-late.parquet"),
        project.join("exports/events/day=2026-11-19/part-late.parquet"),
    )
    .unwrap();
    let plan = dinmo_in(project, &["plan"], &[]);
    exits(&plan, 0);
    let printed = stdout(&plan);
    // Every line of the README's example output, as printed.
    let readme = std::fs::read_to_string(repository_root().join("README.md")).unwrap();
    let after = readme.split("cargo run -- plan --project models").nth(1).unwrap();
    let block = after.split("```text\n").nth(1).unwrap().split("```").next().unwrap();
    for line in block.lines().filter(|l| !l.trim().is_empty() && l.trim() != "…") {
        assert!(printed.contains(line), "README line {line:?} not in:\n{printed}");
    }
    // Held: nothing sent, exit 3; the rows stay held on the next run.
    let run = dinmo_in(project, &["run"], &[]);
    exits(&run, 3);
    assert!(
        stdout(&run).contains("16 changed or gone row(s) held"),
        "{}",
        describe(&run)
    );
}

/// A model with two syncs: the first sync's gone rows are named by the primary-key check's
/// marks, the second's counted and named by marking the model's keys again; both the same.
#[test]
fn every_sync_of_a_model_names_the_same_gone_and_changed_rows() {
    let project = TestProject::new(
        &format!("{PROJECT}  copy:\n    type: zuora_file\n    path: out-copy\n"),
        &[(
            "usage.yml",
            &format!(
                "{MODEL}  - destination: copy\n    mapping:\n      AccountNumber: account\n      UnitOfMeasure: uom\n      \
                 StartDateTime: usage_day\n      Quantity: qty\n"
            ),
        )],
    );
    let accounts: Vec<(String, i64)> = (0..2_000).map(|i| (format!("A{i:05}"), 10 + i)).collect();
    let rows = |n: usize, raise: i64| -> Vec<(&str, i64)> {
        accounts[..n]
            .iter()
            .map(|(a, q)| (a.as_str(), q + if a.as_str() < "A00003" { raise } else { 0 }))
            .collect()
    };
    project.export_day("2026-11-18", &rows(2_000, 0));
    exits(&project.dinmo(&["run"]), 0);
    // Five accounts gone, three raised.
    project.export_day("2026-11-18", &rows(1_995, 5));
    {
        let args = ["plan", "--format", "json"];
        let plan = dinmo_in(project.path(), &args, &[]);
        exits(&plan, 0);
        let report: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
        for sync in report["syncs"].as_array().unwrap() {
            assert_eq!(sync["gone_rows"], 5, "{args:?}: {sync:#}");
            assert_eq!(sync["changed_rows"], 3, "{args:?}: {sync:#}");
            assert_eq!(sync["counts"]["new_rows"], 0, "{args:?}: {sync:#}");
            let gone: Vec<&str> = sync["gone"]["sample"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["account"].as_str().unwrap())
                .collect();
            assert_eq!(gone, ["A01995", "A01996", "A01997", "A01998", "A01999"], "{args:?}");
        }
    }
    // Reported twice: the second run finds the same rows gone (marking from the start).
    exits(&project.dinmo(&["run"]), 3);
    let again = project.dinmo(&["plan", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert!(
        report["syncs"].as_array().unwrap().iter().all(|s| s["gone_rows"] == 5),
        "{report:#}"
    );
}
