//! The `DINMO_*` environment settings: each read in one place, and a malformed value is an
//! error naming the variable (never silently replaced by the default). [`Settings::from_env`]
//! reads them all when a command starts, so a typo stops the command before it touches
//! anything, and the command carries the [`Settings`] down.

use std::time::Duration;

use crate::error::{DinmoError, Result};

/// `DINMO_LOCK_LEASE_SECS`: how long a sync lock holds without renewal (default 120 s).
pub const LOCK_LEASE_SECS: &str = "DINMO_LOCK_LEASE_SECS";
/// `DINMO_DELIVERY_BATCH_ROWS`: rows per batch handed to a destination (default 8,192).
pub const DELIVERY_BATCH_ROWS: &str = "DINMO_DELIVERY_BATCH_ROWS";
/// `DINMO_COMMIT_INTERVAL_MS`: the least time between two commits of acknowledged rows
/// during a delivery (default 1,000 ms; 0 commits after every batch).
pub const COMMIT_INTERVAL_MS: &str = "DINMO_COMMIT_INTERVAL_MS";
/// `DINMO_CHANGED_ROWS_LIMIT`: the most changed rows a sync describes (values before and
/// after, in memory) in one run before it stops (default 1,000,000).
pub const CHANGED_ROWS_LIMIT: &str = "DINMO_CHANGED_ROWS_LIMIT";
/// `DINMO_LOG`: the log filter (`info`, `dinmo=debug`, ...).
pub const LOG: &str = "DINMO_LOG";

const DEFAULT_LEASE_SECS: u64 = 120;
const DEFAULT_DELIVERY_BATCH_ROWS: usize = 8192;
const DEFAULT_COMMIT_INTERVAL_MS: usize = 1000;
const DEFAULT_CHANGED_ROWS_LIMIT: usize = 1_000_000;

/// The settings a command runs with: read once when it starts ([`Settings::from_env`]) and
/// carried in the run's context, so nothing below reads the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a sync lock holds without renewal.
    pub lock_lease: Duration,
    /// Rows per batch handed to a destination.
    pub delivery_batch_rows: usize,
    /// The least time between two commits of acknowledged rows during a delivery: a crash
    /// between commits loses nothing, since the next run settles acknowledged but uncommitted
    /// rows like any rows in flight.
    pub commit_interval: Duration,
    /// Memory the query engine may hold (`--memory-limit`, `DINMO_MEMORY_LIMIT`); overrides
    /// the project's `execution.memory_limit`.
    pub memory_limit: Option<u64>,
    /// The most changed rows a sync describes in one run: their values before and after are
    /// held in memory, and more than this many usually means the model or its mapping changed
    /// how every value is computed, not that the warehouse restated them.
    pub changed_rows_limit: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lock_lease: Duration::from_secs(DEFAULT_LEASE_SECS),
            delivery_batch_rows: DEFAULT_DELIVERY_BATCH_ROWS,
            commit_interval: Duration::from_millis(DEFAULT_COMMIT_INTERVAL_MS as u64),
            memory_limit: None,
            changed_rows_limit: DEFAULT_CHANGED_ROWS_LIMIT as u64,
        }
    }
}

impl Settings {
    /// Every `DINMO_*` setting from the environment; the first malformed one is the error.
    pub fn from_env() -> Result<Settings> {
        Ok(Settings {
            lock_lease: lock_lease()?,
            delivery_batch_rows: delivery_batch_rows()?,
            commit_interval: commit_interval()?,
            memory_limit: None,
            changed_rows_limit: positive(
                CHANGED_ROWS_LIMIT,
                DEFAULT_CHANGED_ROWS_LIMIT,
                "a whole number of rows, 1 or more",
            )? as u64,
        })
    }

    /// With `--memory-limit`.
    pub fn with_memory_limit(self, memory_limit: Option<u64>) -> Self {
        Settings { memory_limit, ..self }
    }
}

