//! The Zuora writer: the three methods, and Zuora's answers mapped back to rows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::config::{Method, ZuoraConfig};
use super::errors::reasons;
use super::fields::{REST_COLUMNS, verdicts};
use super::request::{create_usage_json, idempotency_key, usage_object_json};
use super::service::{ApiRequest, RequestBody, ZuoraService};
use crate::destination::{BatchOutcome, Delivery, DestinationWriter, RowStatus, WriteContext};
use crate::error::{ConnectorError, Result};
use crate::http::{Delay, RetryPolicy};
use crate::rules::Cell;
use crate::rules::{RejectCode, Rejection};
use crate::zuora_common::prepare::PreparedBatch;
use crate::zuora_common::{Layout, UsageFileEncoder};

/// Zuora's import API limit.
const IMPORT_FILE_BYTES: u64 = 4_000_000;
/// Rows gathered before usage files are built: a few files' worth, so files are near the
/// size limit instead of one small file per incoming batch.
const IMPORT_FLUSH_ROWS: usize = 25_000;

pub(super) struct ZuoraWriter {
    destination: String,
    config: ZuoraConfig,
    service: Arc<ZuoraService>,
    context: WriteContext,
    units: Option<BTreeSet<String>>,
    acknowledged: Vec<BatchOutcome>,
    delivered: Vec<String>,
    /// Import files Zuora failed, whose rows went through `actions` instead.
    fallbacks: Vec<crate::destination::Fallback>,
    /// Zuora's reason for the import that failed last, until it is recorded.
    import_failure: Option<String>,
    files: u32,
    /// `import`: batches gathered until a file's worth of rows.
    buffered: Vec<RecordBatch>,
    buffered_rows: usize,
    /// `actions` and `object`: requests sent and not yet answered, across batches, so the
    /// connection stays busy while the engine commits a batch and reads the next one.
    in_flight: JoinSet<(RecordBatch, Result<RowResults>)>,
    /// `actions`: sendable rows of the last batch too few for a full request, sent with the
    /// next batch's rows (or at `flush`), so every request but the last carries `batch_size`
    /// records.
    carried: Option<RecordBatch>,
}

type RowResults = Vec<(usize, RowStatus)>;

/// One usage file to import and the batch rows it carries.
struct ImportFile {
    name: String,
    bytes: Vec<u8>,
    rows: Vec<usize>,
}

impl ZuoraWriter {
    pub fn new(
        destination: String,
        config: ZuoraConfig,
        service: Arc<ZuoraService>,
        context: WriteContext,
        units: Option<BTreeSet<String>>,
    ) -> Self {
        ZuoraWriter {
            destination,
            config,
            service,
            context,
            units,
            acknowledged: Vec::new(),
            delivered: Vec::new(),
            fallbacks: Vec::new(),
            import_failure: None,
            files: 0,
            buffered: Vec::new(),
            buffered_rows: 0,
            in_flight: JoinSet::new(),
            carried: None,
        }
    }

    fn rejected(code: &str, message: String) -> RowStatus {
        RowStatus::Rejected(Rejection {
            code: RejectCode::Destination(code.to_string()),
            field: None,
            message,
        })
    }

    /// Rows refused by a request-level answer (a 4xx for the whole request).
    fn refuse_all(rows: &[usize], body: &Value, status: u16) -> RowResults {
        let reason = reasons(body).into_iter().next();
        let code = reason
            .as_ref()
            .map_or_else(|| format!("http_{status}"), |r| r.code.clone());
        let message = reason.map_or_else(|| format!("Zuora answered HTTP {status}"), |r| r.message);
        rows.iter()
            .map(|&row| (row, Self::rejected(&code, message.clone())))
            .collect()
    }

