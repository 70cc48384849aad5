//! Helpers shared by the integration tests (each test file includes this module).

use commerce_ports::{ChannelId, Currency, IdempotencyKey, Money, TenantId, TenderKind};

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

/// A card payment of `minor` euro cents in channel `web` with `pm_card_visa`, for order `reference`.
#[allow(dead_code, reason = "not every test file takes card payments")]
pub(crate) fn card(minor: i64, reference: &str) -> commerce_payments::NewPayment {
    commerce_payments::NewPayment::new(
        tenant(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        eur(minor),
        "pm_card_visa",
        reference,
    )
}

/// A card-present sale of `minor` euro cents in channel `berlin` at `terminal` (captured at once), for order
/// `reference`.
#[allow(dead_code, reason = "not every test file sells at a terminal")]
pub(crate) fn card_present(minor: i64, terminal: &str, reference: &str) -> commerce_payments::NewPayment {
    commerce_payments::NewPayment::new(
        tenant(),
        ChannelId::new("berlin").expect("channel"),
        TenderKind::CardPresent,
        eur(minor),
        terminal,
        reference,
    )
    .with_capture_method(commerce_ports::payment::CaptureMethod::Automatic)
}
