//! The store day: a whole day of the tenant `acme`, with a web shop (`web`) and a Berlin store (`berlin`),
//! wired from a TOML file. Web card payments go through the Stripe adapter and the store's card-present
//! payments through the Adyen Terminal API adapter, both against the loopback simulators of
//! `commerce-testkit` (started by the day; no credentials, no network beyond 127.0.0.1); the providers' signed
//! webhooks flow back, duplicated and reordered, through the webhook ingestion. Everything else runs on
//! in-memory adapters. Time runs on a manual clock, so the report is the same every run.
//!
//! The day: web orders are taxed, authorized, shipped and captured (one declined card paid again by wallet,
//! one partial shipment captured finally, one capture whose outcome is unknown and is reconciled, one replayed
//! request); a return is partly refunded with its tax; the store rings up a cash sale, a card-present sale and
//! a gift-card sale, opening the drawer and printing receipts. At the end every payment intent is checked
//! against its gateway: the books must balance.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use commerce::{Config, ConfigErrors, GatewayBinding, Integrations, MapSecrets, Registry, WiringError};
use commerce_payments::{IngestError, NewPayment, Payments, TerminalGateway, WebhookIngestor};
use commerce_ports::payment::{CaptureMethod, PaymentGateway};
use commerce_ports::peripherals::{ReceiptDocument, ReceiptPrinter};
use commerce_ports::shipping::{BuyLabelRequest, Parcel, Rate, ShipmentRequest};
use commerce_ports::stores::{IntentStatus, PaymentIntent};
use commerce_ports::tax::{TaxDocument, TaxDocumentType, TaxRefundRequest, TaxRefundScope, TaxRequest};
use commerce_ports::terminal::PaymentTerminal;
use commerce_ports::webhook::WebhookRequest;
use commerce_ports::{
    Address, ChannelId, ConditionStatus, ConditionType, Currency, IdempotencyKey, IntentId, LineItem, ManualClock,
    Money, RegisterId, TenantId, TenderKind,
};
use commerce_testkit::factories::Fakes;
use commerce_testkit::memory::render_receipt;
use commerce_testkit::simulators::adyen::AdyenSimulator;
use commerce_testkit::simulators::stripe::{self, StripeSimulator};
use commerce_testkit::simulators::webhooks::DeliveryPlan;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Why the day could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DayError {
    /// The configuration file is wrong.
    #[error("configuration rejected:\n{0}")]
    Config(#[from] ConfigErrors),
    /// Something the day needs is not bound.
    #[error("wiring: {0}")]
    Wiring(#[from] WiringError),
    /// A step of the day failed.
    #[error("{step}: {message}")]
    Step {
        /// The step (`W-1001 authorize`).
        step: String,
        /// What went wrong.
        message: String,
    },
}

fn step_err<E: fmt::Display>(step: &str) -> impl FnOnce(E) -> DayError + '_ {
    move |e| DayError::Step { step: step.to_owned(), message: e.to_string() }
}

/// Where an intent's provider view is read at the end of the day.
enum Checked {
    /// A gateway with `retrieve`.
    Gateway(GatewayBinding),
    /// A terminal's record of a sale (`status` by the sale reference).
    Terminal { terminal: Arc<dyn PaymentTerminal>, terminal_id: String, sale: String },
}

/// One payment intent and what its gateway says about it.
#[derive(Debug, Clone)]
pub struct IntentLine {
    /// The order.
    pub order: String,
    /// The intent.
    pub intent: PaymentIntent,
    /// Events in its history.
    pub events: usize,
    /// Whether the gateway's view equals the intent's amounts (or there is no provider payment).
    pub matches_gateway: bool,
}

/// The figures of the day, for the report and for tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Figures {
    /// Captured on the web channel.
    pub web_captured: Money,
    /// Refunded on the web channel.
    pub web_refunded: Money,
    /// Store takings by tender.
    pub store_takings: Vec<(TenderKind, Money)>,
    /// Tax on committed documents, net of tax refunds.
    pub tax_committed: Money,
    /// Shipping labels bought.
    pub labels: usize,
    /// Receipts printed.
    pub receipts: usize,
    /// Times the cash drawer opened.
    pub drawer_opens: u64,
    /// Payment outcomes that were unknown and were reconciled.
    pub reconciled: usize,
    /// Intents the reconciler's pass at close found still unknown (examined); none on a good day.
    pub unknown_at_close: usize,
    /// Calls that reached a payment provider (replays do not count).
    pub provider_calls: u64,
    /// Webhook deliveries received from the providers (duplicates included).
    pub webhook_deliveries: u32,
    /// Deliveries refused (bad signature, malformed); none on a good day.
    pub webhook_rejected: u32,
    /// Events recognised as delivered before.
    pub webhook_duplicates: u32,
    /// Events that matched no intent of the tenant (another system's payments); none on this day, whose every
    /// event is news of one of its own payments.
    pub webhook_unmatched: u32,
    /// Every intent of the day.
    pub intents: Vec<IntentLine>,
}

/// The report of the day: a log of what happened and the figures.
#[derive(Debug, Clone)]
pub struct DayReport {
    log: String,
    /// The figures.
    pub figures: Figures,
    /// Binding conditions at the end of the day: (path, conditions as text).
    pub conditions: Vec<(String, String)>,
}

impl DayReport {
    /// True when every intent matches its gateway's view.
    pub fn books_balance(&self) -> bool {
        self.figures.intents.iter().all(|i| i.matches_gateway)
    }
}

const EUR: Currency = Currency::EUR;

/// The Berlin till's terminal (its POIID in `store-day.toml`).
const TERMINAL_ID: &str = "V400m-324688179";

