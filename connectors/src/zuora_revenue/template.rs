//! The "RevPro Usage Upload" template: its columns, its date format, and a mapped batch
//! turned into the text of each cell plus a verdict for each row.
//!
//! docs/zuora.md ("Zuora Revenue"): the mandatory columns are `SO Line ID`, `Usage Amount`,
//! `Unit Price`, `Quantity`, `DD_Rev_Segments`, `Sub Product` and `TRX_DATE`; a tenant's
//! template may have more (its full list and date format come from the mapping call), so any
//! other label is accepted and written as is.

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDateTime};

use crate::destination::{ROW_KEY_COLUMN, SchemaProblem, is_engine_column};
use crate::error::{ConnectorError, Result};
use crate::rules::{Cell, FieldKind, FieldSpec, NumberLimits, RejectCode, Rejection, check_cell, convert_column};

/// The template's mandatory columns, in the order they are written, with their kind.
pub const MANDATORY: [(&str, FieldKind); 7] = [
    ("SO Line ID", FieldKind::Text),
    ("Usage Amount", FieldKind::Number),
    ("Unit Price", FieldKind::Number),
    ("Quantity", FieldKind::Number),
    ("DD_Rev_Segments", FieldKind::Text),
    ("Sub Product", FieldKind::Text),
    ("TRX_DATE", FieldKind::DateTime),
];

/// The spec of a template column: the mandatory ones with their kind, any other label as an
/// optional column whose kind follows the model's column.
pub fn spec(label: &str, data_type: Option<&DataType>) -> FieldSpec {
    match MANDATORY.iter().find(|(name, _)| *name == label) {
        Some((name, kind)) => FieldSpec {
            name: (*name).into(),
            kind: *kind,
            required: true,
            max_chars: None,
        },
        None => FieldSpec {
            name: label.to_string().into(),
            kind: data_type.map_or(FieldKind::Text, kind_of),
            required: false,
            max_chars: None,
        },
    }
}

/// An extra column is written as a date when the model gives a date or timestamp, as a number
/// when it gives a number, else as text.
fn kind_of(data_type: &DataType) -> FieldKind {
    let data_type = match data_type {
        DataType::Dictionary(_, value) => value.as_ref(),
        other => other,
    };
    if matches!(data_type, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) {
        FieldKind::DateTime
    } else if data_type.is_numeric() {
        FieldKind::Number
    } else {
        FieldKind::Text
    }
}

/// The mapped schema's problems: a mandatory column unmapped or of a type that cannot become
/// its kind, or an extra column Arrow cannot write as text.
pub fn schema_problems(schema: &Schema) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    for field in schema.fields().iter().filter(|f| !is_engine_column(f.name())) {
        let spec = spec(field.name(), Some(field.data_type()));
        let writable = spec.kind.accepts(field.data_type()) || matches!(field.data_type(), DataType::Boolean);
        if !writable {
            problems.push(SchemaProblem {
                field: field.name().clone(),
                message: format!(
                    "`{}` takes {} but the column is of type {}",
                    field.name(),
                    spec.kind.describe(),
                    field.data_type()
                ),
            });
        }
    }
    for (label, _) in MANDATORY {
        if schema.field_with_name(label).is_err() {
            problems.push(SchemaProblem {
                field: label.to_string(),
                message: format!(
                    "`{label}` is a mandatory column of the RevPro Usage Upload template and is not mapped"
                ),
            });
        }
    }
    problems
}

/// A date format in Revenue's (Oracle's) notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    tokens: Vec<Token>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Day,
    Month,
    MonthName { upper: bool },
    Year4,
    Year2,
    Literal(char),
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl DateFormat {
    /// Parses `DD-MON-YYYY` and the like; the error says which part is not understood.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut tokens = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let upper = rest.to_ascii_uppercase();
            let (token, len) = if upper.starts_with("YYYY") {
                (Token::Year4, 4)
            } else if upper.starts_with("YY") {
                (Token::Year2, 2)
            } else if upper.starts_with("MON") {
                (
                    Token::MonthName {
                        upper: rest.starts_with("MON"),
                    },
                    3,
                )
            } else if upper.starts_with("MM") {
                (Token::Month, 2)
            } else if upper.starts_with("DD") {
                (Token::Day, 2)
            } else {
                match rest.chars().next() {
                    Some(c @ ('-' | '/' | '.' | ' ')) => (Token::Literal(c), 1),
                    _ => {
                        return Err(format!(
                            "`{text}` is not a date format Revenue uses: `{rest}` is not understood (use DD, MM, MON, YYYY, YY and - / . or space)"
                        ));
                    }
                }
            };
            tokens.push(token);
            rest = &rest[len..];
        }
        let has = |t: fn(&Token) -> bool| tokens.iter().any(t);
        if !(has(|t| *t == Token::Day)
            && has(|t| matches!(t, Token::Month | Token::MonthName { .. }))
            && has(|t| matches!(t, Token::Year4 | Token::Year2)))
        {
            return Err(format!("`{text}` needs a day, a month and a year"));
        }
        Ok(DateFormat {
            tokens,
            text: text.to_string(),
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the tenant's `Dateformat` names this same format (case aside, except for the
    /// month name's case).
    pub fn same_as(&self, tenant: &str) -> bool {
        DateFormat::parse(tenant).is_ok_and(|other| other.tokens == self.tokens)
            || self.text.eq_ignore_ascii_case(tenant.trim())
    }

    /// Renders the date part of `value`.
    pub fn render(&self, value: &NaiveDateTime) -> String {
        let mut out = String::with_capacity(12);
        for token in &self.tokens {
            match token {
                Token::Day => out.push_str(&format!("{:02}", value.day())),
                Token::Month => out.push_str(&format!("{:02}", value.month())),
                Token::MonthName { upper } => {
                    let name = MONTHS[value.month0() as usize];
                    if *upper {
                        out.push_str(&name.to_ascii_uppercase());
                    } else {
                        out.push_str(name);
                    }
                }
                Token::Year4 => out.push_str(&format!("{:04}", value.year())),
                Token::Year2 => out.push_str(&format!("{:02}", value.year().rem_euclid(100))),
                Token::Literal(c) => out.push(*c),
            }
        }
        out
    }
}

/// What the field rules need beyond each column's kind.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `TRX_DATE` and other date columns are written this way.
    pub date_format: DateFormat,
    /// Refuse a negative `Quantity`.
    pub quantity_non_negative: bool,
    /// Refuse a `Usage Amount` further than this from `Quantity` × `Unit Price`.
    pub amount_tolerance: Option<f64>,
}

