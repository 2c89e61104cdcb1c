//! `${VAR}` interpolation from the environment. Values are substituted after parsing, only in
//! the fields that allow it, so they never reach a parser error message, and an unset
//! variable is reported by name only.

/// Replaces every `${NAME}` in `raw` with the variable's value; `$${` writes a literal `${`.
/// Returns the names of unset variables instead when there are any.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(raw.len());
    let mut missing = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix("${") {
            match body.find('}') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => missing.push(name.to_string()),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() { Ok(out) } else { Err(missing) }
}

/// Reads from the process environment; an empty value counts as unset.
pub fn from_process(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BUCKET" => Some("acme-exports".into()),
            "SECRET" => Some("hunter2".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(
            interpolate("s3://${BUCKET}/events/", env).unwrap(),
            "s3://acme-exports/events/"
        );
        assert_eq!(
            interpolate("cost $5 and $${LITERAL}", env).unwrap(),
            "cost $5 and ${LITERAL}"
        );
        assert_eq!(interpolate("${UNCLOSED", env).unwrap(), "${UNCLOSED");
    }

    #[test]
    fn names_every_missing_variable_and_no_value() {
        let err = interpolate("${SECRET}/${NOPE}/${ALSO_NOPE}", env).unwrap_err();
        assert_eq!(err, ["NOPE", "ALSO_NOPE"]);
    }
}
