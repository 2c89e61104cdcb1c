//! HTTP to Zuora: OAuth tokens, pacing, concurrency, and retries that classify every answer as
//! done, retry (after the time Zuora asks for), or re-authenticate. Every request dinmo sends
//! is idempotent (POSTs carry an Idempotency-Key), which is what makes retrying safe.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use tracing::{debug, warn};

use super::config::{Secret, ZuoraConfig};
use super::errors::{reasons, retryable_code, success_flag};
use crate::error::{ConnectorError, Result};

/// A request body.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// None.
    Empty,
    /// JSON.
    Json(Value),
    /// A usage file as multipart field `file`.
    File { name: String, bytes: Vec<u8> },
}

/// One API request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path under the base URL, e.g. `/v1/action/create`.
    pub path: String,
    /// Body.
    pub body: RequestBody,
    /// Idempotency-Key (required for POSTs).
    pub idempotency_key: Option<String>,
}

/// A final answer: 2xx, or a 4xx that is not worth retrying (the caller reads its reasons).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

impl ApiResponse {
    /// 2xx, and the body does not say `success: false`.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status) && success_flag(&self.body) != Some(false)
    }
}

/// Request counters, for logs and benchmarks.
#[derive(Debug, Default)]
pub struct RequestStats {
    /// HTTP requests sent (every attempt, tokens included).
    pub requests: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// 429 answers.
    pub throttled: AtomicU64,
    /// Tokens fetched.
    pub tokens: AtomicU64,
}

/// A token shared by every service of one destination, so `connect` and each writer reuse it.
pub type TokenSlot = Arc<Mutex<Option<Token>>>;

/// A cached OAuth token.
#[derive(Debug)]
pub struct Token {
    value: String,
    refresh_at: Instant,
}

/// The HTTP side of the Zuora connector.
pub struct ZuoraService {
    destination: String,
    base_url: String,
    client: reqwest::Client,
    client_id: String,
    client_secret: Secret,
    entity_id: Option<String>,
    zuora_version: Option<String>,
    track_id: String,
    token: TokenSlot,
    pacer: Option<DefaultDirectRateLimiter>,
    permits: Semaphore,
    max_attempts: usize,
    /// Counters.
    pub stats: Arc<RequestStats>,
}

impl std::fmt::Debug for ZuoraService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZuoraService")
            .field("destination", &self.destination)
            .field("base_url", &self.base_url)
            .finish()
    }
}

enum Verdict {
    Done(ApiResponse),
    Retry { after: Option<Duration>, why: String },
    Reauthenticate(String),
}

