//! Registers the project's sources as DataFusion tables, each with one schema resolved from
//! the schemas of all its files (see [`resolve`]).

mod delta;
mod diagnose;
mod files;
mod hidden;
mod pinned;
mod repeated;
mod resolve;

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectMeta;
use tracing::{debug, info, warn};

pub use diagnose::{diagnose, files_holding, files_lacking};
use files::{FILES_TABLE_PREFIX, HIVE_NULL, file_schemas, file_url};
use resolve::{FileColumns, Rules, resolve};

use crate::error::{DinmoError, Result};
use crate::project::{Source, SourceFormat};
use crate::state::SourceVersion;
use crate::storage::{is_url, open_location};

/// Registers the object store behind `location` with `ctx`, its listings skipping hidden
/// names ([`hidden`]); returns the store itself, whose listings show everything.
pub fn register_store(ctx: &SessionContext, location: &str) -> Result<Arc<dyn object_store::ObjectStore>> {
    let (store, base_url) = if is_url(location) && !location.starts_with("file://") {
        let opened = open_location(location)?;
        (opened.store, opened.base_url)
    } else {
        let root = url::Url::parse("file:///").map_err(|error| DinmoError::Location {
            location: location.to_string(),
            message: format!("the file system root is not a URL: {error}"),
        })?;
        let local: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        (local, root)
    };
    ctx.register_object_store(&base_url, Arc::new(hidden::SkipHidden::new(Arc::clone(&store))));
    Ok(store)
}

/// Registers `source` as a table named after it; returns the version read when the source is
/// a versioned table (Delta Lake).
pub async fn register_source(ctx: &SessionContext, source: &Source) -> Result<Option<SourceVersion>> {
    let everything = register_store(ctx, &source.location)?;
    if source.format == SourceFormat::Delta {
        return delta::register_delta(ctx, source, everything).await.map(Some);
    }
    register_files(ctx, source, everything).await?;
    Ok(None)
}

