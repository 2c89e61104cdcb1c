//! Locations (local paths and object-store URLs) and the stores behind them.
//!
//! Credentials come from the environment the way each store's own tooling reads them
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), through `object_store`'s builders.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreScheme, parse_url_opts};
use url::Url;

use crate::error::{DinmoError, Result};

/// Whether `raw` is a URL rather than a local path.
pub fn is_url(raw: &str) -> bool {
    raw.contains("://")
}

/// A local path relative to `root` becomes absolute (and normalised); a URL is kept.
pub fn resolve_location(root: &Path, raw: &str) -> String {
    if is_url(raw) {
        return raw.to_string();
    }
    let joined = root.join(raw);
    let mut normalised = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normalised.pop();
            }
            other => normalised.push(other),
        }
    }
    let mut text = normalised.to_string_lossy().into_owned();
    if raw.ends_with('/') && !text.ends_with('/') {
        text.push('/');
    }
    text
}

/// A location opened as a store.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The folder or object inside the store.
    pub prefix: ObjectPath,
    /// The store's root URL (`s3://bucket`, `file:///`), under which DataFusion finds it.
    pub base_url: Url,
    /// The location as configured, for messages.
    pub display: String,
    /// The store again when it is this machine's file system (a local path or `file://`),
    /// for what only a file can do (see [`StoreLocation::local_file`]).
    pub local: Option<Arc<LocalFileSystem>>,
}

impl StoreLocation {
    /// The URL of `path` inside this store.
    pub fn url_of(&self, path: &ObjectPath) -> String {
        let base = self.base_url.as_str();
        let base = base.strip_suffix('/').unwrap_or(base);
        format!("{base}/{path}")
    }

    /// The file behind `path` when the store is this machine's file system: there, a file
    /// written locally can be linked into place instead of copied.
    pub fn local_file(&self, path: &ObjectPath) -> Option<PathBuf> {
        self.local.as_ref()?.path_to_filesystem(path).ok()
    }
}

/// Opens `location` (absolute local path or URL) as a store. `object_store` reads the URL
/// (`parse_url_opts`: the scheme, bucket or container, and the path inside it), and each
/// cloud store takes its settings from the `AWS_*`, `GOOGLE_*` and `AZURE_*` variables, as
/// that store's `from_env` builder reads them.
pub fn open_location(location: &str) -> Result<StoreLocation> {
    let path_error = |source| DinmoError::LocationPath {
        location: location.to_string(),
        source,
    };
    if !is_url(location) {
        let local = Arc::new(LocalFileSystem::new());
        return Ok(StoreLocation {
            store: Arc::clone(&local) as Arc<dyn ObjectStore>,
            prefix: ObjectPath::from_absolute_path(location).map_err(path_error)?,
            base_url: Url::from_directory_path("/").map_err(|()| DinmoError::Location {
                location: location.to_string(),
                message: "the file system root is not a URL".into(),
            })?,
            display: location.to_string(),
            local: Some(local),
        });
    }
    let url = Url::parse(location).map_err(|source| DinmoError::LocationUrl {
        location: location.to_string(),
        source,
    })?;
    let unsupported = || DinmoError::Location {
        location: location.to_string(),
        message: format!(
            "unsupported scheme `{}`; use a local path, file://, s3://, gs://, az:// or http(s)://",
            url.scheme()
        ),
    };
    const SCHEMES: &[&str] = &[
        "file", "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https",
    ];
    match ObjectStoreScheme::parse(&url) {
        Ok((ObjectStoreScheme::Memory, _)) => return Err(unsupported()),
        Ok(_) => {}
        Err(_) if SCHEMES.contains(&url.scheme()) => {
            return Err(DinmoError::Location {
                location: location.to_string(),
                message: format!(
                    "names no bucket, container or host after `{}://` (write {}://<bucket>/<path>)",
                    url.scheme(),
                    url.scheme()
                ),
            });
        }
        Err(_) => return Err(unsupported()),
    }
    let (store, prefix) = parse_url_opts(&url, store_settings()).map_err(|source| DinmoError::LocationStore {
        location: location.to_string(),
        source,
    })?;
    let base_url = Url::parse(&url[..url::Position::BeforePath]).map_err(|source| DinmoError::LocationUrl {
        location: location.to_string(),
        source,
    })?;
    // `parse_url_opts` opens a `file://` URL as `LocalFileSystem::new()`: the same store.
    let local = (url.scheme() == "file").then(|| Arc::new(LocalFileSystem::new()));
    Ok(StoreLocation {
        store: Arc::from(store),
        prefix,
        base_url,
        display: location.to_string(),
        local,
    })
}

/// The settings of every cloud store from the environment: what `AmazonS3Builder::from_env`,
/// `GoogleCloudStorageBuilder::from_env` and `MicrosoftAzureBuilder::from_env` read. Each
/// store keeps the keys it knows and ignores the others.
fn store_settings() -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(key, _)| ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| key.starts_with(p)))
        .collect();
    // Two variables those builders read under other names.
    for (variable, key) in [
        ("SERVICE_ACCOUNT", "google_service_account"),
        ("IDENTITY_ENDPOINT", "azure_msi_endpoint"),
    ] {
        if let Ok(value) = std::env::var(variable) {
            settings.push((key.to_string(), value));
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_project_root() {
        let root = Path::new("/work/project");
        assert_eq!(resolve_location(root, "data/events/"), "/work/project/data/events/");
        assert_eq!(resolve_location(root, "./out/../state"), "/work/project/state");
        assert_eq!(resolve_location(root, "/abs/path"), "/abs/path");
        assert_eq!(resolve_location(root, "s3://bucket/x"), "s3://bucket/x");
    }

    #[test]
    fn opens_local_and_refuses_unknown_schemes() {
        let local = open_location("/tmp/dinmo-state").unwrap();
        assert_eq!(local.prefix.as_ref(), "tmp/dinmo-state");
        assert_eq!(local.url_of(&local.prefix), "file:///tmp/dinmo-state");
        let err = open_location("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme `ftp`"), "{err}");
        let err = open_location("memory:///x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme `memory`"), "{err}");
        let err = open_location("s3://").unwrap_err().to_string();
        assert!(
            err.contains("names no bucket, container or host after `s3://`"),
            "{err}"
        );
    }
}