/// The terminal binding's adapter: the provider name its sales are stored under.
const TERMINAL_ADAPTER: &str = "adyen";

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, EUR)
}

fn key(value: String) -> Result<IdempotencyKey, DayError> {
    IdempotencyKey::new(value.clone()).map_err(step_err(&value))
}

/// Counters of the webhook deliveries of the day.
#[derive(Debug, Default, Clone, Copy)]
struct WebhookCounts {
    deliveries: u32,
    rejected: u32,
    applied: u32,
    duplicates: u32,
    unknown_payments: u32,
    ignored: u32,
    conflicts: u32,
}

struct Day {
    integrations: Integrations,
    payments: Payments,
    fakes: Fakes,
    stripe: StripeSimulator,
    adyen: AdyenSimulator,
    stripe_webhooks: WebhookIngestor,
    adyen_webhooks: WebhookIngestor,
    webhooks: WebhookCounts,
    clock: Arc<ManualClock>,
    tenant: TenantId,
    web: ChannelId,
    berlin: ChannelId,
    till: RegisterId,
    log: String,
    /// Intents of the day with their order and the gateway binding that served them.
    intents: Vec<(String, IntentId, Checked)>,
    tax_documents: Vec<TaxDocument>,
    labels: usize,
    reconciled: usize,
    store_takings: Vec<(TenderKind, Money)>,
    warehouse: Address,
    shop: Address,
}

/// Runs the day wired from the configuration file at `config`.
///
/// # Errors
/// [`DayError`] when the configuration is wrong or a step fails unexpectedly. A declined card or an unknown
/// outcome is part of the day, not an error.
pub async fn run_day(config: &Path) -> Result<DayReport, DayError> {
    let fakes = Fakes::new();
    let mut registry = Registry::with_defaults();
    registry.register_all(fakes.factories()).map_err(step_err("registry"))?;
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-23 08:00 UTC)));
    let start = clock_unix(&clock);
    let stripe = StripeSimulator::start().await.map_err(step_err("Stripe simulator"))?.with_fixed_time(start);
    let adyen = AdyenSimulator::start().await.map_err(step_err("Adyen simulator"))?;
    let text = match std::fs::read_to_string(config) {
        Ok(text) => text,
        // Let the configuration loader word the error (file name, what failed).
        Err(e) => {
            return Err(Config::from_file(config).err().map_or_else(|| step_err("configuration")(e), DayError::from));
        }
    };
    let text = text
        .replace("http://stripe-simulator.invalid", stripe.base_url())
        .replace("http://adyen-simulator.invalid", adyen.base_url());
    let config = Config::parse(&text, config.display().to_string())?;
    let secrets = MapSecrets::new()
        .with("stripe_api_key", stripe.api_key())
        .with("stripe_webhook_secret", stripe.webhook_secret().expose())
        .with("adyen_api_key", adyen.api_key())
        .with("adyen_hmac_key", adyen.hmac_key());
    let integrations = Integrations::build(&config, &registry, &secrets, clock.clone()).await?;
    let stores = integrations.stores().ok_or_else(|| DayError::Step {
        step: "wiring".into(),
        message: "the configuration binds no [store]; the day needs one for payment intents".into(),
    })?;
    // A sale at the terminal can take minutes (a lookup and a payment, each of which Adyen's terminal calls let
    // wait up to 150 s): the key's one-minute lease is renewed every 20 s while a call runs, so a second caller
    // does not take a sale's key over while the customer is still there, and a till that stops frees its key
    // within a minute.
    let payments = Payments::from_stores(&stores, clock.clone())
        .with_lease(std::time::Duration::from_secs(60))
        .with_lease_renewal(std::time::Duration::from_secs(20));
    let tenant = TenantId::new("acme").map_err(step_err("ids"))?;
    let ingestor = |adapter: &str| -> Result<WebhookIngestor, DayError> {
        let verifier = integrations.webhook_verifier(&tenant, adapter)?;
        Ok(WebhookIngestor::new(&payments, stores.webhooks.clone(), tenant.clone(), adapter, verifier))
    };
    let (stripe_webhooks, adyen_webhooks) = (ingestor("stripe")?, ingestor("adyen")?);
    let mut day = Day {
        integrations,
        payments,
        fakes,
        stripe,
        adyen,
        stripe_webhooks,
        adyen_webhooks,
        webhooks: WebhookCounts::default(),
        clock,
        tenant,
        web: ChannelId::new("web").map_err(step_err("ids"))?,
        berlin: ChannelId::new("berlin").map_err(step_err("ids"))?,
        till: RegisterId::new("till-1").map_err(step_err("ids"))?,
        log: String::new(),
        intents: Vec::new(),
        tax_documents: Vec::new(),
        labels: 0,
        reconciled: 0,
        store_takings: Vec::new(),
        warehouse: Address::new("Lagerstrasse 1", "Hamburg", "20095", "DE").with_name("Acme Warehouse"),
        shop: Address::new("Rosenthaler Strasse 40", "Berlin", "10178", "DE").with_name("Acme Berlin Mitte"),
    };
    day.wiring_summary();
    day.web_shop().await?;
    day.store().await?;
    day.close().await
}

impl Day {
    fn at(&mut self, hour: u8, minute: u8) {
        let target =
            datetime!(2026-11-23 00:00 UTC) + Duration::hours(i64::from(hour)) + Duration::minutes(i64::from(minute));
        self.clock.set(target);
        // The simulator signs its webhooks with the day's time, so they verify within the tolerance.
        self.stripe.set_unix_time(Some(clock_unix(&self.clock)));
    }

