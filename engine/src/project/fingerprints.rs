//! Fingerprints of what a sync sends: the model's SQL and the sync's mapping. A run manifest
//! records both, so a plan can say what changed since the last run and `state:modified`
//! selects the syncs whose fingerprints differ.

use xxhash_rust::xxh3::xxh3_64;

use super::loaded::{Model, Sync};

/// xxh3-64 of the model's SQL, hex.
pub fn sql_hash(sql: &str) -> String {
    format!("{:016x}", xxh3_64(sql.trim().as_bytes()))
}

/// xxh3-64 of the sync's mapping and the model's primary key, hex.
pub fn mapping_hash(model: &Model, sync: &Sync) -> String {
    let mut text = format!("pk={}\n", model.primary_key.join(","));
    for mapped in &sync.mapping {
        text.push_str(&format!("{}={}\n", mapped.field, mapped.column));
    }
    format!("{:016x}", xxh3_64(text.as_bytes()))
}
