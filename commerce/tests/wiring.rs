//! A good configuration builds; ports are handed out by tenant, channel and role; conditions follow the clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use commerce::ports::factory::PortKind;
use commerce::ports::replication::Direction;
use commerce::ports::{ChannelId, ConditionStatus, ConditionType, Currency, RegisterId, StoreId, TenantId, TenderKind};
use commerce::{ChannelKind, Config, Integrations, WiringError};
use common::{FILE, PSP_KEY, T0, clock, registry, secrets};

const GOOD: &str = r#"
[store]
adapter = "memory"

[[tenant]]
id = "acme"

[[tenant.webhook]]
adapter = "fakepsp"
params = { signing_secret = { secret = "psp_whsec" } }

[[tenant.channel]]
id = "web"
kind = "online"
currency = "EUR"

[[tenant.channel.payment]]
tender = "card"
adapter = "fakepsp"
[tenant.channel.payment.params]
api_key = { secret = "psp_key" }
timeout_ms = 750

[[tenant.channel.payment]]
tender = "wallet"
adapter = "memory"
params = { latency_ms = 0 }

[tenant.channel.tax]
adapter = "fixed-rate"
params = { rate = "0.2", threshold = "1.00 EUR" }

[[tenant.channel.carrier]]
name = "standard"
adapter = "flat-rate"

[[tenant.channel.carrier]]
name = "express"
adapter = "flat-rate"
params = { amount = "12.50 EUR" }

[[tenant.channel]]
id = "shop-1"
kind = "store"
store = "s1"

[[tenant.channel.payment]]
tender = "card-present"
adapter = "memory"

[[tenant.channel.register]]
id = "till-1"
printer = { adapter = "virtual" }
drawer = { adapter = "virtual" }
terminal = { adapter = "memory" }

[[tenant.channel.replication]]
dataset = "catalog"
direction = "down"
interval_secs = 300
adapter = "memory"

[[tenant.channel.replication]]
dataset = "orders"
direction = "up"
adapter = "memory"

[[tenant]]
id = "globex"
"#;

fn tid(s: &str) -> TenantId {
    TenantId::new(s).expect("tenant id")
}
fn cid(s: &str) -> ChannelId {
    ChannelId::new(s).expect("channel id")
}

async fn good() -> (Integrations, Arc<commerce::ports::ManualClock>) {
    let clock = clock();
    let config = Config::parse(GOOD, FILE).expect("parses");
    Integrations::validate(&config, &registry(), &secrets()).expect("valid");
    let built = Integrations::build(&config, &registry(), &secrets(), clock.clone()).await.expect("builds");
    (built, clock)
}

#[test]
fn integrations_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Integrations>();
}

#[tokio::test]
async fn tenants_channels_and_their_attributes() {
    let (w, _) = good().await;
    let acme = tid("acme");
    assert_eq!(w.tenants(), [acme.clone(), tid("globex")]);
    assert_eq!(w.channels(&acme).expect("tenant"), [cid("web"), cid("shop-1")]);
    assert_eq!(w.channels(&tid("globex")).expect("tenant"), Vec::<ChannelId>::new());
    assert_eq!(w.channel_kind(&acme, &cid("web")), Ok(ChannelKind::Online));
    assert_eq!(w.channel_kind(&acme, &cid("shop-1")), Ok(ChannelKind::Store));
    assert_eq!(w.channel_currency(&acme, &cid("web")), Ok(Some(Currency::EUR)));
    assert_eq!(w.channel_currency(&acme, &cid("shop-1")), Ok(None));
    assert_eq!(w.store_id(&acme, &cid("shop-1")), Ok(Some(StoreId::new("s1").expect("id"))));
    assert_eq!(w.store_id(&acme, &cid("web")), Ok(None));
    assert!(w.stores().is_some());

    let err = w.channels(&tid("initech")).expect_err("unknown");
    assert_eq!(err, WiringError::UnknownTenant { tenant: tid("initech"), known: vec![acme.clone(), tid("globex")] });
    assert_eq!(err.to_string(), "unknown tenant `initech`; known: acme, globex");
    let err = w.tenders(&acme, &cid("app")).expect_err("unknown");
    assert_eq!(err.to_string(), "unknown channel `app` in tenant `acme`; known: web, shop-1");
}

