//! Secret sources: where the values behind `{ secret = "name" }` references come from.
//!
//! A configuration file names secrets; it never holds them. The host passes one [`SecretSource`] to
//! [`Integrations::build`](crate::Integrations::build): the environment ([`EnvSecrets`]), a directory of files
//! such as a mounted Kubernetes secret ([`FileSecrets`]), an in-memory map ([`MapSecrets`]), several of them in
//! order ([`ChainSecrets`]) or its own (a vault client).
//!
//! Secret names are 1 to 128 characters of `A-Z a-z 0-9 _ . -` and do not start with a dot, so a name can
//! never leave [`FileSecrets`]' directory. Values never appear in errors or `Debug`.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::io;
use std::path::{Path, PathBuf};

use commerce_ports::Secret;

/// The longest secret name accepted.
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// Why a secret could not be resolved. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The name is not a valid secret name.
    #[error("invalid secret name `{name}`: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value exists but is not valid UTF-8.
    #[error("secret `{name}` is not valid UTF-8")]
    NotUnicode {
        /// The name.
        name: String,
    },
    /// The source failed to read the value (permissions, I/O, a remote vault's error).
    #[error("secret `{name}` could not be read: {message}")]
    Unreadable {
        /// The name.
        name: String,
        /// What failed (never the value).
        message: String,
    },
}

/// Checks a secret name: 1 to [`MAX_SECRET_NAME_LEN`] characters of `A-Z a-z 0-9 _ . -`, not starting with a
/// dot (so `..`, `.hidden` and any path separator are refused).
///
/// # Errors
/// [`SecretError::InvalidName`] naming the name and the rule it breaks.
pub fn validate_secret_name(name: &str) -> Result<(), SecretError> {
    let invalid = |reason: String| SecretError::InvalidName { name: name.to_owned(), reason };
    if name.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    if name.len() > MAX_SECRET_NAME_LEN {
        return Err(invalid(format!(
            "it is {} characters long; at most {MAX_SECRET_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if name.starts_with('.') {
        return Err(invalid("it starts with a dot".to_owned()));
    }
    if let Some((position, c)) =
        name.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(format!(
            "character {c:?} at position {position} is not allowed; allowed: A-Z a-z 0-9 _ . -"
        )));
    }
    Ok(())
}

/// Resolves secrets by name.
///
/// # Contract
/// - `Ok(None)` means the source does not have the secret; `Err` means it could not tell (I/O failure, an
///   invalid name). A chain stops at the first error rather than falling through to a weaker source.
/// - Neither errors nor `Debug` contain a secret value.
pub trait SecretSource: Send + Sync + Debug {
    /// The secret named `name`, if the source has it.
    ///
    /// # Errors
    /// [`SecretError`] for an invalid name or a source that failed.
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError>;
}

impl<T: SecretSource + ?Sized> SecretSource for std::sync::Arc<T> {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        (**self).resolve(name)
    }
}

impl<T: SecretSource + ?Sized> SecretSource for Box<T> {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        (**self).resolve(name)
    }
}

impl<T: SecretSource + ?Sized> SecretSource for &T {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        (**self).resolve(name)
    }
}

/// Secrets from environment variables: `<prefix><NAME>`, the name upper-cased. With the default prefix
/// `COMMERCE_SECRET_`, the secret `stripe_key` is read from `COMMERCE_SECRET_STRIPE_KEY`.
///
/// Names must be lower-case snake (`a-z 0-9 _`): that keeps the mapping one-to-one, so two names in a
/// configuration can never read one variable (were `acme.key`, `acme-key` and `ACME_KEY` accepted, all three
/// would read `COMMERCE_SECRET_ACME_KEY`). Other names are refused with [`SecretError::InvalidName`].
/// [`FileSecrets`] and [`MapSecrets`] take every valid secret name; in a [`ChainSecrets`], a name this source
/// refuses can still come from another source of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSecrets {
    prefix: String,
}

impl EnvSecrets {
    /// The default prefix.
    pub const DEFAULT_PREFIX: &'static str = "COMMERCE_SECRET_";

    /// A source with the default prefix `COMMERCE_SECRET_`.
    pub fn new() -> EnvSecrets {
        EnvSecrets { prefix: Self::DEFAULT_PREFIX.to_owned() }
    }

    /// A source with another prefix.
    ///
    /// The prefix is what confines a configuration to the variables meant for it. With a short or empty
    /// prefix, whoever writes the configuration can read other variables of the process into an adapter
    /// parameter (with an empty prefix, `{ secret = "database_url" }` reads `DATABASE_URL`). Choose a
    /// distinctive prefix unless the configuration is as trusted as the environment.
    pub fn with_prefix(prefix: impl Into<String>) -> EnvSecrets {
        EnvSecrets { prefix: prefix.into() }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The environment variable a secret name maps to.
    ///
    /// # Errors
    /// [`SecretError::InvalidName`] for a name that is not a valid secret name or not lower-case snake
    /// (`a-z 0-9 _`).
    pub fn variable(&self, name: &str) -> Result<String, SecretError> {
        validate_env_name(name)?;
        Ok(format!("{}{}", self.prefix, name.to_ascii_uppercase()))
    }
}

/// Checks a name for [`EnvSecrets`]: a valid secret name of `a-z 0-9 _` only.
fn validate_env_name(name: &str) -> Result<(), SecretError> {
    validate_secret_name(name)?;
    match name.char_indices().find(|(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        None => Ok(()),
        Some((position, c)) => Err(SecretError::InvalidName {
            name: name.to_owned(),
            reason: format!(
                "character {c:?} at position {position} is not allowed in an environment secret name; environment \
                 secret names are lower-case snake (a-z 0-9 _) so that each maps to its own variable \
                 (`acme.key`, `acme-key` and `ACME_KEY` would all read `<PREFIX>ACME_KEY`)"
            ),
        }),
    }
}

impl Default for EnvSecrets {
    fn default() -> EnvSecrets {
        EnvSecrets::new()
    }
}

impl SecretSource for EnvSecrets {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        match std::env::var(self.variable(name)?) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode { name: name.to_owned() }),
        }
    }
}

