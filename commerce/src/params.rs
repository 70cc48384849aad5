//! Checks a binding's parameters against its factory's [`ParamSpec`]s, fills in defaults and resolves secret
//! references, reporting every mistake.

use std::ops::Range;

use commerce_ports::Money;
use commerce_ports::factory::{AdapterFactory, ParamSpec, ParamType, ParamValue, Params, Requirement};
use toml::Spanned;

use crate::config::RawParams;
use crate::error::ConfigErrorKind;
use crate::secrets::{SecretError, SecretSource, validate_secret_name};

/// A parameter value as written, classified without copying a sensitive value anywhere.
enum Given<'a> {
    Text(&'a str),
    Integer(i64),
    Bool(bool),
    SecretRef(&'a str),
    /// An inline table that is not `{ secret = "name" }`; the reason names keys only.
    BadTable(String),
    /// Another TOML type (its name).
    Other(&'static str),
}

impl Given<'_> {
    fn type_name(&self) -> String {
        match self {
            Given::Text(_) => "a string".to_owned(),
            Given::Integer(_) => "an integer".to_owned(),
            Given::Bool(_) => "a bool".to_owned(),
            Given::SecretRef(_) => "a secret reference".to_owned(),
            Given::BadTable(_) => "an inline table".to_owned(),
            Given::Other(name) => (*name).to_owned(),
        }
    }
}

fn classify(value: &toml::Value) -> Given<'_> {
    match value {
        toml::Value::String(s) => Given::Text(s),
        toml::Value::Integer(i) => Given::Integer(*i),
        toml::Value::Boolean(b) => Given::Bool(*b),
        toml::Value::Float(_) => Given::Other("a float"),
        toml::Value::Datetime(_) => Given::Other("a datetime"),
        toml::Value::Array(_) => Given::Other("an array"),
        toml::Value::Table(table) => {
            let keys: Vec<&str> = table.keys().map(String::as_str).collect();
            match (table.get("secret"), table.len()) {
                (Some(toml::Value::String(name)), 1) => Given::SecretRef(name),
                (Some(_), 1) => {
                    Given::BadTable("the secret name in `{ secret = \"name\" }` must be a string".to_owned())
                }
                _ => Given::BadTable(format!(
                    "an inline table must be exactly `{{ secret = \"name\" }}` (a secret reference); found keys: {}",
                    if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
                )),
            }
        }
    }
}

fn expected_name(kind: ParamType) -> String {
    match kind {
        ParamType::String => "a string".to_owned(),
        ParamType::Integer => "an integer".to_owned(),
        ParamType::Bool => "a bool".to_owned(),
        ParamType::Money => "a money amount string such as \"12.34 EUR\"".to_owned(),
        ParamType::Url => "an http:// or https:// URL string".to_owned(),
        other => format!("a {}", other.as_str()),
    }
}

/// Checks an `http://` or `https://` URL with a host.
pub(crate) fn check_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| "expected an http:// or https:// URL".to_owned())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains whitespace".to_owned());
    }
    Ok(())
}

/// One problem with a parameter: its kind, and where (the value's span, or `None` for the binding's adapter).
pub(crate) struct ParamProblem {
    pub(crate) key: String,
    pub(crate) span: Option<Range<usize>>,
    pub(crate) kind: ConfigErrorKind,
}

/// Checks `given` against the factory's parameters. Returns the resolved [`Params`] (defaults filled in,
/// secrets resolved) or every problem found.
pub(crate) fn resolve_params(
    factory: &dyn AdapterFactory,
    given: &RawParams,
    secrets: &dyn SecretSource,
) -> Result<Params, Vec<ParamProblem>> {
    let specs = factory.params();
    let adapter = factory.name();
    let mut problems = Vec::new();
    let mut params = Params::new();
    let problem =
        |name: &str, span: Option<Range<usize>>, kind| ParamProblem { key: format!("params.{name}"), span, kind };

    for (name, value) in given {
        if !specs.iter().any(|s| s.name == name) {
            problems.push(problem(
                name,
                Some(value.span()),
                ConfigErrorKind::UnknownParam {
                    adapter: adapter.to_owned(),
                    param: name.clone(),
                    known: specs.iter().map(|s| s.name.to_owned()).collect(),
                },
            ));
        }
    }

    for spec in &specs {
        match given.get(spec.name) {
            Some(value) => match check_value(spec, value, secrets) {
                Ok(v) => params.insert(spec.name, v),
                Err(kind) => problems.push(problem(spec.name, Some(value.span()), kind)),
            },
            None => match &spec.requirement {
                Requirement::Required => problems.push(problem(
                    spec.name,
                    None,
                    ConfigErrorKind::MissingParam {
                        adapter: adapter.to_owned(),
                        param: spec.name.to_owned(),
                        description: spec.description.to_owned(),
                        sensitive: spec.sensitive,
                    },
                )),
                Requirement::Default(value) => params.insert(spec.name, value.clone()),
                _ => {}
            },
        }
    }

    if problems.is_empty() {
        Ok(params)
    } else {
        problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        Err(problems)
    }
}