    /// `POST /v1/action/create` with up to 50 records; one SaveResult per record.
    async fn send_actions(
        service: Arc<ZuoraService>,
        context: WriteContext,
        prepared: Arc<PreparedBatch>,
        rows: Vec<usize>,
    ) -> Result<RowResults> {
        let keys: Vec<&str> = rows.iter().map(|&r| prepared.key(r)).collect();
        let request = ApiRequest {
            method: reqwest::Method::POST,
            path: "/v1/action/create".into(),
            body: RequestBody::Json(create_usage_json(&prepared, &rows).into()),
            idempotency_key: Some(idempotency_key(&context.sync_id, &context.run_id, "actions", &keys)),
            read_only: false,
        };
        let response = service.call(&request).await?;
        if !(200..300).contains(&response.status) {
            return Ok(Self::refuse_all(&rows, &response.body, response.status));
        }
        let Some(results) = response.body.as_array().filter(|r| r.len() == rows.len()) else {
            return Err(service.api_error(&request, &super::service::ApiResponse {
                status: response.status,
                body: json!({ "reasons": [{ "code": "unexpected_answer", "message": format!("expected {} SaveResults", rows.len()) }] }),
            }));
        };
        Ok(rows
            .iter()
            .zip(results)
            .map(|(&row, result)| {
                let ok = result
                    .get("Success")
                    .or_else(|| result.get("success"))
                    .and_then(Value::as_bool)
                    == Some(true);
                let status = if ok {
                    RowStatus::Accepted {
                        destination_id: result
                            .get("Id")
                            .or_else(|| result.get("id"))
                            .and_then(Value::as_str)
                            .map(Arc::from),
                    }
                } else {
                    let reason = reasons(result).into_iter().next();
                    Self::rejected(
                        reason.as_ref().map_or("rejected", |r| r.code.as_str()),
                        reason
                            .as_ref()
                            .map_or_else(|| "Zuora refused the record".into(), |r| r.message.clone()),
                    )
                };
                (row, status)
            })
            .collect())
    }

    /// `POST /v1/object/usage`, one record.
    async fn send_object(
        service: Arc<ZuoraService>,
        context: WriteContext,
        prepared: Arc<PreparedBatch>,
        rows: Vec<usize>,
    ) -> Result<RowResults> {
        let row = rows[0];
        let request = ApiRequest {
            method: reqwest::Method::POST,
            path: "/v1/object/usage".into(),
            body: RequestBody::Json(usage_object_json(&prepared, row).into()),
            idempotency_key: Some(idempotency_key(
                &context.sync_id,
                &context.run_id,
                "object",
                &[prepared.key(row)],
            )),
            read_only: false,
        };
        let response = service.call(&request).await?;
        if response.succeeded() {
            let id = response
                .body
                .get("Id")
                .or_else(|| response.body.get("id"))
                .and_then(Value::as_str)
                .map(Arc::from);
            return Ok(vec![(row, RowStatus::Accepted { destination_id: id })]);
        }
        Ok(Self::refuse_all(&rows, &response.body, response.status))
    }

    /// `POST /v1/usage` files, polled to the end, their outcomes added to `outcomes`. An
    /// import is all or nothing, so when Zuora fails a file, its rows go through `actions`
    /// instead: the good ones land in this run and only the refused ones are rejected, each
    /// with Zuora's own message.
    async fn send_imports(
        &mut self,
        batch: &RecordBatch,
        prepared: &Arc<PreparedBatch>,
        rows: Vec<usize>,
        outcomes: &mut Vec<BatchOutcome>,
    ) -> Result<()> {
        for ImportFile {
            name,
            bytes,
            rows: file_rows,
        } in self.encode_import_files(prepared, &rows)?
        {
            match self.import_file(prepared, &name, bytes, &file_rows).await? {
                Some(import_id) => {
                    let id = format!("import:{import_id}");
                    self.delivered.push(id.clone());
                    let id: Arc<str> = Arc::from(id);
                    let accepted = file_rows.iter().map(|&r| {
                        let destination_id = Some(Arc::clone(&id));
                        (r, RowStatus::Accepted { destination_id })
                    });
                    outcomes.push(outcome(batch, accepted.collect())?);
                }
                None => {
                    let reason = self.import_failure.take().unwrap_or_default();
                    if self.fallbacks.is_empty() {
                        // Said once a run: an import refused for its layout fails every file.
                        warn!(
                            destination = %self.destination,
                            file = %name,
                            reason = %reason,
                            layout = self.config.import_layout.name(),
                            "Zuora failed a usage import; its rows go through `actions` (record by record, slower) so \
                             only the refused ones are rejected. If Zuora refused the file's layout, set `import_layout` \
                             to the one the tenant imports"
                        );
                    }
                    self.fallbacks.push(crate::destination::Fallback {
                        tried: format!("usage import {name} ({} layout)", self.config.import_layout.name()),
                        instead: "actions".into(),
                        rows: file_rows.len() as u64,
                        reason,
                    });
                    let queue = file_rows.chunks(self.config.batch_size).map(|rows| Group {
                        batch: batch.clone(),
                        prepared: Arc::clone(prepared),
                        rows: rows.to_vec(),
                    });
                    let answered = self.pump(queue.collect(), Vec::new(), 0).await?;
                    outcomes.extend(answered);
                }
            }
        }
        Ok(())
    }

