//! A Zuora Revenue (RevPro) usage upload simulator, beside the Billing one and written from
//! `docs/zuora.md` ("Zuora Revenue") and the Revenue API reference it cites, not from
//! dinmo's connector. Each behaviour names the fact it implements:
//! - **legacy authentication** (docs/zuora.md, "Zuora Revenue": Authentication (legacy)): `POST
//!   /api/integration/v1/authenticate` with `Authorization: Basic`, `role` and `clientname`;
//!   the body carries no token, the token comes back in the `Revpro-Token` response header
//!   (*unconfirmed* header name: the one seen in client code) and is read from the `token`
//!   request header; valid 30 minutes (`token_ttl_secs`), 401 once expired;
//! - **OneID OAuth** (docs/zuora.md, "Zuora Revenue": Newer tenants): `POST /oauth2/token` client credentials, a
//!   bearer token;
//! - **template mapping** (docs/zuora.md, "Zuora Revenue": Template): `GET /api/integration/v1/upload/mapping?
//!   templatename=…` → `Dateformat` and `Mapping[]` (`label`, `col_name`, `data_type`, `seq`);
//! - **upload** (docs/zuora.md, "Zuora Revenue": Upload): `POST /api/integration/v1/upload/file`, headers `token`,
//!   `templatename`, multipart `file`; answered `{"message": "File received successfully",
//!   "status": "Success"}` (the documented sample) plus `result.file_request_id` (*unconfirmed*:
//!   where the id comes back; the SDK models show `result.file_request_id`);
//! - **status** (docs/zuora.md, "Zuora Revenue": Status): `GET /api/integration/v1/fileupload/status/{id}` → 204 while
//!   no status exists (`polls_before_status` polls, and `staged_after_ms` after the upload),
//!   then `Result[{file_log, file_request_id}]`, `message` "Data Staged Successfully",
//!   `status` "Success"; a failed
//!   batch answers `status` "Failure" with the reason (*unconfirmed* wording);
//! - **whole batches** (docs/zuora.md, "Zuora Revenue": a batch is accepted or failed whole): one bad line fails the
//!   whole upload, nothing of it is staged;
//! - **two uploads in parallel per tenant** (docs/zuora.md, "Zuora Revenue": Limits): a third concurrent upload is
//!   answered 429 (*unconfirmed*: the status Revenue uses) and counted;
//! - **no duplicate detection** (docs/zuora.md, "Zuora Revenue"): the same file uploaded twice is staged twice, which
//!   `/sim/revenue/staged` shows.
//! - **asynchronous uploads** (docs/zuora.md, "Zuora Revenue": Asynchronous upload; Revenue API
//!   reference, File Upload, operations uploadfiles, getasyncuploadfilestatus,
//!   getasyncuploadfileerrors): `POST …/upload/file?async=true` answers `202` with
//!   `{"id", "file_name"}`, takes up to 500,000 records, and is partial: valid records are
//!   staged, records of a wrong type or format are rejected. `GET
//!   /api/integration/v1/upload/file/status/{id}` → `status` `In Progress` (message `Data
//!   Received`), `Successfully Uploaded` (`Success: <n> Failed: 0`) or `Error in Upload`
//!   (`Success: <n> Failed: <m>`, or `No metadata found for the API upload` for a batch that
//!   failed whole); `GET /api/integration/v1/upload/file/error/{id}` → newline-delimited JSON,
//!   each line `{"data": [rows]}`, each row the CSV's columns plus `error_message`, at most
//!   `chunk_size` rows a line; `{"error": "File not found"}` when nothing was rejected; 204 for
//!   an unknown id. *Unconfirmed*: the status answer's field names (`id`, `file_name`,
//!   `status`, `message` here), and whether values in the error rows come back as text (here:
//!   as the CSV had them).
//!
//! Faults: 503 before the upload is read (`upload_unavailable`), the connection dropped after
//! the upload was received and stored (`drop_after_receipt`), batches failed on purpose
//! (`fail_batches`), tokens expired while an upload was read (`expire_tokens_after_upload`),
//! an asynchronous status whose counts do not add up to the file (`miscount_async`), rejected
//! rows listed with values other than the file's (`reword_rejected`).
//! `/sim/revenue/*`: `GET uploads`, `GET staged`, `GET counters`,
//! `PUT config`, `PUT faults`, `POST expire-tokens`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The mandatory columns of "RevPro Usage Upload" (docs/zuora.md).
pub const MANDATORY: [&str; 7] = [
    "SO Line ID",
    "Usage Amount",
    "Unit Price",
    "Quantity",
    "DD_Rev_Segments",
    "Sub Product",
    "TRX_DATE",
];

