//! Contract tests: Stoplight Prism in proxy mode with Zuora's official OpenAPI spec between
//! dinmo and the simulator (`prism proxy <spec> <simulator> --errors`), so every request and
//! answer is checked against Zuora's own schema; with `--errors` a violation fails the
//! request, and with it the run.
//!
//! Needs Prism (`.ci/run` installs `@stoplight/prism-cli` into `.ci/tools`, or set
//! `DINMO_PRISM`) and Zuora's spec, found by `scripts/zuora-spec.sh`: `DINMO_ZUORA_SPEC`,
//! `../shared/zuora/` beside the repository, or Zuora's published copy when the network
//! allows (`.ci/run` prepares it once and passes `DINMO_ZUORA_PRISM_SPEC`). Without a spec, or
//! without Prism, the test says so in one line on stderr and passes without checking.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zuora_sim::{Fault, Faults, SimConfig};

use crate::support::*;
use crate::zuora::{Sim, export, run_against, usage_rows, zuora_project_at};

struct Prism {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prism: `DINMO_PRISM` (must exist when set), `.ci/tools`, or `prism` on PATH.
fn prism_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("DINMO_PRISM") {
        return Some(PathBuf::from(path));
    }
    let local = repository_root().join(".ci/tools/node_modules/.bin/prism");
    if local.exists() {
        return Some(local);
    }
    let on_path = Command::new("prism")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    on_path.is_ok_and(|s| s.success()).then(|| PathBuf::from("prism"))
}

/// One line on the real stderr (not the test harness's captured output), so a skipped
/// contract test is visible in `cargo test`'s output.
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "contract tests SKIPPED: {why}");
}

/// The Prism-loadable copy of Zuora's spec: `DINMO_ZUORA_PRISM_SPEC` (prepared by `.ci/run`),
/// or `scripts/zuora-spec.sh` run now. `Err` says why there is none.
fn prism_spec(work: &Path) -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("DINMO_ZUORA_PRISM_SPEC") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "DINMO_ZUORA_PRISM_SPEC={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let spec = work.join("zuora-prism.yaml");
    let script = repository_root().join("scripts/zuora-spec.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&spec)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    match output.status.code() {
        Some(0) => Ok(spec),
        Some(3) => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        _ => panic!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn start_prism(prism: &Path, spec: &Path, upstream: &str, work: &Path) -> Prism {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = work.join("prism.log");
    let child = Command::new(prism)
        .args([
            "proxy",
            spec.to_str().unwrap(),
            upstream,
            "--errors",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start Prism ({e}); run .ci/run, which installs @stoplight/prism-cli, or set DINMO_PRISM")
        });
    let prism = Prism {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&prism.log).unwrap_or_default();
        if text.contains("Prism is listening") {
            return prism;
        }
        assert!(Instant::now() < deadline, "Prism did not start within 120 s:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A project whose sync goes to the simulator through Prism, with a Description mapped.
fn through(prism: &Prism, method: &str) -> TestProject {
    let project = zuora_project_at(&prism.url, method, "    batch_size: 7\n");
    project.write(
        "models/usage.yml",
        "model: usage
sql: SELECT account, uom, CAST(day AS TIMESTAMP) AS usage_day, qty, 'contract test' AS note FROM events
primary_key: [account, uom, usage_day]
syncs:
  - destination: zuora
    mapping: { AccountNumber: account, UOM: uom, StartDateTime: usage_day, Quantity: qty, Description: note }
",
    );
    project
}

fn violations(prism: &Prism) -> Vec<String> {
    std::fs::read_to_string(&prism.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("✖") || l.contains("Violation") || l.contains("UNPROCESSABLE") || l.contains("[VALIDATOR]")
        })
        .map(str::to_string)
        .collect()
}

/// The log lines around each violation: Prism names what was wrong on the lines after it.
fn context_of_violations(prism: &Prism) -> String {
    let log = std::fs::read_to_string(&prism.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("✖") {
            out.extend(
                lines[i.saturating_sub(8)..(i + 4).min(lines.len())]
                    .iter()
                    .map(|l| l.to_string()),
            );
            out.push("---".into());
        }
    }
    out.join("\n")
}

/// The simulator with Prism in front of it, or `None` (said on stderr) without a spec or
/// Prism.
fn simulator_behind_prism(work: &Path) -> Option<(Sim, Prism)> {
    let spec = match prism_spec(work) {
        Ok(spec) => spec,
        Err(why) => {
            skip(&why);
            return None;
        }
    };
    let Some(prism) = prism_binary() else {
        skip("Stoplight Prism is not installed; run .ci/run (it installs @stoplight/prism-cli) or set DINMO_PRISM");
        return None;
    };
    let sim = Sim::start(SimConfig::default());
    let prism = start_prism(&prism, &spec, &sim.sim.url(), work);
    Some((sim, prism))
}

#[test]
fn every_request_and_answer_conforms_to_zuoras_spec() {
    let work = tempfile::tempdir().unwrap();
    let Some((sim, prism)) = simulator_behind_prism(work.path()) else {
        return;
    };

    for method in ["actions", "object", "import"] {
        {
            let mut inner = sim.sim.state.lock();
            inner.clear_records();
            inner.idempotent.clear();
        }
        // An expired token partway through.
        sim.faults(Faults {
            script: vec![Fault::None, Fault::None, Fault::Unauthorized],
            ..Faults::default()
        });
        let project = through(&prism, method);
        let mut rows = usage_rows(24);
        rows.push(("A00000013".into(), "API_CALL".into(), 1)); // refused by Zuora: inactive account
        rows.push(("A00000001".into(), "NOT_A_UNIT".into(), 1)); // refused locally: unknown unit
        export(&project, "2026-11-18", &rows);
        let run = run_against(&project, &sim, &["run"]);
        assert_eq!(
            code(&run),
            3,
            "{method}: {}\nPrism:\n{}",
            describe(&run),
            violations(&prism).join("\n")
        );
        assert_eq!(sim.records().len(), 24, "{method}");
        let again = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&again), 3, "{method}: {}", describe(&again));
        assert_eq!(sim.records().len(), 24, "{method}: nothing doubled");
        let connect = run_against(&project, &sim, &["validate", "--connect"]);
        assert_eq!(code(&connect), 0, "{method}: {}", describe(&connect));
        // Reading back: the two refused rows are still to send, the rest as delivered.
        let reconciled = run_against(&project, &sim, &["reconcile"]);
        assert_eq!(code(&reconciled), 4, "{method}: {}", describe(&reconciled));
        assert!(
            stdout(&reconciled).contains("equal 24 · missing 0 · different 0 · extra 0 · new 2"),
            "{method}: {}",
            describe(&reconciled)
        );
    }
    let found = violations(&prism);
    assert!(
        found.is_empty(),
        "Prism found {} violation(s):\n{}\n--- the log around them:\n{}",
        found.len(),
        found.join("\n"),
        context_of_violations(&prism)
    );

    // Negative control: Prism does check. Zuora's client ids have 36 characters.
    let project = through(&prism, "actions");
    export(&project, "2026-11-18", &usage_rows(2));
    let bad = dinmo_in(
        project.path(),
        &["validate", "--connect"],
        &[("ZUORA_CLIENT_ID", "too-short"), ("ZUORA_CLIENT_SECRET", "x")],
    );
    exits_with(&bad, 1, &["HTTP 422"]);
    // Prism writes its log asynchronously: under load the line lands after dinmo has exited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !violations(&prism).iter().any(|l| l.contains("UNPROCESSABLE")) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        violations(&prism).iter().any(|l| l.contains("UNPROCESSABLE")),
        "Prism logged the violation"
    );
}

