//! The state store: per sync, the snapshot parts of acknowledged rows, run manifests, pending
//! intents and rejected rows, on any `object_store` backend.
//!
//! ```text
//! <sync>/snapshot/<run>.parquet    rows the destination acknowledged in run <run>
//! <sync>/runs/<run>.json           manifest
//! <sync>/pending/<run>.parquet     rows about to be sent, with their keys
//! <sync>/rejected/<run>.parquet    rows the destination refused, with code and message
//! <sync>/lock                      held by the run in progress
//! ```

mod lock;
mod manifest;
mod parts;
mod store;

pub use lock::{LockHolder, SyncLocks};
pub use manifest::{Counts, MANIFEST_FORMAT_VERSION, Outcome, PartInfo, Rollback, RunManifest};
pub use parts::LocalPartWriter;
pub use store::{StateStore, VerifiedSnapshot};
