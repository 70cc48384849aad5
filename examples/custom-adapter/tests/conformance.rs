//! The custom adapter passes the conformance suite for everything it declares.

use std::sync::Arc;

use commerce_ports::payment::PaymentGateway;
use commerce_ports::{Currency, Money, TenderKind};
use commerce_testkit::conformance::gateway::{GatewayFixture, run_all};
use custom_adapter::GiftCardGateway;

fn fixture() -> GatewayFixture {
    GatewayFixture::new(Currency::EUR, TenderKind::GiftCard).with_methods("gc_funded", "gc_empty")
}

#[tokio::test]
async fn gift_card_ledger_conforms() {
    let gateway = GiftCardGateway::new(Currency::EUR);
    let report = run_all(&gateway, &fixture()).await;
    report.assert_passed();
    // It declares no multiple captures, so that behaviour is skipped rather than failed.
    assert!(report.skipped.iter().any(|(b, _)| *b == "capture_in_parts"), "{report}");
}

#[tokio::test]
async fn gift_card_ledger_conforms_behind_arc_and_box_dyn() {
    let gateway: Arc<dyn PaymentGateway> = Arc::new(GiftCardGateway::new(Currency::EUR));
    run_all(&gateway, &fixture()).await.assert_passed();
    let boxed: Box<dyn PaymentGateway> = Box::new(GiftCardGateway::new(Currency::EUR));
    run_all(&boxed, &fixture()).await.assert_passed();
}

#[tokio::test]
async fn holds_and_releases_move_the_balance() {
    use commerce_ports::IdempotencyKey;
    use commerce_ports::payment::{AuthorizeRequest, CaptureRequest};
    let gateway = GiftCardGateway::new(Currency::EUR);
    let start = gateway.balance("gc_funded").expect("demo card");
    let key = |k: &str| IdempotencyKey::new(k).expect("key");
    let auth = gateway
        .authorize(AuthorizeRequest::new(
            Money::from_minor(5_000, Currency::EUR),
            TenderKind::GiftCard,
            "gc_funded",
            "o-1",
            key("a"),
        ))
        .await
        .expect("authorized");
    assert_eq!(gateway.balance("gc_funded").map(|b| start.minor() - b.minor()), Some(5_000));
    gateway
        .capture(CaptureRequest::new(&auth.provider_reference, Money::from_minor(3_000, Currency::EUR), key("c")))
        .await
        .expect("captured");
    // The uncaptured 20.00 went back to the card.
    assert_eq!(gateway.balance("gc_funded").map(|b| start.minor() - b.minor()), Some(3_000));
}
