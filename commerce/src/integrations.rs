//! [`Integrations`]: the adapters built from a configuration, handed out by tenant, channel and role, with the
//! conditions of every binding.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use commerce_ports::factory::{Adapter, PortKind};
use commerce_ports::replication::Direction;
use commerce_ports::{
    CashDrawer, ChannelId, Clock, ConditionStatus, ConditionType, Conditions, Currency, DatasetId, LineDisplay,
    PaymentGateway, PaymentTerminal, ReceiptPrinter, RegisterId, ReplicationTransport, Scale, Scanner, ShippingCarrier,
    StoreId, StoreSet, TaxCalculator, TenantId, TenderKind, WebhookVerifier,
};

use crate::error::WiringError;

/// Whether a channel sells online or in a physical store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ChannelKind {
    /// A web shop, an app, a marketplace: no registers, no replication.
    Online,
    /// A physical store: it names its store and may have registers and replicated datasets.
    Store,
}

impl ChannelKind {
    /// The name used in configuration (`online`, `store`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Online => "online",
            ChannelKind::Store => "store",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<ChannelKind> {
        match name {
            "online" => Some(ChannelKind::Online),
            "store" => Some(ChannelKind::Store),
            _ => None,
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Binding paths, as they appear in messages, [`BindingReport::path`] and [`Integrations::set_condition`].
pub mod paths {
    /// ``tenant `acme` ``.
    pub fn tenant(tenant: &str) -> String {
        format!("tenant `{tenant}`")
    }

    /// ``tenant `acme` / channel `web` ``.
    pub fn channel(tenant: &str, channel: &str) -> String {
        format!("tenant `{tenant}` / channel `{channel}`")
    }

    /// ``tenant `acme` / channel `web` / payment `card` ``.
    pub fn payment(tenant: &str, channel: &str, tender: &str) -> String {
        format!("{} / payment `{tender}`", channel_path(tenant, channel))
    }

    /// ``tenant `acme` / channel `web` / tax``.
    pub fn tax(tenant: &str, channel: &str) -> String {
        format!("{} / tax", channel_path(tenant, channel))
    }

    /// ``tenant `acme` / channel `web` / carrier `standard` ``.
    pub fn carrier(tenant: &str, channel: &str, name: &str) -> String {
        format!("{} / carrier `{name}`", channel_path(tenant, channel))
    }

    /// ``tenant `acme` / channel `store-1` / register `till-1` ``.
    pub fn register(tenant: &str, channel: &str, register: &str) -> String {
        format!("{} / register `{register}`", channel_path(tenant, channel))
    }

    /// ``tenant `acme` / channel `store-1` / register `till-1` / printer`` (roles: `printer`, `drawer`,
    /// `terminal`, `scanner`, `display`, `scale`).
    pub fn device(tenant: &str, channel: &str, register_id: &str, role: &str) -> String {
        format!("{} / {role}", register(tenant, channel, register_id))
    }

    /// ``tenant `acme` / channel `store-1` / replication `catalog` ``.
    pub fn replication(tenant: &str, channel: &str, dataset: &str) -> String {
        format!("{} / replication `{dataset}`", channel_path(tenant, channel))
    }

    /// ``tenant `acme` / webhook `stripe` ``.
    pub fn webhook(tenant_id: &str, adapter: &str) -> String {
        format!("{} / webhook `{adapter}`", tenant(tenant_id))
    }

    /// `store`.
    pub fn store() -> String {
        "store".to_owned()
    }

    fn channel_path(tenant: &str, channel_id: &str) -> String {
        channel(tenant, channel_id)
    }
}

/// A built adapter and its state. Indices into [`Inner::bindings`] are what the wiring tree holds.
#[derive(Debug)]
pub(crate) struct Binding {
    pub(crate) path: String,
    pub(crate) port: PortKind,
    pub(crate) adapter_name: String,
    /// Byte offset in the file, for file order.
    pub(crate) position: usize,
    pub(crate) adapter: Adapter,
    pub(crate) conditions: Mutex<Conditions>,
}

/// A register's devices (binding indices).
#[derive(Debug, Clone, Default)]
pub(crate) struct RegisterWiring {
    pub(crate) printer: Option<usize>,
    pub(crate) drawer: Option<usize>,
    pub(crate) terminal: Option<usize>,
    pub(crate) scanner: Option<usize>,
    pub(crate) display: Option<usize>,
    pub(crate) scale: Option<usize>,
}

/// One replicated dataset of a channel.
#[derive(Debug, Clone)]
pub(crate) struct ReplicationWiring {
    pub(crate) dataset: DatasetId,
    pub(crate) direction: Direction,
    pub(crate) interval: Duration,
    pub(crate) binding: usize,
}

/// A channel's bindings.
#[derive(Debug, Clone)]
pub(crate) struct ChannelWiring {
    pub(crate) id: ChannelId,
    pub(crate) kind: ChannelKind,
    pub(crate) currency: Option<Currency>,
    pub(crate) store: Option<StoreId>,
    pub(crate) payments: Vec<(TenderKind, usize)>,
    pub(crate) tax: Option<usize>,
    pub(crate) carriers: Vec<(String, usize)>,
    pub(crate) registers: Vec<(RegisterId, RegisterWiring)>,
    pub(crate) replication: Vec<ReplicationWiring>,
}

/// A tenant's bindings.
#[derive(Debug, Clone)]
pub(crate) struct TenantWiring {
    pub(crate) id: TenantId,
    pub(crate) webhooks: Vec<(String, usize)>,
    pub(crate) channels: Vec<ChannelWiring>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Option<usize>,
    pub(crate) tenants: Vec<TenantWiring>,
    pub(crate) bindings: Vec<Binding>,
}

/// The payment gateway bound to a tender, with the adapter's name (the payments domain records it on intents)
/// and the binding's path.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayBinding {
    /// The adapter name, e.g. `stripe`.
    pub adapter: String,
    /// The binding path, for [`Integrations::set_condition`].
    pub path: String,
    /// The gateway.
    pub gateway: Arc<dyn PaymentGateway>,
}

/// A replicated dataset of a store channel.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplicationBinding {
    /// The dataset.
    pub dataset: DatasetId,
    /// Which way it flows.
    pub direction: Direction,
    /// How often it is synchronized.
    pub interval: Duration,
    /// The adapter name.
    pub adapter: String,
    /// The binding path, for [`Integrations::set_condition`].
    pub path: String,
    /// The transport.
    pub transport: Arc<dyn ReplicationTransport>,
}

/// A carrier and the name it is bound under in its channel.
pub type NamedCarrier = (String, Arc<dyn ShippingCarrier>);

/// A webhook verifier and the adapter name it is bound under in its tenant.
pub type NamedVerifier = (String, Arc<dyn WebhookVerifier>);

/// One binding and its conditions, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BindingReport {
    /// The binding path, e.g. ``tenant `acme` / channel `web` / payment `card` ``.
    pub path: String,
    /// The port.
    pub port: PortKind,
    /// The adapter name.
    pub adapter: String,
    /// Its conditions.
    pub conditions: Conditions,
}

