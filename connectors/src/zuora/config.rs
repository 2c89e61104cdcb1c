//! `type: zuora` configuration.

use serde::{Deserialize, Serialize};

pub use crate::zuora_common::Layout;

pub use crate::http::credentials::{Secret, check_base_url};

/// Zuora's named API hosts (the `servers` of Zuora's OpenAPI spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    /// US Production, Cloud 2: `https://rest.na.zuora.com`.
    UsProduction,
    /// US Production, Cloud 1: `https://rest.zuora.com`.
    UsCloud1Production,
    /// US API Sandbox, Cloud 2: `https://rest.sandbox.na.zuora.com`.
    UsApiSandbox,
    /// US API Sandbox, Cloud 1: `https://rest.apisandbox.zuora.com`.
    UsCloud1ApiSandbox,
    /// US Central Sandbox: `https://rest.test.zuora.com`.
    UsCentralSandbox,
    /// EU Production: `https://rest.eu.zuora.com`.
    EuProduction,
    /// EU API Sandbox: `https://rest.sandbox.eu.zuora.com`.
    EuApiSandbox,
    /// EU Central Sandbox: `https://rest.test.eu.zuora.com`.
    EuCentralSandbox,
    /// APAC Production: `https://rest.ap.zuora.com`.
    ApacProduction,
    /// APAC Central Sandbox: `https://rest.test.ap.zuora.com`.
    ApacCentralSandbox,
}

impl Environment {
    /// The environment's base URL.
    pub fn base_url(self) -> &'static str {
        match self {
            Environment::UsProduction => "https://rest.na.zuora.com",
            Environment::UsCloud1Production => "https://rest.zuora.com",
            Environment::UsApiSandbox => "https://rest.sandbox.na.zuora.com",
            Environment::UsCloud1ApiSandbox => "https://rest.apisandbox.zuora.com",
            Environment::UsCentralSandbox => "https://rest.test.zuora.com",
            Environment::EuProduction => "https://rest.eu.zuora.com",
            Environment::EuApiSandbox => "https://rest.sandbox.eu.zuora.com",
            Environment::EuCentralSandbox => "https://rest.test.eu.zuora.com",
            Environment::ApacProduction => "https://rest.ap.zuora.com",
            Environment::ApacCentralSandbox => "https://rest.test.ap.zuora.com",
        }
    }
}

/// How usage records are created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `POST /v1/action/create`, up to 50 records a call, one result per record.
    #[default]
    Actions,
    /// `POST /v1/object/usage`, one record a request, several in flight.
    Object,
    /// `POST /v1/usage` usage files, polled until processed; refused rows are isolated.
    Import,
}

/// Sends usage records to Zuora Billing through its REST API.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZuoraConfig {
    /// A named Zuora environment (`us-production`, `us-api-sandbox`, `eu-production`, …);
    /// exactly one of `environment` and `base_url`.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// An explicit API base URL. `http://` is accepted only for loopback addresses.
    #[serde(default)]
    pub base_url: Option<String>,
    /// OAuth client id, usually `${ZUORA_CLIENT_ID}`.
    pub client_id: String,
    /// OAuth client secret, usually `${ZUORA_CLIENT_SECRET}`; never logged or printed.
    pub client_secret: Secret,
    /// Sent as `Zuora-Entity-Ids` on multi-entity tenants.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// Sent as `Zuora-Version`.
    #[serde(default)]
    pub zuora_version: Option<String>,
    /// `actions` (default), `object` or `import`.
    #[serde(default)]
    pub method: Method,
    /// Records per `actions` call, 1 to 50. Default 50.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Requests in flight at once, 1 to 40 (Zuora's default concurrency limit is 40).
    /// Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Pace requests to stay under this many per minute instead of bouncing off 429s.
    /// Default: no pacing (429s are still honoured).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Seconds one request may take. Default 60.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts per request before giving up, 1 to 20. Default 8.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// Fetch the tenant's units of measure once per run and reject rows whose UOM Zuora does
    /// not know (Zuora would store them and never bill them). Default true.
    #[serde(default = "default_true")]
    pub check_units_of_measure: bool,
    /// `import`: seconds to wait for an import to finish. Default 600.
    #[serde(default = "default_import_timeout")]
    pub import_timeout_secs: u64,
    /// `import`: the usage file layout the tenant imports (`POST /v1/usage` takes "the
    /// format used by the UI import tool"): `standard`, Zuora Billing's usage import format
    /// (`ACCOUNT_ID, UOM, QTY, STARTDATE, ENDDATE, …`), or `active_rating` for tenants with
    /// Active Rating. Default `standard`. A mapped field the layout has no column for is
    /// refused.
    #[serde(default)]
    pub import_layout: Layout,
    /// `import`, standard layout: chrono `strftime` format of `STARTDATE` and `ENDDATE`, which
    /// Zuora reads in the uploading user's locale. Default `%m/%d/%Y` (en_US); `%d/%m/%Y` for
    /// en_GB.
    #[serde(default)]
    pub import_date_format: Option<String>,
}