    /// Takes the webhooks the providers queued since the last call, duplicated and shuffled as providers
    /// deliver them (at least once, in no particular order), and feeds them to the tenant's endpoints.
    async fn deliver_webhooks(&mut self, seed: u64) -> Result<(), DayError> {
        let plan = DeliveryPlan { duplicate: true, reorder_seed: Some(seed) };
        let stripe = self.stripe.take_webhooks(plan);
        let adyen = self.adyen.take_webhooks(plan);
        let batch =
            stripe.iter().map(|d| (&self.stripe_webhooks, d)).chain(adyen.iter().map(|d| (&self.adyen_webhooks, d)));
        let mut counts = self.webhooks;
        for (ingestor, delivery) in batch {
            counts.deliveries += 1;
            let webhook = WebhookRequest::new(delivery.headers.clone(), delivery.body.to_vec());
            match ingestor.ingest(&webhook).await {
                Ok(report) => {
                    counts.applied += report.applied;
                    counts.duplicates += report.duplicates;
                    counts.unknown_payments += report.unknown_payments;
                    counts.ignored += report.ignored;
                    counts.conflicts += report.conflicts;
                }
                Err(IngestError::Rejected(_) | IngestError::TooLarge { .. }) => counts.rejected += 1,
                Err(e) => return Err(step_err("webhooks")(e)),
            }
        }
        let delivered = counts.deliveries - self.webhooks.deliveries;
        let duplicates = counts.duplicates - self.webhooks.duplicates;
        let applied = counts.applied - self.webhooks.applied;
        let rejected = counts.rejected - self.webhooks.rejected;
        self.webhooks = counts;
        if delivered > 0 {
            self.say(format!(
                "webhooks: {delivered} signed deliveries (each sent twice, shuffled): {rejected} rejected, \
                 {applied} changed an intent, {duplicates} recognised as duplicates"
            ));
        }
        Ok(())
    }

    fn now(&self) -> String {
        use commerce_ports::Clock as _;
        let now: OffsetDateTime = self.clock.now();
        format!("{:02}:{:02}", now.hour(), now.minute())
    }

    fn say(&mut self, text: impl AsRef<str>) {
        let now = self.now();
        let _ = writeln!(self.log, "{now}  {}", text.as_ref());
    }

    fn heading(&mut self, text: &str) {
        let _ = writeln!(self.log, "\n-- {text} {}", "-".repeat(74usize.saturating_sub(text.len())));
    }

    fn wiring_summary(&mut self) {
        let bindings = self.integrations.bindings();
        let ready = bindings.iter().filter(|b| b.conditions.is_ready()).count();
        let _ = writeln!(
            self.log,
            "STORE DAY  tenant acme  Monday 2026-11-23  (Stripe and Adyen simulators on 127.0.0.1, manual clock)"
        );
        let _ = writeln!(self.log, "wiring: {} bindings from the configuration, {ready} Ready", bindings.len());
    }

    fn gateway(&self, channel: &ChannelId, tender: TenderKind) -> Result<GatewayBinding, DayError> {
        Ok(self.integrations.gateway_binding(&self.tenant, channel, &tender)?)
    }

    async fn quote_tax(
        &mut self,
        order: &str,
        channel: &ChannelId,
        lines: Vec<LineItem>,
        ship_to: Address,
    ) -> Result<TaxDocument, DayError> {
        let tax = self.integrations.tax_calculator(&self.tenant, channel)?;
        let from = if channel == &self.web { self.warehouse.clone() } else { self.shop.clone() };
        let request = TaxRequest::new(
            order,
            TaxDocumentType::Sale,
            channel.clone(),
            from,
            ship_to,
            lines,
            key(format!("{order}:tax"))?,
        );
        tax.quote(request).await.map_err(step_err(&format!("{order} tax")))
    }

    async fn commit_tax(&mut self, channel: &ChannelId, order: &str) -> Result<(), DayError> {
        let tax = self.integrations.tax_calculator(&self.tenant, channel)?;
        let doc = tax.commit(order).await.map_err(step_err(&format!("{order} commit tax")))?;
        self.tax_documents.push(doc);
        Ok(())
    }

    /// Rate shopping at checkout: the shipping price the shopper pays.
    async fn shipping_quote(&mut self, order: &str, to: Address) -> Result<Rate, DayError> {
        let carrier = self.integrations.carrier(&self.tenant, &self.web, "parcel")?;
        let rates = carrier
            .rates(ShipmentRequest::new(self.warehouse.clone(), to, Parcel::new(1_200, 300, 200, 120), order))
            .await
            .map_err(step_err(&format!("{order} rates")))?;
        rates
            .into_iter()
            .min_by_key(|r| r.price.minor())
            .ok_or_else(|| DayError::Step { step: format!("{order} rates"), message: "no rate offered".into() })
    }

    /// At shipment: buy the label for the quoted rate (a retried purchase must return the same label).
    async fn ship(&mut self, order: &str, rate: &Rate) -> Result<(), DayError> {
        let carrier = self.integrations.carrier(&self.tenant, &self.web, "parcel")?;
        let buy = BuyLabelRequest::new(&rate.shipment_id, &rate.rate_id, key(format!("{order}:label"))?);
        let label = carrier.buy_label(buy.clone()).await.map_err(step_err(&format!("{order} label")))?;
        // A retried purchase (same key) returns the same label: a label is never bought twice.
        let again = carrier.buy_label(buy).await.map_err(step_err(&format!("{order} label retry")))?;
        if again.tracking_code != label.tracking_code {
            return Err(DayError::Step {
                step: format!("{order} label"),
                message: "a retried purchase bought a second label".into(),
            });
        }
        self.labels += 1;
        self.say(format!(
            "{order}  shipped: label {} {} {} ({}; a retried purchase returned the same label)",
            rate.carrier, rate.service, label.tracking_code, label.price
        ));
        Ok(())
    }

