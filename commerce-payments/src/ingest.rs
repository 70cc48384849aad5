//! [`WebhookIngestor`]: verify, deduplicate, apply and acknowledge a provider's webhook deliveries.
//!
//! The pipeline, per delivery:
//! 1. the body size is bounded (413, before anything else reads it);
//! 2. the verifier checks the signature and parses the events (a rejection is a 400 with
//!    `{"error":{"kind":...,"message":...}}`, and nothing is recorded);
//! 3. each event is looked up by its payment's provider reference in this tenant's intents, else by its
//!    merchant reference (for an authorization whose outcome is unknown, which has no provider reference
//!    yet), and applied with [`state::apply_webhook`], which never moves an intent backwards and is
//!    idempotent by event id;
//! 4. the event id is recorded in the [`WebhookEventStore`] *after* the intent change is stored, so a crash
//!    in between ends in a redelivery that is recognised from the intent's history;
//! 5. only then is the delivery acknowledged with the verifier's [`ack`](WebhookVerifier::ack).
//!
//! A store failure answers 503, never 200, so the provider delivers again. An event for a payment this
//! tenant does not know is recorded and acknowledged (it may belong to another system sharing the provider
//! account) and counted in [`IngestReport::unknown_payments`] — unless it may belong to an authorization
//! whose intent is not stored yet or has no provider reference: an authorization with the event's merchant
//! reference under way in the [`Payments`] this ingestor was built from (its intent is written when the
//! provider's answer is, decision 012; see decision 015); when the fresh hold is set
//! ([`WebhookIngestor::with_fresh_hold`], off by default), an authorization, authorization failure or capture
//! event that happened less than that long ago, whose authorization may be under way in another service
//! instance sharing the stores; or, for an event without a merchant reference, an intent of this provider that
//! became `OutcomeUnknown` without a provider reference less than [`DEFAULT_UNKNOWN_HOLD`] ago (configurable).
//! Then the event is not recorded, the delivery answers 503, and the provider delivers it again later, when
//! the intent can be found.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use commerce_ports::payment::TenderKind;
use commerce_ports::stores::{
    IntentEvent, IntentStatus, PaymentIntent, PaymentIntentStore, WebhookEventStore, read_snapshot,
};
use commerce_ports::webhook::{PaymentEventKind, WebhookError, WebhookEvent, WebhookRequest, WebhookVerifier};
use commerce_ports::{Clock, ErrorKind, IdempotencyKey, TenantId};
use http::{Response, StatusCode, header};

use crate::error::PaymentsError;
use crate::in_flight::InFlight;
use crate::service::Payments;
use crate::state::{self, Operation, Transition, WebhookOutcome};

/// The default largest accepted body: 256 KiB.
pub const DEFAULT_MAX_WEBHOOK_BODY: usize = 256 * 1024;

const OP: Operation = Operation::Webhook;

/// How long, by default, events that may belong to an authorization whose outcome is unknown are held back
/// (see [`WebhookIngestor::with_unknown_hold`]): one hour.
pub const DEFAULT_UNKNOWN_HOLD: time::Duration = time::Duration::hours(1);

/// A fresh hold for [`WebhookIngestor::with_fresh_hold`] when several service instances share the stores:
/// two minutes, longer than an authorization's provider call and the default lease (30 s) with room for the
/// providers' clocks. Use twice the lease if that is longer.
pub const RECOMMENDED_FRESH_HOLD: std::time::Duration = std::time::Duration::from_secs(120);

/// How many `OutcomeUnknown` intents are looked at when an event matches no intent.
const UNKNOWN_SCAN_LIMIT: u32 = 1_000;

/// What one delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestReport {
    /// Events that changed an intent (or settled its pending call).
    pub applied: u32,
    /// Events delivered before (recorded, or already in the intent's history).
    pub duplicates: u32,
    /// Events for a payment this tenant does not know; recorded and acknowledged.
    pub unknown_payments: u32,
    /// Events with nothing to change: already reflected, stale, for a terminal intent, without a payment
    /// reference, arriving while another call's outcome is unknown; also a refused attempt's own failure (its
    /// intent keeps no provider reference) and a card-present sale's notification that its intent reflects (the
    /// intent holds the terminal's transaction id, the notification the provider's reference and the sale's
    /// key).
    pub ignored: u32,
    /// Events contradicting the intent (a void after a capture, an amount the intent cannot hold), recorded in
    /// its history without a change; also events the intent cannot take without breaking an invariant (not
    /// retried: a redelivery cannot fix them; reconcile the intent).
    pub conflicts: u32,
}