    fn encode_import_files(&mut self, prepared: &PreparedBatch, rows: &[usize]) -> Result<Vec<ImportFile>> {
        let encode_error = |e: crate::zuora_common::EncodeError| ConnectorError::Encode {
            destination: self.destination.clone(),
            file: "usage import".into(),
            source: e,
        };
        let stem = format!(
            "{}-{}",
            self.context.sync_id.split('.').next().unwrap_or("usage"),
            self.files
        );
        let layout = self.config.import_layout;
        let headers: Vec<&str> = layout.columns().iter().map(|c| c.spec.name.as_ref()).collect();
        let mut encoder = UsageFileEncoder::new(&headers, IMPORT_FILE_BYTES, false, &stem, &self.context.run_id)
            .map_err(encode_error)?;
        self.files += 1;
        let mut files = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        for &row in rows {
            let fields = import_fields(prepared, row, layout, self.config.import_date_format());
            let (_, finished) = encoder.push(fields.iter().map(String::as_str)).map_err(encode_error)?;
            if let Some(file) = finished {
                let held = std::mem::take(&mut current);
                files.push(ImportFile {
                    name: file.name,
                    bytes: file.bytes,
                    rows: held,
                });
            }
            current.push(row);
        }
        if let Some(file) = encoder.finish_file().map_err(encode_error)? {
            files.push(ImportFile {
                name: file.name,
                bytes: file.bytes,
                rows: current,
            });
        }
        Ok(files)
    }

