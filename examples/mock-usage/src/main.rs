//! Pays three orders against the in-memory gateway: one approved, one declined, one whose outcome is
//! unknown (shown as pending), and prints what the shopper would see.

use commerce_ports::{Currency, Money};
use commerce_testkit::memory::{GatewayFault, MemoryGateway};
use mock_usage::pay_order;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let gateway = MemoryGateway::new();
    let total = Money::from_minor(4_200, Currency::EUR);
    println!("A1 (pm_card_visa):            {:?}", pay_order(&gateway, "A1", total, "pm_card_visa").await);
    println!("A2 (pm_card_chargeDeclined):  {:?}", pay_order(&gateway, "A2", total, "pm_card_chargeDeclined").await);
    gateway.inject(GatewayFault::TimeoutAfterProcessing);
    println!("A3 (timeout after sending):   {:?}", pay_order(&gateway, "A3", total, "pm_card_visa").await);
    println!("A3 retried with the same key: {:?}", pay_order(&gateway, "A3", total, "pm_card_visa").await);
}
