//! Usage that changes after it was sent, through the real binary against the Zuora simulator:
//! late events raise a synced day, a restatement lowers one, a bill run processes a day in
//! between; `on_change: hold` (the default) holds, `correct` makes Zuora match exactly once.

use std::collections::BTreeMap;

use zuora_sim::SimConfig;

use crate::history::{query, scalar};
use crate::support::*;
use crate::zuora::{Sim, export, run_against, usage_model, usage_model_keyed, zuora_project};

/// A `usage.zuora` project sending with `method`, its sync's policies set by `policies`
/// (YAML lines such as `    on_change: correct\n`).
fn project(sim: &Sim, method: &str, policies: &str) -> TestProject {
    let project = zuora_project(sim, method, "");
    set_policies(&project, policies);
    project
}

/// Replaces the sync's policy lines with `policies`.
fn set_policies(project: &TestProject, policies: &str) {
    let model = usage_model("SELECT account, uom, CAST(day AS TIMESTAMP) AS usage_day, qty FROM events");
    project.write("models/usage.yml", &format!("{model}{policies}"));
}

/// Twelve accounts' API calls on `day`, account `i` with quantity `quantity(i)`.
fn export_day(project: &TestProject, day: &str, quantity: impl Fn(usize) -> i64) {
    let rows: Vec<(String, String, i64)> = (0..12)
        .map(|i| (format!("A{:08}", 1 + i), "API_CALL".to_string(), quantity(i)))
        .collect();
    export(project, day, &rows);
}

/// What Zuora bills per account and day: the sum of its records' quantities.
fn billed(sim: &Sim) -> BTreeMap<(String, String), f64> {
    let mut totals = BTreeMap::new();
    for record in sim.records() {
        let day = record.start_date_time.chars().take(10).collect::<String>();
        *totals.entry((record.account_number.clone(), day)).or_insert(0.0) += record.quantity;
    }
    totals
}

/// What the warehouse says for `day`: `quantity(i)` for account `i`.
fn says(day: &str, quantity: impl Fn(usize) -> i64) -> BTreeMap<(String, String), f64> {
    (0..12)
        .map(|i| ((format!("A{:08}", 1 + i), day.to_string()), quantity(i) as f64))
        .collect()
}

