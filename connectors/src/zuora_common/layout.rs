//! The columns of both documented usage file layouts and the rules of each field.

use std::borrow::Cow;

use crate::rules::NumberLimits;
use crate::rules::{FieldKind, FieldSpec};

use serde::{Deserialize, Serialize};

/// The CSV layout of a usage import file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// The current layout (Active Rating / usage with `UniqueKey`).
    #[default]
    Current,
    /// The older layout with `ACCOUNT_ID`, `UOM`, `QTY`, `STARTDATE`.
    Legacy,
}

/// Prefix of custom-field columns in the current layout (`CustomFields.<name>`).
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

const CURRENT: &[LayoutColumn] = &[
    column("AccountNumber", Text, true, Some(50), Empty),
    column("Tag", Text, true, Some(255), AccountTag),
    column("UnitOfMeasure", Text, true, None, Empty),
    column("StartDateTime", DateTime, true, None, Empty),
    column("Quantity", Number, true, None, Empty),
    column("Description", Text, false, Some(200), Empty),
    column("UniqueKey", Text, false, Some(50), RowKey),
    column("GroupId", Text, false, None, Empty),
];

const LEGACY: &[LayoutColumn] = &[
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
    /// The layout's columns.
    pub fn column_set(self) -> ColumnSet {
        let custom = match self {
            Layout::Current => CustomFields::Prefix(CUSTOM_FIELD_PREFIX),
            Layout::Legacy => CustomFields::None,
        };
        ColumnSet {
            columns: self.columns(),
            custom,
        }
    }

    /// The standard columns, in the order they are written.
    pub fn columns(self) -> &'static [LayoutColumn] {
        match self {
            Layout::Current => CURRENT,
            Layout::Legacy => LEGACY,
        }
    }

    /// The column holding the account number, which a defaulted `Tag` refers to.
    pub fn account_column(self) -> &'static str {
        match self {
            Layout::Current => "AccountNumber",
            Layout::Legacy => "ACCOUNT_ID",
        }
    }

    /// Looks a mapped field up, including `CustomFields.<name>` in the current layout.
    pub fn column(self, name: &str) -> Option<LayoutColumn> {
        self.column_set().column(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_zuoras_documented_columns() {
        let current: Vec<_> = Layout::Current.columns().iter().map(|c| c.spec.name.as_ref()).collect();
        assert_eq!(
            current,
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
        let legacy: Vec<_> = Layout::Legacy.columns().iter().map(|c| c.spec.name.as_ref()).collect();
        assert_eq!(
            legacy,
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
    fn custom_fields_exist_only_in_the_current_layout() {
        assert!(Layout::Current.column("CustomFields.Region__c").is_some());
        assert!(Layout::Current.column("CustomFields.").is_none());
        assert!(Layout::Legacy.column("CustomFields.Region__c").is_none());
        assert!(Layout::Current.column("UOM").is_none());
    }
}
