//! Zuora's two usage file layouts: `standard` (Zuora Billing's usage import format, the
//! default) and `active_rating`; the names earlier releases used; a usage import refused for
//! its layout said and counted before its rows go another way.

use zuora_sim::SimConfig;

use crate::support::*;
use crate::zuora::{Sim, export, run_against, usage_rows, zuora_project};

/// The shared `zuora_file` project ([`PROJECT`], [`MODEL`]) with `layout` on its destination
/// (the YAML line, or none) and `mapping` (YAML lines below `mapping:`) in place of the
/// model's Active Rating mapping.
fn file_project(layout: &str, mapping: &str) -> TestProject {
    TestProject::new(
        &format!("{PROJECT}{layout}"),
        &[("usage.yml", &MODEL.edit(ACTIVE_RATING_MAPPING, mapping))],
    )
}

const STANDARD_MAPPING: &str =
    "      ACCOUNT_ID: account\n      UOM: uom\n      STARTDATE: usage_day\n      QTY: qty\n";
const ACTIVE_RATING_MAPPING: &str =
    "      AccountNumber: account\n      UnitOfMeasure: uom\n      StartDateTime: usage_day\n      Quantity: qty\n";

/// The header and first row of the one file `usage.files` wrote.
fn written(project: &TestProject) -> (String, String) {
    let files = project.output_files("usage.files");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_string(),
        lines.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn the_standard_layout_is_the_default_and_earlier_names_still_read() {
    // No `layout:` and the standard fields: Zuora Billing's usage file format, en_US dates.
    let project = file_project("", STANDARD_MAPPING);
    project.export_day("2026-11-18", &[("A1", 5)]);
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    assert!(!stderr(&out).contains("layout"), "no warning: {}", stderr(&out));
    let (header, row) = written(&project);
    assert_eq!(
        header,
        "ACCOUNT_ID,UOM,QTY,STARTDATE,ENDDATE,SUBSCRIPTION_ID,CHARGE_ID,DESCRIPTION,UNIQUE_KEY"
    );
    assert!(row.starts_with("A1,API_CALL,5,11/18/2026,,"), "{row}");

    // `legacy`, the earlier name of `standard`: the same file, and a warning naming `standard`.
    let project = file_project("    layout: legacy\n", STANDARD_MAPPING);
    project.export_day("2026-11-18", &[("A1", 5)]);
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    assert!(
        stderr(&out).contains("`layout: legacy` is now called `layout: standard`"),
        "{}",
        describe(&out)
    );
    assert!(written(&project).0.starts_with("ACCOUNT_ID,UOM,QTY,STARTDATE,ENDDATE"));

    // `current`, the earlier name of `active_rating`, likewise.
    let project = file_project("    layout: current\n", ACTIVE_RATING_MAPPING);
    project.export_day("2026-11-18", &[("A1", 5)]);
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    assert!(
        stderr(&out).contains("is now called `layout: active_rating`"),
        "{}",
        describe(&out)
    );
    let (header, row) = written(&project);
    assert!(
        header.starts_with("AccountNumber,Tag,UnitOfMeasure,StartDateTime,Quantity"),
        "{header}"
    );
    assert!(
        row.starts_with("A1,AccountNumber:A1,API_CALL,2026-11-18T00:00:00,5"),
        "{row}"
    );
}

/// A config written for an earlier release, without `layout:` and mapping Active Rating
/// fields (then the default), keeps writing the Active Rating layout and says how to keep it.
#[test]
fn a_config_without_a_layout_that_maps_active_rating_fields_keeps_that_layout() {
    let project = file_project("", ACTIVE_RATING_MAPPING);
    project.export_day("2026-11-18", &[("A1", 5)]);
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    assert!(
        stderr(&out).contains("a sync maps `AccountNumber`, an Active Rating column")
            && stderr(&out).contains("Set `layout: active_rating` to keep it"),
        "{}",
        describe(&out)
    );
    assert!(written(&project).0.starts_with("AccountNumber,Tag,UnitOfMeasure"));
}

/// The example project with the state and the configuration the last release's users had
/// (`usage_files` without `layout:` mapping Active Rating fields, `legacy_usage_files` with
/// `layout: legacy`): both layouts kept, each said once with the value to write, nothing
/// resent.
#[test]
fn a_state_and_config_of_the_last_release_keep_their_layouts_and_resend_nothing() {
    let dir = tempfile::tempdir().unwrap();
    example_as_the_last_release_had_it(dir.path());
    let state = dir.path().join(".dinmo/state");
    copy_project(&repository_root().join("tests/fixtures/state-0.1.0-d2a9208"), &state);
    std::fs::remove_file(state.join("README.md")).unwrap();
    let out = dinmo_in(dir.path(), &["run"], &[]);
    exits(&out, 0);
    assert!(stdout(&out).contains("sent 0 row(s)"), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`layout: legacy` is now called `layout: standard`"),
        "{err}"
    );
    assert!(err.contains("Set `layout: active_rating` to keep it"), "{err}");

    // The same state with `layout: current` written out, as some users had it.
    let current = tempfile::tempdir().unwrap();
    example_as_the_last_release_had_it(current.path());
    let yml = std::fs::read_to_string(current.path().join("dinmo.yml")).unwrap();
    assert!(yml.contains("    path: out/zuora\n"));
    std::fs::write(
        current.path().join("dinmo.yml"),
        yml.replacen("    path: out/zuora\n", "    path: out/zuora\n    layout: current\n", 1),
    )
    .unwrap();
    let state = current.path().join(".dinmo/state");
    copy_project(&repository_root().join("tests/fixtures/state-0.1.0-d2a9208"), &state);
    std::fs::remove_file(state.join("README.md")).unwrap();
    let out = dinmo_in(current.path(), &["run"], &[]);
    exits(&out, 0);
    assert!(stdout(&out).contains("sent 0 row(s)"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("`layout: current` is now called `layout: active_rating`"),
        "{}",
        describe(&out)
    );
    // The same configuration on a fresh state: each destination writes the layout it wrote
    // under the last release.
    let fresh = tempfile::tempdir().unwrap();
    example_as_the_last_release_had_it(fresh.path());
    exits(&dinmo_in(fresh.path(), &["run"], &[]), 0);
    let header = |sync: &str, folder: &str| {
        let mut files = Vec::new();
        collect_files(&fresh.path().join("out").join(folder).join(sync), &mut files);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        text.lines().next().unwrap().to_string()
    };
    assert!(header("api_calls_daily.usage_files", "zuora").starts_with("AccountNumber,Tag"));
    assert!(header("storage_gb_daily.legacy_usage_files", "zuora-legacy").starts_with("ACCOUNT_ID,UOM"));
}

/// `method: import` sends the standard layout by default, which a tenant without Active
/// Rating imports; `validate --connect` says which layout it sends.
#[test]
fn imports_send_the_standard_layout_and_validate_says_so() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "import", "");
    export(&project, "2026-11-18", &usage_rows(12));
    let check = run_against(&project, &sim, &["validate", "--connect"]);
    exits(&check, 0);
    assert!(
        stdout(&check).contains("usage imports are sent in the standard layout (ACCOUNT_ID, UOM, QTY, STARTDATE"),
        "{}",
        describe(&check)
    );
    let out = run_against(&project, &sim, &["run"]);
    exits(&out, 0);
    let records = sim.records();
    assert_eq!(records.len(), 12);
    assert!(
        records.iter().all(|r| r.import_id.is_some()),
        "imported, not sent by actions"
    );
    assert!(!stdout(&out).contains("instead"), "{}", describe(&out));
}

