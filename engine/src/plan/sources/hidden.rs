//! Sources skip what Spark skips: files and folders whose name starts with `_` or `.` below a
//! listed folder (`_temporary/` of an aborted job, `_delta_log/`, `.crc` and other hidden
//! files), so a stray attempt's files are never read as usage. A source with a glob or
//! `exclude:` globs gets a store of its own whose listings keep only the files they select
//! ([`Selection`]): DataFusion's own glob matching leaves `key=value` folders out of the path
//! it matches, so `dt=*/*.parquet` would match nothing.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// `inner` with listings that leave out hidden names, and files a [`Selection`] does not
/// select (reads and writes pass through).
#[derive(Debug)]
pub struct SkipHidden {
    inner: Arc<dyn ObjectStore>,
    selection: Option<Arc<Selection>>,
}

/// The files of one source below its folder `root`: those whose path below it matches
/// `include` (all when `None`) and none of `exclude`. Globs match as a shell does: `*` within
/// one folder or file name, `**` across folders.
#[derive(Debug)]
pub struct Selection {
    pub root: Path,
    pub include: Option<glob::Pattern>,
    pub exclude: Vec<glob::Pattern>,
}

impl Selection {
    fn selects(&self, location: &Path) -> bool {
        let Some(below) = location.prefix_match(&self.root) else {
            return false;
        };
        let below = below
            .map(|part| part.as_ref().to_string())
            .collect::<Vec<_>>()
            .join("/");
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        self.include.as_ref().is_none_or(|g| g.matches_with(&below, options))
            && !self.exclude.iter().any(|g| g.matches_with(&below, options))
    }
}

impl SkipHidden {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, selection: None }
    }

    /// Listings keep only the files `selection` selects, hidden names left out as well.
    pub fn selecting(inner: Arc<dyn ObjectStore>, selection: Selection) -> Self {
        Self {
            inner,
            selection: Some(Arc::new(selection)),
        }
    }
}

impl fmt::Display for SkipHidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SkipHidden({})", self.inner)
    }
}

/// Whether a name is hidden, by Spark's rule (`InMemoryFileIndex.shouldFilterOutPathName`):
/// it starts with `.`, or with `_` without being a `key=value` partition folder, or it is a
/// file still being copied (`._COPYING_`).
fn hidden(name: &str) -> bool {
    (name.starts_with('_') && !name.contains('=')) || name.starts_with('.') || name.ends_with("._COPYING_")
}

/// Whether `location`, below `prefix`, passes through a hidden name.
fn below_hidden(prefix: Option<&Path>, location: &Path) -> bool {
    let below: Vec<_> = match prefix {
        Some(prefix) => match location.prefix_match(prefix) {
            Some(parts) => parts.collect(),
            None => return false,
        },
        None => location.parts().collect(),
    };
    below.iter().any(|part| hidden(part.as_ref()))
}

fn visible(
    prefix: Option<&Path>,
    selection: Option<Arc<Selection>>,
    listed: BoxStream<'static, Result<ObjectMeta>>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    let prefix = prefix.cloned();
    listed
        .filter(move |meta| {
            let keep = match meta {
                Ok(meta) => {
                    !below_hidden(prefix.as_ref(), &meta.location)
                        && selection.as_ref().is_none_or(|s| s.selects(&meta.location))
                }
                Err(_) => true,
            };
            std::future::ready(keep)
        })
        .boxed()
}

#[async_trait::async_trait]
impl ObjectStore for SkipHidden {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        visible(prefix, self.selection.clone(), self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        visible(
            prefix,
            self.selection.clone(),
            self.inner.list_with_offset(prefix, offset),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed
            .common_prefixes
            .retain(|folder| !folder.filename().is_some_and(hidden));
        listed.objects.retain(|meta| {
            !meta.location.filename().is_some_and(hidden)
                && self.selection.as_ref().is_none_or(|s| s.selects(&meta.location))
        });
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_below_the_prefix_starting_with_an_underscore_or_a_dot_are_hidden() {
        let prefix = Path::from("data/_exports/events");
        let at = |path: &str| below_hidden(Some(&prefix), &Path::from(path));
        assert!(
            !at("data/_exports/events/dt=1/part-0.parquet"),
            "the location itself may have any name"
        );
        assert!(at("data/_exports/events/_temporary/0/part-0.parquet"));
        assert!(at("data/_exports/events/dt=1/.part-0.parquet"));
        assert!(at("data/_exports/events/_SUCCESS"));
        assert!(!at("data/_exports/events/2026/11/01/x.parquet"));
        assert!(
            !at("data/_exports/events/_part=1/x.parquet"),
            "a partition folder is not hidden"
        );
        assert!(at("data/_exports/events/x.parquet._COPYING_"));
    }

    #[test]
    fn a_selection_matches_paths_below_its_root_folder_by_folder() {
        let selection = Selection {
            root: Path::from("exports/events"),
            include: Some(glob::Pattern::new("dt=*/*.parquet").unwrap()),
            exclude: vec![glob::Pattern::new("dt=2026-11-02/*").unwrap()],
        };
        let at = |path: &str| selection.selects(&Path::from(path));
        assert!(
            at("exports/events/dt=2026-11-01/part-0.parquet"),
            "a key=value folder is matched"
        );
        assert!(
            !at("exports/events/dt=2026-11-01/x/part-0.parquet"),
            "`*` stays in one folder"
        );
        assert!(!at("exports/events/part-0.parquet"));
        assert!(!at("exports/events/dt=2026-11-02/part-0.parquet"), "excluded");
        assert!(!at("other/dt=2026-11-01/part-0.parquet"), "outside the root");
    }
}
