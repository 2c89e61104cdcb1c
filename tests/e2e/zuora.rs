//! The Zuora REST destination through the real binary against the Zuora simulator.

use std::collections::HashSet;

use zuora_sim::{Fault, Faults, SimConfig, Simulator, UsageRecord};

use crate::support::*;

/// The simulator on a loopback port, served by its own runtime.
pub struct Sim {
    pub sim: Simulator,
    _runtime: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(config: SimConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime.block_on(Simulator::start(config, 0)).unwrap();
        Sim { sim, _runtime: runtime }
    }

    pub fn records(&self) -> Vec<UsageRecord> {
        self.sim.state.lock().records.clone()
    }

    /// Runs `future` on the simulator's runtime (for raw HTTP against it).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self._runtime.block_on(future)
    }

    pub fn faults(&self, faults: Faults) {
        self.sim.state.lock().set_faults(faults);
    }

    /// The client secret the simulator expects (a test value).
    pub fn secret(&self) -> String {
        self.sim.state.lock().config.client_secret.clone()
    }

    /// A request straight to the simulator's API with a fresh token, as a person or another
    /// pipeline would make it: `(status, headers, body)`.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let url = self.sim.url();
        let (id, secret) = (self.client_id(), self.secret());
        let path = path.to_string();
        self.block_on(async move {
            let client = reqwest::Client::new();
            let token: serde_json::Value = client
                .post(format!("{url}/oauth/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut request = client
                .request(method, format!("{url}{path}"))
                .bearer_auth(token["access_token"].as_str().unwrap());
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = request.send().await.unwrap();
            let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
            (status, headers, answer.json().await.unwrap_or(serde_json::Value::Null))
        })
    }

    pub fn client_id(&self) -> String {
        self.sim.state.lock().config.client_id.clone()
    }
}

/// A project whose `usage.zuora` sync sends to the simulator with `method`.
pub fn zuora_project(sim: &Sim, method: &str, extra: &str) -> TestProject {
    zuora_project_at(&sim.sim.url(), method, extra)
}

/// A project whose `usage.zuora` sync sends to `base_url` (the simulator, or a proxy in front
/// of it) with `method`; `extra` adds destination keys.
pub fn zuora_project_at(base_url: &str, method: &str, extra: &str) -> TestProject {
    let project = format!(
        "name: zuora_e2e
sources:
  events:
    location: data/events/
destinations:
  zuora:
    type: zuora
    base_url: {base_url}
    client_id: ${{ZUORA_CLIENT_ID}}
    client_secret: ${{ZUORA_CLIENT_SECRET}}
    method: {method}
{extra}"
    );
    let model = usage_model("SELECT account, uom, CAST(day AS TIMESTAMP) AS usage_day, qty FROM events");
    TestProject::new(&project, &[("usage.yml", &model)])
}

/// Model `usage` with `sql` (columns account, uom, usage_day, qty), keyed on account, unit and
/// day, synced to `zuora` with the four required fields mapped (the mapping's `UOM: uom` on
/// line 8).
pub fn usage_model(sql: &str) -> String {
    usage_model_keyed(sql, "account, uom, usage_day")
}

/// [`usage_model`] with the primary key `key` (columns, comma-separated).
pub fn usage_model_keyed(sql: &str, key: &str) -> String {
    format!(
        "model: usage
sql: {sql}
primary_key: [{key}]
syncs:
  - destination: zuora
    mapping:
      AccountNumber: account
      UOM: uom
      StartDateTime: usage_day
      Quantity: qty
"
    )
}

pub fn run_against(project: &TestProject, sim: &Sim, args: &[&str]) -> std::process::Output {
    let (id, secret) = (sim.client_id(), sim.secret());
    dinmo_in(
        project.path(),
        args,
        &[("ZUORA_CLIENT_ID", &id), ("ZUORA_CLIENT_SECRET", &secret)],
    )
}

/// `count` rows over active accounts A00000001..A00000012, one export day.
pub fn usage_rows(count: usize) -> Vec<(String, String, i64)> {
    (0..count)
        .map(|i| {
            (
                format!("A{:08}", 1 + i % 12),
                if (i / 12) % 2 == 0 { "API_CALL" } else { "GB_STORED" }.to_string(),
                i as i64,
            )
        })
        .collect()
}