/// The DataFusion session models run in, with DataFusion's own `DATAFUSION_*` settings from
/// the environment (`DATAFUSION_EXECUTION_BATCH_SIZE`, `DATAFUSION_EXECUTION_TARGET_PARTITIONS`,
/// ...; DataFusion's configuration reference lists them).
///
/// With a `memory_limit`, operators share a fair spill pool of that many bytes and spill to
/// `spill_path` (created when first needed); without one, memory is not limited.
pub fn query_context(
    memory_limit: Option<u64>,
    spill_path: &std::path::Path,
) -> Result<datafusion::prelude::SessionContext> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;

    let config = datafusion::prelude::SessionConfig::from_env().map_err(|source| DinmoError::QuerySettings {
        source: Box::new(source),
    })?;
    let mut config = config;
    // Files in folders below a source's location are read (date folders such as
    // `2026/11/01/`), not skipped: a file never read is usage never billed. A source's
    // registration names the files a partitioned listing would not read.
    if std::env::var_os("DATAFUSION_EXECUTION_LISTING_TABLE_IGNORE_SUBDIRECTORY").is_none() {
        config.options_mut().execution.listing_table_ignore_subdirectory = false;
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        // A sort reserves this much up front for merging its spills (10 MB by default, per
        // partition), and the sorts of a join's both sides run at once in every partition:
        // under a small limit, keep the reservation to a small share of the pool, and batches
        // small enough that each sort can hold two of them.
        let share = usize::try_from(limit / 32).unwrap_or(usize::MAX);
        let rows = usize::try_from(limit / 2048).unwrap_or(usize::MAX).max(1024);
        let rows = config.batch_size().min(rows);
        let reserved = config.options().execution.sort_spill_reservation_bytes.min(share);
        let partitions = config.target_partitions();
        config = config.with_batch_size(rows).with_sort_spill_reservation_bytes(reserved);
        std::fs::create_dir_all(spill_path).map_err(DinmoError::io(spill_path))?;
        runtime = runtime
            // Tracked, so that running out names the operators that hold the most.
            .with_memory_pool(std::sync::Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(usize::try_from(limit).unwrap_or(usize::MAX)),
                std::num::NonZeroUsize::MIN.saturating_add(4),
            )))
            .with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Directories(vec![spill_path.to_path_buf()]))
                    .with_max_spill_merge_fan_in(spill_merge_fan_in(limit, partitions)),
            );
    }
    let runtime = runtime
        .build_arc()
        .map_err(DinmoError::engine("setting up the query engine's memory pool"))?;
    Ok(datafusion::prelude::SessionContext::new_with_config_rt(config, runtime))
}

/// How many sorted spill files one merge reads at once under `limit` bytes: a merge takes as
/// many as the pool lets it, which starves the other partitions' sorts of a join that run at
/// the same time; each file read holds about two batches (assumed at most 1 MB each here).
fn spill_merge_fan_in(limit: u64, partitions: usize) -> usize {
    const BYTES_PER_FILE: u64 = 2 * 1024 * 1024;
    // Both sides of a join sort in every partition at once; their merges share half the pool.
    let merges = 2 * partitions.max(1) as u64;
    usize::try_from(limit / 2 / (merges * BYTES_PER_FILE))
        .unwrap_or(usize::MAX)
        .max(2)
}

/// The sync lock's lease, at least 1 s.
fn lock_lease() -> Result<Duration> {
    positive(
        LOCK_LEASE_SECS,
        DEFAULT_LEASE_SECS as usize,
        "a whole number of seconds, 1 or more",
    )
    .map(|s| Duration::from_secs(s as u64))
}

/// Rows per delivery batch, at least 1.
fn delivery_batch_rows() -> Result<usize> {
    positive(
        DELIVERY_BATCH_ROWS,
        DEFAULT_DELIVERY_BATCH_ROWS,
        "a whole number of rows, 1 or more",
    )
}

/// The least time between two commits during a delivery.
fn commit_interval() -> Result<Duration> {
    whole_number(
        COMMIT_INTERVAL_MS,
        DEFAULT_COMMIT_INTERVAL_MS,
        "a whole number of milliseconds, 0 or more",
    )
    .map(|ms| Duration::from_millis(ms as u64))
}

/// A positive whole number from `variable`, or `default` when it is unset.
fn positive(variable: &'static str, default: usize, expected: &'static str) -> Result<usize> {
    match whole_number(variable, default, expected)? {
        0 => Err(DinmoError::Setting {
            variable,
            value: "0".into(),
            expected,
        }),
        n => Ok(n),
    }
}

/// A whole number from `variable`, or `default` when it is unset. Set to the empty string
/// counts as set (an orchestrator templating an unset value), and is refused.
fn whole_number(variable: &'static str, default: usize, expected: &'static str) -> Result<usize> {
    let value = match std::env::var(variable) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => return Ok(default),
        Err(std::env::VarError::NotUnicode(raw)) => {
            return Err(DinmoError::Setting {
                variable,
                value: raw.to_string_lossy().into_owned(),
                expected,
            });
        }
    };
    match value.trim().parse::<usize>() {
        Ok(n) => Ok(n),
        Err(_) => Err(DinmoError::Setting {
            variable,
            value,
            expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_pool_merges_spills_two_at_a_time() {
        const MB: u64 = 1024 * 1024;
        assert_eq!(spill_merge_fan_in(20 * MB, 2), 2);
        assert_eq!(spill_merge_fan_in(4 * MB, 0), 2);
        assert_eq!(spill_merge_fan_in(1024 * MB, 2), 64);
        assert_eq!(spill_merge_fan_in(1024 * MB, 8), 16);
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        // The variables are not set in unit tests.
        assert_eq!(Settings::from_env().unwrap(), Settings::default());
        assert_eq!(Settings::default().delivery_batch_rows, 8192);
        assert_eq!(Settings::default().lock_lease, Duration::from_secs(120));
        assert_eq!(Settings::default().commit_interval, Duration::from_secs(1));
    }
}
