//! Runs the payment gateway conformance suite against the gift-card ledger and prints the report.

use commerce_ports::{Currency, TenderKind};
use commerce_testkit::conformance::gateway::{GatewayFixture, run_all};
use custom_adapter::GiftCardGateway;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let gateway = GiftCardGateway::new(Currency::EUR);
    let fixture = GatewayFixture::new(Currency::EUR, TenderKind::GiftCard).with_methods("gc_funded", "gc_empty");
    let report = run_all(&gateway, &fixture).await;
    println!("gift-card-ledger against the payment gateway conformance suite:\n{report}");
    if report.is_success() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
