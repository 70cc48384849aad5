//! The registry of adapter factories the wiring may use, keyed by port kind and adapter name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use commerce_ports::TenderKind;
use commerce_ports::factory::{AdapterFactory, ParamSpec, ParamType, ParamValue, PortKind, Requirement};

use crate::wiring::DEFAULT_REPLICATION_INTERVAL;

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

    /// The factories of the adapter features enabled on this crate: `sqlite` and `postgres` (stores),
    /// `stripe` (payment gateway and webhook verifier) and `adyen` (payment gateway, payment terminal and
    /// webhook verifier). Hosts [`register`](Registry::register) their own factories
    /// (and the testkit's fakes) on top.
    pub fn with_defaults() -> Registry {
        #[allow(unused_mut, reason = "without adapter features nothing is registered")]
        let mut registry = Registry::new();
        #[allow(unused_mut, unused_variables, reason = "used only by adapter features")]
        let mut add = |factory: Arc<dyn AdapterFactory>| {
            // Feature factories have distinct (port, name) pairs; a clash would be a bug the tests catch.
            let _ = registry.register(factory);
        };
        #[cfg(feature = "sqlite")]
        add(Arc::new(commerce_sqlite::SqliteStoreFactory::default()));
        #[cfg(feature = "postgres")]
        add(Arc::new(commerce_postgres::PostgresStoreFactory::default()));
        #[cfg(feature = "stripe")]
        add(Arc::new(commerce_stripe::StripeGatewayFactory::default()));
        #[cfg(feature = "stripe")]
        add(Arc::new(commerce_stripe::StripeWebhookFactory::default()));
        #[cfg(feature = "adyen")]
        add(Arc::new(commerce_adyen::AdyenGatewayFactory::default()));
        #[cfg(feature = "adyen")]
        add(Arc::new(commerce_adyen::AdyenTerminalFactory::default()));
        #[cfg(feature = "adyen")]
        add(Arc::new(commerce_adyen::AdyenWebhookFactory::default()));
        registry
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

/// Where a binding of a port goes in the configuration file: what to paste it under, the table header with
/// the binding's own keys (placeholders) before `adapter`, and the path of its `params` table.
struct Placement {
    under: String,
    header: Vec<String>,
    params: String,
}

/// The [`Placement`] of a binding of `port` by adapter `adapter`; `None` for a port the configuration schema
/// cannot bind yet.
fn placement(port: PortKind, adapter: &str) -> Option<Placement> {
    let table = |path: &str, under: &str, keys: &[String]| {
        let mut header = vec![format!("[{path}]")];
        header.extend_from_slice(keys);
        Placement { under: under.to_owned(), header, params: format!("[{path}.params]") }
    };
    let list = |path: &str, under: &str, keys: &[String]| {
        let mut placement = table(path, under, keys);
        placement.header[0] = format!("[[{path}]]");
        placement
    };
    let device = |role: &str| {
        table(
            &format!("tenant.channel.register.{role}"),
            "a [[tenant.channel.register]], after its `id` (one per register)",
            &[],
        )
    };
    let tenders: Vec<&str> = TenderKind::ALL.iter().map(|t| t.as_str()).collect();
    Some(match port {
        PortKind::PaymentGateway => list(
            "tenant.channel.payment",
            &format!("a [[tenant.channel]], one per tender kind ({})", tenders.join(", ")),
            &[format!("tender = {}", toml_string(TenderKind::Card.as_str()))],
        ),
        PortKind::TaxCalculator => table("tenant.channel.tax", "a [[tenant.channel]] (at most one per channel)", &[]),
        PortKind::ShippingCarrier => list(
            "tenant.channel.carrier",
            "a [[tenant.channel]]; `name` is unique in the channel",
            &[format!("name = {}", toml_string(adapter))],
        ),
        PortKind::ReceiptPrinter => device("printer"),
        PortKind::CashDrawer => device("drawer"),
        PortKind::PaymentTerminal => device("terminal"),
        PortKind::Scanner => device("scanner"),
        PortKind::LineDisplay => device("display"),
        PortKind::Scale => device("scale"),
        PortKind::ReplicationTransport => list(
            "tenant.channel.replication",
            "a [[tenant.channel]] of kind \"store\"; each dataset once per channel",
            &[
                "dataset = \"catalog\"".to_owned(),
                "direction = \"down\"                  # down | up | both".to_owned(),
                format!("# interval_secs = {}", DEFAULT_REPLICATION_INTERVAL.as_secs()),
            ],
        ),
        PortKind::WebhookVerifier => list("tenant.webhook", "a [[tenant]] (at most one per adapter)", &[]),
        PortKind::Store => table("store", "nothing: it is a top-level table, once per file", &[]),
        _ => return None,
    })
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

/// A TOML snippet that binds this adapter, to paste into a configuration file as it is: the binding's table
/// with its full path (`[[tenant.channel.payment]]`, `[tenant.channel.tax]`, `[store]`, ...), placeholders for
/// the binding's own keys (`tender`, `name`, `dataset`, ...), the `adapter` line, and its `params` table
/// (`[tenant.channel.payment.params]`, ...) with one commented line per parameter: description, type, whether
/// it is required, its default. Required parameters are written out with a placeholder (a
/// `{ secret = "<adapter>_<param>" }` reference for a sensitive one, never a value); defaulted and optional
/// ones are commented out. For a port the configuration schema cannot bind yet, every line is commented and a
/// comment says so.
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
    let placement = placement(port, name);
    let mut lines = Vec::new();
    let specs: Vec<ParamSpec> = factory.params();
    match &placement {
        Some(placement) => {
            lines.push(format!("# paste under {}", placement.under));
            lines.extend(placement.header.iter().cloned());
        }
        None => lines.push(format!(
            "# the configuration schema cannot bind a {port} yet: a host builds it with the factory and these \
             parameters"
        )),
    }
    lines.push(format!("adapter = {}", toml_string(name)));
    if specs.is_empty() {
        lines.push("# (no parameters)".to_owned());
    } else {
        lines.push(placement.as_ref().map_or_else(|| "[params]".to_owned(), |p| p.params.clone()));
    }
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
        lines.push(doc);
        lines.push(line);
    }
    let mut out = String::new();
    let _ = writeln!(out, "# adapter `{name}` ({port}): {}", factory.description());
    for line in lines {
        if placement.is_none() && !line.starts_with('#') {
            out.push_str("# ");
        }
        out.push_str(&line);
        out.push('\n');
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