/// Why a delivery was not acknowledged.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is larger than allowed (413).
    TooLarge {
        /// Its size in bytes (the declared `Content-Length` when it was refused on that).
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// The verifier rejected the delivery (400); nothing was recorded.
    Rejected(WebhookError),
    /// A store failed, or an event matched no intent while an authorization it may belong to is running or
    /// its outcome is unknown (503); the provider will deliver again, and what was stored is recognised then.
    Unavailable(PaymentsError),
}

impl IngestError {
    /// The HTTP status to answer: 413, 400 or 503.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::TooLarge { .. } => 413,
            IngestError::Rejected(_) => 400,
            IngestError::Unavailable(_) => 503,
        }
    }

    /// A stable snake_case kind: `payload_too_large`, the [`WebhookErrorKind`](commerce_ports::webhook::WebhookErrorKind)
    /// name of a rejection, or `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            IngestError::TooLarge { .. } => "payload_too_large",
            IngestError::Rejected(e) => e.kind.as_str(),
            IngestError::Unavailable(_) => "unavailable",
        }
    }

    /// The message.
    pub fn message(&self) -> String {
        match self {
            IngestError::TooLarge { size, limit } => {
                format!("body of {size} bytes exceeds the limit of {limit} bytes")
            }
            IngestError::Rejected(e) => e.message.clone(),
            IngestError::Unavailable(e) => format!("{}; deliver again later", e.message()),
        }
    }

    /// The JSON body: `{"error":{"kind":...,"message":...}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let body = serde_json::json!({ "error": { "kind": self.kind(), "message": self.message() } });
        body.to_string().into_bytes()
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "webhook not accepted ({}, {}): {}", self.status(), self.kind(), self.message())
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IngestError::TooLarge { .. } => None,
            IngestError::Rejected(e) => Some(e),
            IngestError::Unavailable(e) => Some(e),
        }
    }
}

/// What looking an event's intent up found.
#[derive(Debug, PartialEq)]
enum Found {
    One(Box<PaymentIntent>),
    /// Several intents share the event's merchant reference and none has its provider reference.
    Several,
    /// None; `referenced` when an intent of this provider has the event's merchant reference (in a terminal
    /// state, or with another provider reference).
    None {
        referenced: bool,
    },
}

/// What applying one event gave.
enum Applied {
    Changed,
    Duplicate,
    Ignored,
    Conflict,
}

/// Ingests one provider's webhook deliveries for one tenant (one endpoint per tenant and binding).
///
/// Mount [`handle`](WebhookIngestor::handle) in any HTTP server; it takes and returns `http` types only.
/// Servers should bound the body they read to [`max_body_bytes`](WebhookIngestor::max_body_bytes) too
/// (axum's `DefaultBodyLimit`, hyper's `Limited`): `handle` refuses a larger declared `Content-Length` before
/// looking at the body, and a larger body before verifying it.
///
/// Event ids are recorded under this ingestor's tenant and the binding's provider name (the adapter name stored
/// on the intents, which is also the name intents are looked up with), so tenants sharing a provider account
/// each process every event.
#[derive(Clone)]
pub struct WebhookIngestor {
    intents: Arc<dyn PaymentIntentStore>,
    events: Arc<dyn WebhookEventStore>,
    clock: Arc<dyn Clock>,
    tenant: TenantId,
    provider: String,
    verifier: Arc<dyn WebhookVerifier>,
    max_body_bytes: usize,
    in_flight: Arc<InFlight>,
    unknown_hold: time::Duration,
    fresh_hold: time::Duration,
}

impl fmt::Debug for WebhookIngestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookIngestor")
            .field("tenant", &self.tenant)
            .field("provider", &self.provider)
            .field("verifier", &self.verifier)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("unknown_hold", &self.unknown_hold)
            .field("fresh_hold", &self.fresh_hold)
            .finish_non_exhaustive()
    }
}