/// A mapped field the import file's layout has no column for would be dropped on the way:
/// `method: import` refuses it before anything is sent, naming the field and the layout, and
/// takes it where the layout carries it (the standard layout's `SUBSCRIPTION_ID`).
#[test]
fn an_import_refuses_a_mapped_field_its_layout_cannot_carry() {
    let sim = Sim::start(SimConfig::default());
    let model = |sql: &str| {
        crate::zuora::usage_model(sql).edit(
            "      Quantity: qty\n",
            "      Quantity: qty\n      SubscriptionNumber: sub\n",
        )
    };
    let sql = "SELECT account, uom, CAST(day AS TIMESTAMP) AS usage_day, qty, 'S-1' AS sub FROM events";
    let active = zuora_project(&sim, "import", "    import_layout: active_rating\n");
    active.write("models/usage.yml", &model(sql));
    export(&active, "2026-11-18", &usage_rows(3));
    let refused = run_against(&active, &sim, &["run"]);
    assert_ne!(code(&refused), 0, "{}", describe(&refused));
    assert!(
        stderr(&refused).contains("no column for `SubscriptionNumber`")
            && stderr(&refused).contains("active_rating layout"),
        "{}",
        describe(&refused)
    );
    assert!(sim.records().is_empty(), "nothing sent");

    let standard = zuora_project(&sim, "import", "");
    standard.write("models/usage.yml", &model(sql));
    export(&standard, "2026-11-18", &usage_rows(3));
    exits(&run_against(&standard, &sim, &["run"]), 0);
    assert_eq!(sim.records().len(), 3);
}

/// A tenant with Active Rating fails an import in the standard layout: the run says so once,
/// with Zuora's reason, sends the rows through `actions`, and counts them in the report; with
/// `import_layout: active_rating` the same tenant imports them.
#[test]
fn an_import_refused_for_its_layout_is_said_and_counted_before_the_fallback() {
    let tenant = SimConfig {
        active_rating: true,
        ..SimConfig::default()
    };
    let sim = Sim::start(tenant.clone());
    let project = zuora_project(&sim, "import", "");
    export(&project, "2026-11-18", &usage_rows(12));
    let out = run_against(&project, &sim, &["run"]);
    exits(&out, 0);
    assert_eq!(sim.records().len(), 12, "every row sent, once");
    assert!(sim.records().iter().all(|r| r.import_id.is_none()), "through actions");
    let report = stdout(&out);
    assert!(
        report.contains("warning: 12 row(s) of usage import")
            && report.contains("(standard layout) went through actions instead")
            && report.contains("requires the column AccountNumber"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        stderr(&out).matches("Zuora failed a usage import").count(),
        1,
        "said once: {}",
        stderr(&out)
    );

    let sim = Sim::start(tenant);
    let project = zuora_project(&sim, "import", "    import_layout: active_rating\n");
    export(&project, "2026-11-18", &usage_rows(12));
    exits(&run_against(&project, &sim, &["run"]), 0);
    assert_eq!(sim.records().len(), 12);
    assert!(sim.records().iter().all(|r| r.import_id.is_some()), "imported");
}
