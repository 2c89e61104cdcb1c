//! The tenant's units of measure, through ZOQL.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::service::{ApiRequest, RequestBody, ZuoraService};
use crate::error::Result;

/// Active units of measure, upper-cased (Zuora compares them case-insensitively).
pub async fn fetch_units_of_measure(service: &ZuoraService) -> Result<BTreeSet<String>> {
    let request = ApiRequest {
        method: reqwest::Method::POST,
        path: "/v1/action/query".into(),
        body: RequestBody::Json(json!({ "queryString": "select Name from UnitOfMeasure where Active = true" })),
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
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("Name").and_then(Value::as_str))
        .map(str::to_ascii_uppercase)
        .collect())
}