pub fn export(project: &TestProject, day: &str, rows: &[(String, String, i64)]) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, false),
        Field::new("uom", DataType::Utf8, false),
        Field::new("qty", DataType::Int64, false),
    ]));
    // Several accounts × units per day: make (account, uom) unique by spreading over seconds.
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    write_parquet(
        &project.path().join(format!("data/events/day={day}/part.parquet")),
        &batch,
    );
}

/// Each (account, uom) once per day: 24 distinct rows a day at most.
fn day_rows(n: usize) -> Vec<(String, String, i64)> {
    usage_rows(n.min(24))
}

fn assert_exactly_once(sim: &Sim, expected: usize) {
    let records = sim.records();
    let keys: HashSet<String> = records.iter().filter_map(|r| r.unique_key.clone()).collect();
    assert_eq!(records.len(), expected, "stored records");
    assert_eq!(keys.len(), expected, "distinct UniqueKeys: a duplicate was stored");
}

#[test]
fn each_method_end_to_end_then_nothing_new() {
    for method in ["actions", "object", "import"] {
        let sim = Sim::start(SimConfig::default());
        let project = zuora_project(&sim, method, "");
        export(&project, "2026-11-18", &day_rows(24));
        export(&project, "2026-11-19", &day_rows(24));
        let first = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&first), 0, "{method}: {}", describe(&first));
        assert_exactly_once(&sim, 48);
        let track: HashSet<Option<String>> = sim.records().into_iter().map(|r| r.track_id).collect();
        assert_eq!(track.len(), 1, "one run, one Zuora-Track-Id: {track:?}");
        assert!(
            track
                .iter()
                .all(|t| t.as_deref().is_some_and(|t| t.starts_with("dinmo-"))),
            "{track:?}"
        );
        let second = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&second), 0, "{method}: {}", describe(&second));
        assert_exactly_once(&sim, 48);
        if method == "import" {
            assert!(
                sim.records().iter().all(|r| r.import_id.is_some()),
                "import rows come from an import"
            );
        }
    }
}

#[test]
fn refused_rows_are_mapped_to_their_rows_and_retried_next_run() {
    for method in ["actions", "object", "import"] {
        let sim = Sim::start(SimConfig::default());
        let project = zuora_project(&sim, method, "");
        let mut rows = day_rows(10);
        rows.push(("A00000013".into(), "API_CALL".into(), 5)); // an inactive account
        rows.push(("A99999999".into(), "API_CALL".into(), 6)); // no such account
        export(&project, "2026-11-18", &rows);
        let first = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&first), 3, "{method}: {}", describe(&first));
        assert_exactly_once(&sim, 10);
        let mut refused = rejected_rows(&project, "usage.zuora");
        refused.sort();
        assert_eq!(refused.len(), 2, "{method}: {refused:?}");
        assert_eq!(refused[0].0, "A00000013");
        assert!(refused[0].2.contains("is not active"), "{method}: {refused:?}");
        assert_eq!(refused[1].0, "A99999999");
        assert!(refused[1].2.contains("does not exist"), "{method}: {refused:?}");
        let accounts: HashSet<String> = sim.records().into_iter().map(|r| r.account_number).collect();
        assert!(!accounts.contains("A00000013"));
        // Offered again, refused again, nothing doubled.
        let second = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&second), 3, "{method}: {}", describe(&second));
        assert!(
            stdout(&second).contains("new rows: 2"),
            "{method}: {}",
            describe(&second)
        );
        assert_exactly_once(&sim, 10);
    }
}

#[test]
fn throttling_and_server_errors_lose_and_double_nothing() {
    let sim = Sim::start(SimConfig::default());
    sim.faults(Faults {
        error_rate: 0.2,
        throttle_rate: 0.2,
        drop_before_rate: 0.05,
        drop_after_rate: 0.1,
        seed: 7,
        ..Faults::default()
    });
    let project = zuora_project(&sim, "actions", "    batch_size: 5\n");
    for day in ["2026-11-18", "2026-11-19", "2026-11-20"] {
        export(&project, day, &day_rows(24));
    }
    let run = run_against(&project, &sim, &["run"]);
    exits(&run, 0);
    assert_exactly_once(&sim, 72);
    let counters = sim.sim.state.lock().counters.clone();
    assert!(
        counters.throttled > 0 && counters.server_errors > 0 && counters.dropped_after > 0,
        "{counters:?}"
    );
    assert!(
        counters.idempotent_replays > 0,
        "a dropped answer is replayed from its Idempotency-Key: {counters:?}"
    );
}

