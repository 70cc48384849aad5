//! Validation of a [`Config`] against a [`Registry`] and a [`SecretSource`], then the build of every adapter.
//!
//! Validation walks the whole file and collects every mistake before any factory runs; the build runs only
//! when there is none, and hands out adapters only when every factory succeeded. Nothing is half-built.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commerce_ports::factory::{AdapterFactory, BuildError, Params, PortKind};
use commerce_ports::replication::Direction;
use commerce_ports::{
    ChannelId, Clock, ConditionStatus, ConditionType, Conditions, Currency, DatasetId, IdError, RegisterId, StoreId,
    TenantId, TenderKind,
};
use toml::Spanned;

use crate::config::{
    AdapterSection, ChannelSection, Config, RawParams, RegisterSection, ReplicationSection, TenantSection,
};
use crate::error::{ConfigError, ConfigErrorKind, ConfigErrors};
use crate::integrations::{
    Binding, ChannelKind, ChannelWiring, Inner, Integrations, RegisterWiring, ReplicationWiring, TenantWiring, paths,
};
use crate::params::resolve_params;
use crate::registry::Registry;
use crate::secrets::SecretSource;

/// The default replication interval.
pub const DEFAULT_REPLICATION_INTERVAL: Duration = Duration::from_secs(60);

/// A binding that passed validation, ready to build.
struct PlannedBinding {
    path: String,
    port: PortKind,
    factory: Arc<dyn AdapterFactory>,
    params: Params,
    adapter_span: Range<usize>,
    param_spans: BTreeMap<String, Range<usize>>,
}

/// The validated wiring: the tree with binding indices, and the bindings to build.
struct Plan {
    store: Option<usize>,
    tenants: Vec<TenantWiring>,
    bindings: Vec<PlannedBinding>,
}

/// Walks a configuration and collects every mistake.
struct Validator<'a> {
    config: &'a Config,
    registry: &'a Registry,
    secrets: &'a dyn SecretSource,
    errors: Vec<ConfigError>,
    bindings: Vec<PlannedBinding>,
}

/// Remembers where a name was first declared, to report duplicates with the first line. Only valid names are
/// remembered: an invalid one is reported as such at each occurrence, and not as a duplicate on top.
#[derive(Default)]
struct Seen(BTreeMap<String, Range<usize>>);

impl Seen {
    /// `None` when new, else the span of the first declaration.
    fn first(&mut self, name: &str, span: &Range<usize>) -> Option<Range<usize>> {
        match self.0.get(name) {
            Some(first) => Some(first.clone()),
            None => {
                self.0.insert(name.to_owned(), span.clone());
                None
            }
        }
    }
}

impl<'a> Validator<'a> {
    fn error(&mut self, span: &Range<usize>, binding: Option<&str>, key: Option<&str>, kind: ConfigErrorKind) {
        let mut e = self.config.error_at(span, kind);
        e.binding = binding.map(str::to_owned);
        e.key = key.map(str::to_owned);
        self.errors.push(e);
    }

    fn line(&self, span: &Range<usize>) -> Option<u32> {
        self.config.line_of(span)
    }

    /// Validates an identifier.
    fn id<T>(
        &mut self,
        value: &Spanned<String>,
        binding: &str,
        key: &str,
        new: fn(String) -> Result<T, IdError>,
    ) -> Option<T> {
        match new(value.get_ref().clone()) {
            Ok(id) => Some(id),
            Err(e) => {
                self.error(&value.span(), Some(binding), Some(key), ConfigErrorKind::InvalidId(e));
                None
            }
        }
    }

