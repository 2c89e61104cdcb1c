//! ZOQL queries (`POST /v1/action/query`, then `POST /v1/action/queryMore` until `done`), and
//! every query string dinmo sends, built in one place so a test can check each against the
//! field lists Zuora documents (`docs/zuora.md`, "ZOQL").
//!
//! What Zuora documents and this module follows: field names spelled as documented
//! (`UnitOfMeasure.UomName`; there is no `Name`), keywords in lower case, at most 200
//! conditions in a WHERE clause, at most 2,000 records a page with a `queryLocator` for the
//! rest, and fields whose value is null left out of a record.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::errors::invalid_query_field;
use super::service::{ApiRequest, RequestBody, ZuoraService};
use crate::error::{ConnectorError, Result};

/// Zuora's limit on conditions in one WHERE clause.
pub const MAX_CONDITIONS: usize = 200;

/// The active units of measure.
pub const ACTIVE_UNITS: &str = "select UomName from UnitOfMeasure where Active = true";

/// `select Id, RbeStatus from Usage where ImportId = '…'`: the records of one import.
pub fn records_of_import(import_id: &str) -> String {
    format!(
        "select Id, RbeStatus from Usage where ImportId = {}",
        literal(import_id)
    )
}

/// `select Id, UniqueKey, RbeStatus, Quantity from Usage where UniqueKey = '…' or …`, one
/// query per at most [`MAX_CONDITIONS`] keys.
pub fn usage_by_unique_key(keys: &[String]) -> Vec<String> {
    usage_where("UniqueKey", keys)
}

/// `select Id, UniqueKey, RbeStatus, Quantity from Usage where Id = '…' or …`, one query per
/// at most [`MAX_CONDITIONS`] ids.
pub fn usage_by_id(ids: &[String]) -> Vec<String> {
    usage_where("Id", ids)
}

fn usage_where(field: &str, values: &[String]) -> Vec<String> {
    usage_any_of("Id, UniqueKey, RbeStatus, Quantity", field, values)
}

/// `select <fields> from Usage where <field> = '…' or …`, one query per at most
/// [`MAX_CONDITIONS`] values.
fn usage_any_of(fields: &str, field: &str, values: &[String]) -> Vec<String> {
    values
        .chunks(MAX_CONDITIONS)
        .map(|chunk| {
            let conditions = chunk
                .iter()
                .map(|value| format!("{field} = {}", literal(value)))
                .collect::<Vec<_>>()
                .join(" or ");
            format!("select {fields} from Usage where {conditions}")
        })
        .collect()
}

/// `select Id, RbeStatus, Quantity from Usage where Id = '…' or …`: for a tenant without
/// `UniqueKey` on Usage.
pub fn usage_by_id_without_unique_key(ids: &[String]) -> Vec<String> {
    usage_any_of("Id, RbeStatus, Quantity", "Id", ids)
}

/// A ZOQL string literal: single quotes, with `\` and `'` escaped by a backslash.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// What a query came to.
#[derive(Debug)]
pub enum Answer {
    /// Every record, all pages read.
    Records(Vec<Value>),
    /// Zuora refused a field of the query as invalid (`invalid field for query: X.Y`): this
    /// tenant does not have it.
    InvalidField(String),
}

/// Runs `query` and follows `queryLocator` to the last page. A read: it carries no
/// Idempotency-Key (a replayed answer could be stale) and is safe to retry.
pub async fn query(service: &ZuoraService, query: &str) -> Result<Answer> {
    let mut records = Vec::new();
    let answer = pages(service, query, &mut |page| {
        records.extend(page);
        Ok(())
    })
    .await?;
    Ok(match answer {
        Some(field) => Answer::InvalidField(field),
        None => Answer::Records(records),
    })
}

/// Runs `query`, handing each page's records to `each` as it arrives (at most 2,000 at a
/// time), to the last page. `Some(field)` when Zuora refused a field of the query as invalid.
pub async fn pages(
    service: &ZuoraService,
    query: &str,
    each: &mut (dyn FnMut(Vec<Value>) -> Result<()> + Send),
) -> Result<Option<String>> {
    let mut request = ApiRequest::new(reqwest::Method::POST, "/v1/action/query");
    request.body = RequestBody::json(&json!({ "queryString": query }));
    request.read_only = true;
    let mut read = 0usize;
    loop {
        let mut response = service.call(&request).await?;
        if !response.succeeded() {
            if let Some(field) = invalid_query_field(&response.body) {
                return Ok(Some(field));
            }
            return Err(service.api_error(&request, &response));
        }
        if let Some(Value::Array(page)) = response.body.get_mut("records").map(Value::take) {
            read += page.len();
            each(page)?;
        }
        let done = response.body.get("done").and_then(Value::as_bool).unwrap_or(true);
        let locator = response.body.get("queryLocator").and_then(Value::as_str);
        match (done, locator) {
            (true, _) => return Ok(None),
            (false, Some(locator)) if !locator.is_empty() => {
                request = ApiRequest::new(reqwest::Method::POST, "/v1/action/queryMore");
                request.body = RequestBody::json(&json!({ "queryLocator": locator }));
                request.read_only = true;
            }
            (false, _) => {
                return Err(ConnectorError::Api {
                    destination: service.destination().to_string(),
                    method: "POST".into(),
                    url: format!("{}{}", service.base_url(), request.path),
                    status: response.status,
                    code: "no_query_locator".into(),
                    message: format!(
                        "the answer says more records follow (done: false) but has no queryLocator; {read} record(s) read"
                    ),
                });
            }
        }
    }
}

