//! The Zuora endpoints the usage connectors use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::state::{Import, SimState, UsageRecord};
use crate::validation::{modify_usage, usage_from_json};
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

/// `PUT /v1/object/usage/{id}`: a Pending record changes; a Processed one is refused, as it is
/// part of an invoice (docs/zuora.md, "Usage records"). The refusal's code and wording for a
/// Processed record are not documented (*unconfirmed*): the delete's are used.
pub async fn object_usage_update(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let empty = Map::new();
    let object = body.as_object().unwrap_or(&empty);
    let mut inner = sim.lock();
    let Some(index) = inner.records.iter().position(|r| r.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "success": false, "reasons": [{ "code": "53100040", "message": "usage not found" }] })),
        )
            .into_response();
    };
    if inner.records[index].status != "Pending" {
        return bad_request("53100030", "Only usage records in Pending status can be updated");
    }
    let mut record = inner.records[index].clone();
    match modify_usage(&mut record, object) {
        Ok(()) => {
            inner.records[index] = record;
            Json(json!({ "Success": true, "Id": id })).into_response()
        }
        Err(refusal) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "success": false, "reasons": [{ "code": refusal.rest_code.to_string(), "message": refusal.message }] })),
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

/// A ZOQL fault: HTTP 400 with `{FaultCode, FaultMessage}`. The shape is what a public Zuora
/// client's tests record for `invalid field for query: …`; Zuora's spec declares only 200 and
/// 401 for the query operations, so status and shape are *unconfirmed* (docs/zuora.md, "ZOQL").
fn query_fault(fault: zoql::Fault) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "FaultCode": fault.code, "FaultMessage": fault.message })),
    )
        .into_response()
}

