//! Reviewing in pull requests and running from orchestrators: plans, artifacts, selectors.

use crate::support::*;

fn filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{8}T\d{9}Z-[0-9a-f]{4}", "[RUN_ID]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]");
    settings.add_filter(r#""seconds": [0-9.]+"#, r#""seconds": "[SECONDS]""#);
    settings
}

fn reviewed_project() -> TestProject {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20), ("A3", -1), ("A4", 5)]);
    project.export_day("2026-11-19", &[("A1", 11), ("A2", 7)]);
    project
}

#[test]
fn markdown_plans_are_deterministic_and_golden() {
    let project = reviewed_project();
    let args = ["plan", "--format", "markdown", "--top", "2", "--sample", "3"];
    let first = project.dinmo(&args);
    exits(&first, 0);
    let second = project.dinmo(&args);
    assert_eq!(first.stdout, second.stdout, "same inputs, byte-identical plan");
    insta::assert_snapshot!("plan_markdown", stdout(&first));
    let private = project.dinmo(&["plan", "--format", "markdown", "--sample", "0"]);
    assert!(!stdout(&private).contains("Sample of"), "{}", describe(&private));
    assert!(
        !stdout(&private).contains("| A1 |") || stdout(&private).contains("by AccountNumber"),
        "accounts appear only in totals"
    );
}

#[test]
fn json_plans_carry_the_same_content() {
    let project = reviewed_project();
    let plan = project.dinmo(&["plan", "--format", "json", "--top", "2", "--sample", "2"]);
    exits(&plan, 0);
    filters().bind(|| insta::assert_snapshot!("plan_json", stdout(&plan)));
}

fn run_results(project: &TestProject) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(project.path().join("target/run_results.json")).expect("run_results.json"))
        .unwrap()
}

#[test]
fn run_results_are_written_on_success_partial_rejection_and_failure() {
    let project = reviewed_project();
    let run = project.dinmo(&["run"]);
    exits(&run, 3);
    let results = run_results(&project);
    assert_eq!(results["metadata"]["schema_version"], 1);
    assert_eq!(results["metadata"]["command"], "run");
    assert_eq!(results["exit_code"], 3);
    assert_eq!(results["results"][0]["status"], "partially_rejected");
    assert_eq!(results["results"][0]["counts"]["accepted"], 5);
    assert_eq!(results["results"][0]["counts"]["rejected"], 1);
    assert_eq!(results["results"][0]["rejections"][0]["code"], "negative_quantity");
    assert!(
        results["results"][0]["timing"]["seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0),
        "{results}"
    );
    assert!(
        results["results"][0]["timing"]["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{results}"
    );

    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20), ("A3", 1), ("A4", 5)]);
    let fixed = project.dinmo(&["run"]);
    exits(&fixed, 0);
    let results = run_results(&project);
    assert_eq!(
        (results["success"].as_bool(), results["results"][0]["status"].as_str()),
        (Some(true), Some("succeeded"))
    );

    // A sync that fails: its snapshot part is gone.
    for part in project.state_files("usage.files", "snapshot") {
        std::fs::remove_file(part).unwrap();
    }
    let failed = project.dinmo(&["run"]);
    exits(&failed, 1);
    let results = run_results(&project);
    assert_eq!(results["success"], false);
    assert_eq!(results["results"][0]["status"], "error");
    assert!(
        results["results"][0]["error"].as_str().unwrap().contains("is missing"),
        "{results}"
    );

    // A configuration error: no sync ran, the error is recorded.
    project.write(
        "models/usage.yml",
        "model: usage\nsql: SELECT 1\nprimary_key: [a]\nbogus: 1\n",
    );
    let broken = project.dinmo(&["plan"]);
    assert_eq!(code(&broken), 1);
    let results = run_results(&project);
    assert_eq!(
        (results["metadata"]["command"].as_str(), results["exit_code"].as_u64()),
        (Some("plan"), Some(1))
    );
    assert!(
        results["errors"][0].as_str().unwrap().contains("unknown field `bogus`"),
        "{results}"
    );
}

#[test]
fn apply_sends_exactly_the_planned_rows() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20)]);
    let plan = project.dinmo(&["plan", "--out", "plan.dinmo"]);
    exits(&plan, 0);
    // New data lands after the review: apply must not pick it up.
    project.export_day("2026-11-19", &[("A3", 30)]);
    let apply = project.dinmo(&["apply", "plan.dinmo"]);
    exits(&apply, 0);
    let mut rows = project.output_rows("usage.files");
    rows.sort();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r.contains("2026-11-18")), "{rows:#?}");
    assert_eq!(run_results(&project)["metadata"]["command"], "apply");
    // The plan is spent: the state moved, so applying it again is refused.
    let again = project.dinmo(&["apply", "plan.dinmo"]);
    exits_with(&again, 1, &["the state moved since the plan was made"]);
    assert_eq!(project.output_rows("usage.files").len(), 2, "nothing sent twice");
    let next = project.dinmo(&["plan", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(report["syncs"][0]["counts"]["new_rows"], 1, "only the new day is left");
}

#[test]
fn apply_refuses_a_stale_or_altered_plan() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20)]);
    assert_eq!(code(&project.dinmo(&["plan", "--out", "plan.dinmo"])), 0);
    let bytes = std::fs::read(project.path().join("plan.dinmo")).unwrap();

    // Altered: one byte of the stored rows flipped.
    let mut altered = bytes.clone();
    let middle = altered.len() / 3;
    altered[middle] ^= 0x55;
    std::fs::write(project.path().join("altered.dinmo"), &altered).unwrap();
    let refused = project.dinmo(&["apply", "altered.dinmo"]);
    exits(&refused, 1);
    assert!(
        stderr(&refused).contains("altered.dinmo") && stderr(&refused).contains("altered"),
        "{}",
        describe(&refused)
    );
    assert!(project.output_files("usage.files").is_empty(), "nothing sent");

    // Stale: a run moved the state after the plan.
    assert_eq!(code(&project.dinmo(&["run"])), 0);
    let files = project.output_files("usage.files").len();
    let stale = project.dinmo(&["apply", "plan.dinmo"]);
    exits_with(&stale, 1, &["the state moved since the plan was made"]);
    assert_eq!(project.output_files("usage.files").len(), files, "nothing sent");
}

