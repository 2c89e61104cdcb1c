//! The sync history as SQL (`dinmo query`): every table read back against what the Zuora
//! simulator holds and against DuckDB reading the same files, on states written by the last
//! release, while a crashed run still holds its lock, and never changing a byte.

use std::collections::BTreeSet;

use serde_json::Value;
use zuora_sim::SimConfig;

use crate::support::*;
use crate::zuora::{Sim, export, run_against, usage_rows, zuora_project};

/// The rows `dinmo query SQL --format json` prints.
#[track_caller]
pub fn query(project: &TestProject, sql: &str) -> Vec<Value> {
    let output = project.dinmo(&["query", sql, "--format", "json"]);
    exits(&output, 0);
    match serde_json::from_str(&stdout(&output)) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("{sql}: not a JSON array ({other:?}): {}", describe(&output)),
    }
}

/// The one value of a one-row, one-column query, as text.
#[track_caller]
pub fn scalar(project: &TestProject, sql: &str) -> String {
    let rows = query(project, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    match rows[0].as_object().and_then(|o| o.values().next()) {
        Some(Value::String(text)) => text.clone(),
        Some(value) => value.to_string(),
        None => panic!("{sql}: no column in {rows:?}"),
    }
}

/// `(column name, type)` of `table`, as `DESCRIBE` gives them.
fn columns(project: &TestProject, table: &str) -> Vec<(String, String)> {
    query(project, &format!("DESCRIBE {table}"))
        .into_iter()
        .map(|row| {
            (
                row["column_name"].as_str().unwrap_or_default().to_string(),
                row["data_type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A number (a quantity as Zuora's records hold it: a float) from what a JSON query result
/// holds, a JSON number or an exact decimal as text.
pub fn decimal(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(text) => text.parse().unwrap_or_else(|_| panic!("not a number: {text}")),
        other => panic!("not a number: {other}"),
    }
}

/// `rows` and two rows Zuora refuses: one of an inactive account, one of no account.
pub fn with_two_refused(mut rows: Vec<(String, String, i64)>) -> Vec<(String, String, i64)> {
    rows.push(("A00000013".into(), "API_CALL".into(), 5));
    rows.push(("A99999999".into(), "GB_STORED".into(), 6));
    rows
}

#[test]
fn the_history_tables_hold_what_zuora_holds() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-11-18", &with_two_refused(usage_rows(10)));
    exits(&run_against(&project, &sim, &["run"]), 3);
    exits(&run_against(&project, &sim, &["run"]), 3); // the refused rows, offered and refused again
    export(&project, "2026-11-19", &usage_rows(7));
    exits(&run_against(&project, &sim, &["run"]), 3);
    let before = project.state_digest();

    // `sent` is exactly what Zuora holds: its records' ids, count and total quantity.
    let records = sim.records();
    let held: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
    let sent: BTreeSet<String> = query(&project, "SELECT destination_id FROM sent")
        .iter()
        .map(|row| row["destination_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(sent, held, "every record Zuora holds is a sent row, and nothing else");
    let totals = &query(&project, "SELECT count(*) AS n, sum(quantity) AS q FROM sent")[0];
    assert_eq!(totals["n"], records.len());
    let billed: f64 = records.iter().map(|r| r.quantity).sum();
    assert_eq!(decimal(&totals["q"]), billed);
    let per_account = query(
        &project,
        "SELECT account, unit, usage_date, quantity, \"AccountNumber\" FROM sent WHERE account = 'A00000001' ORDER BY usage_date",
    );
    assert_eq!(per_account.len(), 2, "{per_account:?}");
    assert_eq!(per_account[0]["unit"], "API_CALL");
    assert_eq!(per_account[0]["usage_date"], "2026-11-18");
    assert_eq!(
        per_account[0]["AccountNumber"], "A00000001",
        "mapped fields follow, as sent"
    );

    // `rejected`: each refusal of each run, with Zuora's reason.
    let refused = query(
        &project,
        "SELECT account, code, message, count(*) AS runs FROM rejected GROUP BY 1, 2, 3 ORDER BY 1",
    );
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["account"], "A00000013");
    assert!(
        refused[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is not active")
    );
    assert_eq!(refused[0]["runs"], 3, "refused by each of the three runs");
    assert_eq!(refused[1]["account"], "A99999999");

    // `runs`: one row per sync per run, counting what the other tables hold.
    let runs = query(
        &project,
        "SELECT run_id, outcome, accepted, rejected, new_rows, duration_seconds >= 0 AS timed, git_commit FROM runs ORDER BY run_id",
    );
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs.iter()
            .all(|r| r["outcome"] == "partially_rejected" && r["timed"] == true),
        "{runs:?}"
    );
    assert_eq!(
        [&runs[0]["accepted"], &runs[1]["accepted"], &runs[2]["accepted"]],
        [10, 0, 7]
    );
    assert_eq!(
        scalar(
            &project,
            "SELECT count(*) FROM sent s JOIN runs r USING (sync_id, run_id)"
        ),
        records.len().to_string(),
        "every sent row joins its run"
    );
    assert_eq!(
        scalar(&project, "SELECT sum(rejected) FROM runs"),
        scalar(&project, "SELECT count(*) FROM rejected")
    );
    // What one run sent.
    let second_day = runs[2]["run_id"].as_str().unwrap_or_default();
    assert_eq!(
        scalar(
            &project,
            &format!("SELECT count(*) FROM sent WHERE run_id = '{second_day}' AND usage_date = DATE '2026-11-19'")
        ),
        "7"
    );

    // Every format holds the same rows; DuckDB reads the Parquet dinmo wrote.
    let out = project.path().join("sent.parquet");
    let wrote = project.dinmo(&[
        "query",
        "SELECT sync_id, run_id, destination_id, quantity FROM sent",
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    exits(&wrote, 0);
    let duck = python_output([
        "-c",
        "import duckdb, sys; print(duckdb.sql(f\"SELECT count(*), sum(quantity)::DOUBLE FROM '{sys.argv[1]}'\").fetchall()[0])",
        out.to_str().unwrap_or_default(),
    ]);
    assert_eq!(duck, [format!("({}, {billed:?})", records.len())]);
    let csv = project.dinmo(&[
        "query",
        "SELECT * FROM rejected ORDER BY run_id, account",
        "--format",
        "csv",
    ]);
    exits(&csv, 0);
    let csv = stdout(&csv);
    assert!(
        csv.starts_with("sync_id,run_id,row_key,code,field,message,account,unit,quantity,usage_date,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    let table = project.dinmo(&["query", "SELECT outcome, count(*) AS n FROM runs GROUP BY 1"]);
    exits(&table, 0);
    assert!(
        stdout(&table).contains("| partially_rejected | 3 |"),
        "{}",
        describe(&table)
    );

    // Only reads: no statement that writes, and not a byte of the state changed.
    for sql in [
        "CREATE TABLE copy AS SELECT * FROM sent",
        "COPY sent TO 'sent.csv'",
        "INSERT INTO runs SELECT * FROM runs",
    ] {
        exits_with(&project.dinmo(&["query", sql]), 1, &["may only read"]);
    }
    exits_with(
        &project.dinmo(&["query", "SELECT * FROM sent_rows"]),
        1,
        &["sent_rows", "runs, sent, rejected, pending, held"],
    );
    exits_with(
        &project.dinmo(&["query", "SELECT 1", "--format", "parquet"]),
        1,
        &["--out FILE.parquet"],
    );
    // Reading needs no Zuora credentials (none are set for these commands).
    exits(&project.dinmo(&["runs"]), 0);
    exits(&project.dinmo(&["show", second_day]), 0);
    assert_eq!(project.state_digest(), before, "reading changed the state");
    assert!(!project.path().join("sent.csv").exists());

    // A damaged part is named, with what to do.
    let part = project.state_files("usage.zuora", "snapshot").remove(0);
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() / 2]).unwrap();
    let name = part.file_name().unwrap().to_string_lossy().into_owned();
    exits_with(
        &project.dinmo(&["query", "SELECT count(*) FROM sent"]),
        1,
        &[&name, "dinmo state verify"],
    );
}

#[test]
fn every_table_keeps_its_columns_on_states_the_last_release_wrote() {
    // The fixed columns are a contract (docs/sync-history.md): pinned here by name and type,
    // not read from the code.
    const SENT: &[(&str, &str)] = &[
        ("sync_id", "Utf8"),
        ("run_id", "Utf8"),
        ("destination_id", "Utf8"),
        ("row_key", "Utf8"),
        ("corrects", "Utf8"),
        ("correction", "Utf8"),
        ("record", "Utf8"),
        ("account", "Utf8"),
        ("unit", "Utf8"),
        ("quantity", "Decimal128(38, 9)"),
        ("usage_date", "Date32"),
    ];
    let pinned: [(&str, &[(&str, &str)]); 6] = [
        (
            "runs",
            &[
                ("run_id", "Utf8"),
                ("sync_id", "Utf8"),
                ("model", "Utf8"),
                ("destination", "Utf8"),
                ("destination_type", "Utf8"),
                ("started_at", "Timestamp(µs, \"UTC\")"),
                ("finished_at", "Timestamp(µs, \"UTC\")"),
                ("duration_seconds", "Float64"),
                ("outcome", "Utf8"),
                ("error", "Utf8"),
                ("git_commit", "Utf8"),
                ("model_sql_hash", "Utf8"),
                ("mapping_hash", "Utf8"),
                ("full_refresh", "Boolean"),
                ("model_rows", "Int64"),
                ("new_rows", "Int64"),
                ("corrections", "Int64"),
                ("gone", "Int64"),
                ("accepted", "Int64"),
                ("rejected", "Int64"),
                ("pending", "Int64"),
                ("held", "Int64"),
                ("destination_ids", "List(Utf8)"),
                ("source_versions", "List(Utf8)"),
                ("recovered_by", "Utf8"),
                ("rolled_back_at", "Timestamp(µs, \"UTC\")"),
                ("rolled_back_rows", "Int64"),
                ("repaired_rows", "Int64"),
            ],
        ),
        ("sent", SENT),
        (
            "rejected",
            &[
                ("sync_id", "Utf8"),
                ("run_id", "Utf8"),
                ("row_key", "Utf8"),
                ("code", "Utf8"),
                ("field", "Utf8"),
                ("message", "Utf8"),
                ("account", "Utf8"),
                ("unit", "Utf8"),
                ("quantity", "Decimal128(38, 9)"),
                ("usage_date", "Date32"),
            ],
        ),
        (
            "pending",
            &[
                ("sync_id", "Utf8"),
                ("run_id", "Utf8"),
                ("row_key", "Utf8"),
                ("account", "Utf8"),
                ("unit", "Utf8"),
                ("quantity", "Decimal128(38, 9)"),
                ("usage_date", "Date32"),
            ],
        ),
        (
            "held",
            &[
                ("sync_id", "Utf8"),
                ("run_id", "Utf8"),
                ("held_since", "Utf8"),
                ("reason", "Utf8"),
                ("row_key", "Utf8"),
                ("account", "Utf8"),
                ("unit", "Utf8"),
                ("quantity", "Decimal128(38, 9)"),
                ("quantity_before", "Decimal128(38, 9)"),
                ("usage_date", "Date32"),
            ],
        ),
        ("corrections", SENT), // the sent rows that correct another
    ];
    for fixture in ["state-0.1.0-35da1b6", "state-0.1.0-0d17e0c", "state-0.1.0-d2a9208"] {
        let dir = tempfile::tempdir().unwrap();
        example_as_the_last_release_had_it(dir.path());
        let state = dir.path().join(".dinmo/state");
        copy_project(&repository_root().join("tests/fixtures").join(fixture), &state);
        std::fs::remove_file(state.join("README.md")).ok();
        let project = TestProject { dir };
        for (table, fixed) in pinned {
            let found = columns(&project, table);
            let found: Vec<(&str, &str)> = found.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
            assert_eq!(&found[..fixed.len().min(found.len())], fixed, "{fixture}: {table}");
        }
        // Every row the manifests name, as DuckDB counts the same snapshot files, each key
        // as 32 hex digits however the release stored it.
        let ours: Vec<String> = query(
            &project,
            "SELECT sync_id, count(*) AS n, sum(quantity) AS q FROM sent GROUP BY 1 ORDER BY 1",
        )
        .iter()
        .map(|r| {
            format!(
                "{} {} {:?}",
                r["sync_id"].as_str().unwrap_or_default(),
                r["n"],
                decimal(&r["q"])
            )
        })
        .collect();
        let duck = python_output([
            "-c",
            "import duckdb, sys\n\
             parts = duckdb.sql(f\"SELECT * FROM read_parquet('{sys.argv[1]}/*/snapshot/*.parquet', filename=true, union_by_name=true)\")\n\
             quantity = ', '.join(f'\"{c}\"' for c in ('Usage Amount', 'QTY', 'Quantity') if c in parts.columns)\n\
             rows = duckdb.sql(f\"SELECT split_part(filename, '/', -3), count(*), sum(CAST(coalesce({quantity}) AS DECIMAL(38, 9))) FROM parts GROUP BY 1 ORDER BY 1\").fetchall()\n\
             for r in rows: print(r[0], r[1], float(r[2]))",
            state.to_str().unwrap_or_default(),
        ]);
        assert_eq!(ours, duck, "{fixture}");
        assert_eq!(
            scalar(
                &project,
                "SELECT count(*) FROM sent WHERE row_key IS NULL OR length(row_key) <> 32"
            ),
            "0",
            "{fixture}"
        );
        assert_eq!(
            scalar(&project, "SELECT sum(accepted) FROM runs"),
            scalar(&project, "SELECT count(*) FROM sent"),
            "{fixture}: the runs count what sent holds"
        );
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn reading_takes_no_lock_and_shows_what_a_crashed_run_left_pending() {
    let project = TestProject::standard();
    project.export_day("2026-11-18", &[("A1", 1), ("A2", 2), ("A3", 3)]);
    let env = [
        ("DINMO_DELIVERY_BATCH_ROWS", "1"),
        ("DINMO_CRASH_AT", "batch_answered:2"),
    ];
    let crashed = dinmo_in(project.path(), &["run"], &env);
    assert!(
        crashed.status.code().is_none() || crashed.status.code() == Some(134),
        "{}",
        describe(&crashed)
    );
    assert!(
        project.state("usage.files/lock").exists(),
        "the crashed run's lock is still there"
    );
    let before = project.state_digest();

    let runs = query(&project, "SELECT outcome, pending, finished_at FROM runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "running");
    assert_eq!(
        runs[0]["finished_at"],
        Value::Null,
        "every column is written, null or not"
    );
    assert_eq!(
        scalar(&project, "SELECT count(*) FROM pending"),
        "3",
        "the rows the run set out to send"
    );
    assert_eq!(
        scalar(
            &project,
            "SELECT string_agg(account, ',' ORDER BY account) FROM pending"
        ),
        "A1,A2,A3"
    );
    assert_eq!(
        project.state_digest(),
        before,
        "the lock and the state are as the crash left them"
    );

    // The next run finishes the crashed one; the history then says so.
    exits(
        &dinmo_in(project.path(), &["run"], &[("DINMO_DELIVERY_BATCH_ROWS", "1")]),
        0,
    );
    assert_eq!(scalar(&project, "SELECT count(*) FROM pending"), "0");
    assert_eq!(scalar(&project, "SELECT count(*) FROM sent"), "3");
}
