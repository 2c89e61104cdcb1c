//! ZOQL as Zuora documents it (`docs/zuora.md`, "ZOQL"; the query() and queryMore()
//! pages of the SOAP API reference; `Action_POSTquery` on developer.zuora.com), over the two
//! objects dinmo reads:
//!
//! - `select F, G from Object [where C (and|or) C …]`: fields named explicitly (no `*`), one
//!   object, no joins, no ORDER BY, no aggregates. "All ZOQL keywords must be in lower case"
//!   (Action_POSTquery, Limitations). Field names as documented, case-sensitive.
//! - Conditions compare a field with a string literal (`'…'`, `\'` escapes a quote), `true`,
//!   `false`, `null` or a number, by `=`, `!=`, `<`, `>`, `<=`, `>=`; `and` binds tighter
//!   than `or`. At most 200 conditions in a WHERE clause.
//! - A field the object does not have is refused: `invalid field for query: Object.Field`.
//! - At most 2,000 records a page; then `done: false` and a `queryLocator` for queryMore.
//!   "Fields with NULL values are not returned in the response."
//!
//! The field lists are the documented ones (docs/zuora.md: UnitOfMeasure field descriptions, Usage
//! data source), not the fields dinmo happens to use.

use serde_json::{Map, Value};

/// `UnitOfMeasure` fields (docs/zuora.md, "ZOQL": …/unitofmeasure/field-descriptions). There is
/// no `Name`: the unit's name is `UomName`.
pub const UNIT_OF_MEASURE_FIELDS: &[&str] = &[
    "Id",
    "Active",
    "DecimalPlaces",
    "Description",
    "DisplayedAs",
    "RoundingMode",
    "UomName",
    "CreatedById",
    "CreatedDate",
    "UpdatedById",
    "UpdatedDate",
];

/// `Usage` fields (docs/zuora.md, "ZOQL": …/data-source-reference/usage-data-source), `UniqueKey`
/// included; a tenant without Prepaid with Drawdown does not have it (see [`Schema`]).
pub const USAGE_FIELDS: &[&str] = &[
    "Id",
    "AccountId",
    "AccountNumber",
    "ChargeId",
    "ChargeNumber",
    "Description",
    "EndDateTime",
    "ImportId",
    "Quantity",
    "RbeStatus",
    "SourceName",
    "SourceType",
    "StartDateTime",
    "SubmissionDateTime",
    "SubscriptionId",
    "SubscriptionNumber",
    "UOM",
    "UniqueKey",
    "CreatedById",
    "CreatedDate",
    "UpdatedById",
    "UpdatedDate",
];

/// At most this many conditions in one WHERE clause (docs/zuora.md, "ZOQL").
pub const MAX_CONDITIONS: usize = 200;

/// At most this many records in one answer (docs/zuora.md, "ZOQL"; Action_POSTquery).
pub const PAGE_SIZE: usize = 2_000;

/// The objects and fields a tenant offers to ZOQL.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Whether `Usage.UniqueKey` can be queried: Zuora documents it "only available if you
    /// have the Prepaid with Drawdown feature enabled" (docs/zuora.md, "ZOQL").
    pub usage_unique_key: bool,
}

