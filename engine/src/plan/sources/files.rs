//! The files of a source, one at a time: each file's own schema, and the URL and line that
//! name a file at fault. Used by registration and by the diagnosis after a failed query.

use std::sync::Arc;

use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::SessionState;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::resolve::FileColumns;

/// Prefix of the name a partitioned source's listing is registered under, beneath the view
/// named after the source.
pub(super) const FILES_TABLE_PREFIX: &str = "__dinmo_files_";

/// The URL of `location` in the store behind `url`, for messages.
pub(super) fn file_url(url: &ListingTableUrl, location: &object_store::path::Path) -> String {
    format!("{}{}", url.object_store().as_str(), location)
}

/// Each file's schema as `format` reads it, in the order of `files`; or the first file that
/// cannot be read, named, and why.
pub(super) async fn file_schemas(
    state: &SessionState,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    format: &Arc<dyn FileFormat>,
    files: &[ObjectMeta],
) -> std::result::Result<Vec<FileColumns>, (String, String)> {
    let concurrency = state.config_options().execution.meta_fetch_concurrency.get();
    futures::stream::iter(files)
        .map(|file| async move {
            let name = file_url(url, &file.location);
            match format.infer_schema(state, store, std::slice::from_ref(file)).await {
                Ok(schema) => Ok(FileColumns { file: name, schema }),
                Err(error) => {
                    let problem = match format.get_ext().as_str() {
                        "parquet" => format!("is not a readable Parquet file ({} bytes): {error}", file.size),
                        "json" => bad_json_line(store.as_ref(), &file.location)
                            .await
                            .unwrap_or_else(|| format!("cannot be read: {error}")),
                        _ => format!("cannot be read: {error}"),
                    };
                    Err((name, problem))
                }
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await
}

/// `line N: why` for the first line of a newline-delimited JSON object that is not a JSON
/// object (blank lines are allowed, as Arrow's reader allows them).
pub(super) async fn bad_json_line(store: &dyn ObjectStore, location: &object_store::path::Path) -> Option<String> {
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
