//! Field rules checked before anything is sent, so a bad row is refused locally with a reason
//! instead of failing a whole batch or, worse, being accepted and never billed.

use std::fmt;

use super::cells::Cell;
use super::fields::FieldSpec;

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectCode {
    /// A required field has no value.
    MissingField,
    /// A value cannot become its field's kind (not a number, not a date-time, …).
    InvalidValue,
    /// A quantity below zero.
    NegativeQuantity,
    /// More decimal places than the destination stores.
    TooPrecise,
    /// More digits before the decimal point than the destination stores.
    TooLarge,
    /// A value longer than the field allows.
    TooLong,
    /// Values that contradict each other (an amount that is not quantity × price).
    Inconsistent,
    /// The destination refused the row with its own code.
    Destination(String),
}

impl RejectCode {
    /// Stable text form, as stored in `rejected/<run>.parquet`.
    pub fn as_str(&self) -> &str {
        match self {
            RejectCode::MissingField => "missing_field",
            RejectCode::InvalidValue => "invalid_value",
            RejectCode::NegativeQuantity => "negative_quantity",
            RejectCode::TooPrecise => "too_precise",
            RejectCode::TooLarge => "too_large",
            RejectCode::TooLong => "too_long",
            RejectCode::Inconsistent => "inconsistent",
            RejectCode::Destination(code) => code,
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused row's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// The destination field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl Rejection {
    fn field(code: RejectCode, field: &str, message: String) -> Self {
        Rejection {
            code,
            field: Some(field.to_string()),
            message,
        }
    }
}

/// Extra limits on a number field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberLimits {
    /// Refuse values below zero.
    pub non_negative: bool,
    /// The most digits before the decimal point the destination stores.
    pub max_integer_digits: Option<usize>,
    /// The most digits after the decimal point the destination stores.
    pub max_fraction_digits: Option<usize>,
}

/// Checks one converted cell against its field's rules.
pub fn check_cell(spec: &FieldSpec, limits: Option<NumberLimits>, cell: Cell<'_>) -> Option<Rejection> {
    match cell {
        Cell::Null if spec.required => Some(Rejection::field(
            RejectCode::MissingField,
            &spec.name,
            format!("{} is required but has no value", spec.name),
        )),
        Cell::Null => None,
        Cell::Invalid(reason) => Some(Rejection::field(
            RejectCode::InvalidValue,
            &spec.name,
            format!("{}: {reason}", spec.name),
        )),
        Cell::Text(text) => {
            if text.trim().is_empty() && spec.required {
                return Some(Rejection::field(
                    RejectCode::MissingField,
                    &spec.name,
                    format!("{} is required but is empty", spec.name),
                ));
            }
            let chars = text.chars().count();
            match spec.max_chars {
                Some(max) if chars > max => Some(Rejection::field(
                    RejectCode::TooLong,
                    &spec.name,
                    format!("{} has {chars} characters; at most {max} are allowed", spec.name),
                )),
                _ => None,
            }
        }
        Cell::Number(text) => {
            let limits = limits.unwrap_or(NumberLimits {
                non_negative: false,
                max_integer_digits: None,
                max_fraction_digits: None,
            });
            let negative = text.starts_with('-') && text.bytes().any(|b| (b'1'..=b'9').contains(&b));
            if limits.non_negative && negative {
                return Some(Rejection::field(
                    RejectCode::NegativeQuantity,
                    &spec.name,
                    format!("{} is {text}; it must be zero or more", spec.name),
                ));
            }
            let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
            let whole = whole.trim_start_matches(['-', '+']).trim_start_matches('0');
            if let Some(max) = limits.max_integer_digits
                && whole.len() > max
            {
                return Some(Rejection::field(
                    RejectCode::TooLarge,
                    &spec.name,
                    format!(
                        "{} is {text}: {} digits before the decimal point; the destination stores at most {max}",
                        spec.name,
                        whole.len()
                    ),
                ));
            }
            let fraction = fraction.trim_end_matches('0');
            match limits.max_fraction_digits {
                Some(max) if fraction.len() > max => Some(Rejection::field(
                    RejectCode::TooPrecise,
                    &spec.name,
                    format!("{} is {text}; at most {max} decimal places are stored", spec.name),
                )),
                _ => None,
            }
        }
        Cell::DateTime(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::FieldKind;

    fn spec(name: &'static str, kind: FieldKind, required: bool, max_chars: Option<usize>) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            kind,
            required,
            max_chars,
        }
    }

    const QUANTITY: NumberLimits = NumberLimits {
        non_negative: true,
        max_integer_digits: Some(13),
        max_fraction_digits: Some(9),
    };

    #[test]
    fn required_fields_must_have_values() {
        let account = spec("AccountNumber", FieldKind::Text, true, Some(50));
        assert_eq!(
            check_cell(&account, None, Cell::Null).unwrap().code,
            RejectCode::MissingField
        );
        assert_eq!(
            check_cell(&account, None, Cell::Text("  ")).unwrap().code,
            RejectCode::MissingField
        );
        assert!(check_cell(&account, None, Cell::Text("A001")).is_none());
        let optional = spec("Description", FieldKind::Text, false, Some(200));
        assert!(check_cell(&optional, None, Cell::Null).is_none());
    }

    #[test]
    fn quantity_has_at_most_thirteen_digits_before_the_point() {
        let quantity = spec("Quantity", FieldKind::Number, true, None);
        let huge = check_cell(
            &quantity,
            Some(QUANTITY),
            Cell::Number("1000000000000000000000000000000"),
        )
        .unwrap();
        assert_eq!(huge.code, RejectCode::TooLarge);
        assert!(
            huge.message.contains("31 digits before the decimal point"),
            "{}",
            huge.message
        );
        assert!(check_cell(&quantity, Some(QUANTITY), Cell::Number("9999999999999.999999999")).is_none());
        assert!(check_cell(&quantity, Some(QUANTITY), Cell::Number("0000000000000012.5")).is_none());
        assert_eq!(
            check_cell(&quantity, Some(QUANTITY), Cell::Number("10000000000000"))
                .unwrap()
                .code,
            RejectCode::TooLarge
        );
    }

    #[test]
    fn quantity_must_be_non_negative_with_at_most_nine_decimals() {
        let quantity = spec("Quantity", FieldKind::Number, true, None);
        let negative = check_cell(&quantity, Some(QUANTITY), Cell::Number("-0.5")).unwrap();
        assert_eq!(negative.code, RejectCode::NegativeQuantity);
        assert_eq!(negative.message, "Quantity is -0.5; it must be zero or more");
        assert!(check_cell(&quantity, Some(QUANTITY), Cell::Number("-0.00")).is_none());
        assert!(check_cell(&quantity, Some(QUANTITY), Cell::Number("1.123456789000")).is_none());
        assert_eq!(
            check_cell(&quantity, Some(QUANTITY), Cell::Number("1.1234567891"))
                .unwrap()
                .code,
            RejectCode::TooPrecise
        );
        assert_eq!(
            check_cell(&quantity, Some(QUANTITY), Cell::Invalid("`x` is not a decimal number"))
                .unwrap()
                .code,
            RejectCode::InvalidValue
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let description = spec("Description", FieldKind::Text, false, Some(200));
        assert!(check_cell(&description, None, Cell::Text(&"é".repeat(200))).is_none());
        let too_long = check_cell(&description, None, Cell::Text(&"x".repeat(201))).unwrap();
        assert_eq!(too_long.code, RejectCode::TooLong);
        assert_eq!(
            too_long.message,
            "Description has 201 characters; at most 200 are allowed"
        );
    }
}
