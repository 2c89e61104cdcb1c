//! The command line: arguments ([`args`]), one module per command ([`commands`]), how reports
//! are printed ([`render`]), the `run_results.json` artifact ([`run_results`]) and logging.

pub mod args;
pub mod commands;
pub mod logging;
pub mod render;
pub mod run_results;

pub use args::*;
