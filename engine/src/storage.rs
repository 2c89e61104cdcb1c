//! Locations (local paths and object-store URLs) and the stores behind them.
//!
//! Credentials come from the environment the way each store's own tooling reads them
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), through `object_store`'s builders.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
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
}

impl StoreLocation {
    /// The URL of `path` inside this store.
    pub fn url_of(&self, path: &ObjectPath) -> String {
        let base = self.base_url.as_str();
        let base = base.strip_suffix('/').unwrap_or(base);
        format!("{base}/{path}")
    }
}

/// Opens `location` (absolute local path or URL) as a store.
pub fn open_location(location: &str) -> Result<StoreLocation> {
    let error = |message: String| DinmoError::Location {
        location: location.to_string(),
        message,
    };
    if !is_url(location) {
        let prefix = ObjectPath::from_absolute_path(location).map_err(|e| error(e.to_string()))?;
        return Ok(StoreLocation {
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            base_url: Url::parse("file:///").map_err(|e| error(e.to_string()))?,
            display: location.to_string(),
        });
    }
    let url = Url::parse(location).map_err(|e| error(format!("not a valid URL: {e}")))?;
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => Arc::new(LocalFileSystem::new()),
        "s3" | "s3a" => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| error(e.to_string()))?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| error(e.to_string()))?,
        ),
        "az" | "abfs" | "abfss" | "azure" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| error(e.to_string()))?,
        ),
        "http" | "https" => {
            let base = format!("{}://{}", url.scheme(), url.authority());
            Arc::new(
                HttpBuilder::new()
                    .with_url(base)
                    .build()
                    .map_err(|e| error(e.to_string()))?,
            )
        }
        other => {
            return Err(error(format!(
                "unsupported scheme `{other}`; use a local path, file://, s3://, gs://, az:// or http(s)://"
            )));
        }
    };
    let prefix = ObjectPath::from_url_path(url.path()).map_err(|e| error(e.to_string()))?;
    let base_url = Url::parse(&format!("{}://{}", url.scheme(), url.authority())).map_err(|e| error(e.to_string()))?;
    Ok(StoreLocation {
        store,
        prefix,
        base_url,
        display: location.to_string(),
    })
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
    }
}