/// `dinmo reconcile` finds Zuora holding exactly what the warehouse says: every record dinmo
/// delivered for `rows` rows, corrections folded in, and nothing else.
#[track_caller]
fn reconciled(project: &TestProject, sim: &Sim, rows: u64) {
    let output = run_against(project, sim, &["reconcile", "--format", "json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(&output)));
    assert_eq!(code(&output), 0, "{report:#}");
    assert_eq!(report["syncs"][0]["classes"][0]["class"], "equal", "{report:#}");
    assert_eq!(report["syncs"][0]["classes"][0]["rows"], rows, "{report:#}");
}

/// Marks every Pending record Processed, as a bill run would.
fn bill_run(sim: &Sim) {
    for record in sim.sim.state.lock().records.iter_mut() {
        record.status = "Processed".into();
    }
}

/// Asserts `output` ended with exit `expected` and its report (stdout) holds every one of
/// `needles`; returns the report.
#[track_caller]
fn reports(output: &std::process::Output, expected: i32, needles: &[&str]) -> String {
    exits(output, expected);
    let out = stdout(output);
    for needle in needles {
        assert!(out.contains(needle), "missing {needle:?} in:\n{}", describe(output));
    }
    out
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("{e}: {}", describe(output)))
}

fn sync_report(output: &std::process::Output) -> serde_json::Value {
    json(output)["syncs"][0].clone()
}

#[test]
fn late_events_raising_a_synced_day_are_held_then_corrected_in_place() {
    let sim = Sim::start(SimConfig::default());
    let project = project(&sim, "actions", "");
    let sent = |i: usize| 10 + i as i64;
    export_day(&project, "2026-11-18", sent);
    exits(&run_against(&project, &sim, &["run"]), 0);
    assert_eq!(billed(&sim), says("2026-11-18", sent));

    // Late events raise three accounts' day.
    let raised = |i: usize| if i < 3 { 20 + i as i64 } else { 10 + i as i64 };
    export_day(&project, "2026-11-18", raised);
    let plan = run_against(&project, &sim, &["plan", "--format", "json", "--detailed-exitcode"]);
    exits(&plan, 0); // nothing would be sent or corrected under `hold`
    let report = sync_report(&plan);
    assert_eq!(report["counts"]["new_rows"], 0, "a changed row is never new");
    assert_eq!(report["changed_rows"], 3);
    assert_eq!(report["held_rows"], 3);
    assert_eq!(report["changes"]["quantity_difference"], "30");

    let held = run_against(&project, &sim, &["run"]);
    let text = reports(
        &held,
        3,
        &["changed: 3", "held 3 of them", "(3 newly", "Quantity 10 → 20"],
    );
    assert!(text.contains("Quantity difference (now − sent): +30"), "{text}");
    assert_eq!(billed(&sim), says("2026-11-18", sent), "nothing was sent for held rows");
    // The history's `held` table: the three rows, their quantity as sent and now.
    let held_now = query(
        &project,
        "SELECT count(*) AS n, CAST(sum(quantity) - sum(quantity_before) AS BIGINT) AS raised, \
         min(held_since) = max(run_id) AS since FROM held",
    );
    assert_eq!(held_now[0]["n"], 3, "{held_now:?}");
    assert_eq!(held_now[0]["raised"], 30, "{held_now:?}");
    assert_eq!(held_now[0]["since"], true, "{held_now:?}");
    let again = run_against(&project, &sim, &["run", "--format", "json"]);
    exits(&again, 3);
    assert_eq!(sync_report(&again)["held_rows"], 3, "still held, still counted");
    assert_eq!(sync_report(&again)["newly_held_rows"], 0, "not alerted as new");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("target/run_results.json")).unwrap())
            .unwrap();
    assert_eq!(results["results"][0]["changes"]["held_rows"], 3);
    assert_eq!(results["exit_code"], 3);

    // Correcting: the records are still Pending, so they are updated in place.
    set_policies(&project, "    on_change: correct\n");
    let plan = run_against(&project, &sim, &["plan", "--detailed-exitcode"]);
    reports(&plan, 2, &["would correct 3 of them"]);
    let corrected = run_against(&project, &sim, &["run"]);
    reports(&corrected, 0, &["corrected 3 of them"]);
    assert_eq!(billed(&sim), says("2026-11-18", raised));
    assert_eq!(sim.records().len(), 12, "updated in place, no record added");
    let corrections = query(
        &project,
        "SELECT correction, count(*) AS n, count(corrects) AS c FROM corrections GROUP BY 1",
    );
    assert_eq!(
        corrections,
        [serde_json::json!({"correction": "update", "n": 3, "c": 3})]
    );
    let next = run_against(&project, &sim, &["run", "--format", "json"]);
    exits(&next, 0);
    assert_eq!(sync_report(&next)["changed_rows"], 0, "corrected once, then unchanged");
    reconciled(&project, &sim, 12);
}

