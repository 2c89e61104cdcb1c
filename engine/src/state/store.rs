//! Reading and writing one state location.

use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;
use xxhash_rust::xxh3::Xxh3;

use arrow::record_batch::RecordBatch;
use dinmo_connectors::ROW_KEY_COLUMN;

use super::checkpoint::Checkpoint;
use super::manifest::{KeyEncoding, PartInfo, RunManifest};
use super::parts::{encoding_of, with_keys_as};
use super::paths::{Folder, SyncPaths};
use crate::error::{DinmoError, Result};
use crate::storage::{StoreLocation, open_location};
use dinmo_connectors::SyncId;

const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

/// State objects read at once (manifests, parts being verified): on an object store each read
/// is a round trip, so reading them one at a time would make a run's cost grow with history.
pub const READ_CONCURRENCY: usize = 16;

/// A state location.
#[derive(Debug, Clone)]
pub struct StateStore {
    location: StoreLocation,
}

/// The snapshot of a sync after its parts were checked against the manifests.
#[derive(Debug, Clone, Default)]
pub struct VerifiedSnapshot {
    /// Every part the snapshot is read from, for DataFusion.
    pub parts: Vec<SnapshotPart>,
    /// Every part holding rows that correct another row, in the order of the runs (some of
    /// them also in `parts`): read after `parts`, their values replace the corrected rows'.
    pub corrections: Vec<SnapshotPart>,
    /// Rows of the model across the parts (rows that correct another row left out).
    pub rows: u64,
    /// Manifests of the sync, oldest first.
    pub manifests: Vec<RunManifest>,
    /// Snapshot parts no manifest names (their rows count as synced; `rows` leaves them out).
    pub unnamed_parts: usize,
    /// Runs the newest checkpoint does not cover.
    pub uncovered_runs: usize,
}

/// A part the snapshot is read from: a snapshot part or a checkpoint's key part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPart {
    /// Its URL.
    pub url: String,
    /// How it stores its row keys.
    pub row_keys: KeyEncoding,
    /// Whether it holds each row's value hash; otherwise the values are hashed from its fields.
    pub values: bool,
}

impl StateStore {
    /// Opens the state location (an absolute local path or a URL).
    pub fn open(location: &str) -> Result<Self> {
        Ok(StateStore {
            location: open_location(location)?,
        })
    }

    /// The location as configured.
    pub fn display(&self) -> &str {
        &self.location.display
    }

    /// The underlying store and root, for DataFusion registration.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The object of `relative` inside the store, for readers that open it themselves
    /// (DataFusion scans of the parts).
    pub fn object_path(&self, relative: &str) -> ObjectPath {
        self.path(relative)
    }