/// Corrections through Prism: the ZOQL that reads records back, `PUT /v1/object/usage/{id}`
/// for a Pending record, a difference record for a Processed one, and `DELETE` for a gone row
/// under `on_delete: rollback_pending`, each checked against Zuora's spec.
#[test]
fn corrections_conform_to_zuoras_spec() {
    let work = tempfile::tempdir().unwrap();
    let Some((sim, prism)) = simulator_behind_prism(work.path()) else {
        return;
    };
    for method in ["actions", "import"] {
        sim.sim.state.lock().clear_records();
        let project = through(&prism, method);
        let model = std::fs::read_to_string(project.path().join("models/usage.yml")).unwrap();
        project.write(
            "models/usage.yml",
            &format!("{model}    on_change: correct\n    on_delete: rollback_pending\n"),
        );
        let day = |qty: i64, accounts: usize| -> Vec<(String, String, i64)> {
            (0..accounts)
                .map(|i| (format!("A{:08}", 1 + i), "API_CALL".to_string(), qty + i as i64))
                .collect()
        };
        export(&project, "2026-11-18", &day(10, 12));
        exits(&run_against(&project, &sim, &["run"]), 0);
        export(&project, "2026-11-18", &day(12, 12)); // Pending: updated in place
        let updated = run_against(&project, &sim, &["run"]);
        assert_eq!(
            code(&updated),
            0,
            "{method}: {}\n{}",
            describe(&updated),
            violations(&prism).join("\n")
        );
        for record in sim.sim.state.lock().records.iter_mut() {
            record.status = "Processed".into();
        }
        export(&project, "2026-11-18", &day(13, 12)); // Processed: a difference record each
        let corrected = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&corrected), 0, "{method}: {}", describe(&corrected));
        assert_eq!(sim.records().len(), 24, "{method}");
        export(&project, "2026-11-19", &day(10, 12));
        exits(&run_against(&project, &sim, &["run"]), 0);
        export(&project, "2026-11-19", &day(10, 10)); // two accounts gone while Pending: deleted
        let deleted = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&deleted), 0, "{method}: {}", describe(&deleted));
        assert_eq!(sim.records().len(), 34, "{method}");
    }
    let found = violations(&prism);
    assert!(
        found.is_empty(),
        "Prism found {} violation(s):\n{}\n--- the log around them:\n{}",
        found.len(),
        found.join("\n"),
        context_of_violations(&prism)
    );
}
