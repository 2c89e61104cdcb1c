//! Registers the project's sources as DataFusion tables.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use tracing::{debug, warn};

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
    let store = state
        .runtime_env()
        .object_store(url.object_store())
        .map_err(|e| error(e.to_string()))?;
    let files: Vec<ObjectMeta> = url
        .list_all_files(&state, store.as_ref(), &options.file_extension)
        .await
        .map_err(|e| error(e.to_string()))?
        .try_collect()
        .await
        .map_err(|e| error(e.to_string()))?;
    for empty in files.iter().filter(|f| f.size == 0) {
        let file = file_url(&url, &empty.location);
        if !source.options.skip_empty_files {
            return Err(DinmoError::SourceFile {
                source_name: source.name.clone(),
                file,
                problem: "is empty (0 bytes): a failed export? Remove it, or set `skip_empty_files: true` in the \
                          source's options to skip such files with a warning"
                    .into(),
            });
        }
        warn!(source = %source.name, file = %file, "skipping an empty file (skip_empty_files)");
    }
    let schema = match options.infer_schema(&state, &url).await {
        Ok(schema) => schema,
        Err(e) => {
            // Name the file: DataFusion's error names none.
            let format = Arc::clone(&options.format);
            if let Some(found) = find_bad_file(&state, &url, &store, format, &files).await {
                return Err(DinmoError::SourceFile {
                    source_name: source.name.clone(),
                    file: found.0,
                    problem: found.1,
                });
            }
            return Err(error(e.to_string()));
        }
    };
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

/// The URL of `location` in the store behind `url`, for messages.
fn file_url(url: &ListingTableUrl, location: &object_store::path::Path) -> String {
    format!("{}{}", url.object_store().as_str(), location)
}

/// The first of `files` that `format` cannot read on its own, and why: read one file at a time
/// after a source failed as a whole, so the error can name the file. A newline-delimited JSON
/// file is also read line by line, for the line at fault.
async fn find_bad_file(
    state: &datafusion::execution::SessionState,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    format: Arc<dyn FileFormat>,
    files: &[ObjectMeta],
) -> Option<(String, String)> {
    for file in files.iter().filter(|f| f.size > 0) {
        let name = file_url(url, &file.location);
        if format.get_ext() == "json" {
            if let Some(problem) = bad_json_line(store.as_ref(), &file.location).await {
                return Some((name, problem));
            }
            continue;
        }
        if let Err(error) = format.infer_schema(state, store, std::slice::from_ref(file)).await {
            let problem = match format.get_ext().as_str() {
                "parquet" => format!("is not a readable Parquet file ({} bytes): {error}", file.size),
                _ => format!("cannot be read: {error}"),
            };
            return Some((name, problem));
        }
    }
    None
}

/// `line N: why` for the first line of a newline-delimited JSON object that is not a JSON
/// object (blank lines are allowed, as Arrow's reader allows them).
async fn bad_json_line(store: &dyn ObjectStore, location: &object_store::path::Path) -> Option<String> {
    let bytes = match store.get(location).await {
        Ok(got) => got.bytes().await,
        Err(error) => return Some(format!("cannot be read: {error}")),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(error) => return Some(format!("cannot be read: {error}")),
    };
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Some(format!("line {}: not a JSON object", index + 1)),
            Err(error) => return Some(format!("line {}: {error}", index + 1)),
        }
    }
    None
}

/// After a model's query failed reading its data: the first file of any registered source
/// that cannot be read, named (the query's own error names none).
pub async fn diagnose(ctx: &SessionContext) -> Option<DinmoError> {
    let state = ctx.state();
    let catalog = ctx.catalog("datafusion")?;
    let schema = catalog.schema("public")?;
    for name in schema.table_names() {
        let Ok(Some(table)) = schema.table(&name).await else {
            continue;
        };
        let Some(listing) = table.downcast_ref::<ListingTable>() else {
            continue;
        };
        let options = listing.options();
        for url in listing.table_paths() {
            let Ok(store) = state.runtime_env().object_store(url.object_store()) else {
                continue;
            };
            let Ok(listed) = url
                .list_all_files(&state, store.as_ref(), &options.file_extension)
                .await
            else {
                continue;
            };
            // A diagnosis: a source that cannot even be listed is not the one to name here.
            let Ok(files) = listed.try_collect::<Vec<ObjectMeta>>().await else {
                continue;
            };
            if let Some((file, problem)) = find_bad_file(&state, url, &store, Arc::clone(&options.format), &files).await
            {
                return Some(DinmoError::SourceFile {
                    source_name: name,
                    file,
                    problem,
                });
            }
        }
    }
    None
}
