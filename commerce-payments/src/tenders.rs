//! [`TenderRouting`]: which gateway takes which tender in which channel of a tenant, and
//! [`Payments::authorize_in`], which refuses a tender the channel does not bind before anything happens.
//!
//! The host builds the routing from its per-channel bindings (the facade's `Integrations` hands them out by
//! tenant, channel and tender); this crate does not depend on the facade.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use commerce_ports::payment::{PaymentGateway, TenderKind};
use commerce_ports::stores::PaymentIntent;
use commerce_ports::{ChannelId, ErrorKind, IdempotencyKey, TenantId};

use crate::error::PaymentsError;
use crate::service::{NewPayment, Payments};
use crate::state::Operation;

/// One tender's binding in a channel: the adapter name (stored on intents as their provider) and the gateway.
#[derive(Clone)]
pub struct TenderBinding {
    adapter: String,
    gateway: Arc<dyn PaymentGateway>,
}

impl TenderBinding {
    /// A binding.
    pub fn new(adapter: impl Into<String>, gateway: Arc<dyn PaymentGateway>) -> TenderBinding {
        TenderBinding { adapter: adapter.into(), gateway }
    }

    /// The adapter name (`stripe`).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The gateway.
    pub fn gateway(&self) -> &Arc<dyn PaymentGateway> {
        &self.gateway
    }
}

impl fmt::Debug for TenderBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenderBinding").field("adapter", &self.adapter).field("gateway", &self.gateway).finish()
    }
}

/// The tenders each channel of one tenant accepts, and the gateway bound to each.
#[derive(Debug, Clone)]
pub struct TenderRouting {
    tenant: TenantId,
    channels: BTreeMap<ChannelId, BTreeMap<TenderKind, TenderBinding>>,
}

impl TenderRouting {
    /// A routing for `tenant` with no channel bound.
    pub fn new(tenant: TenantId) -> TenderRouting {
        TenderRouting { tenant, channels: BTreeMap::new() }
    }

    /// A routing from the host's bindings: channel -> tender -> (adapter name, gateway).
    pub fn from_bindings<C, T>(tenant: TenantId, bindings: C) -> TenderRouting
    where
        C: IntoIterator<Item = (ChannelId, T)>,
        T: IntoIterator<Item = (TenderKind, (String, Arc<dyn PaymentGateway>))>,
    {
        let mut routing = TenderRouting::new(tenant);
        for (channel, tenders) in bindings {
            for (tender, (adapter, gateway)) in tenders {
                routing = routing.bind(channel.clone(), tender, adapter, gateway);
            }
        }
        routing
    }

