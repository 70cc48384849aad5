//! Errors of the facade: [`ConfigError`]s found while reading and wiring a configuration, and
//! [`WiringError`]s when a host asks [`Integrations`](crate::Integrations) for a binding that does not exist.
//!
//! Every message names what was wrong (file, line, binding, key, value) and never a secret value.

use std::fmt;

use commerce_ports::factory::{BuildError, PortKind};
use commerce_ports::{ChannelId, IdError, RegisterId, TenantId, TenderKind};

/// Joins displayable items with `, `, or says `none` when there are none.
pub(crate) fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn known_adapters(known: &[String]) -> String {
    if known.is_empty() { "none registered".to_owned() } else { known.join(", ") }
}

fn first_line(first: &Option<u32>) -> String {
    first.map(|l| format!(" (first at line {l})")).unwrap_or_default()
}

/// What is wrong with a configuration. Each variant names the key, value or binding at fault; none carries
/// a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read the configuration: {message}")]
    Io {
        /// What the operating system said.
        message: String,
    },
    /// The text is not valid TOML, or a value has the wrong TOML type for its key.
    #[error("{message}")]
    Syntax {
        /// The TOML parser's message.
        message: String,
    },
    /// A key that the schema does not know.
    #[error("unknown key `{key}`; expected {}", if expected.is_empty() { "no keys here".to_owned() } else { format!("one of: {}", expected.join(", ")) })]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The keys allowed at this place.
        expected: Vec<String>,
    },
    /// A key the schema requires is missing.
    #[error("missing key `{key}`")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// No factory of this name is registered for the port.
    #[error("unknown adapter `{name}` for {port}; known: {}", known_adapters(known))]
    UnknownAdapter {
        /// The port the binding needs.
        port: PortKind,
        /// The name as written.
        name: String,
        /// The adapters registered for the port, sorted.
        known: Vec<String>,
    },
    /// A required parameter is missing.
    #[error("adapter `{adapter}` requires parameter `{param}` ({description}){}", if *sensitive { format!("; reference a secret: {param} = {{ secret = \"<name>\" }}") } else { String::new() })]
    MissingParam {
        /// The adapter.
        adapter: String,
        /// The parameter.
        param: String,
        /// The parameter's description.
        description: String,
        /// Whether it must reference a secret.
        sensitive: bool,
    },
    /// A parameter the adapter does not declare. When it looks like a typo of a required parameter that is
    /// missing (another case, or at most two edits away), this one error stands for both mistakes and
    /// `suggestion` names the required parameter.
    #[error("unknown parameter `{param}` for adapter `{adapter}`; {}", match suggestion {
        Some(name) => format!("did you mean `{name}`?"),
        None => format!("known: {}", list(known)),
    })]
    UnknownParam {
        /// The adapter.
        adapter: String,
        /// The parameter as written.
        param: String,
        /// The parameters the adapter declares.
        known: Vec<String>,
        /// The missing required parameter this one is probably a typo of.
        suggestion: Option<String>,
    },
    /// A parameter value of the wrong type.
    #[error("parameter `{param}` must be {expected}, found {found}")]
    WrongParamType {
        /// The parameter.
        param: String,
        /// The declared type.
        expected: String,
        /// What was written (a type name, never a value).
        found: String,
    },
    /// An inline table that is not `{ secret = "name" }`.
    #[error("parameter `{param}`: {reason}")]
    InvalidSecretRef {
        /// The parameter.
        param: String,
        /// What is wrong (key names only, never values).
        reason: String,
    },
    /// A sensitive parameter written as a literal value. The value is deliberately not kept.
    #[error(
        "parameter `{param}` is sensitive and must reference a secret, not a literal value (the value is not \
         repeated here): write `{param} = {{ secret = \"<name>\" }}` and put the value in a secret source"
    )]
    SecretLiteral {
        /// The parameter.
        param: String,
    },
    /// The secret source does not have the referenced secret.
    #[error("secret `{name}` (parameter `{param}`) was not found in the secret source")]
    MissingSecret {
        /// The parameter referencing it.
        param: String,
        /// The secret's name (never its value).
        name: String,
    },
    /// A secret name outside `[A-Za-z0-9_.-]`, empty, too long or starting with a dot.
    #[error("invalid secret name `{name}` (parameter `{param}`): {reason}")]
    InvalidSecretName {
        /// The parameter referencing it.
        param: String,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The secret source failed (an unreadable file, a value that is not UTF-8).
    #[error("secret `{name}` (parameter `{param}`) could not be read: {message}")]
    SecretUnavailable {
        /// The parameter referencing it.
        param: String,
        /// The secret's name.
        name: String,
        /// The source's message (never the value).
        message: String,
    },
    /// A tender kind bound to two gateways in one channel.
    #[error("tender `{tender}` is bound twice in this channel{}", first_line(first))]
    TenderBoundTwice {
        /// The tender.
        tender: TenderKind,
        /// Line of the first binding.
        first: Option<u32>,
    },
    /// A tender name that is not a [`TenderKind`].
    #[error("unknown tender `{value}`; known: {}", known.join(", "))]
    UnknownTender {
        /// The value as written.
        value: String,
        /// The tender names.
        known: Vec<String>,
    },
    /// Two tenants with one id.
    #[error("tenant `{id}` is declared twice{}", first_line(first))]
    DuplicateTenant {
        /// The id.
        id: String,
        /// Line of the first declaration.
        first: Option<u32>,
    },
    /// Two channels with one id in a tenant.
    #[error("channel `{id}` is declared twice in this tenant{}", first_line(first))]
    DuplicateChannel {
        /// The id.
        id: String,
        /// Line of the first declaration.
        first: Option<u32>,
    },
    /// Two registers with one id in a channel.
    #[error("register `{id}` is declared twice in this channel{}", first_line(first))]
    DuplicateRegister {
        /// The id.
        id: String,
        /// Line of the first declaration.
        first: Option<u32>,
    },
    /// Two carriers with one name in a channel.
    #[error("carrier `{name}` is declared twice in this channel{}", first_line(first))]
    DuplicateCarrier {
        /// The name.
        name: String,
        /// Line of the first declaration.
        first: Option<u32>,
    },
    /// Two replication bindings of one dataset in a channel.
    #[error("dataset `{dataset}` is replicated twice in this channel{}", first_line(first))]
    DuplicateDataset {
        /// The dataset.
        dataset: String,
        /// Line of the first declaration.
        first: Option<u32>,
    },
    /// Two webhook verifiers of one adapter in a tenant.
    #[error("webhook adapter `{adapter}` is bound twice in this tenant{}", first_line(first))]
    DuplicateWebhook {
        /// The adapter.
        adapter: String,
        /// Line of the first binding.
        first: Option<u32>,
    },
    /// An identifier that is empty, too long or has a character outside its alphabet.
    #[error("{0}")]
    InvalidId(IdError),
    /// A value outside its domain (a currency, a money or URL parameter, an interval, a kind, a direction).
    #[error("invalid {what}{}: {reason}", value.as_ref().map(|v| format!(" `{v}`")).unwrap_or_default())]
    InvalidValue {
        /// What the value is for (`currency`, ``parameter `base_url` ``, ...).
        what: String,
        /// The value as written; `None` when it must not be repeated (a sensitive parameter, a URL that may
        /// hold credentials).
        value: Option<String>,
        /// What is expected.
        reason: String,
    },
    /// Something the schema forbids in this place (a register in an online channel, ...).
    #[error("{message}")]
    NotAllowed {
        /// What is not allowed and why.
        message: String,
    },
    /// The configuration declares no tenant.
    #[error("no tenant is configured; add at least one [[tenant]] with an `id`")]
    NoTenants,
    /// The factory refused to build the adapter.
    #[error("adapter `{adapter}` could not be built: {error}")]
    BuildFailed {
        /// The adapter.
        adapter: String,
        /// The factory's error, naming the parameter at fault.
        error: BuildError,
    },
}

