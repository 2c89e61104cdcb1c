//! The Zuora endpoints the usage connectors use.

use std::io::{Cursor, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::state::{Import, SimState, UsageRecord};
use crate::validation::usage_from_json;
use crate::zoql;

fn track_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("Zuora-Track-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn bad_request(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "success": false, "errors": [{ "code": code, "message": message }] })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
}

pub async fn token(State(sim): State<Arc<SimState>>, Form(form): Form<TokenForm>) -> Response {
    let mut inner = sim.lock();
    let valid = form.grant_type.as_deref() == Some("client_credentials")
        && form.client_id.as_deref() == Some(inner.config.client_id.as_str())
        && form.client_secret.as_deref() == Some(inner.config.client_secret.as_str());
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "Invalid client credentials" })),
        )
            .into_response();
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let ttl = inner.config.token_ttl_secs;
    inner
        .tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": "entity.1a2b3c4d user.5e6f7a8b",
        "jti": uuid::Uuid::new_v4().simple().to_string(),
    }))
    .into_response()
}

pub async fn action_create(State(sim): State<Arc<SimState>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    if !kind.eq_ignore_ascii_case("usage") {
        return bad_request(
            "INVALID_TYPE",
            &format!("type `{kind}` is not supported by the simulator"),
        );
    }
    let Some(objects) = body.get("objects").and_then(Value::as_array) else {
        return bad_request("MISSING_REQUIRED_VALUE", "objects is required");
    };
    if objects.len() > 50 {
        return bad_request("LIMIT_EXCEEDED", "at most 50 objects per call");
    }
    let track = track_id(&headers);
    let mut inner = sim.lock();
    let results: Vec<Value> = objects
        .iter()
        .map(|object| {
            let empty = Map::new();
            let object = object.as_object().unwrap_or(&empty);
            match usage_from_json(&mut inner, object, "API") {
                Ok(mut record) => {
                    record.track_id = track.clone();
                    let id = record.id.clone();
                    inner.store(record);
                    json!({ "Success": true, "Id": id })
                }
                Err(refusal) => {
                    json!({ "Success": false, "Errors": [{ "Code": refusal.action_code, "Message": refusal.message }] })
                }
            }
        })
        .collect();
    Json(Value::Array(results)).into_response()
}

pub async fn object_usage_create(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let empty = Map::new();
    let object = body.as_object().unwrap_or(&empty);
    let mut inner = sim.lock();
    match usage_from_json(&mut inner, object, "API") {
        Ok(mut record) => {
            record.track_id = track_id(&headers);
            let id = record.id.clone();
            inner.store(record);
            Json(json!({ "Success": true, "Id": id })).into_response()
        }
        Err(refusal) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "success": false, "reasons": [{ "code": refusal.rest_code.to_string(), "message": refusal.message }] })),
        )
            .into_response(),
    }
}

fn record_json(record: &UsageRecord) -> Value {
    json!({
        "Id": record.id,
        "AccountId": record.account_id,
        "AccountNumber": record.account_number,
        "UOM": record.uom,
        "Quantity": record.quantity,
        "StartDateTime": record.start_date_time,
        "EndDateTime": record.end_date_time,
        "Description": record.description,
        "SubscriptionNumber": record.subscription_number,
        "ChargeNumber": record.charge_number,
        "RbeStatus": record.status,
        "SourceType": record.source,
    })
}

pub async fn object_usage_get(State(sim): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let inner = sim.lock();
    match inner.records.iter().find(|r| r.id == id) {
        Some(record) => Json(record_json(record)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "success": false, "reasons": [{ "code": "53100040", "message": "usage not found" }] })),
        )
            .into_response(),
    }
}

pub async fn object_usage_delete(State(sim): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let mut inner = sim.lock();
    match inner.records.iter().position(|r| r.id == id) {
        Some(index) if inner.records[index].status == "Pending" => {
            inner.remove(index);
            Json(json!({ "id": id, "success": true })).into_response()
        }
        Some(_) => bad_request("53100030", "Only usage records in Pending status can be deleted"),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "success": false, "reasons": [{ "code": "53100040", "message": "usage not found" }] })),
        )
            .into_response(),
    }
}

pub async fn action_query(State(sim): State<Arc<SimState>>, Json(body): Json<Value>) -> Response {
    let Some(query) = body.get("queryString").and_then(Value::as_str) else {
        return bad_request("MISSING_REQUIRED_VALUE", "queryString is required");
    };
    let inner = sim.lock();
    match zoql::run(&inner, query) {
        Ok(records) => Json(json!({ "done": true, "size": records.len(), "records": records })).into_response(),
        Err(message) => bad_request("INVALID_VALUE", &message),
    }
}