#[tokio::test]
async fn gateways_are_handed_out_by_tenant_channel_and_tender() {
    let (w, _) = good().await;
    let (acme, web) = (tid("acme"), cid("web"));
    assert_eq!(w.tenders(&acme, &web), Ok(vec![TenderKind::Card, TenderKind::Wallet]));

    let card = w.gateway_binding(&acme, &web, &TenderKind::Card).expect("card");
    assert_eq!(card.adapter, "fakepsp");
    assert_eq!(card.path, "tenant `acme` / channel `web` / payment `card`");
    // The fake reports its timeout parameter as its key length: parameters reached the adapter.
    assert_eq!(card.gateway.capabilities().max_idempotency_key_len, 750);

    let wallet = w.gateway_binding(&acme, &web, &TenderKind::Wallet).expect("wallet");
    assert_eq!(wallet.adapter, "memory");
    let gateway = w.payment_gateway(&acme, &web, &TenderKind::Wallet).expect("wallet");
    assert!(Arc::ptr_eq(&gateway, &wallet.gateway));

    let err = w.payment_gateway(&acme, &web, &TenderKind::Cash).expect_err("cash is not bound");
    assert_eq!(
        err,
        WiringError::TenderNotBound {
            tenant: acme.clone(),
            channel: web.clone(),
            tender: TenderKind::Cash,
            bound: vec![TenderKind::Card, TenderKind::Wallet],
        }
    );
    assert_eq!(err.to_string(), "tender `cash` is not bound in tenant `acme` / channel `web`; bound: card, wallet");

    let store = cid("shop-1");
    assert_eq!(w.gateway_binding(&acme, &store, &TenderKind::CardPresent).map(|b| b.adapter), Ok("memory".to_owned()));
    assert!(matches!(
        w.payment_gateway(&acme, &store, &TenderKind::Card),
        Err(WiringError::TenderNotBound { bound, .. }) if bound == [TenderKind::CardPresent]
    ));
}

#[tokio::test]
async fn tax_carriers_devices_replication_and_webhooks() {
    let (w, _) = good().await;
    let (acme, web, shop) = (tid("acme"), cid("web"), cid("shop-1"));
    assert!(w.tax_calculator(&acme, &web).is_ok());
    let err = w.tax_calculator(&acme, &shop).expect_err("no tax in the store channel");
    assert_eq!(err.to_string(), "nothing is bound for tenant `acme` / channel `shop-1` / tax");

    let names: Vec<String> = w.carriers(&acme, &web).expect("carriers").into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["standard", "express"]);
    assert!(w.carrier(&acme, &web, "express").is_ok());
    assert_eq!(
        w.carrier(&acme, &web, "overnight").expect_err("unknown").to_string(),
        "unknown carrier `overnight` in tenant `acme` / channel `web`; known: standard, express"
    );

    let till = RegisterId::new("till-1").expect("id");
    assert_eq!(w.registers(&acme, &shop), Ok(vec![till.clone()]));
    assert!(w.printer(&acme, &shop, &till).is_ok());
    assert!(w.drawer(&acme, &shop, &till).is_ok());
    assert!(w.terminal(&acme, &shop, &till).is_ok());
    assert_eq!(
        w.scanner(&acme, &shop, &till).expect_err("no scanner").to_string(),
        "nothing is bound for tenant `acme` / channel `shop-1` / register `till-1` / scanner"
    );
    assert!(w.display(&acme, &shop, &till).is_err());
    assert!(w.scale(&acme, &shop, &till).is_err());
    let err = w.printer(&acme, &shop, &RegisterId::new("till-9").expect("id")).expect_err("unknown");
    assert_eq!(err.to_string(), "unknown register `till-9` in tenant `acme` / channel `shop-1`; known: till-1");

    let rep = w.replication(&acme, &shop).expect("replication");
    let summary: Vec<(&str, Direction, Duration)> =
        rep.iter().map(|r| (r.dataset.as_str(), r.direction, r.interval)).collect();
    assert_eq!(
        summary,
        [
            ("catalog", Direction::Down, Duration::from_secs(300)),
            ("orders", Direction::Up, commerce::DEFAULT_REPLICATION_INTERVAL)
        ]
    );
    assert_eq!(rep[0].adapter, "memory");
    assert!(w.replication(&acme, &web).expect("online").is_empty());

    let hooks = w.webhook_verifiers(&acme).expect("webhooks");
    assert_eq!(hooks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["fakepsp"]);
    assert!(w.webhook_verifier(&acme, "fakepsp").is_ok());
    assert!(matches!(w.webhook_verifier(&acme, "adyen"), Err(WiringError::NotBound { .. })));
    assert!(w.webhook_verifiers(&tid("globex")).expect("tenant").is_empty());
}

