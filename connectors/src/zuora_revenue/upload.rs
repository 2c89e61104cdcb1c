//! One file to Revenue, exactly once: the journal is read first (a replay of a stopped run
//! finds what it already sent), the intent is recorded before the upload, the request id
//! right after Revenue's answer, and the status is polled until the batch is staged or failed.
//!
//! What an earlier record means when the same file comes round again:
//! - none: never sent; upload it;
//! - `intent`: sent or not, nobody knows, and Revenue cannot be asked without a request id:
//!   stop ([`ConnectorError::UploadOutcomeUnknown`]), a person checks Uploaded Files;
//! - `received`: ask Revenue's status endpoint;
//! - `staged` / `partial` / `failed`: the answer is known; nothing is sent.
//!
//! An asynchronous upload (`upload: async`) is partial: Revenue stages its valid rows and
//! rejects the others, and lists those (each the file's columns plus `error_message`). Each is
//! matched to the file's line that has exactly its columns' values, one line each; a listed
//! row that matches no line leaves the upload `received` and stops the run, since which rows
//! Revenue took is then unknown.

use crate::ids::RunId;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::journal::{Journal, Stage, UploadRecord};
use super::request::ReadyFile;
use super::service::{
    AsyncStatus, RevenueCall, RevenueService, UploadStatus, async_status, rejected_rows, request_id, upload_status,
};
use crate::error::{ConnectorError, Result};
use crate::failpoint::crash_point;
use crate::http::{Delay, RetryPolicy, RetryReason};

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Stored (file mode) or staged (api mode); the id names where.
    Delivered { id: String },
    /// Revenue failed the batch whole, with its message.
    Failed { message: String },
    /// Revenue staged every row but `rejected` (data lines of the file, from 0, with
    /// Revenue's reason); the id names where.
    Partial { id: String, rejected: Vec<(u64, String)> },
}

/// Sends files of one run to Revenue.
#[derive(Debug)]
pub struct Uploader {
    /// The destination's name.
    pub destination: String,
    /// The template uploads go through.
    pub template: String,
    /// The run whose files these are (the original run when replaying).
    pub run: RunId,
    /// HTTP.
    pub service: Arc<RevenueService>,
    /// The upload journal.
    pub journal: Journal,
    /// The tenant's upload slots.
    pub slots: Arc<Semaphore>,
    /// How long to wait for a status.
    pub status_timeout: Duration,
    /// Upload with `async=true` (partial uploads).
    pub asynchronous: bool,
}

impl Uploader {
    fn record(&self, file: &ReadyFile, stage: Stage) -> UploadRecord {
        UploadRecord {
            file: file.name.clone(),
            template: self.template.clone(),
            rows: file.rows(),
            keys_hash: file.keys_hash.clone(),
            asynchronous: self.asynchronous,
            stage,
        }
    }

    /// The error for an upload Revenue received whose counts do not add up (see
    /// [`Stage::Undecided`]).
    fn miscounted(&self, file: &ReadyFile, reason: String) -> ConnectorError {
        ConnectorError::UploadCountsUnknown {
            destination: self.destination.clone(),
            file: file.name.clone(),
            template: self.template.clone(),
            rows: file.rows(),
            reason,
        }
    }

    fn unknown(&self, file: &ReadyFile, reason: String) -> ConnectorError {
        ConnectorError::UploadOutcomeUnknown {
            destination: self.destination.clone(),
            file: file.name.clone(),
            template: self.template.clone(),
            rows: file.rows(),
            reason,
        }
    }

