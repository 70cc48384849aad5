//! `commerce payments ...`: run payment intent operations from the shell against the configured store and
//! gateways.
//!
//! Output contract (scripts and other checks depend on it):
//! - success: exit 0, the intent as ONE JSON object on stdout (see [`intent_json`]; `reconcile-unknown` prints
//!   its pass's report instead: `examined`, `settled` (intents in this form), `retry_later` and `needs_operator`
//!   (`{"intent_id", "error"}`), `more`, and `next` (`{"updated_at", "intent_id"}` or null)): `intent_id`, `tenant`,
//!   `channel`, `tender`, `provider`, `status` (snake_case: `authorized`, `partially_captured`, `captured`,
//!   `partially_refunded`, `refunded`, `voided`, `failed`, `outcome_unknown`, `requires_authorization`),
//!   `currency`, the amounts `amount`, `authorized`, `captured`, `refunded`, `capturable`, `refundable` as
//!   `Money`'s display (and serde) form `"10.00 USD"`, the same amounts in integer minor units under
//!   `minor_units`, `provider_reference` (null when none), `reference`, `version`, `created_at`, `updated_at`
//!   (RFC 3339);
//! - refused or failed: exit 1, `{"error":{"kind":K,"message":M}}` on stdout, `K` the snake_case
//!   `ErrorKind` name (`declined`, `invalid_request`, `invalid_state`, `idempotency_conflict`,
//!   `outcome_unknown`, `not_found`, `configuration`, `unsupported`, ...). The error object may carry more
//!   fields: `intent_id` when an intent is concerned (a declined authorization leaves a `failed` intent),
//!   `retry` (`retryable`, `same_key_only`, `permanent`, `declined`, `exhausted`), `provider_code`,
//!   `decline_code`;
//! - usage errors (a missing or malformed flag, an unknown tender, an amount such as `10,00 USD`, a tender
//!   that needs `--payment-method` without one): exit 2, message on stderr naming the flag.
//!
//! Every invocation is a new process: state lives in the configuration's `[store]`. A `memory` store (or a
//! `memory` gateway) starts empty in every invocation, so nothing carries over from one command to the next;
//! a warning on stderr says so.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use commerce::{ChainSecrets, Config, EnvSecrets, FileSecrets, Integrations, WiringError};
use commerce_payments::{NewPayment, Operation, Payments, PaymentsError, TenderRouting, intent_id_for};
use commerce_ports::payment::{PaymentSnapshot, ProviderPaymentStatus};
use commerce_ports::stores::{IntentCursor, PaymentIntent, StoreSet};
use commerce_ports::{ChannelId, ErrorKind, IdempotencyKey, IntentId, Money, SystemClock, TenantId, TenderKind};
use time::format_description::well_known::Rfc3339;

