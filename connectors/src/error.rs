//! The connectors' error type. Row-level refusals are not errors: they are
//! [`Rejection`](crate::Rejection)s carried in a [`BatchOutcome`](crate::BatchOutcome).

use object_store::path::Path;

/// Result alias for the connectors crate.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// Everything that can stop a destination from writing. Grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    // ---- the user's configuration ----
    /// A config value the destination cannot work with.
    #[error("destination `{destination}`: {message}")]
    InvalidConfig { destination: String, message: String },

    // ---- the data handed to the destination ----
    /// The batch lacks a column the destination's validated schema promised.
    #[error("destination `{destination}`: batch has no column `{column}`")]
    MissingColumn { destination: String, column: String },

    /// An Arrow conversion failed on data the schema check had accepted.
    #[error("destination `{destination}`: cannot convert column `{column}`: {source}")]
    Convert {
        destination: String,
        column: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    // ---- a file the user downloaded from Zuora ----
    /// A usage export (`dinmo reconcile --zuora-export`) dinmo cannot read as one.
    #[error("usage export `{file}`: {message}")]
    UsageExport { file: String, message: String },

    /// Whoever received the records read back stopped taking them (it reports its own error).
    #[error(transparent)]
    ReceiverFailed(#[from] ReceiverFailed),

    // ---- a remote API ----
    /// Authentication failed (the secret is never part of the message).
    #[error("destination `{destination}`: authentication failed at {url} (HTTP {status}): {message}")]
    Auth {
        destination: String,
        url: String,
        status: u16,
        message: String,
    },

    /// A request failed for good, with Zuora's code when it gave one.
    #[error("destination `{destination}`: {method} {url} failed (HTTP {status}, code {code}): {message}")]
    Api {
        destination: String,
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },

    /// Every attempt of a request failed with a retryable error.
    #[error("destination `{destination}`: {method} {url} still failing after {attempts} attempts: {last}")]
    RetriesExhausted {
        destination: String,
        method: String,
        url: String,
        attempts: usize,
        #[source]
        last: crate::http::RetryReason,
    },

    /// The HTTP client could not be built.
    #[error("destination `{destination}`: cannot build the HTTP client: {message}")]
    Client { destination: String, message: String },

    /// A request's task ended without an answer (it panicked or the runtime shut down).
    #[error("destination `{destination}`: a request was interrupted: {source}")]
    Interrupted {
        destination: String,
        #[source]
        source: tokio::task::JoinError,
    },

    /// An import did not finish in time.
    #[error("destination `{destination}`: import {import_id} still {status} after {waited_secs} s")]
    ImportTimeout {
        destination: String,
        import_id: String,
        status: String,
        waited_secs: u64,
    },

    /// An upload to Zuora Revenue may or may not have been received, and Revenue cannot be
    /// asked (no request id was recorded). Revenue has no duplicate detection, so it is not
    /// sent again: a person checks the Uploaded Files list.
    #[error(
        "destination `{destination}`: whether Zuora Revenue received `{file}` (template `{template}`, {rows} row(s)) is unknown: {reason}. \
         It is not uploaded again, since Revenue has no duplicate detection. Look for `{file}` in Revenue's File Upload > Uploaded Files list"
    )]
    UploadOutcomeUnknown {
        destination: String,
        file: String,
        template: String,
        rows: u64,
        reason: String,
    },

    /// Revenue received an asynchronous upload, but which of its rows it took cannot be told
    /// (counts that do not add up to the file, rejected rows that match no line). Not sent
    /// again; a person checks what Revenue staged.
    #[error(
        "destination `{destination}`: Zuora Revenue received `{file}` (template `{template}`, {rows} row(s)) but which of its rows it took cannot be told: {reason}. \
         It is not uploaded again. Check what Revenue staged from `{file}` (File Upload > Uploaded Files): if it holds every row, answer that it was sent; \
         otherwise remove what it staged from the file and answer that it was not, so that the next run uploads it again"
    )]
    UploadRowsUnknown {
        destination: String,
        file: String,
        template: String,
        rows: u64,
        reason: String,
    },

    /// An upload was received but neither staged nor failed in time.
    #[error(
        "destination `{destination}`: Zuora Revenue has not staged `{file}` (request {request_id}) after {waited_secs} s; the next run asks again"
    )]
    StatusTimeout {
        destination: String,
        file: String,
        request_id: String,
        waited_secs: u64,
    },

    // ---- the place the destination writes to ----
    /// Writing an output object failed.
    #[error("destination `{destination}`: cannot write `{path}`: {source}")]
    Write {
        destination: String,
        path: Path,
        #[source]
        source: object_store::Error,
    },

    /// Reading the upload journal failed.
    #[error("destination `{destination}`: cannot read the upload record `{path}`: {source}")]
    JournalRead {
        destination: String,
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// An upload record is not what dinmo writes.
    #[error("destination `{destination}`: the upload record `{path}` is damaged: {source}")]
    JournalFormat {
        destination: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },

    /// Encoding a usage file failed.
    #[error("destination `{destination}`: cannot encode `{file}`: {source}")]
    Encode {
        destination: String,
        file: String,
        #[source]
        source: EncodeError,
    },
}

/// The receiver of the records a destination reads back
/// ([`Destination::holdings`](crate::Destination::holdings)) could not take a batch: it keeps
/// its own error, and the destination stops reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the records read back could not be stored")]
pub struct ReceiverFailed;

/// Error from encoding one file.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A single row is larger than the whole size budget of a file.
    #[error("a row of {row_bytes} bytes does not fit in a file of at most {max_bytes} bytes")]
    RowTooLarge { row_bytes: usize, max_bytes: u64 },
    /// The date-time format does not parse (the config's validation refuses such formats).
    #[error("the date-time format `{format}` is not a valid strftime format")]
    DateTimeFormat { format: String },
    /// The ZIP writer failed.
    #[error("{0}")]
    Zip(#[from] zip::result::ZipError),
    /// Writing into the in-memory file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
impl ConnectorError {
    /// A request `destination` gave up on.
    pub fn exhausted(destination: &str, request: crate::http::driver::Exhausted) -> Self {
        ConnectorError::RetriesExhausted {
            destination: destination.to_string(),
            method: request.method,
            url: request.url,
            attempts: request.attempts,
            last: request.last,
        }
    }

    /// The send whose outcome is unknown, for a destination that journals its sends and cannot
    /// be asked about one: it is settled by hand (`dinmo state resolve-pending --file`).
    pub fn undecided_send(&self) -> Option<&str> {
        match self {
            ConnectorError::UploadOutcomeUnknown { file, .. } | ConnectorError::UploadRowsUnknown { file, .. } => {
                Some(file)
            }
            _ => None,
        }
    }
}