#[test]
fn an_answer_lost_after_the_store_does_not_duplicate_even_without_unique_keys() {
    for method in ["actions", "object"] {
        let sim = Sim::start(SimConfig {
            enforce_unique_key: false,
            ..SimConfig::default()
        });
        // The UOM query passes; the first usage requests are stored but their answers are lost.
        sim.faults(Faults {
            script: vec![Fault::None, Fault::DropAfter, Fault::DropAfter],
            ..Faults::default()
        });
        let project = zuora_project(&sim, method, "");
        export(&project, "2026-11-18", &day_rows(12));
        let run = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&run), 0, "{method}: {}", describe(&run));
        assert_exactly_once(&sim, 12);
        assert!(sim.sim.state.lock().counters.dropped_after >= 1);
    }
}

#[test]
fn an_expired_token_is_refreshed_mid_run() {
    let sim = Sim::start(SimConfig::default());
    sim.faults(Faults {
        script: vec![Fault::None, Fault::None, Fault::None, Fault::Unauthorized],
        ..Faults::default()
    });
    let project = zuora_project(&sim, "actions", "    batch_size: 2\n    concurrency: 1\n");
    export(&project, "2026-11-18", &day_rows(12));
    let run = run_against(&project, &sim, &["run"]);
    exits(&run, 0);
    assert_exactly_once(&sim, 12);
    let counters = sim.sim.state.lock().counters.clone();
    assert!(counters.token_requests >= 2, "a new token after the 401: {counters:?}");
}

#[test]
fn an_unknown_unit_of_measure_is_rejected_before_sending() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    let mut rows = day_rows(4);
    rows.push(("A00000001".into(), "BOGUS_UNIT".into(), 1));
    export(&project, "2026-11-18", &rows);
    let run = run_against(&project, &sim, &["run"]);
    exits(&run, 3);
    assert!(
        stdout(&run).contains("unknown_unit_of_measure (UOM): unit of measure `BOGUS_UNIT` is not defined"),
        "{}",
        describe(&run)
    );
    assert_exactly_once(&sim, 4);
    assert!(sim.records().iter().all(|r| r.uom != "BOGUS_UNIT"));
    let connect = run_against(&project, &sim, &["validate", "--connect"]);
    exits(&connect, 0);
    assert!(
        stdout(&connect).contains("4 active unit(s) of measure: API_CALL, EACH, GB_STORED, SEAT"),
        "{}",
        describe(&connect)
    );
}

#[test]
fn http_is_refused_for_a_non_loopback_host() {
    let project = TestProject::new(
        "name: insecure
sources:
  events:
    location: data/events/
destinations:
  zuora:
    type: zuora
    base_url: http://rest.zuora.example.com
    client_id: ${ZUORA_CLIENT_ID}
    client_secret: ${ZUORA_CLIENT_SECRET}
",
        &[(
            "usage.yml",
            MODEL
                .edit("destination: files", "destination: zuora")
                .edit("UnitOfMeasure", "UOM")
                .as_str(),
        )],
    );
    let output = dinmo_in(
        project.path(),
        &["validate"],
        &[("ZUORA_CLIENT_ID", "x"), ("ZUORA_CLIENT_SECRET", "s3cr3t-value")],
    );
    exits_with(&output, 1, &["uses http:// to a non-loopback host"]);
    assert!(!describe(&output).contains("s3cr3t-value"));
}

#[test]
fn no_secret_in_any_log_line_report_or_state_file() {
    let sim = Sim::start(SimConfig::default());
    sim.faults(Faults {
        error_rate: 0.2,
        throttle_rate: 0.1,
        seed: 3,
        script: vec![Fault::None, Fault::Unauthorized],
        ..Faults::default()
    });
    let project = zuora_project(&sim, "actions", "    batch_size: 3\n");
    export(&project, "2026-11-18", &day_rows(12));
    let (id, secret) = (sim.client_id(), sim.secret());
    let env = [
        ("ZUORA_CLIENT_ID", id.as_str()),
        ("ZUORA_CLIENT_SECRET", secret.as_str()),
        ("DINMO_LOG", "trace"),
    ];
    let mut outputs = String::new();
    for args in [
        &["run", "--log-format", "json"][..],
        &["run"],
        &["runs"],
        &["validate", "--connect"],
    ] {
        let output = dinmo_in(project.path(), args, &env);
        assert!(matches!(code(&output), 0 | 3), "{}", describe(&output));
        outputs.push_str(&describe(&output));
    }
    assert!(outputs.contains("retrying"), "the faults produced log lines to inspect");
    assert!(!outputs.contains(&secret), "the client secret appeared in output");
    for file in walk(project.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret in {}",
            file.display()
        );
    }
}

