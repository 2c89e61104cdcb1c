//! Damaged state, guards and bad model output stop the run before anything is sent.

use crate::support::*;

fn synced_project() -> TestProject {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20)]);
    let first = project.dinmo(&["run"]);
    exits(&first, 0);
    project.export_day("2026-11-19", &[("A1", 11)]);
    project
}

fn assert_stopped_and_nothing_written(project: &TestProject, expect: &str) {
    let files_before = project.output_files("usage.files");
    let runs_before = project.state_files("usage.files", "runs");
    let run = project.dinmo(&["run"]);
    exits(&run, 1);
    assert!(
        stderr(&run).contains(expect),
        "expected `{expect}` in:\n{}",
        describe(&run)
    );
    assert!(stderr(&run).contains("Nothing was sent"), "{}", describe(&run));
    assert_eq!(
        project.output_files("usage.files"),
        files_before,
        "no usage file may be written"
    );
    assert_eq!(
        project.state_files("usage.files", "runs"),
        runs_before,
        "no manifest may be written"
    );
    assert!(project.state_files("usage.files", "pending").is_empty());
}

fn snapshot_part(project: &TestProject) -> std::path::PathBuf {
    let parts = project.state_files("usage.files", "snapshot");
    assert_eq!(parts.len(), 1);
    parts[0].clone()
}

#[test]
fn a_deleted_snapshot_part_stops_the_run() {
    let project = synced_project();
    std::fs::remove_file(snapshot_part(&project)).unwrap();
    assert_stopped_and_nothing_written(&project, "is missing");
}

#[test]
fn a_truncated_snapshot_part_stops_the_run() {
    let project = synced_project();
    let part = snapshot_part(&project);
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() / 2]).unwrap();
    assert_stopped_and_nothing_written(&project, "truncated or replaced");
}

#[test]
fn an_altered_snapshot_part_stops_the_run() {
    let project = synced_project();
    let part = snapshot_part(&project);
    let mut bytes = std::fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    assert_stopped_and_nothing_written(&project, "(altered)");
}

#[test]
fn max_new_rows_stops_the_run_before_sending() {
    let project = TestProject::new(PROJECT, &[("usage.yml", &format!("{MODEL}    max_new_rows: 2\n"))]);
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2), ("A3", 3)]);
    let run = project.dinmo(&["run"]);
    exits_with(&run, 1, &["3 new rows exceed max_new_rows (2); nothing was sent"]);
    assert!(project.output_files("usage.files").is_empty());
    assert!(project.state_files("usage.files", "runs").is_empty());
    assert!(project.state_files("usage.files", "snapshot").is_empty());
}

#[test]
fn a_duplicate_primary_key_is_named_and_nothing_is_sent() {
    let model = MODEL.edit("primary_key: [account, usage_day]", "primary_key: [usage_day]");
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2)]);
    let run = project.dinmo(&["run"]);
    exits_with(
        &run,
        1,
        &["primary key (usage_day) is not unique: (usage_day=2026-11-18T00:00:00) ×2"],
    );
    assert!(project.output_files("usage.files").is_empty());
}

#[test]
fn a_primary_key_repeated_across_files_is_found() {
    // Two export files, each staged by its own task into its own file: the keys they share
    // are found all the same (the tasks fill one key set), and named by the query.
    let model = MODEL.edit("primary_key: [account, usage_day]", "primary_key: [account]");
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2), ("A3", 3)]);
    project.export_day("2026-11-19", &[("A4", 1), ("A2", 2)]);
    let run = project.dinmo(&["run"]);
    exits_with(&run, 1, &["primary key (account) is not unique: (account=A2) ×2"]);
    assert!(project.output_files("usage.files").is_empty());
}

#[test]
fn a_null_primary_key_is_refused() {
    let model = MODEL.edit(
        "SELECT account,",
        "SELECT CASE WHEN qty > 1 THEN account END AS account,",
    );
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2)]);
    let run = project.dinmo(&["run"]);
    exits_with(&run, 1, &["primary key (account, usage_day) is null in 1 row(s)"]);
    assert!(project.output_files("usage.files").is_empty());
}

#[test]
fn full_refresh_must_be_asked_for() {
    let project = synced_project();
    let plain = project.dinmo(&["plan", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(report["syncs"][0]["counts"]["new_rows"], 1);
    let refresh = project.dinmo(&["plan", "--full-refresh", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&refresh.stdout).unwrap();
    assert_eq!(report["syncs"][0]["counts"]["new_rows"], 3);
}

#[test]
fn a_changed_model_or_mapping_is_flagged_in_plan_and_run() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    assert_eq!(code(&project.dinmo(&["run"])), 0);
    let unchanged = project.dinmo(&["plan"]);
    assert!(!stdout(&unchanged).contains("warning:"), "{}", describe(&unchanged));
    project.write(
        "models/usage.yml",
        &MODEL.edit("FROM events", "FROM events WHERE qty >= 0"),
    );
    let plan = project.dinmo(&["plan"]);
    assert!(
        stdout(&plan).contains("warning: model SQL changed since the last run"),
        "{}",
        describe(&plan)
    );
    project.write(
        "models/usage.yml",
        &MODEL.edit(
            "primary_key: [account, usage_day]",
            "primary_key: [account, uom, usage_day]",
        ),
    );
    let run = project.dinmo(&["run"]);
    assert!(
        stdout(&run).contains("warning: mapping or primary key changed since the last run"),
        "{}",
        describe(&run)
    );
}

/// A damaged snapshot stops its own sync only: the model's other sync still sends its new
/// rows, from the same run of the model, and the report keeps the syncs in their order.
#[test]
fn a_damaged_snapshot_stops_only_its_own_sync() {
    let project = TestProject::new(
        &format!("{PROJECT}  more:\n    type: zuora_file\n    path: out\n"),
        &[(
            "usage.yml",
            &format!(
                "{MODEL}  - destination: more\n    mapping:\n      AccountNumber: account\n      UnitOfMeasure: uom\n      \
                 StartDateTime: usage_day\n      Quantity: qty\n"
            ),
        )],
    );
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20)]);
    let first = project.dinmo(&["run"]);
    exits(&first, 0);
    assert_eq!(project.output_rows("usage.files").len(), 2);
    assert_eq!(project.output_rows("usage.more").len(), 2);
    project.export_day("2026-11-19", &[("A1", 11)]);
    let parts = project.state_files("usage.more", "snapshot");
    std::fs::remove_file(&parts[0]).unwrap();
    let more_before = project.output_files("usage.more");

    let run = project.dinmo(&["run"]);
    exits_with(&run, 1, &["is missing"]);
    assert_eq!(
        project.output_files("usage.more"),
        more_before,
        "the damaged sync sends nothing"
    );
    assert_eq!(
        project.output_rows("usage.files").len(),
        3,
        "the other sync sends its new row"
    );
    let out = stdout(&run);
    let (files, more) = (out.find("usage.files"), out.find("usage.more"));
    assert!(files.is_some() && more.is_some() && files < more, "{}", describe(&run));
}
