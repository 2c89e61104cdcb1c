//! The middleware every `/v1` and `/oauth` request passes: rate and concurrency limits with
//! Zuora's headers, bearer-token auth, Idempotency-Key replay, and injected faults.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::config::Fault;
use crate::state::{SimState, StoredResponse};

const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A response whose body fails after the headers: the client's read of it errors, as when a
/// connection drops.
fn dropped() -> Response {
    let stream =
        futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped")) });
    Response::new(Body::from_stream(stream))
}

fn error_body(code: u32, message: &str) -> serde_json::Value {
    json!({ "success": false, "reasons": [{ "code": code.to_string(), "message": message }] })
}

fn throttled(headers: &[(&'static str, String)]) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(error_body(50_000_070, "Too many requests")),
    )
        .into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

struct InFlight(Arc<SimState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn gate(State(sim): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let is_oauth = path == "/oauth/token";
    let endpoint = format!("{} {}", request.method(), normalise(&path));
    let track_id = request.headers().get("Zuora-Track-Id").cloned();

    // Limits, auth and the fault, decided under one lock.
    let (fault, latency, remaining, reset, limit, concurrency) = {
        let mut inner = sim.lock();
        inner.counters.requests += 1;
        *inner.counters.by_endpoint.entry(endpoint.clone()).or_default() += 1;
        if is_oauth {
            inner.counters.token_requests += 1;
        }
        let limit = inner.config.rate_limit_per_minute;
        let (remaining, reset) = match inner.take_rate() {
            Ok(ok) => ok,
            Err(reset) => {
                inner.counters.throttled += 1;
                return throttled(&[
                    ("RateLimit-Limit", format!("{limit};w=60")),
                    ("RateLimit-Remaining", "0".into()),
                    ("RateLimit-Reset", reset.to_string()),
                    ("Retry-After", reset.to_string()),
                ]);
            }
        };
        let concurrency = inner.config.concurrency_limit;
        if !is_oauth && inner.in_flight >= concurrency {
            inner.counters.throttled += 1;
            return throttled(&[
                ("Concurrency-Limit-Type", "Default".into()),
                ("Concurrency-Limit-Limit", concurrency.to_string()),
                ("Concurrency-Limit-Remaining", "0".into()),
                ("Retry-After", "1".into()),
            ]);
        }
        if !is_oauth {
            let authorized = bearer(request.headers()).is_some_and(|t| inner.token_valid(t));
            if !authorized {
                inner.counters.unauthorized += 1;
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "message": "Authentication error" })),
                )
                    .into_response();
            }
        }
        let fault = if is_oauth && !inner.faults.include_oauth {
            Fault::None
        } else {
            inner.next_fault()
        };
        if fault == Fault::Unauthorized {
            inner.tokens.clear();
            inner.counters.unauthorized += 1;
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "message": "Authentication error" })),
            )
                .into_response();
        }
        (fault, inner.faults.latency_ms, remaining, reset, limit, concurrency)
    };
    sim.lock().in_flight += 1;
    let in_flight = InFlight(Arc::clone(&sim));

    // Idempotency: replay a stored answer; refuse a concurrent duplicate.
    let idempotency = match (request.method(), request.headers().get("Idempotency-Key")) {
        (&Method::POST, Some(key)) => Some(format!("{endpoint}#{}", String::from_utf8_lossy(key.as_bytes()))),
        _ => None,
    };
    if let Some(key) = &idempotency {
        let mut inner = sim.lock();
        if let Some(stored) = inner.idempotent.get(key).cloned() {
            inner.counters.idempotent_replays += 1;
            drop(inner);
            return finish(replay(stored), &track_id, remaining, reset, limit, concurrency);
        }
        if !inner.in_flight_keys.insert(key.clone()) {
            inner.counters.idempotency_conflicts += 1;
            return (
                StatusCode::CONFLICT,
                axum::Json(error_body(
                    50_000_030,
                    "A request with this Idempotency-Key is in progress",
                )),
            )
                .into_response();
        }
    }
    // A server finishes what it started even when the client goes away: the rest runs in its
    // own task, so a client killed mid-request cannot leave a half-processed request (or an
    // Idempotency-Key stuck "in flight").
    let worker = Arc::clone(&sim);
    let task = tokio::spawn(async move {
        let _in_flight = in_flight;
        let sim = worker;
        let release = |sim: &SimState| {
            if let Some(key) = &idempotency {
                sim.lock().in_flight_keys.remove(key);
            }
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        match fault {
            Fault::ServerError => {
                sim.lock().counters.server_errors += 1;
                release(&sim);
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(error_body(50_000_061, "Service temporarily unavailable")),
                )
                    .into_response();
            }
            Fault::Throttle => {
                sim.lock().counters.throttled += 1;
                release(&sim);
                return throttled(&[
                    ("RateLimit-Limit", format!("{limit};w=60")),
                    ("RateLimit-Remaining", "0".into()),
                    ("RateLimit-Reset", "1".into()),
                    ("Retry-After", "1".into()),
                ]);
            }
            Fault::DropBefore => {
                sim.lock().counters.dropped_before += 1;
                release(&sim);
                return dropped();
            }
            Fault::DropAfter | Fault::None | Fault::Unauthorized => {}
        }
        let response = next.run(request).await;
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
        if let Some(key) = &idempotency {
            let mut inner = sim.lock();
            if parts.status.as_u16() < 500 && parts.status != StatusCode::TOO_MANY_REQUESTS {
                inner.idempotent.insert(
                    key.clone(),
                    StoredResponse {
                        status: parts.status.as_u16(),
                        body: body.to_vec(),
                    },
                );
            }
            inner.in_flight_keys.remove(key);
        }
        if fault == Fault::DropAfter {
            sim.lock().counters.dropped_after += 1;
            return dropped();
        }
        finish(
            Response::from_parts(parts, Body::from(body)),
            &track_id,
            remaining,
            reset,
            limit,
            concurrency,
        )
    });
    task.await.unwrap_or_else(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(error_body(50_000_060, "simulator task failed")),
        )
            .into_response()
    })
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn finish(
    mut response: Response,
    track_id: &Option<HeaderValue>,
    remaining: u64,
    reset: u64,
    limit: u64,
    concurrency: u64,
) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("RateLimit-Limit", format!("{limit};w=60"));
    set("RateLimit-Remaining", remaining.to_string());
    set("RateLimit-Reset", reset.to_string());
    set("Concurrency-Limit-Type", "Default".into());
    set("Concurrency-Limit-Limit", concurrency.to_string());
    set("Zuora-Request-Id", request_id());
    if let Some(track) = track_id {
        headers.insert("Zuora-Track-Id", track.clone());
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

/// `/v1/object/usage/8a8…` → `/v1/object/usage/{id}`, for counters.
fn normalise(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.len() >= 16 && part.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                "{id}"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