/// The payments operations.
#[derive(Debug, Subcommand)]
pub(crate) enum PaymentsCommand {
    /// Authorize a payment (manual capture: capture it later with `capture`) and print the intent.
    Authorize(AuthorizeArgs),
    /// Capture an authorized intent: all that remains without `--amount`; final unless `--partial`.
    Capture(CaptureArgs),
    /// Refund a captured intent: all that remains refundable without `--amount`.
    Refund(RefundArgs),
    /// Cancel an authorization before anything is captured.
    Void(VoidArgs),
    /// Print an intent as stored (no provider call).
    Show(ShowArgs),
    /// Settle an intent whose outcome is unknown from the provider's view (`retrieve`), then print it. An
    /// intent with nothing pending is printed as it is, without a provider call.
    Reconcile(ShowArgs),
    /// Settle an intent from a view of the provider's payment read elsewhere (its dashboard, a settlement
    /// report), for what `reconcile` cannot ask (a card terminal's unknown refund), then print it. Amounts never
    /// move backwards; a pending call counts as applied when the view shows its effect.
    Settle(SettleArgs),
    /// One reconciler pass over the tenant's intents whose outcome is unknown, oldest first, each through the
    /// gateway its channel binds for its tender; prints a report (not an intent): `examined`, `settled` (the
    /// intents, as `show` prints them), `retry_later` and `needs_operator` (each `{"intent_id", "error"}`),
    /// and `next` (where the limit stopped the pass, `{"updated_at", "intent_id"}`, to pass back as
    /// `--after-updated-at` / `--after-intent` so the next pass continues there; null at the end of the
    /// listing). Exit 0 whenever the pass ran.
    ReconcileUnknown(SweepArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Configuration, secrets and tenant; every channel of the tenant is covered.
    #[command(flatten)]
    tenant: TenantTarget,
    /// At most this many intents in this pass.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue after this position (the previous pass's `next.updated_at`, RFC 3339); with `--after-intent`.
    #[arg(long, value_parser = parse_time, requires = "after_intent")]
    after_updated_at: Option<time::OffsetDateTime>,
    /// Continue after this intent (the previous pass's `next.intent_id`); with `--after-updated-at`.
    #[arg(long, value_parser = parse_intent, requires = "after_updated_at")]
    after_intent: Option<IntentId>,
}

fn parse_time(value: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(value, &Rfc3339).map_err(|e| format!("`{value}` is not an RFC 3339 time: {e}"))
}

#[derive(Debug, Args)]
pub(crate) struct SettleArgs {
    #[command(flatten)]
    target: Target,
    /// The intent id.
    #[arg(long, value_parser = parse_intent)]
    intent: IntentId,
    /// The provider's payment reference; default: the intent's.
    #[arg(long)]
    provider_reference: Option<String>,
    /// The provider's status of the payment: authorized, captured, pending, requires-action, voided,
    /// declined, failed.
    #[arg(long, value_parser = parse_provider_status)]
    provider_status: ProviderPaymentStatus,
    /// Authorized at the provider.
    #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
    authorized: Money,
    /// Captured at the provider; default: nothing.
    #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
    captured: Option<Money>,
    /// Refunded at the provider; default: nothing.
    #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
    refunded: Option<Money>,
}

fn parse_provider_status(value: &str) -> Result<ProviderPaymentStatus, String> {
    Ok(match value {
        "authorized" => ProviderPaymentStatus::Authorized,
        "captured" => ProviderPaymentStatus::Captured,
        "pending" => ProviderPaymentStatus::Pending,
        "requires-action" => ProviderPaymentStatus::RequiresAction,
        "voided" => ProviderPaymentStatus::Voided,
        "declined" => ProviderPaymentStatus::Declined,
        "failed" => ProviderPaymentStatus::Failed,
        other => {
            return Err(format!(
                "unknown provider status `{other}`: one of authorized, captured, pending, requires-action, voided, \
                 declined, failed"
            ));
        }
    })
}

/// Where the configuration, its secrets and the tenant are.
#[derive(Debug, Args)]
pub(crate) struct TenantTarget {
    /// The TOML configuration file; its `[store]` holds the intents between invocations.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Resolve `{ secret = "name" }` from files in this directory (after the environment).
    #[arg(long, value_name = "DIR")]
    secrets_dir: Option<PathBuf>,
    /// Prefix of environment variables holding secrets (`name` -> `<PREFIX>NAME`); must not be empty.
    #[arg(long, default_value = EnvSecrets::DEFAULT_PREFIX, value_parser = crate::secret_prefix)]
    secret_prefix: String,
    /// The tenant id.
    #[arg(long, value_parser = parse_tenant)]
    tenant: TenantId,
}

/// Where the configuration, its secrets and the intent's tenant and channel are.
#[derive(Debug, Args)]
pub(crate) struct Target {
    #[command(flatten)]
    source: TenantTarget,
    /// The sales channel id.
    #[arg(long, value_parser = parse_channel)]
    channel: ChannelId,
}

#[derive(Debug, Args)]
pub(crate) struct AuthorizeArgs {
    #[command(flatten)]
    target: Target,
    /// The tender kind: card, card-present, wallet, gift-card, cash, bank-transfer. It must be bound in the
    /// channel; an unbound tender is refused before any provider call.
    #[arg(long, value_parser = parse_tender)]
    tender: TenderKind,
    /// The amount, `<major units> <ISO 4217 code>`: `10.00 USD`, `1500 JPY`.
    #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
    amount: Money,
    /// The idempotency key: retrying with the same key returns the same intent without a second provider
    /// call; the intent id is derived from tenant and key.
    #[arg(long, value_parser = parse_key)]
    idempotency_key: IdempotencyKey,
    /// The payment method (a token, a saved method, a test name such as `pm_card_visa`); required for every
    /// tender but `cash`, which defaults to `cash`.
    #[arg(long, value_name = "PM")]
    payment_method: Option<String>,
    /// The merchant's reference (order number); defaults to the idempotency key.
    #[arg(long)]
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    #[command(flatten)]
    target: Target,
    /// The intent id (as printed by `authorize`).
    #[arg(long, value_parser = parse_intent)]
    intent: IntentId,
    /// The amount to capture; default: all that remains capturable.
    #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
    amount: Option<Money>,
    /// Not a final capture: further captures may follow (only with gateways supporting multiple captures).
    /// Without it the capture is final: the intent becomes `captured` even below the authorized amount and
    /// the rest of the authorization is released.
    #[arg(long)]
    partial: bool,
    /// The idempotency key of this capture.
    #[arg(long, value_parser = parse_key)]
    idempotency_key: IdempotencyKey,
}

#[derive(Debug, Args)]
pub(crate) struct RefundArgs {
    #[command(flatten)]
    target: Target,
    /// The intent id.
    #[arg(long, value_parser = parse_intent)]
    intent: IntentId,
    /// The amount to refund; default: all that remains refundable (captured minus refunded).
    #[arg(long, value_parser = parse_amount, allow_hyphen_values = true)]
    amount: Option<Money>,
    /// The idempotency key of this refund.
    #[arg(long, value_parser = parse_key)]
    idempotency_key: IdempotencyKey,
}

#[derive(Debug, Args)]
pub(crate) struct VoidArgs {
    #[command(flatten)]
    target: Target,
    /// The intent id.
    #[arg(long, value_parser = parse_intent)]
    intent: IntentId,
    /// The idempotency key of this void.
    #[arg(long, value_parser = parse_key)]
    idempotency_key: IdempotencyKey,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    target: Target,
    /// The intent id.
    #[arg(long, value_parser = parse_intent)]
    intent: IntentId,
}

fn parse_tenant(value: &str) -> Result<TenantId, String> {
    TenantId::new(value).map_err(|e| e.to_string())
}

fn parse_channel(value: &str) -> Result<ChannelId, String> {
    ChannelId::new(value).map_err(|e| e.to_string())
}

fn parse_intent(value: &str) -> Result<IntentId, String> {
    IntentId::new(value).map_err(|e| e.to_string())
}

fn parse_key(value: &str) -> Result<IdempotencyKey, String> {
    IdempotencyKey::new(value).map_err(|e| e.to_string())
}

fn parse_tender(value: &str) -> Result<TenderKind, String> {
    TenderKind::parse(value).ok_or_else(|| {
        let known: Vec<&str> = TenderKind::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown tender `{value}`; known: {}", known.join(", "))
    })
}

fn parse_amount(value: &str) -> Result<Money, String> {
    Money::parse(value)
        .map_err(|e| format!("{e}; write `<amount> <CURRENCY>` with a `.` decimal point, e.g. `10.00 USD`"))
}

/// The payment method to send: `--payment-method`, or for cash (which has no instrument) the tender's name.
///
/// # Errors
/// The usage message when a tender needing an instrument has none or an empty one.
fn payment_method(tender: TenderKind, given: Option<&str>) -> Result<String, String> {
    match given {
        Some(pm) if !pm.trim().is_empty() => Ok(pm.to_owned()),
        Some(_) => Err("--payment-method must not be empty".to_owned()),
        None if tender == TenderKind::Cash => Ok(TenderKind::Cash.as_str().to_owned()),
        None => Err(format!(
            "--payment-method is required for tender `{tender}` (a token, a saved method or a test name such as \
             `pm_card_visa`); only `cash` needs none"
        )),
    }
}

/// A failure printed as `{"error":{...}}` with exit 1.
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    message: String,
    intent: Option<IntentId>,
    retry: Option<serde_json::Value>,
    provider_code: Option<String>,
    decline_code: Option<String>,
}

