//! `type: zuora`: usage records through Zuora Billing's REST API.
//!
//! Laid out like a Vector sink: [`config`] (pure validation), [`service`] (HTTP, OAuth,
//! pacing, retries), [`request`] (encoding and Idempotency-Keys), [`writer`] (the three
//! methods and the mapping of Zuora's answers back to rows), [`zoql`] (queries, paging, units
//! of measure).

pub mod config;
pub mod errors;
pub mod fields;
pub mod request;
pub mod service;
mod writer;
pub mod zoql;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde_json::Value;

pub use config::{Environment, Method, Secret, ZuoraConfig};
pub use service::{RequestStats, ZuoraService};

use crate::destination::{Destination, DestinationWriter, FieldSpec, WriteContext};
use crate::error::{ConnectorError, Result};
use crate::rules::Rejection;
use crate::zuora_common::prepare::PreparedBatch;
use fields::{REST_COLUMNS, verdicts};
use service::ApiRequest;

/// A configured `zuora` destination.
pub struct ZuoraDestination {
    name: String,
    config: ZuoraConfig,
    fields: Vec<FieldSpec>,
    units_of_measure: RwLock<Option<BTreeSet<String>>>,
    stats: Arc<RequestStats>,
    token: service::TokenSlot,
}

impl fmt::Debug for ZuoraDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZuoraDestination")
            .field("name", &self.name)
            .field("base_url", &self.config.base_url())
            .field("method", &self.config.method)
            .finish()
    }
}

impl ZuoraDestination {
    /// Builds the destination; fails on the first config problem.
    pub fn new(name: impl Into<String>, config: ZuoraConfig) -> Result<Self> {
        let name = name.into();
        if let Some((key, message)) = config.validate().into_iter().next() {
            return Err(ConnectorError::InvalidConfig {
                destination: name,
                message: format!("{key} {message}"),
            });
        }
        let fields = REST_COLUMNS.columns.iter().map(|c| c.spec.clone()).collect();
        Ok(ZuoraDestination {
            name,
            config,
            fields,
            units_of_measure: RwLock::new(None),
            stats: Arc::default(),
            token: Arc::default(),
        })
    }

    /// Request counters of every writer this destination opened.
    pub fn stats(&self) -> Arc<RequestStats> {
        Arc::clone(&self.stats)
    }

    fn service(&self, track_id: &str) -> Result<ZuoraService> {
        let mut service = ZuoraService::new(&self.name, &self.config, track_id, Arc::clone(&self.token))?;
        service.stats = Arc::clone(&self.stats);
        Ok(service)
    }

