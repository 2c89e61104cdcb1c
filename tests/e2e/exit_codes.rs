//! Every documented exit code, and the reports behind them.

use crate::support::*;

#[test]
fn exit_0_when_everything_was_delivered() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    let validate = project.dinmo(&["validate"]);
    exits(&validate, 0);
    assert_eq!(stdout(&validate), "e2e: 1 model and 1 sync are valid\n");
}

#[test]
fn exit_1_on_config_errors_with_every_location() {
    let model = MODEL.edit("Quantity: qty", "Quantity: quantity").edit(
        "primary_key: [account, usage_day]",
        "primary_key: [account, day_of_usage]",
    );
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1)]);
    for command in [&["validate"][..], &["plan"], &["run"]] {
        let output = project.dinmo(command);
        let err = exits_with(&output, 1, &[]);
        assert!(err.contains("2 problems in the project configuration"), "{err}");
        assert!(
            err.contains("models/usage.yml:3:14: primary key column `day_of_usage` is not produced by the model"),
            "{err}"
        );
        assert!(err.contains("models/usage.yml:10:17: sync `usage.files`: Quantity is mapped to column `quantity`, which the model does not produce"), "{err}");
    }
    assert!(project.output_files("usage.files").is_empty());
}

#[test]
fn exit_1_on_sql_errors_naming_the_model() {
    let model = MODEL.edit("FROM events", "FROM evnets");
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1)]);
    let output = project.dinmo(&["run"]);
    exits_with(&output, 1, &["models/usage.yml:2:6: model `usage`: SQL does not plan"]);
    assert!(stderr(&output).contains("evnets"), "{}", describe(&output));
}

#[test]
fn exit_1_on_a_type_the_field_cannot_take() {
    let model = MODEL.edit("StartDateTime: usage_day", "StartDateTime: qty");
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1)]);
    let output = project.dinmo(&["validate"]);
    exits_with(
        &output,
        1,
        &[
            "models/usage.yml:9:22: sync `usage.files`: `StartDateTime` takes a date-time (timestamp, date or ISO 8601 string) but the column is of type Int64",
        ],
    );
}

#[test]
fn exit_1_when_a_required_field_is_unmapped() {
    let model = MODEL.edit("      UnitOfMeasure: uom\n", "");
    let project = TestProject::new(PROJECT, &[("usage.yml", &model)]);
    project.export_day("2026-11-18", &[("A1", 1)]);
    let output = project.dinmo(&["validate"]);
    exits_with(
        &output,
        1,
        &["sync `usage.files`: required field `UnitOfMeasure` is not mapped"],
    );
}

#[test]
fn plan_detailed_exitcode_is_2_with_rows_to_send_and_0_without() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    let plan = project.dinmo(&["plan", "--detailed-exitcode"]);
    exits(&plan, 2);
    let plain = project.dinmo(&["plan"]);
    assert_eq!(
        code(&plain),
        0,
        "without the flag a plan with rows exits 0: {}",
        describe(&plain)
    );
    assert!(project.output_files("usage.files").is_empty(), "plan sends nothing");
    assert!(
        project.state_files("usage.files", "runs").is_empty(),
        "plan commits nothing"
    );
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    let after = project.dinmo(&["plan", "--detailed-exitcode"]);
    exits(&after, 0);
}

#[test]
fn exit_3_when_some_rows_were_rejected() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", -1)]);
    let run = project.dinmo(&["run"]);
    exits(&run, 3);
    let dry = project.dinmo(&["run", "--dry-run"]);
    assert_eq!(code(&dry), 0, "a dry run refuses nothing: {}", describe(&dry));
}

#[test]
fn selectors_pick_models_by_name_and_tag() {
    let tagged = MODEL.edit("model: usage", "model: tagged\ntags: [nightly]");
    let project = TestProject::new(PROJECT, &[("usage.yml", MODEL), ("tagged.yml", &tagged)]);
    project.export_day("2026-11-18", &[("A1", 1)]);
    let ids = |args: &[&str]| sync_ids(&project, args);
    assert_eq!(ids(&["plan", "--format", "json"]), ["tagged.files", "usage.files"]);
    assert_eq!(
        ids(&["plan", "--format", "json", "--select", "tag:nightly"]),
        ["tagged.files"]
    );
    assert_eq!(
        ids(&["plan", "--format", "json", "--exclude", "tagged"]),
        ["usage.files"]
    );
    assert_eq!(
        ids(&["plan", "--format", "json", "--select", "sync:usage.files"]),
        ["usage.files"]
    );
    let unknown = project.dinmo(&["plan", "--select", "nope"]);
    assert_eq!(code(&unknown), 1);
    assert!(
        stderr(&unknown).contains("selector `nope`: matches no model or sync"),
        "{}",
        describe(&unknown)
    );
}