/// Every record of `object` by its documented field names (`zoql::Schema::fields`), built one at
/// a time as the query reads them.
fn object_records<'a>(
    inner: &'a crate::state::Inner,
    object: &str,
) -> Box<dyn Iterator<Item = Map<String, Value>> + 'a> {
    let created = json!("2026-01-05T09:00:00.000+00:00");
    match object {
        "UnitOfMeasure" => Box::new({
            let active = inner.config.units_of_measure.iter().map(|u| (u, true));
            let inactive = inner.config.inactive_units_of_measure.iter().map(|u| (u, false));
            active
                .chain(inactive)
                .enumerate()
                .map(|(n, (name, active))| {
                    let json = json!({
                        "Id": format!("8a80{n:028x}"),
                        "Active": active,
                        "DecimalPlaces": 2,
                        "DisplayedAs": name,
                        "RoundingMode": "Up",
                        "UomName": name,
                        "Description": null,
                        "CreatedById": "8a80000000000000000000000000u5e1",
                        "CreatedDate": created,
                        "UpdatedById": "8a80000000000000000000000000u5e1",
                        "UpdatedDate": created,
                    });
                    json.as_object().cloned().unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .into_iter()
        }),
        "Usage" => Box::new(inner.records.iter().map(move |r| {
            let json = json!({
                "Id": r.id,
                "AccountId": r.account_id,
                "AccountNumber": r.account_number,
                "ChargeNumber": r.charge_number,
                "Description": r.description,
                "EndDateTime": r.end_date_time,
                "ImportId": r.import_id,
                "Quantity": r.quantity,
                "RbeStatus": r.status,
                "SourceType": r.source,
                "StartDateTime": r.start_date_time,
                "SubscriptionNumber": r.subscription_number,
                "UOM": r.uom,
                "UniqueKey": r.unique_key,
                "CreatedDate": created,
                "UpdatedDate": created,
            });
            match json {
                Value::Object(map) => map,
                _ => Map::new(),
            }
        })),
        _ => Box::new(std::iter::empty()),
    }
}

/// The first page of `records`; the rest kept under a new `queryLocator` (docs/zuora.md, "ZOQL":
/// at most 2,000 records, then `done: false` and a locator for queryMore).
fn page(inner: &mut crate::state::Inner, mut records: std::collections::VecDeque<Value>) -> Response {
    if records.len() <= zoql::PAGE_SIZE {
        let records: Vec<Value> = records.into();
        return Json(json!({ "done": true, "size": records.len(), "records": records })).into_response();
    }
    // A page off the front; the rest stays where it is (no copy of the rest per page).
    let first: Vec<Value> = records.drain(..zoql::PAGE_SIZE).collect();
    let locator = uuid::Uuid::new_v4().simple().to_string();
    inner.locators.insert(locator.clone(), (records, Instant::now()));
    Json(json!({ "done": false, "size": first.len(), "records": first, "queryLocator": locator })).into_response()
}

/// `POST /v1/action/query` (`ProxyActionqueryRequest` → `ProxyActionqueryResponse`).
pub async fn action_query(State(sim): State<Arc<SimState>>, Json(body): Json<Value>) -> Response {
    let Some(query) = body.get("queryString").and_then(Value::as_str) else {
        return bad_request("MISSING_REQUIRED_VALUE", "queryString is required");
    };
    let mut inner = sim.lock();
    let schema = zoql::Schema {
        usage_unique_key: inner.config.unique_key_queryable,
    };
    let parsed = match zoql::parse(query, &schema) {
        Ok(parsed) => parsed,
        Err(fault) => return query_fault(fault),
    };
    let found: std::collections::VecDeque<Value> = object_records(&inner, &parsed.object)
        .filter(|r| parsed.matches(r))
        .map(|r| parsed.pick(&r))
        .collect();
    page(&mut inner, found)
}

/// `POST /v1/action/queryMore` (`ProxyActionqueryMoreRequest`): the next page of a locator.
/// Locators expire after `query_locator_ttl_secs` unused (docs/zuora.md: 15 minutes of
/// inactivity). The code for an unknown or expired locator is *unconfirmed*.
pub async fn action_query_more(State(sim): State<Arc<SimState>>, Json(body): Json<Value>) -> Response {
    let Some(locator) = body.get("queryLocator").and_then(Value::as_str) else {
        return bad_request("MISSING_REQUIRED_VALUE", "queryLocator is required");
    };
    let mut inner = sim.lock();
    let ttl = Duration::from_secs(inner.config.query_locator_ttl_secs);
    inner.locators.retain(|_, (_, used)| used.elapsed() < ttl);
    let Some((records, _)) = inner.locators.remove(locator) else {
        return query_fault(zoql::Fault {
            code: "INVALID_VALUE",
            message: format!("invalid or expired queryLocator: {locator}"),
        });
    };
    page(&mut inner, records)
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
    // POST_Usage (developer.zuora.com): "a comma-separated (CSV) file with a corresponding
    // .csv extension. The length of the file name must not exceed 50 characters. The file size
    // must not exceed 4MB." The import is atomic and ends Completed, Failed or Canceled.
    if !name.to_ascii_lowercase().ends_with(".csv") {
        return bad_request("INVALID_VALUE", "The usage file must be a .csv file");
    }
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
        process_import(&worker, &import_id, &bytes, track);
    });
    Json(json!({ "success": true, "size": size, "checkImportStatus": format!("/v1/usage/{id}/status") }))
        .into_response()
}

