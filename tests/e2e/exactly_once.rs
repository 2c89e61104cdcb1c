//! Exactly once, proven: crash points at every step between intent and commit, two runs at
//! once, and a kill -9 soak, each checked against what the simulator stored, row by row.

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zuora_sim::{Faults, SimConfig};

use crate::support::*;
use crate::zuora::{Sim, export, zuora_project};

/// (account, uom, day) → quantity, for `days` exports of `per_day` distinct rows each.
fn expected_rows(days: &[String], per_day: usize) -> BTreeMap<(String, String, String), f64> {
    let mut expected = BTreeMap::new();
    for day in days {
        for (account, uom, qty) in rows_for(per_day) {
            expected.insert((account, uom, format!("{day}T00:00:00+00:00")), qty as f64);
        }
    }
    expected
}

fn rows_for(n: usize) -> Vec<(String, String, i64)> {
    // 12 active accounts × units: distinct (account, uom) pairs, n ≤ 12 × 4.
    let units = ["API_CALL", "GB_STORED", "SEAT", "Each"];
    (0..n)
        .map(|i| {
            (
                format!("A{:08}", 1 + i % 12),
                units[(i / 12) % 4].to_string(),
                10 + i as i64,
            )
        })
        .collect()
}

fn stored_rows(sim: &Sim) -> Vec<(String, String, String, f64)> {
    // REST sends `…T00:00:00+00:00`, usage files `…T00:00:00`: the same instant.
    let normalise = |start: String| {
        if start.ends_with("+00:00") {
            start
        } else {
            format!("{start}+00:00")
        }
    };
    sim.records()
        .into_iter()
        .map(|r| (r.account_number, r.uom, normalise(r.start_date_time), r.quantity))
        .collect()
}

/// Expected rows, stored rows, duplicates, missing, unexpected.
fn compare(sim: &Sim, expected: &BTreeMap<(String, String, String), f64>) -> (usize, usize, usize, usize, usize) {
    let stored = stored_rows(sim);
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut unexpected = 0;
    for (account, uom, start, qty) in &stored {
        let key = (account.clone(), uom.clone(), start.clone());
        if !seen.insert(key.clone()) {
            duplicates += 1;
        }
        if expected.get(&key) != Some(qty) {
            unexpected += 1;
        }
    }
    let missing = expected.keys().filter(|k| !seen.contains(*k)).count();
    (expected.len(), stored.len(), duplicates, missing, unexpected)
}

fn env_for(sim: &Sim) -> Vec<(String, String)> {
    vec![
        ("ZUORA_CLIENT_ID".into(), sim.client_id()),
        ("ZUORA_CLIENT_SECRET".into(), sim.secret()),
        ("DINMO_DELIVERY_BATCH_ROWS".into(), "10".into()),
        // A commit after every batch: every crash point between two commits is reachable.
        ("DINMO_COMMIT_INTERVAL_MS".into(), "0".into()),
        ("DINMO_LOG".into(), "warn".into()),
    ]
}

fn dinmo_with(project: &TestProject, sim: &Sim, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    let mut env: Vec<(String, String)> = env_for(sim);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    dinmo_in(project.path(), args, &pairs)
}

/// Crash at `point`, run again, and check each row is stored exactly once.
#[cfg(feature = "failpoints")]
fn crash_then_recover(method: &str, point: &str, enforce_unique_key: bool) {
    crash_then_recover_with(method, point, enforce_unique_key, &[]);
}

