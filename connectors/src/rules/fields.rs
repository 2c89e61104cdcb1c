//! The field vocabulary every destination describes itself in: what kind of value a field
//! takes, and which fields carry the account, unit, quantity and usage time.

use std::borrow::Cow;

use arrow::datatypes::DataType;

/// What kind of value a destination field holds; decides which Arrow types may feed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Free text: strings, dictionary-encoded strings, integers.
    Text,
    /// A number: integers, floats, decimals, or strings that parse as a decimal number.
    Number,
    /// A date-time: timestamps (any unit, with or without time zone), dates, or strings in
    /// ISO 8601 / RFC 3339 form.
    DateTime,
}

impl FieldKind {
    /// Whether a column of `data_type` can become a value of this kind.
    pub fn accepts(self, data_type: &DataType) -> bool {
        use DataType::*;
        let data_type = match data_type {
            Dictionary(_, value) => value.as_ref(),
            other => other,
        };
        let is_text = matches!(data_type, Utf8 | LargeUtf8 | Utf8View);
        let is_int = data_type.is_integer();
        match self {
            FieldKind::Text => is_text || is_int,
            FieldKind::Number => {
                is_text
                    || is_int
                    || data_type.is_floating()
                    || matches!(
                        data_type,
                        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..)
                    )
            }
            FieldKind::DateTime => is_text || matches!(data_type, Timestamp(..) | Date32 | Date64),
        }
    }

    /// A short human name, for error messages and docs.
    pub fn describe(self) -> &'static str {
        match self {
            FieldKind::Text => "text (string or integer)",
            FieldKind::Number => "a number (integer, float, decimal or numeric string)",
            FieldKind::DateTime => "a date-time (timestamp, date or ISO 8601 string)",
        }
    }
}

/// One field a destination accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name as the destination spells it (the key in a sync's `mapping`).
    pub name: Cow<'static, str>,
    /// What values it takes.
    pub kind: FieldKind,
    /// Whether every row must carry a value.
    pub required: bool,
    /// The longest value allowed, in characters.
    pub max_chars: Option<usize>,
}

/// Which of a destination's fields carry the account, the unit, the quantity and the usage
/// time: what a plan summarises for reviewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRoles {
    /// The account field.
    pub account: &'static str,
    /// The unit-of-measure field.
    pub unit: &'static str,
    /// The quantity field.
    pub quantity: &'static str,
    /// The usage start date-time field.
    pub start: &'static str,
}