/// All or nothing, as Zuora's import (POST_Usage: "if any record fails, the file is rejected
/// … the entire import is rolled back").
fn process_import(sim: &SimState, id: &str, bytes: &[u8], track: Option<String>) {
    let mut inner = sim.lock();
    let outcome = import_rows(&mut inner, id, bytes, &track);
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

/// The columns of the tenant's usage import layout: Zuora's "Usage file format" (standard:
/// `ACCOUNT_ID`, `UOM`, `QTY`, `STARTDATE` required, the `ENDDATE` header required even when
/// its values are empty, dates in the uploading user's locale — en_US `MM/DD/YYYY` here), or
/// "Usage Data Import" (Active Rating: `AccountNumber`, `Tag`, `UnitOfMeasure`,
/// `StartDateTime`, `Quantity` required, columns in any order). Each column's usage field.
fn import_columns(active_rating: bool) -> (&'static [&'static str], &'static [(&'static str, &'static str)]) {
    if active_rating {
        (
            &["AccountNumber", "Tag", "UnitOfMeasure", "StartDateTime", "Quantity"],
            &[
                ("AccountNumber", "AccountNumber"),
                ("UnitOfMeasure", "UOM"),
                ("StartDateTime", "StartDateTime"),
                ("EndDateTime", "EndDateTime"),
                ("Quantity", "Quantity"),
                ("Description", "Description"),
                ("UniqueKey", "UniqueKey"),
                ("Tag", ""),
                ("GroupId", ""),
            ],
        )
    } else {
        (
            &["ACCOUNT_ID", "UOM", "QTY", "STARTDATE", "ENDDATE"],
            &[
                ("ACCOUNT_ID", "AccountNumber"),
                ("UOM", "UOM"),
                ("QTY", "Quantity"),
                ("STARTDATE", "StartDateTime"),
                ("ENDDATE", "EndDateTime"),
                ("DESCRIPTION", "Description"),
                ("UNIQUE_KEY", "UniqueKey"),
                ("SUBSCRIPTION_ID", ""),
                ("CHARGE_ID", ""),
            ],
        )
    }
}

fn import_rows(inner: &mut crate::state::Inner, id: &str, bytes: &[u8], track: &Option<String>) -> Result<i32, String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let active_rating = inner.config.active_rating;
    let (required, known) = import_columns(active_rating);
    let layout = if active_rating { "Active Rating" } else { "usage file" };
    for header in required {
        if !headers.iter().any(|h| h == *header) {
            return Err(format!(
                "The {layout} format requires the column {header}; the file has {}",
                headers.iter().collect::<Vec<_>>().join(",")
            ));
        }
    }
    if let Some(unknown) = headers
        .iter()
        .find(|h| !(known.iter().any(|(k, _)| k == h) || (active_rating && h.starts_with("CustomFields."))))
    {
        return Err(format!("Unknown column {unknown} in the {layout} format"));
    }
    let start = inner.records.len();
    let mut total = 0;
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| e.to_string())?;
        total += 1;
        let mut object = Map::new();
        for (header, value) in headers.iter().zip(row.iter()) {
            let key = match known.iter().find(|(k, _)| *k == header) {
                Some((_, key)) => *key,
                None if active_rating => header,
                None => continue,
            };
            if key.is_empty() || value.is_empty() {
                continue;
            }
            let value = match (key, active_rating) {
                // The standard layout's dates, in the en_US user's locale, are days.
                ("StartDateTime" | "EndDateTime", false) => {
                    match chrono::NaiveDate::parse_from_str(value, "%m/%d/%Y") {
                        Ok(day) => format!("{day}T00:00:00"),
                        Err(_) => {
                            inner.truncate(start);
                            return Err(format!(
                                "line {}: {header} `{value}` is not a date in the MM/DD/YYYY format",
                                line + 2
                            ));
                        }
                    }
                }
                _ => value.to_string(),
            };
            object.insert(key.to_string(), Value::String(value));
        }
        match usage_from_json(inner, &object, "Import") {
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
}

/// `GET /v1/object/import/{id}` as `ProxyGetImport`: its fields are typed and not nullable in
/// the spec, so a field without a value (`StatusReason` before anything failed) is left out.
fn import_json(import: &Import) -> Value {
    let mut json = json!({
        "Id": import.id,
        "Name": import.name,
        "ImportType": "Usage",
        "Status": import.status,
        "TotalCount": import.total_count,
        "ImportedCount": import.imported_count,
        "CreatedDate": import.created,
    });
    if let (Some(reason), Some(object)) = (&import.status_reason, json.as_object_mut()) {
        object.insert("StatusReason".into(), Value::String(reason.clone()));
    }
    json
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
