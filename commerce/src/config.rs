//! The configuration file: a strict serde model of the TOML schema, parsed with positions kept for messages.
//!
//! Parsing checks the shape (known keys, TOML types, required keys). Everything that needs the registry or a
//! secret source (adapters, parameters, secrets) and the cross-checks (duplicates, channel kinds) happen in
//! [`Integrations::build`](crate::Integrations::build) / [`Integrations::validate`](crate::Integrations::validate),
//! which report every mistake at once.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{ConfigError, ConfigErrorKind, ConfigErrors};

/// A parameter table: names to values as written (`"text"`, `42`, `true` or `{ secret = "name" }`).
pub(crate) type RawParams = BTreeMap<String, Spanned<toml::Value>>;

/// An adapter binding without further keys (`[store]`, `[[tenant.webhook]]`, `[tenant.channel.tax]`, devices).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdapterSection {
    pub(crate) adapter: Spanned<String>,
    #[serde(default)]
    pub(crate) params: RawParams,
}

/// The top level of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) store: Option<AdapterSection>,
    #[serde(default)]
    pub(crate) tenant: Vec<Spanned<TenantSection>>,
}

/// `[[tenant]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantSection {
    pub(crate) id: Spanned<String>,
    #[serde(default)]
    pub(crate) webhook: Vec<AdapterSection>,
    #[serde(default)]
    pub(crate) channel: Vec<Spanned<ChannelSection>>,
}

/// `[[tenant.channel]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelSection {
    pub(crate) id: Spanned<String>,
    pub(crate) kind: Spanned<String>,
    pub(crate) currency: Option<Spanned<String>>,
    pub(crate) store: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) payment: Vec<PaymentSection>,
    pub(crate) tax: Option<AdapterSection>,
    #[serde(default)]
    pub(crate) carrier: Vec<CarrierSection>,
    #[serde(default)]
    pub(crate) register: Vec<Spanned<RegisterSection>>,
    #[serde(default)]
    pub(crate) replication: Vec<Spanned<ReplicationSection>>,
}

/// `[[tenant.channel.payment]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentSection {
    pub(crate) tender: Spanned<String>,
    pub(crate) adapter: Spanned<String>,
    #[serde(default)]
    pub(crate) params: RawParams,
}

/// `[[tenant.channel.carrier]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CarrierSection {
    pub(crate) name: Spanned<String>,
    pub(crate) adapter: Spanned<String>,
    #[serde(default)]
    pub(crate) params: RawParams,
}

/// `[[tenant.channel.register]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterSection {
    pub(crate) id: Spanned<String>,
    pub(crate) printer: Option<AdapterSection>,
    pub(crate) drawer: Option<AdapterSection>,
    pub(crate) terminal: Option<AdapterSection>,
    pub(crate) scanner: Option<AdapterSection>,
    pub(crate) display: Option<AdapterSection>,
    pub(crate) scale: Option<AdapterSection>,
}

/// `[[tenant.channel.replication]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplicationSection {
    pub(crate) dataset: Spanned<String>,
    pub(crate) direction: Spanned<String>,
    pub(crate) interval_secs: Option<Spanned<i64>>,
    pub(crate) adapter: Spanned<String>,
    #[serde(default)]
    pub(crate) params: RawParams,
}

/// Byte offsets of line starts, to turn spans into 1-based lines and columns.
#[derive(Debug, Clone)]
struct LineIndex {
    starts: Vec<usize>,
    text: String,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts, text: text.to_owned() }
    }

    /// The table header (`[a.b]` or `[[a.b]]`) on the line of `offset`, if that line is one. Only headers are
    /// quoted in messages: other lines may hold a value that should not be repeated.
    fn header_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied()?;
        let end = self.starts.get(line).copied().unwrap_or(self.text.len());
        let text = self.text.get(start..end)?.trim();
        if !text.starts_with('[') {
            return None;
        }
        let close = text.rfind(']')?;
        let header = text.get(..=close)?;
        header
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '[' | ']' | '.' | '_' | '-' | ' '))
            .then(|| header.to_owned())
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn locate(&self, offset: usize) -> (Option<u32>, Option<u32>) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self.text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (u32::try_from(line).ok(), u32::try_from(column).ok())
    }
}

/// A parsed configuration file, not yet checked against a registry.
///
/// `Debug` shows the file name and tenant ids only: parameter values stay out of it, because a mistaken
/// literal secret may be among them.
#[derive(Clone)]
pub struct Config {
    file: String,
    lines: LineIndex,
    pub(crate) raw: std::sync::Arc<RawConfig>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config").field("file", &self.file).field("tenants", &self.tenant_ids()).finish_non_exhaustive()
    }
}

impl Config {
    /// Parses the text of a configuration file. `file_name` is used in messages only.
    ///
    /// # Errors
    /// [`ConfigErrors`] with one [`ConfigErrorKind::Syntax`], [`UnknownKey`](ConfigErrorKind::UnknownKey) or
    /// [`MissingKey`](ConfigErrorKind::MissingKey) error, located by line and column.
    pub fn parse(text: &str, file_name: impl Into<String>) -> Result<Config, ConfigErrors> {
        let file = file_name.into();
        let lines = LineIndex::new(text);
        match toml::from_str::<RawConfig>(text) {
            Ok(raw) => Ok(Config { file, lines, raw: std::sync::Arc::new(raw) }),
            Err(e) => {
                let (line, column) = e.span().map_or((None, None), |s| lines.locate(s.start));
                let header = e.span().and_then(|s| lines.header_at(s.start));
                let (kind, key) = classify_toml_error(e.message(), header);
                let mut error = ConfigError::new(file, kind).at(line, column);
                error.key = key;
                Err(error.into())
            }
        }
    }

