//! The adapter factory contract: how an adapter crate tells the runtime wiring what it is, what parameters
//! it needs and how to build it.
//!
//! An adapter crate exposes one factory per port it implements. The facade's registry holds the factories of
//! enabled features (hosts register their own), validates configuration against [`ParamSpec`]s, resolves
//! secret references and calls [`AdapterFactory::build`].

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::certificate::CertificateIssuer;
use crate::dns::DnsResolver;
use crate::money::Money;
use crate::payment::PaymentGateway;
use crate::peripherals::{CashDrawer, LineDisplay, ReceiptPrinter, Scale, Scanner};
use crate::replication::ReplicationTransport;
use crate::route::RoutePublisher;
use crate::secret::Secret;
use crate::shipping::ShippingCarrier;
use crate::stores::StoreSet;
use crate::tax::TaxCalculator;
use crate::terminal::PaymentTerminal;
use crate::webhook::WebhookVerifier;

/// Which port an adapter implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PortKind {
    /// [`PaymentGateway`].
    PaymentGateway,
    /// [`PaymentTerminal`].
    PaymentTerminal,
    /// [`WebhookVerifier`].
    WebhookVerifier,
    /// [`TaxCalculator`].
    TaxCalculator,
    /// [`ShippingCarrier`].
    ShippingCarrier,
    /// [`ReceiptPrinter`].
    ReceiptPrinter,
    /// [`CashDrawer`].
    CashDrawer,
    /// [`Scanner`].
    Scanner,
    /// [`LineDisplay`].
    LineDisplay,
    /// [`Scale`].
    Scale,
    /// [`ReplicationTransport`].
    ReplicationTransport,
    /// [`DnsResolver`].
    DnsResolver,
    /// [`CertificateIssuer`].
    CertificateIssuer,
    /// [`RoutePublisher`].
    RoutePublisher,
    /// A [`StoreSet`] (every store port of one backend).
    Store,
}

impl PortKind {
    /// Every port kind.
    pub const ALL: [PortKind; 15] = [
        PortKind::PaymentGateway,
        PortKind::PaymentTerminal,
        PortKind::WebhookVerifier,
        PortKind::TaxCalculator,
        PortKind::ShippingCarrier,
        PortKind::ReceiptPrinter,
        PortKind::CashDrawer,
        PortKind::Scanner,
        PortKind::LineDisplay,
        PortKind::Scale,
        PortKind::ReplicationTransport,
        PortKind::DnsResolver,
        PortKind::CertificateIssuer,
        PortKind::RoutePublisher,
        PortKind::Store,
    ];

    /// The kebab-case name (`payment-gateway`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::PaymentGateway => "payment-gateway",
            PortKind::PaymentTerminal => "payment-terminal",
            PortKind::WebhookVerifier => "webhook-verifier",
            PortKind::TaxCalculator => "tax-calculator",
            PortKind::ShippingCarrier => "shipping-carrier",
            PortKind::ReceiptPrinter => "receipt-printer",
            PortKind::CashDrawer => "cash-drawer",
            PortKind::Scanner => "scanner",
            PortKind::LineDisplay => "line-display",
            PortKind::Scale => "scale",
            PortKind::ReplicationTransport => "replication-transport",
            PortKind::DnsResolver => "dns-resolver",
            PortKind::CertificateIssuer => "certificate-issuer",
            PortKind::RoutePublisher => "route-publisher",
            PortKind::Store => "store",
        }
    }

    /// Parses a kebab-case name.
    pub fn parse(name: &str) -> Option<PortKind> {
        PortKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ParamType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// `true` / `false`.
    Bool,
    /// An amount such as `"12.34 EUR"`.
    Money,
    /// An `http://` or `https://` URL.
    Url,
}

impl ParamType {
    /// The name used in messages and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Bool => "bool",
            ParamType::Money => "money",
            ParamType::Url => "url",
        }
    }
}

/// Whether a parameter must be given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// It must be given.
    Required,
    /// It may be omitted; this value is used then.
    Default(ParamValue),
    /// It may be omitted; the adapter copes without it.
    Optional,
}

/// One parameter an adapter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParamSpec {
    /// The name, as written in configuration.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Type of the value.
    pub kind: ParamType,
    /// A sensitive parameter must reference a secret (`{ secret = "name" }`); a literal value is refused.
    pub sensitive: bool,
    /// Required, defaulted or optional.
    pub requirement: Requirement,
}

