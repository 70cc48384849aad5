//! Webhooks for the model test: Stripe-signed deliveries describing the in-memory provider's view of the
//! payment at some point of a run, ingested by a [`WebhookIngestor`] over the fixture's stores; and a focused
//! fault-injection test of a capture whose answer was lost.

use std::sync::Arc;

use commerce_payments::{IngestError, IngestReport, WebhookIngestor};
use commerce_ports::Secret;
use commerce_ports::payment::AuthorizeRequest;
use commerce_ports::webhook::WebhookRequest;
use commerce_stripe::{SIGNATURE_HEADER, StripeWebhookVerifier, sign};
use commerce_testkit::memory::MemoryWebhookEventStore;
use serde_json::json;

use super::*;

const SECRET: &str = "whsec_model";

/// The merchant reference [`payment`] gives every intent.
pub(crate) const MERCHANT_REFERENCE: &str = "order-1";

/// An ingestor for the fixture's tenant and its `memory` binding, verifying Stripe signatures.
pub(crate) fn ingestor(fx: &Fx) -> WebhookIngestor {
    let verifier = Arc::new(StripeWebhookVerifier::new(Secret::new(SECRET)));
    WebhookIngestor::new(&fx.payments, Arc::new(MemoryWebhookEventStore::default()), tenant(), "memory", verifier)
}

/// What a provider event says about the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Facet {
    /// `payment_intent.amount_capturable_updated`, with the authorized amount.
    Authorized,
    /// `payment_intent.succeeded`, with the cumulative captured amount (sent once the capture is closed).
    Captured,
    /// `charge.refunded`, with the cumulative refunded amount.
    Refunded,
    /// `payment_intent.canceled`.
    Voided,
}

/// Which references an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refs {
    /// The provider's payment reference only (what Stripe always sends).
    Provider,
    /// The provider's reference and the merchant reference (`metadata.reference`).
    Both,
    /// The merchant reference only.
    Merchant,
}

/// The provider's view of the payment: status (in the domain's terms, which tell a closed capture from an
/// open one) and cumulative amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) status: IntentStatus,
    pub(crate) authorized: i64,
    pub(crate) captured: i64,
    pub(crate) refunded: i64,
}

impl View {
    /// The events a provider sends about a payment in this state.
    pub(crate) fn facets(self) -> Vec<Facet> {
        use IntentStatus as S;
        if self.status == S::Voided {
            return vec![Facet::Voided];
        }
        let mut facets = vec![Facet::Authorized];
        if matches!(self.status, S::Captured | S::PartiallyRefunded | S::Refunded) {
            facets.push(Facet::Captured);
        }
        if self.refunded > 0 {
            facets.push(Facet::Refunded);
        }
        facets
    }
}

/// A Stripe event body: `facet` of `view` for provider payment `reference` of an intent of `total`.
pub(crate) fn body(event_id: &str, facet: Facet, view: View, total: i64, reference: &str, refs: Refs) -> Vec<u8> {
    let pi = if refs == Refs::Merchant { "" } else { reference };
    let mut object = match facet {
        Facet::Authorized => json!({ "object": "payment_intent", "id": pi, "amount": total,
                                     "amount_capturable": view.authorized, "currency": "eur" }),
        Facet::Captured => json!({ "object": "payment_intent", "id": pi, "amount": total,
                                   "amount_received": view.captured, "currency": "eur" }),
        Facet::Refunded => json!({ "object": "charge", "id": format!("ch_{reference}"), "payment_intent": pi,
                                   "amount": view.captured, "amount_refunded": view.refunded, "currency": "eur" }),
        Facet::Voided => json!({ "object": "payment_intent", "id": pi, "amount": total, "currency": "eur" }),
    };
    if refs != Refs::Provider {
        object["metadata"] = json!({ "reference": MERCHANT_REFERENCE });
    }
    let event_type = match facet {
        Facet::Authorized => "payment_intent.amount_capturable_updated",
        Facet::Captured => "payment_intent.succeeded",
        Facet::Refunded => "charge.refunded",
        Facet::Voided => "payment_intent.canceled",
    };
    json!({ "id": event_id, "type": event_type, "created": T0.unix_timestamp(), "data": { "object": object } })
        .to_string()
        .into_bytes()
}