    async fn authorize(
        &mut self,
        order: &str,
        channel: &ChannelId,
        tender: TenderKind,
        amount: Money,
        method: &str,
        capture: CaptureMethod,
    ) -> Result<Result<PaymentIntent, String>, DayError> {
        let binding = self.gateway(channel, tender)?;
        let payment = NewPayment::new(self.tenant.clone(), channel.clone(), tender, amount, method, order)
            .with_capture_method(capture);
        // One key per order and tender: a shopper who switches tender starts a new payment.
        let key = key(format!("{order}:authorize:{tender}"))?;
        match self.payments.authorize(binding.gateway.as_ref(), &binding.adapter, payment, &key).await {
            Ok(intent) => {
                self.intents.push((order.to_owned(), intent.id.clone(), Checked::Gateway(binding)));
                Ok(Ok(intent))
            }
            Err(e) if e.kind() == commerce_ports::ErrorKind::Declined => {
                let id = commerce_payments::intent_id_for(&self.tenant, &key).map_err(step_err(order))?;
                self.intents.push((order.to_owned(), id, Checked::Gateway(binding)));
                let code = e.decline().and_then(|d| d.decline_code.clone()).unwrap_or_else(|| "no decline code".into());
                Ok(Err(format!("{} / {code}", e.provider_code().unwrap_or("declined"))))
            }
            Err(e) => Err(step_err(&format!("{order} authorize"))(e)),
        }
    }

