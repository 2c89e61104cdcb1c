//! `dinmo schema`: the JSON Schema of `dinmo.yml` or of a model file, generated from the
//! config types (their `///` comments become descriptions), for editors.

use super::status::Status;
use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::Result;

pub fn schema(args: &SchemaArgs) -> Result<Status> {
    println!("{}", crate::ops::config_schema(args.kind == SchemaKind::Project)?);
    Ok(Status::Success)
}
