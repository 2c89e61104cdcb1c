//! HTTP to Zuora Revenue: the token (legacy authenticate or OneID OAuth), the upload, status
//! and mapping calls, each through the one retry policy of [`crate::http::retry`].
//!
//! What docs/zuora.md ("Zuora Revenue") documents and this follows:
//! - legacy: `POST /api/integration/v1/authenticate`, `Authorization: Basic`, headers `role`
//!   and `clientname`; the token comes back in a response header and goes out in `token`;
//!   valid 30 minutes, 401 once expired. The header's name is *unconfirmed* by Zuora's docs:
//!   `Revpro-Token` is read, then `token`.
//! - OneID: client credentials at `oauth_url`, sent as a bearer token (and in `token`, which
//!   the upload operations list as required).
//! - upload: `POST /api/integration/v1/upload/file`, headers `token` and `templatename`,
//!   multipart field `file`. It is never repeated once it may have reached Revenue (no
//!   duplicate detection, no undo); a 429 or a connection never made carried nothing.
//! - status: `GET /api/integration/v1/fileupload/status/{file_request_id}`; 204 while there
//!   is no status yet.
//! - mapping: `GET /api/integration/v1/upload/mapping?templatename=…` → `Dateformat`,
//!   `Mapping[]` of `label`, `col_name`, `data_type`, `seq`.
//! - at most 2 upload requests in parallel per tenant: [`upload_slots`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::debug;

use super::config::{RevenueAuth, ZuoraRevenueConfig};
use crate::error::{ConnectorError, Result};
use crate::http::driver::{Answered, Authenticated, Ended, Refused, Request, Service, with_retries, with_token};
use crate::http::exchange::exchange;
use crate::http::{RetryPolicy, Token, TokenCache};

/// Revenue's documented token lifetime.
const TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Renew this long before a token would expire.
const RENEW_LEAD: Duration = Duration::from_secs(5 * 60);
/// Revenue's documented limit of upload requests in parallel per tenant.
pub const UPLOADS_PER_TENANT: usize = 2;

/// The upload slots of the tenant at `base_url`, shared by every sync of this process.
pub fn upload_slots(base_url: &str) -> Arc<Semaphore> {
    static SLOTS: OnceLock<std::sync::Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut slots = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(
        slots
            .entry(base_url.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(UPLOADS_PER_TENANT))),
    )
}

/// A call to Revenue.
#[derive(Debug, Clone)]
pub enum RevenueCall {
    /// Upload one CSV through `template`.
    Upload {
        template: String,
        name: String,
        bytes: Vec<u8>,
        /// `async=true`: a partial upload, answered `202`.
        asynchronous: bool,
    },
    /// The status of a synchronous upload.
    Status { request_id: String },
    /// The status of an asynchronous upload.
    AsyncStatus { id: String },
    /// The rows an asynchronous upload rejected.
    AsyncErrors { id: String },
    /// A template's columns and date format.
    Mapping { template: String },
}

impl RevenueCall {
    fn path(&self) -> String {
        match self {
            RevenueCall::Upload { .. } => "/api/integration/v1/upload/file".into(),
            RevenueCall::Status { request_id } => format!("/api/integration/v1/fileupload/status/{request_id}"),
            RevenueCall::AsyncStatus { id } => format!("/api/integration/v1/upload/file/status/{id}"),
            RevenueCall::AsyncErrors { id } => format!("/api/integration/v1/upload/file/error/{id}"),
            RevenueCall::Mapping { .. } => "/api/integration/v1/upload/mapping".into(),
        }
    }

    fn method(&self) -> &'static str {
        match self {
            RevenueCall::Upload { .. } => "POST",
            _ => "GET",
        }
    }

    /// Reads may be repeated; an upload may not.
    fn idempotent(&self) -> bool {
        !matches!(self, RevenueCall::Upload { .. })
    }
}