    async fn web_shop(&mut self) -> Result<(), DayError> {
        self.heading("web shop (channel web)");
        let web = self.web.clone();
        let customer = Address::new("Karl-Marx-Allee 90", "Berlin", "10243", "DE").with_name("Jana K.");

        // W-1001: taxed, authorized, shipped, captured.
        self.at(9, 12);
        let lines = vec![
            LineItem::new(1, "SHOE-TR-42", "Trail runner shoes", 1, eur(11_900)),
            LineItem::new(2, "SOCK-MER-2", "Merino socks", 2, eur(1_450)),
        ];
        let doc = self.quote_tax("W-1001", &web, lines, customer.clone()).await?;
        let rate = self.shipping_quote("W-1001", customer.clone()).await?;
        let total = order_total(&doc, rate.price)?;
        let intent =
            self.authorize("W-1001", &web, TenderKind::Card, total, "pm_card_visa", CaptureMethod::Manual).await?;
        let intent = intent.map_err(|m| DayError::Step { step: "W-1001 authorize".into(), message: m })?;
        self.say(format!(
            "W-1001  checkout: card authorized {total} (items {}, tax {}, shipping {})",
            doc.total_amount, doc.total_tax, rate.price
        ));
        self.at(9, 50);
        self.ship("W-1001", &rate).await?;
        let binding = self.gateway(&web, TenderKind::Card)?;
        let captured = self
            .payments
            .capture(binding.gateway.as_ref(), &self.tenant, &intent.id, None, true, &key("W-1001:capture".into())?)
            .await
            .map_err(step_err("W-1001 capture"))?;
        self.commit_tax(&web, "W-1001").await?;
        self.say(format!("W-1001  captured {} on shipment; tax document committed", captured.captured));
        self.deliver_webhooks(1001).await?;

        // W-1002: declined card, paid again by wallet.
        self.at(10, 5);
        let lines = vec![LineItem::new(1, "JKT-RAIN-M", "Rain jacket", 1, eur(18_900))];
        let doc = self.quote_tax("W-1002", &web, lines, customer.clone()).await?;
        let rate = self.shipping_quote("W-1002", customer.clone()).await?;
        let total = order_total(&doc, rate.price)?;
        match self
            .authorize("W-1002", &web, TenderKind::Card, total, "pm_card_chargeDeclined", CaptureMethod::Manual)
            .await?
        {
            Ok(_) => {
                return Err(DayError::Step {
                    step: "W-1002".into(),
                    message: "a declined test card was approved".into(),
                });
            }
            Err(message) => self.say(format!("W-1002  card DECLINED for {total}: {message}")),
        }
        let wallet = self
            .authorize("W-1002", &web, TenderKind::Wallet, total, "wallet_applepay_tok", CaptureMethod::Manual)
            .await?;
        let wallet = wallet.map_err(|m| DayError::Step { step: "W-1002 wallet".into(), message: m })?;
        self.say(format!("W-1002  shopper paid by wallet instead: authorized {total}"));
        self.at(10, 40);
        self.ship("W-1002", &rate).await?;
        let binding = self.gateway(&web, TenderKind::Wallet)?;
        self.payments
            .capture(binding.gateway.as_ref(), &self.tenant, &wallet.id, None, true, &key("W-1002:capture".into())?)
            .await
            .map_err(step_err("W-1002 capture"))?;
        self.commit_tax(&web, "W-1002").await?;
        self.say(format!("W-1002  captured {total}; tax document committed"));
        self.deliver_webhooks(1002).await?;

        // W-1003: two headlamps ordered, one in stock: capture the shipped part finally, release the rest.
        self.at(11, 30);
        let lines = vec![
            LineItem::new(1, "LAMP-HD-1", "Headlamp", 1, eur(3_990)),
            LineItem::new(2, "LAMP-HD-1", "Headlamp (backorder)", 1, eur(3_990)),
        ];
        let doc = self.quote_tax("W-1003", &web, lines, customer.clone()).await?;
        let rate = self.shipping_quote("W-1003", customer.clone()).await?;
        let shipping = rate.price;
        let total = order_total(&doc, shipping)?;
        let intent =
            self.authorize("W-1003", &web, TenderKind::Card, total, "pm_card_visa", CaptureMethod::Manual).await?;
        let intent = intent.map_err(|m| DayError::Step { step: "W-1003 authorize".into(), message: m })?;
        self.say(format!("W-1003  checkout: two headlamps, card authorized {total}"));
        self.at(11, 55);
        self.ship("W-1003", &rate).await?;
        let first_line =
            doc.lines.first().ok_or_else(|| DayError::Step { step: "W-1003".into(), message: "no tax line".into() })?;
        let part = first_line
            .taxable
            .checked_add(first_line.tax)
            .and_then(|m| m.checked_add(shipping))
            .map_err(step_err("W-1003 amount"))?;
        let binding = self.gateway(&web, TenderKind::Card)?;
        let captured = self
            .payments
            .capture(
                binding.gateway.as_ref(),
                &self.tenant,
                &intent.id,
                Some(part),
                true,
                &key("W-1003:capture".into())?,
            )
            .await
            .map_err(step_err("W-1003 capture"))?;
        self.say(format!(
            "W-1003  only one headlamp in stock: final capture {part} ({}), {} released; the tax document stays saved, \
             not committed, until the backorder is resolved",
            captured.status.as_str(),
            total.checked_sub(part).map_err(step_err("W-1003 amount"))?
        ));
        self.deliver_webhooks(1003).await?;

        // The shop's job runner retries W-1001's capture with the same key: a replay, not a second capture.
        self.at(12, 0);
        let before = self.provider_calls();
        let binding = self.gateway(&web, TenderKind::Card)?;
        let w1001 = self.intent_of("W-1001")?;
        let replay = self
            .payments
            .capture(binding.gateway.as_ref(), &self.tenant, &w1001, None, true, &key("W-1001:capture".into())?)
            .await
            .map_err(step_err("W-1001 capture replay"))?;
        let after = self.provider_calls();
        self.say(format!(
            "W-1001  capture retried with the same key: replayed ({}, captured {}), provider calls {before} -> {after}",
            replay.status.as_str(),
            replay.captured
        ));

        // W-1004: the capture times out after the provider processed it. Unknown, not failed; reconciled.
        self.at(14, 20);
        let lines = vec![LineItem::new(1, "BTL-STEEL-1", "Steel bottle", 1, eur(2_490))];
        let doc = self.quote_tax("W-1004", &web, lines, customer.clone()).await?;
        let rate = self.shipping_quote("W-1004", customer.clone()).await?;
        let total = order_total(&doc, rate.price)?;
        let intent =
            self.authorize("W-1004", &web, TenderKind::Card, total, "pm_card_visa", CaptureMethod::Manual).await?;
        let intent = intent.map_err(|m| DayError::Step { step: "W-1004 authorize".into(), message: m })?;
        self.say(format!("W-1004  checkout: card authorized {total}"));
        self.at(14, 40);
        self.ship("W-1004", &rate).await?;
        self.capture_times_out_after_processing();
        let binding = self.gateway(&web, TenderKind::Card)?;
        match self
            .payments
            .capture(binding.gateway.as_ref(), &self.tenant, &intent.id, None, true, &key("W-1004:capture".into())?)
            .await
        {
            Err(e) if e.is_outcome_unknown() => {
                let status = self.payments.get(&self.tenant, &intent.id).await.map_err(step_err("W-1004 get"))?.status;
                self.say(format!(
                    "W-1004  capture of {total} timed out after sending: outcome UNKNOWN (intent {}), not failed",
                    status.as_str()
                ));
                self.integrations
                    .set_condition(
                        &binding.path,
                        ConditionType::Degraded,
                        ConditionStatus::True,
                        "OutcomeUnknown",
                        "a capture's outcome is unknown; reconciling",
                    )
                    .map_err(step_err("W-1004 condition"))?;
            }
            Ok(i) => {
                return Err(DayError::Step {
                    step: "W-1004 capture".into(),
                    message: format!("the injected timeout was not seen: {}", i.status.as_str()),
                });
            }
            Err(e) => return Err(step_err("W-1004 capture")(e)),
        }
        // The provider processed the capture and says so by webhook: ingestion settles the unknown outcome.
        self.at(14, 42);
        let applied_before = self.webhooks.applied;
        self.deliver_webhooks(1004).await?;
        let after = self.payments.get(&self.tenant, &intent.id).await.map_err(step_err("W-1004 get"))?;
        if after.status == IntentStatus::OutcomeUnknown || self.webhooks.applied == applied_before {
            return Err(DayError::Step {
                step: "W-1004 webhook".into(),
                message: format!("the capture's webhook did not settle the intent ({})", after.status.as_str()),
            });
        }
        self.say(format!(
            "W-1004  Stripe's webhook settled the unknown capture: {} with {} captured",
            after.status.as_str(),
            after.captured
        ));
        // The reconciler runs over every intent that was unknown; it asks the provider and confirms.
        self.at(14, 45);
        let settled = self
            .payments
            .reconcile(binding.gateway.as_ref(), &self.tenant, &intent.id)
            .await
            .map_err(step_err("W-1004 reconcile"))?;
        self.reconciled += 1;
        self.integrations
            .set_condition(
                &binding.path,
                ConditionType::Degraded,
                ConditionStatus::False,
                "Reconciled",
                "every unknown outcome is settled",
            )
            .map_err(step_err("W-1004 condition"))?;
        self.commit_tax(&web, "W-1004").await?;
        self.say(format!(
            "W-1004  reconciler asked the provider: {} with {} captured (captured once, nothing left to apply)",
            settled.status.as_str(),
            settled.captured
        ));

        // Return on W-1001: the socks come back; refund them with their tax.
        self.at(16, 45);
        let tax = self.integrations.tax_calculator(&self.tenant, &web)?;
        let refund_doc = tax
            .refund(TaxRefundRequest::new(
                "W-1001",
                "W-1001-R1",
                TaxRefundScope::Lines(vec![2]),
                key("W-1001:tax-refund".into())?,
            ))
            .await
            .map_err(step_err("W-1001 tax refund"))?;
        let amount = refund_doc
            .total_amount
            .checked_add(refund_doc.total_tax)
            .and_then(Money::checked_neg)
            .map_err(step_err("W-1001 refund amount"))?;
        self.tax_documents.push(refund_doc.clone());
        let binding = self.gateway(&web, TenderKind::Card)?;
        let refunded = self
            .payments
            .refund(binding.gateway.as_ref(), &self.tenant, &w1001, amount, &key("W-1001:refund:1".into())?)
            .await
            .map_err(step_err("W-1001 refund"))?;
        self.say(format!(
            "W-1001  return of 2 merino socks: refunded {amount} (tax {}), intent {}",
            refund_doc.total_tax.checked_neg().map_err(step_err("W-1001 refund amount"))?,
            refunded.status.as_str()
        ));
        self.deliver_webhooks(1005).await?;
        Ok(())
    }

