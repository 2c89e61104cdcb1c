//! The columns of both documented usage file layouts and the rules of each field.

use std::borrow::Cow;

use crate::rules::NumberLimits;
use crate::rules::{FieldKind, FieldSpec};

use serde::{Deserialize, Serialize};

/// The CSV layout of a usage import file (docs/zuora.md, "Usage import files").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Zuora Billing's usage import format (`ACCOUNT_ID, UOM, QTY, STARTDATE, ENDDATE, …`):
    /// what tenants without Active Rating import, in the UI and through `POST /v1/usage`.
    #[default]
    Standard,
    /// The Active Rating format (`AccountNumber, Tag, UnitOfMeasure, StartDateTime, …`), for
    /// tenants with Active Rating only (no longer offered to new customers).
    ActiveRating,
}

/// A layout as `dinmo.yml` may name it: by its name, or by the name an earlier release gave
/// it (`current`, `legacy`), which is read with a warning naming the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LayoutName {
    /// Zuora Billing's usage import format.
    Standard,
    /// The Active Rating format.
    ActiveRating,
    /// The earlier name of `active_rating`.
    Current,
    /// The earlier name of `standard`.
    Legacy,
}

impl LayoutName {
    /// The layout it names.
    pub fn layout(self) -> Layout {
        match self {
            LayoutName::Standard | LayoutName::Legacy => Layout::Standard,
            LayoutName::ActiveRating | LayoutName::Current => Layout::ActiveRating,
        }
    }

    /// For an earlier name, the warning that names the new one.
    pub fn renamed(self) -> Option<String> {
        let (old, new) = match self {
            LayoutName::Current => ("current", "active_rating"),
            LayoutName::Legacy => ("legacy", "standard"),
            LayoutName::Standard | LayoutName::ActiveRating => return None,
        };
        Some(format!(
            "`layout: {old}` is now called `layout: {new}`; it is read as `{new}`: write `{new}`"
        ))
    }
}

impl From<Layout> for LayoutName {
    fn from(layout: Layout) -> Self {
        match layout {
            Layout::Standard => LayoutName::Standard,
            Layout::ActiveRating => LayoutName::ActiveRating,
        }
    }
}

/// Prefix of custom-field columns in the Active Rating layout (`CustomFields.<name>`).
pub const CUSTOM_FIELD_PREFIX: &str = "CustomFields.";

/// Quantity must not be negative, and Zuora keeps "up to 13 digits to the left of the decimal
/// place, and up to 9 digits to the right" (Knowledge Center, "Rounding and Precision").
pub const QUANTITY_LIMITS: NumberLimits = NumberLimits {
    non_negative: true,
    max_integer_digits: Some(13),
    max_fraction_digits: Some(9),
};

/// What fills a column the mapping leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnDefault {
    /// Left empty.
    Empty,
    /// The row's deterministic key (for `UniqueKey`).
    RowKey,
    /// `AccountNumber:<account>` (for `Tag`), which Zuora documents as a valid tag.
    AccountTag,
}

/// One column of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutColumn {
    /// Header and field rules.
    pub spec: FieldSpec,
    /// Number limits, for number columns.
    pub limits: Option<NumberLimits>,
    /// What is written when the mapping leaves the column out.
    pub default: ColumnDefault,
}

pub(crate) const fn column(
    name: &'static str,
    kind: FieldKind,
    required: bool,
    max_chars: Option<usize>,
    default: ColumnDefault,
) -> LayoutColumn {
    let limits = match kind {
        FieldKind::Number => Some(QUANTITY_LIMITS),
        _ => None,
    };
    LayoutColumn {
        spec: FieldSpec {
            name: Cow::Borrowed(name),
            kind,
            required,
            max_chars,
        },
        limits,
        default,
    }
}

use ColumnDefault::{AccountTag, Empty, RowKey};
use FieldKind::{DateTime, Number, Text};

/// "Usage Data Import" (Active Rating): the columns and their limits.
const ACTIVE_RATING: &[LayoutColumn] = &[
    column("AccountNumber", Text, true, Some(50), Empty),
    column("Tag", Text, true, Some(255), AccountTag),
    column("UnitOfMeasure", Text, true, None, Empty),
    column("StartDateTime", DateTime, true, None, Empty),
    column("Quantity", Number, true, None, Empty),
    column("Description", Text, false, Some(200), Empty),
    column("UniqueKey", Text, false, Some(50), RowKey),
    column("GroupId", Text, false, None, Empty),
];

/// "Usage file format": `ACCOUNT_ID`, `UOM`, `QTY`, `STARTDATE` required; `ENDDATE`'s header
/// always written (required even when empty); then the optional columns dinmo writes.
const STANDARD: &[LayoutColumn] = &[
    column("ACCOUNT_ID", Text, true, Some(50), Empty),
    column("UOM", Text, true, None, Empty),
    column("QTY", Number, true, None, Empty),
    column("STARTDATE", DateTime, true, None, Empty),
    column("ENDDATE", DateTime, false, None, Empty),
    column("SUBSCRIPTION_ID", Text, false, Some(100), Empty),
    column("CHARGE_ID", Text, false, Some(50), Empty),
    column("DESCRIPTION", Text, false, Some(200), Empty),
    column("UNIQUE_KEY", Text, false, Some(50), RowKey),
];