/// Registers a source of files (Parquet, CSV, NDJSON) as a table: the steps of DataFusion's
/// listing-table set-up (format, partitions, listing, per-file schemas, resolution,
/// registration) in the order DataFusion needs them, each failing with an error that names
/// the source. `everything` is the store behind the location, hidden names included.
async fn register_files(
    ctx: &SessionContext,
    source: &Source,
    everything: Arc<dyn object_store::ObjectStore>,
) -> Result<()> {
    let error = |message: String| DinmoError::Source {
        source_name: source.name.clone(),
        location: source.location.clone(),
        message,
    };
    let failed = read_failed(source);
    let url = listing_url(ctx, source, &everything)?;
    if !source.options.ignore_table_log
        && let Some(refusal) = lakehouse_table(&url, everything.as_ref()).await.map_err(failed)?
    {
        return Err(error(refusal));
    }
    let state = ctx.state();
    let store = state.runtime_env().object_store(url.object_store()).map_err(failed)?;
    // Every file below the location (hidden names left out), listed once; then those of the
    // source's extension.
    let mut files: Vec<ObjectMeta> = url
        .list_all_files(&state, store.as_ref(), "")
        .await
        .map_err(failed)?
        .try_collect()
        .await
        .map_err(failed)?;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    let (extension, compression) = extension_and_compression(source, &url, &files)?;
    files.retain(|f| f.location.as_ref().ends_with(extension.as_str()));
    let format: Arc<dyn FileFormat> = match source.format {
        SourceFormat::Parquet => {
            // The session's Parquet options (`DATAFUSION_EXECUTION_PARQUET_*` included), which
            // a default format would ignore.
            let mut options = ctx.state().table_options().parquet.clone();
            // INT96, Spark's default for timestamps, read as nanoseconds wraps around outside
            // 1677–2262 (year 1601 comes back as 2186); as microseconds it holds every instant
            // Spark writes, as Spark and DuckDB read it.
            options.global.coerce_int96.get_or_insert_with(|| "us".to_string());
            Arc::new(ParquetFormat::default().with_options(options))
        }
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
                    .with_delimiter(delimiter as u8)
                    .with_file_compression_type(compression),
            )
        }
        SourceFormat::Json => Arc::new(JsonFormat::default().with_file_compression_type(compression)),
        SourceFormat::Delta => return Err(error("a Delta table is not read as files".into())),
    };
    let mut options = ListingOptions::new(format).with_file_extension(extension.as_str());
    let partitions = match &source.options.partition_columns {
        Some(columns) => columns.clone(),
        None => match options.infer_partitions(&state, &url).await {
            Ok(partitions) => partitions,
            Err(failure) => {
                return Err(match mixed_layouts(&url, &files) {
                    Some(layouts) => error(format!(
                        "its files are in folders of different partition layouts: {layouts}. DataFusion reads one \
                         layout per source: move the files into one layout, or split them into sources"
                    )),
                    None => failed(failure),
                });
            }
        },
    };
    if !partitions.is_empty() {
        debug!(source = %source.name, ?partitions, "hive partition columns");
        options = options.with_table_partition_cols(partitions.iter().map(|p| (p.clone(), DataType::Utf8)).collect());
    }
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
    // DataFusion's listing skips zero-byte files too.
    files.retain(|f| f.size > 0);
    if !partitions.is_empty() {
        let outside: Vec<String> = files
            .iter()
            .filter_map(|file| outside_partitions(&url, &file.location, &partitions))
            .collect();
        if !outside.is_empty() {
            return Err(error(format!(
                "{} file(s) are not in its partition folders ({}), so they would never be read: {}{}. Move \
                 them into a partition folder, or point the source (or another source) at them",
                outside.len(),
                partitions
                    .iter()
                    .map(|p| format!("`{p}=…/`"))
                    .collect::<Vec<_>>()
                    .join(""),
                outside.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                if outside.len() > 5 { "; …" } else { "" }
            )));
        }
    }
    if files.is_empty() {
        return Err(error("no files found".to_string()));
    }
    let columns = file_schemas(&state, &url, &store, &options.format, &files)
        .await
        .map_err(|(file, problem)| DinmoError::SourceFile {
            source_name: source.name.clone(),
            file,
            problem,
        })?;
    let pinned = pinned::pinned_types(ctx, source).await?;
    let mut columns = columns;
    if source.format == SourceFormat::Csv {
        let read = CsvRead {
            extension: &extension,
            compression,
        };
        keep_as_text(ctx, source, &url, &files, read, &pinned, &mut columns).await?;
    }
    let rules = Rules {
        text: source.format != SourceFormat::Parquet,
        csv: source.format == SourceFormat::Csv,
        naive_zone: source.options.naive_timestamp_zone.as_deref().map(Arc::from),
        pinned,
    };
    let schema = resolve(&columns, &rules).map_err(|problems| DinmoError::SourceSchema {
        source_name: source.name.clone(),
        location: source.location.clone(),
        problems,
    })?;
    if schema.fields().is_empty() {
        return Err(error("its files have no columns".to_string()));
    }
    log_drift(&source.name, &schema, &columns);
    let mut schema = Arc::new(schema);
    let held = repeated::held_in_files(&partitions, &schema);
    if !held.is_empty() {
        // Every file must hold them (a file without one would read the folder's value for
        // some rows and not others); then they are read from the folder names.
        for column in &held {
            if let Some(lacking) = columns.iter().find(|f| f.schema.field_with_name(column).is_err()) {
                return Err(DinmoError::SourceFile {
                    source_name: source.name.clone(),
                    file: lacking.file.clone(),
                    problem: format!(
                        "lacks the column `{column}` that other files of the source hold besides their \
                         `{column}=…/` folder: export every file the same way"
                    ),
                });
            }
        }
        let read = repeated::FilesRead {
            source,
            url: &url,
            format: &options.format,
            extension: &extension,
            schema: &schema,
        };
        repeated::check_held_values(ctx, &read, &files, &held).await?;
        schema = Arc::new(arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| !held.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
    }
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(failed)?;
    if partitions.is_empty() {
        ctx.register_table(source.name.as_str(), Arc::new(table))
            .map_err(failed)?;
        return Ok(());
    }
    // Spark and Hive write a null partition value as this folder name, and read it back as
    // NULL, as DuckDB does: the source is a view that says so over the listing.
    let files = format!("{FILES_TABLE_PREFIX}{}", source.name);
    ctx.register_table(files.as_str(), Arc::new(table)).map_err(failed)?;
    let frame = ctx.table(files.as_str()).await.map_err(failed)?;
    let columns: Vec<datafusion::prelude::Expr> = frame
        .schema()
        .fields()
        .iter()
        .map(|field| {
            let column = datafusion::prelude::ident(field.name());
            if partitions.contains(field.name()) {
                datafusion::functions::expr_fn::nullif(column, datafusion::prelude::lit(HIVE_NULL)).alias(field.name())
            } else {
                column
            }
        })
        .collect();
    let plan = frame.select(columns).map_err(failed)?.into_unoptimized_plan();
    let view = datafusion::catalog::view::ViewTable::new(plan, None);
    ctx.register_table(source.name.as_str(), Arc::new(view))
        .map_err(failed)?;
    Ok(())
}

