//! dinmo destinations.
//!
//! A destination sees Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es whose columns
//! are already named after the destination's fields, plus the engine's row-key column
//! ([`ROW_KEY_COLUMN`]). It knows nothing of YAML files, snapshots or DataFusion: it checks a
//! mapped schema ([`Destination::validate_schema`]), checks rows against its field rules
//! ([`Destination::check_batch`]) and writes batches, answering for every row whether the
//! destination accepted it or refused it and why ([`BatchOutcome`]).

pub mod destination;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod ids;
pub mod registry;
pub mod rules;
pub mod zuora;
pub mod zuora_common;
pub mod zuora_file;
pub mod zuora_revenue;

pub use destination::{
    BatchOutcome, Correcting, Delivery, Destination, DestinationSpec, DestinationWriter, Fallback, FieldKind,
    FieldRoles, FieldSpec, HOLDING_COLUMNS, Holdings, HoldingsQuery, HoldingsSink, Ledger, Locate, Located,
    OpenLocation, OutputLocation, ROW_KEY_COLUMN, ReceiverFailed, RecordState, Resolution, RowStatus, SchemaProblem,
    WriteContext, holdings_schema, is_engine_column,
};
pub use error::{ConnectorError, Result};
pub use ids::{RunId, SyncId, Timestamp};
pub use rules::{RejectCode, Rejection};
