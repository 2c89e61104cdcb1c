//! A set of row keys held as their 128-bit hashes, each with a value of its own (the row's
//! [`value`](crate::state::values) for the snapshot, nothing for the primary-key check),
//! sharded so several tasks can fill it at once, with its memory accounted to the session's
//! pool.
//!
//! It does the two hash-table jobs of the diff: finding repeated primary keys while the model
//! is staged, and holding the snapshot's keys while the staged rows stream past them, which
//! DataFusion's GROUP BY and hash join on 32-character text keys did at a far higher cost
//! (`docs/performance.md`). Here a key is 16 bytes and is its own hash (row keys are xxh3-128 digests, uniformly
//! spread: the low 64 bits index the table, the top six bits pick the shard).
//!
//! A set takes at most half of a limited pool, leaving the rest to the query's operators (the
//! model's own sorts and joins run while the primary-key set fills). When it would need more,
//! or the pool refuses, the set says so ([`OutOfMemory`]) and the caller falls back to
//! DataFusion, whose operators can spill.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};

/// Shards of a set: enough that two to a few dozen tasks rarely wait for one another, and
/// that a shard doubling its table is a small step of the whole.
const SHARDS: usize = 64;

/// What a set holds for each key: nothing (the primary-key check), or a snapshot row's value
/// with a mark set once the model produced the key ([`Seen`]).
pub trait Stored: Send + Sync {
    /// What callers give for a key.
    type Given: Copy + Send + Sync;
    /// The stored form of `given`.
    fn new(given: Self::Given) -> Self;
    /// Replaces the stored value with `given`.
    fn set(&mut self, given: Self::Given);
}

impl Stored for () {
    type Given = ();
    fn new(_: ()) -> Self {}
    fn set(&mut self, _: ()) {}
}

/// A snapshot row's value (the low 63 bits of its hash) and, in the top bit, whether the
/// model produced its key in this run: set with a plain load and store, each key being
/// produced once (the model's primary key is unique), so no read-modify-write is needed.
#[derive(Debug, Default)]
pub struct Seen(std::sync::atomic::AtomicU64);

/// The mark of [`Seen`].
const SEEN: u64 = 1 << 63;

/// A value as a [`Seen`] keeps it: its low 63 bits.
pub fn stored_value(value: u64) -> u64 {
    value & !SEEN
}

impl Stored for Seen {
    type Given = u64;
    fn new(value: u64) -> Self {
        Seen(std::sync::atomic::AtomicU64::new(stored_value(value)))
    }
    fn set(&mut self, value: u64) {
        *self.0.get_mut() = stored_value(value);
    }
}

/// Bytes one key of capacity costs: its entry (key and value), 1 control byte, and the
/// table's eighth of free buckets.
const fn bytes_per_key<V>() -> usize {
    std::mem::size_of::<(Key, V)>() * 9 / 8 + 2
}

/// A row key as the table holds it: its two 64-bit halves. A `u128` aligns to 16 bytes, which
/// would pad a key with an 8-byte value to 32; as halves, the entry is 24 bytes, and a no-op
/// run, which looks every key up once, touches a quarter less memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u64; 2]);

impl Key {
    fn new(key: u128) -> Self {
        Key([key as u64, (key >> 64) as u64])
    }

    fn get(self) -> u128 {
        u128::from(self.0[0]) | (u128::from(self.0[1]) << 64)
    }
}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The low half indexes the table (see [`LowBits`]).
        state.write_u64(self.0[0]);
    }
}

/// The pool refused the memory the set needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// Hashes a row key ([`Key`]) by taking its low 64 bits: it is already a digest.
#[derive(Debug, Default)]
struct LowBits(u64);

impl Hasher for LowBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only keys' low halves are hashed; fold anything else in all the same.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Shard<V> = HashMap<Key, V, BuildHasherDefault<LowBits>>;

fn shard_of(key: u128) -> usize {
    (key >> 122) as usize // the top six bits: SHARDS = 64
}

/// A set being filled by several tasks; `V` is what it holds for each key.
#[derive(Debug)]
pub struct KeySet<V = ()> {
    shards: Vec<Mutex<Shard<V>>>,
    memory: Mutex<MemoryReservation>,
    /// The most the set may take: half the pool's limit.
    max_bytes: usize,
}