/// The fields `dinmo reconcile` reads of each usage record; `UniqueKey` only where the tenant
/// has it.
fn holding_fields(unique_key: bool) -> &'static str {
    match unique_key {
        true => "Id, AccountNumber, UOM, Quantity, StartDateTime, RbeStatus, ImportId, UniqueKey",
        false => "Id, AccountNumber, UOM, Quantity, StartDateTime, RbeStatus, ImportId",
    }
}

/// Every usage record starting on or after `from` and before `to` (dates, `YYYY-MM-DD`),
/// whoever sent it: one query, read page by page. Zuora reads a date-time literal without
/// an offset in the tenant's time zone, so the caller widens the period by a day on each side
/// and filters by date itself.
pub fn usage_in_period(from: &str, to: &str, unique_key: bool) -> String {
    format!(
        "select {} from Usage where StartDateTime >= {} and StartDateTime < {}",
        holding_fields(unique_key),
        literal(&format!("{from}T00:00:00")),
        literal(&format!("{to}T00:00:00")),
    )
}

/// The usage records with these ids, one query per at most [`MAX_CONDITIONS`] ids.
pub fn usage_holdings_by_id(ids: &[String], unique_key: bool) -> Vec<String> {
    usage_any_of(holding_fields(unique_key), "Id", ids)
}

/// Runs a query dinmo relies on: an invalid field is an error naming it.
pub async fn records(service: &ZuoraService, text: &str) -> Result<Vec<Value>> {
    match query(service, text).await? {
        Answer::Records(records) => Ok(records),
        Answer::InvalidField(field) => Err(ConnectorError::Api {
            destination: service.destination().to_string(),
            method: "POST".into(),
            url: format!("{}/v1/action/query", service.base_url()),
            status: 400,
            code: "INVALID_FIELD".into(),
            message: format!("Zuora refused `{field}` in `{text}`"),
        }),
    }
}

/// The tenant's active units of measure, upper-cased (Zuora compares them case-insensitively).
pub async fn units_of_measure(service: &ZuoraService) -> Result<BTreeSet<String>> {
    let found = records(service, ACTIVE_UNITS).await?;
    Ok(found
        .iter()
        .filter_map(|r| r.get("UomName").and_then(Value::as_str))
        .map(str::to_ascii_uppercase)
        .collect())
}

/// One of every query string dinmo can send, for the check against Zuora's documented
/// objects (`zuora-sim`'s ZOQL, which cites them).
pub fn every_query() -> Vec<String> {
    let keys: Vec<String> = (0..450).map(|i| format!("dinmo-key-{i}'\\")).collect();
    let mut all = vec![ACTIVE_UNITS.to_string(), records_of_import("8a8aa0ff7c1d")];
    all.extend(usage_by_unique_key(&keys));
    all.extend(usage_by_id(&keys));
    all.extend(usage_by_id_without_unique_key(&keys));
    for unique_key in [true, false] {
        all.push(usage_in_period("2026-01-01", "2026-02-01", unique_key));
        all.extend(usage_holdings_by_id(&keys, unique_key));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_key_lookups_stay_within_200_conditions() {
        let keys: Vec<String> = (0..401).map(|i| format!("k{i}")).collect();
        let queries = usage_by_unique_key(&keys);
        assert_eq!(queries.len(), 3);
        for query in &queries {
            assert!(query.matches("UniqueKey = ").count() <= MAX_CONDITIONS, "{query}");
        }
        assert_eq!(
            queries[2],
            "select Id, UniqueKey, RbeStatus, Quantity from Usage where UniqueKey = 'k400'"
        );
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn every_query_dinmo_sends_is_valid_against_zuoras_documented_objects() {
        // The simulator's ZOQL holds Zuora's documented field lists (docs/zuora.md, "ZOQL"); a
        // query string is opaque to the Prism contract test, so it is checked here.
        let full = zuora_sim::zoql::Schema { usage_unique_key: true };
        for query in every_query() {
            if let Err(fault) = zuora_sim::zoql::parse(&query, &full) {
                panic!("Zuora would refuse `{query}`: {fault:?}");
            }
        }
    }

    #[test]
    fn units_are_asked_for_by_their_documented_name() {
        assert!(ACTIVE_UNITS.contains("UomName") && !ACTIVE_UNITS.contains(" Name"));
    }
}