    pub(super) fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.location.prefix.clone(), |path, part| path.join(part))
    }

    pub(super) fn store_error(&self) -> impl FnOnce(object_store::Error) -> DinmoError + '_ {
        move |source| DinmoError::StateStore {
            location: self.location.display.clone(),
            source,
        }
    }

    /// `<sync>/uploads/`: where a destination keeps its own record of what it sent (the
    /// `zuora_revenue` upload journal), in the same store as the snapshot.
    pub fn journal_location(&self, sync_id: &SyncId) -> dinmo_connectors::OutputLocation {
        let relative = SyncPaths::of(sync_id).folder(Folder::Uploads);
        dinmo_connectors::OutputLocation {
            store: std::sync::Arc::clone(&self.location.store),
            prefix: self.path(&relative),
            display: format!("{}/{relative}", self.location.display.trim_end_matches('/')),
        }
    }

    /// The URL of a path relative to the state location.
    pub fn url_of(&self, relative: &str) -> String {
        self.location.url_of(&self.path(relative))
    }

    /// Relative paths of the objects under `folder` (relative to the state location).
    async fn list(&self, folder: &str) -> Result<Vec<String>> {
        let prefix = self.path(folder);
        let objects: Vec<_> = self
            .location
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(self.store_error())?;
        let mut names: Vec<String> = objects
            .into_iter()
            .filter_map(|meta| {
                meta.location
                    .prefix_match(&self.location.prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"))
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every sync id that has state: run manifests, parts, or a lock.
    pub async fn sync_ids(&self) -> Result<Vec<SyncId>> {
        let mut ids: Vec<SyncId> = self
            .list("")
            .await?
            .into_iter()
            .filter_map(|path| {
                let mut parts = path.split('/');
                let sync = parts.next()?;
                parts
                    .next()
                    .is_some_and(Folder::marks_a_sync)
                    .then(|| SyncId::from(sync))
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The manifests of every sync with state, oldest run first and then by sync, read
    /// [`READ_CONCURRENCY`] syncs at a time.
    pub async fn every_manifest(&self) -> Result<Vec<RunManifest>> {
        let syncs = self.sync_ids().await?;
        let per_sync: Vec<Vec<RunManifest>> = futures::stream::iter(syncs.iter())
            .map(|sync| self.manifests(sync))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut manifests: Vec<RunManifest> = per_sync.into_iter().flatten().collect();
        manifests.sort_by(|a, b| a.run_id.cmp(&b.run_id).then_with(|| a.sync_id.cmp(&b.sync_id)));
        Ok(manifests)
    }

    /// The manifests of `sync`, oldest first (run ids sort by time): those the newest
    /// checkpoint indexes, and the others fetched [`READ_CONCURRENCY`] at a time (on an object
    /// store each is a round trip).
    pub async fn manifests(&self, sync: &SyncId) -> Result<Vec<RunManifest>> {
        Ok(self.manifests_and_checkpoint(sync).await?.0)
    }

    /// The manifests of `sync` (see [`StateStore::manifests`]) and its newest checkpoint.
    pub async fn manifests_and_checkpoint(&self, sync: &SyncId) -> Result<(Vec<RunManifest>, Option<Checkpoint>)> {
        let runs = SyncPaths::of(sync).folder(Folder::Runs);
        let (listed, checkpoint) = futures::try_join!(self.list(&runs), self.latest_checkpoint(sync))?;
        let covered = checkpoint.as_ref().map(Checkpoint::covered_runs).unwrap_or_default();
        let indexed = |path: &str| {
            let run = path.rsplit('/').next().and_then(|name| name.strip_suffix(".json"));
            run.is_some_and(|run| covered.contains(run))
        };
        let paths: Vec<String> = listed
            .into_iter()
            .filter(|path| path.ends_with(".json") && !indexed(path))
            .collect();
        let mut manifests: Vec<RunManifest> = futures::stream::iter(paths)
            .map(|path| async move { self.read_json::<RunManifest>(&path).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        if let Some(checkpoint) = &checkpoint {
            manifests.extend(checkpoint.runs.iter().cloned());
        }
        manifests.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Ok((manifests, checkpoint))
    }

    /// The newest checkpoint of `sync`, if it has one.
    pub async fn latest_checkpoint(&self, sync: &SyncId) -> Result<Option<Checkpoint>> {
        let newest = self
            .list(&SyncPaths::of(sync).folder(Folder::Checkpoints))
            .await?
            .into_iter()
            .filter(|path| path.ends_with(".json"))
            .max();
        match newest {
            Some(path) => Ok(Some(self.read_json::<Checkpoint>(&path).await?)),
            None => Ok(None),
        }
    }

    /// Relative paths of every object under `<sync>/checkpoints`.
    pub(super) async fn checkpoint_objects(&self, sync: &SyncId) -> Result<Vec<String>> {
        self.list(&SyncPaths::of(sync).folder(Folder::Checkpoints)).await
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, relative: &str) -> Result<T> {
        let bytes = self.read(relative).await?;
        serde_json::from_slice::<T>(&bytes).map_err(|source| DinmoError::Manifest {
            location: self.url_of(relative),
            source,
        })
    }

    /// Writes `value` as JSON to `relative` (one put: it appears whole or not at all).
    pub(super) async fn write_json<T: serde::Serialize>(&self, relative: &str, value: &T) -> Result<()> {
        let json = serde_json::to_vec_pretty(value).map_err(|source| DinmoError::Json {
            what: self.url_of(relative),
            source,
        })?;
        self.location
            .store
            .put(&self.path(relative), PutPayload::from(json))
            .await
            .map_err(self.store_error())?;
        Ok(())
    }

    /// Writes a run manifest.
    pub async fn write_manifest(&self, manifest: &RunManifest) -> Result<()> {
        self.write_json(&SyncPaths::of(&manifest.sync_id).manifest(&manifest.run_id), manifest)
            .await
    }

    /// Uploads a local file to `relative`, hashing it on the way. Multipart uploads complete
    /// atomically: the object appears whole or not at all. On a local state the file is
    /// linked into place instead (see [`link_into_place`]), and copied only where it cannot be
    /// linked (another file system). Either way `local` must not change afterwards: local
    /// files are created afresh, never rewritten ([`super::parts::create_local_file`]).
    pub async fn upload(&self, local: &Path, relative: &str, rows: u64) -> Result<PartInfo> {
        if let Some(destination) = self.location.local_file(&self.path(relative)) {
            let source = local.to_path_buf();
            let linked = tokio::task::spawn_blocking(move || link_into_place(&source, &destination))
                .await
                .map_err(|source| DinmoError::Interrupted {
                    task: format!("storing {}", local.display()),
                    source,
                })?
                .map_err(|source| DinmoError::Io {
                    path: self.url_of(relative).into(),
                    source,
                })?;
            if let Some((bytes, xxh3)) = linked {
                return Ok(PartInfo::stored(relative, rows, bytes, xxh3));
            }
        }
        let mut file = tokio::fs::File::open(local).await.map_err(DinmoError::io(local))?;
        let mut writer = object_store::buffered::BufWriter::new(self.location.store.clone(), self.path(relative));
        let mut hasher = Xxh3::new();
        let mut buffer = vec![0u8; UPLOAD_CHUNK];
        let mut bytes = 0u64;
        loop {
            let read = file.read(&mut buffer).await.map_err(DinmoError::io(local))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            bytes += read as u64;
            let upload_error = |source: std::io::Error| DinmoError::Io {
                path: self.url_of(relative).into(),
                source,
            };
            writer.write_all(&buffer[..read]).await.map_err(upload_error)?;
        }
        writer.shutdown().await.map_err(|source| DinmoError::Io {
            path: self.url_of(relative).into(),
            source,
        })?;
        Ok(PartInfo::stored(relative, rows, bytes, hasher.digest()))
    }

    /// Relative paths of every object under a sync's folder (`snapshot`, `rejected`, …).
    pub async fn files_in(&self, sync: &SyncId, folder: Folder) -> Result<Vec<String>> {
        self.list(&SyncPaths::of(sync).folder(folder)).await
    }

    /// Relative paths of the pending files of `sync`.
    pub async fn pending_files(&self, sync: &SyncId) -> Result<Vec<String>> {
        Ok(self
            .list(&SyncPaths::of(sync).folder(Folder::Pending))
            .await?
            .into_iter()
            .filter(|p| p.ends_with(".parquet"))
            .collect())
    }

    /// Downloads an object to a local file.
    pub async fn download(&self, relative: &str, local: &Path) -> Result<()> {
        let bytes = self.read(relative).await?;
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(DinmoError::io(parent))?;
        }
        let mut file = super::parts::create_local_file(local).await?;
        file.write_all(&bytes).await.map_err(DinmoError::io(local))?;
        file.flush().await.map_err(DinmoError::io(local))
    }

    /// The batches of a stored Parquet part (parts are one committed batch each: small), with
    /// the row keys as hex text however the part stores them (what `show --rows` exports, and
    /// what a replay compares with the pending file's keys).
    pub async fn read_part(&self, part: &PartInfo) -> Result<Vec<RecordBatch>> {
        let bytes = self.read(&part.path).await?;
        let context = format!("reading {}", self.url_of(&part.path));
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(DinmoError::parquet(context.clone()))?
            .build()
            .map_err(DinmoError::parquet(context.clone()))?
            .map(|batch| batch.and_then(|batch| with_keys_as(batch, KeyEncoding::Hex)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(DinmoError::arrow(context))
    }

    /// How a part no manifest names stores its row keys, from its schema (a rare part: a run
    /// stopped between storing it and its manifest).
    async fn row_keys_of(&self, sync: &SyncId, relative: &str) -> Result<(KeyEncoding, bool)> {
        let bytes = self.read(relative).await?;
        let context = format!("reading {}", self.url_of(relative));
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(DinmoError::parquet(context))?;
        let values = builder.schema().field_with_name(super::values::VALUE_COLUMN).is_ok();
        match builder.schema().field_with_name(ROW_KEY_COLUMN).map(|f| f.data_type()) {
            Ok(stored) => encoding_of(stored)
                .map(|e| (e, values))
                .ok_or_else(|| DinmoError::StateIntegrity {
                    sync: sync.clone(),
                    message: format!("part {} stores its row keys as {stored}", self.url_of(relative)),
                    remedy: "Restore the part from a backup of the state location.".to_string(),
                }),
            Err(_) => Err(DinmoError::StateIntegrity {
                sync: sync.clone(),
                message: format!("part {} has no `{ROW_KEY_COLUMN}` column", self.url_of(relative)),
                remedy: "Restore the part from a backup of the state location.".to_string(),
            }),
        }
    }

    /// Reads a whole object (a verified part, for rollback).
    pub async fn read(&self, relative: &str) -> Result<bytes::Bytes> {
        let got = self
            .location
            .store
            .get(&self.path(relative))
            .await
            .map_err(self.store_error())?;
        got.bytes().await.map_err(self.store_error())
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, relative: &str) -> Result<()> {
        match self.location.store.delete(&self.path(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error()(e)),
        }
    }

    /// Reads a part and checks its size and checksum.
    pub async fn verify_part(&self, sync: &SyncId, part: &PartInfo) -> Result<()> {
        self.fetch_checked(sync, part, None).await
    }

    /// Downloads a part to `local` chunk by chunk (it may be larger than memory), checking
    /// its size and checksum on the way: one read where verifying, then downloading, took two.
    pub async fn download_verified(&self, sync: &SyncId, part: &PartInfo, local: &Path) -> Result<()> {
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(DinmoError::io(parent))?;
        }
        let mut file = super::parts::create_local_file(local).await?;
        self.fetch_checked(sync, part, Some((&mut file, local))).await?;
        file.flush().await.map_err(DinmoError::io(local))
    }

    /// Streams a part, into `sink` when given, and checks its size and checksum against its
    /// manifest's.
    async fn fetch_checked(
        &self,
        sync: &SyncId,
        part: &PartInfo,
        mut sink: Option<(&mut tokio::fs::File, &Path)>,
    ) -> Result<()> {
        let integrity = |message: String| DinmoError::StateIntegrity {
            sync: sync.clone(),
            message,
            remedy: "Restore the part from a backup of the state location; `--full-refresh` resends every row."
                .to_string(),
        };
        let got = match self.location.store.get(&self.path(&part.path)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(integrity(format!(
                    "snapshot part {} is missing",
                    self.url_of(&part.path)
                )));
            }
            Err(e) => return Err(self.store_error()(e)),
        };
        let mut stream = byte_stream(got);
        let mut hasher = Xxh3::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(self.store_error())? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            if let Some((file, local)) = sink.as_mut() {
                file.write_all(&chunk).await.map_err(DinmoError::io(*local))?;
            }
        }
        if bytes != part.bytes {
            return Err(integrity(format!(
                "snapshot part {} has {bytes} bytes, its manifest says {} (truncated or replaced)",
                self.url_of(&part.path),
                part.bytes
            )));
        }
        let checksum = format!("{:016x}", hasher.digest());
        if checksum != part.xxh3 {
            return Err(integrity(format!(
                "snapshot part {} has checksum {checksum}, its manifest says {} (altered)",
                self.url_of(&part.path),
                part.xxh3
            )));
        }
        Ok(())
    }

    /// Loads the manifests of `sync` and verifies every part the snapshot is read from: the
    /// newest checkpoint's key parts, and the snapshot parts of the runs after it. Parts that
    /// no manifest names (a run that stopped between storing its part and its manifest) hold
    /// acknowledged rows and are kept, with a warning.
    pub async fn verified_snapshot(&self, sync: &SyncId) -> Result<VerifiedSnapshot> {
        let (manifests, checkpoint) = self.manifests_and_checkpoint(sync).await?;
        // A checkpoint whose key parts hold no values (written by an earlier release) is read
        // around: the runs' own parts hold the values sent.
        let checkpoint = checkpoint.filter(Checkpoint::holds_values);
        let covered = checkpoint.as_ref().map(Checkpoint::covered_runs).unwrap_or_default();
        let uncovered: Vec<&RunManifest> = manifests
            .iter()
            .filter(|m| !covered.contains(m.run_id.as_str()))
            .collect();
        let parts: Vec<&PartInfo> = checkpoint
            .iter()
            .flat_map(|c| &c.key_parts)
            .chain(uncovered.iter().flat_map(|m| &m.snapshot_parts))
            .collect();
        // Rows that correct another row are read from every run, covered or not (a checkpoint
        // holds the rows of the model only), in the order of the runs.
        let correcting: Vec<&PartInfo> = manifests
            .iter()
            .flat_map(|m| &m.snapshot_parts)
            .filter(|part| part.corrections > 0)
            .collect();
        let covered_correcting: Vec<&PartInfo> = correcting
            .iter()
            .copied()
            .filter(|part| !parts.iter().any(|p| p.path == part.path))
            .collect();
        futures::stream::iter(
            parts
                .iter()
                .chain(&covered_correcting)
                .map(|part| self.verify_part(sync, part)),
        )
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect::<()>()
        .await?;
        let snapshot_part = |part: &PartInfo| SnapshotPart {
            url: self.url_of(&part.path),
            row_keys: part.row_keys,
            values: part.holds_values(),
        };
        let mut snapshot_parts: Vec<SnapshotPart> = parts.iter().map(|part| snapshot_part(part)).collect();
        let corrections: Vec<SnapshotPart> = correcting.iter().map(|part| snapshot_part(part)).collect();
        let rows = parts.iter().map(|part| part.model_rows()).sum();
        let named: std::collections::HashSet<&str> = manifests
            .iter()
            .flat_map(|m| &m.snapshot_parts)
            .map(|part| part.path.as_str())
            .collect();
        let mut unnamed_parts = 0;
        for path in self.list(&SyncPaths::of(sync).folder(Folder::Snapshot)).await? {
            if path.ends_with(".parquet") && !named.contains(path.as_str()) {
                warn!(sync = %sync, part = %self.url_of(&path), "snapshot part without a manifest; its rows count as synced");
                let (row_keys, values) = self.row_keys_of(sync, &path).await?;
                snapshot_parts.push(SnapshotPart {
                    url: self.url_of(&path),
                    row_keys,
                    values,
                });
                unnamed_parts += 1;
            }
        }
        let uncovered_runs = uncovered.len();
        Ok(VerifiedSnapshot {
            parts: snapshot_parts,
            corrections,
            rows,
            manifests,
            unnamed_parts,
            uncovered_runs,
        })
    }
}

/// Bytes read at once from a local part.
const LOCAL_READ_BYTES: u64 = 1 << 20;

/// Places the local file `source` at `destination` on the same machine by a hard link under a
/// temporary name, renamed over `destination` (it appears whole or not at all, as an upload
/// does); returns its size and xxh3. Copying would write every byte a second time through the
/// page cache, for a pending file or snapshot part as large as the rows sent
/// (`docs/performance.md`, "Write what must be written, once"). `None` when the file system
/// cannot link there (another device, no hard links): the caller copies.
///
/// The temporary name ends in `#` and digits, which `object_store`'s local store leaves out of
/// listings (its own uploads in progress are named so): one left by a crash is never read as
/// state.
fn link_into_place(source: &Path, destination: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::io::Read;
    static LINKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut file = std::fs::File::open(source)?;
    let mut hasher = Xxh3::new();
    let mut buffer = vec![0u8; LOCAL_READ_BYTES as usize];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut temporary = destination.as_os_str().to_owned();
    let n = LINKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    temporary.push(format!("#{}{n:06}", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    match std::fs::hard_link(source, &temporary) {
        Ok(()) => {}
        Err(error) if cannot_link(&error) => return Ok(None),
        Err(error) => return Err(error),
    }
    if let Err(error) = std::fs::rename(&temporary, destination) {
        // The rename's error is the one to report; a temporary name left behind is never
        // listed, so removing it is only tidying.
        if let Err(left) = std::fs::remove_file(&temporary) {
            tracing::debug!(path = %temporary.display(), %left, "a temporary link was left behind");
        }
        return Err(error);
    }
    Ok(Some((bytes, hasher.digest())))
}

/// Whether linking failed because this file system cannot link these two paths (another
/// device, no hard links, links refused), where copying still can.
fn cannot_link(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::CrossesDevices | ErrorKind::Unsupported | ErrorKind::PermissionDenied
    )
}

/// The bytes of `got` as a stream of chunks. A local file is read 1 MiB at a time on a
/// blocking thread: object_store's own stream of a local file hands every 8 KiB read to a
/// blocking thread of its own, which, over a state of hundreds of MB verified each run, costs
/// more in thread hand-offs than the reading. Another store's stream is taken as it comes.
fn byte_stream(
    got: object_store::GetResult,
) -> futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>> {
    let object_store::GetResult {
        payload,
        meta,
        range,
        attributes,
    } = got;
    match payload {
        object_store::GetResultPayload::File(file, path) if range.start == 0 => {
            let unreadable = move |source: std::io::Error| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: format!("reading {}: {source}", path.display()).into(),
            };
            futures::stream::try_unfold((file, range.end), move |(mut file, remaining)| {
                let unreadable = unreadable.clone();
                async move {
                    if remaining == 0 {
                        return Ok(None);
                    }
                    tokio::task::spawn_blocking(move || {
                        use std::io::Read;
                        let wanted = remaining.min(LOCAL_READ_BYTES);
                        let mut buffer = Vec::with_capacity(wanted as usize);
                        let read = (&mut file).take(wanted).read_to_end(&mut buffer)?;
                        // A file shorter than listed ends here; the size check says so.
                        let left = if read == 0 { 0 } else { remaining - read as u64 };
                        Ok((read > 0).then(|| (bytes::Bytes::from(buffer), (file, left))))
                    })
                    .await
                    .map_err(|e| unreadable(std::io::Error::other(e)))?
                    .map_err(unreadable)
                }
            })
            .boxed()
        }
        payload => object_store::GetResult {
            payload,
            meta,
            range,
            attributes,
        }
        .into_stream(),
    }
}