impl WebhookIngestor {
    /// An ingestor over the intents and clock of `payments`, recording event ids in `events`, for `tenant`'s
    /// binding whose adapter is `provider` (`stripe`), verifying with `verifier`.
    ///
    /// Build it from the `Payments` that authorizes (or a clone of it): an event for an authorization that
    /// service has under way is then delivered again rather than dropped (decision 015). Another `Payments`
    /// built over the same stores does not share that knowledge.
    pub fn new(
        payments: &Payments,
        events: Arc<dyn WebhookEventStore>,
        tenant: TenantId,
        provider: impl Into<String>,
        verifier: Arc<dyn WebhookVerifier>,
    ) -> WebhookIngestor {
        WebhookIngestor {
            intents: payments.intents().clone(),
            events,
            clock: payments.clock().clone(),
            tenant,
            provider: provider.into(),
            verifier,
            max_body_bytes: DEFAULT_MAX_WEBHOOK_BODY,
            unknown_hold: DEFAULT_UNKNOWN_HOLD,
            fresh_hold: time::Duration::ZERO,
            in_flight: payments.in_flight().clone(),
        }
    }

    /// Holds back (answers 503 to, without recording) an event that matches no intent, may start a payment
    /// (authorization, authorization failure, capture) and happened less than `hold` ago by the provider's
    /// clock ([`WebhookEvent::occurred_at`]): its authorization may be under way in another service instance
    /// sharing these stores, whose intent is written only with the provider's answer (decision 012). The
    /// provider delivers it again and the redelivery finds the intent. Off by default (`Duration::ZERO`);
    /// [`RECOMMENDED_FRESH_HOLD`] suits several instances behind one webhook endpoint.
    ///
    /// The price (decision 015): events of payments that are not this tenant's (another system or tenant
    /// sharing the provider account) are acknowledged only on a delivery after the hold, so they count as
    /// failed deliveries at the provider once. An event without a time, or whose time is further than `hold`
    /// from now either way (a clock that cannot be trusted), is not held back; nor is an authorization failure
    /// whose merchant reference an intent of this tenant has (a refused attempt's own news), nor the
    /// notification of a card-present sale whose merchant reference is the key its intent was authorized under
    /// and which that intent already reflects (decision 016; counted as ignored). Adyen's `eventDate`
    /// is outside its notification signature: a rewritten one can only shorten or lengthen this hold. The same
    /// service's own authorizations are recognised without this setting, precisely.
    pub fn with_fresh_hold(mut self, hold: std::time::Duration) -> WebhookIngestor {
        self.fresh_hold = time::Duration::try_from(hold).unwrap_or(time::Duration::MAX);
        self
    }

    /// Sets how long after an authorization's outcome became unknown (with no provider reference) events
    /// without a merchant reference that match no intent are answered 503 rather than acknowledged (default
    /// [`DEFAULT_UNKNOWN_HOLD`]).
    pub fn with_unknown_hold(mut self, hold: std::time::Duration) -> WebhookIngestor {
        self.unknown_hold = time::Duration::try_from(hold).unwrap_or(time::Duration::MAX);
        self
    }

