//! Zuora's rules for a usage record, with its error codes.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use crate::state::{Inner, UsageRecord};

/// A refusal: the actions API's string code, the REST API's 8-digit code, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub action_code: &'static str,
    pub rest_code: u32,
    pub message: String,
}

fn refuse(action_code: &'static str, category: u32, message: impl Into<String>) -> Refusal {
    // 531000xx: object 5310 (usage), last two digits the category, as Zuora composes them.
    Refusal {
        action_code,
        rest_code: 53_100_000 + category,
        message: message.into(),
    }
}

/// Field lookup with Zuora's case-insensitive field names.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn text(object: &Map<String, Value>, name: &str) -> Option<String> {
    field(object, name).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `PUT /v1/object/usage/{id}` (`Object_PUTUsage`, body `ProxyModifyUsage`): the fields a
/// change may carry (`Quantity`, `StartDateTime`, `EndDateTime`, `UOM`) checked as on create
/// and applied to `record`. Only a Pending record may change (docs/zuora.md, "Usage records");
/// the caller checks that. What Zuora answers for another field (`AccountNumber`) is not
/// documented (*unconfirmed*): it is refused here, so a connector never relies on it.
pub fn modify_usage(record: &mut UsageRecord, object: &Map<String, Value>) -> Result<(), Refusal> {
    const CHANGEABLE: [&str; 5] = ["Quantity", "StartDateTime", "EndDateTime", "UOM", "RbeStatus"];
    if let Some(other) = object
        .keys()
        .find(|key| !CHANGEABLE.iter().any(|c| c.eq_ignore_ascii_case(key)) && !key.ends_with("__c"))
    {
        return Err(refuse("INVALID_FIELD", 20, format!("{other} cannot be updated")));
    }
    if let Some(raw) = field(object, "Quantity") {
        let quantity = match raw {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => s.trim().parse::<f64>().unwrap_or(f64::NAN),
            _ => f64::NAN,
        };
        if !quantity.is_finite() {
            return Err(refuse("INVALID_VALUE", 20, "Quantity is not a number"));
        }
        if quantity < 0.0 {
            return Err(refuse("INVALID_VALUE", 20, "Quantity must not be negative"));
        }
        record.quantity = quantity;
    }
    for (name, slot) in [("StartDateTime", true), ("EndDateTime", false)] {
        if let Some(value) = text(object, name) {
            if !valid_datetime(&value) {
                return Err(refuse(
                    "INVALID_VALUE",
                    20,
                    format!("{name} {value} is not a valid date-time"),
                ));
            }
            match slot {
                true => record.start_date_time = value,
                false => record.end_date_time = Some(value),
            }
        }
    }
    // As on create, a unit no charge uses is stored (and never billed), not refused.
    if let Some(uom) = text(object, "UOM") {
        record.uom = uom;
    }
    Ok(())
}

fn valid_datetime(raw: &str) -> bool {
    DateTime::parse_from_rfc3339(raw).is_ok()
        || NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").is_ok()
        || NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").is_ok()
        || NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_ok()
}

/// Checks a usage object and builds the record it would store.
pub fn usage_from_json(inner: &mut Inner, object: &Map<String, Value>, source: &str) -> Result<UsageRecord, Refusal> {
    let account_number = text(object, "AccountNumber");
    let account_id = text(object, "AccountId");
    if account_number.is_none() && account_id.is_none() {
        return Err(refuse(
            "MISSING_REQUIRED_VALUE",
            22,
            "AccountId or AccountNumber is required",
        ));
    }
    let Some(account) = inner.account(account_number.as_deref(), account_id.as_deref()) else {
        let which = account_number.or(account_id).unwrap_or_default();
        return Err(refuse(
            "INVALID_VALUE",
            40,
            format!("The account {which} does not exist"),
        ));
    };
    if account.status != "Active" {
        return Err(refuse(
            "INVALID_VALUE",
            30,
            format!("The account {} is not active", account.number),
        ));
    }
    let Some(uom) = text(object, "UOM") else {
        return Err(refuse("MISSING_REQUIRED_VALUE", 22, "UOM is required"));
    };
    let quantity = match field(object, "Quantity") {
        None => return Err(refuse("MISSING_REQUIRED_VALUE", 22, "Quantity is required")),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(f64::NAN),
        Some(_) => f64::NAN,
    };
    if !quantity.is_finite() {
        return Err(refuse("INVALID_VALUE", 20, "Quantity is not a number"));
    }
    if quantity < 0.0 {
        return Err(refuse("INVALID_VALUE", 20, "Quantity must not be negative"));
    }
    let Some(start) = text(object, "StartDateTime") else {
        return Err(refuse("MISSING_REQUIRED_VALUE", 22, "StartDateTime is required"));
    };
    if !valid_datetime(&start) {
        return Err(refuse(
            "INVALID_VALUE",
            20,
            format!("StartDateTime {start} is not a valid date-time"),
        ));
    }
    let description = text(object, "Description");
    if description.as_ref().is_some_and(|d| d.chars().count() > 200) {
        return Err(refuse("INVALID_VALUE", 20, "Description exceeds 200 characters"));
    }
    let unique_key = text(object, "UniqueKey");
    if inner.config.enforce_unique_key
        && let Some(key) = &unique_key
        && inner.unique_keys.contains(key)
    {
        return Err(refuse(
            "DUPLICATE_VALUE",
            30,
            format!("A usage record with UniqueKey {key} already exists"),
        ));
    }
    Ok(UsageRecord {
        id: inner.new_id(),
        account_id: account.id.clone(),
        account_number: account.number.clone(),
        uom,
        quantity,
        start_date_time: start,
        end_date_time: text(object, "EndDateTime"),
        description,
        unique_key,
        subscription_number: text(object, "SubscriptionNumber"),
        charge_number: text(object, "ChargeNumber"),
        import_id: None,
        status: "Pending".into(),
        source: source.into(),
        track_id: None,
    })
}