#[test]
fn a_restatement_lowers_a_pending_day_in_place_and_holds_a_processed_one() {
    for method in ["actions", "import"] {
        let sim = Sim::start(SimConfig::default());
        let project = project(&sim, method, "    on_change: correct\n");
        let sent = |i: usize| 10 + i as i64;
        export_day(&project, "2026-11-18", sent);
        exits(&run_against(&project, &sim, &["run"]), 0);
        bill_run(&sim);
        export_day(&project, "2026-11-19", sent);
        exits(&run_against(&project, &sim, &["run"]), 0);

        // Bot traffic removed from both days: every count goes down by one.
        let lowered = |i: usize| 9 + i as i64;
        export_day(&project, "2026-11-18", lowered);
        export_day(&project, "2026-11-19", lowered);
        let run = run_against(&project, &sim, &["run", "--format", "json"]);
        exits(&run, 3);
        let report = sync_report(&run);
        assert_eq!(report["changed_rows"], 24, "{method}");
        assert_eq!(report["corrected_rows"], 12, "{method}: the Pending day");
        assert_eq!(report["held_rows"], 12, "{method}: the Processed day");
        assert_eq!(
            report["changes"]["reasons"]["cannot_reduce_billed_usage"], 12,
            "{method}"
        );
        let mut expected = says("2026-11-18", sent);
        expected.extend(says("2026-11-19", lowered));
        assert_eq!(billed(&sim), expected, "{method}");
        assert_eq!(sim.records().len(), 24, "{method}: no record added");

        // Settled by hand after crediting in Zuora: nothing sent, held no more.
        let resolved = run_against(&project, &sim, &["state", "resolve-held", "usage.zuora", "--accept"]);
        reports(&resolved, 0, &["12 held row(s) accepted", "0 still held"]);
        let next = run_against(&project, &sim, &["run", "--format", "json"]);
        exits(&next, 0);
        assert_eq!(sync_report(&next)["changed_rows"], 0, "{method}");
        assert_eq!(sim.records().len(), 24, "{method}");
    }
}

#[test]
fn a_processed_day_raised_gets_a_difference_record_then_only_the_next_difference() {
    for method in ["actions", "object", "import"] {
        let sim = Sim::start(SimConfig::default());
        let project = project(&sim, method, "    on_change: correct\n");
        let sent = |i: usize| 10 + i as i64;
        export_day(&project, "2026-11-18", sent);
        exits(&run_against(&project, &sim, &["run"]), 0);
        bill_run(&sim);

        let raised = |i: usize| 15 + i as i64;
        export_day(&project, "2026-11-18", raised);
        reports(&run_against(&project, &sim, &["run"]), 0, &["corrected 12 of them"]);
        assert_eq!(billed(&sim), says("2026-11-18", raised), "{method}");
        let records = sim.records();
        assert_eq!(records.len(), 24, "{method}: one difference record per row");
        let differences: Vec<_> = records.iter().filter(|r| r.quantity == 5.0).collect();
        assert_eq!(differences.len(), 12, "{method}");
        assert!(
            differences.iter().all(|r| r
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with("dinmo correction 1 of usage") && d.ends_with(", +5"))),
            "{method}: {differences:?}"
        );
        let keys: std::collections::HashSet<_> = records.iter().map(|r| r.unique_key.clone()).collect();
        assert_eq!(keys.len(), 24, "{method}: each difference has a UniqueKey of its own");

        // A second raise sends only the second difference.
        bill_run(&sim);
        let raised_again = |i: usize| 17 + i as i64;
        export_day(&project, "2026-11-18", raised_again);
        exits(&run_against(&project, &sim, &["run"]), 0);
        assert_eq!(billed(&sim), says("2026-11-18", raised_again), "{method}");
        assert_eq!(sim.records().len(), 36, "{method}");
        let next = run_against(&project, &sim, &["run", "--format", "json"]);
        exits(&next, 0);
        assert_eq!(sync_report(&next)["changed_rows"], 0, "{method}");
        assert_eq!(sim.records().len(), 36, "{method}: nothing more");
        // Each row's record and its two difference records, as Zuora holds them.
        reconciled(&project, &sim, 36);
        // In the history: each difference a sent row of its own, adding up to what Zuora bills.
        let total: f64 = sim.records().iter().map(|r| r.quantity).sum();
        let sent: f64 = scalar(&project, "SELECT CAST(sum(quantity) AS DOUBLE) FROM sent")
            .parse()
            .unwrap_or(0.0);
        assert_eq!(sent, total, "{method}");
        assert_eq!(
            scalar(
                &project,
                "SELECT count(*) FROM corrections WHERE correction = 'difference'"
            ),
            "24",
            "{method}"
        );
    }
}