impl Failure {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.as_str(),
            message: message.into(),
            intent: None,
            retry: None,
            provider_code: None,
            decline_code: None,
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({ "kind": self.kind, "message": self.message });
        if let Some(object) = error.as_object_mut() {
            if let Some(intent) = &self.intent {
                object.insert("intent_id".to_owned(), intent.as_str().into());
            }
            if let Some(retry) = &self.retry {
                object.insert("retry".to_owned(), retry.clone());
            }
            if let Some(code) = &self.provider_code {
                object.insert("provider_code".to_owned(), code.clone().into());
            }
            if let Some(code) = &self.decline_code {
                object.insert("decline_code".to_owned(), code.clone().into());
            }
        }
        serde_json::json!({ "error": error })
    }
}

impl From<PaymentsError> for Failure {
    fn from(e: PaymentsError) -> Failure {
        Failure::from(&e)
    }
}

impl From<&PaymentsError> for Failure {
    fn from(e: &PaymentsError) -> Failure {
        Failure {
            kind: e.kind().as_str(),
            message: e.message().to_owned(),
            intent: e.intent().cloned(),
            retry: serde_json::to_value(e.retry()).ok(),
            provider_code: e.provider_code().map(str::to_owned),
            decline_code: e.decline().and_then(|d| d.decline_code.clone()),
        }
    }
}