/// A final answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Answer {
    /// The text field `key` of the body, whatever its case (`status`, `Status`); empty when
    /// there is none.
    pub fn text(&self, key: &str) -> String {
        self.body
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// Revenue's `message` (or `Message`), with `status` when it has one.
    pub fn message(&self) -> String {
        let text = |key: &str| {
            ["message", "Message", "status", "Status"]
                .iter()
                .filter(|k| k.eq_ignore_ascii_case(key))
                .find_map(|k| self.body.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        };
        match (text("message"), text("status")) {
            (Some(message), Some(status)) => format!("{status}: {message}"),
            (Some(message), None) => message,
            (None, Some(status)) => status,
            (None, None) if self.body.is_null() => format!("HTTP {} with no body", self.status),
            (None, None) => self.body.to_string(),
        }
    }
}

/// The token the requests carry: Revenue's legacy token or a OneID bearer token.
impl Authenticated for RevenueService {
    type Error = ConnectorError;

    fn tokens(&self) -> &TokenCache {
        &self.token
    }

    async fn fetch_token(&self) -> Result<Token> {
        self.authenticate().await
    }
}

/// The retry loop's hooks: Revenue documents no pacing and no temporary codes.
impl Service for RevenueService {
    fn destination(&self) -> &str {
        &self.destination
    }

    fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

/// The HTTP side of one `zuora_revenue` destination.
pub struct RevenueService {
    destination: String,
    config: ZuoraRevenueConfig,
    base_url: String,
    client: reqwest::Client,
    policy: RetryPolicy,
    token: TokenCache,
}

impl std::fmt::Debug for RevenueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevenueService")
            .field("destination", &self.destination)
            .field("base_url", &self.base_url)
            .field("auth", &self.config.auth())
            .finish()
    }
}