impl ZuoraService {
    /// A service for `config`, tagging requests with `track_id` (the run id).
    pub fn new(destination: &str, config: &ZuoraConfig, track_id: &str, token: TokenSlot) -> Result<Self> {
        let client_error = |message: String| ConnectorError::Client {
            destination: destination.to_string(),
            message,
        };
        let base_url = config.base_url().ok_or_else(|| client_error("no base URL".into()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(config.concurrency)
            .user_agent(concat!("dinmo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| client_error(e.to_string()))?;
        let pacer = config
            .requests_per_minute
            .and_then(NonZeroU32::new)
            .map(|rpm| RateLimiter::direct(Quota::per_minute(rpm)));
        Ok(ZuoraService {
            destination: destination.to_string(),
            base_url,
            client,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            entity_id: config.entity_id.clone(),
            zuora_version: config.zuora_version.clone(),
            track_id: sanitize_track_id(track_id),
            token,
            pacer,
            permits: Semaphore::new(config.concurrency),
            max_attempts: config.max_attempts,
            stats: Arc::new(RequestStats::default()),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1))
            .build()
    }

    /// A valid bearer token, fetched or refreshed as needed.
    pub async fn token(&self) -> Result<String> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && token.refresh_at > Instant::now()
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    async fn invalidate(&self, stale: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale) {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token> {
        let url = format!("{}/oauth/token", self.base_url);
        let mut delays = self.backoff();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats.tokens.fetch_add(1, Ordering::Relaxed);
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
            ];
            let sent = self
                .client
                .post(&url)
                .headers(self.common_headers())
                .form(&form)
                .send()
                .await;
            let why = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let after = retry_after(response.headers());
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if (200..300).contains(&status) {
                        let value = body
                            .get("access_token")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let expires_in = body
                            .get("expires_in")
                            .and_then(Value::as_f64)
                            .unwrap_or(3600.0)
                            .max(1.0);
                        // Refresh a little before Zuora would refuse it.
                        let lead = (expires_in * 0.1).clamp(1.0, 60.0);
                        let refresh_at = Instant::now() + Duration::from_secs_f64((expires_in - lead).max(0.5));
                        if value.is_empty() {
                            return Err(self.auth_error(&url, status, "the token response has no access_token"));
                        }
                        return Ok(Token { value, refresh_at });
                    }
                    if status == 429 || status >= 500 {
                        if status == 429 {
                            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        match delays.next() {
                            Some(delay) => {
                                tokio::time::sleep(after.unwrap_or(delay)).await;
                                continue;
                            }
                            None => format!("HTTP {status}"),
                        }
                    } else {
                        let message = reasons(&body)
                            .into_iter()
                            .map(|r| r.message)
                            .collect::<Vec<_>>()
                            .join("; ");
                        return Err(self.auth_error(&url, status, &message));
                    }
                }
                Err(error) => match delays.next() {
                    Some(delay) => {
                        debug!(destination = %self.destination, %error, "token request failed; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    None => error.to_string(),
                },
            };
            return Err(ConnectorError::RetriesExhausted {
                destination: self.destination.clone(),
                method: "POST".into(),
                url,
                attempts: attempt,
                last: why,
            });
        }
    }

    fn auth_error(&self, url: &str, status: u16, message: &str) -> ConnectorError {
        ConnectorError::Auth {
            destination: self.destination.clone(),
            url: url.to_string(),
            status,
            message: message.to_string(),
        }
    }

    async fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.until_ready().await;
        }
    }

    fn common_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("Zuora-Track-Id", &self.track_id);
        if let Some(entity) = &self.entity_id {
            set("Zuora-Entity-Ids", entity);
        }
        if let Some(version) = &self.zuora_version {
            set("Zuora-Version", version);
        }
        headers
    }

    /// Sends `request`, retrying what is worth retrying. Returns the final answer (2xx or a
    /// non-retryable 4xx, whose reasons the caller maps to rows).
    pub async fn call(&self, request: &ApiRequest) -> Result<ApiResponse> {
        let url = format!("{}{}", self.base_url, request.path);
        let _permit = self.permits.acquire().await.map_err(|e| ConnectorError::Client {
            destination: self.destination.clone(),
            message: e.to_string(),
        })?;
        let mut delays = self.backoff();
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token().await?;
            self.pace().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let verdict = self.attempt(request, &url, &token).await;
            let (after, why) = match verdict {
                Verdict::Done(response) => return Ok(response),
                Verdict::Reauthenticate(message) => {
                    self.invalidate(&token).await;
                    if reauthenticated {
                        return Err(self.auth_error(&url, 401, &message));
                    }
                    reauthenticated = true;
                    debug!(destination = %self.destination, "token refused; fetching a new one");
                    continue;
                }
                Verdict::Retry { after, why } => (after, why),
            };
            match delays.next() {
                Some(delay) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = after.map_or(delay, |a| a.max(delay.min(Duration::from_secs(1))));
                    warn!(destination = %self.destination, method = %request.method, path = %request.path, attempt, wait_ms = wait.as_millis() as u64, reason = %why, "retrying");
                    tokio::time::sleep(wait).await;
                }
                None => {
                    return Err(ConnectorError::RetriesExhausted {
                        destination: self.destination.clone(),
                        method: request.method.to_string(),
                        url,
                        attempts: attempt,
                        last: why,
                    });
                }
            }
        }
    }

    async fn attempt(&self, request: &ApiRequest, url: &str, token: &str) -> Verdict {
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .headers(self.common_headers())
            .bearer_auth(token);
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        builder = match &request.body {
            RequestBody::Empty => builder,
            RequestBody::Json(value) => builder.json(value),
            RequestBody::File { name, bytes } => {
                let mime = if name.ends_with(".zip") {
                    "application/zip"
                } else {
                    "text/csv"
                };
                match reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(name.clone())
                    .mime_str(mime)
                {
                    Ok(part) => builder.multipart(reqwest::multipart::Form::new().part("file", part)),
                    Err(e) => {
                        return Verdict::Retry {
                            after: None,
                            why: e.to_string(),
                        };
                    }
                }
            }
        };
        let response = match builder.send().await {
            Ok(response) => response,
            // Connect errors, timeouts, resets: safe to retry because the request is idempotent.
            Err(error) => {
                return Verdict::Retry {
                    after: None,
                    why: format!("transport: {error}"),
                };
            }
        };
        crate::failpoint::crash_point("zuora_answer_received");
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            // The answer was lost (e.g. the connection dropped after Zuora stored the record):
            // the Idempotency-Key makes the retry return Zuora's stored answer.
            Err(error) => {
                return Verdict::Retry {
                    after: None,
                    why: format!("reading the answer: {error}"),
                };
            }
        };
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            401 => Verdict::Reauthenticate(
                reasons(&body)
                    .into_iter()
                    .map(|r| r.message)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            429 => {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                Verdict::Retry {
                    after,
                    why: "HTTP 429 (rate or concurrency limit)".into(),
                }
            }
            409 => Verdict::Retry {
                after,
                why: "HTTP 409 (same Idempotency-Key in flight)".into(),
            },
            s if s >= 500 => Verdict::Retry {
                after,
                why: format!("HTTP {s}"),
            },
            _ => {
                let retryable = success_flag(&body) == Some(false)
                    && !reasons(&body).is_empty()
                    && reasons(&body).iter().all(|r| retryable_code(&r.code));
                if retryable {
                    let codes = reasons(&body).into_iter().map(|r| r.code).collect::<Vec<_>>().join(",");
                    Verdict::Retry {
                        after,
                        why: format!("Zuora code {codes} (retryable category)"),
                    }
                } else {
                    Verdict::Done(ApiResponse { status, body })
                }
            }
        }
    }

    /// Turns a final non-2xx answer into an error.
    pub fn api_error(&self, request: &ApiRequest, response: &ApiResponse) -> ConnectorError {
        let reasons = reasons(&response.body);
        ConnectorError::Api {
            destination: self.destination.clone(),
            method: request.method.to_string(),
            url: format!("{}{}", self.base_url, request.path),
            status: response.status,
            code: reasons.first().map(|r| r.code.clone()).unwrap_or_default(),
            message: reasons.into_iter().map(|r| r.message).collect::<Vec<_>>().join("; "),
        }
    }
}

/// Retry-After (seconds or HTTP date) or RateLimit-Reset (seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    seconds("retry-after")
        .or_else(|| seconds("ratelimit-reset"))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(120.0)))
}

/// Zuora-Track-Id: at most 64 ASCII characters, none of `:;"'`.
pub fn sanitize_track_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && !matches!(c, ':' | ';' | '"' | '\''))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_obey_zuoras_rules() {
        assert_eq!(sanitize_track_id("dinmo:run;\"x'é"), "dinmorunx");
        assert_eq!(sanitize_track_id(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn retry_after_reads_seconds_and_ratelimit_reset() {
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-reset", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after", HeaderValue::from_static("1"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(1)));
    }
}