pub async fn usage_import(State(sim): State<Arc<SimState>>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("usage.csv").to_string();
            match field.bytes().await {
                Ok(bytes) => file = Some((name, bytes.to_vec())),
                Err(e) => return bad_request("INVALID_VALUE", &format!("cannot read the file: {e}")),
            }
        }
    }
    let Some((name, bytes)) = file else {
        return bad_request("MISSING_REQUIRED_VALUE", "multipart field `file` is required");
    };
    if name.chars().count() > 50 {
        return bad_request("INVALID_VALUE", "The file name must not exceed 50 characters");
    }
    if bytes.len() > 4 * 1024 * 1024 {
        return bad_request("INVALID_VALUE", "The file must not exceed 4 MB");
    }
    let size = bytes.len();
    let (id, delay) = {
        let mut inner = sim.lock();
        let id = inner.new_id();
        inner.imports.push(Import {
            id: id.clone(),
            name: name.clone(),
            status: "Pending".into(),
            status_reason: None,
            total_count: 0,
            imported_count: 0,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        (id, inner.config.import_delay_ms)
    };
    let track = track_id(&headers);
    let worker = Arc::clone(&sim);
    let import_id = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        process_import(&worker, &import_id, &name, &bytes, track);
    });
    Json(json!({ "success": true, "size": size, "checkImportStatus": format!("/v1/usage/{id}/status") }))
        .into_response()
}

/// All or nothing, as Zuora's import: one refused row fails the whole file.
fn process_import(sim: &SimState, id: &str, name: &str, bytes: &[u8], track: Option<String>) {
    let mut inner = sim.lock();
    let outcome = csv_of(name, bytes).and_then(|csv| {
        let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_slice());
        let headers = reader.headers().map_err(|e| e.to_string())?.clone();
        let start = inner.records.len();
        let mut total = 0;
        for (line, row) in reader.records().enumerate() {
            let row = row.map_err(|e| e.to_string())?;
            total += 1;
            let mut object = Map::new();
            for (header, value) in headers.iter().zip(row.iter()) {
                let key = match header {
                    "UnitOfMeasure" => "UOM",
                    other => other,
                };
                if !value.is_empty() {
                    object.insert(key.to_string(), Value::String(value.to_string()));
                }
            }
            match usage_from_json(&mut inner, &object, "Import") {
                Ok(mut record) => {
                    record.import_id = Some(id.to_string());
                    record.track_id = track.clone();
                    inner.store(record);
                }
                Err(refusal) => {
                    inner.truncate(start);
                    return Err(format!("line {}: {}", line + 2, refusal.message));
                }
            }
        }
        Ok(total)
    });
    if let Some(import) = inner.imports.iter_mut().find(|i| i.id == id) {
        match outcome {
            Ok(total) => {
                import.status = "Completed".into();
                import.total_count = total;
                import.imported_count = total;
            }
            Err(reason) => {
                import.status = "Failed".into();
                import.status_reason = Some(reason);
            }
        }
    }
}

fn csv_of(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !(name.to_ascii_lowercase().ends_with(".zip") || bytes.starts_with(b"PK")) {
        return Ok(bytes.to_vec());
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    if archive.len() != 1 {
        return Err("a ZIP file must hold exactly one CSV file".into());
    }
    let mut entry = archive.by_index(0).map_err(|e| e.to_string())?;
    let mut csv = Vec::new();
    entry.read_to_end(&mut csv).map_err(|e| e.to_string())?;
    Ok(csv)
}

fn import_json(import: &Import) -> Value {
    json!({
        "Id": import.id,
        "Name": import.name,
        "ImportType": "Usage",
        "Status": import.status,
        "StatusReason": import.status_reason,
        "TotalCount": import.total_count,
        "ImportedCount": import.imported_count,
        "CreatedDate": import.created,
    })
}

pub async fn import_get(State(sim): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let inner = sim.lock();
    match inner.imports.iter().find(|i| i.id == id) {
        Some(import) => Json(import_json(import)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "success": false, "reasons": [{ "code": "50000040", "message": "import not found" }] })),
        )
            .into_response(),
    }
}

pub async fn usage_import_status(State(sim): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    let inner = sim.lock();
    match inner.imports.iter().find(|i| i.id == id) {
        Some(import) => Json(json!({
            "success": true,
            "importStatus": import.status,
            "message": import.status_reason,
            "importedCount": import.imported_count,
            "totalCount": import.total_count,
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "success": false }))).into_response(),
    }
}