/// [`crash_then_recover`] with more environment for the crashing run.
#[cfg(feature = "failpoints")]
fn crash_then_recover_with(method: &str, point: &str, enforce_unique_key: bool, extra: &[(&str, &str)]) {
    let sim = Sim::start(SimConfig {
        enforce_unique_key,
        ..SimConfig::default()
    });
    let project = zuora_project(&sim, method, "    batch_size: 3\n    concurrency: 2\n");
    let day = "2026-11-18".to_string();
    export(&project, &day, &rows_for(40));
    let mut env = vec![("DINMO_CRASH_AT", point)];
    env.extend_from_slice(extra);
    let crashed = dinmo_with(&project, &sim, &["run"], &env);
    assert!(
        crashed.status.code().is_none() || crashed.status.code() == Some(134),
        "{method}/{point}: expected a crash: {}",
        describe(&crashed)
    );
    assert!(
        stderr(&crashed).contains("crash point"),
        "{method}/{point}: {}",
        describe(&crashed)
    );
    let recovered = dinmo_with(&project, &sim, &["run"], &[]);
    assert_eq!(code(&recovered), 0, "{method}/{point}: {}", describe(&recovered));
    let (expected, stored, duplicates, missing, unexpected) = compare(&sim, &expected_rows(&[day], 40));
    assert_eq!(
        (stored, duplicates, missing, unexpected),
        (expected, 0, 0, 0),
        "{method}/{point}"
    );
    let plan = dinmo_with(&project, &sim, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        code(&plan),
        0,
        "{method}/{point}: nothing left to send: {}",
        describe(&plan)
    );
    assert!(
        project.state_files("usage.zuora", "pending").is_empty(),
        "{method}/{point}: pending settled"
    );
}

#[cfg(feature = "failpoints")]
const CRASH_POINTS: [&str; 9] = [
    "pending_stored",          // intent durable, manifest not yet written
    "intent_recorded",         // intent and manifest written, nothing sent
    "before_batch_sent:3",     // mid-run, two batches committed
    "zuora_answer_received:5", // Zuora stored the batch; its answer never read
    "batch_answered:2",        // answer received, not yet committed
    "part_stored:2",           // during a commit: part stored, manifest not yet naming it
    "checkpoint_committed:3",  // right after a commit
    "manifest_settled",        // everything committed, pending file not yet deleted
    "zuora_answer_received:1", // the very first answer lost (units of measure query)
];

#[cfg(feature = "failpoints")]
#[test]
fn every_crash_point_recovers_to_exactly_once_with_unique_keys() {
    for point in CRASH_POINTS {
        crash_then_recover("actions", point, true);
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn every_crash_point_recovers_to_exactly_once_on_idempotency_keys_alone() {
    for point in CRASH_POINTS {
        crash_then_recover("actions", point, false);
    }
    for point in ["zuora_answer_received:4", "batch_answered:2", "part_stored:1"] {
        crash_then_recover("object", point, false);
    }
    // An import run makes few requests: the 2nd answer is the upload's (the file is stored
    // and queued, the import id never read).
    for point in [
        "zuora_answer_received:2",
        "zuora_answer_received:3",
        "batch_answered:4",
        "part_stored:1",
    ] {
        crash_then_recover("import", point, false);
    }
}

/// With a commit interval longer than the run, nothing is committed before the end: a crash
/// after Zuora acknowledged several batches leaves all of them uncommitted, and the next run
/// settles them from the pending file without sending any twice.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_between_commits_recovers_to_exactly_once() {
    for (method, point) in [
        ("actions", "batch_answered:3"),
        ("actions", "before_batch_sent:4"),
        ("import", "batch_answered:4"),
    ] {
        crash_then_recover_with(method, point, false, &[("DINMO_COMMIT_INTERVAL_MS", "600000")]);
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn usage_files_are_rewritten_identically_after_a_crash() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2), ("A3", 3)]);
    let env = [
        ("DINMO_DELIVERY_BATCH_ROWS", "1"),
        ("DINMO_CRASH_AT", "batch_answered:1"),
    ];
    let crashed = dinmo_in(project.path(), &["run"], &env);
    assert!(
        crashed.status.code().is_none() || crashed.status.code() == Some(134),
        "{}",
        describe(&crashed)
    );
    let recovered = dinmo_in(project.path(), &["run"], &[("DINMO_DELIVERY_BATCH_ROWS", "1")]);
    exits(&recovered, 0);
    let mut rows = project.output_rows("usage.files");
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(
        project.output_rows("usage.files").len(),
        3,
        "every row in exactly one file"
    );
}

