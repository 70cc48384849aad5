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

/// The reason given for a URL with a `user@` or `user:password@` part. The URL itself is never repeated.
pub(crate) const URL_CREDENTIALS: &str =
    "the URL contains credentials (user:password@); pass them as a sensitive parameter instead";

/// Checks an `http://` or `https://` URL with a host, an optional numeric port and no credentials
/// (`user@` or `user:password@`): a URL parameter is not sensitive, so it must not carry a secret.
pub(crate) fn check_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| "expected an http:// or https:// URL".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(URL_CREDENTIALS.to_owned());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains whitespace".to_owned());
    }
    // `[::1]:8080`, `host:8080` or `host`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':').unwrap_or(after)),
            None => return Err("the URL has an unclosed `[` in its host".to_owned()),
        },
        None => authority.rsplit_once(':').unwrap_or((authority, "")),
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if !port.chars().all(|c| c.is_ascii_digit()) || port.len() > 5 {
        return Err("the URL's port is not a number".to_owned());
    }
    Ok(())
}

/// Whether an unknown parameter name looks like a typo of `candidate`: the same name in another case, or an
/// edit distance of at most 2 that leaves at least one character of the shorter name in place. Returns the
/// distance (0 for a case-only difference).
fn typo_distance(written: &str, candidate: &str) -> Option<usize> {
    if written.eq_ignore_ascii_case(candidate) {
        return Some(0);
    }
    let distance = edit_distance(written, candidate);
    let shorter = written.chars().count().min(candidate.chars().count());
    (distance <= 2 && distance < shorter).then_some(distance)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// Pairs unknown parameter names with missing required ones they look like typos of, closest pairs first;
/// each name is used at most once. Returns (unknown, required) pairs.
fn pair_typos<'a>(unknown: &[&'a str], missing: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for (u, written) in unknown.iter().enumerate() {
        for (m, required) in missing.iter().enumerate() {
            if let Some(distance) = typo_distance(written, required) {
                candidates.push((distance, u, m));
            }
        }
    }
    candidates.sort_unstable();
    let (mut used_unknown, mut used_missing) = (vec![false; unknown.len()], vec![false; missing.len()]);
    let mut pairs = Vec::new();
    for (_, u, m) in candidates {
        if !used_unknown[u] && !used_missing[m] {
            used_unknown[u] = true;
            used_missing[m] = true;
            pairs.push((unknown[u], missing[m]));
        }
    }
    pairs
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

    // A name that is unknown while a required one is missing is usually a typo of it: one error, with a
    // suggestion, rather than "unknown `rat`" plus "requires `rate`".
    let unknown: Vec<&str> =
        given.keys().map(String::as_str).filter(|name| !specs.iter().any(|s| s.name == *name)).collect();
    let missing: Vec<&str> = specs
        .iter()
        .filter(|s| matches!(s.requirement, Requirement::Required) && !given.contains_key(s.name))
        .map(|s| s.name)
        .collect();
    let typos = pair_typos(&unknown, &missing);

    for name in &unknown {
        let suggestion = typos.iter().find(|(u, _)| u == name).map(|(_, m)| (*m).to_owned());
        problems.push(problem(
            name,
            given.get(*name).map(Spanned::span),
            ConfigErrorKind::UnknownParam {
                adapter: adapter.to_owned(),
                param: (*name).to_owned(),
                known: specs.iter().map(|s| s.name.to_owned()).collect(),
                suggestion,
            },
        ));
    }

    for spec in &specs {
        match given.get(spec.name) {
            Some(value) => match check_value(spec, value, secrets) {
                Ok(v) => params.insert(spec.name, v),
                Err(kind) => problems.push(problem(spec.name, Some(value.span()), kind)),
            },
            None => match &spec.requirement {
                // Reported as the typo that was written instead.
                Requirement::Required if typos.iter().any(|(_, m)| *m == spec.name) => {}
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
            Money::parse(t).map(ParamValue::Money).map_err(|e| invalid_value(spec, t, e.to_string()))
        }
        (ParamType::Url, Given::Text(t)) => {
            check_url(t).map(|()| ParamValue::Text((*t).to_owned())).map_err(|reason| invalid_value(spec, t, reason))
        }
        (ParamType::Integer | ParamType::Bool | ParamType::Money | ParamType::Url, _) => Err(wrong(&given)),
        // Strings and types this crate does not know yet take text.
        (_, Given::Text(t)) => Ok(ParamValue::Text((*t).to_owned())),
        _ => Err(wrong(&given)),
    }
}

/// [`ConfigErrorKind::InvalidValue`] for a parameter, repeating the value only when that is safe: never for a
/// sensitive parameter, nor for a value with an `@` (a URL whose `user:password@` part may hold a credential).
fn invalid_value(spec: &ParamSpec, value: &str, reason: String) -> ConfigErrorKind {
    let safe = !spec.sensitive && !value.contains('@');
    ConfigErrorKind::InvalidValue {
        what: format!("parameter `{}`", spec.name),
        value: safe.then(|| value.to_owned()),
        reason,
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
        assert!(check_url("http://[::1]:8080/v1").is_ok());
        assert!(check_url("https://api.example.com/users/@me?x=a@b#c@d").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("https:///path").is_err());
        assert!(check_url("https://a b").is_err());
        assert!(check_url("api.example.com").is_err());
        assert!(check_url("https://:443").is_err());
        assert!(check_url("https://host:https").is_err());
        assert!(check_url("http://[::1").is_err());
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        for url in [
            "https://user:sk_live_1@api.example.com",
            "https://user@api.example.com/v1",
            "http://:pw@host",
            "https://@host",
        ] {
            assert_eq!(check_url(url), Err(URL_CREDENTIALS.to_owned()), "{url}");
        }
        // A password holding a `/` does not pass for a host either.
        assert!(check_url("https://user:p/ss@host").is_err());
    }

    #[test]
    fn typos_are_close_names_or_case_variants() {
        assert_eq!(edit_distance("rat", "rate"), 1);
        assert_eq!(edit_distance("raet", "rate"), 1);
        assert_eq!(edit_distance("api_ky", "api_key"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(typo_distance("API_KEY", "api_key"), Some(0));
        assert_eq!(typo_distance("rat", "rate"), Some(1));
        assert_eq!(typo_distance("colour", "rate"), None);
        // Replacing every character of a short name is not a typo.
        assert_eq!(typo_distance("ab", "cd"), None);
        assert_eq!(typo_distance("x", "id"), None);
    }

    #[test]
    fn each_name_is_paired_once_closest_first() {
        assert_eq!(pair_typos(&["rat"], &["rate"]), [("rat", "rate")]);
        assert_eq!(pair_typos(&["colour"], &["rate"]), []);
        // `rate` goes to the exact case variant; `rat` then has nothing left.
        assert_eq!(pair_typos(&["RATE", "rat"], &["rate"]), [("RATE", "rate")]);
        assert_eq!(pair_typos(&["keyy", "secrt"], &["secret", "key"]), [("keyy", "key"), ("secrt", "secret")]);
    }
}