impl RevenueService {
    /// A service for an api-mode `config` (already validated).
    pub fn new(destination: &str, config: &ZuoraRevenueConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("dinmo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::Client {
                destination: destination.to_string(),
                message: e.to_string(),
            })?;
        Ok(RevenueService {
            destination: destination.to_string(),
            config: config.clone(),
            base_url: config.base_url().unwrap_or_default(),
            client,
            policy: RetryPolicy::zuora(config.max_attempts),
            token: TokenCache::default(),
        })
    }

    /// The Revenue host.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A valid token, fetched or renewed as needed.
    pub async fn token(&self) -> Result<String> {
        self.token.get(|| self.authenticate()).await
    }

    async fn authenticate(&self) -> Result<Token> {
        let (url, answer, headers) = match self.config.auth() {
            RevenueAuth::Basic => {
                let url = format!("{}/api/integration/v1/authenticate", self.base_url);
                let user = self.config.username.clone().unwrap_or_default();
                let password = self.config.password.as_ref().map(|p| p.expose().to_string());
                let role = self.config.role.clone().unwrap_or_default();
                let clientname = self.config.clientname.clone().unwrap_or_default();
                // Asking for a token has no second effect, so it may be repeated.
                let sent = with_retries(self, Request::token(&url), || {
                    let builder = self
                        .client
                        .post(&url)
                        .basic_auth(&user, password.as_deref())
                        .header("role", &role)
                        .header("clientname", &clientname);
                    exchange(builder, "revenue_token_received")
                })
                .await;
                self.auth_answer(&url, sent)?
            }
            RevenueAuth::Oauth => {
                let url = self.config.oauth_url().to_string();
                let id = self.config.client_id.clone().unwrap_or_default();
                let secret = self
                    .config
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .unwrap_or_default();
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                ];
                let sent = with_retries(self, Request::token(&url), || {
                    exchange(self.client.post(&url).form(&form), "revenue_token_received")
                })
                .await;
                self.auth_answer(&url, sent)?
            }
        };
        let from_header = ["Revpro-Token", "token"]
            .iter()
            .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
            .map(str::to_string);
        let from_body = answer
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (value, lifetime) = match self.config.auth() {
            RevenueAuth::Basic => (from_header, TOKEN_LIFETIME),
            RevenueAuth::Oauth => {
                let seconds = answer.body.get("expires_in").and_then(Value::as_f64).unwrap_or(3600.0);
                (from_body, Duration::from_secs_f64(seconds.max(1.0)))
            }
        };
        let value = value.filter(|v| !v.is_empty()).ok_or_else(|| ConnectorError::Auth {
            destination: self.destination.clone(),
            url: url.clone(),
            status: answer.status,
            message: match self.config.auth() {
                RevenueAuth::Basic => "the answer carries no token (no Revpro-Token or token header)".into(),
                RevenueAuth::Oauth => "the answer carries no access_token".into(),
            },
        })?;
        let lead = RENEW_LEAD.min(lifetime / 6);
        debug!(destination = %self.destination, "Revenue token obtained");
        Ok(Token {
            value,
            renew_at: Instant::now() + lifetime.saturating_sub(lead),
        })
    }

    fn auth_answer(
        &self,
        url: &str,
        sent: std::result::Result<Answered, Ended>,
    ) -> Result<(String, Answer, HeaderMap)> {
        let Answered { status, headers, body } = match sent {
            Ok(answer) => answer,
            Err(Ended::Unauthorized(body)) => {
                return Err(ConnectorError::Auth {
                    destination: self.destination.clone(),
                    url: url.to_string(),
                    status: 401,
                    message: Answer { status: 401, body }.message(),
                });
            }
            Err(Ended::Failed(gave_up)) => return Err(ConnectorError::exhausted(&self.destination, gave_up)),
        };
        let answer = Answer { status, body };
        if !(200..300).contains(&status) {
            return Err(ConnectorError::Auth {
                destination: self.destination.clone(),
                url: url.to_string(),
                status,
                message: answer.message(),
            });
        }
        Ok((url.to_string(), answer, headers))
    }

    fn request(&self, call: &RevenueCall, url: &str, token: &str) -> reqwest::RequestBuilder {
        let mut builder = match call {
            RevenueCall::Upload { asynchronous: true, .. } => self.client.post(url).query(&[("async", "true")]),
            RevenueCall::Upload { .. } => self.client.post(url),
            RevenueCall::Mapping { template } => self.client.get(url).query(&[("templatename", template)]),
            RevenueCall::Status { .. } | RevenueCall::AsyncStatus { .. } | RevenueCall::AsyncErrors { .. } => {
                self.client.get(url)
            }
        }
        .header("token", token);
        if self.config.auth() == RevenueAuth::Oauth {
            builder = builder.bearer_auth(token);
        }
        match call {
            RevenueCall::Upload {
                template, name, bytes, ..
            } => {
                let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone());
                // `mime_str` fails only on a malformed type; `text/csv` is well formed.
                let part = match part.mime_str("text/csv") {
                    Ok(part) => part,
                    Err(_) => reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
                };
                builder
                    .header("templatename", template)
                    .multipart(reqwest::multipart::Form::new().part("file", part))
            }
            _ => builder,
        }
    }

    /// Sends `call` through the retry policy; a refused token is renewed once. Returns the
    /// final answer, 2xx or a refusal the caller reads.
    pub async fn call(&self, call: &RevenueCall) -> Result<Answer> {
        let url = format!("{}{}", self.base_url, call.path());
        let point = match call {
            RevenueCall::Upload { .. } => "revenue_upload_answered",
            _ => "revenue_answer_received",
        };
        let request = Request {
            method: call.method(),
            url: &url,
            idempotent: call.idempotent(),
        };
        let sent = with_token(self, request, |token| exchange(self.request(call, &url, &token), point)).await;
        match sent {
            Ok(answer) => Ok(Answer {
                status: answer.status,
                body: answer.body,
            }),
            Err(Refused::Token(error)) => Err(error),
            Err(Refused::Ended(Ended::Failed(gave_up))) => Err(ConnectorError::exhausted(&self.destination, gave_up)),
            Err(Refused::Ended(Ended::Unauthorized(body))) => Err(ConnectorError::Auth {
                destination: self.destination.clone(),
                url,
                status: 401,
                message: Answer { status: 401, body }.message(),
            }),
        }
    }

    /// Turns a final non-2xx answer into an error.
    pub fn api_error(&self, call: &RevenueCall, answer: &Answer) -> ConnectorError {
        ConnectorError::Api {
            destination: self.destination.clone(),
            method: call.method().into(),
            url: format!("{}{}", self.base_url, call.path()),
            status: answer.status,
            code: String::new(),
            message: answer.message(),
        }
    }
}