#[test]
fn two_runs_at_once_only_one_sends() {
    let sim = Sim::start(SimConfig::default());
    sim.faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    let project = zuora_project(&sim, "actions", "    batch_size: 2\n    concurrency: 1\n");
    export(&project, "2026-11-18", &rows_for(20));
    let spawn = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dinmo"));
        command
            .current_dir(project.path())
            .arg("run")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env_for(&sim) {
            command.env(k, v);
        }
        command.spawn().unwrap()
    };
    let first = spawn(&[]);
    std::thread::sleep(Duration::from_millis(300));
    let second = spawn(&[]).wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    exits(&first, 0);
    exits_with(&second, 1, &["is locked by run"]);
    let (expected, stored, duplicates, missing, _) = compare(&sim, &expected_rows(&["2026-11-18".into()], 20));
    assert_eq!((stored, duplicates, missing), (expected, 0, 0));

    // With --wait, the second waits its turn and finds nothing left to send.
    export(&project, "2026-11-19", &rows_for(20));
    let first = spawn(&[]);
    std::thread::sleep(Duration::from_millis(300));
    let second = spawn(&["--wait", "60"]).wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        (code(&first), code(&second)),
        (0, 0),
        "{}\n{}",
        describe(&first),
        describe(&second)
    );
    assert!(stdout(&second).contains("new rows: 0"), "{}", describe(&second));
    let days = ["2026-11-18".to_string(), "2026-11-19".to_string()];
    let (expected, stored, duplicates, missing, _) = compare(&sim, &expected_rows(&days, 20));
    assert_eq!((stored, duplicates, missing), (expected, 0, 0));
}

/// Hourly usage: 12 accounts × 4 units × 24 hours = 1,152 rows a day.
fn hourly_rows(day: &str) -> Vec<(String, String, String, i64)> {
    restated_hourly_rows(day, 0)
}

/// [`hourly_rows`] after `restatements` restatements of the day: each raises every third
/// account's usage by one.
fn restated_hourly_rows(day: &str, restatements: i64) -> Vec<(String, String, String, i64)> {
    let units = ["API_CALL", "GB_STORED", "SEAT", "Each"];
    let mut rows = Vec::new();
    for hour in 0..24 {
        for (u, unit) in units.iter().enumerate() {
            for account in 1..=12 {
                let raised = if account % 3 == 0 { restatements } else { 0 };
                let qty = (hour * 100 + u * 13 + account) as i64 + raised;
                rows.push((
                    format!("A{account:08}"),
                    unit.to_string(),
                    format!("{day}T{hour:02}:00:00"),
                    qty,
                ));
            }
        }
    }
    rows
}

fn export_hourly(project: &TestProject, day: &str) {
    export_restated(project, day, 0);
}

fn export_restated(project: &TestProject, day: &str, restatements: i64) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let rows = restated_hourly_rows(day, restatements);
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, false),
        Field::new("uom", DataType::Utf8, false),
        Field::new("at", DataType::Utf8, false),
        Field::new("qty", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    write_parquet(
        &project.path().join(format!("data/events/day={day}/part.parquet")),
        &batch,
    );
}

/// How a soak's data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Soak {
    /// Daily exports land; nothing sent changes.
    NewRows,
    /// Also, days already sent are restated (usage raised) and bill runs process what was
    /// sent, under `on_change: correct`: Pending records are updated in place, Processed ones
    /// get difference records.
    Corrections,
}