    /// Checks one adapter binding: the adapter exists for the port, the parameters fit, the secrets resolve.
    fn bind(&mut self, path: &str, port: PortKind, adapter: &Spanned<String>, params: &RawParams) -> Option<usize> {
        let name = adapter.get_ref();
        let Some(factory) = self.registry.get(port, name) else {
            let known = self.registry.names(port).into_iter().map(str::to_owned).collect();
            self.error(
                &adapter.span(),
                Some(path),
                Some("adapter"),
                ConfigErrorKind::UnknownAdapter { port, name: name.clone(), known },
            );
            return None;
        };
        match resolve_params(factory.as_ref(), params, self.secrets) {
            Ok(resolved) => {
                self.bindings.push(PlannedBinding {
                    path: path.to_owned(),
                    port,
                    factory,
                    params: resolved,
                    adapter_span: adapter.span(),
                    param_spans: params.iter().map(|(k, v)| (k.clone(), v.span())).collect(),
                });
                Some(self.bindings.len() - 1)
            }
            Err(problems) => {
                for p in problems {
                    let span = p.span.unwrap_or_else(|| adapter.span());
                    self.error(&span, Some(path), Some(&p.key), p.kind);
                }
                None
            }
        }
    }

    fn section(&mut self, path: &str, port: PortKind, section: &AdapterSection) -> Option<usize> {
        self.bind(path, port, &section.adapter, &section.params)
    }

    fn plan(mut self) -> Result<Plan, ConfigErrors> {
        let raw = Arc::clone(&self.config.raw);
        let store = raw.store.as_ref().and_then(|s| self.section(&paths::store(), PortKind::Store, s));
        if raw.tenant.is_empty() {
            self.errors.push(ConfigError::new(self.config.file_name(), ConfigErrorKind::NoTenants));
        }
        let mut seen = Seen::default();
        let mut tenants = Vec::new();
        for tenant in &raw.tenant {
            if let Some(t) = self.tenant(tenant, &mut seen) {
                tenants.push(t);
            }
        }
        if self.errors.is_empty() {
            Ok(Plan { store, tenants, bindings: self.bindings })
        } else {
            let mut errors = self.errors;
            errors.sort_by_key(|e| (e.line.unwrap_or(0), e.column.unwrap_or(0)));
            Err(ConfigErrors(errors))
        }
    }

    fn tenant(&mut self, section: &Spanned<TenantSection>, seen: &mut Seen) -> Option<TenantWiring> {
        let t = section.get_ref();
        let raw_id = t.id.get_ref().as_str();
        let path = paths::tenant(raw_id);
        let id = self.id(&t.id, &path, "id", TenantId::new);
        if let Some(first) = id.as_ref().and_then(|_| seen.first(raw_id, &t.id.span())) {
            let first = self.line(&first);
            self.error(
                &t.id.span(),
                Some(&path),
                Some("id"),
                ConfigErrorKind::DuplicateTenant { id: raw_id.to_owned(), first },
            );
        }

        let mut webhooks = Vec::new();
        let mut seen_webhooks = Seen::default();
        for w in &t.webhook {
            let name = w.adapter.get_ref();
            let wpath = paths::webhook(raw_id, name);
            if let Some(first) = seen_webhooks.first(name, &w.adapter.span()) {
                let first = self.line(&first);
                self.error(
                    &w.adapter.span(),
                    Some(&wpath),
                    Some("adapter"),
                    ConfigErrorKind::DuplicateWebhook { adapter: name.clone(), first },
                );
                continue;
            }
            if let Some(i) = self.section(&wpath, PortKind::WebhookVerifier, w) {
                webhooks.push((name.clone(), i));
            }
        }

        let mut channels = Vec::new();
        let mut seen_channels = Seen::default();
        for c in &t.channel {
            if let Some(channel) = self.channel(raw_id, c, &mut seen_channels) {
                channels.push(channel);
            }
        }
        Some(TenantWiring { id: id?, webhooks, channels })
    }

