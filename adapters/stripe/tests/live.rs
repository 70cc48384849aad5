//! The conformance suite against Stripe's test mode, when `STRIPE_TEST_SECRET_KEY` is set (never otherwise).

use commerce_ports::{Currency, Secret, TenderKind};
use commerce_stripe::{StripeConfig, StripeGateway};
use commerce_testkit::conformance::gateway::{GatewayFixture, run_all};

#[tokio::test]
async fn conformance_suite_passes_against_stripe_test_mode() {
    let Ok(key) = std::env::var("STRIPE_TEST_SECRET_KEY") else {
        println!("skipped: STRIPE_TEST_SECRET_KEY is not set");
        return;
    };
    assert!(
        key.starts_with("sk_test_") || key.starts_with("rk_test_"),
        "STRIPE_TEST_SECRET_KEY must be a test-mode key"
    );
    let gateway = match StripeConfig::new(Secret::new(key)).and_then(StripeGateway::new) {
        Ok(gateway) => gateway,
        Err(e) => panic!("{e}"),
    };
    let fixture =
        GatewayFixture::new(Currency::EUR, TenderKind::Card).with_methods("pm_card_visa", "pm_card_chargeDeclined");
    run_all(&gateway, &fixture).await.assert_passed();
}