/// Secrets from files in a directory, one file per secret named like the secret (the layout of a mounted
/// Kubernetes secret or Docker secrets). Trailing line breaks are trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSecrets {
    dir: PathBuf,
}

impl FileSecrets {
    /// A source reading `<dir>/<name>`.
    pub fn new(dir: impl Into<PathBuf>) -> FileSecrets {
        FileSecrets { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl SecretSource for FileSecrets {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        validate_secret_name(name)?;
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUnicode { name: name.to_owned() })?;
                Ok(Some(Secret::new(text.trim_end_matches(['\n', '\r']))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(SecretError::Unreadable { name: name.to_owned(), message: format!("{}: {e}", path.display()) })
            }
        }
    }
}

/// Secrets held in memory, for tests and for hosts that fetch them themselves. `Debug` lists names only.
#[derive(Clone, Default)]
pub struct MapSecrets {
    values: BTreeMap<String, Secret>,
}

impl MapSecrets {
    /// An empty map.
    pub fn new() -> MapSecrets {
        MapSecrets::default()
    }

    /// Sets a secret. A name that [`validate_secret_name`] refuses can be stored but is never resolved.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), Secret::new(value));
    }

    /// Builder form of [`insert`](MapSecrets::insert).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> MapSecrets {
        self.insert(name, value);
        self
    }

    /// The names held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

impl Debug for MapSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSecrets").field("names", &self.values.keys().collect::<Vec<_>>()).finish()
    }
}

impl SecretSource for MapSecrets {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        validate_secret_name(name)?;
        Ok(self.values.get(name).cloned())
    }
}

/// Several sources asked in order; the first that has the secret wins. An error from a source stops the
/// search (a failing vault must not silently fall back to a weaker source), except
/// [`SecretError::InvalidName`]: a source that cannot hold such a name (as [`EnvSecrets`] refuses `acme.key`)
/// cannot have the secret either, so the next sources are asked. The chain returns that error only when every
/// source refused the name; when one could hold it but does not have it, the secret is missing (`Ok(None)`).
#[derive(Debug, Default)]
pub struct ChainSecrets {
    sources: Vec<Box<dyn SecretSource>>,
}

impl ChainSecrets {
    /// An empty chain (it has no secret).
    pub fn new() -> ChainSecrets {
        ChainSecrets::default()
    }

    /// Appends a source, asked after the ones already in the chain.
    pub fn push(&mut self, source: impl SecretSource + 'static) {
        self.sources.push(Box::new(source));
    }

    /// Builder form of [`push`](ChainSecrets::push).
    pub fn with(mut self, source: impl SecretSource + 'static) -> ChainSecrets {
        self.push(source);
        self
    }
}

impl SecretSource for ChainSecrets {
    fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        validate_secret_name(name)?;
        let mut refused = None;
        let mut absent = false;
        for source in &self.sources {
            match source.resolve(name) {
                Ok(Some(secret)) => return Ok(Some(secret)),
                Ok(None) => absent = true,
                Err(e @ SecretError::InvalidName { .. }) => {
                    refused.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match refused {
            Some(e) if !absent => Err(e),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_secret_name("stripe_key").is_ok());
        assert!(validate_secret_name("a.b-c_D9").is_ok());
        for bad in ["", ".hidden", "..", "../etc/passwd", "a/b", "a\\b", "sp ace", "caf\u{e9}"] {
            assert!(matches!(validate_secret_name(bad), Err(SecretError::InvalidName { .. })), "{bad:?}");
        }
        assert!(validate_secret_name(&"k".repeat(MAX_SECRET_NAME_LEN)).is_ok());
        assert!(validate_secret_name(&"k".repeat(MAX_SECRET_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn env_names_are_lower_snake_and_mapped_one_to_one() {
        assert_eq!(EnvSecrets::new().variable("stripe_key").as_deref(), Ok("COMMERCE_SECRET_STRIPE_KEY"));
        assert_eq!(EnvSecrets::new().variable("psp2_key_9").as_deref(), Ok("COMMERCE_SECRET_PSP2_KEY_9"));
        assert_eq!(EnvSecrets::with_prefix("").variable("home").as_deref(), Ok("HOME"));
        for bad in ["acme.key", "acme-key", "ACME_KEY", "Acme_key", "", ".x", "a/b"] {
            assert!(matches!(EnvSecrets::new().variable(bad), Err(SecretError::InvalidName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn map_debug_lists_names_only() {
        let m = MapSecrets::new().with("k", "sk_live_value");
        let debug = format!("{m:?}");
        assert!(debug.contains("\"k\""));
        assert!(!debug.contains("sk_live_value"));
    }
}