/// Where an upload answer names its request id. *Unconfirmed* by Zuora's docs (the SDK
/// models show `result.file_request_id`); every plausible place is read.
pub fn request_id(body: &Value) -> Option<String> {
    let candidates = [
        body.pointer("/result/file_request_id"),
        body.pointer("/Result/file_request_id"),
        body.pointer("/Result/0/file_request_id"),
        body.pointer("/result/0/file_request_id"),
        body.get("file_request_id"),
        body.get("request_id"),
        // An asynchronous upload's record.
        body.get("id"),
    ];
    candidates.into_iter().flatten().find_map(|value| match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// What an asynchronous upload's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncStatus {
    /// `In Progress` (or no status yet).
    Pending,
    /// Settled: `Successfully Uploaded` (`Success: n Failed: 0`) or `Error in Upload` with
    /// `Success: n Failed: m`.
    Settled { succeeded: u64, failed: u64 },
    /// `Successfully Uploaded` without counts: every row taken.
    Staged,
    /// `Error in Upload` without counts (`No metadata found for the API upload`): nothing
    /// was taken.
    Failed(String),
}

/// Reads an asynchronous status answer (docs/zuora.md, "Asynchronous upload").
pub fn async_status(answer: &Answer) -> AsyncStatus {
    if answer.status == 204 {
        return AsyncStatus::Pending;
    }
    let (status, message) = (answer.text("status").to_ascii_lowercase(), answer.text("message"));
    let count = |label: &str| -> Option<u64> {
        let at = message.find(label)? + label.len();
        message[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let counts = count("Success:").zip(count("Failed:"));
    if status.contains("success") || status.contains("error") || status.contains("fail") {
        return match counts {
            Some((succeeded, failed)) => AsyncStatus::Settled { succeeded, failed },
            None if status.contains("success") => AsyncStatus::Staged,
            None => AsyncStatus::Failed(answer.message()),
        };
    }
    AsyncStatus::Pending
}

/// The rows an errors answer lists, each the file's columns plus `error_message`: one
/// `{"data": [rows]}` object per line (read as an array of them), or one object; `{"error":
/// "File not found"}` lists none. `None` when the answer is none of these.
pub fn rejected_rows(body: &Value) -> Option<Vec<serde_json::Map<String, Value>>> {
    let lines: Vec<&Value> = match body {
        Value::Array(lines) => lines.iter().collect(),
        Value::Object(object) if object.contains_key("error") && !object.contains_key("data") => {
            return Some(Vec::new());
        }
        Value::Object(_) => vec![body],
        _ => return None,
    };
    let mut rows = Vec::new();
    for line in lines {
        for row in line.get("data")?.as_array()? {
            rows.push(row.as_object()?.clone());
        }
    }
    Some(rows)
}

/// What a status answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStatus {
    /// No status yet (204), or still being processed.
    Pending,
    /// The batch is in the staging tables.
    Staged,
    /// The batch failed whole, with Revenue's message (and file log).
    Failed(String),
}

/// Reads a status answer. Documented: 204 while no status exists, and
/// `{"Result":[{file_log, file_request_id}], "message": "Data Staged Successfully", "status":
/// "Success"}` once staged. How a failure reads is *unconfirmed*: a `status` other than
/// Success (Failed, Failure, Error), or a message saying it failed, counts as failed; any
/// other answer as still pending.
pub fn upload_status(answer: &Answer) -> UploadStatus {
    if answer.status == 204 {
        return UploadStatus::Pending;
    }
    let (status, message) = (
        answer.text("status").to_ascii_lowercase(),
        answer.text("message").to_ascii_lowercase(),
    );
    let failed = ["fail", "error", "reject"]
        .iter()
        .any(|w| status.contains(w) || message.contains(w));
    if failed {
        let log = answer
            .body
            .pointer("/Result/0/file_log")
            .and_then(Value::as_str)
            .map(|log| format!(" ({log})"))
            .unwrap_or_default();
        return UploadStatus::Failed(format!("{}{log}", answer.message()));
    }
    if status == "success" && message.contains("staged") {
        UploadStatus::Staged
    } else {
        UploadStatus::Pending
    }
}

/// A template as the mapping call describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMapping {
    /// `Dateformat`.
    pub date_format: Option<String>,
    /// Every column `label`.
    pub labels: Vec<String>,
}

/// Reads a mapping answer: `Dateformat` and `Mapping[].label`, at the top or under
/// `result`/`Result`.
pub fn template_mapping(body: &Value) -> TemplateMapping {
    let root = ["result", "Result"]
        .iter()
        .find_map(|k| body.get(*k).filter(|v| v.is_object()))
        .unwrap_or(body);
    let find = |key: &str| {
        root.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
            .map(|(_, v)| v)
    };
    let labels = find("Mapping")
        .and_then(Value::as_array)
        .map(|columns| {
            let mut columns: Vec<(i64, String)> = columns
                .iter()
                .filter_map(|c| {
                    let label = c.get("label").and_then(Value::as_str)?.to_string();
                    Some((c.get("seq").and_then(Value::as_i64).unwrap_or(i64::MAX), label))
                })
                .collect();
            columns.sort();
            columns.into_iter().map(|(_, label)| label).collect()
        })
        .unwrap_or_default();
    TemplateMapping {
        date_format: find("Dateformat").and_then(Value::as_str).map(str::to_string),
        labels,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_answers_read_as_documented() {
        let answer = |status, body| Answer { status, body };
        assert_eq!(upload_status(&answer(204, Value::Null)), UploadStatus::Pending);
        let staged = json!({"Result": [{"file_log": "ok", "file_request_id": 7}], "message": "Data Staged Successfully", "status": "Success"});
        assert_eq!(upload_status(&answer(200, staged)), UploadStatus::Staged);
        let failed = json!({"Result": [{"file_log": "row 3: bad date", "file_request_id": 7}], "message": "Data Staging Failed", "status": "Failure"});
        let UploadStatus::Failed(why) = upload_status(&answer(200, failed)) else {
            panic!("a failure")
        };
        assert!(why.contains("row 3: bad date"), "{why}");
        let busy = json!({"message": "In Progress", "status": "Success"});
        assert_eq!(upload_status(&answer(200, busy)), UploadStatus::Pending);
    }

    #[test]
    fn asynchronous_statuses_and_rejected_rows_read_as_documented() {
        let status = |body: Value| async_status(&Answer { status: 200, body });
        assert_eq!(
            status(json!({"status": "In Progress", "message": "Data Received"})),
            AsyncStatus::Pending
        );
        assert_eq!(
            status(json!({"status": "Successfully Uploaded", "message": "Success: 2480 Failed: 0"})),
            AsyncStatus::Settled {
                succeeded: 2480,
                failed: 0
            }
        );
        assert_eq!(
            status(json!({"status": "Error in Upload", "message": "Success: 2480 Failed: 20"})),
            AsyncStatus::Settled {
                succeeded: 2480,
                failed: 20
            }
        );
        assert_eq!(status(json!({"status": "Successfully Uploaded"})), AsyncStatus::Staged);
        assert!(matches!(
            status(json!({"status": "Error in Upload", "message": "No metadata found for the API upload"})),
            AsyncStatus::Failed(_)
        ));
        assert_eq!(
            request_id(&json!({"id": 77, "file_name": "f.csv"})).as_deref(),
            Some("77")
        );
        let lines = json!([{"data": [{"Quantity": "x", "error_message": "bad"}]}, {"data": [{"Quantity": "y"}]}]);
        assert_eq!(rejected_rows(&lines).map(|r| r.len()), Some(2));
        assert_eq!(rejected_rows(&json!({"error": "File not found"})), Some(Vec::new()));
        assert_eq!(rejected_rows(&Value::Null), None);
    }

    #[test]
    fn request_ids_and_mappings_are_found_where_they_may_be() {
        assert_eq!(
            request_id(&json!({"result": {"file_request_id": 12}})).as_deref(),
            Some("12")
        );
        assert_eq!(
            request_id(&json!({"Result": [{"file_request_id": "9"}]})).as_deref(),
            Some("9")
        );
        assert_eq!(request_id(&json!({"message": "File received successfully"})), None);
        let mapping = template_mapping(&json!({
            "Dateformat": "DD-MON-YYYY",
            "Mapping": [{"label": "Quantity", "seq": 2}, {"label": "SO Line ID", "seq": 1}]
        }));
        assert_eq!(mapping.labels, ["SO Line ID", "Quantity"]);
        assert_eq!(mapping.date_format.as_deref(), Some("DD-MON-YYYY"));
    }
}
