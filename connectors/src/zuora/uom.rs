//! ZOQL queries (`POST /v1/action/query`), and the tenant's units of measure through them.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::service::{ApiRequest, RequestBody, ZuoraService};
use crate::error::Result;

/// Runs a ZOQL query; returns its records. A read, so it carries no Idempotency-Key (a
/// replayed answer could be stale).
pub async fn zoql(service: &ZuoraService, query: &str) -> Result<Vec<Value>> {
    let request = ApiRequest {
        method: reqwest::Method::POST,
        path: "/v1/action/query".into(),
        body: RequestBody::Json(json!({ "queryString": query })),
        idempotency_key: None,
    };
    let response = service.call(&request).await?;
    if !(200..300).contains(&response.status) {
        return Err(service.api_error(&request, &response));
    }
    Ok(response
        .body
        .get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Active units of measure, upper-cased (Zuora compares them case-insensitively).
pub async fn fetch_units_of_measure(service: &ZuoraService) -> Result<BTreeSet<String>> {
    let records = zoql(service, "select Name from UnitOfMeasure where Active = true").await?;
    Ok(records
        .iter()
        .filter_map(|r| r.get("Name").and_then(Value::as_str))
        .map(str::to_ascii_uppercase)
        .collect())
}