/// One mistake in a configuration, located as precisely as the facade can.
///
/// Displayed as `file:line:column: binding: key: message`, each part present when known, e.g.
/// ``commerce.toml:14:1: tenant `acme` / channel `shop` / register `till-1`: id: register `till-1` is declared
/// twice in this channel (first at line 10)``. The key is left out when the message already names it
/// (``... / payment `card`: parameter `api_key` is sensitive ...`` rather than ``params.api_key: parameter
/// `api_key` ...``), so that no line says it twice.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file name given to [`Config::parse`](crate::Config::parse).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column (in characters), when known.
    pub column: Option<u32>,
    /// The binding, e.g. ``tenant `acme` / channel `web` / payment `card` ``.
    pub binding: Option<String>,
    /// The key inside the binding, e.g. `params.api_key`. [`Display`](fmt::Display) shows it unless the
    /// message already names it.
    pub key: Option<String>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error about a whole file.
    pub fn new(file: impl Into<String>, kind: ConfigErrorKind) -> ConfigError {
        ConfigError { file: file.into(), line: None, column: None, binding: None, key: None, kind }
    }

    /// Sets the position.
    pub fn at(mut self, line: Option<u32>, column: Option<u32>) -> ConfigError {
        self.line = line;
        self.column = column;
        self
    }

    /// Sets the binding.
    pub fn in_binding(mut self, binding: impl Into<String>) -> ConfigError {
        self.binding = Some(binding.into());
        self
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<String>) -> ConfigError {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(binding) = &self.binding {
            write!(f, "{binding}: ")?;
        }
        let message = self.kind.to_string();
        if let Some(key) = self.key.as_deref().filter(|key| !names_key(&message, key)) {
            write!(f, "{key}: ")?;
        }
        f.write_str(&message)
    }
}