impl ParamSpec {
    /// A required, non-sensitive parameter.
    pub fn required(name: &'static str, kind: ParamType, description: &'static str) -> ParamSpec {
        ParamSpec { name, description, kind, sensitive: false, requirement: Requirement::Required }
    }

    /// A required parameter that must come from a secret source.
    pub fn secret(name: &'static str, description: &'static str) -> ParamSpec {
        ParamSpec { name, description, kind: ParamType::String, sensitive: true, requirement: Requirement::Required }
    }

    /// A parameter with a default.
    pub fn with_default(
        name: &'static str,
        kind: ParamType,
        default: ParamValue,
        description: &'static str,
    ) -> ParamSpec {
        ParamSpec { name, description, kind, sensitive: false, requirement: Requirement::Default(default) }
    }

    /// Marks the parameter sensitive: it must then reference a secret (`{ secret = "name" }`), whether it is
    /// required, defaulted or optional.
    pub fn sensitive(mut self) -> ParamSpec {
        self.sensitive = true;
        self
    }

    /// An optional parameter.
    pub fn optional(name: &'static str, kind: ParamType, description: &'static str) -> ParamSpec {
        ParamSpec { name, description, kind, sensitive: false, requirement: Requirement::Optional }
    }
}

/// A resolved parameter value.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamValue {
    /// Text (strings and URLs).
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A boolean.
    Bool(bool),
    /// An amount.
    Money(Money),
    /// A secret resolved from a secret source.
    Secret(Secret),
}

impl Debug for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Text(t) => write!(f, "{t:?}"),
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Money(m) => write!(f, "\"{m}\""),
            ParamValue::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Text(t) => f.write_str(t),
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Money(m) => write!(f, "{m}"),
            ParamValue::Secret(s) => write!(f, "{s}"),
        }
    }
}

/// Why an adapter could not be built. The facade adds the file and binding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", param.as_ref().map(|p| format!("parameter `{p}`: ")).unwrap_or_default())]
pub struct BuildError {
    /// The parameter at fault, if one is.
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl BuildError {
    /// An error about one parameter.
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> BuildError {
        BuildError { param: Some(param.into()), message: message.into() }
    }

    /// An error about the adapter as a whole.
    pub fn other(message: impl Into<String>) -> BuildError {
        BuildError { param: None, message: message.into() }
    }
}

/// Validated, resolved parameters handed to [`AdapterFactory::build`]. Defaults are filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, ParamValue>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Params {
        Params::default()
    }

    /// Sets a value.
    pub fn insert(&mut self, name: impl Into<String>, value: ParamValue) {
        self.values.insert(name.into(), value);
    }

    /// Builder form of [`insert`](Params::insert).
    pub fn with(mut self, name: impl Into<String>, value: ParamValue) -> Params {
        self.insert(name, value);
        self
    }

    /// The raw value.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    /// Names and values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn wrong(name: &str, expected: &str) -> BuildError {
        BuildError::param(name, format!("expected a {expected} value"))
    }

    /// A text value, if given.
    ///
    /// # Errors
    /// [`BuildError`] when the value is not text.
    pub fn text(&self, name: &str) -> Result<Option<&str>, BuildError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(ParamValue::Text(t)) => Ok(Some(t)),
            Some(_) => Err(Self::wrong(name, "string")),
        }
    }

    /// A required text value.
    ///
    /// # Errors
    /// [`BuildError`] when missing or not text.
    pub fn require_text(&self, name: &str) -> Result<&str, BuildError> {
        self.text(name)?.ok_or_else(|| BuildError::param(name, "is required"))
    }

    /// An integer value, if given.
    ///
    /// # Errors
    /// [`BuildError`] when the value is not an integer.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, BuildError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(ParamValue::Integer(i)) => Ok(Some(*i)),
            Some(_) => Err(Self::wrong(name, "integer")),
        }
    }

    /// A boolean value, if given.
    ///
    /// # Errors
    /// [`BuildError`] when the value is not a boolean.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, BuildError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(ParamValue::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::wrong(name, "bool")),
        }
    }

    /// A money value, if given.
    ///
    /// # Errors
    /// [`BuildError`] when the value is not money.
    pub fn money(&self, name: &str) -> Result<Option<Money>, BuildError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(ParamValue::Money(m)) => Ok(Some(*m)),
            Some(_) => Err(Self::wrong(name, "money")),
        }
    }

    /// A required secret.
    ///
    /// # Errors
    /// [`BuildError`] when missing or not a secret.
    pub fn secret(&self, name: &str) -> Result<&Secret, BuildError> {
        match self.values.get(name) {
            Some(ParamValue::Secret(s)) => Ok(s),
            Some(_) => Err(Self::wrong(name, "secret")),
            None => Err(BuildError::param(name, "is required")),
        }
    }
}

