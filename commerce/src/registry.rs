//! The registry of adapter factories the wiring may use, keyed by port kind and adapter name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use commerce_ports::factory::{AdapterFactory, ParamSpec, ParamType, ParamValue, PortKind, Requirement};

/// Why a factory could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A factory with this port kind and name is already registered.
    #[error("an adapter `{name}` for {port} is already registered")]
    Duplicate {
        /// The port kind.
        port: PortKind,
        /// The adapter name.
        name: &'static str,
    },
}

/// The adapter factories known to the wiring, keyed by (port kind, adapter name).
///
/// A name may exist for several ports (`memory` is a payment gateway, a tax calculator, a store, ...), but only
/// once per port. Cloning is cheap (the factories are shared).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    factories: BTreeMap<(PortKind, &'static str), Arc<dyn AdapterFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The factories of the adapter features enabled on this crate.
    ///
    /// Each adapter feature (`stripe`, `sqlite`, ...) adds its factories here as adapter crates join the
    /// workspace. Today no adapter feature exists, so this equals [`Registry::new`]; hosts
    /// [`register`](Registry::register) their own factories (and the testkit's fakes) on top.
    pub fn with_defaults() -> Registry {
        Registry::new()
    }

    /// Adds a factory.
    ///
    /// # Errors
    /// [`RegistryError::Duplicate`] when a factory of the same port and name is registered; the registry is
    /// left unchanged.
    pub fn register(&mut self, factory: Arc<dyn AdapterFactory>) -> Result<(), RegistryError> {
        let key = (factory.port(), factory.name());
        if self.factories.contains_key(&key) {
            return Err(RegistryError::Duplicate { port: key.0, name: key.1 });
        }
        self.factories.insert(key, factory);
        Ok(())
    }

    /// Adds several factories, all or none.
    ///
    /// # Errors
    /// [`RegistryError::Duplicate`] for the first factory whose port and name is already registered or appears
    /// twice in `factories`; then none is added.
    pub fn register_all(
        &mut self,
        factories: impl IntoIterator<Item = Arc<dyn AdapterFactory>>,
    ) -> Result<(), RegistryError> {
        let mut batch = BTreeMap::new();
        for factory in factories {
            let key = (factory.port(), factory.name());
            if self.factories.contains_key(&key) || batch.contains_key(&key) {
                return Err(RegistryError::Duplicate { port: key.0, name: key.1 });
            }
            batch.insert(key, factory);
        }
        self.factories.extend(batch);
        Ok(())
    }

    /// Builder form of [`register`](Registry::register).
    ///
    /// # Errors
    /// As [`register`](Registry::register).
    pub fn with(mut self, factory: Arc<dyn AdapterFactory>) -> Result<Registry, RegistryError> {
        self.register(factory)?;
        Ok(self)
    }

    /// The factory of `name` for `port`.
    pub fn get(&self, port: PortKind, name: &str) -> Option<Arc<dyn AdapterFactory>> {
        self.factories.iter().find(|((p, n), _)| *p == port && *n == name).map(|(_, f)| Arc::clone(f))
    }

    /// The adapter names registered for `port`, sorted.
    pub fn names(&self, port: PortKind) -> Vec<&'static str> {
        self.factories.keys().filter(|(p, _)| *p == port).map(|(_, n)| *n).collect()
    }

    /// Every factory called `name`, whatever its port, ordered by port kind.
    pub fn by_name(&self, name: &str) -> Vec<Arc<dyn AdapterFactory>> {
        self.factories.iter().filter(|((_, n), _)| *n == name).map(|(_, f)| Arc::clone(f)).collect()
    }

    /// Every factory, ordered by port kind then name.
    pub fn factories(&self) -> impl Iterator<Item = &Arc<dyn AdapterFactory>> {
        self.factories.values()
    }

    /// The number of factories.
    pub fn len(&self) -> usize {
        self.factories.len()
    }

    /// True when no factory is registered.
    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }

    /// [`param_template`] of the factory of `name` for `port`.
    pub fn template(&self, port: PortKind, name: &str) -> Option<String> {
        self.get(port, name).map(|f| param_template(f.as_ref()))
    }
}