    fn channel(&mut self, tenant: &str, section: &Spanned<ChannelSection>, seen: &mut Seen) -> Option<ChannelWiring> {
        let c = section.get_ref();
        let raw_id = c.id.get_ref().as_str();
        let path = paths::channel(tenant, raw_id);
        let id = self.id(&c.id, &path, "id", ChannelId::new);
        if let Some(first) = id.as_ref().and_then(|_| seen.first(raw_id, &c.id.span())) {
            let first = self.line(&first);
            self.error(
                &c.id.span(),
                Some(&path),
                Some("id"),
                ConfigErrorKind::DuplicateChannel { id: raw_id.to_owned(), first },
            );
        }

        let kind = ChannelKind::parse(c.kind.get_ref());
        if kind.is_none() {
            self.error(
                &c.kind.span(),
                Some(&path),
                Some("kind"),
                ConfigErrorKind::InvalidValue {
                    what: "channel kind".to_owned(),
                    value: Some(c.kind.get_ref().clone()),
                    reason: "expected `online` or `store`".to_owned(),
                },
            );
        }

        let currency = c.currency.as_ref().and_then(|cur| match Currency::from_code(cur.get_ref()) {
            Ok(currency) => Some(currency),
            Err(e) => {
                self.error(
                    &cur.span(),
                    Some(&path),
                    Some("currency"),
                    ConfigErrorKind::InvalidValue {
                        what: "currency".to_owned(),
                        value: Some(cur.get_ref().clone()),
                        reason: format!("{e}; expected an ISO 4217 code such as EUR"),
                    },
                );
                None
            }
        });

        let store = match (kind, &c.store) {
            (Some(ChannelKind::Online), Some(store)) => {
                self.error(
                    &store.span(),
                    Some(&path),
                    Some("store"),
                    ConfigErrorKind::NotAllowed {
                        message: "`store` is only allowed in a channel of kind \"store\"; this channel is online"
                            .to_owned(),
                    },
                );
                None
            }
            (Some(ChannelKind::Store), None) => {
                // Located at the channel's table, where the key belongs.
                self.error(
                    &section.span(),
                    Some(&path),
                    Some("store"),
                    ConfigErrorKind::MissingKey { key: "store".to_owned() },
                );
                None
            }
            (_, Some(store)) => self.id(store, &path, "store", StoreId::new),
            (_, None) => None,
        };

        let payments = self.payments(tenant, raw_id, c);
        let tax = c.tax.as_ref().and_then(|t| self.section(&paths::tax(tenant, raw_id), PortKind::TaxCalculator, t));
        let carriers = self.carriers(tenant, raw_id, c);

        let online = kind == Some(ChannelKind::Online);
        let mut registers = Vec::new();
        let mut seen_registers = Seen::default();
        for r in &c.register {
            if online {
                self.error(
                    &r.span(),
                    Some(&path),
                    Some("register"),
                    ConfigErrorKind::NotAllowed {
                        message: format!(
                            "registers are only allowed in a channel of kind \"store\"; channel `{raw_id}` is online"
                        ),
                    },
                );
            }
            if let Some(reg) = self.register(tenant, raw_id, r, &mut seen_registers) {
                registers.push(reg);
            }
        }

        let mut replication = Vec::new();
        let mut seen_datasets = Seen::default();
        for r in &c.replication {
            if online {
                self.error(
                    &r.span(),
                    Some(&path),
                    Some("replication"),
                    ConfigErrorKind::NotAllowed {
                        message: format!(
                            "replication is only allowed in a channel of kind \"store\"; channel `{raw_id}` is online"
                        ),
                    },
                );
            }
            if let Some(rep) = self.replication(tenant, raw_id, r.get_ref(), &mut seen_datasets) {
                replication.push(rep);
            }
        }

        Some(ChannelWiring { id: id?, kind: kind?, currency, store, payments, tax, carriers, registers, replication })
    }

    fn payments(&mut self, tenant: &str, channel: &str, c: &ChannelSection) -> Vec<(TenderKind, usize)> {
        let mut payments = Vec::new();
        let mut seen = BTreeMap::<TenderKind, Range<usize>>::new();
        for p in &c.payment {
            let raw_tender = p.tender.get_ref().as_str();
            let path = paths::payment(tenant, channel, raw_tender);
            let Some(tender) = TenderKind::parse(raw_tender) else {
                self.error(
                    &p.tender.span(),
                    Some(&path),
                    Some("tender"),
                    ConfigErrorKind::UnknownTender {
                        value: raw_tender.to_owned(),
                        known: TenderKind::ALL.iter().map(|t| t.as_str().to_owned()).collect(),
                    },
                );
                // Still check the adapter and its parameters.
                self.bind(&path, PortKind::PaymentGateway, &p.adapter, &p.params);
                continue;
            };
            if let Some(first) = seen.get(&tender) {
                let first = self.line(first);
                self.error(
                    &p.tender.span(),
                    Some(&path),
                    Some("tender"),
                    ConfigErrorKind::TenderBoundTwice { tender, first },
                );
                continue;
            }
            seen.insert(tender, p.tender.span());
            if let Some(i) = self.bind(&path, PortKind::PaymentGateway, &p.adapter, &p.params) {
                payments.push((tender, i));
            }
        }
        payments
    }