/// A soak any developer can run longer: `DINMO_SOAK_ITERATIONS=300 cargo test -p dinmo --test e2e soak`.
fn soak(enforce_unique_key: bool, mode: Soak) {
    let iterations: usize = std::env::var("DINMO_SOAK_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let sim = Sim::start(SimConfig {
        enforce_unique_key,
        ..SimConfig::default()
    });
    sim.faults(Faults {
        latency_ms: 2,
        error_rate: 0.03,
        throttle_rate: 0.03,
        drop_before_rate: 0.02,
        drop_after_rate: 0.03,
        seed: if enforce_unique_key { 11 } else { 12 },
        ..Faults::default()
    });
    let project = zuora_project(&sim, "actions", "    batch_size: 25\n    concurrency: 4\n");
    let policy = match mode {
        Soak::NewRows => "",
        Soak::Corrections => "    on_change: correct\n",
    };
    project.write(
        "models/usage.yml",
        &format!(
            "model: usage
sql: SELECT account, uom, CAST(at AS TIMESTAMP) AS usage_at, qty FROM events
primary_key: [account, uom, usage_at]
syncs:
  - destination: zuora
    mapping: {{ AccountNumber: account, UOM: uom, StartDateTime: usage_at, Quantity: qty }}
{policy}"
        ),
    );
    let mut restatements: BTreeMap<String, i64> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(enforce_unique_key);
    let mut next = |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let (mut runs, mut kills, mut completed) = (0, 0, 0);
    // Kills land at a random moment within 1.5 × the time an unkilled run takes (a moving
    // average, starting at 2 s), so most runs die mid-flight whatever the machine's speed.
    let mut typical_ms: u64 = 2000;
    let started = Instant::now();
    let mut day_index = 0;
    while runs < iterations || completed == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "soak exceeded its time bound"
        );
        if runs % 4 == 0 {
            // Several daily exports, one landing every few runs.
            day_index += 1;
            let day = (chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(day_index)).to_string();
            export_hourly(&project, &day);
            for (account, uom, at, qty) in hourly_rows(&day) {
                expected.insert((account, uom, format!("{at}+00:00")), qty as f64);
            }
            restatements.insert(day, 0);
        }
        if mode == Soak::Corrections && runs % 4 == 2 {
            // A day already exported is restated, and a bill run processes what Zuora holds.
            let days: Vec<String> = restatements.keys().cloned().collect();
            let day = days[next(days.len() as u64) as usize].clone();
            let version = restatements.entry(day.clone()).or_default();
            *version += 1;
            export_restated(&project, &day, *version);
            for (account, uom, at, qty) in restated_hourly_rows(&day, *version) {
                expected.insert((account, uom, format!("{at}+00:00")), qty as f64);
            }
            if next(2) == 0 {
                for record in sim.sim.state.lock().records.iter_mut() {
                    record.status = "Processed".into();
                }
            }
        }
        let log = project.path().join(format!("soak-run-{runs}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dinmo"));
        command
            .current_dir(project.path())
            .args(["run", "--wait", "30"])
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env_for(&sim) {
            command.env(k, v);
        }
        command
            .env("DINMO_DELIVERY_BATCH_ROWS", "200")
            .env("DINMO_LOCK_LEASE_SECS", "5");
        let mut child = command.spawn().unwrap();
        let kill_after = Duration::from_millis(next(typical_ms * 3 / 2 + 1));
        let spawned = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if spawned.elapsed() >= kill_after {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        runs += 1;
        if let Some(status) = status {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                matches!(status.code(), Some(0)),
                "an unkilled run failed: {status:?}\n{output}"
            );
            completed += 1;
            typical_ms = (typical_ms + spawned.elapsed().as_millis() as u64) / 2;
        }
    }
    // Finish without kills, then compare row by row.
    let last = dinmo_with(&project, &sim, &["run"], &[("DINMO_DELIVERY_BATCH_ROWS", "200")]);
    exits(&last, 0);
    let plan = dinmo_with(&project, &sim, &["plan", "--detailed-exitcode"], &[]);
    exits(&plan, 0);
    if mode == Soak::Corrections {
        // Each key's records (the row as sent, updated in place, plus its difference records)
        // add up to what the warehouse says now; no record twice.
        let records = sim.records();
        let mut billed: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for record in &records {
            let key = (
                record.account_number.clone(),
                record.uom.clone(),
                record.start_date_time.clone(),
            );
            *billed.entry(key).or_default() += record.quantity;
        }
        let keys: HashSet<_> = records.iter().map(|r| r.unique_key.clone()).collect();
        let wrong = expected.iter().filter(|(k, q)| billed.get(*k) != Some(*q)).count();
        let corrections = records.len() - billed.len();
        eprintln!(
            "soak with corrections (UniqueKey enforced: {enforce_unique_key}): {runs} runs, {kills} killed with SIGKILL, \
             {completed} completed, {} s; {} keys, {} records ({corrections} difference records), {wrong} billed wrong",
            started.elapsed().as_secs(),
            expected.len(),
            records.len()
        );
        let examples: Vec<String> = expected
            .iter()
            .filter(|(k, q)| billed.get(*k) != Some(*q))
            .take(3)
            .map(|(k, q)| {
                let of: Vec<String> = records
                    .iter()
                    .filter(|r| (&r.account_number, &r.uom, &r.start_date_time) == (&k.0, &k.1, &k.2))
                    .map(|r| format!("{} {} {} {:?}", r.id, r.quantity, r.status, r.description))
                    .collect();
                format!("{k:?}: warehouse {q}, records {of:?}")
            })
            .collect();
        assert_eq!(
            wrong, 0,
            "keys whose records do not add up to the warehouse's quantity: {examples:#?}"
        );
        assert_eq!(
            billed.len(),
            expected.len(),
            "keys in Zuora the warehouse does not have"
        );
        assert_eq!(keys.len(), records.len(), "a record stored twice");
        assert!(kills >= 10, "the soak killed only {kills} runs");
        return;
    }
    let (expected_rows, stored, duplicates, missing, unexpected) = compare(&sim, &expected);
    eprintln!(
        "soak (UniqueKey enforced: {enforce_unique_key}): {runs} runs, {kills} killed with SIGKILL, {completed} completed, \
         {} s; expected {expected_rows} rows, stored {stored}, duplicates {duplicates}, missing {missing}, unexpected {unexpected}",
        started.elapsed().as_secs()
    );
    assert_eq!((stored, duplicates, missing, unexpected), (expected_rows, 0, 0, 0));
    assert!(kills >= 10, "the soak killed only {kills} runs");
}

