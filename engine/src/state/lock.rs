//! One run per sync at a time: `<sync>/lock` in the state store, created with an atomic
//! create-if-absent (exclusive create on disk, `If-None-Match: *` on S3 and Azure), holding
//! the owner, start time and a lease the holder renews.
//!
//! - A lock whose lease expired, or whose holder process is gone from this host, is taken over;
//!   a lock that cannot be read (empty, not JSON) stops the run with the remedy
//!   (`dinmo state unlock`), never a guess.
//! - Renewal is a conditional write: `PutMode::Update` with the version the holder last wrote,
//!   where the store supports it (S3, Azure, GCS); on a local disk, which does not, the holder
//!   rewrites the lock only if it still holds exactly what it wrote and its lease has not run
//!   out (nobody else may take a lock over before that). A lock that changed hands, vanished
//!   or could not be renewed before its lease ran out is *lost*: [`LeaseWatch::check`] then
//!   fails, and the sender stops at the next batch boundary.
//! - Every wait sleeps and has a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dinmo_connectors::{RunId, SyncId};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use super::paths::SyncPaths;
use super::store::StateStore;
use crate::error::{DinmoError, Result};

/// How long a run without `--wait` keeps trying when a lock appears and disappears under it
/// (another run finishing just then).
const RACE_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between two looks at a lock.
const POLL: Duration = Duration::from_millis(250);

/// What a lock object says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holding run.
    pub run_id: RunId,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339; after this the lock may be taken over.
    pub lease_until: String,
}

impl LockHolder {
    /// The lease ran out (an unparsable time counts as run out).
    pub fn expired(&self) -> bool {
        self.until().is_none_or(|until| until < Utc::now())
    }