/// The URL a file source is listed at: its location; or, when the location has a glob or the
/// source `exclude:` globs, its folder in a store of its own that lists only the files they
/// select (DataFusion's glob matching leaves `key=value` folders out of the path it matches).
fn listing_url(
    ctx: &SessionContext,
    source: &Source,
    store: &Arc<dyn object_store::ObjectStore>,
) -> Result<ListingTableUrl> {
    let failed = read_failed(source);
    let url = match url_glob(&source.location) {
        // DataFusion takes globs in local paths only.
        Some((folder, glob)) => {
            let folder = url::Url::parse(folder).map_err(|error| DinmoError::LocationUrl {
                location: source.location.clone(),
                source: error,
            })?;
            let glob = glob::Pattern::new(glob).map_err(|error| DinmoError::Source {
                source_name: source.name.clone(),
                location: source.location.clone(),
                message: format!("`{glob}` is not a glob: {error}"),
            })?;
            ListingTableUrl::try_new(folder, Some(glob)).map_err(failed)?
        }
        None => ListingTableUrl::parse(&source.location).map_err(failed)?,
    };
    if url.get_glob().is_none() && source.options.exclude.is_empty() {
        return Ok(url);
    }
    let mut exclude = Vec::new();
    for pattern in &source.options.exclude {
        exclude.push(glob::Pattern::new(pattern).map_err(|error| DinmoError::Source {
            source_name: source.name.clone(),
            location: source.location.clone(),
            message: format!("exclude glob `{pattern}` is not a glob: {error}"),
        })?);
    }
    let selection = hidden::Selection {
        root: url.prefix().clone(),
        include: url.get_glob().clone(),
        exclude,
    };
    let base = format!("{}://{}/", files::SELECTING_SCHEME, source.name);
    let invalid = |error: url::ParseError| DinmoError::Location {
        location: source.location.clone(),
        message: format!("cannot list it through its own store: {error}"),
    };
    let base_url = url::Url::parse(&base).map_err(invalid)?;
    let folder = url::Url::parse(&format!("{base}{}/", url.prefix())).map_err(invalid)?;
    ctx.register_object_store(
        &base_url,
        Arc::new(hidden::SkipHidden::selecting(Arc::clone(store), selection)),
    );
    files::record_selecting_store(&base, url.object_store().as_str());
    ListingTableUrl::try_new(folder, None).map_err(failed)
}

/// A URL location with a glob (`s3://bucket/events/dt=*/*.parquet`) split into its folder
/// (`s3://bucket/events/`) and the glob below it (`dt=*/*.parquet`); `None` for a local path or
/// a URL without one.
fn url_glob(location: &str) -> Option<(&str, &str)> {
    if !is_url(location) || location.starts_with("file://") {
        return None;
    }
    let path_starts = location.find("://")? + 3;
    let mut at = path_starts;
    for segment in location[path_starts..].split('/') {
        if segment.contains(['*', '?', '[']) {
            return Some((&location[..at], &location[at..]));
        }
        at += segment.len() + 1;
    }
    None
}