/// A built adapter, tagged with the port it implements.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Adapter {
    /// A payment gateway.
    PaymentGateway(Arc<dyn PaymentGateway>),
    /// A payment terminal.
    PaymentTerminal(Arc<dyn PaymentTerminal>),
    /// A webhook verifier.
    WebhookVerifier(Arc<dyn WebhookVerifier>),
    /// A tax calculator.
    TaxCalculator(Arc<dyn TaxCalculator>),
    /// A shipping carrier.
    ShippingCarrier(Arc<dyn ShippingCarrier>),
    /// A receipt printer.
    ReceiptPrinter(Arc<dyn ReceiptPrinter>),
    /// A cash drawer.
    CashDrawer(Arc<dyn CashDrawer>),
    /// A scanner.
    Scanner(Arc<dyn Scanner>),
    /// A line display.
    LineDisplay(Arc<dyn LineDisplay>),
    /// A scale.
    Scale(Arc<dyn Scale>),
    /// A replication transport.
    ReplicationTransport(Arc<dyn ReplicationTransport>),
    /// A DNS resolver.
    DnsResolver(Arc<dyn DnsResolver>),
    /// A certificate issuer.
    CertificateIssuer(Arc<dyn CertificateIssuer>),
    /// A route publisher.
    RoutePublisher(Arc<dyn RoutePublisher>),
    /// A set of stores.
    Store(StoreSet),
}

impl Adapter {
    /// The port this adapter implements.
    pub fn port(&self) -> PortKind {
        match self {
            Adapter::PaymentGateway(_) => PortKind::PaymentGateway,
            Adapter::PaymentTerminal(_) => PortKind::PaymentTerminal,
            Adapter::WebhookVerifier(_) => PortKind::WebhookVerifier,
            Adapter::TaxCalculator(_) => PortKind::TaxCalculator,
            Adapter::ShippingCarrier(_) => PortKind::ShippingCarrier,
            Adapter::ReceiptPrinter(_) => PortKind::ReceiptPrinter,
            Adapter::CashDrawer(_) => PortKind::CashDrawer,
            Adapter::Scanner(_) => PortKind::Scanner,
            Adapter::LineDisplay(_) => PortKind::LineDisplay,
            Adapter::Scale(_) => PortKind::Scale,
            Adapter::ReplicationTransport(_) => PortKind::ReplicationTransport,
            Adapter::DnsResolver(_) => PortKind::DnsResolver,
            Adapter::CertificateIssuer(_) => PortKind::CertificateIssuer,
            Adapter::RoutePublisher(_) => PortKind::RoutePublisher,
            Adapter::Store(_) => PortKind::Store,
        }
    }
}

/// Builds one kind of adapter from parameters.
///
/// # Contract
/// - `name` is unique per port kind and stable (it appears in configuration files).
/// - `params` lists every parameter `build` reads; the wiring refuses any other, fills in defaults and
///   resolves secrets before calling `build`, so `build` sees only declared, typed values.
/// - `build` returns an adapter of kind `port()`; it validates values (URL shapes, ranges) and names the
///   parameter at fault. It does not print or log secret values.
#[async_trait]
pub trait AdapterFactory: Send + Sync + Debug + 'static {
    /// The adapter's name (`stripe`, `memory`).
    fn name(&self) -> &'static str;

    /// The port it implements.
    fn port(&self) -> PortKind;

    /// One line on what it is.
    fn description(&self) -> &'static str;

    /// The parameters it needs.
    fn params(&self) -> Vec<ParamSpec>;

    /// Builds the adapter.
    ///
    /// # Errors
    /// [`BuildError`] naming the parameter at fault.
    async fn build(&self, params: Params) -> Result<Adapter, BuildError>;
}
