//! Names the file at fault when DataFusion's error names none: a source that cannot be read
//! as a whole is read one file at a time (and an NDJSON file line by line).

use std::sync::Arc;

use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore};

use super::files::{FILES_TABLE_PREFIX, bad_json_line, file_schemas, file_url};
use crate::error::DinmoError;

/// The first of `files` that `format` cannot read on its own, and why: read one file at a time
/// after a source failed as a whole, so the error can name the file. A newline-delimited JSON
/// file is read line by line instead, for the line at fault (schema inference reads only the
/// first lines, so it can pass a file whose later line is broken).
async fn find_bad_file(
    state: &datafusion::execution::SessionState,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    format: Arc<dyn FileFormat>,
    files: &[ObjectMeta],
) -> Option<(String, String)> {
    let files: Vec<ObjectMeta> = files.iter().filter(|f| f.size > 0).cloned().collect();
    if format.get_ext() != "json" {
        return file_schemas(state, url, store, &format, &files).await.err();
    }
    for file in &files {
        if let Some(problem) = bad_json_line(store.as_ref(), &file.location).await {
            return Some((file_url(url, &file.location), problem));
        }
    }
    None
}

/// One listed path of a registered file source: its listing table, the path, the store behind
/// it and its files (sorted).
struct Listed {
    name: String,
    table: Arc<dyn TableProvider>,
    url: ListingTableUrl,
    store: Arc<dyn ObjectStore>,
    files: Vec<ObjectMeta>,
}

impl Listed {
    fn listing(&self) -> Option<&ListingTable> {
        self.table.downcast_ref::<ListingTable>()
    }

    /// The source's name (a partitioned source's listing sits under a prefixed name).
    fn source_name(&self) -> String {
        self.name
            .strip_prefix(FILES_TABLE_PREFIX)
            .map_or_else(|| self.name.clone(), str::to_string)
    }
}

/// Every path of every registered file source, listed. A diagnosis: a source that cannot even
/// be listed is not the one to name here, so it is left out.
async fn listed_sources(ctx: &SessionContext) -> Vec<Listed> {
    let state = ctx.state();
    let Some(schema) = ctx.catalog("datafusion").and_then(|c| c.schema("public")) else {
        return Vec::new();
    };
    let mut listed = Vec::new();
    for name in schema.table_names() {
        let Ok(Some(table)) = schema.table(&name).await else {
            continue;
        };
        let Some(listing) = table.downcast_ref::<ListingTable>() else {
            continue;
        };
        let extension = listing.options().file_extension.clone();
        for url in listing.table_paths().clone() {
            let Ok(store) = state.runtime_env().object_store(url.object_store()) else {
                continue;
            };
            let Ok(stream) = url.list_all_files(&state, store.as_ref(), &extension).await else {
                continue;
            };
            let Ok(mut files) = stream.try_collect::<Vec<ObjectMeta>>().await else {
                continue;
            };
            files.sort_by(|a, b| a.location.cmp(&b.location));
            listed.push(Listed {
                name: name.clone(),
                table: Arc::clone(&table),
                url,
                store,
                files,
            });
        }
    }
    listed
}

/// After a model's query failed reading its data: the first file of any registered source
/// that cannot be read, named (the query's own error names none).
pub async fn diagnose(ctx: &SessionContext) -> Option<DinmoError> {
    let state = ctx.state();
    for listed in listed_sources(ctx).await {
        let Some(listing) = listed.listing() else { continue };
        let format = Arc::clone(&listing.options().format);
        if let Some((file, problem)) = find_bad_file(&state, &listed.url, &listed.store, format, &listed.files).await {
            return Some(DinmoError::SourceFile {
                source_name: listed.source_name(),
                file,
                problem,
            });
        }
    }
    None
}

/// The files of the registered file sources that hold a row whose columns `key` (name, value
/// as text) have those values, at most `limit` of them: after a model's primary key repeated,
/// the files to look at (a day exported twice, a stale file of an aborted job). A source
/// whose files lack a key column is not looked at; nor is a key read from folder names.
pub async fn files_holding(ctx: &SessionContext, key: &[(String, String)], limit: usize) -> Vec<String> {
    use datafusion::datasource::listing::{ListingOptions, ListingTableConfig};
    use datafusion::prelude::{cast, ident, lit};
    use futures::StreamExt;
    let mut found = Vec::new();
    for listed in listed_sources(ctx).await {
        let Some(listing) = listed.listing() else { continue };
        let options = listing.options();
        let partitions: Vec<&str> = options.table_partition_cols.iter().map(|(c, _)| c.as_str()).collect();
        let file_schema = Arc::new(arrow::datatypes::Schema::new(
            listing
                .schema()
                .fields()
                .iter()
                .filter(|f| !partitions.contains(&f.name().as_str()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        if !key
            .iter()
            .all(|(column, _)| file_schema.field_with_name(column).is_ok())
        {
            continue;
        }
        let Some(condition) = key
            .iter()
            .map(|(column, value)| cast(ident(column), arrow::datatypes::DataType::Utf8).eq(lit(value.clone())))
            .reduce(datafusion::prelude::Expr::and)
        else {
            continue;
        };
        let single = ListingOptions::new(Arc::clone(&options.format)).with_file_extension(&options.file_extension);
        let url = &listed.url;
        let holding: Vec<String> = futures::stream::iter(&listed.files)
            .map(|file| {
                let (single, file_schema, condition) = (single.clone(), Arc::clone(&file_schema), condition.clone());
                let name = file_url(url, &file.location);
                async move {
                    let path = ListingTableUrl::parse(&name).ok()?;
                    let config = ListingTableConfig::new(path)
                        .with_listing_options(single)
                        .with_schema(file_schema);
                    let table = ListingTable::try_new(config).ok()?;
                    let rows = ctx
                        .read_table(Arc::new(table))
                        .ok()?
                        .filter(condition)
                        .ok()?
                        .count()
                        .await
                        .ok()?;
                    (rows > 0).then_some(name)
                }
            })
            .buffered(4)
            .filter_map(std::future::ready)
            .take(limit.saturating_sub(found.len()))
            .collect()
            .await;
        found.extend(holding);
        if found.len() >= limit {
            break;
        }
    }
    found
}

/// Files of the registered file sources that lack one of `columns` while the source has it
/// (`file (no `column`)`), at most `limit`: after a model's primary key was null, the files
/// whose rows read it as null because they do not hold it at all.
pub async fn files_lacking(ctx: &SessionContext, columns: &[String], limit: usize) -> Vec<String> {
    let state = ctx.state();
    let mut found = Vec::new();
    for listed in listed_sources(ctx).await {
        let Some(listing) = listed.listing() else { continue };
        let options = listing.options();
        let wanted: Vec<&String> = columns
            .iter()
            .filter(|c| listing.schema().field_with_name(c).is_ok())
            .filter(|c| !options.table_partition_cols.iter().any(|(p, _)| p == *c))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let files: Vec<ObjectMeta> = listed.files.iter().filter(|f| f.size > 0).cloned().collect();
        let Ok(schemas) = file_schemas(&state, &listed.url, &listed.store, &options.format, &files).await else {
            continue;
        };
        for file in schemas {
            if let Some(column) = wanted.iter().find(|c| file.schema.field_with_name(c).is_err()) {
                found.push(format!("{} (no `{column}`)", file.file));
                if found.len() >= limit {
                    return found;
                }
            }
        }
    }
    found
}
