//! `type: zuora_file` configuration.

use chrono::format::StrftimeItems;
use serde::{Deserialize, Serialize};

pub use crate::zuora_common::{Layout, LayoutName};

/// Zuora's limit for a usage file uploaded through the API (`POST /v1/usage`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4_000_000;
/// Zuora's limit for a usage file uploaded in the UI.
pub const MAX_FILE_BYTES_LIMIT: u64 = 20_000_000;
/// Smallest split size accepted, so that any single usage row fits in a file.
pub const MIN_FILE_BYTES: u64 = 64 * 1024;

/// Writes Zuora usage import files (CSV, optionally zipped) for upload in the Zuora UI or
/// through the usage import API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZuoraFileConfig {
    /// Folder the files are written to: a local path (relative to the project) or an
    /// object-store URL (`s3://`, `gs://`, `az://`, `file://`). `${VAR}` is read from the
    /// environment. Each sync writes into its own sub-folder named after the sync.
    pub path: String,
    /// Which of Zuora's usage file layouts to write: `standard`, Zuora Billing's usage import
    /// format (`ACCOUNT_ID, UOM, QTY, STARTDATE, ENDDATE, SUBSCRIPTION_ID, CHARGE_ID,
    /// DESCRIPTION, UNIQUE_KEY`), which tenants without Active Rating import; or
    /// `active_rating` (`AccountNumber, Tag, UnitOfMeasure, StartDateTime, Quantity,
    /// Description, UniqueKey, GroupId, CustomFields.<name>`), for tenants with Active Rating.
    /// `current` and `legacy`, the names earlier releases used, are read as `active_rating`
    /// and `standard` with a warning. Default `standard`; a destination without `layout:`
    /// whose syncs map Active Rating fields (`AccountNumber`, …) keeps writing the Active
    /// Rating layout, as it did when that was the default, and says so.
    #[serde(default)]
    pub layout: Option<LayoutName>,
    /// Largest CSV file in bytes before the rows continue in a new file. Default 4000000
    /// (Zuora's API limit); at most 20000000 (Zuora's UI limit). Applies to the CSV before
    /// zipping, so a zipped file is always smaller.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Wrap each CSV in a ZIP file of its own (Zuora takes one CSV per ZIP). Default false.
    #[serde(default)]
    pub zip: bool,
    /// chrono `strftime` format for date-time columns. Default `%m/%d/%Y` for the standard
    /// layout (the en_US locale: Zuora reads `STARTDATE` in the uploading user's locale; set
    /// `%d/%m/%Y` for en_GB, and so on) and `%Y-%m-%dT%H:%M:%S` for the Active Rating layout.
    /// Date-times are written in UTC.
    #[serde(default)]
    pub datetime_format: Option<String>,
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

impl ZuoraFileConfig {
    /// The layout in effect.
    pub fn layout(&self) -> Layout {
        self.layout.map_or(Layout::Standard, LayoutName::layout)
    }

    /// Settles the layout for the fields the syncs map (`mapped`); returns warnings: an
    /// earlier name of a layout, or a destination without `layout:` whose syncs map Active
    /// Rating fields, which keeps the layout it had when that was the default.
    pub fn settle_layout(&mut self, mapped: &[&str]) -> Vec<(&'static str, String)> {
        match self.layout {
            Some(name) => name.renamed().map(|warning| ("layout", warning)).into_iter().collect(),
            None => {
                let Some(field) = mapped.iter().find(|f| Layout::is_active_rating_field(f)) else {
                    self.layout = Some(LayoutName::Standard);
                    return Vec::new();
                };
                self.layout = Some(LayoutName::ActiveRating);
                vec![(
                    "layout",
                    format!(
                        "no `layout:` is set and a sync maps `{field}`, an Active Rating column: the files keep the \
                         Active Rating layout (the default of earlier releases). Set `layout: active_rating` to keep \
                         it. A tenant without Active Rating imports `layout: standard` (ACCOUNT_ID, UOM, QTY, \
                         STARTDATE, ENDDATE, …): switching an existing sync renames its mapped fields, so `dinmo \
                         plan` shows its synced rows as changed until they are resolved"
                    ),
                )]
            }
        }
    }

    /// The date-time format in effect.
    pub fn datetime_format(&self) -> &str {
        self.datetime_format
            .as_deref()
            .unwrap_or(self.layout().default_date_format())
    }

    /// Pure check of the values; every problem is returned, none is fatal on its own.
    /// Each entry is `(key, message)`.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.path.trim().is_empty() {
            problems.push(("path", "must name a folder".to_string()));
        }
        if !(MIN_FILE_BYTES..=MAX_FILE_BYTES_LIMIT).contains(&self.max_file_bytes) {
            problems.push((
                "max_file_bytes",
                format!(
                    "is {}; it must be between {MIN_FILE_BYTES} and {MAX_FILE_BYTES_LIMIT} (Zuora's limit)",
                    self.max_file_bytes
                ),
            ));
        }
        if let Some(format) = &self.datetime_format
            && StrftimeItems::new(format).parse().is_err()
        {
            problems.push(("datetime_format", format!("`{format}` is not a valid strftime format")));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ZuoraFileConfig {
        ZuoraFileConfig {
            path: "out".into(),
            layout: Some(LayoutName::ActiveRating),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            zip: false,
            datetime_format: None,
        }
    }

    #[test]
    fn validate_collects_every_problem() {
        let bad = ZuoraFileConfig {
            path: " ".into(),
            max_file_bytes: 30_000_000,
            datetime_format: Some("%Q-%".into()),
            ..config()
        };
        let keys: Vec<_> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["path", "max_file_bytes", "datetime_format"]);
        assert!(config().validate().is_empty());
    }

    #[test]
    fn without_a_layout_the_mapping_decides_and_says_so() {
        let mut active = ZuoraFileConfig {
            layout: None,
            ..config()
        };
        let warnings = active.settle_layout(&["AccountNumber", "Quantity"]);
        assert_eq!(active.layout(), Layout::ActiveRating);
        assert!(warnings[0].1.contains("Set `layout: active_rating`"), "{warnings:?}");
        let mut standard = ZuoraFileConfig {
            layout: None,
            ..config()
        };
        assert!(standard.settle_layout(&["ACCOUNT_ID", "QTY"]).is_empty());
        assert_eq!(standard.layout(), Layout::Standard);
        let mut renamed = ZuoraFileConfig {
            layout: Some(LayoutName::Legacy),
            ..config()
        };
        assert!(
            renamed.settle_layout(&["ACCOUNT_ID"])[0]
                .1
                .contains("`layout: standard`")
        );
        assert_eq!(renamed.layout(), Layout::Standard);
    }

    #[test]
    fn datetime_format_defaults_follow_the_layout() {
        assert_eq!(config().datetime_format(), "%Y-%m-%dT%H:%M:%S");
        let standard = ZuoraFileConfig {
            layout: None,
            ..config()
        };
        assert_eq!(standard.datetime_format(), "%m/%d/%Y");
    }
}