/// Half of `pool`'s limit, or no bound without one.
fn half_of(pool: &Arc<dyn MemoryPool>) -> usize {
    use datafusion::execution::memory_pool::MemoryLimit;
    match pool.memory_limit() {
        MemoryLimit::Finite(limit) => limit / 2,
        MemoryLimit::Infinite | MemoryLimit::Unknown => usize::MAX,
    }
}

/// What a set of `expected` keys with values of `V` takes in memory, as accounted to the pool.
pub fn bytes_for<V>(expected: u64) -> u64 {
    expected.saturating_mul(bytes_per_key::<V>() as u64)
}

impl<V: Stored> KeySet<V> {
    /// An empty set that grows as keys come, accounted to `pool` under `name`.
    pub fn empty(pool: &Arc<dyn MemoryPool>, name: String) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            memory: Mutex::new(MemoryConsumer::new(name).register(pool)),
            max_bytes: half_of(pool),
        }
    }

    /// An empty set with room for `expected` keys, reserved from `pool` under `name`.
    pub fn with_capacity(pool: &Arc<dyn MemoryPool>, name: String, expected: u64) -> Result<Self, OutOfMemory> {
        let memory = MemoryConsumer::new(name).register(pool);
        let max_bytes = half_of(pool);
        let per_shard = usize::try_from(expected.div_ceil(SHARDS as u64)).map_err(|_| OutOfMemory)?;
        let wanted = per_shard.saturating_mul(SHARDS).saturating_mul(bytes_per_key::<V>());
        if wanted > max_bytes {
            return Err(OutOfMemory);
        }
        // Reserve before allocating: a refusal then costs nothing.
        memory.try_grow(wanted).map_err(|_| OutOfMemory)?;
        let shards: Vec<Mutex<Shard<V>>> = (0..SHARDS)
            .map(|_| Mutex::new(Shard::with_capacity_and_hasher(per_shard, Default::default())))
            .collect();
        let held = shards.iter().map(|s| lock(s).capacity()).sum::<usize>() * bytes_per_key::<V>();
        memory.try_resize(held).map_err(|_| OutOfMemory)?;
        Ok(Self {
            shards,
            memory: Mutex::new(memory),
            max_bytes,
        })
    }

    /// Adds `keys`, each with its value (`values[i]` for `keys[i]`), a value given later
    /// replacing one given before; returns how many of the keys were in the set already
    /// (counting a key that repeats within `keys` too). A shard that grew is accounted after
    /// the fact, so the pool may be exceeded by one shard's growth (a 64th of the set) before
    /// it refuses.
    pub fn insert_with(&self, keys: &[u128], values: &[V::Given]) -> Result<u64, OutOfMemory> {
        let mut repeated = 0u64;
        let mut grown = 0usize;
        let (placed, starts) = by_shard(keys, values);
        for shard in 0..SHARDS {
            let entries = &placed[starts[shard]..starts[shard + 1]];
            if entries.is_empty() {
                continue;
            }
            let mut set = lock(&self.shards[shard]);
            let before = set.capacity();
            for &(key, value) in entries {
                match set.entry(Key::new(key)) {
                    std::collections::hash_map::Entry::Occupied(mut stored) => {
                        stored.get_mut().set(value);
                        repeated += 1;
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(V::new(value));
                    }
                }
            }
            grown += set.capacity() - before;
        }
        if grown > 0 {
            let bytes = grown * bytes_per_key::<V>();
            let memory = lock(&self.memory);
            if memory.size().saturating_add(bytes) > self.max_bytes {
                return Err(OutOfMemory);
            }
            memory.try_grow(bytes).map_err(|_| OutOfMemory)?;
        }
        Ok(repeated)
    }

    /// Empties the set and gives its memory back.
    pub fn clear(&self) {
        for shard in &self.shards {
            *lock(shard) = Shard::<V>::default();
        }
        lock(&self.memory).free();
    }

    /// The filled set, for lookups without locks.
    pub fn freeze(self) -> FrozenKeySet<V> {
        FrozenKeySet {
            shards: self
                .shards
                .into_iter()
                .map(|s| s.into_inner().unwrap_or_else(PoisonError::into_inner))
                .collect(),
            _memory: self.memory.into_inner().unwrap_or_else(PoisonError::into_inner),
            marking: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl KeySet<()> {
    /// Adds `keys`; returns how many of them were in the set already (see
    /// [`KeySet::insert_with`]).
    pub fn insert(&self, keys: &[u128]) -> Result<u64, OutOfMemory> {
        self.insert_with(keys, &vec![(); keys.len()])
    }
}

/// A filled set; its memory stays reserved until it is dropped.
#[derive(Debug)]
pub struct FrozenKeySet<V = ()> {
    shards: Vec<Shard<V>>,
    _memory: MemoryReservation,
    /// Whether [`FrozenKeySet::see`] marks the keys it finds (writing to every entry costs
    /// memory bandwidth; it is only needed to name the keys not seen).
    marking: std::sync::atomic::AtomicBool,
}

impl FrozenKeySet<Seen> {
    /// The value held for `key` (its low 63 bits), when the set has it; marks the key seen
    /// while marking ([`FrozenKeySet::mark_from_now`]).
    pub fn see(&self, key: u128) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = &self.shards[shard_of(key)].get(&Key::new(key))?.0;
        let value = slot.load(Relaxed);
        if value & SEEN == 0 && self.marking.load(Relaxed) {
            slot.store(value | SEEN, Relaxed);
        }
        Some(stored_value(value))
    }

    /// Marks `key` seen, whether or not the set is marking, and returns whether it was marked
    /// already (the key came twice) and its value (low 63 bits); `None` when the set does not
    /// hold it. An atomic read-modify-write, so two tasks marking one key tell it apart.
    pub fn mark(&self, key: u128) -> Option<(bool, u64)> {
        let slot = &self.shards[shard_of(key)].get(&Key::new(key))?.0;
        let before = slot.fetch_or(SEEN, std::sync::atomic::Ordering::Relaxed);
        Some((before & SEEN != 0, stored_value(before)))
    }

    /// Whether keys found are marked.
    pub fn marking(&self) -> bool {
        self.marking.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the keys found from now on.
    pub fn mark_from_now(&self) {
        self.marking.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The value held for `key`, without marking it.
    pub fn peek(&self, key: u128) -> Option<u64> {
        let slot = &self.shards[shard_of(key)].get(&Key::new(key))?.0;
        Some(stored_value(slot.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// Marks nothing until [`FrozenKeySet::mark_from_now`].
    pub fn without_marking(self) -> Self {
        self.marking.store(false, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Keys in the set.
    pub fn keys(&self) -> u64 {
        self.shards.iter().map(|shard| shard.len() as u64).sum()
    }

    /// The keys no [`FrozenKeySet::see`] asked for, with their values.
    pub fn unseen(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        use std::sync::atomic::Ordering::Relaxed;
        self.shards.iter().flat_map(|shard| {
            shard.iter().filter_map(|(key, slot)| {
                let value = slot.0.load(Relaxed);
                (value & SEEN == 0).then_some((key.get(), value))
            })
        })
    }
}

impl<V> FrozenKeySet<V> {
    #[cfg(test)]
    pub fn contains(&self, key: u128) -> bool {
        self.shards[shard_of(key)].contains_key(&Key::new(key))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
}

/// A shard's lock; a panic elsewhere while holding it leaves a set that is still a set.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `keys` with their values grouped by shard (a counting sort: one pass to count, one to
/// place; a key keeps its order among its shard's), and where each shard's keys start.
fn by_shard<V: Copy>(keys: &[u128], values: &[V]) -> (Vec<(u128, V)>, [usize; SHARDS + 1]) {
    let mut starts = [0usize; SHARDS + 1];
    for &key in keys {
        starts[shard_of(key) + 1] += 1;
    }
    for shard in 0..SHARDS {
        starts[shard + 1] += starts[shard];
    }
    let mut placed: Vec<(u128, V)> = Vec::with_capacity(keys.len());
    let Some(&first) = values.first() else {
        return (placed, starts);
    };
    placed.resize(keys.len(), (0, first));
    let mut cursor = starts;
    for (&key, &value) in keys.iter().zip(values) {
        let shard = shard_of(key);
        placed[cursor[shard]] = (key, value);
        cursor[shard] += 1;
    }
    (placed, starts)
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::{GreedyMemoryPool, UnboundedMemoryPool};

    use super::*;

    fn spread(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    #[test]
    fn counts_keys_seen_before_across_calls_and_within_one() {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let set = KeySet::empty(&pool, "test".into());
        let first: Vec<u128> = (0..10_000).map(spread).collect();
        assert_eq!(set.insert(&first), Ok(0));
        let second: Vec<u128> = (9_990..10_010)
            .map(spread)
            .chain([spread(20_000), spread(20_000)])
            .collect();
        assert_eq!(set.insert(&second), Ok(11)); // ten seen before, one repeated within
        let frozen = set.freeze();
        assert_eq!(frozen.len(), 10_011);
        assert!(frozen.contains(spread(0)) && frozen.contains(spread(20_000)));
        assert!(!frozen.contains(spread(30_000)));
        assert!(
            pool.reserved() >= 10_011 * bytes_per_key::<()>(),
            "its memory is accounted"
        );
        drop(frozen);
        assert_eq!(pool.reserved(), 0, "and given back");
    }

    #[test]
    fn a_set_takes_at_most_half_a_limited_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1_000_000));
        // 30,000 keys fit the pool (600 KB) but not half of it.
        let big = KeySet::<()>::with_capacity(&pool, "big".into(), 30_000);
        assert_eq!(big.map(|_| ()), Err(OutOfMemory));
        assert!(KeySet::<()>::with_capacity(&pool, "small".into(), 20_000).is_ok());
        let set = KeySet::empty(&pool, "growing".into());
        let keys: Vec<u128> = (0..30_000).map(spread).collect();
        assert_eq!(set.insert(&keys), Err(OutOfMemory));
        assert!(pool.reserved() <= 500_000, "{}", pool.reserved());
    }

    #[test]
    fn a_pool_too_small_refuses_up_front_or_while_growing() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100_000));
        assert_eq!(
            KeySet::<()>::with_capacity(&pool, "big".into(), 1_000_000).map(|_| ()),
            Err(OutOfMemory)
        );
        let set = KeySet::empty(&pool, "growing".into());
        let keys: Vec<u128> = (0..100_000).map(spread).collect();
        assert_eq!(set.insert(&keys), Err(OutOfMemory));
        set.clear();
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn a_value_given_later_replaces_the_one_before_and_keys_asked_for_are_seen() {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let set = KeySet::<Seen>::empty(&pool, "test".into());
        assert_eq!(
            set.insert_with(&[spread(1), spread(2), spread(4)], &[10, 20, u64::MAX]),
            Ok(0)
        );
        assert_eq!(set.insert_with(&[spread(2), spread(2)], &[21, 22]), Ok(2));
        let frozen = set.freeze();
        assert_eq!(frozen.see(spread(1)), Some(10));
        assert_eq!(frozen.see(spread(1)), Some(10), "seeing twice keeps the value");
        assert_eq!(frozen.see(spread(2)), Some(22));
        assert_eq!(frozen.see(spread(3)), None);
        let unseen: Vec<(u128, u64)> = frozen.unseen().collect();
        assert_eq!(unseen, [(spread(4), stored_value(u64::MAX))], "a value keeps 63 bits");
    }

    #[test]
    fn grouping_by_shard_keeps_every_key() {
        let keys: Vec<u128> = (0..5_000).map(spread).collect();
        let (placed, starts) = by_shard(&keys, &vec![(); keys.len()]);
        assert_eq!(starts[SHARDS], keys.len());
        for shard in 0..SHARDS {
            assert!(
                placed[starts[shard]..starts[shard + 1]]
                    .iter()
                    .all(|&(k, ())| shard_of(k) == shard)
            );
        }
        let placed: Vec<u128> = placed.into_iter().map(|(k, ())| k).collect();
        let (mut a, mut b) = (placed.clone(), keys.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }
}