    /// Binds `tender` in `channel` to `gateway` (adapter `adapter`), replacing an earlier binding.
    pub fn bind(
        mut self,
        channel: ChannelId,
        tender: TenderKind,
        adapter: impl Into<String>,
        gateway: Arc<dyn PaymentGateway>,
    ) -> TenderRouting {
        self.channels.entry(channel).or_default().insert(tender, TenderBinding::new(adapter, gateway));
        self
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The tenders bound in `channel`, in order (empty for an unknown channel).
    pub fn tenders(&self, channel: &ChannelId) -> Vec<TenderKind> {
        self.channels.get(channel).map(|t| t.keys().copied().collect()).unwrap_or_default()
    }

    /// The binding of `tender` in `channel`.
    ///
    /// # Errors
    /// `InvalidRequest` naming the channel, the tender and the tenders the channel binds.
    pub fn route(&self, channel: &ChannelId, tender: TenderKind) -> Result<&TenderBinding, PaymentsError> {
        if let Some(binding) = self.channels.get(channel).and_then(|t| t.get(&tender)) {
            return Ok(binding);
        }
        let bound = self.tenders(channel);
        let message = if bound.is_empty() {
            format!("tender `{tender}` is not bound in channel `{channel}`, which binds no tenders")
        } else {
            let names: Vec<&str> = bound.iter().map(|t| t.as_str()).collect();
            format!("tender `{tender}` is not bound in channel `{channel}`; it binds: {}", names.join(", "))
        };
        Err(PaymentsError::new(ErrorKind::InvalidRequest, Operation::Authorize, message))
    }
}

impl Payments {
    /// Authorizes `payment` with the gateway its channel binds for its tender ([`Payments::authorize`] with
    /// that gateway and its adapter name as provider).
    ///
    /// The routing is checked first: a tender not bound in the payment's channel, or a payment of another
    /// tenant, is refused before any provider call, store write or idempotency record.
    ///
    /// # Errors
    /// `InvalidRequest` ("tender `wallet` is not bound in channel `pos`; it binds: card-present, cash", or
    /// the tenant mismatch); then those of [`Payments::authorize`].
    pub async fn authorize_in(
        &self,
        routing: &TenderRouting,
        payment: NewPayment,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        if payment.tenant != routing.tenant {
            return Err(PaymentsError::new(
                ErrorKind::InvalidRequest,
                Operation::Authorize,
                format!(
                    "the payment is for tenant `{}` but the tender routing is tenant `{}`'s",
                    payment.tenant, routing.tenant
                ),
            ));
        }
        let binding = routing.route(&payment.channel, payment.tender)?;
        self.authorize(binding.gateway.as_ref(), &binding.adapter, payment, key).await
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::{Currency, Money, SystemClock};
    use commerce_testkit::memory::{MemoryGateway, memory_store_set};

    use super::*;

    fn id<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        r.expect("a valid id")
    }

    #[tokio::test]
    async fn an_unbound_tender_is_refused_before_any_call_or_write() {
        let stores = memory_store_set();
        let payments = Payments::from_stores(&stores, Arc::new(SystemClock));
        let tenant = id(TenantId::new("acme"));
        let (pos, web) = (id(ChannelId::new("pos")), id(ChannelId::new("web")));
        let gateway = Arc::new(MemoryGateway::new());
        let routing = TenderRouting::new(tenant.clone())
            .bind(pos.clone(), TenderKind::Card, "memory", gateway.clone())
            .bind(pos.clone(), TenderKind::GiftCard, "memory", gateway.clone());
        let payment = NewPayment::new(
            tenant.clone(),
            pos.clone(),
            TenderKind::Wallet,
            Money::from_minor(1_000, Currency::EUR),
            "pm_card_visa",
            "order-1",
        );
        let key = id(IdempotencyKey::new("order-1:authorize"));
        let e = payments.authorize_in(&routing, payment.clone(), &key).await.err();
        let e = e.as_ref().map(|e| (e.kind(), e.message().to_owned()));
        assert_eq!(
            e,
            Some((
                ErrorKind::InvalidRequest,
                "tender `wallet` is not bound in channel `pos`; it binds: card, gift-card".to_owned()
            ))
        );
        assert_eq!(gateway.provider_calls(), 0);
        let intent_id = id(crate::intent_id_for(&tenant, &key));
        assert!(payments.get(&tenant, &intent_id).await.is_err_and(|e| e.kind() == ErrorKind::NotFound));
        assert!(matches!(stores.idempotency.get(&tenant, &key).await, Ok(None)));

        let mut other_channel = payment.clone();
        other_channel.channel = web;
        let e = payments.authorize_in(&routing, other_channel, &key).await.err();
        assert_eq!(
            e.map(|e| e.message().to_owned()).as_deref(),
            Some("tender `wallet` is not bound in channel `web`, which binds no tenders")
        );

        let mut card = payment;
        card.tender = TenderKind::Card;
        let intent = payments.authorize_in(&routing, card, &key).await;
        assert_eq!(intent.map(|i| (i.provider, i.authorized.minor())).ok(), Some(("memory".to_owned(), 1_000)));
        assert_eq!(gateway.provider_calls(), 1);
    }
}
