//! Checkpoints: runs compact on their own, `dinmo state compact` is safe to stop at any point,
//! a damaged checkpoint stops the run, rollback drops checkpoints, and a state written by the
//! release before checkpoints resends nothing.

use std::path::Path;

use crate::support::*;

const SYNC: &str = "usage.files";

/// Every UniqueKey in the usage files, and whether any repeats.
fn unique_keys(project: &TestProject) -> (usize, usize) {
    let rows = project.output_rows(SYNC);
    let mut keys: Vec<String> = rows.iter().map(|r| r.split(',').nth(6).unwrap().to_string()).collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    (all, keys.len())
}

fn day(n: usize) -> String {
    format!("2026-{:02}-{:02}", 1 + n / 28, 1 + n % 28)
}

fn run_ok(project: &TestProject) -> String {
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    stdout(&out)
}

fn checkpoint_indexes(project: &TestProject) -> Vec<std::path::PathBuf> {
    project
        .state_files(SYNC, "checkpoints")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

#[test]
fn runs_compact_on_their_own_and_stay_exactly_once() {
    let project = TestProject::standard();
    for n in 0..34 {
        project.export_day(&day(n), &[("A1", n as i64 + 1), ("A2", 2)]);
        let out = run_ok(&project);
        assert!(out.contains("new rows: 2"), "run {n}: {out}");
        let indexes = checkpoint_indexes(&project);
        // The 32nd run is the first to leave 32 runs uncovered.
        assert_eq!(indexes.len(), usize::from(n >= 31), "run {n}: {indexes:?}");
    }
    let out = run_ok(&project);
    assert!(out.contains("new rows: 0"), "{out}");
    assert_eq!(unique_keys(&project), (68, 68));
    let verify = project.dinmo(&["state", "verify"]);
    exits(&verify, 0);
    assert!(
        stdout(&verify).contains("checkpoint through run")
            && stdout(&verify).contains("covers 32 run(s), 64 row key(s)"),
        "{}",
        describe(&verify)
    );
    // History still lists every run: the checkpoint's index stands in for the manifests.
    let history = project.dinmo(&["runs", "--limit", "100"]);
    exits(&history, 0);
    assert_eq!(stdout(&history).matches(SYNC).count(), 35, "{}", describe(&history));
}

/// A state with a checkpoint and three runs after it.
fn compacted_project() -> TestProject {
    let project = TestProject::standard();
    for n in 0..3 {
        project.export_day(&day(n), &[("A1", 1), ("A2", 2)]);
        run_ok(&project);
    }
    let compact = project.dinmo(&["state", "compact"]);
    exits(&compact, 0);
    assert!(
        stdout(&compact).contains("3 run(s) newly covered, 6 row key(s)"),
        "{}",
        describe(&compact)
    );
    for n in 3..6 {
        project.export_day(&day(n), &[("A1", 1), ("A2", 2)]);
        run_ok(&project);
    }
    project
}

#[test]
fn a_compaction_stopped_at_any_point_leaves_a_valid_state() {
    for point in [
        "checkpoint_keys_stored",
        "checkpoint_written",
        "checkpoint_indexes_removed",
    ] {
        let project = compacted_project();
        let crashed = dinmo_in(project.path(), &["state", "compact"], &[("DINMO_CRASH_AT", point)]);
        assert!(
            crashed.status.code().is_none() || crashed.status.code() == Some(134),
            "{point}: expected a crash: {}",
            describe(&crashed)
        );
        // The lock a crash leaves behind is its own process's, gone: the next command takes it over.
        let verify = project.dinmo(&["state", "verify"]);
        assert_eq!(code(&verify), 0, "{point}: {}", describe(&verify));
        let out = run_ok(&project);
        assert!(out.contains("new rows: 0"), "{point}: {out}");
        project.export_day(&day(6), &[("A1", 1), ("A3", 3)]);
        let out = run_ok(&project);
        assert!(out.contains("new rows: 2"), "{point}: {out}");
        assert_eq!(unique_keys(&project), (14, 14), "{point}");
        // Compacting again finishes the job and cleans up what the stopped one left.
        let compact = project.dinmo(&["state", "compact"]);
        assert_eq!(code(&compact), 0, "{point}: {}", describe(&compact));
        assert_eq!(checkpoint_indexes(&project).len(), 1, "{point}");
        let out = run_ok(&project);
        assert!(out.contains("new rows: 0"), "{point}: {out}");
    }
}

#[test]
fn a_damaged_checkpoint_stops_the_run_and_deleting_it_falls_back_to_the_parts() {
    let project = compacted_project();
    let parts: Vec<_> = project
        .state_files(SYNC, "checkpoints")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let mut bytes = std::fs::read(&parts[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&parts[0], &bytes).unwrap();
    let out = project.dinmo(&["run"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("checkpoints") && stderr(&out).contains("altered"),
        "{}",
        describe(&out)
    );
    assert_eq!(unique_keys(&project), (12, 12), "nothing was sent");
    // A checkpoint is only a faster way to read the runs' own parts, which are all still there.
    std::fs::remove_dir_all(project.state(&format!("{SYNC}/checkpoints"))).unwrap();
    let out = run_ok(&project);
    assert!(out.contains("new rows: 0"), "{out}");
}

#[test]
fn rollback_of_a_covered_run_drops_the_checkpoint_first() {
    let project = compacted_project();
    let first_run = project.state_files(SYNC, "runs")[0]
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let rollback = project.dinmo(&["rollback", &first_run]);
    assert!(matches!(code(&rollback), 0 | 1), "{}", describe(&rollback));
    assert!(
        checkpoint_indexes(&project).is_empty(),
        "rollback drops the checkpoints"
    );
    // Usage files cannot be taken back: the rows stay delivered, and are not sent again.
    let out = run_ok(&project);
    assert!(out.contains("new rows: 0"), "{out}");
    assert_eq!(unique_keys(&project), (12, 12));
}

fn example_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    example_as_the_last_release_had_it(dir.path());
    dir
}

/// Every data row of every usage file under `out/`, with the file's folder (the sync) first.
fn rows_in(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect_files(&dir.join("out"), &mut files);
    let mut rows = Vec::new();
    for path in files {
        let sync = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        rows.extend(text.lines().skip(1).map(|row| format!("{sync}: {row}")));
    }
    rows.sort();
    rows
}

#[test]
fn a_state_written_by_the_release_before_checkpoints_resends_nothing() {
    // The example project with the state dinmo 0.1.0 (35da1b6) wrote for its first two days.
    let old = example_project();
    copy_project(
        &repository_root().join("tests/fixtures/state-0.1.0-35da1b6"),
        &old.path().join(".dinmo/state"),
    );
    std::fs::remove_file(old.path().join(".dinmo/state/README.md")).unwrap();
    // The Revenue model came later than that state: its sync starts fresh, so it is left out.
    let run = ["run", "--exclude", "tag:revenue"];
    let out = dinmo_in(old.path(), &run, &[]);
    exits(&out, 0);
    assert!(stdout(&out).contains("sent 0 row(s)"), "{}", describe(&out));
    assert!(rows_in(old.path()).is_empty(), "nothing resent");

    // The next day: exactly the rows a fresh project sends for it, and nothing else.
    copy_project(&old.path().join("next_day/events"), &old.path().join("exports/events"));
    let out = dinmo_in(old.path(), &run, &[]);
    exits(&out, 0);
    let upgraded = rows_in(old.path());

    let fresh = example_project();
    assert_eq!(code(&dinmo_in(fresh.path(), &run, &[])), 0);
    let day_one: std::collections::HashSet<String> = rows_in(fresh.path()).into_iter().collect();
    copy_project(
        &fresh.path().join("next_day/events"),
        &fresh.path().join("exports/events"),
    );
    assert_eq!(code(&dinmo_in(fresh.path(), &run, &[])), 0);
    let expected: Vec<String> = rows_in(fresh.path())
        .into_iter()
        .filter(|r| !day_one.contains(r))
        .collect();
    assert_eq!(expected.len(), 36, "the third day's rows of the three syncs");
    assert_eq!(upgraded, expected);
}

/// The `row_keys` of every part a sync's newest manifest or checkpoint names, by kind.
fn key_encodings(state: &Path, sync: &str, folder: &str, parts: &str) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(state.join(sync).join(folder))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let newest: serde_json::Value = serde_json::from_slice(&std::fs::read(files.last().unwrap()).unwrap()).unwrap();
    newest[parts]
        .as_array()
        .unwrap()
        .iter()
        .map(|part| part["row_keys"].as_str().unwrap_or("(absent: hex)").to_string())
        .collect()
}

#[test]
fn a_state_written_before_binary_row_keys_resends_nothing_and_compacts_into_them() {
    // The example project with the state dinmo 0.1.0 (0d17e0c) wrote: a checkpoint over the
    // first day's run and the second day's run after it, every key as hex text.
    let old = example_project();
    let state = old.path().join(".dinmo/state");
    copy_project(&repository_root().join("tests/fixtures/state-0.1.0-0d17e0c"), &state);
    std::fs::remove_file(state.join("README.md")).unwrap();
    let syncs = [
        "api_calls_daily.usage_files",
        "api_calls_revenue.revenue_files",
        "storage_gb_daily.legacy_usage_files",
        "storage_gb_daily.usage_files",
    ];
    let run = |project: &Path| {
        let out = dinmo_in(project, &["run"], &[]);
        exits(&out, 0);
        stdout(&out)
    };
    let out = run(old.path());
    assert!(out.contains("sent 0 row(s)"), "{out}");
    assert!(rows_in(old.path()).is_empty(), "nothing resent");

    // The next day: exactly the rows a fresh project sends for it, stored with binary keys
    // beside the old hex ones.
    copy_project(&old.path().join("next_day/events"), &old.path().join("exports/events"));
    run(old.path());
    let upgraded = rows_in(old.path());
    let fresh = example_project();
    run(fresh.path());
    let days_before: std::collections::HashSet<String> = rows_in(fresh.path()).into_iter().collect();
    copy_project(
        &fresh.path().join("next_day/events"),
        &fresh.path().join("exports/events"),
    );
    run(fresh.path());
    let expected: Vec<String> = rows_in(fresh.path())
        .into_iter()
        .filter(|r| !days_before.contains(r))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(upgraded, expected);
    for sync in syncs {
        assert_eq!(
            key_encodings(&state, sync, "runs", "snapshot_parts"),
            ["binary"],
            "{sync}"
        );
    }

    // Hex and binary parts read together: nothing is new.
    let resent_before = rows_in(old.path()).len();
    assert!(run(old.path()).contains("sent 0 row(s)"));
    // The old checkpoint's key parts hold no values: a compaction starts it over, into one
    // binary key part with the values hashed from the runs' parts.
    let out = dinmo_in(old.path(), &["state", "compact"], &[]);
    exits(&out, 0);
    for sync in syncs {
        assert_eq!(
            key_encodings(&state, sync, "checkpoints", "key_parts"),
            ["binary"],
            "{sync}"
        );
    }
    assert!(run(old.path()).contains("sent 0 row(s)"));
    let out = dinmo_in(old.path(), &["state", "verify"], &[]);
    exits(&out, 0);
    assert_eq!(
        rows_in(old.path()).len(),
        resent_before,
        "nothing resent after the compaction"
    );
}

/// Exports `day` with one row (quantity 1) for each of `count` accounts `A00000`, `A00001`, ….
fn export_accounts(project: &TestProject, day: &str, count: usize) {
    let accounts: Vec<String> = (0..count).map(|n| format!("A{n:05}")).collect();
    let rows: Vec<(&str, i64)> = accounts.iter().map(|a| (a.as_str(), 1)).collect();
    project.export_day(day, &rows);
}

/// The ways around memory that does not hold a key set, each sending every row once: a primary
/// key check too large for memory stages the model's rows and checks them with a query (which
/// still stops a repeated key before anything is sent), and a snapshot too large for memory is
/// joined in DataFusion. A small batch size keeps DataFusion's sorts within these small limits.
#[test]
fn key_sets_too_large_for_memory_fall_back_and_send_every_row_once() {
    let project = TestProject::standard();
    export_accounts(&project, "2026-11-18", 40_000);
    project.export_day("2026-11-19", &[("D1", 1), ("D1", 2)]);
    let small = |limit: &str| {
        dinmo_in(
            project.path(),
            &["run", "--memory-limit", limit],
            &[("DATAFUSION_EXECUTION_BATCH_SIZE", "512"), ("DINMO_LOG", "info")],
        )
    };
    // 40,002 keys do not fit half of 1.5 MB: the rows are staged and a query finds the repeat.
    let before = project.state_digest();
    let out = small("1500KB");
    exits(&out, 1);
    assert!(
        stderr(&out).contains("staging the model's rows for the primary key check")
            && stderr(&out).contains("(account=D1, usage_day=2026-11-19T00:00:00) ×2"),
        "{}",
        describe(&out)
    );
    assert_eq!(project.state_digest(), before, "nothing sent, nothing committed");

    std::fs::remove_dir_all(project.path().join("data/events/day=2026-11-19")).unwrap();
    let out = small("1500KB");
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 40000"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("staging the model's rows for the primary key check"),
        "{}",
        describe(&out)
    );
    assert_eq!(unique_keys(&project), (40000, 40000));

    // The old export aside and a small day new: the snapshot's 40,000 keys do not fit half of
    // 1 MB, so the staged rows are joined with them (a sorting join).
    let old = project.path().join("data/events/day=2026-11-18");
    let aside = project.path().join("aside");
    std::fs::rename(&old, &aside).unwrap();
    project.export_day("2026-11-20", &[("B1", 1), ("B2", 2)]);
    let out = small("1MB");
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 2"), "{}", describe(&out));
    assert!(stderr(&out).contains("the anti-join sorts"), "{}", describe(&out));
    assert_eq!(unique_keys(&project), (40002, 40002));

    // Everything back, no limit: nothing is new.
    std::fs::rename(&aside, &old).unwrap();
    let out = project.dinmo(&["run"]);
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 0"), "{}", describe(&out));
    assert_eq!(unique_keys(&project), (40002, 40002));
}

