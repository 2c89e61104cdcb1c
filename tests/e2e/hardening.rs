//! Bad input, as a new user would give it: each case stops with exit 1, a message
//! naming what to fix, and the state folder and destination output byte-identical.

use crate::support::*;

#[test]
fn an_unclosed_or_empty_variable_is_an_error_at_its_line() {
    let project = TestProject::new(
        &PROJECT.edit("path: out", "path: out/${ZUORA_DIR"),
        &[("usage.yml", MODEL)],
    );
    project.export_day("2026-11-18", &[("A1", 1)]);
    for command in ["validate", "plan", "run"] {
        refused(
            &project,
            &[command],
            &[("ZUORA_DIR", "x")],
            &["dinmo.yml:7:5: destination `files` path: `${ZUORA_DIR` is not closed"],
        );
    }
    assert!(
        !project.path().join("out").exists(),
        "no folder named after the literal text"
    );

    let project = TestProject::new(
        &PROJECT.edit("path: out", "path: ${ZUORA_DIR}"),
        &[("usage.yml", MODEL)],
    );
    project.export_day("2026-11-18", &[("A1", 1)]);
    let err = refused(
        &project,
        &["run"],
        &[("ZUORA_DIR", "")],
        &["environment variable `ZUORA_DIR` is empty"],
    );
    assert!(!err.contains("is not set"), "{err}");
    refused(
        &project,
        &["run"],
        &[],
        &["environment variable `ZUORA_DIR` is not set"],
    );
    let project = TestProject::new(
        &PROJECT.edit("path: out", "path: out/${ZUORA DIR}"),
        &[("usage.yml", MODEL)],
    );
    refused(&project, &["validate"], &[], &["`${ZUORA DIR}` is not a variable name"]);
}

#[test]
fn refusals_are_summarised_by_code_and_field() {
    let model = MODEL
        .edit(
            "sql: SELECT account,",
            "sql: SELECT CASE WHEN qty = 1 THEN repeat('A', 60) ELSE account END AS account, CASE WHEN qty = 2 THEN repeat('x', 10000) ELSE 'ok' END AS note,",
        )
        .edit("      Quantity: qty\n", "      Quantity: qty\n      Description: note\n");
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2), ("A3", 3)]);
    let run = project.dinmo(&["run"]);
    exits(&run, 3);
    let out = stdout(&run);
    assert!(out.contains("1 × too_long (AccountNumber):"), "{out}");
    assert!(
        out.contains("1 × too_long (Description): Description has 10000 characters"),
        "{out}"
    );
}

#[test]
fn a_quantity_zuora_cannot_store_is_refused_per_row_in_every_destination() {
    // Zuora keeps 13 digits before the decimal point: 10^30 would be refused at upload, or
    // stored and never billed. It is refused here, with the reason, and offered again.
    let model = MODEL.edit(
        "CAST(day AS TIMESTAMP) AS usage_day, qty FROM events",
        "CAST(day AS TIMESTAMP) AS usage_day, CASE WHEN qty = 7 THEN 1e30 ELSE CAST(qty AS DOUBLE) END AS qty FROM events",
    );
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 7), ("A2", 2)]);
    let run = project.dinmo(&["run"]);
    exits(&run, 3);
    assert!(
        stdout(&run).contains("1 × too_large (Quantity): Quantity is 1000000000000000000000000000000: 31 digits"),
        "{}",
        describe(&run)
    );
    let rows = project.output_rows("usage.files");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with("A2,"), "{rows:?}");

    let sim = crate::zuora::Sim::start(zuora_sim::SimConfig::default());
    let project = crate::zuora::zuora_project(&sim, "actions", "");
    project.write(
        "models/usage.yml",
        &crate::zuora::usage_model(
            "SELECT account, uom, CAST(day AS TIMESTAMP) AS usage_day, CASE WHEN qty = 0 THEN 1e30 ELSE CAST(qty AS DOUBLE) END AS qty FROM events",
        ),
    );
    crate::zuora::export(&project, "2026-11-18", &crate::zuora::usage_rows(3));
    let run = crate::zuora::run_against(&project, &sim, &["run"]);
    exits(&run, 3);
    assert!(stdout(&run).contains("1 × too_large (Quantity)"), "{}", describe(&run));
    assert_eq!(sim.records().len(), 2);
}

#[test]
fn an_empty_source_file_is_an_error_naming_it_unless_skipping_is_asked_for() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    project.write("data/events/day=2026-11-19/part-00000.parquet", "");
    for command in ["plan", "run"] {
        refused(
            &project,
            &[command],
            &[],
            &[
                "source `events`: file ",
                "day=2026-11-19/part-00000.parquet is empty (0 bytes)",
                "skip_empty_files",
            ],
        );
    }
    let skipping = PROJECT.edit(
        "    location: data/events/\n",
        "    location: data/events/\n    options:\n      skip_empty_files: true\n",
    );
    project.write("dinmo.yml", &skipping);
    let run = project.dinmo(&["run"]);
    exits_with(&run, 0, &["skipping an empty file"]);
    assert_eq!(project.output_rows("usage.files").len(), 1);
}

#[test]
fn a_corrupt_or_foreign_file_in_a_source_is_named() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    project.export_day("2026-11-19", &[("A2", 2)]);
    // Truncated: the footer is gone.
    let good = std::fs::read(project.path().join("data/events/day=2026-11-19/part.parquet")).unwrap();
    std::fs::write(
        project.path().join("data/events/day=2026-11-19/part.parquet"),
        &good[..good.len() / 2],
    )
    .unwrap();
    refused(
        &project,
        &["run"],
        &[],
        &["day=2026-11-19/part.parquet is not a readable Parquet file"],
    );
    // Not Parquet at all.
    project.write("data/events/day=2026-11-19/part.parquet", "account,qty\nA2,2\n");
    refused(
        &project,
        &["plan"],
        &[],
        &["day=2026-11-19/part.parquet is not a readable Parquet file"],
    );
}