impl From<WiringError> for Failure {
    fn from(e: WiringError) -> Failure {
        let kind = match e {
            WiringError::TenderNotBound { .. }
            | WiringError::UnknownTenant { .. }
            | WiringError::UnknownChannel { .. } => ErrorKind::InvalidRequest,
            _ => ErrorKind::Configuration,
        };
        Failure::new(kind, e.to_string())
    }
}

/// Runs one payments command; see the module docs for the output contract.
pub(crate) async fn run(command: PaymentsCommand) -> ExitCode {
    if let PaymentsCommand::Authorize(args) = &command
        && let Err(message) = payment_method(args.tender, args.payment_method.as_deref())
    {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    match execute(command).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{}", failure.json());
            ExitCode::from(1)
        }
    }
}

/// The configuration built, with the store and the service over it.
struct Wired {
    integrations: Integrations,
    stores: StoreSet,
    payments: Payments,
}

async fn wire(target: &Target) -> Result<Wired, Failure> {
    wire_tenant(&target.source, Some(&target.channel)).await
}

/// [`wire`] for a tenant (checking the channel too when given).
async fn wire_tenant(source: &TenantTarget, channel: Option<&ChannelId>) -> Result<Wired, Failure> {
    let TenantTarget { config, secrets_dir, secret_prefix, tenant } = source;
    let mut secrets = ChainSecrets::new().with(EnvSecrets::with_prefix(secret_prefix.to_owned()));
    if let Some(dir) = secrets_dir {
        secrets.push(FileSecrets::new(dir.to_path_buf()));
    }
    let registry = crate::registry();
    let built = match Config::from_file(config) {
        Ok(config) => Integrations::build(&config, &registry, &secrets, Arc::new(SystemClock)).await,
        Err(errors) => Err(errors),
    };
    let integrations = built.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Failure::new(
            ErrorKind::Configuration,
            format!("{} error(s); nothing was built: {}", lines.len(), lines.join("; ")),
        )
    })?;
    // An unknown tenant or channel is named with the known ones, whatever the command.
    match channel {
        Some(channel) => {
            integrations.channel_kind(tenant, channel)?;
        }
        None => {
            integrations.channels(tenant)?;
        }
    }
    let Some(stores) = integrations.stores() else {
        return Err(Failure::new(
            ErrorKind::Configuration,
            format!(
                "{} has no [store] section; payment intents need one (e.g. `adapter = \"sqlite\"` with a file `path`)",
                config.display()
            ),
        ));
    };
    if let Some(store) = integrations.bindings().iter().find(|b| b.path == commerce::integrations::paths::store())
        && store.adapter == "memory"
    {
        eprintln!(
            "warning: the [store] adapter is `memory`: intents and idempotency keys are lost when this command \
             exits; use `sqlite` (or `postgres`) to operate on intents across invocations"
        );
    }
    let payments = Payments::from_stores(&stores, Arc::new(SystemClock));
    Ok(Wired { integrations, stores, payments })
}