/// Delivers a signed body.
pub(crate) async fn deliver(ingestor: &WebhookIngestor, body: &[u8]) -> Result<IngestReport, IngestError> {
    let header = sign(&Secret::new(SECRET), T0.unix_timestamp(), body);
    ingestor.ingest(&WebhookRequest::new(vec![(SIGNATURE_HEADER.to_owned(), header)], body.to_vec())).await
}

/// A report with one event counted under `what`.
pub(crate) fn one(what: &str) -> IngestReport {
    let mut r = IngestReport::default();
    match what {
        "applied" => r.applied = 1,
        "duplicates" => r.duplicates = 1,
        "unknown_payments" => r.unknown_payments = 1,
        "ignored" => r.ignored = 1,
        _ => r.conflicts = 1,
    }
    r
}

/// The provider reference of authorization `k` (of `total`) as the provider knows it, found by replaying the
/// very request the service sent under the same provider key: a replay, not a provider call.
pub(crate) async fn provider_reference_of(fx: &Fx, k: &str, total: i64) -> Result<String, String> {
    let provider_key = provider_key(&tenant(), &key(k), fx.gateway.capabilities().max_idempotency_key_len)
        .map_err(|e| e.to_string())?;
    let request = AuthorizeRequest::new(eur(total), TenderKind::Card, "pm_card_visa", MERCHANT_REFERENCE, provider_key);
    let calls = fx.calls();
    let snapshot = fx.gateway.authorize(request).await.map_err(|e| format!("replaying the authorization: {e}"))?;
    if fx.calls() != calls {
        return Err("looking up the provider reference made a provider call".to_owned());
    }
    Ok(snapshot.provider_reference)
}

// --------------------------------------------------------------------------------------------------------
// Fault injection: a capture whose answer was lost, then a webhook, a retry and a reconciliation in every order

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Webhook,
    Retry,
    Reconcile,
}

fn permutations() -> Vec<[Then; 3]> {
    use Then::{Reconcile as C, Retry as R, Webhook as W};
    vec![[W, R, C], [W, C, R], [R, W, C], [R, C, W], [C, W, R], [C, R, W]]
}