    async fn store(&mut self) -> Result<(), DayError> {
        self.heading("Berlin store (channel berlin, register till-1)");
        let berlin = self.berlin.clone();
        let till = self.till.clone();
        let printer = self.integrations.printer(&self.tenant, &berlin, &till)?;
        let drawer = self.integrations.drawer(&self.tenant, &berlin, &till)?;
        let terminal = self.integrations.terminal(&self.tenant, &berlin, &till)?;

        // S-0001: cash.
        self.at(10, 30);
        let lines = vec![LineItem::new(1, "BTL-STEEL-1", "Steel bottle", 1, eur(2_490))];
        let doc = self.quote_tax("S-0001", &berlin, lines.clone(), self.shop.clone()).await?;
        let total = order_total(&doc, eur(0))?;
        let tendered = eur(4_000);
        drawer.open().await.map_err(step_err("S-0001 drawer"))?;
        self.commit_tax(&berlin, "S-0001").await?;
        let change = tendered.checked_sub(total).map_err(step_err("S-0001 change"))?;
        self.print_receipt(printer.as_ref(), "S-0001", &lines, &doc, &format!("Cash {tendered}  change {change}"))
            .await?;
        self.store_takings.push((TenderKind::Cash, total));
        self.say(format!("S-0001  cash sale {total}: drawer opened, change {change}, receipt printed"));

        // S-0002: card present at the terminal.
        self.at(13, 10);
        let lines = vec![
            LineItem::new(1, "HAT-WOOL", "Wool beanie", 1, eur(2_900)),
            LineItem::new(2, "GLV-TOUCH", "Touchscreen gloves", 1, eur(1_990)),
        ];
        let doc = self.quote_tax("S-0002", &berlin, lines.clone(), self.shop.clone()).await?;
        let total = order_total(&doc, eur(0))?;
        // The sale is a payment intent like the web's, through the terminal (decision 016): the terminal's record
        // of the sale is read before paying, so an unknown outcome (the terminal stopped answering after the card
        // was presented) is settled from it, never by asking the customer again.
        let gateway = TerminalGateway::new(terminal.clone(), TERMINAL_ID, till.clone());
        let sale =
            NewPayment::new(self.tenant.clone(), berlin.clone(), TenderKind::CardPresent, total, TERMINAL_ID, "S-0002")
                .with_capture_method(CaptureMethod::Automatic);
        let sale_key = key("S-0002:pay".into())?;
        let intent = self
            .payments
            .authorize(&gateway, TERMINAL_ADAPTER, sale, &sale_key)
            .await
            .map_err(step_err("S-0002 terminal"))?;
        if intent.captured != total {
            // A partial approval: the rest is still owed (another tender would take it).
            return Err(DayError::Step {
                step: "S-0002 terminal".into(),
                message: format!("the terminal approved {} of {total}", intent.captured),
            });
        }
        let sale_reference =
            TerminalGateway::sale_reference(&self.tenant, &sale_key).map_err(step_err("S-0002 sale reference"))?;
        // The receipt's card details are the terminal's (the intent keeps no card data).
        let paid =
            terminal.status(TERMINAL_ID, sale_reference.as_str()).await.map_err(step_err("S-0002 terminal record"))?;
        self.intents.push((
            "S-0002".to_owned(),
            intent.id.clone(),
            Checked::Terminal {
                terminal: terminal.clone(),
                terminal_id: TERMINAL_ID.to_owned(),
                sale: sale_reference.as_str().to_owned(),
            },
        ));
        self.commit_tax(&berlin, "S-0002").await?;
        let card = format!(
            "{} {} {}",
            paid.scheme.as_deref().unwrap_or("card"),
            paid.masked_pan.as_deref().unwrap_or(""),
            paid.provider_reference
        );
        self.print_receipt(printer.as_ref(), "S-0002", &lines, &doc, &format!("Card {card}")).await?;
        self.store_takings.push((TenderKind::CardPresent, total));
        self.say(format!(
            "S-0002  card-present sale {total} approved at the terminal ({card}), intent {}, receipt printed",
            intent.status.as_str()
        ));
        self.deliver_webhooks(2002).await?;

        // S-0003: gift card through the payments domain, captured with the authorization.
        self.at(15, 40);
        let lines = vec![LineItem::new(1, "MAP-BER", "Berlin trail map", 1, eur(1_200))];
        let doc = self.quote_tax("S-0003", &berlin, lines.clone(), self.shop.clone()).await?;
        let total = order_total(&doc, eur(0))?;
        let gift =
            self.authorize("S-0003", &berlin, TenderKind::GiftCard, total, "gc_6001", CaptureMethod::Automatic).await?;
        let gift = gift.map_err(|m| DayError::Step { step: "S-0003 gift card".into(), message: m })?;
        self.commit_tax(&berlin, "S-0003").await?;
        self.print_receipt(printer.as_ref(), "S-0003", &lines, &doc, "Gift card gc_6001").await?;
        self.store_takings.push((TenderKind::GiftCard, total));
        self.say(format!("S-0003  gift-card sale {total} ({}), receipt printed", gift.status.as_str()));
        Ok(())
    }