/// One template column as the mapping call returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateColumn {
    pub label: String,
    pub col_name: String,
    /// `VARCHAR2`, `NUMBER` or `DATE`.
    pub data_type: String,
}

/// An upload template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// `Dateformat` (default `DD-MON-YYYY`).
    pub date_format: String,
    pub columns: Vec<TemplateColumn>,
}

impl Template {
    /// "RevPro Usage Upload" with the mandatory columns and `extra` text columns.
    pub fn usage(extra: &[&str]) -> Self {
        let column = |label: &str, data_type: &str| TemplateColumn {
            label: label.into(),
            col_name: label.to_ascii_uppercase().replace(' ', "_"),
            data_type: data_type.into(),
        };
        let mut columns: Vec<TemplateColumn> = MANDATORY
            .iter()
            .map(|label| {
                let kind = match *label {
                    "Usage Amount" | "Unit Price" | "Quantity" => "NUMBER",
                    "TRX_DATE" => "DATE",
                    _ => "VARCHAR2",
                };
                column(label, kind)
            })
            .collect();
        columns.extend(extra.iter().map(|label| column(label, "VARCHAR2")));
        Template {
            date_format: "DD-MON-YYYY".into(),
            columns,
        }
    }
}

/// A Revenue tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RevenueConfig {
    pub username: String,
    pub password: String,
    pub role: String,
    pub clientname: String,
    pub client_id: String,
    pub client_secret: String,
    /// Token lifetime; Revenue documents 30 minutes.
    pub token_ttl_secs: u64,
    pub templates: HashMap<String, Template>,
    /// Status polls answered 204 before the outcome.
    pub polls_before_status: u32,
    /// And for at least this long after the upload was received (a slow tenant; lets a test
    /// make polling outlast a short token whatever the client's backoff draws).
    pub staged_after_ms: u64,
    /// How long an upload request takes (so concurrency can be observed).
    pub upload_delay_ms: u64,
}

impl Default for RevenueConfig {
    fn default() -> Self {
        RevenueConfig {
            username: "revpro-api".into(),
            password: "revpro-password".into(),
            role: "Revpro API Role".into(),
            clientname: "Default".into(),
            client_id: "revenue-client".into(),
            client_secret: "revenue-secret".into(),
            token_ttl_secs: 30 * 60,
            templates: HashMap::from([("RevPro Usage Upload".to_string(), Template::usage(&["Customer Name"]))]),
            polls_before_status: 1,
            staged_after_ms: 0,
            upload_delay_ms: 0,
        }
    }
}

/// Injected faults, each a count of uploads it applies to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RevenueFaults {
    /// Answer 503 without reading the upload.
    pub upload_unavailable: u32,
    /// Store the upload, then drop the connection before the answer.
    pub drop_after_receipt: u32,
    /// Fail the batch whole at staging.
    pub fail_batches: u32,
    /// Expire every token once the upload is received (as a 30-minute token does during a
    /// long upload): the next call is answered 401.
    pub expire_tokens_after_upload: u32,
    /// Settle an asynchronous upload (staging every valid row) but count one row fewer taken
    /// in its status than it staged: counts that do not add up to the file, whatever the
    /// cause.
    pub miscount_async: u32,
    /// List an asynchronous upload's rejected rows with every value echoed otherwise than the
    /// file had it (a space after it): Revenue does not document that it echoes values as they
    /// were sent.
    pub reword_rejected: u32,
}

/// One received upload.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub file_request_id: u64,
    pub file_name: String,
    pub template: String,
    pub lines: usize,
    /// `received`, `staged` or `failed`.
    pub status: String,
    pub message: String,
    #[serde(skip)]
    polls: u32,
    #[serde(skip)]
    received_at: Instant,
    #[serde(skip)]
    verdict: Result<(), String>,
    #[serde(skip)]
    rows: Vec<HashMap<String, String>>,
    /// Sent with `async=true`: staged partially.
    pub asynchronous: bool,
    /// Asynchronous: the rows refused, each with its reason.
    #[serde(skip)]
    rejected: Vec<(HashMap<String, String>, String)>,
}