    /// Sets the largest accepted body.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> WebhookIngestor {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The largest accepted body.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Handles an HTTP delivery: the verifier's acknowledgement once everything is durable, otherwise 413, 400
    /// or 503 with `{"error":{"kind":...,"message":...}}`.
    pub async fn handle(&self, request: http::Request<Bytes>) -> Response<Bytes> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let limit = u64::try_from(self.max_body_bytes).unwrap_or(u64::MAX);
        if let Some(size) = declared.filter(|size| *size > limit) {
            return error_response(&IngestError::TooLarge { size, limit: self.max_body_bytes });
        }
        let (parts, body) = request.into_parts();
        if body.len() > self.max_body_bytes {
            let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
            return error_response(&IngestError::TooLarge { size, limit: self.max_body_bytes });
        }
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let webhook = WebhookRequest::new(headers, Vec::from(body));
        match self.ingest(&webhook).await {
            Ok(_) => {
                let ack = self.verifier.ack();
                let status = StatusCode::from_u16(ack.status).unwrap_or(StatusCode::OK);
                response(status, ack.content_type, Bytes::from(ack.body))
            }
            Err(e) => error_response(&e),
        }
    }

    /// Verifies a delivery and applies its events; `Ok` means everything is durable and the delivery may be
    /// acknowledged.
    ///
    /// # Errors
    /// [`IngestError::TooLarge`], [`IngestError::Rejected`] (nothing recorded), [`IngestError::Unavailable`]
    /// (a store failed; events handled before the failure are recognised on redelivery).
    pub async fn ingest(&self, request: &WebhookRequest) -> Result<IngestReport, IngestError> {
        if request.body.len() > self.max_body_bytes {
            let size = u64::try_from(request.body.len()).unwrap_or(u64::MAX);
            return Err(IngestError::TooLarge { size, limit: self.max_body_bytes });
        }
        let events = self.verifier.verify(request, self.clock.now()).map_err(IngestError::Rejected)?;
        let mut report = IngestReport::default();
        for event in &events {
            self.ingest_event(event, &mut report).await.map_err(IngestError::Unavailable)?;
        }
        Ok(report)
    }

    async fn ingest_event(&self, event: &WebhookEvent, report: &mut IngestReport) -> Result<(), PaymentsError> {
        let store = |e| PaymentsError::from_store(OP, None, e);
        if self.events.contains(&self.tenant, &self.provider, &event.event_id).await.map_err(store)? {
            bump(&mut report.duplicates);
            return Ok(());
        }
        let concerns_payment = event.provider_reference.is_some() || event.merchant_reference.is_some();
        let applied = match self.find_intent(event).await? {
            Found::One(intent) => Some(self.apply(*intent, event).await?),
            found if concerns_payment => {
                // The event may be the answer of an authorization still under way here (or whose outcome could
                // not be stored yet), whose intent is written with the provider's answer: ask for a redelivery,
                // which finds the intent. Only by merchant reference: an event without one cannot be told
                // apart from another system's, and holding those back would hold them for good. An event naming
                // no provider reference whose merchant reference an intent has concerns that intent, though it
                // cannot be applied to it; one with a provider reference is held back when no intent could take
                // it (providers name their payment in every event of their own).
                // An authorization under way in another instance is not known here; an event that may be its
                // answer and happened moments ago is held back too, for a bounded time, when the fresh hold is set (decision 015).
                // News of a payment of ours that its intent already reflects (a refused attempt's own failure, a
                // card-present sale's notification): acknowledged as ignored, not as another system's payment.
                let mut reflected = false;
                if let Found::None { referenced } = found
                    && (event.provider_reference.is_some() || !referenced)
                {
                    let running = event
                        .merchant_reference
                        .as_deref()
                        .filter(|reference| self.in_flight.holds(&self.tenant, &self.provider, reference));
                    // A refusal whose merchant reference an intent of ours has is that refused attempt's own
                    // news (its answer already failed the intent): not held back.
                    let refusal_of_ours = referenced && event.kind == PaymentEventKind::AuthorizationFailed;
                    let why = match running {
                        Some(reference) => Some(format!("while the authorization of `{reference}` is under way")),
                        None if refusal_of_ours => {
                            reflected = true;
                            None
                        }
                        None => {
                            // A card-present sale's own news: its intent is there, written from the terminal's
                            // answer under another reference; holding it back would find nothing more later.
                            reflected = self.reflected_card_present_sale(event).await?;
                            self.fresh(event).filter(|_| !reflected).map(|age| {
                                format!("{age} after it happened; its authorization may be under way elsewhere")
                            })
                        }
                    };
                    if let Some(why) = why {
                        return Err(PaymentsError::new(
                            ErrorKind::Unavailable,
                            OP,
                            format!("event `{}` matches no intent {why}", event.event_id),
                        ));
                    }
                }
                // The event may settle an authorization whose outcome is unknown: such an intent has no
                // provider reference yet, and an event without a merchant reference cannot find it (nor can
                // one whose merchant reference several such intents share). Leave the event unrecorded and ask
                // for a redelivery, so it applies once a retry with the key gives the intent its provider
                // reference; but only for `unknown_hold` after the intent became unknown, so another system's
                // events are not held back for good (a provider disables an endpoint that keeps failing).
                if (event.merchant_reference.is_none() || found == Found::Several)
                    && let Some(waiting) = self.unknown_authorization().await?
                {
                    return Err(PaymentsError::new(
                        ErrorKind::Unavailable,
                        OP,
                        format!(
                            "event `{}` matches no intent while intent `{}` awaits the outcome of its authorization",
                            event.event_id, waiting.id
                        ),
                    )
                    .with_intent(waiting.id));
                }
                bump(if reflected { &mut report.ignored } else { &mut report.unknown_payments });
                None
            }
            _ => None,
        };
        let new =
            self.events.record(&self.tenant, &self.provider, &event.event_id, self.clock.now()).await.map_err(store)?;
        match applied {
            Some(Applied::Changed) => bump(&mut report.applied),
            Some(Applied::Conflict) => bump(&mut report.conflicts),
            Some(Applied::Ignored) if new => bump(&mut report.ignored),
            Some(Applied::Duplicate | Applied::Ignored) => bump(&mut report.duplicates),
            None if !concerns_payment => {
                if new {
                    bump(&mut report.ignored);
                } else {
                    bump(&mut report.duplicates);
                }
            }
            None => {}
        }
        Ok(())
    }

    /// The tenant's intent the event concerns: by provider reference, else by merchant reference (an intent of
    /// this provider, not in a terminal state, whose provider reference is unknown or the event's; only when
    /// exactly one matches). A terminal intent is passed over: nothing can be applied to it, and the event may
    /// be a later attempt's for the same order (a refused attempt keeps no provider reference).
    async fn find_intent(&self, event: &WebhookEvent) -> Result<Found, PaymentsError> {
        let store = |e| PaymentsError::from_store(OP, None, e);
        if let Some(reference) = &event.provider_reference {
            let found = self
                .intents
                .find_by_provider_reference(&self.tenant, &self.provider, reference)
                .await
                .map_err(store)?;
            if let Some(intent) = found {
                return Ok(Found::One(Box::new(intent)));
            }
        }
        let Some(reference) = &event.merchant_reference else {
            return Ok(Found::None { referenced: false });
        };
        let mut referenced = false;
        let mut candidates: Vec<PaymentIntent> = self
            .intents
            .find_by_reference(&self.tenant, reference)
            .await
            .map_err(store)?
            .into_iter()
            .filter(|i| i.provider == self.provider)
            .inspect(|_| referenced = true)
            .filter(|i| {
                !i.status.is_terminal()
                    && (i.provider_reference.is_none() || i.provider_reference == event.provider_reference)
            })
            .collect();
        // Several intents with one merchant reference and no way to tell them apart: apply to none.
        Ok(match candidates.len() {
            0 => Found::None { referenced },
            1 => candidates.pop().map_or(Found::None { referenced }, |intent| Found::One(Box::new(intent))),
            _ => Found::Several,
        })
    }

    /// Whether the event is a card-present sale's news that its intent already reflects. A terminal sale's
    /// reference at the terminal is its idempotency key (decision 016), and a provider's notification of it names
    /// that reference and the provider's payment reference, while the intent holds the terminal's transaction
    /// id; the intent id is derived from the key ([`intent_id_for`](crate::intent_id_for)), so this is one
    /// read. Only news the intent shows counts: an approval or capture of the captured amount of a captured
    /// sale, a refund within what it refunded, a refusal of a failed one. Anything else (news of a sale whose
    /// outcome is unknown, a contradiction, an event of another payment whose merchant reference happens to be
    /// such a key) is treated as before: held back while fresh, then acknowledged as matching no intent. (A key
    /// longer than the terminal takes was replaced by a derived one, which does not lead back to the intent.)
    async fn reflected_card_present_sale(&self, event: &WebhookEvent) -> Result<bool, PaymentsError> {
        let Some(key) = event.merchant_reference.as_deref().and_then(|r| IdempotencyKey::new(r).ok()) else {
            return Ok(false);
        };
        let Ok(id) = crate::intent_id_for(&self.tenant, &key) else { return Ok(false) };
        let intent = match self.intents.get(&self.tenant, &id).await {
            Ok(intent) => intent,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(PaymentsError::from_store(OP, Some(&id), e)),
        };
        if intent.provider != self.provider || intent.tender != TenderKind::CardPresent {
            return Ok(false);
        }
        let captured =
            matches!(intent.status, IntentStatus::Captured | IntentStatus::PartiallyRefunded | IntentStatus::Refunded);
        Ok(match event.kind {
            PaymentEventKind::Authorized | PaymentEventKind::Captured if event.success => {
                captured && event.amount.is_none_or(|a| a == intent.captured)
            }
            PaymentEventKind::Refunded if event.success => {
                captured
                    && event.amount.is_some_and(|a| {
                        a.currency() == intent.refunded.currency() && a.minor() <= intent.refunded.minor()
                    })
            }
            PaymentEventKind::AuthorizationFailed => intent.status == IntentStatus::Failed,
            _ => false,
        })
    }

    /// An intent of this tenant and provider whose authorization outcome became unknown less than
    /// `unknown_hold` ago and which has no provider reference yet (the oldest of the first
    /// [`UNKNOWN_SCAN_LIMIT`] in that state), if any.
    async fn unknown_authorization(&self) -> Result<Option<PaymentIntent>, PaymentsError> {
        let unknown = self
            .intents
            .list_by_status(&self.tenant, IntentStatus::OutcomeUnknown, UNKNOWN_SCAN_LIMIT)
            .await
            .map_err(|e| PaymentsError::from_store(OP, None, e))?;
        // A hold too long to subtract from now has no lower bound.
        let since = self.clock.now().checked_sub(self.unknown_hold);
        Ok(unknown.into_iter().find(|i| {
            i.provider == self.provider && i.provider_reference.is_none() && since.is_none_or(|s| i.updated_at > s)
        }))
    }

    /// How long ago (`"12s"`; `"-3s"` when the provider's clock is ahead) the event happened, if it may start a
    /// payment and happened within the fresh hold of now, either way.
    fn fresh(&self, event: &WebhookEvent) -> Option<String> {
        let may_start = matches!(
            event.kind,
            PaymentEventKind::Authorized | PaymentEventKind::AuthorizationFailed | PaymentEventKind::Captured
        );
        let age = self.clock.now() - event.occurred_at.filter(|_| may_start)?;
        (age.abs() < self.fresh_hold).then(|| format!("{}s", age.whole_seconds()))
    }

    /// Applies the event to the intent and stores the change; on a version conflict reloads and applies once
    /// more (the application recognises its own event id).
    async fn apply(&self, intent: PaymentIntent, event: &WebhookEvent) -> Result<Applied, PaymentsError> {
        let id = intent.id.clone();
        // The intent was just read to find it: only its history is missing, unless a write landed in between.
        let history =
            self.intents.events(&intent.tenant, &id).await.map_err(|e| PaymentsError::from_store(OP, Some(&id), e))?;
        let (mut intent, mut history) = if history.last().map(|e| e.sequence) == Some(intent.version) {
            (intent, history)
        } else {
            self.load(&intent).await?
        };
        for _ in 0..3 {
            let (transition, applied): (Transition, Applied) =
                match state::apply_webhook(&intent, &history, event, self.clock.now()) {
                    Ok(WebhookOutcome::AlreadyApplied) => return Ok(Applied::Duplicate),
                    Ok(WebhookOutcome::Ignored(_)) => return Ok(Applied::Ignored),
                    Ok(WebhookOutcome::Apply(t)) => (t, Applied::Changed),
                    Ok(WebhookOutcome::Conflict(t)) => (t, Applied::Conflict),
                    // The intent contradicts itself; a redelivery cannot fix that, so the event is not retried.
                    Err(e) if e.kind() == ErrorKind::Unexpected => return Ok(Applied::Conflict),
                    Err(e) => return Err(e),
                };
            let Transition { intent: next, event: record } = transition;
            match self.intents.update(next, intent.version, record).await {
                Ok(()) => return Ok(applied),
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    (intent, history) = self.load(&intent).await?;
                }
                Err(e) => return Err(PaymentsError::from_store(OP, Some(&id), e)),
            }
        }
        Err(PaymentsError::new(ErrorKind::Conflict, OP, format!("intent `{id}` kept changing while a webhook applied"))
            .with_intent(id))
    }

    async fn load(&self, intent: &PaymentIntent) -> Result<(PaymentIntent, Vec<IntentEvent>), PaymentsError> {
        let snapshot = read_snapshot(self.intents.as_ref(), OP.as_str(), &intent.tenant, &intent.id)
            .await
            .map_err(|e| PaymentsError::from_store(OP, Some(&intent.id), e))?;
        Ok((snapshot.intent, snapshot.history))
    }
}

fn bump(count: &mut u32) {
    *count = count.saturating_add(1);
}

fn response(status: StatusCode, content_type: &str, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    // A verifier's content type is not checked anywhere else; an invalid one must not panic here.
    let content_type = http::HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| http::HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}

fn error_response(error: &IngestError) -> Response<Bytes> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    response(status, "application/json", Bytes::from(error.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_content_type_falls_back_instead_of_panicking() {
        let r = response(StatusCode::OK, "text/plain\n", Bytes::new());
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/octet-stream")
        );
        let r = response(StatusCode::OK, "application/json", Bytes::new());
        assert_eq!(r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/json"));
    }
}
