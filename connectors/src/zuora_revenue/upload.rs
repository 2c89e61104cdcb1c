//! One file to Revenue, exactly once: the journal is read first (a replay of a stopped run
//! finds what it already sent), the intent is recorded before the upload, the request id
//! right after Revenue's answer, and the status is polled until the batch is staged or failed.
//!
//! What an earlier record means when the same file comes round again:
//! - none: never sent; upload it;
//! - `intent`: sent or not, nobody knows, and Revenue cannot be asked without a request id:
//!   stop ([`ConnectorError::UploadOutcomeUnknown`]), a person checks Uploaded Files;
//! - `received`: ask Revenue's status endpoint;
//! - `staged` / `failed`: the answer is known; nothing is sent.

use crate::ids::RunId;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::journal::{Journal, Stage, UploadRecord};
use super::request::ReadyFile;
use super::service::{RevenueCall, RevenueService, UploadStatus, request_id, upload_status};
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
}

impl Uploader {
    fn record(&self, file: &ReadyFile, stage: Stage) -> UploadRecord {
        UploadRecord {
            file: file.name.clone(),
            template: self.template.clone(),
            rows: file.rows(),
            keys_hash: file.keys_hash.clone(),
            stage,
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
        self.follow(file, request_id).await
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
        id: format!("revenue:{request_id}:{}", file.name),
    }
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