#[test]
fn kill_nine_soak_with_unique_keys() {
    soak(true, Soak::NewRows);
}

#[test]
fn kill_nine_soak_on_idempotency_keys_alone() {
    soak(false, Soak::NewRows);
}

#[test]
fn kill_nine_soak_with_corrections() {
    soak(true, Soak::Corrections);
}

/// The run id of the newest manifest of `usage.zuora`.
#[cfg(feature = "failpoints")]
fn last_run(project: &TestProject, sim: &Sim) -> String {
    let runs = dinmo_with(project, sim, &["runs", "--format", "json"], &[]);
    let manifests: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    manifests[0]["run_id"].as_str().unwrap().to_string()
}

#[cfg(feature = "failpoints")]
fn crashed_project(sim: &Sim, point: &str) -> (TestProject, String) {
    let project = zuora_project(sim, "actions", "    batch_size: 3\n");
    export(&project, "2026-11-18", &rows_for(40));
    let crashed = dinmo_with(&project, sim, &["run"], &[("DINMO_CRASH_AT", point)]);
    assert!(
        crashed.status.code().is_none() || crashed.status.code() == Some(134),
        "{}",
        describe(&crashed)
    );
    let run = last_run(&project, sim);
    (project, run)
}

/// Makes the stopped `run` two days old, and Zuora forget its Idempotency-Keys (they are kept
/// 24 hours), so recovery must look its rows up by `UniqueKey`.
#[cfg(feature = "failpoints")]
fn past_the_replay_window(project: &TestProject, sim: &Sim, run: &str) {
    let manifest_path = project.state(&format!("usage.zuora/runs/{run}.json"));
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["started_at"] = serde_json::json!((chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339());
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    sim.sim.state.lock().idempotent.clear();
}

#[cfg(feature = "failpoints")]
#[test]
fn pending_rows_past_the_replay_window_are_found_by_unique_key() {
    let sim = Sim::start(SimConfig {
        enforce_unique_key: false,
        ..SimConfig::default()
    });
    // Eight answers (the units-of-measure query and at least seven requests of 1 to 3 rows)
    // come back; the eighth is never committed.
    let (project, run) = crashed_project(&sim, "zuora_answer_received:8");
    assert!(sim.records().len() >= 13, "{} records", sim.records().len());
    past_the_replay_window(&project, &sim, &run);
    let recovered = dinmo_with(&project, &sim, &["run"], &[]);
    exits(&recovered, 0);
    let (expected, stored, duplicates, missing, unexpected) = compare(&sim, &expected_rows(&["2026-11-18".into()], 40));
    assert_eq!((stored, duplicates, missing, unexpected), (expected, 0, 0, 0));
}

#[cfg(feature = "failpoints")]
#[test]
fn a_tenant_without_unique_key_search_stops_with_the_resolve_pending_remedy() {
    // Zuora documents Usage.UniqueKey only with Prepaid with Drawdown: this tenant refuses it.
    let sim = Sim::start(SimConfig {
        enforce_unique_key: false,
        unique_key_queryable: false,
        ..SimConfig::default()
    });
    let (project, run) = crashed_project(&sim, "zuora_answer_received:8");
    let delivered = sim.records().len();
    assert!(delivered >= 13, "{delivered} records");
    past_the_replay_window(&project, &sim, &run);

    let stopped = dinmo_with(&project, &sim, &["run"], &[]);
    let err = exits_with(&stopped, 1, &[]);
    assert!(err.contains("cannot be searched by UniqueKey"), "{err}");
    assert!(
        err.contains(&format!("dinmo state resolve-pending usage.zuora {run} --sent")),
        "names the remedy: {err}"
    );
    assert!(!err.contains("INVALID_FIELD"), "no raw API error: {err}");
    assert_eq!(sim.records().len(), delivered, "nothing new was sent");
}

#[cfg(feature = "failpoints")]
#[test]
fn resolve_pending_by_hand() {
    // Everything was committed but the run stopped before settling: the rows were sent.
    let sim = Sim::start(SimConfig::default());
    let (project, run) = crashed_project(&sim, "all_committed");
    let verify = dinmo_with(&project, &sim, &["state", "verify"], &[]);
    exits(&verify, 0);
    assert!(
        stdout(&verify).contains("row(s) pending (running)"),
        "{}",
        describe(&verify)
    );
    let resolved = dinmo_with(
        &project,
        &sim,
        &["state", "resolve-pending", "usage.zuora", &run, "--sent"],
        &[],
    );
    exits(&resolved, 0);
    let plan = dinmo_with(&project, &sim, &["plan", "--detailed-exitcode"], &[]);
    exits(&plan, 0);
    assert_eq!(sim.records().len(), 40);

    // Stopped before sending anything: the rows were not sent.
    let sim = Sim::start(SimConfig::default());
    let (project, run) = crashed_project(&sim, "intent_recorded");
    assert!(sim.records().is_empty());
    let resolved = dinmo_with(
        &project,
        &sim,
        &["state", "resolve-pending", "usage.zuora", &run, "--not-sent"],
        &[],
    );
    exits(&resolved, 0);
    let run = dinmo_with(&project, &sim, &["run"], &[]);
    exits(&run, 0);
    let (expected, stored, duplicates, missing, _) = compare(&sim, &expected_rows(&["2026-11-18".into()], 40));
    assert_eq!((stored, duplicates, missing), (expected, 0, 0));
}

#[test]
fn state_verify_finds_damage() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-11-18", &rows_for(12));
    assert_eq!(code(&dinmo_with(&project, &sim, &["run"], &[])), 0);
    let verify = dinmo_with(&project, &sim, &["state", "verify"], &[]);
    exits(&verify, 0);
    assert!(
        // Parts: the pending file and one snapshot part per checkpoint that stored rows (how
        // many depends on when Zuora's answers came back).
        stdout(&verify).contains("usage.zuora: 1 run(s), ")
            && stdout(&verify).contains(" part(s) verified, 12 row(s) in the snapshot"),
        "{}",
        describe(&verify)
    );
    let part = &project.state_files("usage.zuora", "snapshot")[0];
    let mut bytes = std::fs::read(part).unwrap();
    bytes[10] ^= 1;
    std::fs::write(part, &bytes).unwrap();
    let verify = dinmo_with(&project, &sim, &["state", "verify"], &[]);
    exits(&verify, 1);
    assert!(stdout(&verify).contains("(altered)"), "{}", describe(&verify));
}

