//! The project: `dinmo.yml`, the model files, and everything resolved from them.

mod env;
mod load;
mod loaded;
pub mod fingerprints;
pub mod model_file;
pub mod selection;
pub mod project_file;

pub use crate::error::{ConfigProblem, ConfigReport, Position};
pub use load::{find_project_root, load_project};
pub use loaded::{DestinationDef, MappedField, Model, Project, Source, Sync};
pub use project_file::{DestinationConfig, SourceFormat, SourceOptions};