/// Every adapter built from a configuration, handed out by tenant, channel and role.
///
/// Built by [`Integrations::build`]. Cloning is cheap (one `Arc`); it is `Send + Sync`. Every binding carries
/// [`Conditions`], `Ready=True` (reason `AdapterBuilt`) after the build; hosts and domain crates report
/// `Degraded` or `Backpressure` with [`set_condition`](Integrations::set_condition). `Debug` shows adapters
/// through their own `Debug`, which never prints secrets.
#[derive(Debug, Clone)]
pub struct Integrations {
    pub(crate) inner: Arc<Inner>,
}

macro_rules! extract {
    ($adapter:expr, $variant:ident) => {
        match $adapter {
            Adapter::$variant(port) => Some(Arc::clone(port)),
            _ => None,
        }
    };
}

impl Integrations {
    fn binding(&self, index: usize) -> Option<&Binding> {
        self.inner.bindings.get(index)
    }

    fn not_bound(what: String) -> WiringError {
        WiringError::NotBound { what }
    }

    fn tenant(&self, tenant: &TenantId) -> Result<&TenantWiring, WiringError> {
        self.inner
            .tenants
            .iter()
            .find(|t| &t.id == tenant)
            .ok_or_else(|| WiringError::UnknownTenant { tenant: tenant.clone(), known: self.tenants() })
    }