    /// Delivers `file`, or learns what became of it when an earlier attempt recorded it.
    pub async fn deliver(&self, file: &ReadyFile) -> Result<FileOutcome> {
        if let Some(earlier) = self.journal.read(&self.run, &file.name).await? {
            if earlier.keys_hash != file.keys_hash || earlier.rows != file.rows() {
                return Err(self.unknown(
                    file,
                    format!(
                        "it was recorded at {} with {} other row(s) than this replay builds",
                        self.journal.display(&self.run, &file.name),
                        earlier.rows
                    ),
                ));
            }
            return match earlier.stage {
                Stage::Staged { request_id } => Ok(delivered(file, &request_id)),
                Stage::SentByHand => Ok(delivered(file, "by-hand")),
                Stage::Failed { message, .. } => Ok(FileOutcome::Failed { message }),
                Stage::Partial { request_id, rejected } => Ok(FileOutcome::Partial {
                    id: delivered_id(file, &request_id),
                    rejected,
                }),
                Stage::Undecided { reason, .. } => Err(self.miscounted(
                    file,
                    format!("{reason} (recorded at {})", self.journal.display(&self.run, &file.name)),
                )),
                Stage::Received { request_id } if earlier.asynchronous => self.follow_async(file, request_id).await,
                Stage::Received { request_id } => self.follow(file, request_id).await,
                Stage::Intent => Err(self.unknown(
                    file,
                    format!(
                        "an earlier attempt recorded it ({}) and stopped before Revenue's answer was recorded",
                        self.journal.display(&self.run, &file.name)
                    ),
                )),
            };
        }
        self.journal.write(&self.run, &self.record(file, Stage::Intent)).await?;
        crash_point("revenue_intent_recorded");
        let call = RevenueCall::Upload {
            template: self.template.clone(),
            name: file.name.clone(),
            bytes: file.bytes.clone(),
            asynchronous: self.asynchronous,
        };
        let answered = {
            // Revenue takes at most 2 uploads in parallel per tenant.
            let _slot = self.slots.acquire().await;
            self.service.call(&call).await
        };
        let answer = match answered {
            Ok(answer) => answer,
            Err(error) if never_received(&error) => {
                // Nothing reached Revenue: forget the intent so the next run sends it.
                self.journal.forget(&self.run, &file.name).await?;
                return Err(error);
            }
            Err(ConnectorError::RetriesExhausted { last, .. }) => {
                return Err(self.unknown(file, format!("the upload got no usable answer ({last})")));
            }
            Err(other) => return Err(other),
        };
        if !(200..300).contains(&answer.status) {
            // Revenue answered and refused it: the batch failed whole.
            let message = format!(
                "Revenue refused the upload (HTTP {}): {}",
                answer.status,
                answer.message()
            );
            warn!(destination = %self.destination, file = %file.name, %message, "upload refused");
            let stage = Stage::Failed {
                request_id: None,
                message: message.clone(),
            };
            self.journal.write(&self.run, &self.record(file, stage)).await?;
            return Ok(FileOutcome::Failed { message });
        }
        let Some(request_id) = request_id(&answer.body) else {
            return Err(self.unknown(
                file,
                format!(
                    "Revenue answered `{}` but named no request id, so its staging cannot be followed",
                    answer.message()
                ),
            ));
        };
        let received = Stage::Received {
            request_id: request_id.clone(),
        };
        self.journal.write(&self.run, &self.record(file, received)).await?;
        crash_point("revenue_request_recorded");
        info!(destination = %self.destination, file = %file.name, request_id, rows = file.rows(), "upload received by Revenue");
        match self.asynchronous {
            true => self.follow_async(file, request_id).await,
            false => self.follow(file, request_id).await,
        }
    }

    /// Polls an asynchronous upload until Revenue settles it; a partial one's rejected rows are
    /// read back and matched to the file's lines. Records the outcome.
    async fn follow_async(&self, file: &ReadyFile, id: String) -> Result<FileOutcome> {
        let started = Instant::now();
        let call = RevenueCall::AsyncStatus { id: id.clone() };
        let mut pace = RetryPolicy::polling().start();
        let (stage, outcome) = loop {
            let answer = self.service.call(&call).await?;
            if !(200..300).contains(&answer.status) {
                return Err(self.service.api_error(&call, &answer));
            }
            match async_status(&answer) {
                AsyncStatus::Pending => {
                    if started.elapsed() >= self.status_timeout {
                        return Err(ConnectorError::StatusTimeout {
                            destination: self.destination.clone(),
                            file: file.name.clone(),
                            request_id: id,
                            waited_secs: started.elapsed().as_secs(),
                        });
                    }
                    tokio::time::sleep(pace.next_wait(Delay::Backoff).unwrap_or(Duration::from_secs(5))).await;
                }
                AsyncStatus::Settled { succeeded, failed } if succeeded + failed != file.rows() => {
                    // Counts that do not add up to the file: which rows Revenue took is unknown.
                    // Recorded, so that no later run asks or uploads again and a person can
                    // answer for it.
                    let reason = format!(
                        "upload {id}: Revenue counts {succeeded} row(s) taken and {failed} failed, but the file holds {}",
                        file.rows()
                    );
                    let stage = Stage::Undecided {
                        request_id: id.clone(),
                        reason: reason.clone(),
                    };
                    self.journal.write(&self.run, &self.record(file, stage)).await?;
                    return Err(self.miscounted(file, reason));
                }
                AsyncStatus::Staged | AsyncStatus::Settled { failed: 0, .. } => {
                    break (Stage::Staged { request_id: id.clone() }, delivered(file, &id));
                }
                AsyncStatus::Settled { failed, .. } => {
                    let rejected = self.rejected_lines(file, &id, failed).await?;
                    let stage = Stage::Partial {
                        request_id: id.clone(),
                        rejected: rejected.clone(),
                    };
                    break (
                        stage,
                        FileOutcome::Partial {
                            id: delivered_id(file, &id),
                            rejected,
                        },
                    );
                }
                AsyncStatus::Failed(message) => {
                    let stage = Stage::Failed {
                        request_id: Some(id.clone()),
                        message: message.clone(),
                    };
                    break (stage, FileOutcome::Failed { message });
                }
            }
        };
        self.journal.write(&self.run, &self.record(file, stage)).await?;
        crash_point("revenue_outcome_recorded");
        info!(destination = %self.destination, file = %file.name, request_id = id, outcome = ?outcome, "upload settled");
        Ok(outcome)
    }