#[test]
fn a_lost_state_is_rebuilt_from_zuora() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-11-18", &rows_for(30));
    assert_eq!(code(&dinmo_with(&project, &sim, &["run"], &[])), 0);
    std::fs::remove_dir_all(project.path().join(".dinmo")).unwrap();
    // A new export day lands while the state is gone: only its rows are really new.
    export(&project, "2026-11-19", &rows_for(30));
    let look = dinmo_with(&project, &sim, &["state", "rebuild", "--from-destination"], &[]);
    exits(&look, 0);
    assert!(
        stdout(&look).contains("usage.zuora: 30 of 60 model row(s) are in `zuora`; run again with --write"),
        "{}",
        describe(&look)
    );
    assert!(
        !project.path().join(".dinmo/state/usage.zuora/runs").exists(),
        "nothing written without --write"
    );
    let write = dinmo_with(
        &project,
        &sim,
        &["state", "rebuild", "--from-destination", "--write"],
        &[],
    );
    exits(&write, 0);
    let run = dinmo_with(&project, &sim, &["run"], &[]);
    exits(&run, 0);
    assert!(stdout(&run).contains("new rows: 30"), "{}", describe(&run));
    let days = ["2026-11-18".to_string(), "2026-11-19".to_string()];
    let (expected, stored, duplicates, missing, _) = compare(&sim, &expected_rows(&days, 30));
    assert_eq!((stored, duplicates, missing), (expected, 0, 0));
}

