//! A host application's checkout step, written against the [`PaymentGateway`] port, and its tests: with
//! mockall mocks (`commerce-ports` feature `mock`) to pin exact calls, and with the testkit's in-memory
//! gateway to inject faults.

use commerce_ports::payment::{AuthorizeRequest, PaymentGateway};
use commerce_ports::{ErrorKind, IdempotencyKey, Money, RetryClass, TenderKind};

/// What the shopper sees after paying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// Paid; keep the provider reference on the order.
    Authorized {
        /// The provider's payment reference.
        provider_reference: String,
    },
    /// The card was declined; ask for another.
    Declined {
        /// The provider's decline code, when given.
        decline_code: Option<String>,
    },
    /// We do not know whether the payment went through (a timeout after sending, or the same key still in
    /// flight): show "pending", reconcile later with the same idempotency key. Never show "failed" here, never
    /// charge again with a new key.
    Pending,
    /// The provider refused the request or never received it: nothing was charged. `retryable` says
    /// whether trying again later (with the same key) can help.
    Failed {
        /// What went wrong.
        reason: String,
        /// An outage or rate limit rather than a bad request.
        retryable: bool,
    },
    /// The state is unclear for another reason (the key was used for another request, an unexpected
    /// answer): check the order with the provider before charging again.
    NeedsAttention {
        /// What went wrong.
        reason: String,
    },
}

/// Authorizes an order's total with the shopper's payment method.
pub async fn pay_order(
    gateway: &dyn PaymentGateway,
    order: &str,
    total: Money,
    payment_method: &str,
) -> CheckoutOutcome {
    let key = match IdempotencyKey::new(format!("order-{order}-authorize")) {
        Ok(key) => key,
        Err(e) => return CheckoutOutcome::Failed { reason: e.to_string(), retryable: false },
    };
    let request = AuthorizeRequest::new(total, TenderKind::Card, payment_method, order, key);
    match gateway.authorize(request).await {
        Ok(snapshot) => CheckoutOutcome::Authorized { provider_reference: snapshot.provider_reference },
        Err(e) if e.kind() == ErrorKind::Declined => {
            CheckoutOutcome::Declined { decline_code: e.decline().and_then(|d| d.decline_code.clone()) }
        }
        Err(e) if e.is_outcome_unknown() || e.kind() == ErrorKind::InProgress => CheckoutOutcome::Pending,
        Err(e) => match (e.kind(), e.retry()) {
            (ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::RateLimited, _) => {
                CheckoutOutcome::Failed { reason: e.to_string(), retryable: true }
            }
            (
                ErrorKind::InvalidRequest
                | ErrorKind::Authentication
                | ErrorKind::Configuration
                | ErrorKind::Unsupported
                | ErrorKind::NotFound,
                RetryClass::Permanent,
            ) => CheckoutOutcome::Failed { reason: e.to_string(), retryable: false },
            _ => CheckoutOutcome::NeedsAttention { reason: e.to_string() },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_ports::payment::{MockPaymentGateway, PaymentSnapshot, ProviderPaymentStatus};
    use commerce_ports::{Currency, DeclineDetails, PaymentError};
    use commerce_testkit::memory::{GatewayFault, MemoryGateway};
    use mockall::predicate::function;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::EUR)
    }

    #[tokio::test]
    async fn sends_the_total_once_with_a_key_derived_from_the_order() {
        let mut gateway = MockPaymentGateway::new();
        gateway
            .expect_authorize()
            .with(function(|r: &AuthorizeRequest| {
                r.amount == eur(4_200) && r.idempotency_key.as_str() == "order-A17-authorize"
            }))
            .times(1)
            .returning(|r| Ok(PaymentSnapshot::authorized("pi_123", ProviderPaymentStatus::Authorized, r.amount)));
        let outcome = pay_order(&gateway, "A17", eur(4_200), "pm_card_visa").await;
        assert_eq!(outcome, CheckoutOutcome::Authorized { provider_reference: "pi_123".into() });
    }

    #[tokio::test]
    async fn a_decline_surfaces_its_code() {
        let mut gateway = MockPaymentGateway::new();
        gateway.expect_authorize().times(1).returning(|_| {
            Err(PaymentError::new(ErrorKind::Declined, "authorize", "declined")
                .with_decline(DeclineDetails::with_code("insufficient_funds")))
        });
        let outcome = pay_order(&gateway, "A18", eur(100), "pm_x").await;
        assert_eq!(outcome, CheckoutOutcome::Declined { decline_code: Some("insufficient_funds".into()) });
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_pending_and_the_retry_reuses_the_key() {
        let gateway = MemoryGateway::new();
        gateway.inject(GatewayFault::TimeoutAfterProcessing);
        assert_eq!(pay_order(&gateway, "A19", eur(990), "pm_card_visa").await, CheckoutOutcome::Pending);
        // Retrying the same order reuses the key: the provider replays the payment it already made.
        let retried = pay_order(&gateway, "A19", eur(990), "pm_card_visa").await;
        assert!(matches!(retried, CheckoutOutcome::Authorized { .. }), "{retried:?}");
        assert_eq!(gateway.provider_calls(), 1, "the retry must not charge again");
    }

    #[tokio::test]
    async fn an_outage_before_processing_fails_without_charging() {
        let gateway = MemoryGateway::new();
        gateway.inject(GatewayFault::Unavailable);
        let outcome = pay_order(&gateway, "A20", eur(990), "pm_card_visa").await;
        assert!(matches!(outcome, CheckoutOutcome::Failed { retryable: true, .. }), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_key_conflict_or_a_key_in_flight_is_never_reported_as_nothing_charged() {
        let mut gateway = MockPaymentGateway::new();
        gateway
            .expect_authorize()
            .times(1)
            .returning(|_| Err(PaymentError::new(ErrorKind::IdempotencyConflict, "authorize", "key reused")));
        let outcome = pay_order(&gateway, "A21", eur(100), "pm_x").await;
        assert!(matches!(outcome, CheckoutOutcome::NeedsAttention { .. }), "{outcome:?}");
        let mut gateway = MockPaymentGateway::new();
        gateway
            .expect_authorize()
            .times(1)
            .returning(|_| Err(PaymentError::new(ErrorKind::InProgress, "authorize", "busy")));
        assert_eq!(pay_order(&gateway, "A22", eur(100), "pm_x").await, CheckoutOutcome::Pending);
    }
}
