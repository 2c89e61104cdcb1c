//! Zuora's error bodies and what to do about them.
//!
//! Zuora answers errors in several shapes — `{success, reasons[{code, message}]}`,
//! `{Success, Errors[{Code, Message}]}`, `{success, errors[{code, message}]}`, and for ZOQL
//! faults `{FaultCode, FaultMessage}` (e.g. `INVALID_FIELD` / `invalid field for query:
//! Invoice.accountid1`, as a public Zuora client's tests record it; the shape is not in
//! Zuora's spec, which declares only 200 and 401 for `/v1/action/query`) — with field names in
//! either case. REST codes have 8 digits whose last two are the category:
//! 50 (locking contention), 61 (temporary error) and 70 (request limit) are worth retrying;
//! 20/21/22 (invalid, unknown, missing field), 30 (rule restriction) and 40 (not found) are not.

use serde_json::Value;

/// One `(code, message)` from an error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZuoraReason {
    /// The code as Zuora gave it (an 8-digit number or a word like `INVALID_VALUE`).
    pub code: String,
    /// Zuora's message.
    pub message: String,
}

fn get<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `success` / `Success`, when present.
pub fn success_flag(body: &Value) -> Option<bool> {
    get(body, "success").and_then(Value::as_bool)
}

/// Every reason in an error body, whatever its shape.
pub fn reasons(body: &Value) -> Vec<ZuoraReason> {
    let list = ["reasons", "errors"]
        .iter()
        .find_map(|name| get(body, name))
        .and_then(Value::as_array);
    let mut found: Vec<ZuoraReason> = list
        .into_iter()
        .flatten()
        .map(|item| ZuoraReason {
            code: text(get(item, "code")),
            message: text(get(item, "message")),
        })
        .collect();
    if found.is_empty()
        && let Some(message) = get(body, "faultmessage").and_then(Value::as_str)
    {
        found.push(ZuoraReason {
            code: text(get(body, "faultcode")),
            message: message.to_string(),
        });
    }
    if found.is_empty()
        && let Some(message) = get(body, "message").and_then(Value::as_str)
    {
        found.push(ZuoraReason {
            code: String::new(),
            message: message.to_string(),
        });
    }
    found
}

/// Every reason's message, joined with `; ` (empty when the body has none).
pub fn messages(body: &Value) -> String {
    reasons(body)
        .into_iter()
        .map(|r| r.message)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Some(why)` when an error body says the failure is temporary: `success: false` and every
/// code in a retryable category.
pub fn temporary(body: &Value) -> Option<String> {
    let found = reasons(body);
    let transient =
        success_flag(body) == Some(false) && !found.is_empty() && found.iter().all(|r| retryable_code(&r.code));
    transient.then(|| {
        let codes = found.into_iter().map(|r| r.code).collect::<Vec<_>>().join(",");
        format!("Zuora code {codes} (a temporary category)")
    })
}

/// The field a ZOQL fault names as invalid (`invalid field for query: Usage.UniqueKey` →
/// `Usage.UniqueKey`), when the body is such a fault.
pub fn invalid_query_field(body: &Value) -> Option<String> {
    reasons(body).into_iter().find_map(|r| {
        let at = r.message.to_ascii_lowercase().find("invalid field for query:")?;
        let field = r.message[at + "invalid field for query:".len()..].trim();
        Some(field.trim_end_matches(['.', ';']).to_string())
    })
}

/// Whether a Zuora code is in a retryable category (50, 61, 70).
pub fn retryable_code(code: &str) -> bool {
    code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()) && matches!(&code[6..], "50" | "61" | "70")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_every_shape_case_insensitively() {
        let rest = json!({"success": false, "reasons": [{"code": 53100020, "message": "bad"}]});
        assert_eq!(
            reasons(&rest),
            [ZuoraReason {
                code: "53100020".into(),
                message: "bad".into()
            }]
        );
        let actions = json!({"Success": false, "Errors": [{"Code": "INVALID_VALUE", "Message": "no"}]});
        assert_eq!(reasons(&actions)[0].code, "INVALID_VALUE");
        let proxy = json!({"success": false, "errors": [{"code": "X", "message": "y"}]});
        assert_eq!(reasons(&proxy)[0].message, "y");
        let fault = json!({"FaultCode": "INVALID_FIELD", "FaultMessage": "invalid field for query: Usage.UniqueKey"});
        assert_eq!(reasons(&fault)[0].code, "INVALID_FIELD");
        assert_eq!(invalid_query_field(&fault).as_deref(), Some("Usage.UniqueKey"));
        assert_eq!(invalid_query_field(&rest), None);
        let auth = json!({"message": "Authentication error"});
        assert_eq!(reasons(&auth)[0].message, "Authentication error");
        assert_eq!(success_flag(&actions), Some(false));
    }

    #[test]
    fn temporary_only_when_every_code_is_temporary() {
        let temp = json!({"success": false, "reasons": [{"code": "50000061", "message": "later"}]});
        assert!(temporary(&temp).is_some_and(|w| w.contains("50000061")));
        let mixed = json!({"success": false, "reasons": [{"code": "50000061"}, {"code": "53100020"}]});
        assert_eq!(temporary(&mixed), None);
        assert_eq!(temporary(&json!({"success": true})), None);
    }

    #[test]
    fn classifies_categories_by_the_last_two_digits() {
        for code in ["53100050", "50000061", "50000070"] {
            assert!(retryable_code(code), "{code}");
        }
        for code in [
            "53100020",
            "53100021",
            "53100022",
            "53100030",
            "53100040",
            "INVALID_VALUE",
            "5310006",
        ] {
            assert!(!retryable_code(code), "{code}");
        }
    }
}