/// A rebuild whose primary key check does not fit the memory limit (the model's rows are
/// staged for a query instead) still counts every row Zuora holds, from the staged rows.
#[test]
fn a_rebuild_that_stages_the_models_rows_still_counts_them() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-11-18", &rows_for(30));
    exits(&dinmo_with(&project, &sim, &["run"], &[]), 0);
    std::fs::remove_dir_all(project.path().join(".dinmo")).unwrap();
    let look = dinmo_with(
        &project,
        &sim,
        &["state", "rebuild", "--from-destination", "--memory-limit", "3KB"],
        &[
            ("DINMO_LOG", "info"),
            ("DATAFUSION_EXECUTION_BATCH_SIZE", "8"),
            ("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "1"),
        ],
    );
    exits(&look, 0);
    assert!(
        stderr(&look).contains("staging the model's rows for the primary key check"),
        "{}",
        describe(&look)
    );
    assert!(
        stdout(&look).contains("usage.zuora: 30 of 30 model row(s) are in `zuora`"),
        "{}",
        describe(&look)
    );
}

/// A lock object that is not a lock (empty, garbage) stops `run` at once, with or without
/// `--wait`, naming the object and the remedy; `state verify` reports it; `state unlock`
/// removes it, and the next run sends.
#[test]
fn an_unreadable_lock_stops_the_run_at_once_and_unlock_removes_it() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2)]);
    for content in ["", "   \n", "{\"run_id\": 1", "\u{0}\u{1}garbage"] {
        project.write(".dinmo/state/usage.files/lock", content);
        let before = project.state_digest();
        for args in [&["run"][..], &["run", "--wait", "30"]] {
            let started = Instant::now();
            let run = project.dinmo(args);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{args:?} took {:?}",
                started.elapsed()
            );
            assert_eq!(code(&run), 1, "{args:?}: {}", describe(&run));
            let err = stderr(&run);
            assert!(err.contains("usage.files/lock cannot be read"), "{err}");
            assert!(err.contains("dinmo state unlock usage.files"), "{err}");
            assert_eq!(project.state_digest(), before, "{args:?} changed the state");
        }
        let verify = project.dinmo(&["state", "verify"]);
        exits(&verify, 1);
        assert!(stdout(&verify).contains("usage.files: lock"), "{}", describe(&verify));
    }
    let unlock = project.dinmo(&["state", "unlock", "usage.files"]);
    exits(&unlock, 0);
    assert!(stdout(&unlock).contains("could not be read"), "{}", describe(&unlock));
    let run = project.dinmo(&["run"]);
    exits(&run, 0);
    assert_eq!(project.output_rows("usage.files").len(), 2);
    let unlock = project.dinmo(&["state", "unlock", "usage.files"]);
    assert!(stdout(&unlock).contains("not locked"), "{}", describe(&unlock));
}

