//! The tenant's data and the request bookkeeping (tokens, idempotency, limits, faults).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::config::{Fault, Faults, SimConfig};

/// A stored usage record.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRecord {
    pub id: String,
    pub account_id: String,
    pub account_number: String,
    pub uom: String,
    pub quantity: f64,
    pub start_date_time: String,
    pub end_date_time: Option<String>,
    pub description: Option<String>,
    pub unique_key: Option<String>,
    pub subscription_number: Option<String>,
    pub charge_number: Option<String>,
    pub import_id: Option<String>,
    pub status: String,
    pub source: String,
    /// Zuora-Track-Id of the request that created it.
    pub track_id: Option<String>,
}

/// A usage import.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub total_count: i32,
    pub imported_count: i32,
    pub created: String,
}

/// A stored answer, replayed for the same Idempotency-Key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Inner {
    pub config: SimConfig,
    pub faults: Faults,
    pub rng: StdRng,
    pub script: VecDeque<Fault>,
    pub tokens: HashMap<String, Instant>,
    pub records: Vec<UsageRecord>,
    /// The `UniqueKey`s of `records`, for the duplicate check.
    pub unique_keys: HashSet<String>,
    pub imports: Vec<Import>,
    pub idempotent: HashMap<String, StoredResponse>,
    pub in_flight_keys: HashSet<String>,
    pub window_start: Instant,
    pub window_count: u64,
    pub in_flight: u64,
    pub counters: Counters,
    pub next_id: u64,
    /// Open ZOQL results by `queryLocator`: the records not yet returned, and when the
    /// locator was last used.
    pub locators: HashMap<String, (std::collections::VecDeque<serde_json::Value>, Instant)>,
}

/// What the simulator saw, for assertions and benchmarks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub token_requests: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub dropped_before: u64,
    pub dropped_after: u64,
    pub idempotent_replays: u64,
    pub idempotency_conflicts: u64,
    pub unauthorized: u64,
    pub by_endpoint: HashMap<String, u64>,
}

/// Shared simulator state.
#[derive(Debug)]
pub struct SimState {
    pub inner: Mutex<Inner>,
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        SimState {
            inner: Mutex::new(Inner {
                config,
                faults: Faults::default(),
                rng: StdRng::seed_from_u64(0),
                script: VecDeque::new(),
                tokens: HashMap::new(),
                records: Vec::new(),
                unique_keys: HashSet::new(),
                imports: Vec::new(),
                idempotent: HashMap::new(),
                in_flight_keys: HashSet::new(),
                window_start: Instant::now(),
                window_count: 0,
                in_flight: 0,
                counters: Counters::default(),
                next_id: 1,
                locators: HashMap::new(),
            }),
        }
    }

    /// Locks the state; a poisoned lock (a panicking test) still yields the data.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Stores a record.
    pub fn store(&mut self, record: UsageRecord) {
        if let Some(key) = &record.unique_key {
            self.unique_keys.insert(key.clone());
        }
        self.records.push(record);
    }

    /// Removes the record at `index`.
    pub fn remove(&mut self, index: usize) -> UsageRecord {
        let record = self.records.remove(index);
        if let Some(key) = &record.unique_key {
            self.unique_keys.remove(key);
        }
        record
    }

    /// Keeps the first `len` records (an import that failed part-way).
    pub fn truncate(&mut self, len: usize) {
        while self.records.len() > len {
            let index = self.records.len() - 1;
            self.remove(index);
        }
    }

    /// Forgets every record.
    pub fn clear_records(&mut self) {
        self.records.clear();
        self.unique_keys.clear();
    }

    /// A new 32-hex id, like Zuora's.
    pub fn new_id(&mut self) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("8a8{n:029x}")
    }

    /// Sets the faults; the script restarts.
    pub fn set_faults(&mut self, faults: Faults) {
        self.rng = StdRng::seed_from_u64(faults.seed);
        self.script = faults.script.iter().copied().collect();
        self.faults = faults;
    }

    /// The fault for the next request.
    pub fn next_fault(&mut self) -> Fault {
        if let Some(fault) = self.script.pop_front() {
            return fault;
        }
        let f = self.faults.clone();
        let roll: f64 = self.rng.random();
        let mut edge = f.error_rate;
        if roll < edge {
            return Fault::ServerError;
        }
        edge += f.throttle_rate;
        if roll < edge {
            return Fault::Throttle;
        }
        edge += f.rate_limited_rate;
        if roll < edge {
            return Fault::RateLimited;
        }
        edge += f.drop_before_rate;
        if roll < edge {
            return Fault::DropBefore;
        }
        edge += f.drop_after_rate;
        if roll < edge {
            return Fault::DropAfter;
        }
        Fault::None
    }

    /// Counts a request against the rate-limit window; `Err(seconds until reset)` when over.
    pub fn take_rate(&mut self) -> Result<(u64, u64), u64> {
        let now = Instant::now();
        let window = Duration::from_secs(self.config.rate_limit_window_secs.max(1));
        if now.duration_since(self.window_start) >= window {
            self.window_start = now;
            self.window_count = 0;
        }
        let reset = self.seconds_to_reset();
        if self.window_count >= self.config.rate_limit_per_minute {
            return Err(reset);
        }
        self.window_count += 1;
        Ok((self.config.rate_limit_per_minute - self.window_count, reset))
    }

    /// Seconds until the current rate-limit window resets (at least 1).
    pub fn seconds_to_reset(&self) -> u64 {
        let window = Duration::from_secs(self.config.rate_limit_window_secs.max(1));
        window
            .saturating_sub(Instant::now().duration_since(self.window_start))
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64
    }

    /// Requests left in the current window.
    pub fn rate_remaining(&self) -> u64 {
        self.config.rate_limit_per_minute.saturating_sub(self.window_count)
    }

    /// Whether `token` is valid now.
    pub fn token_valid(&self, token: &str) -> bool {
        self.tokens.get(token).is_some_and(|expires| *expires > Instant::now())
    }

    pub fn account(&self, number: Option<&str>, id: Option<&str>) -> Option<crate::config::Account> {
        self.config
            .accounts
            .iter()
            .find(|a| number.is_some_and(|n| a.number == n) || id.is_some_and(|i| a.id == i))
            .cloned()
    }
}