    fn carriers(&mut self, tenant: &str, channel: &str, c: &ChannelSection) -> Vec<(String, usize)> {
        let mut carriers = Vec::new();
        let mut seen = Seen::default();
        for carrier in &c.carrier {
            let name = carrier.name.get_ref();
            let path = paths::carrier(tenant, channel, name);
            if name.trim().is_empty() {
                self.error(
                    &carrier.name.span(),
                    Some(&path),
                    Some("name"),
                    ConfigErrorKind::InvalidValue {
                        what: "carrier name".to_owned(),
                        value: Some(name.clone()),
                        reason: "it must not be empty".to_owned(),
                    },
                );
                continue;
            }
            if let Some(first) = seen.first(name, &carrier.name.span()) {
                let first = self.line(&first);
                self.error(
                    &carrier.name.span(),
                    Some(&path),
                    Some("name"),
                    ConfigErrorKind::DuplicateCarrier { name: name.clone(), first },
                );
                continue;
            }
            if let Some(i) = self.bind(&path, PortKind::ShippingCarrier, &carrier.adapter, &carrier.params) {
                carriers.push((name.clone(), i));
            }
        }
        carriers
    }

    fn register(
        &mut self,
        tenant: &str,
        channel: &str,
        section: &Spanned<RegisterSection>,
        seen: &mut Seen,
    ) -> Option<(RegisterId, RegisterWiring)> {
        let r = section.get_ref();
        let raw_id = r.id.get_ref().as_str();
        let path = paths::register(tenant, channel, raw_id);
        let id = self.id(&r.id, &path, "id", RegisterId::new);
        if let Some(first) = id.as_ref().and_then(|_| seen.first(raw_id, &r.id.span())) {
            let first = self.line(&first);
            self.error(
                &r.id.span(),
                Some(&path),
                Some("id"),
                ConfigErrorKind::DuplicateRegister { id: raw_id.to_owned(), first },
            );
            return None;
        }
        let mut device = |role: &str, port: PortKind, section: &Option<AdapterSection>| {
            section.as_ref().and_then(|s| self.section(&paths::device(tenant, channel, raw_id, role), port, s))
        };
        let wiring = RegisterWiring {
            printer: device("printer", PortKind::ReceiptPrinter, &r.printer),
            drawer: device("drawer", PortKind::CashDrawer, &r.drawer),
            terminal: device("terminal", PortKind::PaymentTerminal, &r.terminal),
            scanner: device("scanner", PortKind::Scanner, &r.scanner),
            display: device("display", PortKind::LineDisplay, &r.display),
            scale: device("scale", PortKind::Scale, &r.scale),
        };
        Some((id?, wiring))
    }