    /// Uploads one file and waits for it; `Some(import id)` when Completed, `None` when Zuora
    /// failed it.
    /// The upload (under its idempotency key) and the polling of its status (until
    /// `import_timeout_secs`) are one exchange.
    async fn import_file(
        &mut self,
        prepared: &PreparedBatch,
        name: &str,
        bytes: Vec<u8>,
        rows: &[usize],
    ) -> Result<Option<String>> {
        let keys: Vec<&str> = rows.iter().map(|&r| prepared.key(r)).collect();
        let request = ApiRequest {
            method: reqwest::Method::POST,
            path: "/v1/usage".into(),
            body: RequestBody::File {
                name: name.to_string(),
                bytes,
            },
            idempotency_key: Some(idempotency_key(
                &self.context.sync_id,
                &self.context.run_id,
                "import",
                &keys,
            )),
            read_only: false,
        };
        let response = self.service.call(&request).await?;
        let status_url = response
            .body
            .get("checkImportStatus")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // `.../usage/<import id>/status`; polled through GET /v1/object/import/{id}, which is in
        // Zuora's spec (the checkImportStatus path is not).
        let import_id = status_url
            .trim_end_matches("/status")
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if !(200..300).contains(&response.status) || import_id.is_empty() {
            return Err(self.service.api_error(&request, &response));
        }
        // Polled at the retry policy's backoff pace (from 100 ms up to 5 s apart) until the
        // import ends or `import_timeout_secs` passes.
        let started = Instant::now();
        let mut pace = RetryPolicy::polling().start();
        let poll = ApiRequest::new(reqwest::Method::GET, format!("/v1/object/import/{import_id}"));
        loop {
            tokio::time::sleep(pace.next_wait(Delay::Backoff).unwrap_or(Duration::from_secs(5))).await;
            let answer = self.service.call(&poll).await?;
            if !(200..300).contains(&answer.status) {
                return Err(self.service.api_error(&poll, &answer));
            }
            let status = answer
                .body
                .get("Status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match status.as_str() {
                "Completed" => {
                    info!(destination = %self.destination, import_id, file = name, rows = rows.len(), "usage import completed");
                    return Ok(Some(import_id));
                }
                "Failed" | "Canceled" => {
                    let reason = answer
                        .body
                        .get("StatusReason")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    tracing::debug!(destination = %self.destination, import_id, file = name, reason, "usage import failed");
                    self.import_failure = Some(format!("import {import_id}: {reason}"));
                    return Ok(None);
                }
                _ if started.elapsed().as_secs() >= self.config.import_timeout_secs => {
                    return Err(ConnectorError::ImportTimeout {
                        destination: self.destination.clone(),
                        import_id,
                        status,
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                _ => {}
            }
        }
    }
}

/// Where an import file column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImportSource {
    /// A REST field; a date-time in the file's date format when `dated`, else ISO.
    Field { name: &'static str, dated: bool },
    /// `AccountNumber:<account>` (Active Rating's `Tag`).
    AccountTag,
    /// Nothing dinmo maps (`GroupId`): empty.
    Nothing,
}

/// The REST field (or other source) of each usage import file column, in either layout.
fn import_source(column: &str) -> ImportSource {
    let field = |name| ImportSource::Field { name, dated: false };
    match column {
        // Active Rating: the REST fields under their file names.
        "AccountNumber" | "ACCOUNT_ID" => field("AccountNumber"),
        "Tag" => ImportSource::AccountTag,
        "UnitOfMeasure" | "UOM" => field("UOM"),
        "StartDateTime" => field("StartDateTime"),
        "Quantity" | "QTY" => field("Quantity"),
        "Description" | "DESCRIPTION" => field("Description"),
        "UniqueKey" | "UNIQUE_KEY" => field("UniqueKey"),
        // Standard ("Usage file format").
        "STARTDATE" => ImportSource::Field {
            name: "StartDateTime",
            dated: true,
        },
        "ENDDATE" => ImportSource::Field {
            name: "EndDateTime",
            dated: true,
        },
        "SUBSCRIPTION_ID" => field("SubscriptionNumber"),
        "CHARGE_ID" => field("ChargeNumber"),
        _ => ImportSource::Nothing,
    }
}

/// The REST fields a usage import file in `layout` carries; a mapped field outside them would
/// not reach Zuora.
pub(crate) fn import_carries(layout: Layout) -> Vec<&'static str> {
    layout
        .columns()
        .iter()
        .filter_map(|column| match import_source(&column.spec.name) {
            ImportSource::Field { name, .. } => Some(name),
            ImportSource::AccountTag | ImportSource::Nothing => None,
        })
        .collect()
}

/// One import file row in `layout` (every column of it, in order) from a REST-prepared row;
/// dates of the standard layout in `date_format` (the uploading user's locale).
fn import_fields(prepared: &PreparedBatch, row: usize, layout: Layout, date_format: &str) -> Vec<String> {
    let cell = |name: &str, format: &str| -> String {
        match prepared
            .columns
            .iter()
            .find(|(c, _)| c.spec.name == name)
            .and_then(|(_, cells)| cells.as_ref())
            .map(|c| c.get(row))
        {
            Some(Cell::Text(t)) | Some(Cell::Number(t)) => t.to_string(),
            Some(Cell::DateTime(dt)) => dt.format(format).to_string(),
            _ => String::new(),
        }
    };
    let iso = Layout::ActiveRating.default_date_format();
    layout
        .columns()
        .iter()
        .map(|column| match import_source(&column.spec.name) {
            ImportSource::Field { name: "UniqueKey", .. } => match cell("UniqueKey", iso) {
                key if key.is_empty() => prepared.key(row).to_string(),
                key => key,
            },
            ImportSource::Field { name, dated } => cell(name, if dated { date_format } else { iso }),
            ImportSource::AccountTag => format!("AccountNumber:{}", cell("AccountNumber", iso)),
            ImportSource::Nothing => String::new(),
        })
        .collect()
}

fn outcome(batch: &RecordBatch, results: RowResults) -> Result<BatchOutcome> {
    let indices = UInt32Array::from(results.iter().map(|(r, _)| *r as u32).collect::<Vec<_>>());
    let taken = take_record_batch(batch, &indices).map_err(|source| ConnectorError::Convert {
        destination: "zuora".into(),
        column: "*".into(),
        source,
    })?;
    Ok(BatchOutcome {
        batch: taken,
        statuses: results.into_iter().map(|(_, s)| s).collect(),
    })
}

/// One request's rows, waiting to be sent.
struct Group {
    batch: RecordBatch,
    prepared: Arc<PreparedBatch>,
    rows: Vec<usize>,
}

impl ZuoraWriter {
    /// Checks and sends one batch with the configured method.
    ///
    /// `actions` and `object` return before the batch's last requests are answered: up to
    /// twice `concurrency` requests stay in flight while the engine commits what came back and
    /// reads the next batch, and their answers come with the next `write` or `flush`, so the
    /// connection does not idle at every batch boundary.
    async fn send_batch(&mut self, batch: RecordBatch, last: bool) -> Result<Vec<BatchOutcome>> {
        let prepared = Arc::new(PreparedBatch::new(&self.destination, &REST_COLUMNS, &batch)?);
        let verdicts = verdicts(&prepared, batch.num_rows(), self.units.as_ref());
        let mut outcomes = Vec::new();
        let refused: RowResults = verdicts
            .iter()
            .enumerate()
            .filter_map(|(row, v)| v.clone().map(|r| (row, RowStatus::Rejected(r))))
            .collect();
        let sendable: Vec<usize> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none())
            .map(|(row, _)| row)
            .collect();
        if !refused.is_empty() {
            outcomes.push(outcome(&batch, refused)?);
        }
        let rows_per_request = match self.config.method {
            Method::Import => {
                return match self.send_imports(&batch, &prepared, sendable, &mut outcomes).await {
                    Ok(()) => Ok(outcomes),
                    Err(error) => {
                        // What Zuora acknowledged before the failure is committed by the engine.
                        self.acknowledged.extend(outcomes);
                        Err(error)
                    }
                };
            }
            Method::Object => 1,
            Method::Actions => self.config.batch_size,
        };
        let mut sendable = sendable;
        let short = sendable.len() % rows_per_request;
        if !last && short > 0 {
            let held = sendable.split_off(sendable.len() - short);
            let indices = UInt32Array::from(held.iter().map(|&r| r as u32).collect::<Vec<_>>());
            self.carried = Some(take_record_batch(&batch, &indices).map_err(|source| self.convert_error(source))?);
        }
        let queue = sendable.chunks(rows_per_request).map(|rows| Group {
            batch: batch.clone(),
            prepared: Arc::clone(&prepared),
            rows: rows.to_vec(),
        });
        self.pump(queue.collect(), outcomes, self.config.concurrency * 2).await
    }

    /// Sends `queue`, keeping twice `concurrency` requests under way (those waiting out a
    /// retry leave their slot to one that is ready, see `ZuoraService::call`), and gathers the
    /// answers that came back until at most `keep` requests are left in flight.
    ///
    /// After a failure nothing more is sent; the requests already under way are waited for,
    /// what they acknowledged goes to `acknowledged` for the engine to commit, and the first
    /// failure is returned.
    async fn pump(
        &mut self,
        queue: std::collections::VecDeque<Group>,
        mut outcomes: Vec<BatchOutcome>,
        keep: usize,
    ) -> Result<Vec<BatchOutcome>> {
        let mut queue = queue;
        let window = self.config.concurrency * 2;
        let mut failure: Option<ConnectorError> = None;
        loop {
            while failure.is_none() && self.in_flight.len() < window {
                let Some(group) = queue.pop_front() else { break };
                self.spawn(group);
            }
            let must_wait = failure.is_some() || !queue.is_empty() || self.in_flight.len() > keep;
            let joined = if must_wait {
                self.in_flight.join_next().await
            } else {
                self.in_flight.try_join_next()
            };
            let Some(joined) = joined else { break };
            let answer = match joined {
                Ok((batch, Ok(results))) => outcome(&batch, results),
                Ok((_, Err(error))) => Err(error),
                Err(source) => Err(ConnectorError::Interrupted {
                    destination: self.destination.clone(),
                    source,
                }),
            };
            match answer {
                Ok(done) => outcomes.push(done),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            None => Ok(outcomes),
            Some(error) => {
                // What Zuora acknowledged before the failure is committed by the engine.
                self.acknowledged.extend(outcomes);
                Err(error)
            }
        }
    }

    fn convert_error(&self, source: arrow::error::ArrowError) -> ConnectorError {
        ConnectorError::Convert {
            destination: self.destination.clone(),
            column: "*".into(),
            source,
        }
    }

    fn spawn(&mut self, group: Group) {
        let (service, context, method) = (Arc::clone(&self.service), self.context.clone(), self.config.method);
        self.in_flight.spawn(async move {
            let Group { batch, prepared, rows } = group;
            let answer = match method {
                Method::Object => Self::send_object(service, context, prepared, rows).await,
                // `import` sends through `actions` the rows of a file Zuora failed.
                Method::Actions | Method::Import => Self::send_actions(service, context, prepared, rows).await,
            };
            (batch, answer)
        });
    }
}

#[async_trait]
impl DestinationWriter for ZuoraWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<Vec<BatchOutcome>> {
        if self.config.method != Method::Import {
            let batch = match self.carried.take() {
                Some(carried) => {
                    concat_batches(&batch.schema(), [&carried, &batch]).map_err(|source| self.convert_error(source))?
                }
                None => batch,
            };
            return self.send_batch(batch, false).await;
        }
        self.buffered_rows += batch.num_rows();
        self.buffered.push(batch);
        if self.buffered_rows < IMPORT_FLUSH_ROWS {
            return Ok(Vec::new());
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<Vec<BatchOutcome>> {
        if self.config.method != Method::Import {
            let mut outcomes = Vec::new();
            if let Some(carried) = self.carried.take() {
                outcomes = self.send_batch(carried, true).await?;
            }
            return self.pump(Default::default(), outcomes, 0).await;
        }
        let Some(first) = self.buffered.first() else {
            return Ok(Vec::new());
        };
        let schema = first.schema();
        let batches = std::mem::take(&mut self.buffered);
        self.buffered_rows = 0;
        let batch = concat_batches(&schema, &batches).map_err(|source| self.convert_error(source))?;
        self.send_batch(batch, true).await
    }

    async fn stop(&mut self) -> Result<Vec<BatchOutcome>> {
        self.carried = None;
        self.buffered.clear();
        self.buffered_rows = 0;
        self.pump(Default::default(), Vec::new(), 0).await
    }

    async fn finish(self: Box<Self>) -> Result<(Vec<BatchOutcome>, Delivery)> {
        Ok((
            Vec::new(),
            Delivery {
                destination_ids: self.delivered,
                fallbacks: self.fallbacks,
            },
        ))
    }

    fn acknowledged_before_failure(&mut self) -> Vec<BatchOutcome> {
        std::mem::take(&mut self.acknowledged)
    }
}