fn warn_if_memory_gateway(adapter: &str) {
    if adapter == "memory" {
        eprintln!(
            "warning: the gateway adapter is `memory`: the in-memory provider starts empty in every invocation, so \
             captures, refunds and voids of intents authorized by an earlier invocation find nothing there"
        );
    }
}

/// Runs a command: the intent as JSON, or (`reconcile-unknown`) the pass's report.
async fn execute(command: PaymentsCommand) -> Result<serde_json::Value, Failure> {
    let intent = match command {
        PaymentsCommand::Authorize(args) => authorize(args).await,
        PaymentsCommand::Capture(args) => {
            let wired = wire(&args.target).await?;
            let (intent, gateway) = load(&wired, &args.target, &args.intent).await?;
            Ok(wired
                .payments
                .capture(
                    gateway.gateway.as_ref(),
                    &intent.tenant,
                    &intent.id,
                    args.amount,
                    !args.partial,
                    &args.idempotency_key,
                )
                .await?)
        }
        PaymentsCommand::Refund(args) => {
            let wired = wire(&args.target).await?;
            let (intent, gateway) = load(&wired, &args.target, &args.intent).await?;
            let amount = match args.amount {
                Some(amount) => amount,
                None => refund_everything(&wired, &intent, &args.idempotency_key).await?,
            };
            Ok(wired
                .payments
                .refund(gateway.gateway.as_ref(), &intent.tenant, &intent.id, amount, &args.idempotency_key)
                .await?)
        }
        PaymentsCommand::Void(args) => {
            let wired = wire(&args.target).await?;
            let (intent, gateway) = load(&wired, &args.target, &args.intent).await?;
            Ok(wired.payments.void(gateway.gateway.as_ref(), &intent.tenant, &intent.id, &args.idempotency_key).await?)
        }
        PaymentsCommand::Show(args) => {
            let wired = wire(&args.target).await?;
            read(&wired, &args.target, &args.intent).await
        }
        PaymentsCommand::Reconcile(args) => {
            let wired = wire(&args.target).await?;
            let (intent, gateway) = load(&wired, &args.target, &args.intent).await?;
            Ok(wired.payments.reconcile(gateway.gateway.as_ref(), &intent.tenant, &intent.id).await?)
        }
        PaymentsCommand::ReconcileUnknown(args) => return sweep(&args).await,
        PaymentsCommand::Settle(args) => {
            let wired = wire(&args.target).await?;
            let intent = read(&wired, &args.target, &args.intent).await?;
            let reference = args.provider_reference.or_else(|| intent.provider_reference.clone()).ok_or_else(|| {
                Failure::new(
                    ErrorKind::InvalidRequest,
                    format!("intent `{}` has no provider reference yet: give --provider-reference", intent.id),
                )
            })?;
            let zero = Money::zero(args.authorized.currency());
            let mut view = PaymentSnapshot::authorized(reference, args.provider_status, args.authorized);
            (view.captured, view.refunded) = (args.captured.unwrap_or(zero), args.refunded.unwrap_or(zero));
            Ok(wired.payments.reconcile_from(&intent.tenant, &intent.id, &view).await?)
        }
    }?;
    Ok(intent_json(&intent))
}

/// `reconcile-unknown`: one reconciler pass, as a JSON report.
async fn sweep(args: &SweepArgs) -> Result<serde_json::Value, Failure> {
    let wired = wire_tenant(&args.tenant, None).await?;
    let integrations = &wired.integrations;
    let warned = std::sync::atomic::AtomicBool::new(false);
    // The gateway the intent's channel binds for its tender, if it is still the adapter that authorized the
    // intent and takes its tender; otherwise the intent needs an operator (never another provider's answer).
    let gateway_for = |intent: &PaymentIntent| {
        let binding = integrations.gateway_binding(&intent.tenant, &intent.channel, &intent.tender).ok()?;
        let fits =
            binding.adapter == intent.provider && binding.gateway.capabilities().tenders.contains(&intent.tender);
        if fits && binding.adapter == "memory" && !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            warn_if_memory_gateway(&binding.adapter);
        }
        fits.then_some(binding.gateway)
    };
    let after = args.after_updated_at.zip(args.after_intent.clone()).map(|(at, id)| IntentCursor::new(at, id));
    let report = wired.payments.reconcile_unknown(&args.tenant.tenant, gateway_for, args.limit, after).await?;
    let errors = |list: &[(IntentId, PaymentsError)]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|(id, e)| serde_json::json!({ "intent_id": id.as_str(), "error": Failure::from(e).json()["error"] }))
            .collect()
    };
    Ok(serde_json::json!({
        "examined": report.examined,
        "settled": report.settled.iter().map(intent_json).collect::<Vec<_>>(),
        "retry_later": errors(&report.retry_later),
        "needs_operator": errors(&report.needs_operator),
        "more": report.next.is_some(),
        "next": report.next.as_ref().map(|c| serde_json::json!({
            "updated_at": c.updated_at.format(&Rfc3339).unwrap_or_else(|_| c.updated_at.to_string()),
            "intent_id": c.id.as_str(),
        })),
    }))
}

