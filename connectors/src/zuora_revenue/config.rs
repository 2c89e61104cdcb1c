//! `type: zuora_revenue` configuration.

use serde::{Deserialize, Serialize};

use super::template::DateFormat;
use crate::http::{Secret, check_base_url};

/// Revenue recommends 40k–60k lines per synchronous upload (docs/zuora.md, "Zuora Revenue").
pub const DEFAULT_MAX_LINES: usize = 50_000;
/// The most lines dinmo puts in one file uploaded synchronously or by hand: the top of
/// Revenue's recommended range.
pub const MAX_LINES_LIMIT: usize = 60_000;
/// Lines per asynchronous upload by default: a fifth of what Revenue takes, so a failure or
/// a replay concerns a bounded part of a run.
pub const DEFAULT_ASYNC_MAX_LINES: usize = 100_000;
/// Revenue takes up to 500,000 records per CSV in an asynchronous Consumption upload.
pub const ASYNC_MAX_LINES_LIMIT: usize = 500_000;
/// The template usage goes through in File Upload > Consumption.
pub const DEFAULT_TEMPLATE: &str = "RevPro Usage Upload";
/// OneID's token endpoint (docs/zuora.md: `POST https://one.zuora.com/oauth2/token`).
pub const DEFAULT_OAUTH_URL: &str = "https://one.zuora.com/oauth2/token";

/// How rows reach Revenue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevenueMode {
    /// CSV files in a folder or object store, uploaded by a person in File Upload >
    /// Consumption. Needs no credentials.
    #[default]
    File,
    /// The Revenue upload API: `POST /api/integration/v1/upload/file`, polled until staged.
    Api,
}

/// How `mode: api` uploads a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevenueUpload {
    /// `POST …/upload/file?async=true` (Consumption, Event and Transactions/Cost templates):
    /// `202`, then the status polled; partial: valid rows are staged and invalid ones
    /// rejected, each with Revenue's `error_message`, read back from the errors endpoint.
    #[default]
    Async,
    /// `POST …/upload/file`: up to 60,000 rows, staged or failed whole.
    Sync,
}

/// How `mode: api` authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevenueAuth {
    /// `POST /api/integration/v1/authenticate` with Basic credentials and the `role` and
    /// `clientname` headers; the token is sent back in the `token` header.
    #[default]
    Basic,
    /// OneID OAuth client credentials; the token is sent as a bearer token.
    Oauth,
}