async fn lost_capture_settles_once(order: [Then; 3], amount: Option<i64>) {
    let fx = Fx::new();
    let ingestor = ingestor(&fx);
    let intent = fx.authorize("auth", 5_000).await.expect("authorized");
    let id = intent.id.clone();
    let reference = intent.provider_reference.clone().expect("reference");
    let expected = amount.unwrap_or(5_000);
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let lost = fx.capture(&id, "cap", amount, true).await;
    assert_eq!(lost.map_err(|e| e.kind()).err(), Some(ErrorKind::OutcomeUnknown), "{order:?}");
    assert_eq!(fx.get(&id).await.status, IntentStatus::OutcomeUnknown, "{order:?}");
    assert_eq!(fx.calls(), 2, "{order:?}: authorize and capture reached the provider");
    let view = View { status: IntentStatus::Captured, authorized: 5_000, captured: expected, refunded: 0 };
    let event = body("evt_cap", Facet::Captured, view, 5_000, &reference, Refs::Provider);

    let mut settled = false;
    for (i, then) in order.into_iter().enumerate() {
        let before = fx.get(&id).await;
        match then {
            Then::Webhook => {
                let report = deliver(&ingestor, &event).await.expect("ingested");
                let want = if settled { "ignored" } else { "applied" };
                assert_eq!(report, one(want), "{order:?} step {i}: the capture event");
            }
            Then::Retry => {
                let retried = fx.capture(&id, "cap", amount, true).await.expect("retried");
                assert_eq!((retried.status, retried.captured), (IntentStatus::Captured, eur(expected)), "{order:?}");
                if settled {
                    assert_eq!(retried, before, "{order:?} step {i}: a settled call's retry returns the intent");
                }
            }
            Then::Reconcile => {
                let reconciled = fx.reconcile(&id).await.expect("reconciled");
                if settled {
                    assert_eq!(reconciled, before, "{order:?} step {i}: nothing left to reconcile");
                }
            }
        }
        settled = true;
        let after = fx.get(&id).await;
        assert_eq!((after.status, after.captured), (IntentStatus::Captured, eur(expected)), "{order:?} step {i}");
        assert_eq!(fx.calls(), 2, "{order:?} step {i}: no second capture reached the provider");
    }
    // The same event again is a duplicate.
    assert_eq!(deliver(&ingestor, &event).await.expect("redelivered"), one("duplicates"), "{order:?}");

    let provider = fx.gateway.retrieve(&reference).await.expect("snapshot");
    assert_eq!((provider.authorized, provider.captured, provider.refunded), (eur(5_000), eur(expected), eur(0)));
    let intent = fx.get(&id).await;
    assert_eq!((intent.authorized, intent.captured, intent.refunded), (eur(5_000), eur(expected), eur(0)));
    let history = fx.history(&id).await;
    assert_consistent(&intent, &history);
    // Captured once: exactly one event moved the intent out of `OutcomeUnknown`, into `Captured`.
    let statuses: Vec<IntentStatus> = history.iter().map(|e| e.status).collect();
    let settlements =
        statuses.windows(2).filter(|w| w[0] == IntentStatus::OutcomeUnknown && w[1] == IntentStatus::Captured).count();
    assert_eq!(settlements, 1, "{order:?}: the capture was applied once: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == IntentStatus::OutcomeUnknown).count(), 1, "{order:?}: {statuses:?}");
}

#[tokio::test]
async fn a_lost_capture_settles_once_whatever_the_order_of_webhook_retry_and_reconcile() {
    for amount in [None, Some(3_000)] {
        for order in permutations() {
            lost_capture_settles_once(order, amount).await;
        }
    }
}

// --------------------------------------------------------------------------------------------------------
// Found by the model test, fixed in the domain

/// An authorization event that carries only the merchant reference (no provider payment id) used to settle an
/// authorization whose outcome is unknown and leave the intent `Authorized` without a provider reference, so it
/// could be neither captured nor reconciled. Such an event is now ignored; reconciliation settles the intent
/// with its reference, and it can be captured.
#[tokio::test]
async fn a_merchant_only_event_does_not_settle_an_authorization_without_its_provider_reference() {
    let fx = Fx::new();
    let ingestor = ingestor(&fx);
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let lost = fx.authorize("auth", 5_000).await;
    assert_eq!(lost.map_err(|e| e.kind()).err(), Some(ErrorKind::OutcomeUnknown));
    let reference = provider_reference_of(&fx, "auth", 5_000).await.expect("reference");
    let view = View { status: IntentStatus::Authorized, authorized: 5_000, captured: 0, refunded: 0 };
    let event = body("evt_auth", Facet::Authorized, view, 5_000, &reference, Refs::Merchant);
    assert_eq!(deliver(&ingestor, &event).await.expect("ingested"), one("ignored"));
    let intent = fx.get(&id_for("auth")).await;
    assert_eq!((intent.status, intent.provider_reference.as_deref()), (IntentStatus::OutcomeUnknown, None));
    let reconciled = fx.reconcile(&intent.id).await.expect("reconcile");
    assert_eq!(reconciled.status, IntentStatus::Authorized);
    assert_eq!(reconciled.provider_reference.as_deref(), Some(reference.as_str()));
    let captured = fx.capture(&intent.id, "cap", None, true).await.expect("capture");
    assert_eq!(captured.status, IntentStatus::Captured);
}
