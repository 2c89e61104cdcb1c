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
//! matched to the file's line that has exactly its columns' values, one line each. When
//! which rows Revenue took cannot be told (counts that do not add up to the file, a listed row
//! that matches no line, a list that cannot be read) the upload is recorded `undecided` and the
//! run stops: no later run uploads it or asks again until a person answers for it.

use crate::ids::RunId;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::journal::{Journal, Stage, UploadRecord};
use super::request::ReadyFile;
use super::service::{
    Answer, AsyncStatus, RevenueCall, RevenueService, UploadStatus, async_status, rejected_rows, request_id,
    upload_status,
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

    /// The error for an upload Revenue received of which it cannot be told which rows Revenue
    /// took (see [`Stage::Undecided`]).
    fn rows_unknown(&self, file: &ReadyFile, reason: String) -> ConnectorError {
        ConnectorError::UploadRowsUnknown {
            destination: self.destination.clone(),
            file: file.name.clone(),
            template: self.template.clone(),
            rows: file.rows(),
            reason,
        }
    }

    /// Records upload `id` of `file` as [`Stage::Undecided`] for `reason`, so that no later
    /// run asks or uploads again and a person can answer for it; returns the error to stop
    /// with.
    async fn undecided(&self, file: &ReadyFile, id: &str, reason: String) -> Result<ConnectorError> {
        let stage = Stage::Undecided {
            request_id: id.to_string(),
            reason: reason.clone(),
        };
        self.journal.write(&self.run, &self.record(file, stage)).await?;
        Ok(self.rows_unknown(file, reason))
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
                Stage::Undecided { reason, .. } => Err(self.rows_unknown(
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
                    let reason = format!(
                        "upload {id}: Revenue counts {succeeded} row(s) taken and {failed} failed, but the file holds {}",
                        file.rows()
                    );
                    return Err(self.undecided(file, &id, reason).await?);
                }
                AsyncStatus::Staged | AsyncStatus::Settled { failed: 0, .. } => {
                    break (Stage::Staged { request_id: id.clone() }, delivered(file, &id));
                }
                AsyncStatus::Settled { failed, .. } => {
                    let rejected = match self.rejected_lines(file, &id, failed).await? {
                        Ok(rejected) => rejected,
                        Err(reason) => return Err(self.undecided(file, &id, format!("upload {id}: {reason}")).await?),
                    };
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
    /// `Ok(Err(reason))` when which lines those are cannot be told.
    async fn rejected_lines(
        &self,
        file: &ReadyFile,
        id: &str,
        failed: u64,
    ) -> Result<std::result::Result<Vec<(u64, String)>, String>> {
        let call = RevenueCall::AsyncErrors { id: id.to_string() };
        let answer = self.service.call(&call).await?;
        if !(200..300).contains(&answer.status) {
            return Err(self.service.api_error(&call, &answer));
        }
        Ok(match_rejected(file, &answer, failed))
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

/// Matches the rows Revenue lists as rejected in `answer` (`failed` of them, its status says)
/// to `file`'s data lines, each to the one line that has exactly its values, one line each:
/// the lines (from 0) with Revenue's reasons, or why which lines they are cannot be told.
fn match_rejected(file: &ReadyFile, answer: &Answer, failed: u64) -> std::result::Result<Vec<(u64, String)>, String> {
    let listed = rejected_rows(&answer.body)
        .ok_or_else(|| format!("Revenue's list of rejected rows cannot be read: {}", answer.message()))?;
    let mut reader = csv::ReaderBuilder::new().from_reader(file.bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the file's header cannot be read: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut lines: Vec<Option<Vec<String>>> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("the file cannot be read back: {e}"))?;
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
            return Err(format!(
                "Revenue lists a rejected row that matches no line of the file ({})",
                values.join(",")
            ));
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
        return Err(format!(
            "its status says {failed} row(s) failed but Revenue lists {}",
            rejected.len()
        ));
    }
    rejected.sort();
    Ok(rejected)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn file() -> ReadyFile {
        ReadyFile {
            sequence: 1,
            name: "f.csv".into(),
            bytes: b"SO Line ID,Quantity\nA,1\nB,n/a\nA,1\nC,n/a\n".to_vec(),
            keys_hash: String::new(),
            members: (0..4).map(|i| (i, 0)).collect(),
        }
    }

    fn listing(rows: &[(&str, &str)]) -> Answer {
        let data: Vec<_> = rows
            .iter()
            .map(|(line, quantity)| json!({"SO Line ID": line, "Quantity": quantity, "error_message": "not a number"}))
            .collect();
        Answer {
            status: 200,
            body: json!([{ "data": data }]),
        }
    }

    #[test]
    fn rejected_rows_are_matched_to_their_lines_one_line_each() {
        let matched = match_rejected(&file(), &listing(&[("C", "n/a"), ("B", "n/a")]), 2).unwrap();
        assert_eq!(
            matched,
            [(1, "not a number".to_string()), (3, "not a number".to_string())]
        );
        // Two listed rows with the same values take two lines that have them.
        let twice = match_rejected(&file(), &listing(&[("A", "1"), ("A", "1")]), 2).unwrap();
        assert_eq!(twice.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn rejected_rows_that_cannot_be_placed_are_said_not_guessed() {
        let unmatched = match_rejected(&file(), &listing(&[("B", "2")]), 1).unwrap_err();
        assert!(unmatched.contains("matches no line of the file (B,2)"), "{unmatched}");
        let more_than_lines = match_rejected(&file(), &listing(&[("B", "n/a"), ("B", "n/a")]), 2).unwrap_err();
        assert!(more_than_lines.contains("matches no line"), "{more_than_lines}");
        let miscounted = match_rejected(&file(), &listing(&[("B", "n/a")]), 2).unwrap_err();
        assert!(
            miscounted.contains("says 2 row(s) failed but Revenue lists 1"),
            "{miscounted}"
        );
        let unreadable = Answer {
            status: 200,
            body: json!("no list"),
        };
        assert!(
            match_rejected(&file(), &unreadable, 1)
                .unwrap_err()
                .contains("cannot be read")
        );
    }
}