#[test]
fn a_memory_limit_is_read_from_the_flag_or_dinmo_yml_and_a_bad_one_is_named() {
    let project = TestProject::standard();
    export_accounts(&project, "2026-11-18", 40_000);
    // A limit below the staged rows' size: the anti-join sorts (and may spill) instead of
    // hashing, and the run still sends each row once.
    let out = dinmo_in(project.path(), &["run", "--memory-limit", "8MB"], &[]);
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 40000"), "{}", describe(&out));
    // 40,000 snapshot keys take 800 KB as a key set: within half of 4 MB, so the anti-join
    // looks them up there.
    let out = dinmo_in(
        project.path(),
        &["run", "--memory-limit", "4MB"],
        &[("DINMO_LOG", "info")],
    );
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 0"), "{}", describe(&out));
    assert!(!stderr(&out).contains("the anti-join sorts"), "{}", describe(&out));
    // The old export gone and a small day new: the model's keys fit, but the snapshot's
    // 40,000 (800 KB as a key set) take over half of 1.5 MB, so DataFusion joins instead, and
    // sorts (a hash table would not fit either) within the limit, at the batch size dinmo
    // chooses for it. A plan, so nothing is sent.
    let old = project.path().join("data/events/day=2026-11-18");
    let aside = project.path().join("aside");
    std::fs::rename(&old, &aside).unwrap();
    project.export_day("2026-11-20", &[("B1", 1), ("B2", 2)]);
    let out = dinmo_in(
        project.path(),
        &["plan", "--memory-limit", "1500KB"],
        &[("DINMO_LOG", "info")],
    );
    assert!(
        !stderr(&out).contains("primary key check does not fit"),
        "{}",
        describe(&out)
    );
    assert!(stderr(&out).contains("the anti-join sorts"), "{}", describe(&out));
    exits(&out, 0);
    assert!(
        stdout(&out).contains("new rows: 2") && stdout(&out).contains("gone: 40000 row(s)"),
        "{}",
        describe(&out)
    );
    // Below what two sorts per partition need, the error names the sorter, which shows the
    // sort-merge join really ran, and what to raise.
    let out = dinmo_in(project.path(), &["plan", "--memory-limit", "100KB"], &[]);
    exits(&out, 1);
    assert!(
        stderr(&out).contains("ExternalSorter") && stderr(&out).contains("raise `--memory-limit`"),
        "{}",
        describe(&out)
    );
    std::fs::remove_dir_all(project.path().join("data/events/day=2026-11-20")).unwrap();
    std::fs::rename(&aside, &old).unwrap();
    let tight = dinmo_in(project.path(), &["run", "--memory-limit", "1KB"], &[]);
    exits(&tight, 1);
    assert!(
        stderr(&tight).contains("needs more memory than the memory limit allows")
            && stderr(&tight).contains("raise `--memory-limit`"),
        "{}",
        describe(&tight)
    );
    project.export_day("2026-11-19", &[("A1", 10), ("A2", 20)]);
    let out = dinmo_in(
        project.path(),
        &["run"],
        &[("DINMO_MEMORY_LIMIT", "64MiB"), ("DINMO_LOG", "info")],
    );
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 2"), "{}", describe(&out));
    assert!(!stderr(&out).contains("the anti-join sorts"), "{}", describe(&out));

    // So small nothing can run: the model is named, and the setting.
    let tiny = dinmo_in(project.path(), &["run", "--memory-limit", "3"], &[]);
    exits(&tiny, 1);
    assert!(
        stderr(&tiny).contains("model `usage`")
            && stderr(&tiny).contains("the query needs more memory")
            && stderr(&tiny).contains("raise `--memory-limit`"),
        "{}",
        describe(&tiny)
    );
    let bad = dinmo_in(project.path(), &["run", "--memory-limit", "lots"], &[]);
    exits_with(&bad, 64, &["`lots` is not a size"]);

    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write("dinmo.yml", &format!("{yml}\nexecution:\n  memory_limit: 4 parsecs\n"));
    let bad = project.dinmo(&["validate"]);
    exits_with(&bad, 1, &["execution.memory_limit: `4 parsecs` is not a size"]);
    project.write(
        "dinmo.yml",
        &format!("{yml}\nexecution:\n  memory_limit: 256MB\n  spill_path: scratch\n"),
    );
    let ok = project.dinmo(&["run"]);
    exits(&ok, 0);
    assert!(project.path().join("scratch").is_dir(), "the spill folder is made");
}
