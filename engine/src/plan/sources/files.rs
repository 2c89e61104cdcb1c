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

/// The folder name Hive and Spark give a null partition value.
pub(super) const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The scheme of the store a source with a glob or `exclude:` globs lists its files through
/// (`dinmo-source://<source>/`, see `hidden::Selection`); its paths are the real store's.
pub(super) const SELECTING_SCHEME: &str = "dinmo-source";

/// The real store URL (`file:///`, `s3://bucket/`) behind each selecting store's URL.
static SELECTING_STORES: std::sync::LazyLock<std::sync::RwLock<std::collections::BTreeMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// Records that `selecting` (a [`SELECTING_SCHEME`] store URL) lists files of `real`.
pub(super) fn record_selecting_store(selecting: &str, real: &str) {
    if let Ok(mut stores) = SELECTING_STORES.write() {
        stores.insert(selecting.to_string(), real.to_string());
    }
}

/// The URL of `location` in the store behind `url`, for messages and for reading one file
/// on its own: a selecting store's files are named in the real store.
pub(super) fn file_url(url: &ListingTableUrl, location: &object_store::path::Path) -> String {
    let store = url.object_store();
    let real = SELECTING_STORES
        .read()
        .ok()
        .and_then(|stores| stores.get(store.as_str()).cloned());
    format!("{}{}", real.as_deref().unwrap_or(store.as_str()), location)
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
                Ok(schema) if format.get_ext() == "parquet" => Ok(FileColumns {
                    file: name,
                    schema: int96_in_utc(store, file, schema).await,
                }),
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

/// `schema` (a Parquet file's) with its INT96 timestamp columns in UTC. INT96 (Spark's
/// default timestamp) holds UTC instants, but Arrow reads it without a zone; so read, it
/// would not unify with the same column written as a UTC-adjusted `TIMESTAMP_MICROS` by
/// another writer. A footer that cannot be read leaves the schema as it is (the read itself
/// then names the file).
async fn int96_in_utc(
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
    schema: arrow::datatypes::SchemaRef,
) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::DataType;
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, None)))
    {
        return schema;
    }
    let Some(descriptor) = parquet_schema(store.as_ref(), file).await else {
        return schema;
    };
    let int96: Vec<String> = descriptor
        .columns()
        .iter()
        .filter(|c| c.physical_type() == parquet::basic::Type::INT96 && c.path().parts().len() == 1)
        .map(|c| c.name().to_string())
        .collect();
    if int96.is_empty() {
        return schema;
    }
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, None) if int96.contains(f.name()) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(*unit, Some("UTC".into()))),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// The Parquet schema in `file`'s footer, read with two ranged reads; `None` when it cannot be
/// read.
async fn parquet_schema(
    store: &dyn ObjectStore,
    file: &ObjectMeta,
) -> Option<Arc<parquet::schema::types::SchemaDescriptor>> {
    use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
    let end = file.size.checked_sub(8)?;
    let tail = store.get_range(&file.location, end..file.size).await.ok()?;
    let length = FooterTail::try_from(tail.as_ref()).ok()?.metadata_length() as u64;
    let footer = store
        .get_range(&file.location, end.checked_sub(length)?..end)
        .await
        .ok()?;
    ParquetMetaDataReader::decode_schema(&footer).ok()
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
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Some(
            "is a JSON array, but `format: json` reads newline-delimited JSON (one object per line, as Spark, \
             BigQuery and Snowflake export it): export it as NDJSON (`jq -c '.[]'` converts an array)"
                .to_string(),
        );
    }
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
