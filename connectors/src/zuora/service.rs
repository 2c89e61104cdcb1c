//! HTTP to Zuora: OAuth tokens, pacing, concurrency, and every request through the one retry
//! policy of [`crate::http::retry`], which classifies each answer as done, retry (after the
//! kind of wait Zuora's headers ask for), re-authenticate, or give up.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::config::{Secret, ZuoraConfig};
use super::errors::{messages, reasons, success_flag, temporary};
use crate::error::{ConnectorError, Result};
use crate::http::driver::{Authenticated, Ended, Event, Refused, Request, Service, with_retries, with_token};
use crate::http::exchange::{Exchange, exchange};
use crate::http::{RetryPolicy, Token, TokenCache};

/// A request body.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// None.
    Empty,
    /// JSON, serialised once (a retry sends the same bytes).
    Json(bytes::Bytes),
    /// A usage file as multipart field `file`.
    File { name: String, bytes: Vec<u8> },
}

impl RequestBody {
    /// `value` as a JSON body.
    pub fn json(value: &Value) -> Self {
        RequestBody::Json(value.to_string().into())
    }
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
    /// Idempotency-Key (required for POSTs that create).
    pub idempotency_key: Option<String>,
    /// A read sent as a POST (a ZOQL query): safe to repeat without a key.
    pub read_only: bool,
}

impl ApiRequest {
    /// A request with no body and no key.
    pub fn new(method: reqwest::Method, path: impl Into<String>) -> Self {
        ApiRequest {
            method,
            path: path.into(),
            body: RequestBody::Empty,
            idempotency_key: None,
            read_only: false,
        }
    }

    /// Whether repeating the request can have no second effect: GET and DELETE (a 404 after a
    /// lost answer means deleted), PUT (dinmo's set a record's fields to given values, which
    /// setting again changes nothing; RFC 9110, section 9.2.2), reads, and POSTs with an
    /// Idempotency-Key.
    pub fn idempotent(&self) -> bool {
        match self.method {
            reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::DELETE | reqwest::Method::PUT => true,
            _ => self.read_only || self.idempotency_key.is_some(),
        }
    }
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
pub type TokenSlot = Arc<TokenCache>;

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
    policy: RetryPolicy,
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

/// The token the requests carry: an OAuth client-credentials token, shared by the
/// destination's services.
impl Authenticated for ZuoraService {
    type Error = ConnectorError;

    fn tokens(&self) -> &TokenCache {
        &self.token
    }

    async fn fetch_token(&self) -> Result<Token> {
        self.request_token().await
    }
}

/// The retry loop's hooks: the configured pace, the request counters, and Zuora's temporary
/// error codes.
impl Service for ZuoraService {
    fn destination(&self) -> &str {
        &self.destination
    }

    fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    async fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.until_ready().await;
        }
    }

    fn observe(&self, event: Event) {
        let counter = match event {
            Event::Sent => &self.stats.requests,
            Event::Throttled => &self.stats.throttled,
            Event::Retrying => &self.stats.retries,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn temporary(&self, body: &Value) -> Option<String> {
        temporary(body)
    }
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
            policy: RetryPolicy::zuora(config.max_attempts),
            stats: Arc::new(RequestStats::default()),
        })
    }

    /// The destination's name, for errors and logs.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A valid bearer token, fetched or refreshed as needed.
    pub async fn token(&self) -> Result<String> {
        self.token.get(|| self.request_token()).await
    }

    async fn request_token(&self) -> Result<Token> {
        let url = format!("{}/oauth/token", self.base_url);
        self.stats.tokens.fetch_add(1, Ordering::Relaxed);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        let sent = with_retries(self, Request::token(&url), || {
            self.exchange(self.client.post(&url).headers(self.common_headers()).form(&form))
        })
        .await;
        let (status, body) = match sent {
            Ok(answer) => (answer.status, answer.body),
            Err(Ended::Unauthorized(body)) => return Err(self.auth_error(&url, 401, &messages(&body))),
            Err(Ended::Failed(gave_up)) => return Err(ConnectorError::exhausted(&self.destination, gave_up)),
        };
        if !(200..300).contains(&status) {
            let message = messages(&body);
            return Err(self.auth_error(&url, status, &message));
        }
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if value.is_empty() {
            return Err(self.auth_error(&url, status, "the token response has no access_token"));
        }
        let expires_in = body
            .get("expires_in")
            .and_then(Value::as_f64)
            .unwrap_or(3600.0)
            .max(1.0);
        // Refresh a little before Zuora would refuse it.
        let lead = (expires_in * 0.1).clamp(1.0, 60.0);
        let renew_at = Instant::now() + Duration::from_secs_f64((expires_in - lead).max(0.5));
        Ok(Token { value, renew_at })
    }

    /// One attempt: sends and reads the whole answer. An answer lost after Zuora may have
    /// stored the record is safe to retry only under the Idempotency-Key.
    async fn exchange(&self, builder: reqwest::RequestBuilder) -> Exchange {
        exchange(builder, "zuora_answer_received").await
    }

    fn auth_error(&self, url: &str, status: u16, message: &str) -> ConnectorError {
        ConnectorError::Auth {
            destination: self.destination.clone(),
            url: url.to_string(),
            status,
            message: message.to_string(),
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

    /// Sends `request` through the retry policy. Returns the final answer (2xx or a refusal,
    /// whose reasons the caller maps to rows); a refused token is renewed once.
    pub async fn call(&self, request: &ApiRequest) -> Result<ApiResponse> {
        let url = format!("{}{}", self.base_url, request.path);
        let method = request.method.to_string();
        let attempt = Request {
            method: &method,
            url: &url,
            idempotent: request.idempotent(),
        };
        // A slot of `concurrency` is held only while a request is on the wire: a request
        // waiting out a backoff leaves its slot to the others (Zuora counts requests in
        // flight, not requests waiting).
        let sent = with_token(self, attempt, |token| {
            let url = &url;
            async move {
                match self.permits.acquire().await {
                    Ok(_permit) => self.exchange(self.request_builder(request, url, &token)).await,
                    Err(closed) => Exchange::NotSent(closed.to_string()),
                }
            }
        })
        .await;
        match sent {
            Ok(answer) => Ok(ApiResponse {
                status: answer.status,
                body: answer.body,
            }),
            Err(Refused::Token(error)) => Err(error),
            Err(Refused::Ended(Ended::Failed(gave_up))) => Err(ConnectorError::exhausted(&self.destination, gave_up)),
            Err(Refused::Ended(Ended::Unauthorized(body))) => Err(self.auth_error(&url, 401, &messages(&body))),
        }
    }

    fn request_builder(&self, request: &ApiRequest, url: &str, token: &str) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .headers(self.common_headers())
            .bearer_auth(token);
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        match &request.body {
            RequestBody::Empty => builder,
            RequestBody::Json(json) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json.clone()),
            RequestBody::File { name, bytes } => {
                // POST_Usage takes a CSV file with a .csv extension (the import never zips).
                let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone());
                // `mime_str` only fails on a malformed type; `text/csv` is well formed.
                let part = match part.mime_str("text/csv") {
                    Ok(part) => part,
                    Err(_) => reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
                };
                builder.multipart(reqwest::multipart::Form::new().part("file", part))
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
}
