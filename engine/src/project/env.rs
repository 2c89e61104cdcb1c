//! `${VAR}` interpolation from the environment. Values are substituted after parsing, only in
//! the fields that allow it, so they never reach a parser error message, and an unset
//! variable is reported by name only.

/// What is wrong with one `${...}` of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarProblem {
    /// `${NAME}` where `NAME` is not in the environment.
    Unset(String),
    /// `${NAME}` where `NAME` is set to the empty string.
    Empty(String),
    /// `${` with no `}` after it: the text from `${` on.
    Unterminated(String),
    /// `${...}` whose name is not a variable name (letters, digits, `_`; not starting with a
    /// digit).
    BadName(String),
}

impl std::fmt::Display for VarProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarProblem::Unset(name) => write!(f, "environment variable `{name}` is not set"),
            VarProblem::Empty(name) => write!(f, "environment variable `{name}` is empty"),
            VarProblem::Unterminated(text) => {
                write!(
                    f,
                    "`{text}` is not closed: add the `}}` (or write `$${{` for a literal `${{`)"
                )
            }
            VarProblem::BadName(name) => write!(
                f,
                "`${{{name}}}` is not a variable name (letters, digits and `_`, not starting with a digit)"
            ),
        }
    }
}

/// Replaces every `${NAME}` in `raw` with the variable's value; `$${` writes a literal `${`.
/// Returns every problem instead when there are any: unset or empty variables (by name, never
/// by value), an unclosed `${`, a malformed name.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Vec<VarProblem>> {
    let mut out = String::with_capacity(raw.len());
    let mut problems = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                let shown: String = after.chars().take(40).collect();
                problems.push(VarProblem::Unterminated(shown));
                rest = "";
                break;
            };
            let name = &body[..end];
            if !valid_name(name) {
                problems.push(VarProblem::BadName(name.to_string()));
            } else {
                match lookup(name) {
                    Some(value) if value.is_empty() => problems.push(VarProblem::Empty(name.to_string())),
                    Some(value) => out.push_str(&value),
                    None => problems.push(VarProblem::Unset(name.to_string())),
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads from the process environment (an empty value is returned as it is, and refused by
/// [`interpolate`] as empty).
pub fn from_process(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BUCKET" => Some("acme-exports".into()),
            "SECRET" => Some("hunter2".into()),
            "BLANK" => Some(String::new()),
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
    }

    #[test]
    fn refuses_what_it_cannot_substitute() {
        assert_eq!(
            interpolate("out/${ZUORA_DIR", env).unwrap_err(),
            [VarProblem::Unterminated("${ZUORA_DIR".into())]
        );
        assert_eq!(
            interpolate("${BLANK}", env).unwrap_err(),
            [VarProblem::Empty("BLANK".into())]
        );
        assert_eq!(
            interpolate("${}/${1X}/${A B}", env).unwrap_err(),
            [
                VarProblem::BadName(String::new()),
                VarProblem::BadName("1X".into()),
                VarProblem::BadName("A B".into())
            ]
        );
        assert_eq!(
            VarProblem::Empty("X".into()).to_string(),
            "environment variable `X` is empty"
        );
    }

    #[test]
    fn names_every_missing_variable_and_no_value() {
        let err = interpolate("${SECRET}/${NOPE}/${ALSO_NOPE}", env).unwrap_err();
        assert_eq!(
            err,
            [VarProblem::Unset("NOPE".into()), VarProblem::Unset("ALSO_NOPE".into())]
        );
    }
}
