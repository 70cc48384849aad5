//! Adapter factories for the in-memory fakes, so a configuration file can bind them like any adapter
//! (`adapter = "memory"`). Each factory remembers what it built, so a test or a demo can inspect the
//! concrete fake behind a binding (the receipts a virtual printer printed, say).

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};
use rust_decimal::Decimal;

use crate::memory::{
    FixedRateTax, FlatRateCarrier, MemoryGateway, MemoryTerminal, MemoryTransport, VirtualDrawer, VirtualPrinter,
    memory_store_set,
};

/// The instances a factory has built, in build order.
#[derive(Debug)]
pub struct Built<T> {
    items: Mutex<Vec<Arc<T>>>,
}

impl<T> Default for Built<T> {
    fn default() -> Self {
        Built { items: Mutex::new(Vec::new()) }
    }
}

impl<T> Built<T> {
    fn push(&self, item: Arc<T>) {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).push(item);
    }

    /// Everything built so far.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

macro_rules! fake_factory {
    ($(#[$doc:meta])* $factory:ident, $fake:ty, $name:literal, $port:expr, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $factory {
            built: Built<$fake>,
        }

        impl $factory {
            /// A factory.
            pub fn new() -> Self {
                Self::default()
            }

            /// The fakes this factory built.
            pub fn built(&self) -> Vec<Arc<$fake>> {
                self.built.all()
            }
        }

        impl $factory {
            const NAME: &'static str = $name;
            const PORT: PortKind = $port;
            const DESCRIPTION: &'static str = $description;
        }
    };
}

fake_factory!(
    /// Builds [`MemoryGateway`]s (`payment-gateway` / `memory`).
    MemoryGatewayFactory, MemoryGateway, "memory", PortKind::PaymentGateway,
    "in-memory payment gateway honouring Stripe's test payment method names"
);
fake_factory!(
    /// Builds [`MemoryTerminal`]s (`payment-terminal` / `memory`).
    MemoryTerminalFactory, MemoryTerminal, "memory", PortKind::PaymentTerminal,
    "in-memory card-present terminal that approves chip payments"
);
fake_factory!(
    /// Builds [`FixedRateTax`] engines (`tax-calculator` / `fixed-rate`).
    FixedRateTaxFactory, FixedRateTax, "fixed-rate", PortKind::TaxCalculator,
    "one tax rate for every line, rounded per line half away from zero"
);
fake_factory!(
    /// Builds [`FlatRateCarrier`]s (`shipping-carrier` / `flat-rate`).
    FlatRateCarrierFactory, FlatRateCarrier, "flat-rate", PortKind::ShippingCarrier,
    "one flat rate per shipment; labels are bought at most once"
);
fake_factory!(
    /// Builds [`VirtualPrinter`]s (`receipt-printer` / `virtual`).
    VirtualPrinterFactory, VirtualPrinter, "virtual", PortKind::ReceiptPrinter,
    "a receipt printer that keeps and renders what it printed"
);
fake_factory!(
    /// Builds [`VirtualDrawer`]s (`cash-drawer` / `virtual`).
    VirtualDrawerFactory, VirtualDrawer, "virtual", PortKind::CashDrawer,
    "a cash drawer that counts how often it opened"
);
fake_factory!(
    /// Builds [`MemoryTransport`]s (`replication-transport` / `memory`).
    MemoryTransportFactory, MemoryTransport, "memory", PortKind::ReplicationTransport,
    "in-memory replication transport, deduplicating by change id"
);

/// Builds in-memory store sets (`store` / `memory`). Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStoreFactory;

#[async_trait]
impl AdapterFactory for MemoryGatewayFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::with_default(
            "reference_prefix",
            ParamType::String,
            ParamValue::Text("mem".to_owned()),
            "prefix of the provider references this gateway hands out",
        )]
    }
    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let prefix = params.text("reference_prefix")?.unwrap_or("mem");
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BuildError::param("reference_prefix", "must be non-empty ASCII letters and digits"));
        }
        let gateway = Arc::new(MemoryGateway::new().with_reference_prefix(prefix));
        self.built.push(gateway.clone());
        Ok(Adapter::PaymentGateway(gateway))
    }
}

#[async_trait]
impl AdapterFactory for MemoryTerminalFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    async fn build(&self, _params: Params) -> Result<Adapter, BuildError> {
        let terminal = Arc::new(MemoryTerminal::new());
        self.built.push(terminal.clone());
        Ok(Adapter::PaymentTerminal(terminal))
    }
}

#[async_trait]
impl AdapterFactory for FixedRateTaxFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("rate", ParamType::String, "the rate as a decimal fraction, e.g. \"0.20\" for 20%"),
            ParamSpec::with_default(
                "jurisdiction",
                ParamType::String,
                ParamValue::Text("LOCAL".to_owned()),
                "jurisdiction name shown on tax details",
            ),
        ]
    }
    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let text = params.require_text("rate")?;
        let rate: Decimal =
            text.parse().map_err(|_| BuildError::param("rate", format!("`{text}` is not a decimal number")))?;
        if rate.is_sign_negative() || rate > Decimal::ONE {
            return Err(BuildError::param("rate", format!("{rate} is outside 0..=1")));
        }
        let jurisdiction = params.text("jurisdiction")?.unwrap_or("LOCAL");
        let tax = Arc::new(FixedRateTax::new(rate, jurisdiction));
        self.built.push(tax.clone());
        Ok(Adapter::TaxCalculator(tax))
    }
}