/// Sends usage to Zuora Revenue (RevPro) through the "RevPro Usage Upload" template, as files
/// for the UI or through the Revenue upload API. Revenue has no duplicate detection and no
/// undo: dinmo records every upload before it is sent and never sends one twice.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZuoraRevenueConfig {
    /// `file` (default: CSV files for File Upload > Consumption) or `api` (the Revenue upload
    /// API).
    #[serde(default)]
    pub mode: RevenueMode,
    /// `mode: file`: the folder the files go to, a local path (relative to the project) or an
    /// object-store URL (`s3://`, `gs://`, `az://`, `file://`). Each sync writes into its own
    /// sub-folder named after the sync.
    #[serde(default)]
    pub path: Option<String>,
    /// The upload template's name, sent as `templatename`. Default `RevPro Usage Upload`.
    #[serde(default = "default_template")]
    pub template: String,
    /// The template's date format, in Revenue's notation (`DD-MON-YYYY`, `MM/DD/YYYY`,
    /// `YYYY-MM-DD`, …: `DD`, `MM`, `MON`, `YYYY`, `YY` and the separators `-`, `/`, `.`,
    /// space). `TRX_DATE` and every other date column are written this way. Default
    /// `DD-MON-YYYY`, Revenue's documented default; `validate --connect` compares it with the
    /// tenant's template.
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// Rows per file (and per upload). `mode: api` with `upload: async`: 1 to 500000, default
    /// 100000 (Revenue takes up to 500,000 records per asynchronous Consumption upload);
    /// otherwise 1 to 60000, default 50000 (Revenue recommends 40k–60k per upload).
    #[serde(default)]
    pub max_lines: Option<usize>,
    /// `mode: api`: `async` (default; partial uploads, for the Consumption template) or `sync`
    /// (all or nothing, for tenants and templates without asynchronous uploads).
    #[serde(default)]
    pub upload: RevenueUpload,
    /// Refuse rows whose `Quantity` is below zero. Default true; set false when the tenant's
    /// template takes negative quantities (usage corrections).
    #[serde(default = "default_true")]
    pub quantity_non_negative: bool,
    /// When set, refuse rows whose `Usage Amount` differs from `Quantity` × `Unit Price` by
    /// more than this (in the amount's currency). Default: not checked.
    #[serde(default)]
    pub amount_tolerance: Option<f64>,
    /// `mode: api`: the Revenue host, e.g. `https://acme.revpro.cloud`. `http://` only for
    /// loopback (a simulator).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `mode: api`: `oauth` (OneID client credentials, the documented default for new
    /// tenants) or `basic` (the legacy authenticate call of older tenants). Default: `basic`
    /// when `username` is given, else `oauth`.
    #[serde(default)]
    pub auth: Option<RevenueAuth>,
    /// `auth: basic`: the Revenue user, usually `${REVPRO_USER}`.
    #[serde(default)]
    pub username: Option<String>,
    /// `auth: basic`: the user's password, usually `${REVPRO_PASSWORD}`; never logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// `auth: basic`: the Revenue role, sent as the `role` header.
    #[serde(default)]
    pub role: Option<String>,
    /// `auth: basic`: the Revenue client name, sent as the `clientname` header.
    #[serde(default)]
    pub clientname: Option<String>,
    /// `auth: oauth`: the OneID client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `auth: oauth`: the OneID client secret; never logged.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// `auth: oauth`: the token endpoint. Default `https://one.zuora.com/oauth2/token`.
    #[serde(default)]
    pub oauth_url: Option<String>,
    /// Seconds one request may take. Default 120 (an upload carries up to 60k lines).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts per request that may be repeated (authentication, status, mapping), 1 to 20.
    /// An upload is never repeated once it may have reached Revenue. Default 6.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// Seconds to wait for an upload to be staged or failed. Default 1800.
    #[serde(default = "default_status_timeout")]
    pub status_timeout_secs: u64,
}

