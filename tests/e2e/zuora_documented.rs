//! dinmo against Zuora as documented (`docs/zuora.md`): the simulator refuses what
//! Zuora refuses, and dinmo's queries, paging, limits and retries hold up against it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zuora_sim::{Faults, SimConfig};

use crate::support::*;
use crate::zuora::{Sim, export, run_against, usage_model, usage_rows, zuora_project};

/// `POST /v1/action/query` straight to the simulator with a fresh token.
fn raw_query(sim: &Sim, query: &str) -> (u16, Value) {
    let (status, headers, body) = sim.request(
        reqwest::Method::POST,
        "/v1/action/query",
        Some(json!({ "queryString": query })),
    );
    for header in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
        assert!(headers.contains_key(header), "{header} on every answer");
    }
    (status, body)
}

#[test]
fn the_simulator_refuses_the_unit_query_zuora_refuses() {
    let sim = Sim::start(SimConfig::default());
    // A query naming a field the object lacks: UnitOfMeasure has no `Name` field.
    let (status, body) = raw_query(&sim, "select Name from UnitOfMeasure where Active = true");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["FaultMessage"], "invalid field for query: UnitOfMeasure.Name");
    let (status, body) = raw_query(&sim, "select UomName from UnitOfMeasure where Active = true");
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["UomName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"API_CALL") && !names.contains(&"RETIRED_UNIT"),
        "{names:?}"
    );
    let (status, _) = raw_query(&sim, "SELECT UomName FROM UnitOfMeasure");
    assert_eq!(status, 400, "ZOQL keywords must be in lower case");
}

#[test]
fn validate_connect_lists_active_units_and_flags_a_literal_unit_the_tenant_lacks() {
    let sim = Sim::start(SimConfig::default());
    let project = zuora_project(&sim, "actions", "");
    export(&project, "2026-11-18", &usage_rows(4));
    let connected = run_against(&project, &sim, &["validate", "--connect"]);
    exits(&connected, 0);
    let out = stdout(&connected);
    assert!(
        out.contains("4 active unit(s) of measure: API_CALL, EACH, GB_STORED, SEAT"),
        "{out}"
    );
    assert!(!out.contains("RETIRED_UNIT"), "an inactive unit is not listed: {out}");

    project.write(
        "models/usage.yml",
        &usage_model("SELECT account, 'RETIRED_UNIT' AS uom, CAST(day AS TIMESTAMP) AS usage_day, qty FROM events"),
    );
    let flagged = run_against(&project, &sim, &["validate", "--connect"]);
    let err = exits_with(&flagged, 1, &[]);
    assert!(err.contains("usage.yml:8:"), "names the mapping line: {err}");
    assert!(
        err.contains("UOM is mapped to `uom`, the literal 'RETIRED_UNIT'")
            && err.contains("not an active unit of measure"),
        "{err}"
    );
}

/// A model of `rows` distinct usage rows on one day (one second apart), all `API_CALL`.
fn many_rows_project(sim: &Sim, method: &str, rows: usize, extra: &str) -> TestProject {
    let project = zuora_project(sim, method, extra);
    project.write(
        "models/usage.yml",
        &usage_model("SELECT account, uom, to_timestamp_seconds(1763424000 + qty) AS usage_day, qty FROM events"),
    );
    let data: Vec<(String, String, i64)> = (0..rows)
        .map(|i| (format!("A{:08}", 1 + i % 12), "API_CALL".to_string(), i as i64))
        .collect();
    export(&project, "2026-11-18", &data);
    project
}

fn endpoint_count(sim: &Sim, endpoint: &str) -> u64 {
    sim.sim
        .state
        .lock()
        .counters
        .by_endpoint
        .get(endpoint)
        .copied()
        .unwrap_or(0)
}

#[test]
fn rollback_of_an_import_over_2000_records_reads_every_page() {
    let sim = Sim::start(SimConfig::default());
    let project = many_rows_project(&sim, "import", 2_500, "");
    let run = run_against(&project, &sim, &["run"]);
    exits(&run, 0);
    assert_eq!(sim.records().len(), 2_500);
    let runs = run_against(&project, &sim, &["runs", "--format", "json"]);
    let listed: Value = serde_json::from_slice(&runs.stdout).unwrap();
    let run_id = listed[0]["run_id"].as_str().unwrap().to_string();
    let rolled = run_against(&project, &sim, &["rollback", &run_id]);
    exits(&rolled, 0);
    assert_eq!(
        sim.records().len(),
        0,
        "every record of the import, past the first page, is deleted"
    );
    assert!(
        endpoint_count(&sim, "POST /v1/action/queryMore") >= 1,
        "the second page came from queryMore"
    );
    // The rows are new again and go out once more, exactly once.
    let again = run_against(&project, &sim, &["run"]);
    exits(&again, 0);
    assert_eq!(sim.records().len(), 2_500);
}

