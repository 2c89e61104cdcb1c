//! The differential test against DuckDB (tests/differential/differential.py; see
//! docs/architecture.md, "The differential test"): random exports written by pyarrow and
//! DuckDB with drift, random models, two runs, every sent row compared with DuckDB's model and
//! anti-join on the same files. `DINMO_DIFFERENTIAL_CASES` (default 300) and
//! `DINMO_DIFFERENTIAL_SEED` choose the cases; a failure prints each failed case's seed and
//! the command that replays it.

use crate::support::*;

#[test]
fn dinmo_sends_what_duckdb_computes_on_the_same_files() {
    let cases = std::env::var("DINMO_DIFFERENTIAL_CASES").unwrap_or_else(|_| "300".into());
    let seed = std::env::var("DINMO_DIFFERENTIAL_SEED").unwrap_or_else(|_| "20261121".into());
    let script = repository_root().join("tests/differential/differential.py");
    let output = std::process::Command::new(python())
        .arg(&script)
        .args(["--dinmo", env!("CARGO_BIN_EXE_dinmo")])
        .args([
            "--cases",
            &cases,
            "--seed",
            &seed,
            "--jobs",
            "2",
            "--max-seconds",
            "600",
        ])
        .output()
        .expect("runs python");
    let report = describe(&output);
    assert!(output.status.success(), "{report}");
    let summary = stdout(&output);
    assert!(
        summary.contains(" 0 failed, 0 not started"),
        "every case ran and passed: {summary}"
    );
}