/// `state unlock` refuses a live holder's lock unless forced, and shows the holder; an expired
/// lease is removed without force.
#[test]
fn unlock_refuses_a_live_lock_without_force() {
    let project = TestProject::standard();
    let live = serde_json::json!({
        "run_id": "20261121T000000000Z-live", "host": "another-host", "pid": 4242,
        "since": "2026-11-21T00:00:00Z",
        "lease_until": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
    });
    project.write(".dinmo/state/usage.files/lock", &live.to_string());
    let refused = project.dinmo(&["state", "unlock", "usage.files"]);
    exits_with(
        &refused,
        1,
        &["locked by run 20261121T000000000Z-live (another-host pid 4242"],
    );
    assert!(stderr(&refused).contains("--force"), "{}", describe(&refused));
    assert!(project.state("usage.files/lock").exists());
    let verify = project.dinmo(&["state", "verify"]);
    assert!(
        stdout(&verify).contains("usage.files: locked by run 20261121T000000000Z-live"),
        "{}",
        describe(&verify)
    );
    let forced = project.dinmo(&["state", "unlock", "usage.files", "--force"]);
    exits(&forced, 0);
    assert!(!project.state("usage.files/lock").exists());

    let mut expired = live.clone();
    expired["lease_until"] = serde_json::json!("2026-01-01T00:00:00Z");
    project.write(".dinmo/state/usage.files/lock", &expired.to_string());
    let verify = project.dinmo(&["state", "verify"]);
    assert!(stdout(&verify).contains("is stale"), "{}", describe(&verify));
    let unlock = project.dinmo(&["state", "unlock", "usage.files"]);
    exits(&unlock, 0);
    assert!(!project.state("usage.files/lock").exists());
}

/// Two processes: a run whose lock is removed under it (a second process, `state unlock
/// --force`) stops at the next batch boundary with exit 1, commits what Zuora acknowledged,
/// and the next run delivers the rest: every row exactly once. The lease is 2 s, renewed
/// every 0.67 s.
#[test]
fn a_run_that_loses_its_lock_stops_sending_and_nothing_is_doubled() {
    let sim = Sim::start(SimConfig::default());
    sim.faults(Faults {
        latency_ms: 60,
        ..Faults::default()
    });
    let project = zuora_project(&sim, "actions", "    batch_size: 2\n    concurrency: 1\n");
    export(&project, "2026-11-18", &rows_for(40));
    let mut command = Command::new(env!("CARGO_BIN_EXE_dinmo"));
    command
        .current_dir(project.path())
        .arg("run")
        .env("DINMO_LOCK_LEASE_SECS", "2")
        .env("DINMO_DELIVERY_BATCH_ROWS", "2")
        .env("DINMO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env_for(&sim) {
        command.env(k, v);
    }
    let started = Instant::now();
    let first = command.spawn().unwrap();
    // Wait until the run holds its lock and has sent something, then take the lock away.
    while !project.state("usage.zuora/lock").exists() || sim.records().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never started sending"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let unlock = dinmo_with(&project, &sim, &["state", "unlock", "usage.zuora", "--force"], &[]);
    exits(&unlock, 0);
    let first = first.wait_with_output().unwrap();
    exits_with(&first, 1, &["this run lost its lock"]);
    let sent_by_first = sim.records().len();
    assert!(
        sent_by_first < 40,
        "the first run went on sending: {sent_by_first} records"
    );

    let second = dinmo_with(&project, &sim, &["run"], &[]);
    exits(&second, 0);
    let (expected, stored, duplicates, missing, unexpected) = compare(&sim, &expected_rows(&["2026-11-18".into()], 40));
    assert_eq!((stored, duplicates, missing, unexpected), (expected, 0, 0, 0));
}
