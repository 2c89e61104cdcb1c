//! Model files: one model per file under the model paths.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A model: SQL over the sources, its primary key, and where its rows are synced.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// The model's name, unique in the project; sync ids are `<model>.<destination>`.
    #[schemars(with = "String")]
    pub model: Spanned<String>,
    /// What the model computes, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Labels for `--select tag:<tag>`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tags: Vec<Spanned<String>>,
    /// A DataFusion SQL query over the project's sources; one row per usage event.
    #[schemars(with = "String")]
    pub sql: Spanned<String>,
    /// Output columns that identify one usage event. Must be non-null and unique; a row is
    /// new when its key is not in the sync's snapshot. Floating-point columns are refused.
    #[schemars(with = "Vec<String>")]
    pub primary_key: Spanned<Vec<Spanned<String>>>,
    /// Where the model's rows go.
    #[serde(default)]
    #[schemars(with = "Vec<SyncConfig>")]
    pub syncs: Vec<Spanned<SyncConfig>>,
}

/// One (model, destination) pair with its own snapshot.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// A destination named in `dinmo.yml`.
    #[schemars(with = "String")]
    pub destination: Spanned<String>,
    /// How new rows are sent. Only `insert` (each new row once) exists; rows whose values
    /// change after they were sent are governed by `on_change`. Default `insert`.
    #[serde(default)]
    #[schemars(with = "Option<SyncMode>")]
    pub mode: Option<Spanned<SyncMode>>,
    /// Destination field name → model column name.
    #[schemars(with = "BTreeMap<String, String>")]
    pub mapping: Spanned<BTreeMap<String, Spanned<String>>>,
    /// Stop the run, sending nothing, when more new rows than this are found: a guard
    /// against a model bug billing the whole history again. Default: no limit.
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_new_rows: Option<Spanned<u64>>,
    /// What to do with a row synced earlier whose values (the mapped fields) differ now: late
    /// events raised a day's count, a restatement lowered it. `hold` (the default): send
    /// nothing for it, keep it in the state as held with its values before and after, list it
    /// in every report, and exit 3 until `dinmo state resolve-held` settles it or the values go
    /// back. `correct`: make the destination match (see "When usage changes after it was
    /// sent" in docs/operations.md for what each destination allows). `ignore`: never
    /// correct; the changed rows are still counted in every report.
    #[serde(default)]
    #[schemars(with = "Option<OnChange>")]
    pub on_change: Option<Spanned<OnChange>>,
    /// What to do with a row synced earlier whose key the model no longer produces. `report`
    /// (the default): list it in every report and send nothing. `rollback_pending` (`zuora`
    /// only): delete its usage record while Zuora still has it Pending; a Processed one is
    /// held with the reason `cannot_delete_billed_usage`.
    #[serde(default)]
    #[schemars(with = "Option<OnDelete>")]
    pub on_delete: Option<Spanned<OnDelete>>,
    /// On a `zuora_revenue` sync: let this model go to Zuora Revenue although it also goes to
    /// Zuora Billing (`zuora` or `zuora_file`). With Billing–Revenue Integration, Billing
    /// carries its usage to Revenue daily, so sending it to both accrues it twice; set this
    /// only for a tenant without that integration. Default false.
    #[serde(default)]
    pub allow_billing_and_revenue: bool,
}

/// What a sync does with rows whose values changed after they were sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnChange {
    /// Send nothing; keep the rows held, with before and after, until resolved.
    #[default]
    Hold,
    /// Make the destination match the new values.
    Correct,
    /// Send nothing and keep nothing; count them.
    Ignore,
}

impl OnChange {
    /// The name in `dinmo.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnChange::Hold => "hold",
            OnChange::Correct => "correct",
            OnChange::Ignore => "ignore",
        }
    }
}

/// What a sync does with rows the model no longer produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// List them; send nothing.
    #[default]
    Report,
    /// Delete their records while the destination has them pending.
    RollbackPending,
}

impl OnDelete {
    /// The name in `dinmo.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Report => "report",
            OnDelete::RollbackPending => "rollback_pending",
        }
    }
}

/// How a sync sends rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Send each new row once.
    #[default]
    Insert,
}