fn default_template() -> String {
    DEFAULT_TEMPLATE.into()
}
fn default_date_format() -> String {
    "DD-MON-YYYY".into()
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> u64 {
    120
}
fn default_attempts() -> usize {
    6
}
fn default_status_timeout() -> u64 {
    1800
}

impl ZuoraRevenueConfig {
    /// A file-mode config writing to `path`, every other value at its default.
    pub fn files(path: impl Into<String>) -> Self {
        ZuoraRevenueConfig {
            mode: RevenueMode::File,
            path: Some(path.into()),
            template: default_template(),
            date_format: default_date_format(),
            max_lines: None,
            upload: RevenueUpload::Async,
            quantity_non_negative: true,
            amount_tolerance: None,
            base_url: None,
            auth: Some(RevenueAuth::Basic),
            username: None,
            password: None,
            role: None,
            clientname: None,
            client_id: None,
            client_secret: None,
            oauth_url: None,
            timeout_secs: default_timeout(),
            max_attempts: default_attempts(),
            status_timeout_secs: default_status_timeout(),
        }
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> Option<String> {
        self.base_url.as_ref().map(|u| u.trim_end_matches('/').to_string())
    }

    /// The OAuth token endpoint in effect.
    pub fn oauth_url(&self) -> &str {
        self.oauth_url.as_deref().unwrap_or(DEFAULT_OAUTH_URL)
    }

    /// How `mode: api` authenticates, `auth` or its default.
    pub fn auth(&self) -> RevenueAuth {
        self.auth.unwrap_or(match self.username {
            Some(_) => RevenueAuth::Basic,
            None => RevenueAuth::Oauth,
        })
    }

    /// Whether uploads go through the asynchronous, partial upload.
    pub fn asynchronous(&self) -> bool {
        self.mode == RevenueMode::Api && self.upload == RevenueUpload::Async
    }

    /// Rows per file in effect.
    pub fn max_lines(&self) -> usize {
        self.max_lines.unwrap_or(match self.asynchronous() {
            true => DEFAULT_ASYNC_MAX_LINES,
            false => DEFAULT_MAX_LINES,
        })
    }

    fn max_lines_limit(&self) -> usize {
        match self.asynchronous() {
            true => ASYNC_MAX_LINES_LIMIT,
            false => MAX_LINES_LIMIT,
        }
    }

    /// Pure check; every problem as `(key, message)`. Messages never hold a secret.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Err(message) = DateFormat::parse(&self.date_format) {
            problems.push(("date_format", message));
        }
        if self.template.trim().is_empty() {
            problems.push(("template", "must name the upload template".into()));
        }
        if let Some(lines) = self.max_lines
            && !(1..=self.max_lines_limit()).contains(&lines)
        {
            let why = match self.asynchronous() {
                true => "Revenue takes up to 500000 records per asynchronous upload",
                false => "Revenue recommends 40000 to 60000 lines per upload",
            };
            problems.push((
                "max_lines",
                format!("is {lines}; use 1 to {} ({why})", self.max_lines_limit()),
            ));
        }
        if let Some(tolerance) = self.amount_tolerance
            && !(tolerance.is_finite() && tolerance >= 0.0)
        {
            problems.push(("amount_tolerance", format!("is {tolerance}; use a number ≥ 0")));
        }
        match self.mode {
            RevenueMode::File => {
                if self.path.as_deref().is_none_or(|p| p.trim().is_empty()) {
                    problems.push(("path", "must name a folder (mode: file)".into()));
                }
            }
            RevenueMode::Api => self.validate_api(&mut problems),
        }
        problems
    }

    fn validate_api(&self, problems: &mut Vec<(&'static str, String)>) {
        if self.path.is_some() {
            problems.push(("path", "is for mode: file; mode: api uploads to base_url".into()));
        }
        match &self.base_url {
            None => problems.push(("base_url", "is required with mode: api".into())),
            Some(url) => {
                if let Err(message) = check_base_url(url) {
                    problems.push(("base_url", message));
                }
            }
        }
        let missing = |value: Option<&str>| value.is_none_or(|v| v.trim().is_empty());
        match self.auth() {
            RevenueAuth::Basic => {
                for (key, value) in [
                    ("username", self.username.as_deref()),
                    ("password", self.password.as_ref().map(Secret::expose)),
                    ("role", self.role.as_deref()),
                    ("clientname", self.clientname.as_deref()),
                ] {
                    if missing(value) {
                        problems.push((key, "is required with auth: basic".into()));
                    }
                }
            }
            RevenueAuth::Oauth => {
                for (key, value) in [
                    ("client_id", self.client_id.as_deref()),
                    ("client_secret", self.client_secret.as_ref().map(Secret::expose)),
                ] {
                    if missing(value) {
                        problems.push((key, "is required with auth: oauth".into()));
                    }
                }
                if let Err(message) = check_base_url(self.oauth_url()) {
                    problems.push(("oauth_url", message));
                }
            }
        }
        if !(1..=20).contains(&self.max_attempts) {
            problems.push(("max_attempts", format!("is {}; use 1 to 20", self.max_attempts)));
        }
        if self.timeout_secs == 0 {
            problems.push(("timeout_secs", "must be at least 1".into()));
        }
        if self.status_timeout_secs == 0 {
            problems.push(("status_timeout_secs", "must be at least 1".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mode_needs_only_a_path() {
        assert!(ZuoraRevenueConfig::files("out/revenue").validate().is_empty());
        let bad = ZuoraRevenueConfig {
            path: None,
            max_lines: Some(0),
            date_format: "DD-QQ-YYYY".into(),
            amount_tolerance: Some(-1.0),
            ..ZuoraRevenueConfig::files("x")
        };
        let keys: Vec<_> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["date_format", "max_lines", "amount_tolerance", "path"]);
    }

    #[test]
    fn api_mode_collects_every_missing_credential_without_printing_secrets() {
        let api = ZuoraRevenueConfig {
            mode: RevenueMode::Api,
            path: None,
            base_url: Some("http://example.com".into()),
            password: Some(Secret::new("hunter2")),
            ..ZuoraRevenueConfig::files("x")
        };
        let problems = api.validate();
        let keys: Vec<_> = problems.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["base_url", "username", "role", "clientname"]);
        assert!(!format!("{problems:?}{api:?}").contains("hunter2"));
        let oauth = ZuoraRevenueConfig {
            auth: Some(RevenueAuth::Oauth),
            base_url: Some("https://acme.revpro.cloud".into()),
            ..api
        };
        let keys: Vec<_> = oauth.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["client_id", "client_secret"]);
    }
}
