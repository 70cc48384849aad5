//! The reconciler's pass: every intent of a tenant whose outcome is unknown, settled from its provider's view
//! ([`Payments::reconcile_unknown`]).
//!
//! An unknown outcome (a call that timed out or whose connection broke after sending) is settled by asking
//! the provider ([`Payments::reconcile`]); a retry with the same key settles it too. A host runs a pass on a
//! schedule, per tenant, so that intents nobody retries do not stay unknown. A pass pages through the
//! tenant's `OutcomeUnknown` intents oldest first ([`PaymentIntentStore::list_by_status_after`]), so intents
//! it cannot settle do not keep it from the rest, and reconciles them one at a time (a provider is not
//! flooded; reconciling is safe concurrently with retries and webhooks). Nothing stops a pass: each intent's
//! result is sorted into the [`ReconcileReport`].

use std::collections::HashSet;
use std::sync::Arc;

use commerce_ports::payment::PaymentGateway;
use commerce_ports::stores::{IntentCursor, IntentStatus, PaymentIntent, PaymentIntentStore};
use commerce_ports::{ErrorKind, IntentId, TenantId};

use crate::error::PaymentsError;
use crate::service::Payments;
use crate::state::Operation;

/// How many intents a pass reads from the store at a time.
const PAGE: u32 = 100;

/// What one pass of [`Payments::reconcile_unknown`] did with each intent it examined.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// `OutcomeUnknown` intents the pass examined (each at most once).
    pub examined: usize,
    /// Settled: the provider's view moved them out of `OutcomeUnknown`, as now stored.
    pub settled: Vec<PaymentIntent>,
    /// Still unknown, for now: the provider could not be reached or could not tell yet (`OutcomeUnknown`
    /// again, `Unavailable`, `RateLimited`, `InProgress`, a concurrent change), or its view settled nothing.
    /// The next pass tries again.
    pub retry_later: Vec<(IntentId, PaymentsError)>,
    /// Cannot be settled by asking: no gateway for the intent, a provider that cannot be asked (a card
    /// terminal's refund: `Unsupported`), or a view that contradicts the intent (`Unexpected`). Someone has to
    /// look (the provider's dashboard) and settle it with [`Payments::reconcile_from`]; passes report them
    /// again until then.
    pub needs_operator: Vec<(IntentId, PaymentsError)>,
    /// Where the next pass continues when this one stopped at its limit with intents left to examine (pass
    /// it as the next pass's `after`); `None` when it reached the end of the listing (the next pass starts
    /// from the oldest again). Passes that follow it reach every unknown intent in turn, however many need an
    /// operator.
    pub next: Option<IntentCursor>,
}

impl ReconcileReport {
    /// Whether every examined intent was settled.
    pub fn all_settled(&self) -> bool {
        self.retry_later.is_empty() && self.needs_operator.is_empty()
    }
}

/// Whether an error of `reconcile` may go away by itself (the next pass tries again).
fn transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::OutcomeUnknown
            | ErrorKind::Unavailable
            | ErrorKind::RateLimited
            | ErrorKind::InProgress
            | ErrorKind::Conflict
            | ErrorKind::Timeout
    )
}

impl Payments {
    /// One reconciler pass over `tenant`'s intents whose outcome is unknown, oldest first from `after` (the
    /// previous pass's [`ReconcileReport::next`]; `None`: from the oldest), at most `limit` of them: each is
    /// reconciled ([`reconcile`](Payments::reconcile)) through the gateway `gateway_for`
    /// returns for it (by its provider, channel and tender, as the host binds them), and sorted into the
    /// report by what happened (module docs). An intent for which `gateway_for` returns `None` is reported
    /// as needing an operator, without a call.
    ///
    /// Each intent is examined at most once per pass, even when reconciling it wrote to it (which moves it
    /// to the end of the listing). Card-present intents are reconciled through their terminal's gateway: an
    /// unknown sale is looked up at the terminal (never paid again), an unknown refund needs an operator.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot list the intents (the pass stops; what it did so far stands);
    /// every error of an intent's reconciliation goes into the report instead.
    pub async fn reconcile_unknown<F>(
        &self,
        tenant: &TenantId,
        gateway_for: F,
        limit: u32,
        after: Option<IntentCursor>,
    ) -> Result<ReconcileReport, PaymentsError>
    where
        F: Fn(&PaymentIntent) -> Option<Arc<dyn PaymentGateway>> + Send + Sync,
    {
        const OP: Operation = Operation::Reconcile;
        let store: &dyn PaymentIntentStore = self.intent_store();
        let mut report = ReconcileReport::default();
        let mut seen = HashSet::new();
        let mut cursor = after;
        let mut remaining = usize::try_from(limit).unwrap_or(usize::MAX);
        while remaining > 0 {
            let ask = PAGE.min(u32::try_from(remaining).unwrap_or(u32::MAX));
            let page = store
                .list_by_status_after(tenant, IntentStatus::OutcomeUnknown, cursor.clone(), ask)
                .await
                .map_err(|e| PaymentsError::from_store(OP, None, e))?;
            let full = page.len() >= usize::try_from(ask).unwrap_or(usize::MAX);
            for intent in page {
                cursor = Some(IntentCursor::after(&intent));
                if !seen.insert(intent.id.clone()) {
                    continue;
                }
                remaining = remaining.saturating_sub(1);
                report.examined += 1;
                self.reconcile_one(tenant, intent, &gateway_for, &mut report).await;
            }
            if !full {
                // The end of the listing: the next pass starts from the oldest.
                return Ok(report);
            }
        }
        report.next = cursor;
        Ok(report)
    }

    async fn reconcile_one<F>(
        &self,
        tenant: &TenantId,
        intent: PaymentIntent,
        gateway_for: &F,
        report: &mut ReconcileReport,
    ) where
        F: Fn(&PaymentIntent) -> Option<Arc<dyn PaymentGateway>> + Send + Sync,
    {
        const OP: Operation = Operation::Reconcile;
        let Some(gateway) = gateway_for(&intent) else {
            let error = PaymentsError::new(
                ErrorKind::Configuration,
                OP,
                format!(
                    "no gateway for intent `{}` ({} {} in channel `{}`): settle it with `reconcile_from` or bind one",
                    intent.id, intent.provider, intent.tender, intent.channel
                ),
            )
            .with_intent(intent.id.clone());
            report.needs_operator.push((intent.id, error));
            return;
        };
        match self.reconcile(gateway.as_ref(), tenant, &intent.id).await {
            Ok(now) if now.status != IntentStatus::OutcomeUnknown => report.settled.push(now),
            Ok(now) => {
                let error = PaymentsError::new(
                    ErrorKind::OutcomeUnknown,
                    OP,
                    format!("the provider's view of intent `{}` settled nothing yet", now.id),
                )
                .with_intent(now.id.clone());
                report.retry_later.push((now.id, error));
            }
            Err(e) if transient(e.kind()) => report.retry_later.push((intent.id, e)),
            Err(e) => report.needs_operator.push((intent.id, e)),
        }
    }
}