    fn known_units(&self) -> Option<BTreeSet<String>> {
        self.units_of_measure
            .read()
            .map(|u| u.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// The fields of a usage record that carry its account, unit, quantity and start.
const ROLES: crate::destination::FieldRoles = crate::destination::FieldRoles {
    account: "AccountNumber",
    unit: "UOM",
    quantity: "Quantity",
    start: "StartDateTime",
};

impl crate::destination::DestinationSpec for ZuoraConfig {
    const LEDGER: crate::destination::Ledger = crate::destination::Ledger::Billing;
    const ROLES: &'static [crate::destination::FieldRoles] = &[ROLES];

    fn validate(&self) -> Vec<(&'static str, String)> {
        ZuoraConfig::validate(self)
    }

    fn build(&self, name: &str, _: &crate::destination::OpenLocation<'_>) -> Result<Arc<dyn Destination>> {
        Ok(Arc::new(ZuoraDestination::new(name, self.clone())?))
    }
}

/// `DELETE /v1/object/usage/{id}`: `Ok(Err(reason))` when Zuora refuses. A 404 counts as
/// deleted: either an earlier attempt whose answer was lost deleted it, or it is gone anyway,
/// and in both cases the usage is not in Zuora.
async fn delete_usage(service: &ZuoraService, id: &str) -> Result<std::result::Result<(), String>> {
    let request = ApiRequest::new(reqwest::Method::DELETE, format!("/v1/object/usage/{id}"));
    let response = service.call(&request).await?;
    if response.succeeded() {
        return Ok(Ok(()));
    }
    if response.status == 404 {
        tracing::info!(destination = %service.destination(), record = id, "usage record not found; counted as deleted");
        return Ok(Ok(()));
    }
    Ok(Err(errors::reasons(&response.body)
        .into_iter()
        .map(|r| format!("{} {}", r.code, r.message))
        .collect::<Vec<_>>()
        .join("; ")))
}

/// The usage records an import created, with their status (ZOQL by ImportId, every page).
async fn records_of_import(service: &ZuoraService, import_id: &str) -> Result<Vec<(String, Option<String>)>> {
    let records = zoql::records(service, &zoql::records_of_import(import_id)).await?;
    Ok(records
        .iter()
        .filter_map(|r| {
            let id = r.get("Id").and_then(Value::as_str)?.to_string();
            Some((id, r.get("RbeStatus").and_then(Value::as_str).map(str::to_string)))
        })
        .collect())
}

/// Where each row stands in Zuora: a row delivered as a record (its id recorded) is read by
/// `Id`; one delivered in an import (only the import's id recorded) by the `UniqueKey` it was
/// sent with, which a tenant without that field cannot search (its rows come back unknown).
async fn locate_usage(
    service: &ZuoraService,
    destination: &str,
    rows: &[crate::destination::Locate],
) -> Result<Vec<crate::destination::Located>> {
    use crate::destination::{Located, RecordState};
    let state = |record: &Value| {
        Some(RecordState {
            id: record.get("Id").and_then(Value::as_str)?.to_string(),
            pending: record.get("RbeStatus").and_then(Value::as_str) == Some("Pending"),
            quantity: record.get("Quantity").map(|q| match q {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }),
        })
    };
    let ids: Vec<String> = rows
        .iter()
        .flat_map(|r| r.destination_ids.iter())
        .filter(|id| !id.starts_with("import:"))
        .cloned()
        .collect();
    let keys: Vec<String> = rows
        .iter()
        .filter(|r| r.destination_ids.iter().any(|id| id.starts_with("import:")))
        .map(|r| r.row_key.clone())
        .collect();
    let mut by_id = std::collections::HashMap::new();
    let mut by_key = std::collections::HashMap::new();
    let mut keys_unsearchable = None;
    for query in zoql::usage_by_id(&ids) {
        let records = match zoql::query(service, &query).await? {
            zoql::Answer::Records(records) => records,
            zoql::Answer::InvalidField(_) => {
                let mut found = Vec::new();
                for query in zoql::usage_by_id_without_unique_key(&ids) {
                    found.extend(zoql::records(service, &query).await?);
                }
                found
            }
        };
        for record in &records {
            if let Some(found) = state(record) {
                by_id.insert(found.id.clone(), found);
            }
        }
    }
    for query in zoql::usage_by_unique_key(&keys) {
        match zoql::query(service, &query).await? {
            zoql::Answer::Records(records) => {
                for record in &records {
                    if let (Some(found), Some(key)) = (state(record), record.get("UniqueKey").and_then(Value::as_str)) {
                        by_key.entry(key.to_string()).or_insert_with(Vec::new).push(found);
                    }
                }
            }
            zoql::Answer::InvalidField(field) => {
                tracing::warn!(%destination, %field, "this Zuora tenant cannot search usage by UniqueKey (Zuora documents the field only with Prepaid with Drawdown)");
                keys_unsearchable = Some(field);
                break;
            }
        }
    }
    Ok(rows
        .iter()
        .map(|row| {
            let mut records = Vec::new();
            for id in &row.destination_ids {
                if id.starts_with("import:") {
                    if let Some(field) = &keys_unsearchable {
                        return Located::Unknown(format!(
                            "delivered in {id}, and this tenant cannot search usage by `{field}`"
                        ));
                    }
                    match by_key.get(&row.row_key) {
                        Some(found) => records.extend(found.iter().cloned()),
                        None => {
                            return Located::Unknown(format!("no usage record of {id} has UniqueKey {}", row.row_key));
                        }
                    }
                } else {
                    match by_id.get(id) {
                        Some(found) => records.push(found.clone()),
                        None => return Located::Unknown(format!("usage record {id} is no longer in Zuora")),
                    }
                }
            }
            Located::Records(records)
        })
        .collect())
}

/// A page of ZOQL usage records as a batch of [`holdings_schema`](crate::destination::holdings_schema):
/// each field as the text Zuora gave (a number as JSON prints it), null where Zuora left the
/// field out (it leaves out fields whose value is null).
fn holdings_batch(records: &[Value]) -> Result<RecordBatch> {
    let fields = [
        "Id",
        "AccountNumber",
        "UOM",
        "StartDateTime",
        "Quantity",
        "RbeStatus",
        "UniqueKey",
        "ImportId",
    ];
    let columns: Vec<arrow::array::ArrayRef> = fields
        .iter()
        .map(|field| {
            let values = records.iter().map(|r| match r.get(*field) {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(text.clone()),
                Some(other) => Some(other.to_string()),
            });
            Arc::new(arrow::array::StringArray::from_iter(values)) as arrow::array::ArrayRef
        })
        .collect();
    RecordBatch::try_new(crate::destination::holdings_schema(), columns).map_err(|source| ConnectorError::Convert {
        destination: "zuora".into(),
        column: "usage records read back".into(),
        source,
    })
}

/// Reads the usage records `query` selects, page by page, into `sink`; `UniqueKey` is read
/// where the tenant has it (asked once; a refusal of the field reads again without it).
async fn read_holdings(
    service: &ZuoraService,
    query: &crate::destination::HoldingsQuery,
    sink: &mut crate::destination::HoldingsSink<'_>,
) -> Result<crate::destination::Holdings> {
    use crate::destination::{Holdings, HoldingsQuery};
    let texts = |unique_key: bool| match query {
        HoldingsQuery::Period { from, to } => vec![zoql::usage_in_period(from, to, unique_key)],
        HoldingsQuery::Ids(ids) => zoql::usage_holdings_by_id(ids, unique_key),
    };
    let mut unique_key = true;
    let mut queries = texts(true);
    let mut at = 0;
    while at < queries.len() {
        let refused = zoql::pages(service, &queries[at], &mut |page| Ok(sink(holdings_batch(&page)?)?)).await?;
        match refused {
            None => at += 1,
            Some(field) if unique_key && at == 0 && field.ends_with("UniqueKey") => {
                tracing::info!(destination = %service.destination(), %field, "this Zuora tenant has no UniqueKey on usage; records are matched by id and by their values");
                unique_key = false;
                queries = texts(false);
            }
            Some(field) => {
                return Err(ConnectorError::Api {
                    destination: service.destination().to_string(),
                    method: "POST".into(),
                    url: format!("{}/v1/action/query", service.base_url()),
                    status: 400,
                    code: "INVALID_FIELD".into(),
                    message: format!("Zuora refused `{field}` in `{}`", queries[at]),
                });
            }
        }
    }
    Ok(Holdings::Read {
        unique_keys: unique_key,
    })
}

#[async_trait]
impl Destination for ZuoraDestination {
    fn kind(&self) -> &'static str {
        "zuora"
    }

    fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    fn field(&self, name: &str) -> Option<FieldSpec> {
        REST_COLUMNS.column(name).map(|c| c.spec)
    }

    fn roles(&self) -> crate::destination::FieldRoles {
        ROLES
    }

    fn validate_schema(&self, schema: &arrow::datatypes::Schema) -> Vec<crate::destination::SchemaProblem> {
        let mut problems = crate::destination::default_schema_problems(self, schema);
        let mapped = |name: &str| schema.field_with_name(name).is_ok();
        let needed = if self.config.method == Method::Import {
            !mapped("AccountNumber")
        } else {
            !mapped("AccountNumber") && !mapped("AccountId")
        };
        if needed {
            let message = if self.config.method == Method::Import {
                "method `import` needs AccountNumber mapped (usage files have no AccountId column)"
            } else {
                "map AccountNumber or AccountId"
            };
            problems.push(crate::destination::SchemaProblem {
                field: "AccountNumber".into(),
                message: message.into(),
            });
        }
        if self.config.method == Method::Import {
            // A usage file carries the columns of its layout only: a mapped field without one
            // would be dropped on the way (AccountId is covered by AccountNumber, required
            // above).
            let layout = self.config.import_layout;
            let carried = writer::import_carries(layout);
            for field in schema.fields() {
                let name = field.name().as_str();
                if crate::destination::is_engine_column(name) || name == "AccountId" || carried.contains(&name) {
                    continue;
                }
                problems.push(crate::destination::SchemaProblem {
                    field: name.to_string(),
                    message: format!(
                        "method `import` sends usage files in the {} layout, which have no column for `{name}` \
                         (they carry {}): it would not reach Zuora. Map it away, or use method `actions`",
                        layout.name(),
                        carried.join(", ")
                    ),
                });
            }
        }
        problems
    }

    fn check_batch(&self, batch: &RecordBatch) -> Result<Vec<Option<Rejection>>> {
        let prepared = PreparedBatch::new(&self.name, &REST_COLUMNS, batch)?;
        let units = self.known_units().filter(|_| self.config.check_units_of_measure);
        Ok(verdicts(&prepared, batch.num_rows(), units.as_ref()))
    }

    async fn connect(&self) -> Result<Vec<String>> {
        let service = self.service("dinmo-connect")?;
        service.token().await?;
        let mut found = vec![format!("authenticated at {}", service.base_url())];
        if self.config.check_units_of_measure {
            let units = zoql::units_of_measure(&service).await?;
            found.push(format!(
                "{} active unit(s) of measure: {}",
                units.len(),
                units.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            match self.units_of_measure.write() {
                Ok(mut slot) => *slot = Some(units),
                Err(poisoned) => *poisoned.into_inner() = Some(units),
            }
        }
        if self.config.method == config::Method::Import {
            let layout = self.config.import_layout;
            let columns: Vec<&str> = layout.columns().iter().map(|c| c.spec.name.as_ref()).collect();
            found.push(format!(
                "usage imports are sent in the {} layout ({}{}); set `import_layout` if the tenant imports the other \
                 one (a tenant with Active Rating: `active_rating`)",
                layout.name(),
                columns.join(", "),
                match layout {
                    config::Layout::Standard => format!("; dates as `{}`", self.config.import_date_format()),
                    config::Layout::ActiveRating => String::new(),
                }
            ));
        }
        Ok(found)
    }

    fn check_constant(&self, field: &str, value: &str) -> Option<String> {
        if field != "UOM" || !self.config.check_units_of_measure {
            return None;
        }
        let units = self.known_units()?;
        (!units.contains(&value.to_ascii_uppercase())).then(|| {
            format!(
                "`{value}` is not an active unit of measure in this Zuora tenant (active: {}); every row would be rejected",
                units.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    async fn open(&self, context: WriteContext) -> Result<Box<dyn DestinationWriter>> {
        let service = Arc::new(self.service(&format!("dinmo-{}", context.run_id))?);
        let units = self.known_units().filter(|_| self.config.check_units_of_measure);
        Ok(Box::new(writer::ZuoraWriter::new(
            self.name.clone(),
            self.config.clone(),
            service,
            context,
            units,
        )))
    }

    fn replay_window(&self) -> Option<std::time::Duration> {
        // Zuora keeps Idempotency-Keys for 24 hours; leave an hour of margin.
        Some(std::time::Duration::from_secs(23 * 3600))
    }

    async fn find_delivered(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<String>>>> {
        let prepared = PreparedBatch::new(&self.name, &REST_COLUMNS, batch)?;
        let keys: Vec<String> = (0..batch.num_rows())
            .map(|row| {
                prepared
                    .text_of(row, "UniqueKey", "AccountNumber", "%Y-%m-%dT%H:%M:%S")
                    .unwrap_or_default()
            })
            .collect();
        let service = self.service("dinmo-reconcile")?;
        let mut found = std::collections::HashMap::new();
        for query in zoql::usage_by_unique_key(&keys) {
            let records = match zoql::query(&service, &query).await? {
                zoql::Answer::Records(records) => records,
                // Zuora documents `UniqueKey` on Usage only with Prepaid with Drawdown; a
                // tenant without it refuses the field, so it cannot be searched this way.
                zoql::Answer::InvalidField(field) => {
                    tracing::warn!(destination = %self.name, %field, "this Zuora tenant cannot search usage by UniqueKey (Zuora documents the field only with Prepaid with Drawdown)");
                    return Ok(None);
                }
            };
            for record in records {
                if let (Some(id), Some(key)) = (
                    record.get("Id").and_then(Value::as_str),
                    record.get("UniqueKey").and_then(Value::as_str),
                ) {
                    found.insert(key.to_string(), id.to_string());
                }
            }
        }
        Ok(Some(keys.iter().map(|key| found.get(key).cloned()).collect()))
    }

    fn delivered_key(&self) -> &'static str {
        "UniqueKey"
    }

    fn correcting(&self) -> crate::destination::Correcting {
        crate::destination::Correcting::InPlaceOrDifferences
    }

    fn updatable_fields(&self, field: &str) -> bool {
        // `ProxyModifyUsage` (`PUT /v1/object/usage/{id}`): docs/zuora.md, "Usage records".
        matches!(field, "Quantity" | "StartDateTime" | "EndDateTime" | "UOM") || field.ends_with("__c")
    }

    async fn locate(&self, rows: &[crate::destination::Locate]) -> Result<Vec<crate::destination::Located>> {
        locate_usage(&self.service("dinmo-correct")?, &self.name, rows).await
    }

    async fn holdings(
        &self,
        query: &crate::destination::HoldingsQuery,
        sink: &mut crate::destination::HoldingsSink<'_>,
    ) -> Result<crate::destination::Holdings> {
        read_holdings(&self.service("dinmo-reconcile")?, query, sink).await
    }

    async fn update_record(&self, record: &str, batch: &RecordBatch) -> Result<std::result::Result<(), String>> {
        let prepared = PreparedBatch::new(&self.name, &REST_COLUMNS, batch)?;
        let body = request::update_usage_json(&prepared, 0, |field| self.updatable_fields(field));
        let service = self.service("dinmo-correct")?;
        let mut request = ApiRequest::new(reqwest::Method::PUT, format!("/v1/object/usage/{record}"));
        request.body = service::RequestBody::Json(body.into());
        let response = service.call(&request).await?;
        if response.succeeded() {
            return Ok(Ok(()));
        }
        if response.status >= 500 {
            return Err(service.api_error(&request, &response));
        }
        Ok(Err(errors::reasons(&response.body)
            .into_iter()
            .map(|r| format!("{} {}", r.code, r.message))
            .collect::<Vec<_>>()
            .join("; ")))
    }

    async fn delete_records(&self, ids: &[String]) -> Result<Vec<(String, std::result::Result<(), String>)>> {
        let service = self.service("dinmo-rollback")?;
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let result = match id.strip_prefix("import:") {
                // dinmo tracks an import as one unit, so it is rolled back whole or not at all.
                Some(import_id) => {
                    let records = records_of_import(&service, import_id).await?;
                    let processed = records
                        .iter()
                        .filter(|(_, status)| status.as_deref().is_some_and(|s| s != "Pending"))
                        .count();
                    if processed > 0 {
                        Err(format!(
                            "{processed} of {} record(s) of import {import_id} are no longer Pending; an import is rolled back whole, so none was deleted",
                            records.len()
                        ))
                    } else {
                        let mut outcome = Ok(());
                        for (record, _) in &records {
                            if let Err(why) = delete_usage(&service, record).await? {
                                outcome = Err(format!(
                                    "record {record} of import {import_id}: {why} (some records of the import may already be deleted)"
                                ));
                                break;
                            }
                        }
                        outcome
                    }
                }
                None => delete_usage(&service, id).await?,
            };
            results.push((id.clone(), result));
        }
        Ok(results)
    }
}
