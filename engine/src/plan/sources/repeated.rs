//! Partition columns that the files hold too, as Polars' `partition_by` writes them
//! (`dt=2026-11-01/` over files that have a `dt` column): read from the folder names like any
//! partition column, once every file's own values are checked to say the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Schema};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::prelude::{SessionContext, cast, ident, lit};
use object_store::ObjectMeta;

use super::files::{HIVE_NULL, file_url};
use crate::error::{DinmoError, Result};
use crate::project::Source;

/// How a source's files are read: the source, where they are listed, their format and
/// extension, and the schema they are read in.
#[derive(Debug, Clone, Copy)]
pub(super) struct FilesRead<'a> {
    pub source: &'a Source,
    pub url: &'a ListingTableUrl,
    pub format: &'a Arc<dyn FileFormat>,
    pub extension: &'a str,
    pub schema: &'a Arc<Schema>,
}

/// Of `partitions`, those some file's `schema` also holds.
pub(super) fn held_in_files(partitions: &[String], schema: &Schema) -> Vec<String> {
    partitions
        .iter()
        .filter(|p| schema.field_with_name(p).is_ok())
        .cloned()
        .collect()
}

/// Checks that in every file the columns `held` (partition columns the files hold too) have
/// only the value of the file's folder (`dt=2026-11-01/`: `2026-11-01`, compared as text;
/// `__HIVE_DEFAULT_PARTITION__`: null). One query per folder; a folder whose files disagree is
/// read one file at a time to name the file.
pub(super) async fn check_held_values(
    ctx: &SessionContext,
    read: &FilesRead<'_>,
    files: &[ObjectMeta],
    held: &[String],
) -> Result<()> {
    let FilesRead { source, url, .. } = *read;
    // Files by their folders' values of the held columns.
    let mut folders: BTreeMap<Vec<Option<String>>, Vec<&ObjectMeta>> = BTreeMap::new();
    for file in files {
        let Some(segments) = url.strip_prefix(&file.location) else {
            continue;
        };
        let values: BTreeMap<&str, &str> = segments.filter_map(|s| s.split_once('=')).collect();
        let key = held
            .iter()
            .map(|column| {
                values
                    .get(column.as_str())
                    .filter(|v| **v != HIVE_NULL)
                    // Hive and Spark escape `/`, `=`, `:` and `%` in partition values.
                    .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
            })
            .collect();
        folders.entry(key).or_default().push(file);
    }
    for (values, group) in &folders {
        if let Some(mut found) = disagreement(ctx, read, group, held, values).await? {
            // Name the file: the first of the folder that disagrees on its own.
            let mut culprit = file_url(url, &group[0].location);
            for file in group {
                if let Some(own) = disagreement(ctx, read, &[file], held, values).await? {
                    culprit = file_url(url, &file.location);
                    found = own;
                    break;
                }
            }
            let (column, found) = found;
            let folder = values[held.iter().position(|h| *h == column).unwrap_or(0)]
                .clone()
                .unwrap_or_else(|| HIVE_NULL.to_string());
            return Err(DinmoError::SourceFile {
                source_name: source.name.clone(),
                file: culprit,
                problem: format!(
                    "holds the partition column `{column}` with {found}, but its folder `{column}={folder}` says \
                     otherwise: the file is in the wrong folder, or the column means something else. Move the file, \
                     or rename the column in the export"
                ),
            });
        }
    }
    Ok(())
}

/// The first held column whose values in `files` are not the folder's `values`, and what
/// they are instead.
async fn disagreement(
    ctx: &SessionContext,
    read: &FilesRead<'_>,
    files: &[&ObjectMeta],
    held: &[String],
    values: &[Option<String>],
) -> Result<Option<(String, String)>> {
    let FilesRead {
        source,
        url,
        format,
        extension,
        schema,
    } = *read;
    let failed = |error| DinmoError::SourceRead {
        source_name: source.name.clone(),
        location: source.location.clone(),
        source: Box::new(error),
    };
    let paths = files
        .iter()
        .map(|f| ListingTableUrl::parse(file_url(url, &f.location)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(failed)?;
    let options = ListingOptions::new(Arc::clone(format)).with_file_extension(extension);
    let config = ListingTableConfig::new_with_multi_paths(paths)
        .with_listing_options(options)
        .with_schema(Arc::clone(schema));
    let table = ListingTable::try_new(config).map_err(failed)?;
    let mut aggregates = Vec::new();
    for column in held {
        let text = cast(ident(column), DataType::Utf8);
        aggregates.push(min(text.clone()));
        aggregates.push(max(text.clone()));
        aggregates.push(count(lit(1)) - count(text));
    }
    let batches = ctx
        .read_table(Arc::new(table))
        .map_err(failed)?
        .aggregate(vec![], aggregates)
        .map_err(failed)?
        .collect()
        .await
        .map_err(failed)?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    for (at, (column, folder)) in held.iter().zip(values).enumerate() {
        let text = |i: usize| -> Option<String> {
            let array = batch.column(i).as_string_opt::<i32>()?;
            array.is_valid(0).then(|| array.value(0).to_string())
        };
        let (low, high) = (text(3 * at), text(3 * at + 1));
        let nulls = arrow::compute::cast(batch.column(3 * at + 2), &DataType::Int64)
            .ok()
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Int64Type>().map(|a| a.value(0)))
            .unwrap_or(0);
        let found = match (&low, &high, nulls) {
            (None, None, _) => "only nulls".to_string(),
            (Some(low), Some(high), 0) if low == high => format!("`{low}`"),
            (Some(low), Some(high), 0) => format!("values from `{low}` to `{high}`"),
            (Some(low), _, n) => format!("`{low}` and {n} null(s)"),
            (None, Some(_), _) => "unreadable values".to_string(),
        };
        let agrees = match folder {
            None => low.is_none(),
            // No rows at all agree with any folder.
            Some(_) if low.is_none() && nulls == 0 => true,
            Some(value) => {
                nulls == 0 && low.as_deref() == Some(value.as_str()) && high.as_deref() == Some(value.as_str())
            }
        };
        if !agrees {
            return Ok(Some((column.clone(), found)));
        }
    }
    Ok(None)
}
