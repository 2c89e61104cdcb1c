//! dinmo: warehouse-native reverse ETL for usage-based billing.
//!
//! The folders follow a run, top to bottom, and each depends only on those below it:
//!
//! - [`cli`]: arguments parsed into operations, reports rendered, `run_results.json`,
//!   logging;
//! - [`ops`]: every command as a library operation, built and awaited
//!   (`RunOp::new(&project).dry_run(true).await`);
//! - [`sync`]: one sync of a run: settle what earlier runs left pending, send the new rows
//!   through a destination, commit what it acknowledged, report;
//! - [`diff`]: stage each model's output once with its row keys and anti-join it against each
//!   sync's snapshot;
//! - [`plan`]: register the sources, build the destinations, plan every model's SQL in
//!   DataFusion, save and summarise plans;
//! - [`project`] (the YAML files, selection, fingerprints) and [`state`] (the state store:
//!   manifests, snapshot parts, row keys, locks);
//! - [`error`], [`settings`] and [`storage`], used by all.
//!
//! `docs/architecture.md` explains the tree; a unit test (`layering`) keeps the directions.

pub mod cli;
pub mod diff;
pub mod error;
pub mod ops;
pub mod plan;
pub mod project;
pub mod settings;
pub mod state;
pub mod storage;
pub mod sync;

#[cfg(test)]
mod layering;

pub use error::{DinmoError, Result};
