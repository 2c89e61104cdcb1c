//! What the simulated tenant holds and how it behaves.

use serde::{Deserialize, Serialize};

/// A customer account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Account number (`A00000001`).
    pub number: String,
    /// Account id (32 hex).
    pub id: String,
    /// `Active`, `Inactive`, …
    pub status: String,
}

/// The simulated tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    /// OAuth client id (Zuora's are 36 characters).
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Active units of measure.
    pub units_of_measure: Vec<String>,
    /// Units of measure that exist but are not active (`UnitOfMeasure.Active = false`).
    #[serde(default)]
    pub inactive_units_of_measure: Vec<String>,
    /// Requests per rate-limit window before 429 (docs/zuora.md, "Rate and concurrency limits":
    /// limits are per minute).
    pub rate_limit_per_minute: u64,
    /// The rate-limit window in seconds: Zuora's is a minute; tests shorten it so that a spent
    /// window (and `RateLimit-Reset`) can be waited out in seconds.
    #[serde(default = "default_window_secs")]
    pub rate_limit_window_secs: u64,
    /// Requests in flight before 429 (Concurrency-Limit-*).
    pub concurrency_limit: u64,
    /// Reject a usage whose `UniqueKey` was already stored (tenants with the feature on).
    pub enforce_unique_key: bool,
    /// How long an import stays Pending/Processing, in milliseconds.
    pub import_delay_ms: u64,
    /// Whether ZOQL can query `Usage.UniqueKey`: Zuora documents the field only with the
    /// Prepaid with Drawdown feature (docs/zuora.md, "ZOQL"); `false` is a tenant without it.
    #[serde(default = "yes")]
    pub unique_key_queryable: bool,
    /// How long an unused `queryLocator` lives (docs/zuora.md, "ZOQL": 15 minutes of inactivity).
    #[serde(default = "default_locator_ttl_secs")]
    pub query_locator_ttl_secs: u64,
    /// Whether the tenant has Active Rating: its usage imports then take the Active Rating
    /// layout, and otherwise the standard one ("Usage file format"; `POST /v1/usage` takes
    /// "the format used by the UI import tool"). Default false, as for every new tenant.
    #[serde(default)]
    pub active_rating: bool,
}

fn default_window_secs() -> u64 {
    60
}

fn yes() -> bool {
    true
}

fn default_locator_ttl_secs() -> u64 {
    15 * 60
}

impl Default for SimConfig {
    fn default() -> Self {
        let accounts = (1..=20)
            .map(|n| Account {
                number: format!("A{n:08}"),
                id: format!("{n:032x}"),
                status: if n == 13 { "Inactive".into() } else { "Active".into() },
            })
            .collect();
        SimConfig {
            client_id: "00000000-0000-4000-8000-00000000d1e0".into(),
            client_secret: "sim-secret-0123456789".into(),
            token_ttl_secs: 3600,
            accounts,
            units_of_measure: ["API_CALL", "GB_STORED", "SEAT", "Each"]
                .into_iter()
                .map(String::from)
                .collect(),
            inactive_units_of_measure: vec!["RETIRED_UNIT".into()],
            rate_limit_per_minute: 100_000,
            rate_limit_window_secs: default_window_secs(),
            concurrency_limit: 40,
            enforce_unique_key: true,
            import_delay_ms: 50,
            unique_key_queryable: true,
            query_locator_ttl_secs: default_locator_ttl_secs(),
            active_rating: false,
        }
    }
}

/// Faults to inject into `/v1` and `/oauth` requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Time from a request's arrival to its answer (the simulator's own work included), for
    /// every request.
    pub latency_ms: u64,
    /// Probability of a 503 before processing.
    pub error_rate: f64,
    /// Probability of a concurrency-limit 429 before processing.
    pub throttle_rate: f64,
    /// Probability of a rate-limit 429 (window spent) before processing.
    pub rate_limited_rate: f64,
    /// Probability the connection drops before the request is processed.
    pub drop_before_rate: f64,
    /// Probability the connection drops after the request was processed (and stored).
    pub drop_after_rate: f64,
    /// Seed for the random faults.
    pub seed: u64,
    /// One-shot faults applied to the next requests, in order, before the random ones.
    pub script: Vec<Fault>,
    /// Apply faults to `/oauth/token` too.
    pub include_oauth: bool,
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer 503.
    ServerError,
    /// Answer 429 from the concurrency limiter (`Concurrency-Limit-Remaining: 0`; the rate
    /// window still has room), as a burst of parallel requests meets it.
    Throttle,
    /// Answer 429 from the rate limiter: the window is spent (`RateLimit-Remaining: 0`,
    /// `RateLimit-Reset` the seconds left in the window).
    RateLimited,
    /// Drop the connection without processing.
    DropBefore,
    /// Process (store), then drop the connection before the answer arrives.
    DropAfter,
    /// Revoke every token and answer 401, as when a token expires mid-run.
    Unauthorized,
    /// Answer normally.
    None,
}
