//! The Airflow example DAG (docs/examples/airflow/dinmo_billing.py), run for real with
//! `airflow dags test` against the example project. `.ci/run` installs apache-airflow into
//! `.ci/tools/airflow`; set `DINMO_AIRFLOW` to use another installation.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn airflow() -> PathBuf {
    if let Ok(path) = std::env::var("DINMO_AIRFLOW") {
        return PathBuf::from(path);
    }
    let local = repository_root().join(".ci/tools/airflow/bin/airflow");
    assert!(
        local.exists(),
        "Airflow is not installed: run .ci/run (it installs apache-airflow into .ci/tools/airflow) or set DINMO_AIRFLOW"
    );
    local
}

/// Runs the DAG once with `airflow dags test`; returns its output.
fn dags_test(project: &Path, select: &str) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let env = |command: &mut Command| {
        command
            .env("AIRFLOW_HOME", home.path())
            .env(
                "AIRFLOW__CORE__DAGS_FOLDER",
                repository_root().join("docs/examples/airflow"),
            )
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env("DINMO_BIN", env!("CARGO_BIN_EXE_dinmo"))
            .env("DINMO_PROJECT", project)
            .env("DINMO_SELECT", select);
    };
    let mut migrate = Command::new(airflow());
    migrate.args(["db", "migrate"]);
    env(&mut migrate);
    let migrated = migrate.output().unwrap();
    assert!(migrated.status.success(), "airflow db migrate: {}", describe(&migrated));
    let mut test = Command::new(airflow());
    test.args(["dags", "test", "dinmo_billing", "2026-11-21"]);
    env(&mut test);
    test.output().unwrap()
}

#[test]
fn the_example_dag_runs_the_example_project() {
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("billing");
    copy_project(&repository_root().join("models"), &project);
    let output = dags_test(&project, "tag:billing");
    let log = describe(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("state=success") || log.contains("new_state=success"),
        "{log}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join("target/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["exit_code"], 0);
    assert_eq!(results["results"].as_array().unwrap().len(), 3);
    assert!(project.join("out/zuora/api_calls_daily.usage_files").is_dir());
}

#[test]
fn the_example_dag_treats_refused_rows_as_a_warning() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", -1)]);
    let output = dags_test(project.path(), "usage");
    let log = describe(&output);
    assert!(output.status.success(), "exit 3 must not fail the task: {log}");
    assert!(
        log.contains("1 row(s) were refused by Zuora; they are retried next run"),
        "{log}"
    );
    assert_eq!(project.output_rows("usage.files").len(), 1);
}