/// A mapped batch as the template's cells: the header, each row's text, each row's verdict.
#[derive(Debug)]
pub struct PreparedRows {
    /// The labels written in the header line, mandatory columns first.
    pub headers: Vec<String>,
    /// `cells[column][row]`, as written.
    cells: Vec<Vec<String>>,
    /// `None` for a row that may be sent, the reason for one that may not.
    pub rejections: Vec<Option<Rejection>>,
    /// Each row's key ([`ROW_KEY_COLUMN`]); empty when the batch has none.
    pub keys: Vec<String>,
}

impl PreparedRows {
    /// Converts and checks every row of `batch`.
    pub fn new(destination: &str, rules: &Rules, batch: &RecordBatch) -> Result<Self> {
        let schema = batch.schema();
        let mut labels: Vec<String> = MANDATORY
            .iter()
            .map(|(label, _)| label.to_string())
            .filter(|label| schema.field_with_name(label).is_ok())
            .collect();
        let mut extra: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| !is_engine_column(name) && !MANDATORY.iter().any(|(m, _)| m == name))
            .collect();
        extra.sort();
        labels.extend(extra);
        let rows = batch.num_rows();
        let mut rejections: Vec<Option<Rejection>> = vec![None; rows];
        let mut numbers: [Vec<Option<f64>>; 3] = Default::default();
        let mut cells = Vec::with_capacity(labels.len());
        for label in &labels {
            let column = batch
                .column_by_name(label)
                .ok_or_else(|| ConnectorError::MissingColumn {
                    destination: destination.to_string(),
                    column: label.clone(),
                })?;
            let spec = spec(label, Some(column.data_type()));
            let converted = convert_column(spec.kind, column).map_err(|source| ConnectorError::Convert {
                destination: destination.to_string(),
                column: label.clone(),
                source,
            })?;
            let limits = (label == "Quantity").then_some(NumberLimits {
                non_negative: rules.quantity_non_negative,
                max_integer_digits: None,
                max_fraction_digits: None,
            });
            let slot = ["Usage Amount", "Quantity", "Unit Price"]
                .iter()
                .position(|name| name == label);
            let mut texts = Vec::with_capacity(rows);
            for (row, cell) in converted.iter().enumerate() {
                if rejections[row].is_none() {
                    rejections[row] = check_cell(&spec, limits, cell);
                }
                if let (Some(slot), Cell::Number(text)) = (slot, cell) {
                    numbers[slot].resize(rows, None);
                    numbers[slot][row] = text.parse::<f64>().ok();
                }
                texts.push(match cell {
                    Cell::Text(text) | Cell::Number(text) => text.to_string(),
                    Cell::DateTime(value) => rules.date_format.render(&value),
                    Cell::Null | Cell::Invalid(_) => String::new(),
                });
            }
            cells.push(texts);
        }
        if let Some(tolerance) = rules.amount_tolerance {
            check_amounts(&numbers, tolerance, &mut rejections);
        }
        let keys = match batch.column_by_name(ROW_KEY_COLUMN) {
            Some(column) => convert_column(FieldKind::Text, column)
                .map_err(|source| ConnectorError::Convert {
                    destination: destination.to_string(),
                    column: ROW_KEY_COLUMN.into(),
                    source,
                })?
                .iter()
                .map(|cell| match cell {
                    Cell::Text(key) => key.to_string(),
                    _ => String::new(),
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(PreparedRows {
            headers: labels,
            cells,
            rejections,
            keys,
        })
    }

    /// Row `row`'s cells, in header order.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> {
        self.cells.iter().map(move |column| column[row].as_str())
    }
}

/// `Usage Amount` = `Quantity` × `Unit Price` within `tolerance`, for rows not refused yet.
fn check_amounts(numbers: &[Vec<Option<f64>>; 3], tolerance: f64, rejections: &mut [Option<Rejection>]) {
    let [amounts, quantities, prices] = numbers;
    for (row, verdict) in rejections.iter_mut().enumerate() {
        if verdict.is_some() {
            continue;
        }
        let at = |values: &Vec<Option<f64>>| values.get(row).copied().flatten();
        if let (Some(amount), Some(quantity), Some(price)) = (at(amounts), at(quantities), at(prices)) {
            let expected = quantity * price;
            if (amount - expected).abs() > tolerance + f64::EPSILON * expected.abs().max(1.0) {
                *verdict = Some(Rejection {
                    code: RejectCode::Inconsistent,
                    field: Some("Usage Amount".into()),
                    message: format!(
                        "Usage Amount is {amount} but Quantity × Unit Price is {quantity} × {price} = {expected} (tolerance {tolerance})"
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::Field;
    use chrono::NaiveDate;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(13, 5, 0))
            .unwrap()
    }

    #[test]
    fn date_formats_render_like_oracle() {
        let default = DateFormat::parse("DD-MON-YYYY").unwrap();
        assert_eq!(default.render(&at(2026, 11, 2)), "02-NOV-2026");
        assert_eq!(
            DateFormat::parse("MM/DD/YYYY").unwrap().render(&at(2026, 1, 31)),
            "01/31/2026"
        );
        assert_eq!(
            DateFormat::parse("YYYY-MM-DD").unwrap().render(&at(2026, 1, 31)),
            "2026-01-31"
        );
        assert_eq!(
            DateFormat::parse("dd-Mon-yy").unwrap().render(&at(2026, 3, 9)),
            "09-Mar-26"
        );
        assert!(default.same_as("dd-MON-yyyy"));
        assert!(!default.same_as("MM/DD/YYYY"));
        assert!(
            DateFormat::parse("DD-QQ-YYYY")
                .unwrap_err()
                .contains("`QQ-YYYY` is not understood")
        );
        assert!(DateFormat::parse("MM-YYYY").unwrap_err().contains("needs a day"));
    }

    fn batch(quantity: Vec<i64>, amount: Vec<f64>, price: Vec<f64>) -> RecordBatch {
        let n = quantity.len();
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("SO Line ID", text("SO-1")),
            ("Usage Amount", Arc::new(Float64Array::from(amount))),
            ("Unit Price", Arc::new(Float64Array::from(price))),
            ("Quantity", Arc::new(Int64Array::from(quantity))),
            ("DD_Rev_Segments", text("A")),
            ("Sub Product", text("API")),
            ("TRX_DATE", Arc::new(Date32Array::from(vec![20_000; n]))),
            ("Customer Name", text("Acme, Inc.")),
            (ROW_KEY_COLUMN, text("k")),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    fn rules(tolerance: Option<f64>) -> Rules {
        Rules {
            date_format: DateFormat::parse("DD-MON-YYYY").unwrap(),
            quantity_non_negative: true,
            amount_tolerance: tolerance,
        }
    }

    #[test]
    fn rows_are_rendered_in_template_order_and_checked() {
        let input = batch(vec![3, -1, 2], vec![7.5, 1.0, 9.0], vec![2.5, 1.0, 2.5]);
        let prepared = PreparedRows::new("rev", &rules(Some(0.01)), &input).unwrap();
        assert_eq!(
            prepared.headers,
            [
                "SO Line ID",
                "Usage Amount",
                "Unit Price",
                "Quantity",
                "DD_Rev_Segments",
                "Sub Product",
                "TRX_DATE",
                "Customer Name"
            ]
        );
        let first: Vec<&str> = prepared.row(0).collect();
        assert_eq!(
            first,
            ["SO-1", "7.5", "2.5", "3", "A", "API", "04-OCT-2024", "Acme, Inc."]
        );
        assert!(prepared.rejections[0].is_none());
        assert_eq!(
            prepared.rejections[1].as_ref().map(|r| r.code.clone()),
            Some(RejectCode::NegativeQuantity)
        );
        let mismatch = prepared.rejections[2].as_ref().unwrap();
        assert_eq!(mismatch.code, RejectCode::Inconsistent);
        assert!(mismatch.message.contains("2 × 2.5 = 5"), "{}", mismatch.message);
        let unchecked = PreparedRows::new("rev", &rules(None), &input).unwrap();
        assert!(unchecked.rejections[2].is_none());
        assert_eq!(prepared.keys, ["k", "k", "k"]);
    }

    #[test]
    fn missing_mandatory_columns_and_bad_types_are_named() {
        let schema = Schema::new(vec![
            Field::new("SO Line ID", DataType::Utf8, false),
            Field::new("Quantity", DataType::Date32, false),
            Field::new("Region", DataType::Utf8, false),
        ]);
        let problems = schema_problems(&schema);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "Quantity",
                "Usage Amount",
                "Unit Price",
                "DD_Rev_Segments",
                "Sub Product",
                "TRX_DATE"
            ]
        );
    }
}