#[test]
fn a_spent_rate_window_is_waited_out_by_ratelimit_reset() {
    // 15 requests a 2-second window: the run spends the window several times over.
    let sim = Sim::start(SimConfig {
        rate_limit_per_minute: 15,
        rate_limit_window_secs: 2,
        ..SimConfig::default()
    });
    let project = many_rows_project(&sim, "actions", 400, "    batch_size: 10\n");
    let started = Instant::now();
    let run = run_against(&project, &sim, &["run"]);
    exits(&run, 0);
    let records = sim.records();
    assert_eq!(records.len(), 400);
    let throttled = sim.sim.state.lock().counters.throttled;
    assert!(throttled > 0, "the window was spent");
    // 40 creates + token + units = 42 requests at 15 per 2 s: about 6 s of windows. Waiting
    // for RateLimit-Reset gets there; a client that gave up or spun would not.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}

#[test]
fn server_errors_and_concurrency_429s_do_not_wait_for_the_rate_window() {
    // A minute-long window whose RateLimit-Reset says up to 60 s on every answer: a client
    // that waited for it after 5xx or a concurrency 429 would take minutes.
    let sim = Sim::start(SimConfig::default());
    sim.faults(Faults {
        error_rate: 0.1,
        throttle_rate: 0.1,
        seed: 9,
        ..Faults::default()
    });
    let project = many_rows_project(&sim, "object", 200, "    concurrency: 8\n");
    let started = Instant::now();
    let run = run_against(&project, &sim, &["run"]);
    exits(&run, 0);
    assert_eq!(sim.records().len(), 200);
    let counters = sim.sim.state.lock().counters.clone();
    assert!(counters.server_errors > 5 && counters.throttled > 5, "{counters:?}");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?} for 200 rows: retries waited for RateLimit-Reset",
        started.elapsed()
    );
}

#[test]
fn every_create_request_but_the_last_carries_a_full_batch_across_delivery_batches() {
    // 103 rows read 10 at a time, 25 records a request: rows left over from one delivery batch
    // ride with the next one's, so 5 requests (4 × 25 + 3), not one short request per batch.
    let sim = Sim::start(SimConfig::default());
    let project = many_rows_project(&sim, "actions", 103, "    batch_size: 25\n    concurrency: 4\n");
    let (id, secret) = (sim.client_id(), sim.secret());
    let env = [
        ("ZUORA_CLIENT_ID", id.as_str()),
        ("ZUORA_CLIENT_SECRET", secret.as_str()),
        ("DINMO_DELIVERY_BATCH_ROWS", "10"),
    ];
    let run = dinmo_in(project.path(), &["run"], &env);
    exits(&run, 0);
    assert_eq!(sim.records().len(), 103);
    assert_eq!(endpoint_count(&sim, "POST /v1/action/create"), 5);
    let again = dinmo_in(project.path(), &["plan", "--detailed-exitcode"], &env);
    exits(&again, 0);
}

/// Zuora lets a Pending usage record change (`PUT /v1/object/usage/{id}`) and refuses to change
/// or delete one a bill run processed; a quantity never goes negative (docs/zuora.md, "Usage
/// records").
#[test]
fn the_simulator_updates_pending_usage_and_refuses_processed_usage() {
    let sim = Sim::start(SimConfig::default());
    let (status, _, created) = sim.request(
        reqwest::Method::POST,
        "/v1/object/usage",
        Some(
            json!({"AccountNumber": "A00000001", "UOM": "API_CALL", "Quantity": 10, "StartDateTime": "2026-11-19T00:00:00"}),
        ),
    );
    assert_eq!(status, 200, "{created}");
    let id = created["Id"].as_str().unwrap().to_string();
    let path = format!("/v1/object/usage/{id}");

    let (status, _, body) = sim.request(reqwest::Method::PUT, &path, Some(json!({"Quantity": 12})));
    assert_eq!((status, &body["Success"]), (200, &json!(true)), "{body}");
    assert_eq!(sim.records()[0].quantity, 12.0);
    let (status, _, body) = sim.request(reqwest::Method::PUT, &path, Some(json!({"Quantity": -1})));
    assert_eq!(status, 400, "a quantity is never negative: {body}");
    let (status, _, body) = sim.request(reqwest::Method::PUT, &path, Some(json!({"AccountNumber": "A-2"})));
    assert_eq!(status, 400, "only the documented fields change: {body}");
    assert_eq!(sim.records()[0].quantity, 12.0, "a refused change changes nothing");

    let (status, _, _) = sim.request(reqwest::Method::POST, "/sim/process", None);
    assert_eq!(status, 200);
    let (status, _, body) = sim.request(reqwest::Method::PUT, &path, Some(json!({"Quantity": 15})));
    assert_eq!(status, 400, "processed usage is part of an invoice: {body}");
    let (status, _, body) = sim.request(reqwest::Method::DELETE, &path, None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(sim.records()[0].quantity, 12.0);
    assert_eq!(sim.records()[0].status, "Processed");
}