async fn authorize(args: AuthorizeArgs) -> Result<PaymentIntent, Failure> {
    let method = payment_method(args.tender, args.payment_method.as_deref())
        .map_err(|message| Failure::new(ErrorKind::InvalidRequest, message))?;
    let wired = wire(&args.target).await?;
    let (tenant, channel) = (&args.target.source.tenant, &args.target.channel);
    // The channel's bindings as the domain's routing, which refuses an unbound tender before any call.
    let mut routing = TenderRouting::new(tenant.clone());
    for tender in wired.integrations.tenders(tenant, channel)? {
        let binding = wired.integrations.gateway_binding(tenant, channel, &tender)?;
        if tender == args.tender {
            warn_if_memory_gateway(&binding.adapter);
        }
        routing = routing.bind(channel.clone(), tender, binding.adapter, binding.gateway);
    }
    // Refused here (as `authorize_in` would) so the error names no intent an earlier use of the key left.
    routing.route(channel, args.tender)?;
    let reference = args.reference.unwrap_or_else(|| args.idempotency_key.as_str().to_owned());
    let payment = NewPayment::new(tenant.clone(), channel.clone(), args.tender, args.amount, method, reference);
    match wired.payments.authorize_in(&routing, payment, &args.idempotency_key).await {
        Ok(intent) => Ok(intent),
        Err(e) => {
            let mut failure = Failure::from(e);
            // A refused authorization leaves an intent (e.g. `failed` after a decline): name it.
            if failure.intent.is_none()
                && let Ok(id) = intent_id_for(tenant, &args.idempotency_key)
                && wired.payments.get(tenant, &id).await.is_ok()
            {
                failure.intent = Some(id);
            }
            Err(failure)
        }
    }
}

/// Reads an intent of the tenant and checks that it belongs to `--channel`.
async fn read(wired: &Wired, target: &Target, id: &IntentId) -> Result<PaymentIntent, Failure> {
    let intent = wired.payments.get(&target.source.tenant, id).await?;
    if intent.channel != target.channel {
        let mut failure = Failure::new(
            ErrorKind::InvalidRequest,
            format!("intent `{id}` belongs to channel `{}`, not `{}`", intent.channel, target.channel),
        );
        failure.intent = Some(id.clone());
        return Err(failure);
    }
    Ok(intent)
}

/// Reads the intent and the gateway its channel binds for its tender, which must still be the adapter that
/// authorized it.
async fn load(
    wired: &Wired,
    target: &Target,
    id: &IntentId,
) -> Result<(PaymentIntent, commerce::GatewayBinding), Failure> {
    let intent = read(wired, target, id).await?;
    let binding = wired.integrations.gateway_binding(&intent.tenant, &intent.channel, &intent.tender)?;
    if binding.adapter != intent.provider {
        let mut failure = Failure::new(
            ErrorKind::Configuration,
            format!(
                "intent `{id}` was authorized through `{}`, but {} is now bound to `{}`",
                intent.provider, binding.path, binding.adapter
            ),
        );
        failure.intent = Some(id.clone());
        return Err(failure);
    }
    warn_if_memory_gateway(&binding.adapter);
    Ok((intent, binding))
}