#[tokio::test]
async fn bindings_are_reported_in_file_order_ready_at_the_clock_time() {
    let (w, _) = good().await;
    let reports = w.bindings();
    let paths: Vec<&str> = reports.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "store",
            "tenant `acme` / webhook `fakepsp`",
            "tenant `acme` / channel `web` / payment `card`",
            "tenant `acme` / channel `web` / payment `wallet`",
            "tenant `acme` / channel `web` / tax",
            "tenant `acme` / channel `web` / carrier `standard`",
            "tenant `acme` / channel `web` / carrier `express`",
            "tenant `acme` / channel `shop-1` / payment `card-present`",
            "tenant `acme` / channel `shop-1` / register `till-1` / printer",
            "tenant `acme` / channel `shop-1` / register `till-1` / drawer",
            "tenant `acme` / channel `shop-1` / register `till-1` / terminal",
            "tenant `acme` / channel `shop-1` / replication `catalog`",
            "tenant `acme` / channel `shop-1` / replication `orders`",
        ]
    );
    assert_eq!(reports[0].port, PortKind::Store);
    assert_eq!(reports[2].port, PortKind::PaymentGateway);
    assert_eq!(reports[2].adapter, "fakepsp");
    for r in &reports {
        let ready = r.conditions.get(ConditionType::Ready).expect("ready");
        assert_eq!(ready.status, ConditionStatus::True, "{}", r.path);
        assert_eq!(ready.reason, "AdapterBuilt");
        assert_eq!(ready.message, format!("adapter `{}` built", r.adapter));
        assert_eq!(ready.last_transition_time, T0);
        assert!(r.conditions.is_ready());
    }
}

#[tokio::test]
async fn set_condition_moves_the_transition_time_only_on_status_change() {
    let (w, clock) = good().await;
    let path = "tenant `acme` / channel `web` / payment `card`";

    clock.advance(time::Duration::minutes(5));
    w.set_condition(path, ConditionType::Ready, ConditionStatus::True, "AdapterBuilt", "still fine").expect("set");
    let ready = w.conditions(path).expect("binding").get(ConditionType::Ready).cloned().expect("ready");
    assert_eq!(ready.last_transition_time, T0);
    assert_eq!(ready.message, "still fine");

    clock.advance(time::Duration::minutes(5));
    let t1 = T0 + time::Duration::minutes(10);
    w.set_condition(path, ConditionType::Ready, ConditionStatus::False, "ProviderUnavailable", "503 from the PSP")
        .expect("set");
    w.set_condition(path, ConditionType::Degraded, ConditionStatus::True, "SlowProvider", "p99 above 2s").expect("set");
    let conditions = w.conditions(path).expect("binding");
    assert_eq!(
        conditions.get(ConditionType::Ready).map(|c| (c.status, c.last_transition_time)),
        Some((ConditionStatus::False, t1))
    );
    assert_eq!(conditions.get(ConditionType::Degraded).map(|c| c.last_transition_time), Some(t1));
    assert!(!conditions.is_ready());

    // A clone shares the state.
    let clone = w.clone();
    let report = clone.bindings().into_iter().find(|r| r.path == path).expect("report");
    assert_eq!(report.conditions, conditions);

    // Other bindings are untouched.
    assert!(w.conditions("tenant `acme` / channel `web` / tax").expect("tax").is_ready());

    let err = w.set_condition(
        "tenant `acme` / channel `web` / payment `cash`",
        ConditionType::Ready,
        ConditionStatus::True,
        "X",
        "y",
    );
    assert_eq!(err, Err(WiringError::UnknownBinding { path: "tenant `acme` / channel `web` / payment `cash`".into() }));
}

#[tokio::test]
async fn debug_never_prints_secrets() {
    let (w, _) = good().await;
    let debug = format!("{w:?}");
    assert!(!debug.contains(PSP_KEY), "{debug}");
    assert!(!debug.contains("whsec_123"), "{debug}");
    let config = Config::parse(GOOD, FILE).expect("parses");
    assert!(format!("{config:?}").contains("acme"));
}