    async fn print_receipt(
        &mut self,
        printer: &dyn ReceiptPrinter,
        sale: &str,
        lines: &[LineItem],
        doc: &TaxDocument,
        payment: &str,
    ) -> Result<(), DayError> {
        let mut receipt = ReceiptDocument::new()
            .title("ACME OUTFITTERS")
            .line("Rosenthaler Strasse 40, Berlin")
            .line(format!("Sale {sale}  register till-1"));
        for line in lines {
            let amount = line.extended().map_err(step_err(sale))?;
            receipt = receipt.columns(format!("{} x {}", line.quantity, line.description), amount.to_string());
        }
        let total = order_total(doc, eur(0))?;
        receipt = receipt
            .columns("VAT 19%", doc.total_tax.to_string())
            .columns("TOTAL", total.to_string())
            .line(payment)
            .cut();
        printer.print(receipt, key(format!("{sale}:receipt"))?).await.map_err(step_err(&format!("{sale} receipt")))
    }

    /// The next capture at Stripe is processed, but its answer arrives after the adapter's timeout, on the
    /// first attempt and on the adapter's retry with the same key (the configuration allows one).
    fn capture_times_out_after_processing(&self) {
        for _ in 0..2 {
            self.stripe.inject_on("/capture", stripe::Fault::TimeoutAfterProcessing(std::time::Duration::from_secs(2)));
        }
    }

    /// Calls that changed something at a provider: the in-memory gateways' calls and the simulators' processed
    /// requests (replayed answers do not count).
    fn provider_calls(&self) -> u64 {
        let memory: u64 = self.fakes.gateway.built().iter().map(|g| g.provider_calls()).sum();
        let simulated = self.stripe.processed_calls() + self.adyen.processed_calls();
        memory + u64::try_from(simulated).unwrap_or(u64::MAX)
    }

    fn intent_of(&self, order: &str) -> Result<IntentId, DayError> {
        self.intents
            .iter()
            .rev()
            .find(|(o, _, _)| o == order)
            .map(|(_, id, _)| id.clone())
            .ok_or_else(|| DayError::Step { step: order.to_owned(), message: "no intent".into() })
    }

