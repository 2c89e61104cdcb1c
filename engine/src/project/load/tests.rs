//! Loading and static validation: every problem is reported with its file, line and column,
//! all at once.

use std::path::Path;

use super::load_project_with;
use crate::error::DinmoError;

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const PROJECT: &str = "name: t
sources:
  events:
    location: data/
destinations:
  files:
    type: zuora_file
    path: out
";

const MODEL: &str = "model: calls
sql: SELECT 1 AS a
primary_key: [a]
syncs:
  - destination: files
    mapping:
      AccountNumber: a
";

fn env(name: &str) -> Option<String> {
    (name == "BUCKET").then(|| "secret-bucket-name".to_string())
}

/// The located problems, one `file:line:col: message` per line.
fn problems(root: &Path) -> Vec<String> {
    match load_project_with(root, &env) {
        Err(DinmoError::Config(report)) => report.problems().iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected a config report, got {other}"),
        Ok(_) => panic!("expected problems, the project loaded"),
    }
}

#[test]
fn a_valid_project_loads() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "dinmo.yml", PROJECT);
    write(dir.path(), "models/calls.yml", MODEL);
    let project = load_project_with(dir.path(), &env).unwrap();
    assert_eq!(project.models.len(), 1);
    assert_eq!(project.models[0].syncs[0].id, "calls.files");
    assert_eq!(project.state, dir.path().join(".dinmo/state").display().to_string());
}

#[test]
fn unknown_keys_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "dinmo.yml",
        &PROJECT.replace("name: t\n", "name: t\nmodel_paths: [x]\n"),
    );
    write(dir.path(), "models/calls.yml", MODEL);
    assert_eq!(
        problems(dir.path()),
        [
            "dinmo.yml:2:1: unknown field `model_paths`, expected one of name, model-paths, state, target-path, sources, destinations, execution"
        ]
    );
}

#[test]
fn every_model_file_problem_is_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "dinmo.yml", PROJECT);
    // 1. a typo'd key, 2. a wrong type, 3. an unknown destination, 4. a duplicate model name.
    write(
        dir.path(),
        "models/a_typo.yml",
        &MODEL.replace("primary_key", "primary_keys"),
    );
    write(
        dir.path(),
        "models/b_type.yml",
        "model: other\nsql: SELECT 1 AS a\nprimary_key: a\n",
    );
    write(
        dir.path(),
        "models/c_dest.yml",
        &MODEL
            .replace("model: calls", "model: third")
            .replace("destination: files", "destination: filez"),
    );
    write(dir.path(), "models/d_dup.yml", MODEL);
    write(dir.path(), "models/e_dup.yml", MODEL);
    let found = problems(dir.path());
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].starts_with("models/a_typo.yml:3:1: unknown field `primary_keys`"),
        "{}",
        found[0]
    );
    assert!(found[1].starts_with("models/b_type.yml:3:14: "), "{}", found[1]);
    assert_eq!(
        found[2],
        "models/c_dest.yml:5:18: sync names unknown destination `filez` (dinmo.yml defines: files)"
    );
    assert_eq!(
        found[3],
        "models/e_dup.yml:1:1: model `calls` is also defined in models/d_dup.yml"
    );
}

#[test]
fn an_unset_variable_is_named_and_no_value_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let project = PROJECT.replace("location: data/", "location: s3://${BUCKET}/${EXPORT_PREFIX}/");
    write(dir.path(), "dinmo.yml", &project);
    write(dir.path(), "models/calls.yml", MODEL);
    let found = problems(dir.path());
    assert_eq!(
        found,
        ["dinmo.yml:4:15: source `events` location: environment variable `EXPORT_PREFIX` is not set"]
    );
    assert!(!found[0].contains("secret-bucket-name"));
}

#[test]
fn destination_config_errors_point_at_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let project = PROJECT.replace(
        "    path: out\n",
        "    path: out\n    max_file_bytes: 10\n    zipp: true\n",
    );
    write(dir.path(), "dinmo.yml", &project);
    write(dir.path(), "models/calls.yml", MODEL);
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("dinmo.yml:6:3: unknown field `zipp`"),
        "{}",
        found[0]
    );

    let project = PROJECT.replace("    path: out\n", "    path: out\n    max_file_bytes: 10\n");
    write(dir.path(), "dinmo.yml", &project);
    assert_eq!(
        problems(dir.path()),
        [
            "dinmo.yml:7:5: destination `files`: max_file_bytes is 10; it must be between 65536 and 20000000 (Zuora's limit)"
        ]
    );
}

#[test]
fn syntax_errors_carry_a_snippet() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "dinmo.yml", PROJECT);
    write(dir.path(), "models/calls.yml", "model: calls\nsql: [unclosed\n");
    let report = match load_project_with(dir.path(), &env) {
        Err(DinmoError::Config(report)) => report,
        other => panic!("expected a config report, got {other:?}"),
    };
    let problem = &report.problems()[0];
    assert_eq!(problem.file, Path::new("models/calls.yml"));
    assert!(problem.position.is_some());
    assert!(
        problem.snippet.as_deref().unwrap_or_default().contains("unclosed"),
        "{problem:?}"
    );
}
