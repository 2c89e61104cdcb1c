//! Delta Lake sources (`format: delta`): the table's live version (or the pinned one) through
//! delta-rs, which reads the log to know which files the version holds, applies deletion
//! vectors and maps renamed columns. The files on disk alone would include rows the table no
//! longer holds.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use deltalake_core::logstore::{LogStore, LogStoreFactory, StorageConfig, default_logstore, logstore_factories};
use deltalake_core::{DeltaResult, DeltaTableBuilder, DeltaTableError, ObjectStore};
use url::Url;

use crate::error::{DinmoError, Result};
use crate::project::Source;
use crate::state::SourceVersion;
use crate::storage::is_url;

/// The version a `format: delta` source is read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaPin {
    /// The latest version.
    Latest,
    /// `options.version`.
    Version(u64),
    /// `options.timestamp`: the latest version committed at or before it.
    Timestamp(chrono::DateTime<chrono::Utc>),
}

impl DeltaPin {
    /// The pin a source's options ask for (validated when the project loaded).
    pub fn of(source: &Source) -> Self {
        if let Some(version) = source.options.version {
            return DeltaPin::Version(version);
        }
        match source
            .options
            .timestamp
            .as_deref()
            .map(chrono::DateTime::parse_from_rfc3339)
        {
            Some(Ok(at)) => DeltaPin::Timestamp(at.with_timezone(&chrono::Utc)),
            _ => DeltaPin::Latest,
        }
    }
}

/// Registers the Delta table at `source.location` as a table named after the source, read
/// at the version its options pin (the latest by default) through `store` (the store behind
/// the location, its root at `/`); returns the version read.
pub async fn register_delta(
    ctx: &SessionContext,
    source: &Source,
    store: Arc<dyn ObjectStore>,
) -> Result<SourceVersion> {
    let failed = |what: &str| {
        let what = what.to_string();
        move |error: DeltaTableError| DinmoError::SourceTable {
            source_name: source.name.clone(),
            location: source.location.clone(),
            what: what.clone(),
            source: Box::new(error),
        }
    };
    let url = table_url(source)?;
    register_read_only_log_store(&url);
    let pin = DeltaPin::of(source);
    let mut builder = DeltaTableBuilder::from_url(url.clone())
        .map_err(failed("not a table location"))?
        .with_storage_backend(store, url);
    builder = match &pin {
        DeltaPin::Latest => builder,
        DeltaPin::Version(version) => builder.with_version(*version),
        DeltaPin::Timestamp(at) => builder.with_timestamp(*at),
    };
    let table = builder.load().await.map_err(|error| match &error {
        DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => DinmoError::Source {
            source_name: source.name.clone(),
            location: source.location.clone(),
            message: "no Delta table here: a table's location is the folder that holds its `_delta_log/` (not a \
                      partition or data folder inside it)"
                .into(),
        },
        _ => match &pin {
            DeltaPin::Latest => failed("the table's log cannot be read")(error),
            DeltaPin::Version(version) => failed(&format!(
                "version {version} of the table cannot be read (it does not exist yet, or its log entries or files \
                 were cleaned up by a checkpoint, log retention or VACUUM): pin a version the table still holds"
            ))(error),
            DeltaPin::Timestamp(at) => failed(&format!(
                "the table as of {at} cannot be read (no version was committed by then, or its log entries or \
                 files were cleaned up): pin a later timestamp"
            ))(error),
        },
    })?;
    let version = table.version().ok_or_else(|| DinmoError::Source {
        source_name: source.name.clone(),
        location: source.location.clone(),
        message: "the Delta table has no version yet (nothing was ever committed)".into(),
    })?;
    // delta-rs answers a timestamp before the first commit with the first version: that
    // version did not exist yet at the instant asked for.
    if let DeltaPin::Timestamp(at) = &pin
        && let Ok(snapshot) = table.snapshot()
        && let Some(committed) = snapshot.version_timestamp(version)
        && committed > at.timestamp_millis()
    {
        return Err(DinmoError::Source {
            source_name: source.name.clone(),
            location: source.location.clone(),
            message: format!(
                "the table as of {at} cannot be read: its first version readable was committed later, at {}: pin \
                 a later timestamp",
                chrono::DateTime::from_timestamp_millis(committed)
                    .map_or_else(|| committed.to_string(), |t| t.to_rfc3339())
            ),
        });
    }
    if pin != DeltaPin::Latest
        && let Some(gone) = first_missing_file(&table).await
    {
        return Err(DinmoError::Source {
            source_name: source.name.clone(),
            location: source.location.clone(),
            message: format!(
                "version {version} of the table lists files that are gone (a VACUUM removes the files of older \
                 versions), e.g. {gone}: pin a version the table still holds, or the latest"
            ),
        });
    }
    let state = ctx.state();
    table
        .update_datafusion_session(&state)
        .map_err(failed("cannot be set up for reading"))?;
    let provider = table
        .table_provider()
        .with_session(Arc::new(state))
        .build()
        .await
        .map_err(|error| DinmoError::SourceRead {
            source_name: source.name.clone(),
            location: source.location.clone(),
            source: Box::new(error),
        })?;
    ctx.register_table(source.name.as_str(), Arc::new(provider))
        .map_err(|error| DinmoError::SourceRead {
            source_name: source.name.clone(),
            location: source.location.clone(),
            source: Box::new(error),
        })?;
    Ok(SourceVersion {
        source: source.name.clone(),
        delta_version: version,
    })
}

