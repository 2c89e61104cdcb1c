//! Just enough ZOQL: `select F, G from Object [where A = 'x' (or|and) B = 'y' …]` over
//! `UnitOfMeasure` and `Usage`.

use serde_json::{Map, Value};

use crate::state::Inner;

struct Query {
    fields: Vec<String>,
    object: String,
    conditions: Vec<(String, String)>,
    any: bool,
}

fn parse(query: &str) -> Result<Query, String> {
    let lower = query.to_ascii_lowercase();
    let select = lower.find("select ").ok_or("query must start with select")?;
    let from = lower.find(" from ").ok_or("query has no from")?;
    let fields = query[select + 7..from]
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    let rest = &query[from + 6..];
    let (object, where_clause) = match rest.to_ascii_lowercase().find(" where ") {
        Some(at) => (rest[..at].trim().to_string(), Some(rest[at + 7..].trim().to_string())),
        None => (rest.trim().to_string(), None),
    };
    let mut conditions = Vec::new();
    let mut any = true;
    if let Some(clause) = where_clause {
        let lowered = clause.to_ascii_lowercase();
        any = !lowered.contains(" and ");
        let separator = if any { " or " } else { " and " };
        let mut remaining = clause.as_str();
        loop {
            let at = remaining.to_ascii_lowercase().find(separator);
            let term = at.map_or(remaining, |at| &remaining[..at]);
            let (name, value) = term
                .split_once('=')
                .ok_or_else(|| format!("cannot read condition `{term}`"))?;
            let value = value.trim().trim_matches('\'').replace("\\'", "'");
            conditions.push((name.trim().to_string(), value));
            match at {
                Some(at) => remaining = &remaining[at + separator.len()..],
                None => break,
            }
        }
    }
    Ok(Query {
        fields,
        object,
        conditions,
        any,
    })
}

fn pick(fields: &[String], all: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for field in fields {
        if let Some((key, value)) = all.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)) {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

fn matches(query: &Query, all: &Map<String, Value>) -> bool {
    if query.conditions.is_empty() {
        return true;
    }
    let test = |(name, value): &(String, String)| {
        all.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .is_some_and(|(_, v)| match v {
                Value::String(s) => s == value,
                Value::Bool(b) => b.to_string().eq_ignore_ascii_case(value),
                other => value.as_str() == other.to_string().as_str(),
            })
    };
    if query.any {
        query.conditions.iter().any(test)
    } else {
        query.conditions.iter().all(test)
    }
}

/// Runs `query`; records carry only the selected fields.
pub fn run(inner: &Inner, query: &str) -> Result<Vec<Value>, String> {
    let query = parse(query)?;
    let rows: Vec<Map<String, Value>> = match query.object.to_ascii_lowercase().as_str() {
        "unitofmeasure" => inner
            .config
            .units_of_measure
            .iter()
            .map(|uom| {
                let mut row = Map::new();
                row.insert("Name".into(), Value::String(uom.clone()));
                row.insert("Active".into(), Value::Bool(true));
                row
            })
            .collect(),
        "usage" => inner
            .records
            .iter()
            .map(|r| {
                let mut row = Map::new();
                row.insert("Id".into(), Value::String(r.id.clone()));
                row.insert("AccountNumber".into(), Value::String(r.account_number.clone()));
                row.insert("UOM".into(), Value::String(r.uom.clone()));
                row.insert("Quantity".into(), serde_json::json!(r.quantity));
                row.insert("StartDateTime".into(), Value::String(r.start_date_time.clone()));
                row.insert(
                    "UniqueKey".into(),
                    r.unique_key.clone().map_or(Value::Null, Value::String),
                );
                row.insert(
                    "ImportId".into(),
                    r.import_id.clone().map_or(Value::Null, Value::String),
                );
                row.insert("RbeStatus".into(), Value::String(r.status.clone()));
                row
            })
            .collect(),
        other => return Err(format!("object `{other}` is not supported by the simulator")),
    };
    Ok(rows
        .iter()
        .filter(|row| matches(&query, row))
        .map(|row| pick(&query.fields, row))
        .collect())
}