    /// The file's lines Revenue rejected (`failed` of them), with Revenue's reasons: each
    /// listed row matched to the one line that has exactly its values, one line each.
    async fn rejected_lines(&self, file: &ReadyFile, id: &str, failed: u64) -> Result<Vec<(u64, String)>> {
        let call = RevenueCall::AsyncErrors { id: id.to_string() };
        let answer = self.service.call(&call).await?;
        if !(200..300).contains(&answer.status) {
            return Err(self.service.api_error(&call, &answer));
        }
        let unknown = |why: String| self.unknown(file, format!("upload {id}: {why}"));
        let listed = rejected_rows(&answer.body).ok_or_else(|| {
            unknown(format!(
                "Revenue's list of rejected rows cannot be read: {}",
                answer.message()
            ))
        })?;
        let mut reader = csv::ReaderBuilder::new().from_reader(file.bytes.as_slice());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| unknown(format!("the file's header cannot be read: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut lines: Vec<Option<Vec<String>>> = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| unknown(format!("the file cannot be read back: {e}")))?;
            lines.push(Some(record.iter().map(str::to_string).collect()));
        }
        let mut rejected = Vec::new();
        for row in &listed {
            let values: Vec<String> = header
                .iter()
                .map(|column| match row.get(column) {
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                })
                .collect();
            let Some(at) = lines.iter().position(|line| line.as_ref() == Some(&values)) else {
                return Err(unknown(format!(
                    "Revenue lists a rejected row that matches no line of the file ({})",
                    values.join(",")
                )));
            };
            lines[at] = None;
            let message = row
                .get("error_message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("rejected by Revenue")
                .to_string();
            rejected.push((at as u64, message));
        }
        if rejected.len() as u64 != failed {
            return Err(unknown(format!(
                "its status says {failed} row(s) failed but Revenue lists {}",
                rejected.len()
            )));
        }
        rejected.sort();
        Ok(rejected)
    }

    /// Polls the status of a received upload until it is staged or failed, and records it.
    async fn follow(&self, file: &ReadyFile, request_id: String) -> Result<FileOutcome> {
        let started = Instant::now();
        let call = RevenueCall::Status {
            request_id: request_id.clone(),
        };
        let mut pace = RetryPolicy::polling().start();
        loop {
            let answer = self.service.call(&call).await?;
            if !(200..300).contains(&answer.status) {
                return Err(self.service.api_error(&call, &answer));
            }
            let (stage, outcome) = match upload_status(&answer) {
                UploadStatus::Pending => {
                    if started.elapsed() >= self.status_timeout {
                        return Err(ConnectorError::StatusTimeout {
                            destination: self.destination.clone(),
                            file: file.name.clone(),
                            request_id,
                            waited_secs: started.elapsed().as_secs(),
                        });
                    }
                    tokio::time::sleep(pace.next_wait(Delay::Backoff).unwrap_or(Duration::from_secs(5))).await;
                    continue;
                }
                UploadStatus::Staged => (
                    Stage::Staged {
                        request_id: request_id.clone(),
                    },
                    delivered(file, &request_id),
                ),
                UploadStatus::Failed(message) => (
                    Stage::Failed {
                        request_id: Some(request_id.clone()),
                        message: message.clone(),
                    },
                    FileOutcome::Failed { message },
                ),
            };
            self.journal.write(&self.run, &self.record(file, stage)).await?;
            crash_point("revenue_outcome_recorded");
            info!(destination = %self.destination, file = %file.name, request_id, outcome = ?outcome, "upload settled");
            return Ok(outcome);
        }
    }
}

fn delivered(file: &ReadyFile, request_id: &str) -> FileOutcome {
    FileOutcome::Delivered {
        id: delivered_id(file, request_id),
    }
}

/// The destination id of a file Revenue took (in whole or in part).
fn delivered_id(file: &ReadyFile, request_id: &str) -> String {
    format!("revenue:{request_id}:{}", file.name)
}

/// Whether an upload's error proves it never reached Revenue: no connection was made, or the
/// rate limiter turned it away before it was read.
fn never_received(error: &ConnectorError) -> bool {
    matches!(
        error,
        ConnectorError::RetriesExhausted {
            last: RetryReason::NotSent(_)
                | RetryReason::RateLimitSpent
                | RetryReason::ConcurrencyLimit
                | RetryReason::TooManyRequests,
            ..
        }
    )
}
