//! The store day runs end to end and its figures are what the day's events make them.

use std::path::PathBuf;

use commerce_ports::stores::IntentStatus;
use commerce_ports::{Currency, Money, TenderKind};

fn config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("store-day.toml")
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

#[tokio::test]
async fn the_day_balances_and_its_figures_add_up() {
    let report = store_day::run_day(&config()).await.expect("the day runs");
    let f = &report.figures;
    assert!(report.books_balance(), "{report}");

    // W-1001 181.02 + W-1002 229.81 + W-1003 part 52.38 + W-1004 34.53 captured; 34.51 refunded.
    assert_eq!(f.web_captured, eur(18_102 + 22_981 + 5_238 + 3_453), "{report}");
    assert_eq!(f.web_refunded, eur(3_451), "{report}");
    assert_eq!(f.labels, 4);
    assert_eq!(f.receipts, 3);
    assert_eq!(f.drawer_opens, 1);
    assert_eq!(f.reconciled, 1);
    assert_eq!(f.unknown_at_close, 0, "the reconciler's pass at close finds nothing unknown: {report}");
    // Every provider change came back as a signed webhook, delivered twice: the second copy of each is
    // recognised, nothing is rejected.
    assert_eq!((f.webhook_deliveries, f.webhook_rejected, f.webhook_duplicates), (18, 0, 9), "{report}");
    // Each is news of one of the day's payments, the terminal sale's and the refused attempt's included.
    assert_eq!(f.webhook_unmatched, 0, "{report}");
    assert_eq!(
        f.store_takings,
        vec![(TenderKind::Cash, eur(2_963)), (TenderKind::CardPresent, eur(5_819)), (TenderKind::GiftCard, eur(1_428))]
    );

    let status_of =
        |order: &str| f.intents.iter().filter(|i| i.order == order).map(|i| i.intent.status).collect::<Vec<_>>();
    assert_eq!(status_of("W-1001"), vec![IntentStatus::PartiallyRefunded]);
    assert_eq!(status_of("W-1002"), vec![IntentStatus::Failed, IntentStatus::Captured]);
    assert_eq!(status_of("W-1003"), vec![IntentStatus::Captured]);
    assert_eq!(status_of("W-1004"), vec![IntentStatus::Captured]);
    assert_eq!(status_of("S-0002"), vec![IntentStatus::Captured], "the terminal sale is an intent");
    assert_eq!(status_of("S-0003"), vec![IntentStatus::Captured]);

    let text = report.to_string();
    assert!(text.contains("outcome UNKNOWN"), "{text}");
    assert!(text.contains("Stripe's webhook settled the unknown capture"), "{text}");
    assert!(text.contains("books balance"), "{text}");
    assert!(text.contains("TOTAL"), "the printed receipt is shown: {text}");
}

#[tokio::test]
async fn the_day_is_deterministic() {
    let a = store_day::run_day(&config()).await.expect("first run").to_string();
    let b = store_day::run_day(&config()).await.expect("second run").to_string();
    assert_eq!(a, b);
}

#[tokio::test]
async fn a_broken_configuration_stops_the_day_with_a_precise_error() {
    let dir = std::env::temp_dir().join(format!("store-day-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("broken.toml");
    let text = std::fs::read_to_string(config()).expect("config").replace("tender = \"wallet\"", "tender = \"card\"");
    std::fs::write(&path, text).expect("write");
    let err = store_day::run_day(&path).await.expect_err("tender bound twice");
    let message = err.to_string();
    assert!(message.contains("broken.toml") && message.contains("card") && message.contains("twice"), "{message}");
}
