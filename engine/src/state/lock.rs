//! One run per sync at a time: `<sync>/lock` in the state store, created with an atomic
//! create-if-absent (exclusive create on disk, `If-None-Match: *` on S3 and Azure), holding
//! the owner, start time and a lease the holder renews. A lock whose lease expired, or whose
//! holder process is gone from this host, is taken over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use super::store::StateStore;
use crate::error::{DinmoError, Result};

/// What a lock object says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holding run.
    pub run_id: String,
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
    fn expired(&self) -> bool {
        DateTime::parse_from_rfc3339(&self.lease_until).map_or(true, |until| until.with_timezone(&Utc) < Utc::now())
    }

    /// The holder is a process on this host that no longer exists.
    fn dead_here(&self) -> bool {
        cfg!(target_os = "linux")
            && self.host == host_name()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

/// The locks of the syncs one run works on; released on `release` (a crashed holder's locks
/// expire with their lease).
#[derive(Debug)]
pub struct SyncLocks {
    state: StateStore,
    syncs: Vec<String>,
    run_id: String,
    renewal: Option<JoinHandle<()>>,
}

fn holder(run_id: &str, since: &str, lease: Duration) -> LockHolder {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(120));
    LockHolder {
        run_id: run_id.to_string(),
        host: host_name(),
        pid: std::process::id(),
        since: since.to_string(),
        lease_until: until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

fn encode(holder: &LockHolder) -> PutPayload {
    PutPayload::from(serde_json::to_vec(holder).unwrap_or_default())
}

impl StateStore {
    /// The holder of a sync's lock, if it is held.
    pub async fn read_lock(&self, sync: &str) -> Result<Option<LockHolder>> {
        match self.location().store.get(&self.lock_path(sync)).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|source| DinmoError::StateStore {
                    location: self.display().to_string(),
                    source,
                })?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(DinmoError::StateStore {
                location: self.display().to_string(),
                source,
            }),
        }
    }

    fn lock_path(&self, sync: &str) -> object_store::path::Path {
        self.location().prefix.clone().join(sync).join("lock")
    }

    /// Takes the locks of `syncs` (in sorted order, so two runs never wait on each other),
    /// waiting up to `wait` for holders to finish.
    pub async fn lock_syncs(&self, syncs: &[String], run_id: &str, wait: Option<Duration>) -> Result<SyncLocks> {
        let mut sorted = syncs.to_vec();
        sorted.sort();
        sorted.dedup();
        let lease = crate::settings::lock_lease()?;
        let since = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let mut locks = SyncLocks {
            state: self.clone(),
            syncs: Vec::new(),
            run_id: run_id.to_string(),
            renewal: None,
        };
        for sync in sorted {
            loop {
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let created = self
                    .location()
                    .store
                    .put_opts(&self.lock_path(&sync), encode(&holder(run_id, &since, lease)), options)
                    .await;
                match created {
                    Ok(_) => {
                        locks.syncs.push(sync.clone());
                        break;
                    }
                    Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(source) => {
                        locks.release().await;
                        return Err(DinmoError::StateStore {
                            location: self.display().to_string(),
                            source,
                        });
                    }
                }
                let Some(current) = self.read_lock(&sync).await? else {
                    continue; // released meanwhile
                };
                if current.expired() || current.dead_here() {
                    warn!(sync, holder = %current.run_id, host = %current.host, pid = current.pid, "taking over a lock whose holder is gone");
                    // Delete only if it is still the same stale holder.
                    if self.read_lock(&sync).await?.as_ref() == Some(&current) {
                        self.delete(&format!("{sync}/lock")).await?;
                    }
                    continue;
                }
                match deadline {
                    Some(deadline) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    _ => {
                        locks.release().await;
                        return Err(DinmoError::Locked {
                            sync: sync.clone(),
                            holder_run: current.run_id,
                            holder: format!("{} pid {}", current.host, current.pid),
                            since: current.since,
                            lease_until: current.lease_until,
                        });
                    }
                }
            }
        }
        locks.renewal = Some(spawn_renewal(
            self.clone(),
            locks.syncs.clone(),
            run_id.to_string(),
            since,
            lease,
        ));
        Ok(locks)
    }
}

fn spawn_renewal(
    state: StateStore,
    syncs: Vec<String>,
    run_id: String,
    since: String,
    lease: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            for sync in &syncs {
                match state.read_lock(sync).await {
                    Ok(Some(current)) if current.run_id == run_id => {
                        let renewed = encode(&holder(&run_id, &since, lease));
                        if let Err(e) = state.location().store.put(&state.lock_path(sync), renewed).await {
                            error!(sync, error = %e, "cannot renew the sync lock");
                        }
                    }
                    Ok(other) => {
                        error!(sync, holder = ?other.map(|h| h.run_id), "the sync lock is no longer held by this run")
                    }
                    Err(e) => error!(sync, error = %e, "cannot read the sync lock"),
                }
            }
        }
    })
}

impl SyncLocks {
    /// Releases every lock this run still holds.
    pub async fn release(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        for sync in std::mem::take(&mut self.syncs) {
            match self.state.read_lock(&sync).await {
                Ok(Some(current)) if current.run_id == self.run_id => {
                    if let Err(e) = self.state.delete(&format!("{sync}/lock")).await {
                        error!(sync, error = %e, "cannot release the sync lock; it expires with its lease");
                    }
                }
                Ok(_) => {}
                Err(e) => error!(sync, error = %e, "cannot read the sync lock to release it"),
            }
        }
    }
}