fn check_value(
    spec: &ParamSpec,
    value: &Spanned<toml::Value>,
    secrets: &dyn SecretSource,
) -> Result<ParamValue, ConfigErrorKind> {
    let param = spec.name.to_owned();
    let given = classify(value.get_ref());
    if let Given::BadTable(reason) = given {
        return Err(ConfigErrorKind::InvalidSecretRef { param, reason });
    }
    if spec.sensitive {
        return match given {
            Given::SecretRef(name) => resolve_secret(&param, name, secrets),
            // The literal is dropped here: no error kind can carry it.
            _ => Err(ConfigErrorKind::SecretLiteral { param }),
        };
    }
    let wrong = |given: &Given<'_>| ConfigErrorKind::WrongParamType {
        param: param.clone(),
        expected: expected_name(spec.kind),
        found: given.type_name(),
    };
    match (spec.kind, &given) {
        (ParamType::Integer, Given::Integer(i)) => Ok(ParamValue::Integer(*i)),
        (ParamType::Bool, Given::Bool(b)) => Ok(ParamValue::Bool(*b)),
        (ParamType::Money, Given::Text(t)) => {
            Money::parse(t).map(ParamValue::Money).map_err(|e| ConfigErrorKind::InvalidValue {
                what: format!("parameter `{param}`"),
                value: (*t).to_owned(),
                reason: e.to_string(),
            })
        }
        (ParamType::Url, Given::Text(t)) => {
            check_url(t).map(|()| ParamValue::Text((*t).to_owned())).map_err(|reason| ConfigErrorKind::InvalidValue {
                what: format!("parameter `{param}`"),
                value: (*t).to_owned(),
                reason,
            })
        }
        (ParamType::Integer | ParamType::Bool | ParamType::Money | ParamType::Url, _) => Err(wrong(&given)),
        // Strings and types this crate does not know yet take text.
        (_, Given::Text(t)) => Ok(ParamValue::Text((*t).to_owned())),
        _ => Err(wrong(&given)),
    }
}

fn resolve_secret(param: &str, name: &str, secrets: &dyn SecretSource) -> Result<ParamValue, ConfigErrorKind> {
    let param = param.to_owned();
    if let Err(SecretError::InvalidName { reason, .. }) = validate_secret_name(name) {
        return Err(ConfigErrorKind::InvalidSecretName { param, name: name.to_owned(), reason });
    }
    match secrets.resolve(name) {
        Ok(Some(secret)) => Ok(ParamValue::Secret(secret)),
        Ok(None) => Err(ConfigErrorKind::MissingSecret { param, name: name.to_owned() }),
        Err(SecretError::InvalidName { reason, .. }) => {
            Err(ConfigErrorKind::InvalidSecretName { param, name: name.to_owned(), reason })
        }
        Err(SecretError::NotUnicode { .. }) => Err(ConfigErrorKind::SecretUnavailable {
            param,
            name: name.to_owned(),
            message: "the value is not valid UTF-8".to_owned(),
        }),
        Err(SecretError::Unreadable { message, .. }) => {
            Err(ConfigErrorKind::SecretUnavailable { param, name: name.to_owned(), message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(check_url("https://api.example.com").is_ok());
        assert!(check_url("http://127.0.0.1:8080/v1").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("https:///path").is_err());
        assert!(check_url("https://a b").is_err());
        assert!(check_url("api.example.com").is_err());
    }
}
