//! Test factories: tiny adapter factories that build mockall mocks, and helpers to parse and build configs.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use commerce::ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};
use commerce::ports::offline_queue::MockOfflineQueueStore;
use commerce::ports::payment::{GatewayCapabilities, MockPaymentGateway};
use commerce::ports::peripherals::{MockCashDrawer, MockLineDisplay, MockReceiptPrinter, MockScanner};
use commerce::ports::replication::MockReplicationTransport;
use commerce::ports::shipping::MockShippingCarrier;
use commerce::ports::stores::{
    MockDomainClaimStore, MockIdempotencyStore, MockPairingStore, MockPaymentIntentStore, MockPrintJobStore,
    MockReplicationStore, MockWebhookEventStore, StoreSet,
};
use commerce::ports::tax::MockTaxCalculator;
use commerce::ports::terminal::MockPaymentTerminal;
use commerce::ports::webhook::MockWebhookVerifier;
use commerce::ports::{ManualClock, Money};
use commerce::{Config, ConfigError, ConfigErrors, Integrations, MapSecrets, Registry};
use time::OffsetDateTime;
use time::macros::datetime;

pub const FILE: &str = "commerce.toml";
pub const T0: OffsetDateTime = datetime!(2026-03-01 9:00 UTC);
/// The value of the `psp_key` secret in [`secrets`].
pub const PSP_KEY: &str = "sk_test_c0ffee";

/// A factory defined by a name, a port, parameters and a build function.
#[derive(Debug)]
pub struct TestFactory {
    pub name: &'static str,
    pub port: PortKind,
    pub params: fn() -> Vec<ParamSpec>,
    pub build: fn(&Params) -> Result<Adapter, BuildError>,
}

#[async_trait]
impl AdapterFactory for TestFactory {
    fn name(&self) -> &'static str {
        self.name
    }
    fn port(&self) -> PortKind {
        self.port
    }
    fn description(&self) -> &'static str {
        "a test adapter"
    }
    fn params(&self) -> Vec<ParamSpec> {
        (self.params)()
    }
    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        (self.build)(&params)
    }
}

/// A factory that counts its builds, to prove nothing is built when validation fails.
#[derive(Debug, Default)]
pub struct CountingFactory {
    pub builds: Arc<AtomicUsize>,
}

#[async_trait]
impl AdapterFactory for CountingFactory {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn port(&self) -> PortKind {
        PortKind::PaymentGateway
    }
    fn description(&self) -> &'static str {
        "counts builds"
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    async fn build(&self, _params: Params) -> Result<Adapter, BuildError> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        Ok(Adapter::PaymentGateway(Arc::new(gateway(1))))
    }
}

fn gateway(max_key_len: usize) -> MockPaymentGateway {
    let mut g = MockPaymentGateway::new();
    g.expect_capabilities().returning(move || {
        let mut caps = GatewayCapabilities::full(Vec::new());
        caps.max_idempotency_key_len = max_key_len;
        caps
    });
    g
}

fn no_params() -> Vec<ParamSpec> {
    Vec::new()
}

/// `fakepsp`: a PSP with a secret API key, a URL with a default and an integer with a default.
pub fn fakepsp_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::secret("api_key", "FakePSP secret key"),
        ParamSpec::with_default(
            "base_url",
            ParamType::Url,
            ParamValue::Text("https://api.fakepsp.test".into()),
            "Base URL of the API",
        ),
        ParamSpec::with_default(
            "timeout_ms",
            ParamType::Integer,
            ParamValue::Integer(5000),
            "Request timeout in milliseconds",
        ),
        ParamSpec::optional("descriptor", ParamType::String, "Statement descriptor"),
    ]
}

fn build_fakepsp(p: &Params) -> Result<Adapter, BuildError> {
    let key = p.secret("api_key")?;
    if !key.expose().starts_with("sk_") {
        return Err(BuildError::param("api_key", "must be a FakePSP secret key (sk_...)"));
    }
    p.require_text("base_url")?;
    let timeout = p.integer("timeout_ms")?.unwrap_or_default();
    // The mock reports the timeout as its key length, so tests see parameters reach the adapter.
    Ok(Adapter::PaymentGateway(Arc::new(gateway(
        usize::try_from(timeout).map_err(|_| BuildError::param("timeout_ms", "negative"))?,
    ))))
}

fn memory_gateway_params() -> Vec<ParamSpec> {
    vec![ParamSpec::optional("latency_ms", ParamType::Integer, "Injected latency")]
}

fn tax_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::required("rate", ParamType::String, "Tax rate as a decimal, e.g. 0.2"),
        ParamSpec::optional("threshold", ParamType::Money, "No tax below this amount"),
        ParamSpec::with_default("inclusive", ParamType::Bool, ParamValue::Bool(false), "Prices include tax"),
    ]
}

