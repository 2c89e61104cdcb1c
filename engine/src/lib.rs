//! dinmo: warehouse-native reverse ETL for usage-based billing.
//!
//! A run loads the project ([`project`]), plans every model's SQL in DataFusion
//! ([`planning`]), stages each model's output once with its row keys and anti-joins it against
//! each sync's snapshot ([`diff`]), and sends the new rows through a destination from
//! `dinmo-connectors`, committing to the state store ([`state`]) only what the destination
//! acknowledged ([`sync_run`]).

pub mod artifacts;
pub mod cli;
pub mod commands;
pub mod delivery;
pub mod destinations;
pub mod diff;
pub mod error;
pub mod logging;
pub mod plan_summary;
pub mod planning;
pub mod progress;
pub mod project;
pub mod recovery;
pub mod report;
pub mod row_key;
pub mod run_context;
pub mod saved_plan;
pub mod selection;
pub mod settings;
pub mod sources;
pub mod state;
pub mod storage;
pub mod sync_run;

pub use error::{DinmoError, Result};