impl Schema {
    /// The documented fields of `object`, or `None` for an object the simulator does not hold.
    pub fn fields(&self, object: &str) -> Option<Vec<&'static str>> {
        match object {
            "UnitOfMeasure" => Some(UNIT_OF_MEASURE_FIELDS.to_vec()),
            "Usage" => Some(
                USAGE_FIELDS
                    .iter()
                    .copied()
                    .filter(|f| self.usage_unique_key || *f != "UniqueKey")
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A refusal, with the fault code Zuora's SOAP-backed query gives it (`INVALID_FIELD`,
/// `INVALID_TYPE`, `MALFORMED_QUERY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

fn fault(code: &'static str, message: impl Into<String>) -> Fault {
    Fault {
        code,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Bool(bool),
    Number(f64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone)]
struct Condition {
    field: String,
    op: Op,
    value: Literal,
}

/// A parsed query: the fields, the object, and the WHERE clause as OR of ANDs.
#[derive(Debug, Clone)]
pub struct Query {
    /// The selected fields.
    pub fields: Vec<String>,
    /// The object.
    pub object: String,
    any_of: Vec<Vec<Condition>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Comma,
    Op(Op),
}

fn tokens(query: &str) -> Result<Vec<Token>, Fault> {
    let mut out = Vec::new();
    let mut chars = query.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped) => text.push(escaped),
                            None => return Err(fault("MALFORMED_QUERY", "unterminated string literal")),
                        },
                        Some('\'') => break,
                        Some(other) => text.push(other),
                        None => return Err(fault("MALFORMED_QUERY", "unterminated string literal")),
                    }
                }
                out.push(Token::Text(text));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let next_is_eq = chars.peek() == Some(&'=');
                let op = match (c, next_is_eq) {
                    ('=', _) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', true) => Op::Le,
                    ('>', true) => Op::Ge,
                    ('<', false) => Op::Lt,
                    ('>', false) => Op::Gt,
                    _ => return Err(fault("MALFORMED_QUERY", format!("unexpected `{c}`"))),
                };
                if next_is_eq && c != '=' {
                    chars.next();
                }
                out.push(Token::Op(op));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '*' | ':') {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if word.is_empty() {
                    return Err(fault("MALFORMED_QUERY", format!("unexpected `{c}`")));
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// A keyword must be written in lower case (Action_POSTquery: "All ZOQL keywords must be in
/// lower case").
fn keyword(token: Option<&Token>, expected: &str) -> Result<(), Fault> {
    match token {
        Some(Token::Word(w)) if w == expected => Ok(()),
        Some(Token::Word(w)) if w.eq_ignore_ascii_case(expected) => Err(fault(
            "MALFORMED_QUERY",
            format!("ZOQL keywords must be in lower case: `{w}`"),
        )),
        other => Err(fault(
            "MALFORMED_QUERY",
            format!("expected `{expected}`, found {other:?}"),
        )),
    }
}

/// Parses `query` and checks it against `schema`.
pub fn parse(query: &str, schema: &Schema) -> Result<Query, Fault> {
    let tokens = tokens(query)?;
    let mut at = tokens.iter().peekable();
    keyword(at.next(), "select")?;
    let mut fields = Vec::new();
    loop {
        match at.next() {
            Some(Token::Word(w)) if w == "*" => {
                return Err(fault("MALFORMED_QUERY", "ZOQL names its fields: `*` is not allowed"));
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("from") => {
                return Err(fault("MALFORMED_QUERY", "no field before `from`"));
            }
            Some(Token::Word(w)) => fields.push(w.clone()),
            other => return Err(fault("MALFORMED_QUERY", format!("expected a field, found {other:?}"))),
        }
        if at.peek() == Some(&&Token::Comma) {
            at.next();
            continue;
        }
        break;
    }
    keyword(at.next(), "from")?;
    let object = match at.next() {
        Some(Token::Word(w)) => w.clone(),
        other => return Err(fault("MALFORMED_QUERY", format!("expected an object, found {other:?}"))),
    };
    let Some(known) = schema.fields(&object) else {
        return Err(fault("INVALID_TYPE", format!("invalid object for query: {object}")));
    };
    let check = |field: &str| -> Result<(), Fault> {
        if known.contains(&field) {
            Ok(())
        } else {
            Err(fault(
                "INVALID_FIELD",
                format!("invalid field for query: {object}.{field}"),
            ))
        }
    };
    for field in &fields {
        check(field)?;
    }
    let mut any_of: Vec<Vec<Condition>> = Vec::new();
    if let Some(next) = at.next() {
        keyword(Some(next), "where")?;
        let mut all_of = Vec::new();
        let mut count = 0;
        loop {
            let field = match at.next() {
                Some(Token::Word(w)) => w.clone(),
                other => return Err(fault("MALFORMED_QUERY", format!("expected a field, found {other:?}"))),
            };
            check(&field)?;
            let op = match at.next() {
                Some(Token::Op(op)) => *op,
                other => {
                    return Err(fault(
                        "MALFORMED_QUERY",
                        format!("expected an operator, found {other:?}"),
                    ));
                }
            };
            let value = match at.next() {
                Some(Token::Text(t)) => Literal::Text(t.clone()),
                Some(Token::Word(w)) if w == "true" => Literal::Bool(true),
                Some(Token::Word(w)) if w == "false" => Literal::Bool(false),
                Some(Token::Word(w)) if w == "null" => Literal::Null,
                Some(Token::Word(w)) => match w.parse::<f64>() {
                    Ok(n) => Literal::Number(n),
                    Err(_) => return Err(fault("MALFORMED_QUERY", format!("`{w}` is not a value"))),
                },
                other => return Err(fault("MALFORMED_QUERY", format!("expected a value, found {other:?}"))),
            };
            count += 1;
            if count > MAX_CONDITIONS {
                return Err(fault(
                    "MALFORMED_QUERY",
                    format!("a WHERE clause may have at most {MAX_CONDITIONS} conditions"),
                ));
            }
            all_of.push(Condition { field, op, value });
            match at.next() {
                None => {
                    any_of.push(all_of);
                    break;
                }
                Some(Token::Word(w)) if w == "and" => {}
                Some(Token::Word(w)) if w == "or" => any_of.push(std::mem::take(&mut all_of)),
                Some(other) => {
                    if let Token::Word(w) = other
                        && (w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or"))
                    {
                        return Err(fault(
                            "MALFORMED_QUERY",
                            format!("ZOQL keywords must be in lower case: `{w}`"),
                        ));
                    }
                    return Err(fault("MALFORMED_QUERY", format!("unexpected {other:?}")));
                }
            }
        }
    }
    Ok(Query { fields, object, any_of })
}

/// `text` as an instant when it is an ISO 8601 date-time or date (a date-time literal without an
/// offset is read as the simulator's tenant time zone, UTC; docs/zuora.md, "Reading usage
/// back").
fn instant(text: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

fn compare(value: Option<&Value>, op: Op, literal: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (value, literal) {
        (None | Some(Value::Null), Literal::Null) => Some(Ordering::Equal),
        (None | Some(Value::Null), _) | (Some(_), Literal::Null) => None,
        (Some(Value::String(s)), Literal::Text(t)) => match (instant(s), instant(t)) {
            // Date-time fields compare as instants, a date as its midnight.
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(s.as_str().cmp(t.as_str())),
        },
        (Some(Value::Bool(b)), Literal::Bool(l)) => Some(b.cmp(l)),
        (Some(Value::Number(n)), Literal::Number(l)) => n.as_f64().and_then(|n| n.partial_cmp(l)),
        (Some(Value::Number(n)), Literal::Text(t)) => t.parse::<f64>().ok().and_then(|t| n.as_f64()?.partial_cmp(&t)),
        _ => None,
    };
    match (op, ordering) {
        (Op::Ne, None) => !matches!(literal, Literal::Null) || value.is_some_and(|v| !v.is_null()),
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
    }
}

impl Query {
    /// Whether a record (all its fields by documented name) matches the WHERE clause.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        self.any_of.is_empty()
            || self
                .any_of
                .iter()
                .any(|all| all.iter().all(|c| compare(record.get(&c.field), c.op, &c.value)))
    }

    /// The selected fields of `record`; null fields are left out, as Zuora does.
    pub fn pick(&self, record: &Map<String, Value>) -> Value {
        let mut out = Map::new();
        for field in &self.fields {
            if let Some(value) = record.get(field).filter(|v| !v.is_null()) {
                out.insert(field.clone(), value.clone());
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Schema = Schema { usage_unique_key: true };

    #[test]
    fn the_unit_name_is_uomname_not_name() {
        let refused = parse("select Name from UnitOfMeasure where Active = true", &FULL).unwrap_err();
        assert_eq!(refused.code, "INVALID_FIELD");
        assert_eq!(refused.message, "invalid field for query: UnitOfMeasure.Name");
        assert!(parse("select UomName from UnitOfMeasure where Active = true", &FULL).is_ok());
    }

    #[test]
    fn keywords_must_be_lower_case() {
        for query in [
            "SELECT UomName from UnitOfMeasure",
            "select UomName FROM UnitOfMeasure",
            "select UomName from UnitOfMeasure WHERE Active = true",
            "select Id from Usage where UOM = 'a' OR UOM = 'b'",
        ] {
            assert_eq!(parse(query, &FULL).unwrap_err().code, "MALFORMED_QUERY", "{query}");
        }
    }

    #[test]
    fn no_star_and_no_unknown_object() {
        assert_eq!(parse("select * from Usage", &FULL).unwrap_err().code, "MALFORMED_QUERY");
        assert_eq!(parse("select Id from Invoice", &FULL).unwrap_err().code, "INVALID_TYPE");
    }

    #[test]
    fn at_most_200_conditions() {
        let conditions = |n: usize| {
            (0..n)
                .map(|i| format!("UniqueKey = 'k{i}'"))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        assert!(parse(&format!("select Id from Usage where {}", conditions(200)), &FULL).is_ok());
        let refused = parse(&format!("select Id from Usage where {}", conditions(201)), &FULL).unwrap_err();
        assert!(refused.message.contains("200"), "{refused:?}");
    }

    #[test]
    fn unique_key_exists_only_with_prepaid_with_drawdown() {
        let without = Schema {
            usage_unique_key: false,
        };
        let refused = parse("select Id, UniqueKey from Usage where UniqueKey = 'a'", &without).unwrap_err();
        assert_eq!(refused.message, "invalid field for query: Usage.UniqueKey");
    }

    #[test]
    fn and_binds_tighter_than_or_and_literals_compare_by_type() {
        let query = parse(
            r"select Id from Usage where UOM = 'a\'b' and Quantity >= 2 or RbeStatus = 'Processed'",
            &FULL,
        )
        .unwrap();
        let record = |uom: &str, quantity: f64, status: &str| {
            let mut map = Map::new();
            map.insert("UOM".into(), Value::String(uom.into()));
            map.insert("Quantity".into(), serde_json::json!(quantity));
            map.insert("RbeStatus".into(), Value::String(status.into()));
            map
        };
        assert!(query.matches(&record("a'b", 2.0, "Pending")));
        assert!(!query.matches(&record("a'b", 1.0, "Pending")));
        assert!(query.matches(&record("x", 0.0, "Processed")));
        let active = parse("select UomName from UnitOfMeasure where Active = true", &FULL).unwrap();
        let mut unit = Map::new();
        unit.insert("Active".into(), Value::Bool(false));
        assert!(!active.matches(&unit));
    }

    #[test]
    fn date_times_compare_as_instants_and_a_date_as_its_midnight() {
        let query = parse(
            "select Id from Usage where StartDateTime >= '2026-01-04T00:00:00' and StartDateTime < '2026-01-05T00:00:00'",
            &FULL,
        )
        .unwrap();
        let at = |start: &str| {
            let mut record = Map::new();
            record.insert("StartDateTime".into(), Value::String(start.into()));
            query.matches(&record)
        };
        assert!(at("2026-01-04"));
        assert!(at("2026-01-04T23:59:59"));
        assert!(!at("2026-01-04T23:00:00-02:00"), "01:00 UTC the next day");
        assert!(!at("2026-01-05"));
        assert!(!at("2026-01-03T23:59:59.999"));
    }

    #[test]
    fn null_fields_are_left_out() {
        let query = parse("select Id, UniqueKey from Usage", &FULL).unwrap();
        let mut record = Map::new();
        record.insert("Id".into(), Value::String("1".into()));
        record.insert("UniqueKey".into(), Value::Null);
        assert_eq!(query.pick(&record), serde_json::json!({"Id": "1"}));
    }
}
