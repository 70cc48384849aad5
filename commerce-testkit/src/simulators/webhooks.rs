//! Signed webhook deliveries, shared by the simulators.
//!
//! A simulator queues one [`Delivery`] per event it emits (already signed the provider's way). Tests and
//! examples take them with the simulator's `take_webhooks`, which applies the [`DeliveryPlan`]: duplicates and a
//! deterministic reordering, as providers do (at-least-once, in no particular order). Each delivery converts to
//! an `http::Request<Bytes>` ready for a webhook handler.

use bytes::Bytes;

/// One webhook delivery: the headers and body the provider would POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's event id (Stripe `evt_...`; Adyen pspReference:eventCode:success of the first item).
    pub event_id: String,
    /// The event type (Stripe `payment_intent.succeeded`; Adyen `CAPTURE`).
    pub event_type: String,
    /// Headers, in order (`Stripe-Signature`, `Content-Type`).
    pub headers: Vec<(String, String)>,
    /// The exact signed body.
    pub body: Bytes,
}

impl Delivery {
    /// The delivery as a `POST` to `path`.
    ///
    /// # Panics
    /// Never for the headers the simulators produce (they are ASCII); a header that is not is skipped.
    pub fn to_request(&self, path: &str) -> http::Request<Bytes> {
        let mut builder = http::Request::builder().method(http::Method::POST).uri(path);
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_ok() && http::HeaderValue::from_str(value).is_ok() {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        match builder.body(self.body.clone()) {
            Ok(request) => request,
            Err(_) => http::Request::new(self.body.clone()),
        }
    }
}

/// How queued deliveries are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryPlan {
    /// Deliver every event twice (the second copy after all first copies).
    pub duplicate: bool,
    /// Shuffle the deliveries with this seed (deterministic); `None` keeps emission order.
    pub reorder_seed: Option<u64>,
}

impl DeliveryPlan {
    /// In order, once each.
    pub fn in_order() -> DeliveryPlan {
        DeliveryPlan::default()
    }

    /// Applies the plan to a batch of deliveries.
    pub fn apply(self, mut batch: Vec<Delivery>) -> Vec<Delivery> {
        if self.duplicate {
            let copies = batch.clone();
            batch.extend(copies);
        }
        if let Some(seed) = self.reorder_seed {
            // xorshift64*: enough for a reproducible Fisher-Yates shuffle.
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_F491_4F6C_DD1D)
            };
            for i in (1..batch.len()).rev() {
                let j = usize::try_from(next() % (i as u64 + 1)).unwrap_or(0);
                batch.swap(i, j);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: u32) -> Delivery {
        Delivery {
            event_id: format!("evt_{n}"),
            event_type: "t".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Bytes::from(format!("{{\"n\":{n}}}")),
        }
    }

    #[test]
    fn plans_duplicate_and_reorder_deterministically() {
        let batch: Vec<Delivery> = (0..6).map(delivery).collect();
        assert_eq!(DeliveryPlan::in_order().apply(batch.clone()), batch);
        let doubled = DeliveryPlan { duplicate: true, reorder_seed: None }.apply(batch.clone());
        assert_eq!(doubled.len(), 12);
        assert_eq!(doubled[6..], batch[..]);
        let plan = DeliveryPlan { duplicate: false, reorder_seed: Some(7) };
        let shuffled = plan.apply(batch.clone());
        assert_eq!(shuffled, plan.apply(batch.clone()), "same seed, same order");
        assert_ne!(shuffled, batch, "seed 7 moves something");
        let mut ids: Vec<_> = shuffled.iter().map(|d| d.event_id.clone()).collect();
        ids.sort();
        assert_eq!(ids, batch.iter().map(|d| d.event_id.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn converts_to_a_request() {
        let request = delivery(1).to_request("/webhooks/stripe");
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.body(), &Bytes::from("{\"n\":1}"));
    }
}