/// The partition layouts (`key=…/` folders, in order) of `files` (under `url`), one file
/// named for each, when there are several; `None` when there is one.
fn mixed_layouts(url: &ListingTableUrl, files: &[ObjectMeta]) -> Option<String> {
    let mut layouts: Vec<(Vec<&str>, String)> = Vec::new();
    for file in files {
        let Some(segments) = url.strip_prefix(&file.location) else {
            continue;
        };
        let segments: Vec<&str> = segments.collect();
        let keys: Vec<&str> = segments[..segments.len().saturating_sub(1)]
            .iter()
            .map_while(|folder| folder.split_once('=').map(|(key, _)| key))
            .collect();
        if !layouts.iter().any(|(seen, _)| *seen == keys) {
            layouts.push((keys, file_url(url, &file.location)));
        }
    }
    (layouts.len() > 1).then(|| {
        layouts
            .iter()
            .map(|(keys, file)| {
                let layout = if keys.is_empty() {
                    "no partition folders".to_string()
                } else {
                    keys.iter().map(|k| format!("`{k}=…/`")).collect::<String>()
                };
                format!("{layout} (e.g. {file})")
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Why the file at `location` is outside the partition folders `partitions` (the listing reads
/// a file only under `p1=…/p2=…/`, in that order), naming it; `None` when inside.
fn outside_partitions(
    url: &ListingTableUrl,
    location: &object_store::path::Path,
    partitions: &[String],
) -> Option<String> {
    let segments: Vec<&str> = url.strip_prefix(location)?.collect();
    let folders = &segments[..segments.len().saturating_sub(1)];
    let name = || file_url(url, location);
    if folders.is_empty() {
        return Some(format!("{} (at the top of the partitioned folder)", name()));
    }
    // The partition folders come first, in order; folders below them are read.
    for (folder, partition) in folders.iter().zip(partitions) {
        if folder.split_once('=').map(|(key, _)| key) != Some(partition.as_str()) {
            return Some(format!("{} (folder `{folder}` is not `{partition}=…`)", name()));
        }
    }
    (folders.len() < partitions.len()).then(|| format!("{} (not {} folder(s) deep)", name(), partitions.len()))
}

/// How a source's CSV files are read: their extension and compression.
#[derive(Debug, Clone, Copy)]
struct CsvRead<'a> {
    extension: &'a str,
    compression: FileCompressionType,
}

/// Compressions CSV and NDJSON files may have, by the extension after the format's.
const COMPRESSIONS: [(&str, FileCompressionType); 5] = [
    (".gz", FileCompressionType::GZIP),
    (".gzip", FileCompressionType::GZIP),
    (".zst", FileCompressionType::ZSTD),
    (".bz2", FileCompressionType::BZIP2),
    (".xz", FileCompressionType::XZ),
];

/// The extension of a source's files and their compression: from `file_extension` when set
/// (`.csv.gz` is gzip); otherwise, for CSV and NDJSON, from the files found (`listed`: `.csv`,
/// or one of `.csv.gz`, `.csv.zst`, `.csv.bz2`, `.csv.xz`; likewise `.json…`). A source whose
/// files mix compressions is refused, naming one file of each.
fn extension_and_compression(
    source: &Source,
    url: &ListingTableUrl,
    listed: &[ObjectMeta],
) -> Result<(String, FileCompressionType)> {
    let of = |extension: &str| {
        COMPRESSIONS
            .iter()
            .find(|(suffix, _)| extension.ends_with(suffix))
            .map_or(FileCompressionType::UNCOMPRESSED, |(_, c)| *c)
    };
    let plain = source.format.default_extension();
    if let Some(extension) = &source.options.file_extension {
        return Ok((extension.clone(), of(extension)));
    }
    if source.format == SourceFormat::Parquet {
        return Ok((plain.to_string(), FileCompressionType::UNCOMPRESSED));
    }
    let candidates: Vec<String> = std::iter::once(plain.to_string())
        .chain(COMPRESSIONS.iter().map(|(suffix, _)| format!("{plain}{suffix}")))
        .collect();
    // The first file found of each extension.
    let mut found: Vec<(&str, String)> = Vec::new();
    for file in listed {
        let name = file.location.as_ref();
        if let Some(extension) = candidates.iter().find(|e| name.ends_with(e.as_str()))
            && !found.iter().any(|(e, _)| e == extension)
        {
            found.push((extension, file_url(url, &file.location)));
        }
    }
    match found.as_slice() {
        [] => Ok((plain.to_string(), FileCompressionType::UNCOMPRESSED)),
        [(extension, _)] => Ok((extension.to_string(), of(extension))),
        several => Err(DinmoError::Source {
            source_name: source.name.clone(),
            location: source.location.clone(),
            message: format!(
                "its files mix compressions ({}): one source reads one kind; split them into sources, or set \
                 `file_extension` in the source's options to read one kind only",
                several
                    .iter()
                    .map(|(extension, file)| format!("`{extension}`: {file}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The error for a DataFusion failure reading `source`.
fn read_failed(source: &Source) -> impl Fn(datafusion::error::DataFusionError) -> DinmoError + Copy + '_ {
    move |error| DinmoError::SourceRead {
        source_name: source.name.clone(),
        location: source.location.clone(),
        source: Box::new(error),
    }
}

/// Turns into text the columns of CSV files that DataFusion inferred as numbers but whose text
/// a number would change: a leading zero (`0001042`, an account number, would be sent as
/// `1042`, another customer's) or a leading `+`. Inference looks at the first rows of a file
/// only; this looks at every row of the number columns, read as text. A pinned column
/// (`schema:`) is left to its pin.
async fn keep_as_text(
    ctx: &SessionContext,
    source: &Source,
    url: &ListingTableUrl,
    files: &[ObjectMeta],
    read: CsvRead<'_>,
    pinned: &std::collections::BTreeMap<String, DataType>,
    columns: &mut [FileColumns],
) -> Result<()> {
    use arrow::array::{Array, AsArray};
    use datafusion::functions_aggregate::expr_fn::max;
    use datafusion::prelude::{CsvReadOptions, ident, lit, regexp_like, when};
    let Some(first) = columns.first() else {
        return Ok(());
    };
    let numeric: Vec<String> = first
        .schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_numeric() && !pinned.contains_key(f.name()))
        .map(|f| f.name().clone())
        .collect();
    if numeric.is_empty() {
        return Ok(());
    }
    let failed = read_failed(source);
    // Every column as text (files share one header: resolve refuses them otherwise).
    let text = arrow::datatypes::Schema::new(
        first
            .schema
            .fields()
            .iter()
            .map(|f| arrow::datatypes::Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let options = CsvReadOptions::new()
        .schema(&text)
        .has_header(source.options.has_header.unwrap_or(true))
        .delimiter(source.options.delimiter.unwrap_or(',') as u8)
        .file_extension(read.extension)
        .file_compression_type(read.compression);
    let paths: Vec<String> = files.iter().map(|f| file_url(url, &f.location)).collect();
    let frame = ctx.read_csv(paths, options).await.map_err(failed)?;
    // One scan: for each column, some value a number would change (null when there is none).
    let examples = numeric
        .iter()
        .map(|name| {
            when(regexp_like(ident(name), lit(r"^\s*(\+|-?0[0-9])"), None), ident(name))
                .end()
                .map(|example| max(example).alias(name))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(failed)?;
    let found_rows = frame
        .aggregate(vec![], examples)
        .map_err(failed)?
        .collect()
        .await
        .map_err(failed)?;
    let mut found = Vec::new();
    for batch in found_rows.iter().filter(|b| b.num_rows() > 0) {
        for (name, column) in numeric.iter().zip(batch.columns()) {
            let column = arrow::compute::cast(column, &DataType::Utf8).map_err(DinmoError::arrow(name.clone()))?;
            let column = column.as_string::<i32>();
            if column.is_valid(0) {
                let example = column.value(0);
                info!(source = %source.name, column = %name, example = %example, "read as text: a number would change it");
                found.push(name.clone());
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    for file in columns.iter_mut() {
        let fields: Vec<arrow::datatypes::Field> = file
            .schema
            .fields()
            .iter()
            .map(|f| {
                if found.contains(f.name()) {
                    f.as_ref().clone().with_data_type(DataType::Utf8)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        file.schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            file.schema.metadata().clone(),
        ));
    }
    Ok(())
}

/// Why the folder of `url` cannot be read as plain files, when it is (or is inside) a
/// lakehouse table's: a Delta Lake table keeps a `_delta_log/` beside its files, an Iceberg
/// table a `metadata/` folder of `*.metadata.json` files beside `data/`. Their data folders
/// hold files the table no longer holds (deleted or overwritten rows stay on disk until a
/// vacuum), which a listing would read as live rows. The folder and each folder above it are
/// looked at: a source may point at one partition of a table, or at an Iceberg `data/`.
async fn lakehouse_table(
    url: &ListingTableUrl,
    store: &dyn object_store::ObjectStore,
) -> std::result::Result<Option<String>, datafusion::error::DataFusionError> {
    let parts: Vec<_> = url.prefix().parts().collect();
    // A location that is one file (no trailing `/`, no glob, and an object) starts at its folder.
    let file = !url.is_collection() && object_store::ObjectStoreExt::head(store, url.prefix()).await.is_ok();
    let deepest = parts.len() - usize::from(file && !parts.is_empty());
    for depth in (0..=deepest).rev() {
        let folder = object_store::path::Path::from_iter(parts[..depth].iter().cloned());
        let log = folder.clone().join("_delta_log");
        if store.list(Some(&log)).try_next().await?.is_some() {
            return Ok(Some(format!(
                "it is a Delta Lake table, or inside one ({}/ is its log): its folders also hold files the table no \
                 longer holds (deleted or overwritten rows stay until a VACUUM), which would be sent as usage. Read \
                 it with `format: delta` and `location: {}` (the table's folder), or, if the folder's files are \
                 really what to send, set `ignore_table_log: true` in the source's options",
                file_url(url, &log),
                file_url(url, &folder)
            )));
        }
        let metadata = folder.clone().join("metadata");
        let mut entries = store.list(Some(&metadata));
        while let Some(entry) = entries.try_next().await? {
            if entry.location.as_ref().ends_with(".metadata.json") {
                return Ok(Some(format!(
                    "it is an Iceberg table, or inside one ({}/ holds its metadata): its data files include ones \
                     the table no longer holds. dinmo does not read Iceberg tables yet: export a snapshot of the \
                     table to plain files (for example with the warehouse's UNLOAD/COPY or DuckDB's \
                     `iceberg_scan`), or, if the folder's files are really what to send, set \
                     `ignore_table_log: true` in the source's options",
                    file_url(url, &metadata)
                )));
            }
        }
    }
    Ok(None)
}

/// Says (at info level) which columns were read in another type than some file holds.
fn log_drift(source: &str, schema: &arrow::datatypes::Schema, files: &[FileColumns]) {
    for field in schema.fields() {
        let differing = files
            .iter()
            .filter(|f| {
                f.schema
                    .field_with_name(field.name())
                    .map_or(true, |own| own.data_type() != field.data_type())
            })
            .count();
        if differing > 0 {
            info!(
                source,
                column = %field.name(),
                as_type = %field.data_type(),
                files = differing,
                "column read in a unified type (the files disagree, or some lack it)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_glob_splits_at_its_first_wildcard_folder() {
        assert_eq!(
            super::url_glob("s3://bucket/events/dt=*/*.parquet"),
            Some(("s3://bucket/events/", "dt=*/*.parquet"))
        );
        assert_eq!(super::url_glob("s3://bucket/events/"), None);
        assert_eq!(
            super::url_glob("/local/dt=*/x.parquet"),
            None,
            "DataFusion splits local paths"
        );
    }
}