/// (AccountNumber, reject_code, reject_message) of every rejected part of `sync`.
fn rejected_rows(project: &TestProject, sync: &str) -> Vec<(String, String, String)> {
    project
        .state_rows(sync, "rejected", &["AccountNumber", "reject_code", "reject_message"])
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone(), row[2].clone()))
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else if !path.ends_with("dinmo.yml") {
            found.push(path);
        }
    }
    found
}

#[test]
fn rollback_deletes_pending_records_and_returns_them_to_new() {
    for method in ["actions", "import"] {
        let sim = Sim::start(SimConfig::default());
        let project = zuora_project(&sim, method, "");
        export(&project, "2026-11-18", &day_rows(6));
        let run = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&run), 0, "{method}: {}", describe(&run));
        assert_exactly_once(&sim, 6);
        let runs = run_against(&project, &sim, &["runs", "--format", "json"]);
        let manifests: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
        let run_id = manifests[0]["run_id"].as_str().unwrap().to_string();

        // Zuora has already processed one record: it can no longer be deleted.
        let processed = {
            let mut inner = sim.sim.state.lock();
            inner.records[0].status = "Processed".into();
            inner.records[0].unique_key.clone().unwrap()
        };
        let rollback = run_against(&project, &sim, &["rollback", &run_id]);
        let remaining = sim.records();
        match method {
            "actions" => {
                assert_eq!(code(&rollback), 1, "{method}: {}", describe(&rollback));
                assert!(
                    stdout(&rollback).contains("deleted 5 row(s)"),
                    "{method}: {}",
                    describe(&rollback)
                );
                assert!(
                    stdout(&rollback).contains("Only usage records in Pending status can be deleted"),
                    "{}",
                    describe(&rollback)
                );
                assert_eq!(remaining.len(), 1);
                assert_eq!(remaining[0].unique_key.as_deref(), Some(processed.as_str()));
            }
            _ => {
                // An import is rolled back whole or not at all: here, not at all.
                assert_eq!(code(&rollback), 1, "{method}: {}", describe(&rollback));
                assert!(
                    stdout(&rollback).contains("are no longer Pending; an import is rolled back whole"),
                    "{}",
                    describe(&rollback)
                );
                assert_eq!(remaining.len(), 6, "nothing deleted");
            }
        }
        let plan = run_against(&project, &sim, &["plan", "--format", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let expected_new = if method == "actions" { 5 } else { 0 };
        assert_eq!(
            report["syncs"][0]["counts"]["new_rows"],
            expected_new,
            "{method}: {}",
            describe(&plan)
        );
        let again = run_against(&project, &sim, &["run"]);
        assert_eq!(code(&again), 0, "{method}: {}", describe(&again));
        let final_records = sim.records().len();
        assert_eq!(final_records, 6, "{method}");
        let keys: HashSet<String> = sim.records().into_iter().filter_map(|r| r.unique_key).collect();
        assert_eq!(keys.len(), final_records, "{method}: nothing doubled");
    }
}

#[test]
fn rollback_of_a_pending_import_deletes_it_whole() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "import", "");
    export(&project, "2026-11-18", &day_rows(6));
    assert_eq!(code(&run_against(&project, &sim, &["run"])), 0);
    let runs = run_against(&project, &sim, &["runs", "--format", "json"]);
    let manifests: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = manifests[0]["run_id"].as_str().unwrap().to_string();
    let rollback = run_against(&project, &sim, &["rollback", &run_id]);
    exits(&rollback, 0);
    assert!(sim.records().is_empty());
    let again = run_against(&project, &sim, &["run"]);
    exits(&again, 0);
    assert_exactly_once(&sim, 6);
}
