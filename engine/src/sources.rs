//! Registers the project's sources as DataFusion tables.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use tracing::debug;

use crate::error::{DinmoError, Result};
use crate::project::{Source, SourceFormat};
use crate::storage::{is_url, open_location};

/// Registers the object store behind `location` with `ctx`, unless it is local.
pub fn register_store(ctx: &SessionContext, location: &str) -> Result<()> {
    if is_url(location) && !location.starts_with("file://") {
        let opened = open_location(location)?;
        ctx.register_object_store(&opened.base_url, opened.store);
    }
    Ok(())
}

/// Registers `source` as a table named after it.
pub async fn register_source(ctx: &SessionContext, source: &Source) -> Result<()> {
    let error = |message: String| DinmoError::Source {
        source_name: source.name.clone(),
        location: source.location.clone(),
        message,
    };
    register_store(ctx, &source.location)?;
    let url = ListingTableUrl::parse(&source.location).map_err(|e| error(e.to_string()))?;
    let format: Arc<dyn FileFormat> = match source.format {
        SourceFormat::Parquet => Arc::new(ParquetFormat::default()),
        SourceFormat::Csv => {
            let delimiter = source.options.delimiter.unwrap_or(',');
            if !delimiter.is_ascii() {
                return Err(error(format!(
                    "csv delimiter `{delimiter}` must be a single ASCII character"
                )));
            }
            Arc::new(
                CsvFormat::default()
                    .with_has_header(source.options.has_header.unwrap_or(true))
                    .with_delimiter(delimiter as u8),
            )
        }
        SourceFormat::Json => Arc::new(JsonFormat::default()),
    };
    let extension = source
        .options
        .file_extension
        .clone()
        .unwrap_or_else(|| source.format.default_extension().to_string());
    let mut options = ListingOptions::new(format).with_file_extension(extension);
    let state = ctx.state();
    let partitions = match &source.options.partition_columns {
        Some(columns) => columns.clone(),
        None => options
            .infer_partitions(&state, &url)
            .await
            .map_err(|e| error(e.to_string()))?,
    };
    if !partitions.is_empty() {
        debug!(source = %source.name, ?partitions, "hive partition columns");
        options = options.with_table_partition_cols(partitions.into_iter().map(|p| (p, DataType::Utf8)).collect());
    }
    let schema = options
        .infer_schema(&state, &url)
        .await
        .map_err(|e| error(e.to_string()))?;
    if schema.fields().is_empty() {
        return Err(error("no files found".to_string()));
    }
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| error(e.to_string()))?;
    ctx.register_table(source.name.as_str(), Arc::new(table))
        .map_err(|e| error(e.to_string()))?;
    Ok(())
}