/// Where a binding of `port` goes in the configuration file.
pub(crate) fn table_of(port: PortKind) -> &'static str {
    match port {
        PortKind::PaymentGateway => "[[tenant.channel.payment]] (with `tender = \"...\"`)",
        PortKind::WebhookVerifier => "[[tenant.webhook]]",
        PortKind::TaxCalculator => "[tenant.channel.tax]",
        PortKind::ShippingCarrier => "[[tenant.channel.carrier]] (with `name = \"...\"`)",
        PortKind::ReceiptPrinter => "`printer` of a [[tenant.channel.register]]",
        PortKind::CashDrawer => "`drawer` of a [[tenant.channel.register]]",
        PortKind::PaymentTerminal => "`terminal` of a [[tenant.channel.register]]",
        PortKind::Scanner => "`scanner` of a [[tenant.channel.register]]",
        PortKind::LineDisplay => "`display` of a [[tenant.channel.register]]",
        PortKind::Scale => "`scale` of a [[tenant.channel.register]]",
        PortKind::ReplicationTransport => "[[tenant.channel.replication]] (with `dataset`, `direction`)",
        PortKind::Store => "[store]",
        _ => "a binding the configuration schema does not have yet",
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_value(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(t) => toml_string(t),
        ParamValue::Integer(i) => i.to_string(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Money(m) => toml_string(&m.to_string()),
        // A default is never a secret; should one be, it is shown redacted.
        _ => toml_string(&value.to_string()),
    }
}

fn placeholder(kind: ParamType) -> &'static str {
    match kind {
        ParamType::Integer => "0",
        ParamType::Bool => "false",
        ParamType::Money => "\"0.00 EUR\"",
        ParamType::Url => "\"https://example.invalid\"",
        _ => "\"\"",
    }
}

/// The secret name suggested for a sensitive parameter: `<adapter>_<param>`, limited to secret-name characters.
fn suggested_secret(adapter: &str, param: &str) -> String {
    format!("{adapter}_{param}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .collect()
}

fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() || text.ends_with(['.', '!', '?']) { text.to_owned() } else { format!("{text}.") }
}

/// A commented TOML snippet telling a host what a binding of this adapter must supply: the `adapter` line
/// and one line per parameter with its description, type, whether it is required, its default, and for a
/// sensitive parameter a `{ secret = "<name>" }` reference (never a value).
///
/// ```
/// # use commerce::registry::param_template;
/// # fn show(factory: &dyn commerce::ports::factory::AdapterFactory) {
/// println!("{}", param_template(factory));
/// # }
/// ```
pub fn param_template(factory: &dyn AdapterFactory) -> String {
    let name = factory.name();
    let port = factory.port();
    let mut out = String::new();
    let _ = writeln!(out, "# adapter `{name}` ({port}): {}", factory.description());
    let _ = writeln!(out, "# goes in {}; the parameters go in its `params` table", table_of(port));
    let _ = writeln!(out, "adapter = {}", toml_string(name));
    let specs: Vec<ParamSpec> = factory.params();
    if specs.is_empty() {
        out.push_str("# (no parameters)\n");
        return out;
    }
    out.push_str("[params]\n");
    for spec in specs {
        let mut doc = format!("# {} Type: {}.", sentence(spec.description), spec.kind.as_str());
        if spec.sensitive {
            doc.push_str(" Sensitive: must reference a secret.");
        }
        let line = match &spec.requirement {
            Requirement::Required => {
                doc.push_str(" Required.");
                if spec.sensitive {
                    format!("{} = {{ secret = {} }}", spec.name, toml_string(&suggested_secret(name, spec.name)))
                } else {
                    format!("{} = {}", spec.name, placeholder(spec.kind))
                }
            }
            Requirement::Default(value) => {
                let value = toml_value(value);
                let _ = write!(doc, " Default: {value}.");
                format!("# {} = {value}", spec.name)
            }
            _ => {
                doc.push_str(" Optional.");
                if spec.sensitive {
                    format!("# {} = {{ secret = {} }}", spec.name, toml_string(&suggested_secret(name, spec.name)))
                } else {
                    format!("# {} = {}", spec.name, placeholder(spec.kind))
                }
            }
        };
        let _ = writeln!(out, "{doc}");
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(suggested_secret("my psp", "api_key"), "my_psp_api_key");
        assert_eq!(sentence("Base URL"), "Base URL.");
        assert_eq!(sentence("Base URL."), "Base URL.");
    }
}
