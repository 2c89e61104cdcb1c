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
pub(crate) fn dropped() -> Response {
    let stream =
        futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped")) });
    Response::new(Body::from_stream(stream))
}

fn error_body(code: u32, message: &str) -> serde_json::Value {
    json!({ "success": false, "reasons": [{ "code": code.to_string(), "message": message }] })
}

/// What the limit headers say on one answer. Zuora returns `RateLimit-Limit`,
/// `RateLimit-Remaining` and `RateLimit-Reset` on every response, errors included, and the spec
/// declares `Concurrency-Limit-Type/-Limit/-Remaining` beside them (docs/zuora.md, "Rate and
/// concurrency limits"; the `headers` of nearly every response in `zuora_openapi.yaml`).
#[derive(Debug, Clone, Copy)]
struct Limits {
    rate_limit: u64,
    window_secs: u64,
    rate_remaining: u64,
    reset_secs: u64,
    concurrency_limit: u64,
    concurrency_remaining: u64,
}

impl Limits {
    fn now(inner: &crate::state::Inner) -> Self {
        Limits {
            rate_limit: inner.config.rate_limit_per_minute,
            window_secs: inner.config.rate_limit_window_secs,
            rate_remaining: inner.rate_remaining(),
            reset_secs: inner.seconds_to_reset(),
            concurrency_limit: inner.config.concurrency_limit,
            concurrency_remaining: inner.config.concurrency_limit.saturating_sub(inner.in_flight),
        }
    }
}

/// A 429. From the rate limiter: `RateLimit-Remaining: 0` and `RateLimit-Reset` the seconds
/// left in the window. From the concurrency limiter: `Concurrency-Limit-Remaining: 0` while the
/// window still has room (docs/zuora.md, "Rate and concurrency limits"). Zuora's docs do not say
/// that either carries `Retry-After`, so the simulator sends none.
fn throttled(message: &str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(error_body(50_000_070, message)),
    )
        .into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "message": "Authentication error" })),
    )
        .into_response()
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
    // Latency is the time from a request's arrival to its answer, the simulator's own work
    // inside it (as a remote tenant's work is inside its latency): sleeping first and working
    // after put the simulator's CPU time, on the client's machine, on top of every request.
    let arrived = tokio::time::Instant::now();
    let path = request.uri().path().to_string();
    let is_oauth = path == "/oauth/token";
    let endpoint = format!("{} {}", request.method(), normalise(&path));
    let track_id = request.headers().get("Zuora-Track-Id").cloned();

    // Limits, auth and the fault, decided under one lock.
    let (fault, latency) = {
        let mut inner = sim.lock();
        inner.counters.requests += 1;
        *inner.counters.by_endpoint.entry(endpoint.clone()).or_default() += 1;
        if is_oauth {
            inner.counters.token_requests += 1;
        }
        if inner.take_rate().is_err() {
            inner.counters.throttled += 1;
            let limits = Limits {
                rate_remaining: 0,
                ..Limits::now(&inner)
            };
            return finish(
                throttled("Too many requests: the rate limit window is spent"),
                &track_id,
                limits,
            );
        }
        if !is_oauth && inner.in_flight >= inner.config.concurrency_limit {
            inner.counters.throttled += 1;
            let limits = Limits {
                concurrency_remaining: 0,
                ..Limits::now(&inner)
            };
            return finish(throttled("Too many concurrent requests"), &track_id, limits);
        }
        if !is_oauth {
            let authorized = bearer(request.headers()).is_some_and(|t| inner.token_valid(t));
            if !authorized {
                inner.counters.unauthorized += 1;
                return finish(unauthorized(), &track_id, Limits::now(&inner));
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
            return finish(unauthorized(), &track_id, Limits::now(&inner));
        }
        (fault, inner.faults.latency_ms)
    };
    sim.lock().in_flight += 1;
    let in_flight = InFlight(Arc::clone(&sim));

    // Idempotency (docs/zuora.md, "Idempotency"): a stored answer is replayed for 24 hours; a
    // request with the same key still in flight is answered 409.
    let idempotency = match (request.method(), request.headers().get("Idempotency-Key")) {
        (&Method::POST, Some(key)) => Some(format!("{endpoint}#{}", String::from_utf8_lossy(key.as_bytes()))),
        _ => None,
    };
    if let Some(key) = &idempotency {
        let mut inner = sim.lock();
        if let Some(stored) = inner.idempotent.get(key).cloned() {
            inner.counters.idempotent_replays += 1;
            let limits = Limits::now(&inner);
            return finish(replay(stored), &track_id, limits);
        }
        if !inner.in_flight_keys.insert(key.clone()) {
            inner.counters.idempotency_conflicts += 1;
            let limits = Limits::now(&inner);
            let conflict = (
                StatusCode::CONFLICT,
                axum::Json(error_body(
                    50_000_030,
                    "A request with this Idempotency-Key is in progress",
                )),
            )
                .into_response();
            return finish(conflict, &track_id, limits);
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
        let answer_at = arrived + Duration::from_millis(latency);
        let injected = match fault {
            Fault::ServerError => {
                sim.lock().counters.server_errors += 1;
                Some((
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(error_body(50_000_061, "Service temporarily unavailable")),
                    )
                        .into_response(),
                    None,
                ))
            }
            Fault::Throttle => {
                sim.lock().counters.throttled += 1;
                Some((throttled("Too many concurrent requests"), Some(Fault::Throttle)))
            }
            Fault::RateLimited => {
                sim.lock().counters.throttled += 1;
                Some((
                    throttled("Too many requests: the rate limit window is spent"),
                    Some(Fault::RateLimited),
                ))
            }
            Fault::DropBefore => {
                tokio::time::sleep_until(answer_at).await;
                sim.lock().counters.dropped_before += 1;
                release(&sim);
                return dropped();
            }
            Fault::DropAfter | Fault::None | Fault::Unauthorized => None,
        };
        if let Some((response, kind)) = injected {
            tokio::time::sleep_until(answer_at).await;
            release(&sim);
            let inner = sim.lock();
            let mut limits = Limits::now(&inner);
            match kind {
                Some(Fault::Throttle) => limits.concurrency_remaining = 0,
                Some(Fault::RateLimited) => limits.rate_remaining = 0,
                _ => {}
            }
            return finish(response, &track_id, limits);
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
        tokio::time::sleep_until(answer_at).await;
        if fault == Fault::DropAfter {
            sim.lock().counters.dropped_after += 1;
            return dropped();
        }
        let limits = Limits::now(&sim.lock());
        finish(Response::from_parts(parts, Body::from(body)), &track_id, limits)
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

/// The headers every answer carries (see [`Limits`]), the request id (36 characters, as the
/// spec's `Zuora-Request-Id`), and the caller's `Zuora-Track-Id` echoed back.
fn finish(mut response: Response, track_id: &Option<HeaderValue>, limits: Limits) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(
        "RateLimit-Limit",
        format!("{};w={}", limits.rate_limit, limits.window_secs),
    );
    set("RateLimit-Remaining", limits.rate_remaining.to_string());
    set("RateLimit-Reset", limits.reset_secs.to_string());
    set("Concurrency-Limit-Type", "Default".into());
    set("Concurrency-Limit-Limit", limits.concurrency_limit.to_string());
    set("Concurrency-Limit-Remaining", limits.concurrency_remaining.to_string());
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