fn default_batch_size() -> usize {
    50
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> u64 {
    60
}
fn default_attempts() -> usize {
    8
}
fn default_true() -> bool {
    true
}
fn default_import_timeout() -> u64 {
    600
}

impl ZuoraConfig {
    /// `import`: the date format of the standard layout's dates.
    pub fn import_date_format(&self) -> &str {
        self.import_date_format
            .as_deref()
            .unwrap_or(Layout::Standard.default_date_format())
    }

    /// The API base URL in effect.
    pub fn base_url(&self) -> Option<String> {
        match (&self.base_url, self.environment) {
            (Some(url), _) => Some(url.trim_end_matches('/').to_string()),
            (None, Some(env)) => Some(env.base_url().to_string()),
            (None, None) => None,
        }
    }

    /// Pure check; every problem as `(key, message)`. Messages never hold the secret.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(format) = &self.import_date_format
            && chrono::format::StrftimeItems::new(format).parse().is_err()
        {
            problems.push((
                "import_date_format",
                format!("`{format}` is not a valid strftime format"),
            ));
        }
        match (&self.base_url, self.environment) {
            (Some(_), Some(_)) => problems.push(("base_url", "give either environment or base_url, not both".into())),
            (None, None) => problems.push((
                "environment",
                "give an environment (e.g. us-api-sandbox) or a base_url".into(),
            )),
            (Some(url), None) => {
                if let Err(message) = check_base_url(url) {
                    problems.push(("base_url", message));
                }
            }
            (None, Some(_)) => {}
        }
        if self.client_id.trim().is_empty() {
            problems.push(("client_id", "is empty".into()));
        }
        if self.client_secret.expose().is_empty() {
            problems.push(("client_secret", "is empty".into()));
        }
        if !(1..=50).contains(&self.batch_size) {
            problems.push((
                "batch_size",
                format!("is {}; Zuora takes 1 to 50 records per call", self.batch_size),
            ));
        }
        if !(1..=40).contains(&self.concurrency) {
            problems.push((
                "concurrency",
                format!("is {}; use 1 to 40 (Zuora's default limit is 40)", self.concurrency),
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            problems.push(("max_attempts", format!("is {}; use 1 to 20", self.max_attempts)));
        }
        if self.requests_per_minute == Some(0) {
            problems.push(("requests_per_minute", "must be at least 1".into()));
        }
        if self.timeout_secs == 0 {
            problems.push(("timeout_secs", "must be at least 1".into()));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_for_loopback() {
        assert!(check_base_url("https://rest.zuora.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:4010").is_ok());
        assert!(check_base_url("http://localhost:4010").is_ok());
        assert!(check_base_url("http://[::1]:4010").is_ok());
        let refused = check_base_url("http://rest.zuora.com").unwrap_err();
        assert!(refused.contains("non-loopback"), "{refused}");
        assert!(check_base_url("http://10.0.0.5").is_err());
        assert!(check_base_url("ftp://x").is_err());
    }

    #[test]
    fn the_secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "\"***\"");
    }
}
