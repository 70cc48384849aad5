//! Helpers shared by the integration tests (each test file includes this module).

use commerce_ports::{Currency, IdempotencyKey, Money, TenantId};

/// `minor` euro cents.
pub(crate) fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

/// The tenant `acme`.
pub(crate) fn tenant() -> TenantId {
    TenantId::new("acme").expect("tenant")
}

/// An idempotency key.
pub(crate) fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).expect("key")
}