/// The first data file of the loaded version that its store no longer holds, relative to the
/// table's folder. A pinned older version's files may have been vacuumed while its log
/// remains; checked before anything is planned, rather than failing mid-query.
async fn first_missing_file(table: &deltalake_core::DeltaTable) -> Option<String> {
    use futures::StreamExt;
    let snapshot = table.snapshot().ok()?;
    let store = table.log_store().object_store(None);
    let paths: Vec<deltalake_core::Path> = snapshot
        .log_data()
        .into_iter()
        .map(|add| add.object_store_path())
        .collect();
    futures::stream::iter(paths)
        .map(|path| {
            let store = Arc::clone(&store);
            async move {
                match object_store::ObjectStoreExt::head(store.as_ref(), &path).await {
                    Err(object_store::Error::NotFound { .. }) => Some(path.to_string()),
                    _ => None,
                }
            }
        })
        .buffer_unordered(32)
        .filter_map(std::future::ready)
        .next()
        .await
}

/// The table's root as a URL: a local path becomes a `file://` folder URL.
fn table_url(source: &Source) -> Result<Url> {
    let location = source.location.trim_end_matches('/');
    let parsed = if is_url(location) {
        Url::parse(&format!("{location}/")).ok()
    } else {
        Url::from_directory_path(location).ok()
    };
    parsed.ok_or_else(|| DinmoError::Source {
        source_name: source.name.clone(),
        location: source.location.clone(),
        message: "is not a folder path or URL a Delta table can be read from".into(),
    })
}

/// delta-rs opens logs of `file://` and `memory://` tables only until a crate registers the
/// cloud schemes; dinmo reads (never commits), so the default log store over dinmo's own
/// object store serves every scheme. Registered once per scheme, never replacing one.
fn register_read_only_log_store(url: &Url) {
    if let Ok(scheme) = Url::parse(&format!("{}://", url.scheme())) {
        logstore_factories()
            .entry(scheme)
            .or_insert_with(|| Arc::new(ReadOnlyLogStores));
    }
}

/// Makes delta-rs's default log store, which reads any object store.
#[derive(Debug, Clone, Copy)]
struct ReadOnlyLogStores;

impl LogStoreFactory for ReadOnlyLogStores {
    fn with_options(
        &self,
        prefixed_store: Arc<dyn ObjectStore>,
        root_store: Arc<dyn ObjectStore>,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}