/// How a destination names open-ended custom fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomFields {
    /// None allowed.
    None,
    /// `<prefix><name>`, e.g. `CustomFields.Region__c` in usage files.
    Prefix(&'static str),
    /// `<name><suffix>`, e.g. `Region__c` in the REST API.
    Suffix(&'static str),
}

/// The fields of one destination format: standard columns in output order, plus custom ones.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSet {
    /// Standard columns, in the order they are written.
    pub columns: &'static [LayoutColumn],
    /// Custom fields.
    pub custom: CustomFields,
}

impl ColumnSet {
    /// Looks a mapped field up, custom fields included.
    pub fn column(&self, name: &str) -> Option<LayoutColumn> {
        if let Some(found) = self.columns.iter().find(|c| c.spec.name == name) {
            return Some(found.clone());
        }
        let custom = match self.custom {
            CustomFields::None => false,
            CustomFields::Prefix(prefix) => name.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty()),
            CustomFields::Suffix(suffix) => name.strip_suffix(suffix).is_some_and(|rest| !rest.is_empty()),
        };
        custom.then(|| LayoutColumn {
            spec: FieldSpec {
                name: Cow::Owned(name.to_string()),
                kind: Text,
                required: false,
                max_chars: None,
            },
            limits: None,
            default: Empty,
        })
    }
}

impl Layout {
    /// The date format a layout's files use unless configured: the standard layout's dates are
    /// read in the uploading user's locale (`%m/%d/%Y` for en_US, Zuora's default), the Active
    /// Rating layout's `StartDateTime` is an ISO date-time.
    pub fn default_date_format(self) -> &'static str {
        match self {
            Layout::Standard => "%m/%d/%Y",
            Layout::ActiveRating => "%Y-%m-%dT%H:%M:%S",
        }
    }

    /// The layout's columns.
    pub fn column_set(self) -> ColumnSet {
        let custom = match self {
            Layout::ActiveRating => CustomFields::Prefix(CUSTOM_FIELD_PREFIX),
            Layout::Standard => CustomFields::None,
        };
        ColumnSet {
            columns: self.columns(),
            custom,
        }
    }

    /// The standard columns, in the order they are written.
    pub fn columns(self) -> &'static [LayoutColumn] {
        match self {
            Layout::ActiveRating => ACTIVE_RATING,
            Layout::Standard => STANDARD,
        }
    }

    /// The column holding the account number, which a defaulted `Tag` refers to.
    pub fn account_column(self) -> &'static str {
        match self {
            Layout::ActiveRating => "AccountNumber",
            Layout::Standard => "ACCOUNT_ID",
        }
    }

    /// Its name in `dinmo.yml`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Standard => "standard",
            Layout::ActiveRating => "active_rating",
        }
    }

    /// Whether `field` is a column only the Active Rating layout has (`AccountNumber`,
    /// `CustomFields.<name>`, …): a mapping naming one was written for it.
    pub fn is_active_rating_field(field: &str) -> bool {
        Layout::Standard.column(field).is_none() && Layout::ActiveRating.column(field).is_some()
    }

    /// Looks a mapped field up, including `CustomFields.<name>` in the Active Rating layout.
    pub fn column(self, name: &str) -> Option<LayoutColumn> {
        self.column_set().column(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_zuoras_documented_columns() {
        let active_rating: Vec<_> = Layout::ActiveRating
            .columns()
            .iter()
            .map(|c| c.spec.name.as_ref())
            .collect();
        assert_eq!(
            active_rating,
            [
                "AccountNumber",
                "Tag",
                "UnitOfMeasure",
                "StartDateTime",
                "Quantity",
                "Description",
                "UniqueKey",
                "GroupId"
            ]
        );
        let standard: Vec<_> = Layout::Standard
            .columns()
            .iter()
            .map(|c| c.spec.name.as_ref())
            .collect();
        assert_eq!(
            standard,
            [
                "ACCOUNT_ID",
                "UOM",
                "QTY",
                "STARTDATE",
                "ENDDATE",
                "SUBSCRIPTION_ID",
                "CHARGE_ID",
                "DESCRIPTION",
                "UNIQUE_KEY"
            ]
        );
    }

    #[test]
    fn custom_fields_exist_only_in_the_active_rating_layout() {
        assert!(Layout::ActiveRating.column("CustomFields.Region__c").is_some());
        assert!(Layout::ActiveRating.column("CustomFields.").is_none());
        assert!(Layout::Standard.column("CustomFields.Region__c").is_none());
        assert!(Layout::ActiveRating.column("UOM").is_none());
        assert!(Layout::is_active_rating_field("AccountNumber"));
        assert!(!Layout::is_active_rating_field("ACCOUNT_ID"));
    }

    #[test]
    fn earlier_names_read_as_the_new_ones_with_a_warning() {
        let read = |name: &str| serde_json::from_value::<LayoutName>(serde_json::json!(name)).unwrap();
        assert_eq!(read("current").layout(), Layout::ActiveRating);
        assert_eq!(read("legacy").layout(), Layout::Standard);
        assert!(read("current").renamed().unwrap().contains("`layout: active_rating`"));
        assert_eq!(read("standard").renamed(), None);
    }
}