fn carrier_params() -> Vec<ParamSpec> {
    vec![ParamSpec::with_default(
        "amount",
        ParamType::Money,
        ParamValue::Money(Money::parse("4.90 EUR").expect("money")),
        "Flat shipping price",
    )]
}

fn webhook_params() -> Vec<ParamSpec> {
    vec![ParamSpec::secret("signing_secret", "Webhook signing secret")]
}

fn store_set() -> StoreSet {
    StoreSet::new(
        Arc::new(MockIdempotencyStore::new()),
        Arc::new(MockPaymentIntentStore::new()),
        Arc::new(MockWebhookEventStore::new()),
        Arc::new(MockDomainClaimStore::new()),
        Arc::new(MockReplicationStore::new()),
        Arc::new(MockPrintJobStore::new()),
        Arc::new(MockPairingStore::new()),
        Arc::new(MockOfflineQueueStore::new()),
    )
}

/// Every test factory. No factory is registered for [`PortKind::Scale`].
pub fn factories() -> Vec<Arc<dyn AdapterFactory>> {
    let f = |name, port, params: fn() -> Vec<ParamSpec>, build: fn(&Params) -> Result<Adapter, BuildError>| {
        Arc::new(TestFactory { name, port, params, build }) as Arc<dyn AdapterFactory>
    };
    vec![
        f("fakepsp", PortKind::PaymentGateway, fakepsp_params, build_fakepsp),
        f("memory", PortKind::PaymentGateway, memory_gateway_params, |_| {
            Ok(Adapter::PaymentGateway(Arc::new(gateway(255))))
        }),
        f("fixed-rate", PortKind::TaxCalculator, tax_params, |_| {
            Ok(Adapter::TaxCalculator(Arc::new(MockTaxCalculator::new())))
        }),
        f("flat-rate", PortKind::ShippingCarrier, carrier_params, |p| {
            p.money("amount")?.ok_or_else(|| BuildError::param("amount", "is required"))?;
            Ok(Adapter::ShippingCarrier(Arc::new(MockShippingCarrier::new())))
        }),
        f("virtual", PortKind::ReceiptPrinter, no_params, |_| {
            Ok(Adapter::ReceiptPrinter(Arc::new(MockReceiptPrinter::new())))
        }),
        f("virtual", PortKind::CashDrawer, no_params, |_| Ok(Adapter::CashDrawer(Arc::new(MockCashDrawer::new())))),
        f("memory", PortKind::PaymentTerminal, no_params, |_| {
            Ok(Adapter::PaymentTerminal(Arc::new(MockPaymentTerminal::new())))
        }),
        f("memory", PortKind::Scanner, no_params, |_| Ok(Adapter::Scanner(Arc::new(MockScanner::new())))),
        f("memory", PortKind::LineDisplay, no_params, |_| Ok(Adapter::LineDisplay(Arc::new(MockLineDisplay::new())))),
        f("memory", PortKind::ReplicationTransport, no_params, |_| {
            Ok(Adapter::ReplicationTransport(Arc::new(MockReplicationTransport::new())))
        }),
        f("fakepsp", PortKind::WebhookVerifier, webhook_params, |p| {
            p.secret("signing_secret")?;
            Ok(Adapter::WebhookVerifier(Arc::new(MockWebhookVerifier::new())))
        }),
        f("memory", PortKind::Store, no_params, |_| Ok(Adapter::Store(store_set()))),
        // Claims to be a tax calculator but builds a printer.
        f("liar", PortKind::TaxCalculator, no_params, |_| {
            Ok(Adapter::ReceiptPrinter(Arc::new(MockReceiptPrinter::new())))
        }),
    ]
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_all(factories()).expect("no duplicates");
    r
}

pub fn secrets() -> MapSecrets {
    MapSecrets::new().with("psp_key", PSP_KEY).with("bad_key", "pk_wrong_kind").with("psp_whsec", "whsec_123")
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

/// Parses and builds `text` as `commerce.toml`.
pub async fn build(text: &str) -> Result<Integrations, ConfigErrors> {
    let config = Config::parse(text, FILE)?;
    Integrations::build(&config, &registry(), &secrets(), clock()).await
}

/// Parses and builds `text`, expecting exactly one error; returns it.
pub async fn one_error(text: &str) -> ConfigError {
    match build(text).await {
        Ok(_) => panic!("expected one error, the config built:\n{text}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
            errors.0.into_iter().next().expect("one error")
        }
    }
}

/// A valid online channel header to prefix tests with.
pub const ACME_WEB: &str = r#"
[[tenant]]
id = "acme"

[[tenant.channel]]
id = "web"
kind = "online"
currency = "EUR"
"#;