/// What the simulator counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RevenueCounters {
    pub authentications: u64,
    pub uploads: u64,
    pub refused_for_concurrency: u64,
    pub max_parallel_uploads: usize,
    pub status_calls: u64,
    pub unauthorized: u64,
}

#[derive(Debug, Default)]
struct Inner {
    config: RevenueConfig,
    faults: RevenueFaults,
    tokens: HashMap<String, Instant>,
    uploads: Vec<Upload>,
    staged: Vec<HashMap<String, String>>,
    in_flight: usize,
    counters: RevenueCounters,
}

impl Inner {
    /// Counts a status call for upload `id` (an asynchronous one only, with `asynchronous`):
    /// its index and whether its outcome is ready (polled often and long enough, as
    /// configured); `None` when there is no such upload.
    fn poll(&mut self, id: u64, asynchronous: bool) -> Option<(usize, bool)> {
        self.counters.status_calls += 1;
        let wait = self.config.polls_before_status;
        let slow = Duration::from_millis(self.config.staged_after_ms);
        let index = self
            .uploads
            .iter()
            .position(|u| u.file_request_id == id && (u.asynchronous || !asynchronous))?;
        let upload = &mut self.uploads[index];
        upload.polls += 1;
        Some((index, upload.polls > wait && upload.received_at.elapsed() >= slow))
    }
}

/// The Revenue simulator's state.
#[derive(Debug, Default)]
pub struct RevenueSim {
    inner: Mutex<Inner>,
}

impl RevenueSim {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rows staged so far (a duplicate upload shows twice).
    pub fn staged(&self) -> Vec<HashMap<String, String>> {
        self.lock().staged.clone()
    }

    /// Every upload received, in order (Revenue's Uploaded Files list).
    pub fn uploads(&self) -> Vec<Upload> {
        self.lock().uploads.clone()
    }

    /// What was counted.
    pub fn counters(&self) -> RevenueCounters {
        self.lock().counters.clone()
    }

    /// Replaces the tenant's configuration.
    pub fn configure(&self, config: RevenueConfig) {
        self.lock().config = config;
    }

    /// Expires every token now (the next call with one is answered 401).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: RevenueFaults) {
        self.lock().faults = faults;
    }
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message, "status": "Failure" }))).into_response()
}

/// The token of a request: the `token` header, or a bearer token. `Err` is the 401.
fn authorised(sim: &RevenueSim, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
    let mut inner = sim.lock();
    let valid = [header("token"), bearer].into_iter().flatten().any(|token| {
        inner
            .tokens
            .get(&token)
            .is_some_and(|expires| *expires > Instant::now())
    });
    if valid {
        return Ok(());
    }
    inner.counters.unauthorized += 1;
    // docs/zuora.md: "Valid 30 minutes by default; 401 when expired."
    Err(Box::new(failure(StatusCode::UNAUTHORIZED, "Invalid or expired token")))
}

fn issue_token(inner: &mut Inner) -> (String, u64) {
    let token = format!("rev-{}", uuid::Uuid::new_v4().simple());
    let ttl = inner.config.token_ttl_secs;
    inner
        .tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    inner.counters.authentications += 1;
    (token, ttl)
}

async fn authenticate(State(sim): State<Arc<RevenueSim>>, headers: HeaderMap) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let basic = header("authorization")
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let mut inner = sim.lock();
    let c = &inner.config;
    let expected = format!("{}:{}", c.username, c.password);
    if basic != expected || header("role") != c.role || header("clientname") != c.clientname {
        return failure(StatusCode::UNAUTHORIZED, "Authentication failed");
    }
    let (token, _) = issue_token(&mut inner);
    // docs/zuora.md: the body carries no token; it comes back in a response header.
    (
        [("Revpro-Token", token)],
        Json(json!({ "message": "Authentication Successful", "status": "Success" })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

async fn oauth_token(State(sim): State<Arc<RevenueSim>>, Form(form): Form<TokenForm>) -> Response {
    let mut inner = sim.lock();
    if form.grant_type != "client_credentials"
        || form.client_id != inner.config.client_id
        || form.client_secret != inner.config.client_secret
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" }))).into_response();
    }
    let (token, ttl) = issue_token(&mut inner);
    Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": ttl })).into_response()
}

#[derive(Debug, Deserialize)]
struct MappingQuery {
    templatename: String,
}

async fn mapping(
    State(sim): State<Arc<RevenueSim>>,
    headers: HeaderMap,
    Query(query): Query<MappingQuery>,
) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let inner = sim.lock();
    let Some(template) = inner.config.templates.get(&query.templatename) else {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("Template {} not found", query.templatename),
        );
    };
    let columns: Vec<Value> = template
        .columns
        .iter()
        .enumerate()
        .map(|(seq, c)| json!({ "label": c.label, "col_name": c.col_name, "data_type": c.data_type, "seq": seq + 1 }))
        .collect();
    Json(json!({ "Dateformat": template.date_format, "Mapping": columns, "status": "Success" })).into_response()
}

