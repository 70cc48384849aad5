//! The registry: keys, duplicates, listing and parameter templates.

mod common;

use std::sync::Arc;

use commerce::ports::factory::PortKind;
use commerce::{Config, Registry, RegistryError, param_template};
use common::{FILE, TestFactory, factories, registry};

#[test]
fn defaults_are_empty_until_adapter_features_exist() {
    assert!(Registry::with_defaults().is_empty());
    assert!(Registry::new().is_empty());
}

#[test]
fn factories_are_keyed_by_port_and_name() {
    let r = registry();
    assert_eq!(r.len(), factories().len());
    assert_eq!(r.names(PortKind::PaymentGateway), ["fakepsp", "memory"]);
    assert_eq!(r.names(PortKind::Scale), Vec::<&str>::new());
    assert_eq!(r.get(PortKind::TaxCalculator, "fixed-rate").map(|f| f.name()), Some("fixed-rate"));
    assert!(r.get(PortKind::TaxCalculator, "memory").is_none());
    let memory: Vec<PortKind> = r.by_name("memory").iter().map(|f| f.port()).collect();
    assert_eq!(
        memory,
        [
            PortKind::PaymentGateway,
            PortKind::PaymentTerminal,
            PortKind::Scanner,
            PortKind::LineDisplay,
            PortKind::ReplicationTransport,
            PortKind::Store,
        ]
    );
    assert!(r.by_name("nothing").is_empty());
}

#[test]
fn a_duplicate_is_refused_and_register_all_is_all_or_nothing() {
    let mut r = registry();
    let again = factories().into_iter().next().expect("one");
    let err = r.register(again).expect_err("duplicate");
    assert_eq!(err, RegistryError::Duplicate { port: PortKind::PaymentGateway, name: "fakepsp" });
    assert_eq!(err.to_string(), "an adapter `fakepsp` for payment-gateway is already registered");

    let mut empty = Registry::new();
    let scale = Arc::new(TestFactory {
        name: "memory",
        port: PortKind::Scale,
        params: Vec::new,
        build: |_| Err(commerce::ports::factory::BuildError::other("unused")),
    });
    let batch = vec![scale.clone() as Arc<_>, scale as Arc<_>];
    assert!(empty.register_all(batch).is_err());
    assert!(empty.is_empty(), "nothing registered from a batch with a duplicate");
}

#[test]
fn the_param_template_references_secrets_and_shows_defaults() {
    let r = registry();
    let fakepsp = r.get(PortKind::PaymentGateway, "fakepsp").expect("fakepsp");
    let template = param_template(fakepsp.as_ref());
    assert_eq!(r.template(PortKind::PaymentGateway, "fakepsp").as_deref(), Some(template.as_str()));
    let expected = "\
# adapter `fakepsp` (payment-gateway): a test adapter
# goes in [[tenant.channel.payment]] (with `tender = \"...\"`); the parameters go in its `params` table
adapter = \"fakepsp\"
[params]
# FakePSP secret key. Type: string. Sensitive: must reference a secret. Required.
api_key = { secret = \"fakepsp_api_key\" }
# Base URL of the API. Type: url. Default: \"https://api.fakepsp.test\".
# base_url = \"https://api.fakepsp.test\"
# Request timeout in milliseconds. Type: integer. Default: 5000.
# timeout_ms = 5000
# Statement descriptor. Type: string. Optional.
# descriptor = \"\"
";
    assert_eq!(template, expected);
    assert!(template.contains("{ secret = "));

    let carrier = r.template(PortKind::ShippingCarrier, "flat-rate").expect("flat-rate");
    assert!(carrier.contains("# amount = \"4.90 EUR\""), "{carrier}");
    let printer = r.template(PortKind::ReceiptPrinter, "virtual").expect("virtual");
    assert!(printer.ends_with("adapter = \"virtual\"\n# (no parameters)\n"), "{printer}");
}

#[test]
fn every_template_is_valid_toml_once_nested_in_its_binding() {
    let r = registry();
    for factory in r.factories() {
        let template = param_template(factory.as_ref());
        // The snippet is a table of its own: `adapter` plus a `[params]` table.
        let parsed: Result<toml::Table, _> = toml::from_str(&template);
        assert!(parsed.is_ok(), "{}: {template}", factory.name());
    }
    // And a channel written from the fakepsp template with the secret name filled in parses.
    let text = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"web\"\nkind = \"online\"\n\
                [[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\n\
                [tenant.channel.payment.params]\napi_key = { secret = \"fakepsp_api_key\" }\n";
    assert!(Config::parse(text, FILE).is_ok());
}