#[test]
fn the_same_value_in_another_type_or_unit_is_not_a_change() {
    let sim = Sim::start(SimConfig::default());
    let project = project(&sim, "actions", "");
    export_day(&project, "2026-11-18", |i| 10 + i as i64);
    exits(&run_against(&project, &sim, &["run"]), 0);
    // The model now gives the quantity as a decimal and the day as a zoned timestamp in
    // milliseconds: the same values as sent.
    project.write(
        "models/usage.yml",
        &usage_model(
            "SELECT account, uom, \
             arrow_cast(arrow_cast(CAST(day AS TIMESTAMP), 'Timestamp(Nanosecond, Some(\"UTC\"))'), \
             'Timestamp(Millisecond, Some(\"+02:00\"))') AS usage_day, \
             CAST(qty AS DECIMAL(18, 4)) AS qty FROM events",
        ),
    );
    let plan = run_against(&project, &sim, &["plan", "--format", "json"]);
    exits(&plan, 0);
    let report = sync_report(&plan);
    assert_eq!(report["changed_rows"], 0, "{report}");
    assert_eq!(report["counts"]["new_rows"], 0, "{report}");
}

/// Crashes (kill -9 at `point`, its `nth` hit) while a run corrects a processed day with
/// difference records and a pending day in place, and deletes the pending records of rows
/// gone from the model, then runs again: Zuora ends up billing what the warehouse says, each
/// correction made once.
#[cfg(feature = "failpoints")]
fn crash_while_correcting(method: &str, point: &str) {
    let sim = Sim::start(SimConfig::default());
    let project = project(
        &sim,
        method,
        "    on_change: correct\n    on_delete: rollback_pending\n",
    );
    let env = |extra: &[(&'static str, String)]| {
        let mut env = vec![
            ("ZUORA_CLIENT_ID", sim.client_id()),
            ("ZUORA_CLIENT_SECRET", sim.secret()),
            ("DINMO_DELIVERY_BATCH_ROWS", "5".to_string()),
            ("DINMO_COMMIT_INTERVAL_MS", "0".to_string()),
            ("DINMO_LOG", "warn".to_string()),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    let run = |extra: &[(&'static str, String)]| {
        let env = env(extra);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        dinmo_in(project.path(), &["run"], &pairs)
    };
    let sent = |i: usize| 10 + i as i64;
    export_day(&project, "2026-11-18", sent);
    exits(&run(&[]), 0);
    bill_run(&sim);
    export_day(&project, "2026-11-19", sent);
    exits(&run(&[]), 0);

    let raised = |i: usize| 14 + i as i64;
    export_day(&project, "2026-11-18", raised);
    // The Pending day is raised too, and loses its last two accounts (deleted in Zuora).
    let rows: Vec<(String, String, i64)> = (0..10)
        .map(|i| (format!("A{:08}", 1 + i), "API_CALL".to_string(), raised(i)))
        .collect();
    export(&project, "2026-11-19", &rows);
    let crashed = run(&[("DINMO_CRASH_AT", point.to_string())]);
    assert!(
        crashed.status.code().is_none() || crashed.status.code() == Some(134),
        "{method}/{point}: expected a crash: {}",
        describe(&crashed)
    );
    let recovered = run(&[]);
    exits(&recovered, 0);
    let mut expected = says("2026-11-18", raised);
    expected.extend(says("2026-11-19", raised).into_iter().take(10));
    assert_eq!(billed(&sim), expected, "{method}/{point}: {}", describe(&recovered));
    let records = sim.records();
    assert_eq!(
        records.len(),
        34,
        "{method}/{point}: 24 rows, 12 differences, 2 deleted, none twice"
    );
    let keys: std::collections::HashSet<_> = records.iter().map(|r| r.unique_key.clone()).collect();
    assert_eq!(keys.len(), 34, "{method}/{point}");
    let plan = run_against(&project, &sim, &["plan", "--detailed-exitcode"]);
    exits(&plan, 0);
    assert!(
        project.state_files("usage.zuora", "pending").is_empty(),
        "{method}/{point}"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_crash_at_every_point_of_a_correction_corrects_exactly_once() {
    for method in ["actions", "import"] {
        for point in [
            "pending_stored",
            "intent_recorded",
            "before_update",
            "before_update:3",
            "update_answered",
            "update_answered:7",
            "before_delete",
            "delete_answered:2",
            "before_batch_sent",
            "batch_answered",
            "batch_answered:2",
            "part_stored",
            "checkpoint_committed:2",
            "all_committed",
            "manifest_settled",
        ] {
            crash_while_correcting(method, point);
        }
    }
}

/// A model whose rows are a unit's usage on a day, billed to whichever account the warehouse
/// says: the key stays when the account changes (an account merged, usage reassigned).
fn reassignable(project: &TestProject, policies: &str) {
    let model = usage_model_keyed(
        "SELECT MIN(account) AS account, uom, CAST(day AS TIMESTAMP) AS usage_day, SUM(qty) AS qty \
         FROM events GROUP BY uom, day",
        "uom, usage_day",
    );
    project.write("models/usage.yml", &format!("{model}{policies}"));
}

/// Three units' usage on `day`, each on the account `accounts` gives it.
fn export_units(project: &TestProject, day: &str, accounts: [usize; 3]) {
    let rows: Vec<(String, String, i64)> = ["API_CALL", "GB_STORED", "SEAT"]
        .iter()
        .zip(accounts)
        .enumerate()
        .map(|(i, (uom, account))| (format!("A{account:08}"), uom.to_string(), 10 * (1 + i as i64)))
        .collect();
    export(project, day, &rows);
}

/// Each unit's account and quantity in Zuora on `day`.
fn units_billed(sim: &Sim) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut units: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for record in sim.records() {
        units
            .entry(record.uom.clone())
            .or_default()
            .push((record.account_number.clone(), record.quantity));
    }
    units
}

fn unit(account: usize, quantity: f64) -> Vec<(String, f64)> {
    vec![(format!("A{account:08}"), quantity)]
}

#[test]
fn usage_moved_to_another_account_replaces_its_pending_record_and_holds_a_billed_one() {
    for method in ["actions", "import"] {
        let sim = Sim::start(SimConfig::default());
        let project = zuora_project(&sim, method, "");
        reassignable(&project, "    on_change: correct\n");
        export_units(&project, "2026-11-18", [1, 2, 3]);
        exits(&run_against(&project, &sim, &["run"]), 0);
        assert_eq!(sim.records().len(), 3, "{method}");

        // The storage is billed to account 4 now: Zuora cannot update a record's account,
        // so the Pending record is deleted and the usage sent again on the new account.
        export_units(&project, "2026-11-18", [1, 4, 3]);
        let plan = run_against(&project, &sim, &["plan", "--detailed-exitcode"]);
        reports(&plan, 2, &["replaced: AccountNumber cannot be updated in place"]);
        let run = run_against(&project, &sim, &["run", "--format", "json"]);
        exits(&run, 0);
        let report = sync_report(&run);
        assert_eq!(report["corrected_rows"], 1, "{method}");
        assert_eq!(
            report["changes"]["reasons"]["replaced: AccountNumber cannot be updated in place"], 1,
            "{method}"
        );
        let units = units_billed(&sim);
        assert_eq!(units["GB_STORED"], unit(4, 20.0), "{method}: moved, not doubled");
        assert_eq!(units["API_CALL"], unit(1, 10.0), "{method}");
        assert_eq!(sim.records().len(), 3, "{method}: one record deleted, one sent");
        let next = run_against(&project, &sim, &["run", "--format", "json"]);
        exits(&next, 0);
        assert_eq!(sync_report(&next)["changed_rows"], 0, "{method}: replaced once");
        reconciled(&project, &sim, 3);

        // Once billed, a record can be neither updated nor deleted: held.
        bill_run(&sim);
        export_units(&project, "2026-11-18", [1, 4, 5]);
        let held = run_against(&project, &sim, &["run", "--format", "json"]);
        exits(&held, 3);
        assert_eq!(
            sync_report(&held)["changes"]["reasons"]["field_not_correctable"],
            1,
            "{method}"
        );
        assert_eq!(units_billed(&sim)["SEAT"], unit(3, 30.0), "{method}");
    }
}

/// A replacement crashed at `point`: after the next run, the usage is on the new account
/// once, and the old record is gone.
#[cfg(feature = "failpoints")]
fn crash_while_replacing(method: &str, point: &str) {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, method, "");
    reassignable(&project, "    on_change: correct\n");
    export_units(&project, "2026-11-18", [1, 2, 3]);
    exits(&run_against(&project, &sim, &["run"]), 0);
    export_units(&project, "2026-11-18", [1, 4, 5]);
    let (id, secret) = (sim.client_id(), sim.secret());
    let crashed = dinmo_in(
        project.path(),
        &["run"],
        &[
            ("ZUORA_CLIENT_ID", &id),
            ("ZUORA_CLIENT_SECRET", &secret),
            ("DINMO_DELIVERY_BATCH_ROWS", "1"),
            ("DINMO_COMMIT_INTERVAL_MS", "0"),
            ("DINMO_CRASH_AT", point),
        ],
    );
    assert!(
        crashed.status.code().is_none() || crashed.status.code() == Some(134),
        "{method}/{point}: expected a crash: {}",
        describe(&crashed)
    );
    let recovered = run_against(&project, &sim, &["run"]);
    exits(&recovered, 0);
    let units = units_billed(&sim);
    assert_eq!(
        units["GB_STORED"],
        unit(4, 20.0),
        "{method}/{point}: {}",
        describe(&recovered)
    );
    assert_eq!(units["SEAT"], unit(5, 30.0), "{method}/{point}");
    assert_eq!(sim.records().len(), 3, "{method}/{point}: nothing twice, nothing lost");
    let plan = run_against(&project, &sim, &["plan", "--detailed-exitcode"]);
    exits(&plan, 0);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_crash_at_every_point_of_a_replacement_replaces_exactly_once() {
    for method in ["actions", "import"] {
        for point in [
            "intent_recorded",
            "before_delete",
            "delete_answered",
            "delete_answered:2",
            "before_batch_sent",
            "batch_answered",
            "part_stored",
            "all_committed",
        ] {
            crash_while_replacing(method, point);
        }
    }
}

/// The api_call events of the export file `from`, the first `n` of them, written again as
/// `to`: late events for the same accounts and day. Returns how many each account got.
fn late_events(from: &std::path::Path, to: &std::path::Path, n: usize) -> BTreeMap<String, i64> {
    use arrow::array::{Array, AsArray};
    let file = std::fs::File::open(from).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<arrow::array::RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let kind = arrow::compute::cast(
        all.column_by_name("event_type").unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let api: arrow::array::BooleanArray = kind
        .as_string::<i32>()
        .iter()
        .map(|k| Some(k == Some("api_call")))
        .collect();
    let late = arrow::compute::filter_record_batch(&all, &api).unwrap();
    let late = late.slice(0, n.min(late.num_rows()));
    write_parquet(to, &late);
    let accounts = arrow::compute::cast(
        late.column_by_name("account_number").unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let mut counts = BTreeMap::new();
    for account in accounts.as_string::<i32>().iter().flatten() {
        *counts.entry(account.to_string()).or_insert(0) += 1;
    }
    assert!(late.num_rows() == n && late.column(0).null_count() == 0);
    counts
}

#[test]
fn a_state_written_by_the_last_release_tells_changed_values_from_the_fields_it_sent() {
    // The example project with the state dinmo 0.1.0 (d2a9208) wrote: a checkpoint (keys only)
    // over the first two days, and the third day's run after it, no part holding values.
    let dir = tempfile::tempdir().unwrap();
    example_as_the_last_release_had_it(dir.path());
    let state = dir.path().join(".dinmo/state");
    copy_project(&repository_root().join("tests/fixtures/state-0.1.0-d2a9208"), &state);
    std::fs::remove_file(state.join("README.md")).unwrap();
    copy_project(&dir.path().join("next_day/events"), &dir.path().join("exports/events"));
    let run = dinmo_in(dir.path(), &["run"], &[]);
    reports(&run, 0, &["sent 0 row(s)", "changed: 0"]);

    // Late events for a day the checkpoint covers and for the day after it.
    let events = dir.path().join("exports/events");
    let mut late = late_events(
        &events.join("day=2026-11-19/part-0.parquet"),
        &events.join("day=2026-11-19/part-late.parquet"),
        20,
    );
    let later = late_events(
        &events.join("day=2026-11-20/part-0.parquet"),
        &events.join("day=2026-11-20/part-late.parquet"),
        7,
    );
    let changed_rows = late.len() + later.len();
    for (account, n) in later {
        *late.entry(format!("{account} 20")).or_insert(0) += n;
    }
    let check = |label: &str| {
        let plan = dinmo_in(
            dir.path(),
            &["plan", "--format", "json", "--select", "api_calls_daily"],
            &[],
        );
        exits(&plan, 0);
        let sync = json(&plan)["syncs"][0].clone();
        assert_eq!(sync["counts"]["new_rows"], 0, "{label}: {sync}");
        assert_eq!(sync["changed_rows"], changed_rows, "{label}: {sync}");
        assert_eq!(
            sync["changes"]["quantity_difference"], "27",
            "{label}: 20 + 7 late events"
        );
        let by_account: i64 = sync["changes"]["by_account_unit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["difference"].as_str().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(by_account, late.values().sum::<i64>(), "{label}");
    };
    check("read from the old parts");
    let out = dinmo_in(dir.path(), &["state", "compact"], &[]);
    exits(&out, 0);
    check("read from the new checkpoint");
}

/// The first `accounts` accounts' API calls on `day`, account `i` with quantity `10 + i`.
fn export_accounts(project: &TestProject, day: &str, accounts: usize) {
    let rows: Vec<(String, String, i64)> = (0..accounts)
        .map(|i| (format!("A{:08}", 1 + i), "API_CALL".to_string(), 10 + i as i64))
        .collect();
    export(project, day, &rows);
}

#[test]
fn gone_rows_are_reported_or_their_pending_records_deleted_and_may_come_back() {
    let sim = Sim::start(SimConfig::default());
    let project = project(&sim, "actions", "");
    export_accounts(&project, "2026-11-18", 12);
    exits(&run_against(&project, &sim, &["run"]), 0);
    bill_run(&sim);
    export_accounts(&project, "2026-11-19", 12);
    exits(&run_against(&project, &sim, &["run"]), 0);

    // A restatement drops three accounts from both days (bot traffic removed after review).
    export_accounts(&project, "2026-11-18", 9);
    export_accounts(&project, "2026-11-19", 9);
    let plan = run_against(&project, &sim, &["plan", "--format", "json", "--detailed-exitcode"]);
    exits(&plan, 0);
    let report = sync_report(&plan);
    assert_eq!(report["gone_rows"], 6);
    assert_eq!(report["gone"]["on_delete"], "report");
    assert_eq!(report["gone"]["quantity"], "120", "(19 + 20 + 21) × 2 still billed");
    assert_eq!(report["gone"]["sample"].as_array().unwrap().len(), 6);
    let run = run_against(&project, &sim, &["run"]);
    reports(
        &run,
        0,
        &["gone: 6 row(s)", "(on_delete: report)", "A00000010 API_CALL"],
    );
    assert_eq!(sim.records().len(), 24, "reporting deletes nothing");

    // Rolling back: the Pending day's records go, the billed day's are held.
    set_policies(&project, "    on_delete: rollback_pending\n");
    let plan = run_against(&project, &sim, &["plan"]);
    reports(
        &plan,
        0,
        &["would delete 3 Pending record(s) (3 kept: cannot_delete_billed_usage)"],
    );
    assert_eq!(sim.records().len(), 24, "a plan deletes nothing");
    let run = run_against(&project, &sim, &["run", "--format", "json"]);
    exits(&run, 3);
    let report = sync_report(&run);
    assert_eq!(report["gone"]["deleted"], 3);
    assert_eq!(report["held_rows"], 3);
    let records = sim.records();
    assert_eq!(records.len(), 21);
    assert!(
        records
            .iter()
            .all(|r| !(r.start_date_time.starts_with("2026-11-19") && r.account_number.as_str() >= "A00000010")),
        "the Pending day's gone records were deleted"
    );
    let next = run_against(&project, &sim, &["run", "--format", "json"]);
    exits(&next, 3);
    assert_eq!(
        sync_report(&next)["gone_rows"],
        3,
        "deleted rows are gone no more; billed ones stay"
    );
    // Credited by hand in Zuora: settled.
    let resolved = run_against(&project, &sim, &["state", "resolve-held", "usage.zuora", "--accept"]);
    reports(&resolved, 0, &["3 held row(s) accepted"]);
    let next = run_against(&project, &sim, &["run", "--format", "json"]);
    exits(&next, 0);
    assert_eq!(sync_report(&next)["gone_rows"], 0);

    // The deleted rows come back: they were sent, then deleted, so they are changed rows
    // whose Zuora quantity is 0; correcting sends them in full, once.
    set_policies(&project, "    on_change: correct\n    on_delete: rollback_pending\n");
    export_accounts(&project, "2026-11-19", 12);
    let run = run_against(&project, &sim, &["run", "--format", "json"]);
    exits(&run, 0);
    let report = sync_report(&run);
    assert_eq!(report["counts"]["new_rows"], 0, "{report}");
    assert_eq!(report["corrected_rows"], 3, "{report}");
    let billed_19: f64 = sim
        .records()
        .iter()
        .filter(|r| r.start_date_time.starts_with("2026-11-19"))
        .map(|r| r.quantity)
        .sum();
    assert_eq!(billed_19, (10..22).sum::<i64>() as f64);
    exits(&run_against(&project, &sim, &["run"]), 0);
}

#[test]
fn more_changed_rows_than_a_run_describes_stop_it_sending_nothing() {
    let sim = Sim::start(SimConfig::default());
    let project = project(&sim, "actions", "    on_change: correct\n");
    export_day(&project, "2026-11-18", |i| 10 + i as i64);
    exits(&run_against(&project, &sim, &["run"]), 0);
    export_day(&project, "2026-11-18", |i| 20 + i as i64);
    let (id, secret) = (sim.client_id(), sim.secret());
    let env = [
        ("ZUORA_CLIENT_ID", id.as_str()),
        ("ZUORA_CLIENT_SECRET", secret.as_str()),
        ("DINMO_CHANGED_ROWS_LIMIT", "5"),
    ];
    let run = dinmo_in(project.path(), &["run"], &env);
    exits_with(
        &run,
        1,
        &[
            "12 rows synced earlier have other values now, more than 5",
            "DINMO_CHANGED_ROWS_LIMIT",
        ],
    );
    assert_eq!(billed(&sim), says("2026-11-18", |i| 10 + i as i64), "nothing was sent");
    // max_new_rows guards changed rows too.
    set_policies(&project, "    on_change: correct\n    max_new_rows: 3\n");
    let run = run_against(&project, &sim, &["run"]);
    exits_with(&run, 1, &["more than 3 (its max_new_rows)"]);
    assert_eq!(billed(&sim), says("2026-11-18", |i| 10 + i as i64), "nothing was sent");
}