#[test]
fn state_modified_selects_what_changed_and_combines_like_dbt() {
    let nightly = MODEL.edit("model: usage", "model: nightly\ntags: [nightly]");
    let project = TestProject::new(PROJECT, &[("usage.yml", MODEL), ("nightly.yml", &nightly)]);
    project.export_day("2026-11-18", &[("A1", 1)]);
    assert_eq!(code(&project.dinmo(&["run"])), 0);
    // Keep production's state aside, as a CI job would download it.
    let production = project.path().join("production-state");
    std::fs::rename(project.path().join(".dinmo/state"), &production).unwrap();
    std::fs::create_dir_all(project.path().join(".dinmo")).unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&production, &project.path().join(".dinmo/state"));

    let plan = ["plan", "--format", "json", "--select", "state:modified"];
    assert!(sync_ids(&project, &plan).is_empty(), "nothing changed");
    project.write(
        "models/nightly.yml",
        &nightly.edit("FROM events", "FROM events WHERE qty > 0"),
    );
    assert_eq!(sync_ids(&project, &plan), ["nightly.files"]);
    // Union and intersection.
    assert_eq!(
        sync_ids(
            &project,
            &["plan", "--format", "json", "--select", "usage state:modified"]
        ),
        ["nightly.files", "usage.files"]
    );
    assert_eq!(
        sync_ids(
            &project,
            &["plan", "--format", "json", "--select", "tag:nightly,state:modified"]
        ),
        ["nightly.files"]
    );
    assert!(
        sync_ids(
            &project,
            &["plan", "--format", "json", "--select", "usage,state:modified"]
        )
        .is_empty()
    );
    assert_eq!(
        sync_ids(&project, &["plan", "--format", "json", "--exclude", "state:modified"]),
        ["usage.files"]
    );
    // Against another state location: a run here does not hide the change from production.
    assert_eq!(code(&project.dinmo(&["run"])), 0);
    assert!(sync_ids(&project, &plan).is_empty(), "the local state has caught up");
    let against = [
        "plan",
        "--format",
        "json",
        "--select",
        "state:modified",
        "--state",
        "production-state",
    ];
    assert_eq!(sync_ids(&project, &against), ["nightly.files"]);
}

#[test]
fn show_exports_a_runs_rows() {
    let project = reviewed_project();
    assert_eq!(code(&project.dinmo(&["run"])), 3);
    let runs = project.dinmo(&["runs", "--format", "json"]);
    let manifests: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run = manifests[0]["run_id"].as_str().unwrap();
    let show = project.dinmo(&["show", run, "--rows", "exported"]);
    exits(&show, 0);
    let sent = std::fs::read_to_string(project.path().join("exported/usage.files.sent.csv")).unwrap();
    let rejected = std::fs::read_to_string(project.path().join("exported/usage.files.rejected.csv")).unwrap();
    assert_eq!(sent.lines().count(), 1 + 5, "{sent}");
    assert_eq!(rejected.lines().count(), 1 + 1, "{rejected}");
    assert!(
        rejected.contains("negative_quantity") && rejected.contains("A3"),
        "{rejected}"
    );
    let parquet = project.dinmo(&["show", run, "--rows", "exported-parquet", "--rows-format", "parquet"]);
    exits(&parquet, 0);
    assert!(
        project
            .path()
            .join("exported-parquet/usage.files.sent.parquet")
            .exists()
    );
}

#[test]
fn init_writes_a_project_that_validates_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let init = dinmo_in(dir.path(), &["init", "billing"], &[]);
    exits(&init, 0);
    let project = dir.path().join("billing");
    let validate = dinmo_in(&project, &["validate"], &[]);
    exits(&validate, 0);
    let run = dinmo_in(&project, &["run"], &[]);
    exits(&run, 0);
    let again = dinmo_in(dir.path(), &["init", "billing"], &[]);
    assert_eq!(code(&again), 1, "init never overwrites: {}", describe(&again));
}

#[test]
fn schema_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let project = dinmo_in(dir.path(), &["schema"], &[]);
    let schema: serde_json::Value = serde_json::from_slice(&project.stdout).unwrap();
    assert_eq!(schema["title"], "ProjectFile");
    assert!(
        schema["properties"]["model-paths"]["description"]
            .as_str()
            .unwrap()
            .contains("Default `[models]`")
    );
    let text = stdout(&project);
    assert!(
        text.contains("zuora_file") && text.contains("client_secret") && text.contains("max_file_bytes"),
        "{text}"
    );
    let model = dinmo_in(dir.path(), &["schema", "model"], &[]);
    let model: serde_json::Value = serde_json::from_slice(&model.stdout).unwrap();
    assert_eq!(model["required"], serde_json::json!(["model", "sql", "primary_key"]));
    let bash = dinmo_in(dir.path(), &["completions", "bash"], &[]);
    assert!(stdout(&bash).contains("_dinmo()"), "{}", describe(&bash));
}