    fn until(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.lease_until)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The holder is a process on this host that no longer exists.
    pub fn dead_here(&self) -> bool {
        cfg!(target_os = "linux")
            && self.host == host_name()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// `run R (host pid P, since S, lease until L)`.
    pub fn describe(&self) -> String {
        format!(
            "run {} ({} pid {}, since {}, lease until {})",
            self.run_id, self.host, self.pid, self.since, self.lease_until
        )
    }
}

/// A sync's lock as found in the state store.
#[derive(Debug, Clone)]
pub enum LockStatus {
    /// No lock object.
    Free,
    /// A lock object naming its holder; `version` is what a conditional write must match.
    Held { holder: LockHolder, version: UpdateVersion },
    /// A lock object that is not a lock (empty, truncated, not JSON): what is wrong with it.
    Unreadable { problem: String },
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

fn holder(run_id: &RunId, since: &str, lease: Duration) -> LockHolder {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(120));
    LockHolder {
        run_id: run_id.clone(),
        host: host_name(),
        pid: std::process::id(),
        since: since.to_string(),
        lease_until: until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

fn encode(holder: &LockHolder) -> PutPayload {
    // A struct of strings and a number always serialises.
    PutPayload::from(serde_json::to_vec(holder).unwrap_or_default())
}

/// How a command takes its sync locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTerms {
    /// How long a lock holds without renewal (`DINMO_LOCK_LEASE_SECS`).
    pub lease: Duration,
    /// How long to wait for another run's locks (`--wait`); `None` fails at once.
    pub wait: Option<Duration>,
}

impl LockTerms {
    /// The lease of `settings`, waiting `wait`.
    pub fn new(settings: &crate::settings::Settings, wait: Option<Duration>) -> Self {
        LockTerms {
            lease: settings.lock_lease,
            wait,
        }
    }
}

/// Whether this run still holds its locks, shared between the renewal task and the sender.
#[derive(Debug, Clone, Default)]
pub struct LeaseWatch(Arc<Mutex<LeaseState>>);

#[derive(Debug, Default)]
struct LeaseState {
    /// The first lock lost, and why.
    lost: Option<(SyncId, String)>,
    /// Each held lock's lease end, by sync.
    until: Vec<(SyncId, DateTime<Utc>)>,
}

impl LeaseWatch {
    fn with<T>(&self, f: impl FnOnce(&mut LeaseState) -> T) -> T {
        match self.0.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn renewed(&self, sync: &SyncId, until: DateTime<Utc>) {
        self.with(|state| match state.until.iter_mut().find(|(s, _)| s == sync) {
            Some(slot) => slot.1 = until,
            None => state.until.push((sync.clone(), until)),
        });
    }

    fn lose(&self, sync: &SyncId, reason: String) {
        error!(sync = %sync, reason = %reason, "this run lost its sync lock; it stops sending at the next batch boundary");
        self.with(|state| {
            state.lost.get_or_insert((sync.clone(), reason));
        });
    }

    /// Fails once a lock of this run was lost or its lease ran out unrenewed: past that point
    /// another run may hold the sync, and nothing more may be sent.
    pub fn check(&self) -> Result<()> {
        self.with(|state| {
            if let Some((sync, reason)) = &state.lost {
                return Err(DinmoError::LockLost {
                    sync: sync.clone(),
                    reason: reason.clone(),
                });
            }
            match state.until.iter().find(|(_, until)| *until < Utc::now()) {
                Some((sync, until)) => Err(DinmoError::LockLost {
                    sync: sync.clone(),
                    reason: format!("its lease ran out at {} without a renewal", until.to_rfc3339()),
                }),
                None => Ok(()),
            }
        })
    }
}

/// One lock this run holds: what it last wrote, and the version to match on the next write.
#[derive(Debug, Clone)]
struct Held {
    sync: SyncId,
    written: LockHolder,
    version: UpdateVersion,
}

/// The locks of the syncs one run works on; released on `release` (a crashed holder's locks
/// expire with their lease).
#[derive(Debug)]
pub struct SyncLocks {
    state: StateStore,
    held: Arc<tokio::sync::Mutex<Vec<Held>>>,
    renewal: Option<JoinHandle<()>>,
}

/// What `dinmo state unlock` did.
#[derive(Debug, Clone)]
pub enum Unlocked {
    /// There was no lock.
    NotLocked,
    /// The lock was removed; it said this (or could not be read).
    Removed(LockStatus),
}

impl StateStore {
    fn lock_path(&self, sync: &SyncId) -> object_store::path::Path {
        self.path(&SyncPaths::of(sync).lock())
    }

    /// The `url` of a sync's lock object, for messages.
    pub fn lock_url(&self, sync: &SyncId) -> String {
        self.url_of(&SyncPaths::of(sync).lock())
    }

    /// Writes `written` to `sync`'s lock with `mode` (create, conditional update, overwrite):
    /// the lock as held now, with the version its next conditional write must match.
    async fn put_lock(
        &self,
        sync: &SyncId,
        mode: PutMode,
        written: LockHolder,
    ) -> std::result::Result<Held, object_store::Error> {
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let put = self
            .location()
            .store
            .put_opts(&self.lock_path(sync), encode(&written), options)
            .await?;
        Ok(Held {
            sync: sync.clone(),
            written,
            version: UpdateVersion {
                e_tag: put.e_tag,
                version: put.version,
            },
        })
    }