#[async_trait]
impl AdapterFactory for FlatRateCarrierFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("price", ParamType::Money, "the flat price, e.g. \"4.90 EUR\""),
            ParamSpec::with_default(
                "carrier",
                ParamType::String,
                ParamValue::Text("Flat".to_owned()),
                "carrier name on rates",
            ),
            ParamSpec::with_default(
                "service",
                ParamType::String,
                ParamValue::Text("Standard".to_owned()),
                "service name on rates",
            ),
        ]
    }
    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let price = params.money("price")?.ok_or_else(|| BuildError::param("price", "is required"))?;
        if !price.is_positive() {
            return Err(BuildError::param("price", format!("{price} must be positive")));
        }
        let carrier = Arc::new(FlatRateCarrier::new(
            params.text("carrier")?.unwrap_or("Flat"),
            params.text("service")?.unwrap_or("Standard"),
            price,
        ));
        self.built.push(carrier.clone());
        Ok(Adapter::ShippingCarrier(carrier))
    }
}

#[async_trait]
impl AdapterFactory for VirtualPrinterFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::with_default(
            "columns",
            ParamType::Integer,
            ParamValue::Integer(42),
            "characters per line (20-80)",
        )]
    }
    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let columns = params.integer("columns")?.unwrap_or(42);
        let columns = u8::try_from(columns)
            .ok()
            .filter(|c| (20..=80).contains(c))
            .ok_or_else(|| BuildError::param("columns", format!("{columns} is outside 20..=80")))?;
        let printer = Arc::new(VirtualPrinter::new(columns));
        self.built.push(printer.clone());
        Ok(Adapter::ReceiptPrinter(printer))
    }
}

#[async_trait]
impl AdapterFactory for VirtualDrawerFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    async fn build(&self, _params: Params) -> Result<Adapter, BuildError> {
        let drawer = Arc::new(VirtualDrawer::new());
        self.built.push(drawer.clone());
        Ok(Adapter::CashDrawer(drawer))
    }
}

#[async_trait]
impl AdapterFactory for MemoryTransportFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn port(&self) -> PortKind {
        Self::PORT
    }
    fn description(&self) -> &'static str {
        Self::DESCRIPTION
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    async fn build(&self, _params: Params) -> Result<Adapter, BuildError> {
        let transport = Arc::new(MemoryTransport::new());
        self.built.push(transport.clone());
        Ok(Adapter::ReplicationTransport(transport))
    }
}

#[async_trait]
impl AdapterFactory for MemoryStoreFactory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn port(&self) -> PortKind {
        PortKind::Store
    }
    fn description(&self) -> &'static str {
        "in-memory stores; state is lost when the process ends"
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    async fn build(&self, _params: Params) -> Result<Adapter, BuildError> {
        Ok(Adapter::Store(memory_store_set()))
    }
}

/// One instance of every fake factory, kept typed so the fakes they build can be inspected.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct Fakes {
    /// `payment-gateway` / `memory`.
    pub gateway: Arc<MemoryGatewayFactory>,
    /// `payment-terminal` / `memory`.
    pub terminal: Arc<MemoryTerminalFactory>,
    /// `tax-calculator` / `fixed-rate`.
    pub tax: Arc<FixedRateTaxFactory>,
    /// `shipping-carrier` / `flat-rate`.
    pub carrier: Arc<FlatRateCarrierFactory>,
    /// `receipt-printer` / `virtual`.
    pub printer: Arc<VirtualPrinterFactory>,
    /// `cash-drawer` / `virtual`.
    pub drawer: Arc<VirtualDrawerFactory>,
    /// `replication-transport` / `memory`.
    pub transport: Arc<MemoryTransportFactory>,
    /// `store` / `memory`.
    pub store: Arc<MemoryStoreFactory>,
}

impl Fakes {
    /// Fresh factories.
    pub fn new() -> Fakes {
        Fakes::default()
    }

    /// Every factory, to register with the facade's registry.
    pub fn factories(&self) -> Vec<Arc<dyn AdapterFactory>> {
        vec![
            self.gateway.clone(),
            self.terminal.clone(),
            self.tax.clone(),
            self.carrier.clone(),
            self.printer.clone(),
            self.drawer.clone(),
            self.transport.clone(),
            self.store.clone(),
        ]
    }
}

/// Every fake factory (fresh instances), to register with the facade's registry.
pub fn all() -> Vec<Arc<dyn AdapterFactory>> {
    Fakes::new().factories()
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_ports::{Currency, Money};

    #[tokio::test]
    async fn factories_validate_their_parameters() {
        let tax = FixedRateTaxFactory::new();
        let e = tax.build(Params::new().with("rate", ParamValue::Text("twenty".into()))).await.expect_err("bad rate");
        assert_eq!(e.param.as_deref(), Some("rate"));
        let e = tax.build(Params::new().with("rate", ParamValue::Text("1.5".into()))).await.expect_err("rate > 1");
        assert!(e.message.contains("1.5"));
        assert!(tax.build(Params::new().with("rate", ParamValue::Text("0.2".into()))).await.is_ok());
        assert_eq!(tax.built().len(), 1);

        let printer = VirtualPrinterFactory::new();
        let e = printer.build(Params::new().with("columns", ParamValue::Integer(300))).await.expect_err("too wide");
        assert_eq!(e.param.as_deref(), Some("columns"));

        let carrier = FlatRateCarrierFactory::new();
        let zero = Money::zero(Currency::EUR);
        let e = carrier.build(Params::new().with("price", ParamValue::Money(zero))).await.expect_err("zero price");
        assert_eq!(e.param.as_deref(), Some("price"));
    }

    #[test]
    fn names_are_unique_per_port() {
        let mut seen = std::collections::HashSet::new();
        for f in all() {
            assert!(seen.insert((f.port(), f.name())), "duplicate {} {}", f.port(), f.name());
        }
    }
}
