//! The project: `dinmo.yml`, the model files, and everything resolved from them.

pub mod byte_size;
mod env;
pub mod fingerprints;
mod load;
mod loaded;
pub mod model_file;
pub mod project_file;
pub mod selection;

pub use crate::error::{ConfigProblem, ConfigReport, Position};
pub use load::{find_project_root, load_project, load_project_to_read_state};
pub use loaded::{DestinationDef, Execution, MappedField, Model, Project, Source, Sync};
pub use model_file::{OnChange, OnDelete};
pub use project_file::{DestinationConfig, SourceFormat, SourceOptions};