#[test]
fn plan_and_show_reports() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", -2)]);
    let plan = project.dinmo(&["plan"]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{8}T\d{9}Z-[0-9a-f]{4}", "[RUN_ID]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]");
    settings.add_filter(&regex_escape(&project.path().display().to_string()), "[PROJECT]");
    settings.bind(|| insta::assert_snapshot!("plan_text", stdout(&plan)));
    let run = project.dinmo(&["run"]);
    assert_eq!(code(&run), 3);
    let runs = project.dinmo(&["runs"]);
    let run_id = stdout(&runs)
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let show = project.dinmo(&["show", &run_id]);
    exits(&show, 0);
    settings.add_filter(r"xxh3 [0-9a-f]{16}", "xxh3 [HASH]");
    settings.add_filter(r"\d+ bytes", "[N] bytes");
    settings.add_filter(r"git commit [0-9a-f]{40}\n", "");
    settings.bind(|| insta::assert_snapshot!("show_text", stdout(&show)));
    let missing = project.dinmo(&["show", "20000101T000000000Z-0000"]);
    assert_eq!(code(&missing), 1);
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn exit_64_on_usage_errors_never_2() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    let before = project.state_digest();
    for args in [
        &["plan", "--detailed-exitcod"][..],
        &["rnu"],
        &["run", "--wait", "soon"],
        &["state", "resolve-pending", "usage.files"],
        &[],
    ] {
        let output = project.dinmo(args);
        assert_eq!(code(&output), 64, "{args:?}: {}", describe(&output));
        let err = stderr(&output);
        assert!(
            err.contains("Usage:") || err.contains("--help"),
            "{args:?}: {}",
            describe(&output)
        );
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let output = project.dinmo(args);
        assert_eq!(code(&output), 0, "{args:?}: {}", describe(&output));
    }
    assert_eq!(project.state_digest(), before, "nothing was written");
    assert!(project.output_files("usage.files").is_empty());
}

#[test]
fn a_malformed_setting_stops_every_command_naming_the_variable() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    let before = project.state_digest();
    for (variable, value) in [
        ("DINMO_LOCK_LEASE_SECS", "abc"),
        ("DINMO_LOCK_LEASE_SECS", ""),
        ("DINMO_DELIVERY_BATCH_ROWS", "0"),
        ("DINMO_DELIVERY_BATCH_ROWS", "10k"),
        ("DINMO_LOG", "dinmo=loud"),
    ] {
        for command in [&["run"][..], &["plan"], &["validate"]] {
            let output = dinmo_in(project.path(), command, &[(variable, value)]);
            assert_eq!(
                code(&output),
                1,
                "{variable}={value} {command:?}: {}",
                describe(&output)
            );
            let err = stderr(&output);
            assert!(
                err.contains(&format!("environment variable {variable}={value:?} is not valid")),
                "{err}"
            );
        }
    }
    assert_eq!(project.state_digest(), before, "nothing was written");
    assert!(project.output_files("usage.files").is_empty());
}

#[test]
fn logs_carry_no_colour_when_stderr_is_not_a_terminal() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1)]);
    let run = dinmo_in(project.path(), &["run"], &[("DINMO_LOG", "info")]);
    let err = exits_with(&run, 0, &[]);
    assert!(err.contains("run started"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escape in a log written to a pipe: {err:?}"
    );
}

/// A project whose model `usage` syncs to a Zuora destination nobody answers (port 9 on
/// loopback: every attempt is refused, and the connection's retries run out in seconds) and to
/// usage files, in the order of `syncs`, with one day of two rows exported.
fn unreachable_zuora_beside_files(syncs: &[&str; 2]) -> TestProject {
    let mapping = |destination: &str| match destination {
        "zuora" => "{ AccountNumber: account, UOM: uom, StartDateTime: usage_day, Quantity: qty }",
        _ => "{ AccountNumber: account, UnitOfMeasure: uom, StartDateTime: usage_day, Quantity: qty }",
    };
    let syncs: String = syncs
        .iter()
        .map(|d| format!("  - destination: {d}\n    mapping: {}\n", mapping(d)))
        .collect();
    let project = TestProject::new(
        &format!(
            "{PROJECT}  zuora:\n    type: zuora\n    base_url: http://127.0.0.1:9\n    client_id: id\n    \
             client_secret: ${{ZUORA_CLIENT_SECRET}}\n"
        ),
        &[(
            "usage.yml",
            &format!(
                "model: usage
sql: SELECT account, 'API_CALL' AS uom, CAST(day AS TIMESTAMP) AS usage_day, qty FROM events
primary_key: [account, usage_day]
syncs:
{syncs}"
            ),
        )],
    );
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2)]);
    project
}

/// A destination that cannot be reached fails its own syncs only: the model's other sync sends
/// its rows, and the report keeps the syncs in their order.
#[test]
fn an_unreachable_destination_fails_only_its_own_syncs() {
    let project = unreachable_zuora_beside_files(&["zuora", "files"]);
    let out = dinmo_in(project.path(), &["run"], &[("ZUORA_CLIENT_SECRET", "not-shown")]);
    exits(&out, 1);
    let report = stdout(&out);
    let (zuora, files) = (report.find("usage.zuora"), report.find("usage.files"));
    assert!(
        zuora.is_some() && files.is_some() && zuora < files,
        "{}",
        describe(&out)
    );
    assert!(
        report.contains("POST http://127.0.0.1:9/oauth/token still failing"),
        "{}",
        describe(&out)
    );
    assert_eq!(project.output_rows("usage.files").len(), 2, "the other sync sends");
    assert!(project.state_files("usage.zuora", "snapshot").is_empty());
    assert!(!describe(&out).contains("not-shown"), "the secret never shows");
}

#[test]
fn a_destination_that_cannot_be_reached_holds_back_no_other_destinations_sync() {
    // The file sync comes first: it sends while the Zuora destination's connection is still
    // being retried (seconds), rather than waiting for it.
    let project = unreachable_zuora_beside_files(&["files", "zuora"]);
    let out = dinmo_in(
        project.path(),
        &["run"],
        &[("ZUORA_CLIENT_SECRET", "not-shown"), ("DINMO_LOG", "info")],
    );
    exits(&out, 1);
    assert_eq!(project.output_rows("usage.files").len(), 2, "the other sync sends");
    let logs = stderr(&out);
    let committed = logs.find("sync committed");
    let unreachable = logs.find("destination unreachable");
    assert!(
        committed.is_some() && unreachable.is_some() && committed < unreachable,
        "the file sync committed before the Zuora connection gave up: {}",
        describe(&out)
    );
    assert!(!describe(&out).contains("not-shown"), "the secret never shows");
}
