//! The classes a reconciled row lands in, and the dates reconciled.

use serde::Serialize;

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Delivered, held by the destination as delivered, and the model still says so.
    Equal,
    /// Delivered, and the destination does not hold it (deleted, or a file never uploaded).
    Missing,
    /// Delivered and held, but with another account, unit, date or quantity (edited by hand).
    Different,
    /// Held by the destination for the same accounts, units and period, never sent by this
    /// sync (another pipeline, a manual upload). Reported, never touched.
    Extra,
    /// Delivered and held as delivered, but the model's values changed since.
    Changed,
    /// Delivered and held, but the model no longer produces the row.
    Gone,
    /// In the model, never delivered (the next run sends it).
    New,
    /// Delivered, and the destination cannot be read back to tell (Zuora Revenue).
    Unverified,
}

impl Class {
    /// Every class, in the order reports list them.
    pub const ALL: [Class; 8] = [
        Class::Equal,
        Class::Missing,
        Class::Different,
        Class::Extra,
        Class::Changed,
        Class::Gone,
        Class::New,
        Class::Unverified,
    ];

    /// The name in reports and in the `class` column of `--out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Equal => "equal",
            Class::Missing => "missing",
            Class::Different => "different",
            Class::Extra => "extra",
            Class::Changed => "changed",
            Class::Gone => "gone",
            Class::New => "new",
            Class::Unverified => "unverified",
        }
    }

    /// The class named `name`.
    pub fn parse(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether a row of this class is a difference between the warehouse and the destination
    /// (what makes `reconcile` exit 4).
    pub fn is_difference(self) -> bool {
        !matches!(self, Class::Equal | Class::Unverified)
    }
}

/// The usage dates reconciled: both ends inclusive, `YYYY-MM-DD`; `None` is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    /// The first day.
    pub from: Option<chrono::NaiveDate>,
    /// The last day.
    pub to: Option<chrono::NaiveDate>,
}
