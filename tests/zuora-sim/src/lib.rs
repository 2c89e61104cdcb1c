//! A Zuora usage API simulator: the endpoints dinmo's connectors use, Zuora's validation and
//! error shapes, accounts and units of measure, rate and concurrency limits with Zuora's
//! headers, Idempotency-Key replay, asynchronous usage imports, and injectable faults.
//!
//! It is written from Zuora's documentation (`docs/zuora.md` and `zuora_openapi.yaml`),
//! not from dinmo's connector: each behaviour cites what it implements. What stays
//! **unconfirmed** by Zuora's own pages, and how the simulator reads it:
//! - the HTTP status and body of a ZOQL fault: 400 with `{FaultCode, FaultMessage}`, as a
//!   public Zuora client's tests record it (the spec declares only 200 and 401 for the query
//!   operations); dinmo reads every error shape, so either reading works;
//! - the code for an expired or unknown `queryLocator` (`INVALID_VALUE` here);
//! - whether a 429 carries `Retry-After` (not sent here; dinmo honours it when present);
//! - the value format of `RateLimit-Limit` (`<n>;w=<seconds>` here; the spec says string);
//! - what `POST /v1/usage` answers a file in the other layout with: its reference says the
//!   file "must follow the format used by the UI import tool", the tenant's layout (docs/zuora.md,
//!   "Usage import files"); the simulator takes the standard layout, or the Active Rating one
//!   when started with `active_rating`, and fails an import of the other one (Failed, with a
//!   `StatusReason` naming the missing column) — the wording is the simulator's own;
//! - which optional columns of the standard layout a tenant takes beyond `ENDDATE`, and
//!   whether a file may leave some out: the simulator takes `DESCRIPTION`, `UNIQUE_KEY`,
//!   `SUBSCRIPTION_ID` and `CHARGE_ID`, and reads `STARTDATE`/`ENDDATE` as an en_US user's
//!   (`MM/DD/YYYY`);
//! - the code and wording Zuora answers an update of a Processed usage record with, and an
//!   update naming a field `ProxyModifyUsage` lacks (both refused with 400 here, the first
//!   with the delete's code `53100030`).
//!
//! `/sim/*` endpoints configure it and expose what it stored:
//! `GET /sim/records`, `GET /sim/imports`, `GET /sim/counters`, `PUT /sim/faults`,
//! `PUT /sim/config`, `POST /sim/expire-tokens`, `POST /sim/process` (mark every Pending
//! usage Processed), `POST /sim/reset`.

pub mod config;
mod gate;
mod handlers;
pub mod revenue;
pub mod state;
mod validation;
pub mod zoql;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{Account, Fault, Faults, SimConfig};
pub use state::{Counters, SimState, UsageRecord};

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for direct inspection from tests in the same process.
    pub state: Arc<SimState>,
    /// The Zuora Revenue side (same address, `/api/integration/v1/*`).
    pub revenue: Arc<revenue::RevenueSim>,
    task: JoinHandle<()>,
}

impl Simulator {
    /// Starts on `127.0.0.1:port` (0 for any free port).
    pub async fn start(config: SimConfig, port: u16) -> std::io::Result<Simulator> {
        let state = Arc::new(SimState::new(config));
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let revenue = Arc::new(revenue::RevenueSim::default());
        let app = router(Arc::clone(&state)).merge(revenue::router(Arc::clone(&revenue)));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "simulator stopped");
            }
        });
        Ok(Simulator {
            addr,
            state,
            revenue,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The simulator's routes.
pub fn router(state: Arc<SimState>) -> Router {
    let zuora = Router::new()
        .route("/oauth/token", post(handlers::token))
        .route("/v1/action/create", post(handlers::action_create))
        .route("/v1/action/query", post(handlers::action_query))
        .route("/v1/action/queryMore", post(handlers::action_query_more))
        .route("/v1/object/usage", post(handlers::object_usage_create))
        .route(
            "/v1/object/usage/{id}",
            get(handlers::object_usage_get)
                .put(handlers::object_usage_update)
                .delete(handlers::object_usage_delete),
        )
        .route("/v1/usage", post(handlers::usage_import))
        .route("/v1/usage/{id}/status", get(handlers::usage_import_status))
        .route("/v1/object/import/{id}", get(handlers::import_get))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), gate::gate));
    let admin = Router::new()
        .route("/sim/records", get(records))
        .route("/sim/imports", get(imports))
        .route("/sim/counters", get(counters))
        .route("/sim/faults", axum::routing::put(set_faults))
        .route("/sim/config", get(get_config).put(set_config))
        .route("/sim/expire-tokens", post(expire_tokens))
        .route("/sim/process", post(process))
        .route("/sim/reset", post(reset));
    zuora
        .merge(admin)
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(state)
}

async fn records(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(sim.lock().records))
}

async fn imports(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(sim.lock().imports))
}

async fn counters(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(sim.lock().counters))
}

async fn set_faults(State(sim): State<Arc<SimState>>, Json(faults): Json<Faults>) -> Json<Value> {
    sim.lock().set_faults(faults);
    Json(json!({ "ok": true }))
}

async fn get_config(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!(sim.lock().config))
}

async fn set_config(State(sim): State<Arc<SimState>>, Json(config): Json<SimConfig>) -> Json<Value> {
    sim.lock().config = config;
    Json(json!({ "ok": true }))
}

async fn expire_tokens(State(sim): State<Arc<SimState>>) -> Json<Value> {
    let mut inner = sim.lock();
    let expired = inner.tokens.len();
    inner.tokens.clear();
    Json(json!({ "expired": expired }))
}

async fn process(State(sim): State<Arc<SimState>>) -> Json<Value> {
    let mut inner = sim.lock();
    let mut processed = 0;
    for record in inner.records.iter_mut().filter(|r| r.status == "Pending") {
        record.status = "Processed".into();
        processed += 1;
    }
    Json(json!({ "processed": processed }))
}

async fn reset(State(sim): State<Arc<SimState>>) -> Json<Value> {
    let mut inner = sim.lock();
    inner.clear_records();
    inner.imports.clear();
    inner.idempotent.clear();
    inner.tokens.clear();
    inner.counters = Counters::default();
    Json(json!({ "ok": true }))
}