#[test]
fn a_bad_ndjson_line_is_named_with_its_file_and_line() {
    let project = TestProject::new(
        &PROJECT.edit(
            "    location: data/events/\n",
            "    location: data/events/\n    format: json\n",
        ),
        &[("usage.yml", MODEL)],
    );
    project.write(
        "data/events/day=2026-11-18/part.json",
        "{\"account\": \"A1\", \"qty\": 1}\n{\"account\": \"A2\", \"qty\": 2}\n{\"account\": \"A3\", \"qty\": }\n",
    );
    refused(&project, &["run"], &[], &["day=2026-11-18/part.json line 3: "]);
}

#[test]
fn an_unknown_key_in_dinmo_yml_does_not_hide_the_model_files_problems() {
    let project = TestProject::new(
        &format!("{PROJECT}colour: blue\n"),
        &[("usage.yml", &MODEL.edit("primary_key:", "primary_keys:"))],
    );
    project.export_day("2026-11-18", &[("A1", 1)]);
    for command in ["validate", "run"] {
        refused(
            &project,
            &[command],
            &[],
            &[
                "2 problems in the project configuration",
                "dinmo.yml:",
                "colour",
                "models/usage.yml:",
                "primary_keys",
            ],
        );
    }
}

#[test]
fn a_deleted_run_manifest_is_reported_not_taken_for_a_first_run() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2)]);
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    for manifest in project.state_files("usage.files", "runs") {
        std::fs::remove_file(manifest).unwrap();
    }
    let plan = project.dinmo(&["plan", "--detailed-exitcode"]);
    assert_eq!(code(&plan), 0, "nothing is resent: {}", describe(&plan));
    let out = stdout(&plan);
    assert!(!out.contains("(first run)"), "{out}");
    assert!(out.contains("1 snapshot part(s) are named by no run manifest"), "{out}");
    let verify = project.dinmo(&["state", "verify"]);
    assert!(
        stdout(&verify).contains("is named by no manifest"),
        "{}",
        describe(&verify)
    );
}

#[test]
fn a_usage_file_that_cannot_be_stored_fails_the_run_and_the_next_run_sends_every_row_once() {
    let project = TestProject::new(
        &PROJECT.edit("    path: out\n", "    path: out\n    max_file_bytes: 65536\n"),
        &[("usage.yml", MODEL)],
    );
    let accounts: Vec<String> = (0..3000).map(|i| format!("A{i:05}")).collect();
    let rows: Vec<(&str, i64)> = accounts.iter().zip(0..).map(|(a, q)| (a.as_str(), q)).collect();
    project.export_day("2026-11-18", &rows);
    // The sync's folder is a file: every usage file fails to be stored, while later batches
    // are still being placed (several files, several batches).
    project.write("out/usage.files", "not a folder");
    let env = [("DINMO_DELIVERY_BATCH_ROWS", "500"), ("DINMO_COMMIT_INTERVAL_MS", "0")];
    let failed = dinmo_in(project.path(), &["run"], &env);
    exits(&failed, 1);
    let text = describe(&failed);
    assert!(
        text.contains("cannot write `") && text.contains("out/usage.files/usage_") && text.contains("Not a directory"),
        "the error names the file and why: {text}"
    );
    assert!(
        project.state_files("usage.files", "snapshot").is_empty(),
        "nothing was stored, so nothing is acknowledged or committed"
    );
    assert_eq!(
        project.state_files("usage.files", "pending").len(),
        1,
        "the rows stay pending"
    );

    std::fs::remove_file(project.path().join("out/usage.files")).unwrap();
    let second = dinmo_in(project.path(), &["run"], &env);
    exits(&second, 0);
    assert!(project.output_files("usage.files").len() > 2, "several files");
    let mut keys: Vec<String> = project
        .output_rows("usage.files")
        .iter()
        .map(|r| r.split(',').nth(6).unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3000);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3000, "every row once");
    let third = project.dinmo(&["run"]);
    assert!(stdout(&third).contains("new rows: 0"), "{}", describe(&third));
}

/// A DOUBLE quantity carries binary float tails (`3 * 0.1` is 0.30000000000000004): it is sent
/// rounded to the 9 decimal places Zuora stores, not refused; a DECIMAL with more places is
/// still refused, naming the field.
#[test]
fn float_quantities_are_rounded_to_nine_places_and_finer_decimals_refused() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 3), ("A2", 7)]);
    project.write(
        "models/usage.yml",
        &MODEL.replace(", qty FROM events", ", CAST(qty AS DOUBLE) * 0.1 AS qty FROM events"),
    );
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    let rows = project.output_rows("usage.files");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("A1,") && r.contains(",2026-11-18T00:00:00,0.3,"))
            && rows
                .iter()
                .any(|r| r.starts_with("A2,") && r.contains(",2026-11-18T00:00:00,0.7,")),
        "{rows:?}"
    );

    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 3)]);
    project.write(
        "models/usage.yml",
        &MODEL.replace(
            ", qty FROM events",
            ", CAST(qty AS DECIMAL(20, 10)) / 7 AS qty FROM events",
        ),
    );
    let out = project.dinmo(&["run"]);
    exits(&out, 3);
    assert!(stdout(&out).contains("decimal places"), "{}", describe(&out));
}
