//! Reviewing in pull requests and running from orchestrators: plans, artifacts, selectors.

use crate::support::*;

fn filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{8}T\d{9}Z-[0-9a-f]{4}", "[RUN_ID]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]");
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
    assert_eq!(code(&first), 0, "{}", describe(&first));
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
    assert_eq!(code(&plan), 0, "{}", describe(&plan));
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
    assert_eq!(code(&run), 3, "{}", describe(&run));
    let results = run_results(&project);
    assert_eq!(results["metadata"]["schema_version"], 1);
    assert_eq!(results["metadata"]["command"], "run");
    assert_eq!(results["exit_code"], 3);
    assert_eq!(results["results"][0]["status"], "partially_rejected");
    assert_eq!(results["results"][0]["counts"]["accepted"], 5);
    assert_eq!(results["results"][0]["counts"]["rejected"], 1);
    assert_eq!(results["results"][0]["rejections"][0]["code"], "negative_quantity");

    project.export_day("2026-11-18", &[("A1", 10), ("A2", 20), ("A3", 1), ("A4", 5)]);
    let fixed = project.dinmo(&["run"]);
    assert_eq!(code(&fixed), 0, "{}", describe(&fixed));
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
    assert_eq!(code(&failed), 1, "{}", describe(&failed));
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