    async fn close(mut self) -> Result<DayReport, DayError> {
        self.at(20, 0);
        let mut lines = Vec::new();
        for (order, id, checked) in &self.intents {
            let intent = self.payments.get(&self.tenant, id).await.map_err(step_err(&format!("{order} get")))?;
            let events =
                self.payments.history(&self.tenant, id).await.map_err(step_err(&format!("{order} history")))?.len();
            let matches_gateway = match (&intent.provider_reference, checked) {
                (None, _) => intent.captured.is_zero() && intent.status == IntentStatus::Failed,
                (Some(reference), Checked::Gateway(binding)) => {
                    let view =
                        binding.gateway.retrieve(reference).await.map_err(step_err(&format!("{order} retrieve")))?;
                    view.authorized == intent.authorized
                        && view.captured == intent.captured
                        && view.refunded == intent.refunded
                }
                // A terminal looks its sales up by sale reference; it keeps no refunds in that record.
                (Some(reference), Checked::Terminal { terminal, terminal_id, sale }) => {
                    let view =
                        terminal.status(terminal_id, sale).await.map_err(step_err(&format!("{order} status")))?;
                    &view.provider_reference == reference && view.amount == intent.captured
                }
            };
            lines.push(IntentLine { order: order.clone(), intent, events, matches_gateway });
        }
        // The reconciler's pass at close: every intent of the day whose outcome was unknown is settled by now, so
        // it finds none. It reaches the providers as the day did: card-present intents through the till's
        // terminal, the others through the gateway their channel binds for their tender.
        let till = self.integrations.terminal(&self.tenant, &self.berlin, &self.till)?;
        let till: Arc<dyn PaymentGateway> = Arc::new(TerminalGateway::new(till, TERMINAL_ID, self.till.clone()));
        let integrations = &self.integrations;
        let gateway_for = |intent: &PaymentIntent| -> Option<Arc<dyn PaymentGateway>> {
            if intent.tender == TenderKind::CardPresent {
                return Some(till.clone());
            }
            let binding = integrations.gateway_binding(&intent.tenant, &intent.channel, &intent.tender).ok()?;
            (binding.adapter == intent.provider).then_some(binding.gateway)
        };
        let pass = self
            .payments
            .reconcile_unknown(&self.tenant, gateway_for, 100, None)
            .await
            .map_err(step_err("reconciler"))?;
        let web_lines = || lines.iter().filter(|l| l.intent.channel == self.web);
        let web_captured = Money::sum(EUR, web_lines().map(|l| l.intent.captured)).map_err(step_err("totals"))?;
        let web_refunded = Money::sum(EUR, web_lines().map(|l| l.intent.refunded)).map_err(step_err("totals"))?;
        let tax_committed =
            Money::sum(EUR, self.tax_documents.iter().map(|d| d.total_tax)).map_err(step_err("totals"))?;
        let receipts = self.fakes.printer.built().iter().map(|p| p.printed().len()).sum();
        let drawer_opens = self.fakes.drawer.built().iter().map(|d| d.times_opened()).sum();
        let figures = Figures {
            web_captured,
            web_refunded,
            store_takings: self.store_takings.clone(),
            tax_committed,
            labels: self.labels,
            receipts,
            drawer_opens,
            reconciled: self.reconciled,
            unknown_at_close: pass.examined,
            provider_calls: self.provider_calls(),
            webhook_deliveries: self.webhooks.deliveries,
            webhook_rejected: self.webhooks.rejected,
            webhook_duplicates: self.webhooks.duplicates,
            webhook_unmatched: self.webhooks.unknown_payments,
            intents: lines,
        };

        self.heading("receipt S-0002 as printed");
        if let Some(printer) = self.fakes.printer.built().first()
            && let Some(doc) = printer.printed().get(1)
        {
            for line in render_receipt(doc, 42) {
                let _ = writeln!(self.log, "      | {line:<42} |");
            }
        }

        self.heading("payment intents");
        let _ = writeln!(
            self.log,
            "      {:<7} {:<11} {:<19} {:>11} {:>11} {:>11} {:>6}  gateway",
            "order", "tender", "status", "authorized", "captured", "refunded", "events"
        );
        for l in &figures.intents {
            let i = &l.intent;
            let _ = writeln!(
                self.log,
                "      {:<7} {:<11} {:<19} {:>11} {:>11} {:>11} {:>6}  {}",
                l.order,
                i.tender.as_str(),
                i.status.as_str(),
                i.authorized.to_string(),
                i.captured.to_string(),
                i.refunded.to_string(),
                l.events,
                if l.matches_gateway { "matches" } else { "MISMATCH" }
            );
        }

        self.heading("end of day");
        let net = figures.web_captured.checked_sub(figures.web_refunded).map_err(step_err("totals"))?;
        let _ = writeln!(
            self.log,
            "      web: captured {}, refunded {}, net {}; {} labels bought",
            figures.web_captured, figures.web_refunded, net, figures.labels
        );
        for (tender, amount) in &figures.store_takings {
            let _ = writeln!(self.log, "      store takings {:<12} {:>11}", tender.as_str(), amount.to_string());
        }
        let store_total = Money::sum(EUR, figures.store_takings.iter().map(|(_, m)| *m)).map_err(step_err("totals"))?;
        let _ = writeln!(
            self.log,
            "      store takings total      {:>11}; {} receipts printed, drawer opened {} time(s)",
            store_total.to_string(),
            figures.receipts,
            figures.drawer_opens
        );
        let _ = writeln!(self.log, "      tax on committed documents, net of refunds: {}", figures.tax_committed);
        let _ = writeln!(
            self.log,
            "      unknown outcomes reconciled: {}; the reconciler's pass at close: {} unknown intent(s) examined ({} \
             settled, {} to retry, {} for an operator); calls that reached a provider: {}",
            figures.reconciled,
            pass.examined,
            pass.settled.len(),
            pass.retry_later.len(),
            pass.needs_operator.len(),
            figures.provider_calls
        );
        let w = self.webhooks;
        let _ = writeln!(
            self.log,
            "      webhooks: {} deliveries, {} rejected; events: {} applied, {} duplicates, {} already reflected \
             (among them W-1002's refusal and the terminal sale's notification), {} matched no intent, {} conflicts",
            w.deliveries, w.rejected, w.applied, w.duplicates, w.ignored, w.unknown_payments, w.conflicts
        );
        for binding in self.integrations.replication(&self.tenant, &self.berlin)? {
            let _ = writeln!(
                self.log,
                "      replication {} ({:?}, every {} s via {}): bound; the sync engine arrives with the replication issue",
                binding.dataset,
                binding.direction,
                binding.interval.as_secs(),
                binding.adapter
            );
        }

        let mut conditions = Vec::new();
        for b in self.integrations.bindings() {
            let text: Vec<String> =
                b.conditions.iter().map(|c| format!("{:?}={:?} ({})", c.kind, c.status, c.reason)).collect();
            conditions.push((b.path.clone(), text.join(", ")));
        }
        let _ = writeln!(
            self.log,
            "      conditions of the card binding: {}",
            conditions.iter().find(|(p, _)| p.contains("payment `card`")).map(|(_, c)| c.as_str()).unwrap_or("?")
        );
        let report = DayReport { log: self.log, figures, conditions };
        Ok(report)
    }
}

fn order_total(doc: &TaxDocument, shipping: Money) -> Result<Money, DayError> {
    doc.total_amount
        .checked_add(doc.total_tax)
        .and_then(|m| m.checked_add(shipping))
        .map_err(step_err(&format!("{} total", doc.code)))
}

impl fmt::Display for DayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.log)?;
        let checked = self.figures.intents.len();
        if self.books_balance() {
            writeln!(f, "      books balance: all {checked} payment intents match their gateways")
        } else {
            let bad: Vec<&str> =
                self.figures.intents.iter().filter(|i| !i.matches_gateway).map(|i| i.order.as_str()).collect();
            writeln!(
                f,
                "      BOOKS DO NOT BALANCE: {} of {checked} intents differ from their gateways: {}",
                bad.len(),
                bad.join(", ")
            )
        }
    }
}

fn clock_unix(clock: &ManualClock) -> i64 {
    use commerce_ports::Clock as _;
    clock.now().unix_timestamp()
}