/// Holds one of the tenant's upload slots while an upload is being read.
struct Slot(Arc<RevenueSim>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

/// Records a Consumption upload may carry when sent asynchronously (docs/zuora.md).
const ASYNC_MAX_RECORDS: usize = 500_000;

async fn upload(
    State(sim): State<Arc<RevenueSim>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let asynchronous = query.get("async").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let (delay, unavailable) = {
        let mut inner = sim.lock();
        // docs/zuora.md: "at most 2 upload requests in parallel per tenant".
        if inner.in_flight >= 2 {
            inner.counters.refused_for_concurrency += 1;
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "At most 2 file uploads may run in parallel",
            );
        }
        inner.in_flight += 1;
        inner.counters.max_parallel_uploads = inner.counters.max_parallel_uploads.max(inner.in_flight);
        let unavailable = inner.faults.upload_unavailable > 0;
        if unavailable {
            inner.faults.upload_unavailable -= 1;
        }
        (inner.config.upload_delay_ms, unavailable)
    };
    let _slot = Slot(Arc::clone(&sim));
    if unavailable {
        return failure(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable");
    }
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let template_name = headers
        .get("templatename")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (file_name, bytes) = match read_file(multipart).await {
        Ok(file) => file,
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let mut inner = sim.lock();
    let Some(template) = inner.config.templates.get(&template_name).cloned() else {
        return failure(StatusCode::BAD_REQUEST, &format!("Template {template_name} not found"));
    };
    let (rows, verdict) = match parse(&template, &bytes) {
        Ok(parsed) => parsed,
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    if asynchronous && rows.len() > ASYNC_MAX_RECORDS {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("At most {ASYNC_MAX_RECORDS} records per file in async mode"),
        );
    }
    let verdict = if inner.faults.fail_batches > 0 {
        inner.faults.fail_batches -= 1;
        Err(match asynchronous {
            true => "No metadata found for the API upload".to_string(),
            false => "Batch failed: staging rejected the file (injected)".to_string(),
        })
    } else if asynchronous {
        // Partial: every row is checked on its own.
        Ok(())
    } else {
        verdict
    };
    let rejected: Vec<(HashMap<String, String>, String)> = match asynchronous {
        true => rows
            .iter()
            .filter_map(|row| check_row(&template, row).err().map(|why| (row.clone(), why)))
            .collect(),
        false => Vec::new(),
    };
    inner.counters.uploads += 1;
    let file_request_id = 1000 + inner.uploads.len() as u64;
    inner.uploads.push(Upload {
        file_request_id,
        file_name,
        template: template_name,
        lines: rows.len(),
        status: "received".into(),
        message: String::new(),
        polls: 0,
        received_at: Instant::now(),
        verdict,
        rows,
        asynchronous,
        rejected,
    });
    if inner.faults.expire_tokens_after_upload > 0 {
        inner.faults.expire_tokens_after_upload -= 1;
        inner.tokens.clear();
    }
    if inner.faults.drop_after_receipt > 0 {
        inner.faults.drop_after_receipt -= 1;
        return crate::gate::dropped();
    }
    if asynchronous {
        let name = inner.uploads.last().map(|u| u.file_name.clone()).unwrap_or_default();
        return (
            StatusCode::ACCEPTED,
            Json(json!({ "id": file_request_id, "file_name": name })),
        )
            .into_response();
    }
    Json(json!({
        "message": "File received successfully",
        "status": "Success",
        "result": { "file_request_id": file_request_id }
    }))
    .into_response()
}

async fn read_file(mut multipart: Multipart) -> Result<(String, Vec<u8>), String> {
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("upload.csv").to_string();
            let bytes = field.bytes().await.map_err(|e| e.to_string())?;
            return Ok((name, bytes.to_vec()));
        }
    }
    Err("multipart field `file` is missing".into())
}