    /// A sync's lock as it is now.
    pub async fn lock_status(&self, sync: &SyncId) -> Result<LockStatus> {
        let got = match self.location().store.get(&self.lock_path(sync)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(LockStatus::Free),
            Err(source) => return Err(self.store_error()(source)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = match got.bytes().await {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(LockStatus::Free),
            Err(source) => return Err(self.store_error()(source)),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(LockStatus::Unreadable {
                problem: format!("it is empty ({} bytes)", bytes.len()),
            });
        }
        match serde_json::from_slice::<LockHolder>(&bytes) {
            Ok(holder) => Ok(LockStatus::Held { holder, version }),
            Err(error) => Ok(LockStatus::Unreadable {
                problem: format!("it is not a dinmo lock ({} bytes; {error})", bytes.len()),
            }),
        }
    }

    /// Takes the locks of `syncs` (in sorted order, so two runs never wait on each other),
    /// waiting up to `wait` for holders to finish, and keeps them renewed until `release`;
    /// `watch` learns when one is lost.
    pub async fn lock_syncs(
        &self,
        syncs: &[SyncId],
        run_id: &RunId,
        terms: LockTerms,
        watch: &LeaseWatch,
    ) -> Result<SyncLocks> {
        let mut sorted = syncs.to_vec();
        sorted.sort();
        sorted.dedup();
        let LockTerms { lease, wait } = terms;
        let since = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut locks = SyncLocks {
            state: self.clone(),
            held: Arc::default(),
            renewal: None,
        };
        for sync in sorted {
            match self.lock_one(&sync, run_id, &since, lease, wait).await {
                Ok(held) => {
                    if let Some(until) = held.written.until() {
                        watch.renewed(&sync, until);
                    }
                    locks.held.lock().await.push(held);
                }
                Err(error) => {
                    locks.release().await;
                    return Err(error);
                }
            }
        }
        locks.renewal = Some(spawn_renewal(
            self.clone(),
            Arc::clone(&locks.held),
            run_id.clone(),
            since,
            lease,
            watch.clone(),
        ));
        Ok(locks)
    }

    async fn lock_one(
        &self,
        sync: &SyncId,
        run_id: &RunId,
        since: &str,
        lease: Duration,
        wait: Option<Duration>,
    ) -> Result<Held> {
        let started = tokio::time::Instant::now();
        let deadline = started + wait.unwrap_or(RACE_DEADLINE);
        loop {
            match self.put_lock(sync, PutMode::Create, holder(run_id, since, lease)).await {
                Ok(held) => return Ok(held),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(source) => return Err(self.store_error()(source)),
            }
            match self.lock_status(sync).await? {
                // Released between the create and the look: try again after the pause.
                LockStatus::Free => {}
                LockStatus::Unreadable { problem } => {
                    return Err(DinmoError::LockUnreadable {
                        sync: sync.clone(),
                        lock: self.lock_url(sync),
                        problem,
                    });
                }
                LockStatus::Held {
                    holder: current,
                    version,
                } if current.expired() || current.dead_here() => {
                    warn!(sync = %sync, holder = %current.describe(), "taking over a lock whose holder is gone");
                    if let Some(held) = self.take_over(sync, &current, version, run_id, since, lease).await? {
                        return Ok(held);
                    }
                }
                LockStatus::Held { holder: current, .. } => {
                    if wait.is_none() || tokio::time::Instant::now() >= deadline {
                        return Err(DinmoError::Locked {
                            sync: sync.clone(),
                            holder: current.describe(),
                            waited_secs: wait.map(|_| started.elapsed().as_secs()),
                        });
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(DinmoError::LockContended {
                    sync: sync.clone(),
                    lock: self.lock_url(sync),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// Replaces a stale lock with this run's: conditionally where the store can, else by
    /// deleting it when it still says the same and creating afresh (the caller's next turn).
    async fn take_over(
        &self,
        sync: &SyncId,
        stale: &LockHolder,
        version: UpdateVersion,
        run_id: &RunId,
        since: &str,
        lease: Duration,
    ) -> Result<Option<Held>> {
        match self
            .put_lock(sync, PutMode::Update(version), holder(run_id, since, lease))
            .await
        {
            Ok(held) => Ok(Some(held)),
            // Someone else changed it first: look again.
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(None),
            Err(object_store::Error::NotImplemented { .. }) => {
                if matches!(self.lock_status(sync).await?, LockStatus::Held { holder, .. } if holder == *stale) {
                    self.delete(&SyncPaths::of(sync).lock()).await?;
                }
                Ok(None)
            }
            Err(source) => Err(self.store_error()(source)),
        }
    }

    /// Removes a sync's lock when it cannot be read, its lease ran out, its holder is gone
    /// from this host, or `force` is given; otherwise fails naming the holder.
    pub async fn unlock(&self, sync: &SyncId, force: bool) -> Result<Unlocked> {
        let status = self.lock_status(sync).await?;
        match &status {
            LockStatus::Free => return Ok(Unlocked::NotLocked),
            LockStatus::Held { holder, .. } if !force && !holder.expired() && !holder.dead_here() => {
                return Err(DinmoError::LockHeld {
                    sync: sync.clone(),
                    holder: holder.describe(),
                });
            }
            _ => {}
        }
        self.delete(&SyncPaths::of(sync).lock()).await?;
        Ok(Unlocked::Removed(status))
    }
}

/// Renews every held lock a third of a lease apart; a lock that cannot be renewed is reported
/// lost to `watch`.
fn spawn_renewal(
    state: StateStore,
    held: Arc<tokio::sync::Mutex<Vec<Held>>>,
    run_id: RunId,
    since: String,
    lease: Duration,
    watch: LeaseWatch,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let mut held = held.lock().await;
            let mut kept = Vec::with_capacity(held.len());
            for lock in held.drain(..) {
                match renew(&state, &lock, &run_id, &since, lease).await {
                    Renewal::Renewed(lock) => {
                        if let Some(until) = lock.written.until() {
                            watch.renewed(&lock.sync, until);
                        }
                        kept.push(lock);
                    }
                    Renewal::NotNow(why) => {
                        warn!(sync = %lock.sync, error = %why, "cannot renew the sync lock now; trying again");
                        if lock.written.expired() {
                            watch.lose(&lock.sync, format!("its lease ran out while renewal failed ({why})"));
                        }
                        kept.push(lock);
                    }
                    Renewal::Lost(why) => watch.lose(&lock.sync, why),
                }
            }
            *held = kept;
        }
    })
}

enum Renewal {
    Renewed(Held),
    /// A transient failure; the lease still holds.
    NotNow(String),
    /// The lock is no longer this run's.
    Lost(String),
}

async fn renew(state: &StateStore, lock: &Held, run_id: &RunId, since: &str, lease: Duration) -> Renewal {
    if lock.written.expired() {
        return Renewal::Lost(format!(
            "its lease ran out at {} before it was renewed",
            lock.written.lease_until
        ));
    }
    let written = holder(run_id, since, lease);
    let update = PutMode::Update(lock.version.clone());
    match state.put_lock(&lock.sync, update, written.clone()).await {
        Ok(held) => Renewal::Renewed(held),
        Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
            Renewal::Lost(changed_hands(state, &lock.sync).await)
        }
        Err(object_store::Error::NotImplemented { .. }) => {
            // A local disk: rewrite only what this run wrote, while its lease holds.
            match state.lock_status(&lock.sync).await {
                Ok(LockStatus::Held { holder, .. }) if holder == lock.written => {
                    match state.put_lock(&lock.sync, PutMode::Overwrite, written).await {
                        Ok(held) => Renewal::Renewed(held),
                        Err(error) => Renewal::NotNow(error.to_string()),
                    }
                }
                Ok(_) => Renewal::Lost(changed_hands(state, &lock.sync).await),
                Err(error) => Renewal::NotNow(error.to_string()),
            }
        }
        Err(error) => Renewal::NotNow(error.to_string()),
    }
}

/// Why a lock is no longer this run's, from what it holds now.
async fn changed_hands(state: &StateStore, sync: &SyncId) -> String {
    match state.lock_status(sync).await {
        Ok(LockStatus::Free) => format!("{} was removed", state.lock_url(sync)),
        Ok(LockStatus::Held { holder, .. }) => format!("{} is now held by {}", state.lock_url(sync), holder.describe()),
        Ok(LockStatus::Unreadable { problem }) => format!("{} was overwritten: {problem}", state.lock_url(sync)),
        Err(error) => format!("{} changed and cannot be read: {error}", state.lock_url(sync)),
    }
}

impl StateStore {
    /// Runs `work` holding the locks of `syncs` (see [`StateStore::lock_syncs`]) and releases
    /// them when it ends, whether it succeeded or failed; if `work` is dropped unfinished, the
    /// locks are released by [`SyncLocks`]'s `Drop`. With no syncs, runs `work` without a lock.
    pub async fn while_locked<T>(
        &self,
        syncs: &[SyncId],
        run_id: &RunId,
        terms: LockTerms,
        watch: &LeaseWatch,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if syncs.is_empty() {
            return work.await;
        }
        let mut locks = self.lock_syncs(syncs, run_id, terms, watch).await?;
        let result = work.await;
        locks.release().await;
        result
    }
}

impl Drop for SyncLocks {
    /// Stops renewing, and releases the locks still held in the background: dropped without
    /// [`SyncLocks::release`] (a cancelled run), the locks would otherwise wait out their lease.
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let still_held = self.held.try_lock().map_or(true, |held| !held.is_empty());
        if let (true, Ok(runtime)) = (still_held, tokio::runtime::Handle::try_current()) {
            let mut rest = SyncLocks {
                state: self.state.clone(),
                held: Arc::clone(&self.held),
                renewal: None,
            };
            runtime.spawn(async move { rest.release().await });
        }
    }
}

impl SyncLocks {
    /// Stops renewing and releases every lock this run still holds (only those that still say
    /// what this run wrote).
    pub async fn release(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let held = std::mem::take(&mut *self.held.lock().await);
        for lock in held {
            match self.state.lock_status(&lock.sync).await {
                Ok(LockStatus::Held { holder, .. }) if holder.run_id == lock.written.run_id => {
                    if let Err(e) = self.state.delete(&SyncPaths::of(&lock.sync).lock()).await {
                        error!(sync = %lock.sync, error = %e, "cannot release the sync lock; it expires with its lease");
                    }
                }
                Ok(_) => {}
                Err(e) => error!(sync = %lock.sync, error = %e, "cannot read the sync lock to release it"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let location = dir.path().to_string_lossy().into_owned();
        let state = StateStore::open(&location).expect("a local state store");
        (dir, state)
    }

    #[tokio::test]
    async fn while_locked_releases_after_an_error() {
        let (_dir, state) = store();
        let syncs = vec![SyncId::from("usage.files")];
        let terms = LockTerms::new(&crate::settings::Settings::default(), None);
        let watch = LeaseWatch::default();
        let result: Result<()> = state
            .while_locked(&syncs, &"run-1".into(), terms, &watch, async {
                assert!(matches!(state.lock_status(&syncs[0]).await?, LockStatus::Held { .. }));
                Err(DinmoError::RunNotFound {
                    run: "x".into(),
                    state: "y".into(),
                })
            })
            .await;
        assert!(result.is_err());
        assert!(matches!(state.lock_status(&syncs[0]).await.unwrap(), LockStatus::Free));
    }

    #[tokio::test]
    async fn a_cancelled_run_releases_its_locks_on_drop() {
        let (_dir, state) = store();
        let syncs = vec![SyncId::from("usage.files")];
        let terms = LockTerms::new(&crate::settings::Settings::default(), None);
        let watch = LeaseWatch::default();
        let run = RunId::from("run-2");
        let work = state.while_locked(&syncs, &run, terms, &watch, std::future::pending::<Result<()>>());
        let cancelled = tokio::time::timeout(Duration::from_millis(300), work).await;
        assert!(cancelled.is_err(), "the work never ends; the timeout drops it");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !matches!(state.lock_status(&syncs[0]).await.unwrap(), LockStatus::Free) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was not released after the drop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