    fn replication(
        &mut self,
        tenant: &str,
        channel: &str,
        r: &ReplicationSection,
        seen: &mut Seen,
    ) -> Option<ReplicationWiring> {
        let raw_dataset = r.dataset.get_ref().as_str();
        let path = paths::replication(tenant, channel, raw_dataset);
        let dataset = self.id(&r.dataset, &path, "dataset", DatasetId::new);
        if let Some(first) = dataset.as_ref().and_then(|_| seen.first(raw_dataset, &r.dataset.span())) {
            let first = self.line(&first);
            self.error(
                &r.dataset.span(),
                Some(&path),
                Some("dataset"),
                ConfigErrorKind::DuplicateDataset { dataset: raw_dataset.to_owned(), first },
            );
            return None;
        }
        let direction = match r.direction.get_ref().as_str() {
            "down" => Some(Direction::Down),
            "up" => Some(Direction::Up),
            "both" => Some(Direction::Both),
            other => {
                self.error(
                    &r.direction.span(),
                    Some(&path),
                    Some("direction"),
                    ConfigErrorKind::InvalidValue {
                        what: "direction".to_owned(),
                        value: Some(other.to_owned()),
                        reason: "expected `down`, `up` or `both`".to_owned(),
                    },
                );
                None
            }
        };
        let interval = match &r.interval_secs {
            None => Some(DEFAULT_REPLICATION_INTERVAL),
            Some(secs) => match u64::try_from(*secs.get_ref()) {
                Ok(s) if s >= 1 => Some(Duration::from_secs(s)),
                _ => {
                    self.error(
                        &secs.span(),
                        Some(&path),
                        Some("interval_secs"),
                        ConfigErrorKind::InvalidValue {
                            what: "interval_secs".to_owned(),
                            value: Some(secs.get_ref().to_string()),
                            reason: "it must be at least 1 (seconds)".to_owned(),
                        },
                    );
                    None
                }
            },
        };
        let binding = self.bind(&path, PortKind::ReplicationTransport, &r.adapter, &r.params);
        Some(ReplicationWiring { dataset: dataset?, direction: direction?, interval: interval?, binding: binding? })
    }
}

fn plan(config: &Config, registry: &Registry, secrets: &dyn SecretSource) -> Result<Plan, ConfigErrors> {
    Validator { config, registry, secrets, errors: Vec::new(), bindings: Vec::new() }.plan()
}

impl Integrations {
    /// Checks a configuration completely (adapters, parameters, secrets, ids, duplicates, channel kinds)
    /// without building any adapter. [`build`](Integrations::build) runs the same checks first.
    ///
    /// # Errors
    /// [`ConfigErrors`] with every mistake, in file order.
    pub fn validate(config: &Config, registry: &Registry, secrets: &dyn SecretSource) -> Result<(), ConfigErrors> {
        plan(config, registry, secrets).map(|_| ())
    }

    /// Validates the configuration, then builds every adapter it binds.
    ///
    /// Every mistake is reported at once; factories run only when there is none. When any factory fails,
    /// every failure is reported and no adapter is returned. Each binding starts with `Ready=True`, reason
    /// `AdapterBuilt`, at `clock`'s time; `clock` also times later [`set_condition`](Integrations::set_condition)s.
    ///
    /// # Errors
    /// [`ConfigErrors`] with every mistake, in file order.
    pub async fn build(
        config: &Config,
        registry: &Registry,
        secrets: &dyn SecretSource,
        clock: Arc<dyn Clock>,
    ) -> Result<Integrations, ConfigErrors> {
        let plan = plan(config, registry, secrets)?;
        let mut built = Vec::with_capacity(plan.bindings.len());
        let mut errors = Vec::new();
        for planned in plan.bindings {
            let PlannedBinding { path, port, factory, params, adapter_span, param_spans } = planned;
            let name = factory.name();
            let failure = match factory.build(params).await {
                Ok(adapter) if adapter.port() == port => {
                    let mut conditions = Conditions::new();
                    let message = format!("adapter `{name}` built");
                    conditions.set(ConditionType::Ready, ConditionStatus::True, "AdapterBuilt", &message, clock.now());
                    built.push(Binding {
                        path,
                        port,
                        adapter_name: name.to_owned(),
                        position: adapter_span.start,
                        adapter,
                        conditions: Mutex::new(conditions),
                    });
                    continue;
                }
                Ok(adapter) => BuildError::other(format!(
                    "the factory returned a {} adapter where a {port} adapter was expected",
                    adapter.port()
                )),
                Err(e) => e,
            };
            let span = failure.param.as_ref().and_then(|p| param_spans.get(p)).unwrap_or(&adapter_span);
            let mut e = config
                .error_at(span, ConfigErrorKind::BuildFailed { adapter: name.to_owned(), error: failure.clone() })
                .in_binding(path);
            e.key = failure.param.map(|p| format!("params.{p}"));
            errors.push(e);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Integrations { inner: Arc::new(Inner { clock, store: plan.store, tenants: plan.tenants, bindings: built }) })
    }
}