    /// Reads and parses a configuration file; messages name it by its path.
    ///
    /// # Errors
    /// [`ConfigErrorKind::Io`] when it cannot be read, else as [`Config::parse`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(file.clone(), ConfigErrorKind::Io { message: e.to_string() }))?;
        Config::parse(&text, file)
    }

    /// The file name used in messages.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// The tenant ids as written, in file order (not yet validated).
    pub fn tenant_ids(&self) -> Vec<&str> {
        self.raw.tenant.iter().map(|t| t.get_ref().id.get_ref().as_str()).collect()
    }

    /// An error of `kind` located at the start of `span`.
    pub(crate) fn error_at(&self, span: &Range<usize>, kind: ConfigErrorKind) -> ConfigError {
        let (line, column) = self.lines.locate(span.start);
        ConfigError::new(self.file.clone(), kind).at(line, column)
    }

    /// The 1-based line of a span's start.
    pub(crate) fn line_of(&self, span: &Range<usize>) -> Option<u32> {
        self.lines.locate(span.start).0
    }
}

/// The backquoted words of a serde message, in order.
fn backquoted(message: &str) -> Vec<String> {
    message.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Removes a quoted string value from a serde message (`invalid type: string "...", expected ...`): the value
/// could be a secret written in the wrong place.
fn redact_string_values(message: &str) -> String {
    const MARK: &str = "string \"";
    let Some(start) = message.find(MARK) else {
        return message.to_owned();
    };
    let after = start + MARK.len();
    match message[after..].rfind("\", expected").or_else(|| message[after..].rfind('"')) {
        Some(end) => format!("{}string{}", &message[..start], &message[after + end + 1..]),
        None => format!("{}string", &message[..start]),
    }
}

/// Turns a TOML/serde message into a precise kind and, where there is one, the key at fault. `header` is the
/// table header on the error's line, if it is one.
fn classify_toml_error(message: &str, header: Option<String>) -> (ConfigErrorKind, Option<String>) {
    let message = message.trim();
    if message.starts_with("unknown field `") {
        let mut words = backquoted(message).into_iter();
        if let Some(key) = words.next() {
            let expected = words.collect();
            return (ConfigErrorKind::UnknownKey { key: key.clone(), expected }, Some(key));
        }
    }
    if message.starts_with("missing field `")
        && let Some(key) = backquoted(message).into_iter().next()
    {
        return (ConfigErrorKind::MissingKey { key: key.clone() }, Some(key));
    }
    let mut message = redact_string_values(message);
    if let Some(header) = header {
        let name = header.trim_matches(['[', ']', ' ']);
        message.push_str(&format!(" (at `{header}`)"));
        if message.starts_with("invalid type: map, expected a sequence") {
            message.push_str(&format!("; `{name}` is a list of tables: write `[[{name}]]`"));
        } else if message.starts_with("invalid type: sequence, expected") {
            message.push_str(&format!("; `{name}` is a single table: write `[{name}]`"));
        }
    }
    (ConfigErrorKind::Syntax { message }, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let index = LineIndex::new("ab\ncd\n\u{e9}x");
        assert_eq!(index.locate(0), (Some(1), Some(1)));
        assert_eq!(index.locate(1), (Some(1), Some(2)));
        assert_eq!(index.locate(3), (Some(2), Some(1)));
        assert_eq!(index.locate(8), (Some(3), Some(2)));
        assert_eq!(index.locate(999), (Some(3), Some(3)));
    }

    #[test]
    fn serde_messages_are_classified() {
        let (kind, key) = classify_toml_error("unknown field `adapterr`, expected one of `adapter`, `params`", None);
        assert_eq!(key.as_deref(), Some("adapterr"));
        assert_eq!(
            kind,
            ConfigErrorKind::UnknownKey { key: "adapterr".into(), expected: vec!["adapter".into(), "params".into()] }
        );
        let (kind, _) = classify_toml_error("unknown field `x`, there are no fields", None);
        assert_eq!(kind, ConfigErrorKind::UnknownKey { key: "x".into(), expected: vec![] });
        let (kind, _) = classify_toml_error("missing field `id`", None);
        assert_eq!(kind, ConfigErrorKind::MissingKey { key: "id".into() });
        let (kind, key) = classify_toml_error("invalid type: integer `5`, expected a string", None);
        assert!(matches!(kind, ConfigErrorKind::Syntax { .. }));
        assert_eq!(key, None);
        let (kind, _) =
            classify_toml_error("invalid type: map, expected a sequence", Some("[tenant.channel.payment]".into()));
        assert_eq!(
            kind.to_string(),
            "invalid type: map, expected a sequence (at `[tenant.channel.payment]`); `tenant.channel.payment` is a \
             list of tables: write `[[tenant.channel.payment]]`"
        );
    }

    #[test]
    fn string_values_are_redacted_from_serde_messages() {
        assert_eq!(
            redact_string_values("invalid type: string \"sk_live_1\", expected a map"),
            "invalid type: string, expected a map"
        );
        assert_eq!(
            redact_string_values("invalid type: integer `5`, expected a string"),
            "invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn headers_are_found_on_their_line_only() {
        let index = LineIndex::new("[[tenant]]\nid = \"x\"\n  [tenant.channel.tax] # note\n");
        assert_eq!(index.header_at(3).as_deref(), Some("[[tenant]]"));
        assert_eq!(index.header_at(12), None);
        assert_eq!(index.header_at(25).as_deref(), Some("[tenant.channel.tax]"));
    }
}
