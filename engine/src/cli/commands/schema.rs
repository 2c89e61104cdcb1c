//! `dinmo schema`: the JSON Schema of `dinmo.yml` or of a model file, generated from the
//! config types (their `///` comments become descriptions), for editors.

use super::status::Status;
use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::{DinmoError, Result};
use crate::project::model_file::ModelFile;
use crate::project::project_file::ProjectFile;

pub fn schema(args: &SchemaArgs) -> Result<Status> {
    let schema = match args.kind {
        SchemaKind::Project => schemars::schema_for!(ProjectFile),
        SchemaKind::Model => schemars::schema_for!(ModelFile),
    };
    let json = serde_json::to_string_pretty(&schema).map_err(|source| DinmoError::Json {
        what: "the JSON Schema".into(),
        source,
    })?;
    println!("{json}");
    Ok(Status::Success)
}
