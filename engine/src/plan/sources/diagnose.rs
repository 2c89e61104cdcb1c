//! Names the file at fault when DataFusion's error names none: a source that cannot be read
//! as a whole is read one file at a time (and an NDJSON file line by line).

use std::sync::Arc;

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
                    source_name: name
                        .strip_prefix(FILES_TABLE_PREFIX)
                        .map_or_else(|| name.clone(), str::to_string),
                    file,
                    problem,
                });
            }
        }
    }
    None
}