/// Whether `message` already names `key`: its last dotted segment (`api_key` of `params.api_key`) appears as
/// a whole word.
fn names_key(message: &str, key: &str) -> bool {
    let word = key.rsplit('.').next().unwrap_or(key);
    if word.is_empty() {
        return true;
    }
    let is_word_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-');
    message.match_indices(word).any(|(start, _)| {
        let before = message[..start].chars().next_back();
        let after = message[start + word.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

impl std::error::Error for ConfigError {}

/// Every mistake found in a configuration, in file order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A host asked [`Integrations`](crate::Integrations) for something the configuration does not bind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// No such tenant.
    #[error("unknown tenant `{tenant}`; known: {}", list(known))]
    UnknownTenant {
        /// The tenant asked for.
        tenant: TenantId,
        /// The configured tenants.
        known: Vec<TenantId>,
    },
    /// No such channel in the tenant.
    #[error("unknown channel `{channel}` in tenant `{tenant}`; known: {}", list(known))]
    UnknownChannel {
        /// The tenant.
        tenant: TenantId,
        /// The channel asked for.
        channel: ChannelId,
        /// The tenant's channels.
        known: Vec<ChannelId>,
    },
    /// The channel binds no gateway for the tender.
    #[error("tender `{tender}` is not bound in tenant `{tenant}` / channel `{channel}`; bound: {}", list(bound))]
    TenderNotBound {
        /// The tenant.
        tenant: TenantId,
        /// The channel.
        channel: ChannelId,
        /// The tender asked for.
        tender: TenderKind,
        /// The tenders the channel binds.
        bound: Vec<TenderKind>,
    },
    /// No such register in the channel.
    #[error("unknown register `{register}` in tenant `{tenant}` / channel `{channel}`; known: {}", list(known))]
    UnknownRegister {
        /// The tenant.
        tenant: TenantId,
        /// The channel.
        channel: ChannelId,
        /// The register asked for.
        register: RegisterId,
        /// The channel's registers.
        known: Vec<RegisterId>,
    },
    /// No carrier of this name in the channel.
    #[error("unknown carrier `{carrier}` in tenant `{tenant}` / channel `{channel}`; known: {}", list(known))]
    UnknownCarrier {
        /// The tenant.
        tenant: TenantId,
        /// The channel.
        channel: ChannelId,
        /// The carrier asked for.
        carrier: String,
        /// The channel's carriers.
        known: Vec<String>,
    },
    /// The configuration binds nothing for this role.
    #[error("nothing is bound for {what}")]
    NotBound {
        /// The binding path, e.g. ``tenant `acme` / channel `web` / tax``.
        what: String,
    },
    /// No binding has this path (see [`Integrations::bindings`](crate::Integrations::bindings)).
    #[error("unknown binding `{path}`")]
    UnknownBinding {
        /// The path asked for.
        path: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_named_as_a_whole_word_only() {
        assert!(names_key("parameter `api_key` is sensitive", "params.api_key"));
        assert!(names_key("unknown adapter `strpe`", "adapter"));
        assert!(!names_key("parameter `api_key_2` is sensitive", "params.api_key"));
        assert!(!names_key("registers are only allowed", "register"));
        assert!(!names_key("channel `web` is declared twice", "id"));
    }

    #[test]
    fn the_key_is_shown_unless_the_message_names_it() {
        let duplicate = ConfigErrorKind::DuplicateChannel { id: "web".into(), first: Some(3) };
        let e = ConfigError::new("c.toml", duplicate).at(Some(9), Some(6)).in_binding("tenant `a`").with_key("id");
        assert_eq!(
            e.to_string(),
            "c.toml:9:6: tenant `a`: id: channel `web` is declared twice in this tenant (first at line 3)"
        );
        let literal = ConfigErrorKind::SecretLiteral { param: "api_key".into() };
        let e = ConfigError::new("c.toml", literal).with_key("params.api_key");
        assert!(e.to_string().starts_with("c.toml: parameter `api_key` is sensitive"), "{e}");
    }
}