/// Reads the CSV against the template: an unknown or missing mandatory label refuses the
/// upload; a value of the wrong type fails the whole batch at staging.
#[allow(clippy::type_complexity)]
fn parse(template: &Template, bytes: &[u8]) -> Result<(Vec<HashMap<String, String>>, Result<(), String>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string())?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    for label in &headers {
        if !template.columns.iter().any(|c| &c.label == label) {
            return Err(format!("Column {label} is not in the template"));
        }
    }
    for label in MANDATORY {
        if !headers.iter().any(|h| h == label) {
            return Err(format!("Mandatory column {label} is missing"));
        }
    }
    let mut rows = Vec::new();
    let mut verdict = Ok(());
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| e.to_string())?;
        let row: HashMap<String, String> = headers.iter().cloned().zip(record.iter().map(str::to_string)).collect();
        if verdict.is_ok()
            && let Err(why) = check_row(template, &row)
        {
            verdict = Err(format!("line {}: {why}", line + 2));
        }
        rows.push(row);
    }
    Ok((rows, verdict))
}

fn check_row(template: &Template, row: &HashMap<String, String>) -> Result<(), String> {
    for column in &template.columns {
        let Some(value) = row.get(&column.label) else { continue };
        if value.is_empty() {
            if MANDATORY.contains(&column.label.as_str()) {
                return Err(format!("{} is mandatory", column.label));
            }
            continue;
        }
        match column.data_type.as_str() {
            "NUMBER" if value.parse::<f64>().is_err() => {
                return Err(format!("{} `{value}` is not a number", column.label));
            }
            "DATE" if !date_matches(&template.date_format, value) => {
                return Err(format!("{} `{value}` is not in {}", column.label, template.date_format));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `DD-MON-YYYY` and the numeric Oracle formats, checked with chrono.
fn date_matches(format: &str, value: &str) -> bool {
    let chrono_format = format
        .to_ascii_uppercase()
        .replace("YYYY", "%Y")
        .replace("MON", "%b")
        .replace("MM", "%m")
        .replace("DD", "%d");
    chrono::NaiveDate::parse_from_str(value, &chrono_format).is_ok()
}

async fn status(State(sim): State<Arc<RevenueSim>>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let mut inner = sim.lock();
    // docs/zuora.md: 204 when the status cannot be retrieved for the id.
    let Some((index, ready)) = inner.poll(id, false) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    if !ready {
        return StatusCode::NO_CONTENT.into_response();
    }
    let upload = &mut inner.uploads[index];
    if upload.status == "received" {
        match upload.verdict.clone() {
            Ok(()) => {
                upload.status = "staged".into();
                upload.message = "Data Staged Successfully".into();
                let rows = upload.rows.clone();
                inner.staged.extend(rows);
            }
            Err(why) => {
                upload.status = "failed".into();
                upload.message = why;
            }
        }
    }
    let upload = &inner.uploads[index];
    let log = json!([{ "file_log": upload.message, "file_request_id": upload.file_request_id }]);
    if upload.status == "staged" {
        Json(json!({ "Result": log, "message": "Data Staged Successfully", "status": "Success" })).into_response()
    } else {
        Json(json!({ "Result": log, "message": format!("Data Staging Failed: {}", upload.message), "status": "Failure" }))
            .into_response()
    }
}

/// `GET /api/integration/v1/upload/file/status/{id}` of an asynchronous upload.
async fn async_status(State(sim): State<Arc<RevenueSim>>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let mut inner = sim.lock();
    let Some((index, ready)) = inner.poll(id, true) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let upload = &mut inner.uploads[index];
    let answer = |upload: &Upload, status: &str, message: &str| {
        Json(json!({ "id": upload.file_request_id, "file_name": upload.file_name, "status": status, "message": message }))
            .into_response()
    };
    if !ready {
        return answer(upload, "In Progress", "Data Received");
    }
    if upload.status == "received" {
        match upload.verdict.clone() {
            Ok(()) => {
                let refused: Vec<&HashMap<String, String>> = upload.rejected.iter().map(|(row, _)| row).collect();
                let mut left = refused.clone();
                let valid: Vec<HashMap<String, String>> = upload
                    .rows
                    .iter()
                    .filter(|row| match left.iter().position(|r| r == row) {
                        Some(at) => {
                            left.remove(at);
                            false
                        }
                        None => true,
                    })
                    .cloned()
                    .collect();
                let refused = refused.len();
                let counted = if inner.faults.miscount_async > 0 {
                    inner.faults.miscount_async -= 1;
                    valid.len().saturating_sub(1)
                } else {
                    valid.len()
                };
                let upload = &mut inner.uploads[index];
                upload.message = format!("Success: {counted} Failed: {refused}");
                upload.status = if refused == 0 { "staged" } else { "partial" }.into();
                inner.staged.extend(valid);
            }
            Err(why) => {
                upload.status = "failed".into();
                upload.message = why;
            }
        }
    }
    let upload = &inner.uploads[index];
    match upload.status.as_str() {
        "staged" => answer(upload, "Successfully Uploaded", &upload.message),
        _ => answer(upload, "Error in Upload", &upload.message),
    }
}

/// `GET /api/integration/v1/upload/file/error/{id}[?chunk_size=N]`: the rejected rows.
async fn async_errors(
    State(sim): State<Arc<RevenueSim>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = authorised(&sim, &headers) {
        return *refused;
    }
    let mut inner = sim.lock();
    let reword = inner.faults.reword_rejected > 0;
    let Some(upload) = inner.uploads.iter().find(|u| u.file_request_id == id && u.asynchronous) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    if upload.rejected.is_empty() {
        return Json(json!({ "error": "File not found" })).into_response();
    }
    let echo = |value: &String| if reword { format!("{value} ") } else { value.clone() };
    let chunk = query
        .get("chunk_size")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(1000)
        .max(1);
    let lines: Vec<String> = upload
        .rejected
        .chunks(chunk)
        .map(|rows| {
            let data: Vec<Value> = rows
                .iter()
                .map(|(row, why)| {
                    let mut object: serde_json::Map<String, Value> =
                        row.iter().map(|(k, v)| (k.clone(), Value::String(echo(v)))).collect();
                    object.insert("error_message".into(), Value::String(why.clone()));
                    Value::Object(object)
                })
                .collect();
            json!({ "data": data }).to_string()
        })
        .collect();
    if reword {
        inner.faults.reword_rejected -= 1;
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        lines.join("\n") + "\n",
    )
        .into_response()
}

async fn uploads(State(sim): State<Arc<RevenueSim>>) -> Json<Value> {
    Json(json!(sim.lock().uploads))
}

async fn staged(State(sim): State<Arc<RevenueSim>>) -> Json<Value> {
    Json(json!(sim.lock().staged))
}

async fn counters(State(sim): State<Arc<RevenueSim>>) -> Json<Value> {
    Json(json!(sim.lock().counters))
}

async fn set_config(State(sim): State<Arc<RevenueSim>>, Json(config): Json<RevenueConfig>) -> Json<Value> {
    sim.lock().config = config;
    Json(json!({ "ok": true }))
}

async fn set_faults(State(sim): State<Arc<RevenueSim>>, Json(faults): Json<RevenueFaults>) -> Json<Value> {
    sim.lock().faults = faults;
    Json(json!({ "ok": true }))
}

async fn expire_tokens(State(sim): State<Arc<RevenueSim>>) -> Json<Value> {
    let mut inner = sim.lock();
    let expired = inner.tokens.len();
    inner.tokens.clear();
    Json(json!({ "expired": expired }))
}

/// The Revenue routes (the API and `/sim/revenue/*`).
pub fn router(sim: Arc<RevenueSim>) -> Router {
    Router::new()
        .route("/api/integration/v1/authenticate", post(authenticate))
        .route("/oauth2/token", post(oauth_token))
        .route("/api/integration/v1/upload/mapping", get(mapping))
        .route("/api/integration/v1/upload/file", post(upload))
        .route("/api/integration/v1/fileupload/status/{id}", get(status))
        .route("/api/integration/v1/upload/file/status/{id}", get(async_status))
        .route("/api/integration/v1/upload/file/error/{id}", get(async_errors))
        .route("/sim/revenue/uploads", get(uploads))
        .route("/sim/revenue/staged", get(staged))
        .route("/sim/revenue/counters", get(counters))
        .route("/sim/revenue/config", put(set_config))
        .route("/sim/revenue/faults", put(set_faults))
        .route("/sim/revenue/expire-tokens", post(expire_tokens))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(sim)
}