    fn channel(&self, tenant: &TenantId, channel: &ChannelId) -> Result<&ChannelWiring, WiringError> {
        let t = self.tenant(tenant)?;
        t.channels.iter().find(|c| &c.id == channel).ok_or_else(|| WiringError::UnknownChannel {
            tenant: tenant.clone(),
            channel: channel.clone(),
            known: t.channels.iter().map(|c| c.id.clone()).collect(),
        })
    }

    fn register(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<&RegisterWiring, WiringError> {
        let c = self.channel(tenant, channel)?;
        c.registers.iter().find(|(id, _)| id == register).map(|(_, r)| r).ok_or_else(|| WiringError::UnknownRegister {
            tenant: tenant.clone(),
            channel: channel.clone(),
            register: register.clone(),
            known: c.registers.iter().map(|(id, _)| id.clone()).collect(),
        })
    }

    /// The configured tenants, in file order.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.inner.tenants.iter().map(|t| t.id.clone()).collect()
    }

    /// A tenant's channels, in file order.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`].
    pub fn channels(&self, tenant: &TenantId) -> Result<Vec<ChannelId>, WiringError> {
        Ok(self.tenant(tenant)?.channels.iter().map(|c| c.id.clone()).collect())
    }

    /// Whether the channel is online or a store.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn channel_kind(&self, tenant: &TenantId, channel: &ChannelId) -> Result<ChannelKind, WiringError> {
        Ok(self.channel(tenant, channel)?.kind)
    }

    /// The channel's currency, if configured.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn channel_currency(&self, tenant: &TenantId, channel: &ChannelId) -> Result<Option<Currency>, WiringError> {
        Ok(self.channel(tenant, channel)?.currency)
    }

    /// The store of a store channel (`None` for an online channel).
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn store_id(&self, tenant: &TenantId, channel: &ChannelId) -> Result<Option<StoreId>, WiringError> {
        Ok(self.channel(tenant, channel)?.store.clone())
    }

    /// The tenders the channel binds, in file order.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn tenders(&self, tenant: &TenantId, channel: &ChannelId) -> Result<Vec<TenderKind>, WiringError> {
        Ok(self.channel(tenant, channel)?.payments.iter().map(|(t, _)| *t).collect())
    }

    /// The gateway bound to `tender`, with its adapter name and binding path.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`], [`WiringError::TenderNotBound`] listing
    /// the tenders that are bound.
    pub fn gateway_binding(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        tender: &TenderKind,
    ) -> Result<GatewayBinding, WiringError> {
        let c = self.channel(tenant, channel)?;
        let not_bound = || WiringError::TenderNotBound {
            tenant: tenant.clone(),
            channel: channel.clone(),
            tender: *tender,
            bound: c.payments.iter().map(|(t, _)| *t).collect(),
        };
        let (_, index) = c.payments.iter().find(|(t, _)| t == tender).ok_or_else(not_bound)?;
        let b = self.binding(*index).ok_or_else(not_bound)?;
        let gateway = extract!(&b.adapter, PaymentGateway).ok_or_else(not_bound)?;
        Ok(GatewayBinding { adapter: b.adapter_name.clone(), path: b.path.clone(), gateway })
    }

    /// The gateway bound to `tender`.
    ///
    /// # Errors
    /// As [`gateway_binding`](Integrations::gateway_binding).
    pub fn payment_gateway(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        tender: &TenderKind,
    ) -> Result<Arc<dyn PaymentGateway>, WiringError> {
        Ok(self.gateway_binding(tenant, channel, tender)?.gateway)
    }

    /// The channel's tax calculator.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`], [`WiringError::NotBound`] when the channel
    /// binds none.
    pub fn tax_calculator(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
    ) -> Result<Arc<dyn TaxCalculator>, WiringError> {
        let c = self.channel(tenant, channel)?;
        let what = || Self::not_bound(paths::tax(tenant.as_str(), channel.as_str()));
        let b = c.tax.and_then(|i| self.binding(i)).ok_or_else(what)?;
        extract!(&b.adapter, TaxCalculator).ok_or_else(what)
    }

    /// The channel's carriers by name, in file order.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn carriers(&self, tenant: &TenantId, channel: &ChannelId) -> Result<Vec<NamedCarrier>, WiringError> {
        let c = self.channel(tenant, channel)?;
        Ok(c.carriers
            .iter()
            .filter_map(|(name, i)| {
                let b = self.binding(*i)?;
                extract!(&b.adapter, ShippingCarrier).map(|p| (name.clone(), p))
            })
            .collect())
    }

    /// The carrier called `name`.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`], [`WiringError::UnknownCarrier`] listing
    /// the channel's carriers.
    pub fn carrier(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        name: &str,
    ) -> Result<Arc<dyn ShippingCarrier>, WiringError> {
        let c = self.channel(tenant, channel)?;
        let unknown = || WiringError::UnknownCarrier {
            tenant: tenant.clone(),
            channel: channel.clone(),
            carrier: name.to_owned(),
            known: c.carriers.iter().map(|(n, _)| n.clone()).collect(),
        };
        let (_, i) = c.carriers.iter().find(|(n, _)| n == name).ok_or_else(unknown)?;
        self.binding(*i).and_then(|b| extract!(&b.adapter, ShippingCarrier)).ok_or_else(unknown)
    }

    /// The registers of a store channel, in file order (none for an online channel).
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn registers(&self, tenant: &TenantId, channel: &ChannelId) -> Result<Vec<RegisterId>, WiringError> {
        Ok(self.channel(tenant, channel)?.registers.iter().map(|(id, _)| id.clone()).collect())
    }

    fn device<T: ?Sized>(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
        role: &str,
        slot: fn(&RegisterWiring) -> Option<usize>,
        get: fn(&Adapter) -> Option<Arc<T>>,
    ) -> Result<Arc<T>, WiringError> {
        let r = self.register(tenant, channel, register)?;
        let what = || Self::not_bound(paths::device(tenant.as_str(), channel.as_str(), register.as_str(), role));
        slot(r).and_then(|i| self.binding(i)).and_then(|b| get(&b.adapter)).ok_or_else(what)
    }

    /// The receipt printer of a register.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`], [`WiringError::UnknownRegister`],
    /// [`WiringError::NotBound`] when the register has no printer.
    pub fn printer(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<Arc<dyn ReceiptPrinter>, WiringError> {
        self.device(tenant, channel, register, "printer", |r| r.printer, |a| extract!(a, ReceiptPrinter))
    }

    /// The cash drawer of a register.
    ///
    /// # Errors
    /// As [`printer`](Integrations::printer).
    pub fn drawer(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<Arc<dyn CashDrawer>, WiringError> {
        self.device(tenant, channel, register, "drawer", |r| r.drawer, |a| extract!(a, CashDrawer))
    }

    /// The payment terminal of a register.
    ///
    /// # Errors
    /// As [`printer`](Integrations::printer).
    pub fn terminal(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<Arc<dyn PaymentTerminal>, WiringError> {
        self.device(tenant, channel, register, "terminal", |r| r.terminal, |a| extract!(a, PaymentTerminal))
    }

    /// The scanner of a register.
    ///
    /// # Errors
    /// As [`printer`](Integrations::printer).
    pub fn scanner(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<Arc<dyn Scanner>, WiringError> {
        self.device(tenant, channel, register, "scanner", |r| r.scanner, |a| extract!(a, Scanner))
    }

    /// The customer display of a register.
    ///
    /// # Errors
    /// As [`printer`](Integrations::printer).
    pub fn display(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<Arc<dyn LineDisplay>, WiringError> {
        self.device(tenant, channel, register, "display", |r| r.display, |a| extract!(a, LineDisplay))
    }

    /// The scale of a register.
    ///
    /// # Errors
    /// As [`printer`](Integrations::printer).
    pub fn scale(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        register: &RegisterId,
    ) -> Result<Arc<dyn Scale>, WiringError> {
        self.device(tenant, channel, register, "scale", |r| r.scale, |a| extract!(a, Scale))
    }

    /// The replicated datasets of a store channel, in file order (none for an online channel).
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::UnknownChannel`].
    pub fn replication(&self, tenant: &TenantId, channel: &ChannelId) -> Result<Vec<ReplicationBinding>, WiringError> {
        let c = self.channel(tenant, channel)?;
        Ok(c.replication
            .iter()
            .filter_map(|r| {
                let b = self.binding(r.binding)?;
                Some(ReplicationBinding {
                    dataset: r.dataset.clone(),
                    direction: r.direction,
                    interval: r.interval,
                    adapter: b.adapter_name.clone(),
                    path: b.path.clone(),
                    transport: extract!(&b.adapter, ReplicationTransport)?,
                })
            })
            .collect())
    }

    /// The tenant's webhook verifiers by adapter name, in file order.
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`].
    pub fn webhook_verifiers(&self, tenant: &TenantId) -> Result<Vec<NamedVerifier>, WiringError> {
        let t = self.tenant(tenant)?;
        Ok(t.webhooks
            .iter()
            .filter_map(|(name, i)| {
                let b = self.binding(*i)?;
                extract!(&b.adapter, WebhookVerifier).map(|v| (name.clone(), v))
            })
            .collect())
    }

    /// The tenant's webhook verifier of adapter `adapter` (e.g. `stripe`).
    ///
    /// # Errors
    /// [`WiringError::UnknownTenant`], [`WiringError::NotBound`].
    pub fn webhook_verifier(&self, tenant: &TenantId, adapter: &str) -> Result<Arc<dyn WebhookVerifier>, WiringError> {
        let t = self.tenant(tenant)?;
        let what = || Self::not_bound(paths::webhook(tenant.as_str(), adapter));
        let (_, i) = t.webhooks.iter().find(|(n, _)| n == adapter).ok_or_else(what)?;
        self.binding(*i).and_then(|b| extract!(&b.adapter, WebhookVerifier)).ok_or_else(what)
    }

    /// The shared state backend from `[store]`, if configured.
    pub fn stores(&self) -> Option<StoreSet> {
        let b = self.binding(self.inner.store?)?;
        match &b.adapter {
            Adapter::Store(set) => Some(set.clone()),
            _ => None,
        }
    }

    /// Every binding with its conditions, in file order.
    pub fn bindings(&self) -> Vec<BindingReport> {
        let mut reports: Vec<(usize, BindingReport)> = self
            .inner
            .bindings
            .iter()
            .map(|b| {
                (
                    b.position,
                    BindingReport {
                        path: b.path.clone(),
                        port: b.port,
                        adapter: b.adapter_name.clone(),
                        conditions: b.conditions.lock().unwrap_or_else(PoisonError::into_inner).clone(),
                    },
                )
            })
            .collect();
        reports.sort_by_key(|(position, _)| *position);
        reports.into_iter().map(|(_, r)| r).collect()
    }

    /// The conditions of the binding at `path`.
    pub fn conditions(&self, path: &str) -> Option<Conditions> {
        let b = self.inner.bindings.iter().find(|b| b.path == path)?;
        Some(b.conditions.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// Sets a condition of the binding at `path`, at the clock's current time. As with [`Conditions::set`],
    /// the transition time moves only when the status changes; reason and message always update.
    ///
    /// # Errors
    /// [`WiringError::UnknownBinding`] when no binding has this path.
    pub fn set_condition(
        &self,
        path: &str,
        kind: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
    ) -> Result<(), WiringError> {
        let b = self
            .inner
            .bindings
            .iter()
            .find(|b| b.path == path)
            .ok_or_else(|| WiringError::UnknownBinding { path: path.to_owned() })?;
        let now = self.inner.clock.now();
        b.conditions.lock().unwrap_or_else(PoisonError::into_inner).set(kind, status, reason, message, now);
        Ok(())
    }
}
