//! `dinmo init [DIR]`: a starter project that validates and runs as written.

use std::path::Path;

use super::status::Status;
use crate::cli::InitArgs;
use crate::error::{DinmoError, Result};

const PROJECT: &str = r#"# A dinmo project. Every key is described in docs/yaml-reference.md; `dinmo schema` prints a JSON Schema for editors.
name: my_billing
model-paths: [models]
state: .dinmo/state            # or s3://bucket/dinmo-state
target-path: target
sources:
  usage_events:
    location: data/usage_events.csv
    format: csv
destinations:
  usage_files:
    type: zuora_file           # Zuora usage import files; see `type: zuora` for the REST API
    path: out/zuora
    layout: standard           # Zuora Billing's usage file format; `active_rating` for Active Rating tenants
"#;

const MODEL: &str = r#"model: api_calls_daily
description: API calls per account and day
tags: [billing]
sql: |
  SELECT account_number,
         'API_CALL'                            AS uom,
         date_trunc('day', CAST(ts AS TIMESTAMP)) AS usage_day,
         count(*)                              AS calls
  FROM usage_events
  GROUP BY 1, 2, 3
primary_key: [account_number, uom, usage_day]
syncs:
  - destination: usage_files
    mapping:
      ACCOUNT_ID: account_number
      UOM: uom
      STARTDATE: usage_day
      QTY: calls
    max_new_rows: 100000
"#;

const DATA: &str = "account_number,ts,endpoint
A00000001,2026-11-20T08:15:00Z,/v1/orders
A00000001,2026-11-20T09:02:11Z,/v1/orders
A00000002,2026-11-20T10:44:52Z,/v1/invoices
A00000001,2026-11-21T07:30:00Z,/v1/orders
";

const GITIGNORE: &str = ".dinmo/\ntarget/\nout/\n";

pub fn init(args: &InitArgs) -> Result<Status> {
    let dir = args.dir.clone().unwrap_or_else(|| Path::new(".").to_path_buf());
    if dir.join("dinmo.yml").exists() {
        return Err(DinmoError::ProjectExists {
            path: dir.join("dinmo.yml"),
        });
    }
    for (relative, text) in [
        ("dinmo.yml", PROJECT),
        ("models/api_calls_daily.yml", MODEL),
        ("data/usage_events.csv", DATA),
        (".gitignore", GITIGNORE),
    ] {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(DinmoError::io(parent))?;
        }
        std::fs::write(&path, text).map_err(DinmoError::io(&path))?;
    }
    println!(
        "wrote a dinmo project in {}; next: dinmo validate, dinmo plan, dinmo run",
        dir.display()
    );
    Ok(Status::Success)
}
