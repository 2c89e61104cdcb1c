//! Crash points for the exactly-once tests. Built only with the `failpoints` feature; in
//! every other build `crash_point` is an empty inline function.
//!
//! `DINMO_CRASH_AT=<name>` aborts the process (SIGABRT: no unwinding, no destructors, like a
//! crash) the first time `<name>` is reached; `DINMO_CRASH_AT=<name>:<n>` at the n-th time.

/// Aborts the process here when `DINMO_CRASH_AT` names this point.
#[cfg(feature = "failpoints")]
pub fn crash_point(name: &str) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let Ok(spec) = std::env::var("DINMO_CRASH_AT") else {
        return;
    };
    let (target, nth) = match spec.split_once(':') {
        Some((target, n)) => (target.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if target != name {
        return;
    }
    let mut hits = HITS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let count = hits.entry(name.to_string()).or_default();
    *count += 1;
    if *count == nth {
        eprintln!("dinmo: crash point `{name}` reached (hit {nth}); aborting");
        std::process::abort();
    }
}

/// Does nothing: built without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn crash_point(_name: &str) {}