/// The amount of a refund without `--amount`: all that remains refundable, or, when this key already
/// completed a refund of this intent, that refund's amount (so a retry replays it instead of conflicting).
async fn refund_everything(wired: &Wired, intent: &PaymentIntent, key: &IdempotencyKey) -> Result<Money, Failure> {
    if let Some(amount) = completed_refund(wired, intent, key).await {
        return Ok(amount);
    }
    intent.captured.checked_sub(intent.refunded).map_err(|e| {
        Failure::new(
            ErrorKind::Unexpected,
            format!("cannot compute the refundable amount of intent `{}`: {e}", intent.id),
        )
    })
}

/// The amount refunded by a completed refund under `key`, read from the stored outcome (`{"ok": intent}`)
/// and the history event that produced that intent version.
async fn completed_refund(wired: &Wired, intent: &PaymentIntent, key: &IdempotencyKey) -> Option<Money> {
    let record = wired.stores.idempotency.get(&intent.tenant, key).await.ok()??;
    if record.operation != Operation::Refund.as_str() {
        return None;
    }
    let refunded = commerce_payments::decode_outcome(Operation::Refund, record.response.as_deref()?).ok()?;
    if refunded.id != intent.id {
        return None;
    }
    let version = refunded.version;
    let history = wired.payments.history(&intent.tenant, &intent.id).await.ok()?;
    history.iter().find(|e| e.sequence == version && e.operation == "refund").and_then(|e| e.amount)
}

/// The intent as printed on success (see the module docs).
pub(crate) fn intent_json(intent: &PaymentIntent) -> serde_json::Value {
    let capturable = intent.authorized.checked_sub(intent.captured).ok();
    let refundable = intent.captured.checked_sub(intent.refunded).ok();
    let time = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    serde_json::json!({
        "intent_id": intent.id.as_str(),
        "tenant": intent.tenant.as_str(),
        "channel": intent.channel.as_str(),
        "tender": intent.tender.as_str(),
        "provider": intent.provider,
        "status": intent.status.as_str(),
        "currency": intent.amount.currency().code(),
        "amount": intent.amount.to_string(),
        "authorized": intent.authorized.to_string(),
        "captured": intent.captured.to_string(),
        "refunded": intent.refunded.to_string(),
        "capturable": capturable.map(|m| m.to_string()),
        "refundable": refundable.map(|m| m.to_string()),
        "minor_units": {
            "amount": intent.amount.minor(),
            "authorized": intent.authorized.minor(),
            "captured": intent.captured.minor(),
            "refunded": intent.refunded.minor(),
            "capturable": capturable.map(|m| m.minor()),
            "refundable": refundable.map(|m| m.minor()),
        },
        "provider_reference": intent.provider_reference,
        "reference": intent.reference,
        "version": intent.version,
        "created_at": time(intent.created_at),
        "updated_at": time(intent.updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_need_a_decimal_point_and_a_currency() {
        assert_eq!(parse_amount("10.00 USD").map(|m| m.minor()), Ok(1_000));
        let e = parse_amount("10,00 USD").err().unwrap_or_default();
        assert!(e.contains("10,00 USD") && e.contains("10.00 USD"), "{e}");
        assert!(parse_amount("10.00").is_err());
        assert!(parse_amount("10.00 XXQ").is_err());
    }

    #[test]
    fn tenders_are_configuration_names() {
        assert_eq!(parse_tender("card-present"), Ok(TenderKind::CardPresent));
        let e = parse_tender("cheque").err().unwrap_or_default();
        assert!(e.contains("unknown tender `cheque`") && e.contains("bank-transfer"), "{e}");
    }

    #[test]
    fn only_cash_goes_without_a_payment_method() {
        assert_eq!(payment_method(TenderKind::Cash, None), Ok("cash".to_owned()));
        assert_eq!(payment_method(TenderKind::Card, Some("pm_card_visa")), Ok("pm_card_visa".to_owned()));
        for tender in [TenderKind::Card, TenderKind::CardPresent, TenderKind::Wallet, TenderKind::GiftCard] {
            let e = payment_method(tender, None).err().unwrap_or_default();
            assert!(e.contains("--payment-method is required") && e.contains(tender.as_str()), "{e}");
        }
        assert!(payment_method(TenderKind::Card, Some(" ")).is_err());
    }
}
