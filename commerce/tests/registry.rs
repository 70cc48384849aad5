//! The registry: keys, duplicates, listing and parameter templates.

mod common;

use std::sync::Arc;

use commerce::ports::factory::{AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, PortKind};
use commerce::{Config, ConfigErrorKind, Integrations, MapSecrets, Registry, RegistryError, param_template};
use common::{FILE, TestFactory, factories, registry};

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
# paste under a [[tenant.channel]], one per tender kind (card, card-present, wallet, gift-card, cash, bank-transfer)
[[tenant.channel.payment]]
tender = \"card\"
adapter = \"fakepsp\"
[tenant.channel.payment.params]
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

    let carrier = r.template(PortKind::ShippingCarrier, "flat-rate").expect("flat-rate");
    assert!(
        carrier.contains("[[tenant.channel.carrier]]\nname = \"flat-rate\"\nadapter = \"flat-rate\"\n"),
        "{carrier}"
    );
    assert!(carrier.contains("[tenant.channel.carrier.params]\n"), "{carrier}");
    assert!(carrier.contains("# amount = \"4.90 EUR\""), "{carrier}");
    let printer = r.template(PortKind::ReceiptPrinter, "virtual").expect("virtual");
    assert!(
        printer.ends_with("[tenant.channel.register.printer]\nadapter = \"virtual\"\n# (no parameters)\n"),
        "{printer}"
    );
    let tax = r.template(PortKind::TaxCalculator, "fixed-rate").expect("fixed-rate");
    assert!(tax.contains("[tenant.channel.tax]\nadapter = \"fixed-rate\"\n[tenant.channel.tax.params]\n"), "{tax}");
    assert!(tax.contains("\nrate = \"\"\n"), "required parameters are written out: {tax}");
    let store = r.template(PortKind::Store, "memory").expect("memory");
    assert!(store.contains("\n[store]\nadapter = \"memory\"\n"), "{store}");
    let webhook = r.template(PortKind::WebhookVerifier, "fakepsp").expect("fakepsp");
    assert!(webhook.contains("[[tenant.webhook]]\nadapter = \"fakepsp\"\n[tenant.webhook.params]\n"), "{webhook}");
    let replication = r.template(PortKind::ReplicationTransport, "memory").expect("memory");
    assert!(
        replication.contains("[[tenant.channel.replication]]\ndataset = \"catalog\"\ndirection = \"down\""),
        "{replication}"
    );
}

/// A test factory for `port` with one required secret, one required plain parameter and one default.
fn factory_for(port: PortKind) -> Arc<dyn AdapterFactory> {
    Arc::new(TestFactory {
        name: "probe",
        port,
        params: || {
            vec![
                ParamSpec::secret("token", "Access token"),
                ParamSpec::required("region", ParamType::String, "Region"),
                ParamSpec::required("endpoint", ParamType::Url, "Endpoint"),
                ParamSpec::required("floor", ParamType::Money, "Smallest amount"),
                ParamSpec::with_default("retries", ParamType::Integer, ParamValue::Integer(3), "Retries"),
            ]
        },
        build: |_| Err(BuildError::other("unused")),
    })
}

/// A valid configuration to paste templates after: a store channel whose last table is a register.
const PREFIX: &str = "[[tenant]]\nid = \"t\"\n[[tenant.channel]]\nid = \"c\"\nkind = \"store\"\nstore = \"s\"\n\
                      [[tenant.channel.register]]\nid = \"r\"\n";

#[test]
fn every_bindable_template_pastes_into_a_configuration_as_it_is() {
    let bindable = [
        PortKind::PaymentGateway,
        PortKind::WebhookVerifier,
        PortKind::TaxCalculator,
        PortKind::ShippingCarrier,
        PortKind::ReceiptPrinter,
        PortKind::CashDrawer,
        PortKind::PaymentTerminal,
        PortKind::Scanner,
        PortKind::LineDisplay,
        PortKind::Scale,
        PortKind::ReplicationTransport,
        PortKind::Store,
    ];
    let mut probes = Registry::new();
    for port in bindable {
        probes.register(factory_for(port)).expect("one per port");
    }
    let shared = registry();
    let cases = probes.factories().map(|f| (f, &probes)).chain(shared.factories().map(|f| (f, &shared)));
    for (factory, known) in cases {
        let (port, name) = (factory.port(), factory.name());
        let template = param_template(factory.as_ref());
        let text = format!("{PREFIX}{template}");
        let config = Config::parse(&text, FILE).unwrap_or_else(|e| panic!("{port} `{name}`: {e}\n{text}"));
        match Integrations::validate(&config, known, &MapSecrets::new()) {
            Ok(()) => {}
            // The suggested secret names are not in the (empty) secret source; nothing else may be wrong.
            Err(errors) => assert!(
                errors.iter().all(|e| matches!(e.kind, ConfigErrorKind::MissingSecret { .. })),
                "{port} `{name}`: {errors}\n{text}"
            ),
        }
        let bindings = text.matches(&format!("adapter = \"{name}\"")).count();
        assert_eq!(bindings, 1, "{text}");
    }
}

#[test]
fn a_template_for_a_port_the_schema_cannot_bind_is_all_comments() {
    for port in [PortKind::DnsResolver, PortKind::CertificateIssuer, PortKind::RoutePublisher] {
        let template = param_template(factory_for(port).as_ref());
        assert!(template.contains(&format!("the configuration schema cannot bind a {port} yet")), "{template}");
        assert!(template.lines().all(|l| l.starts_with('#')), "{template}");
        assert!(template.contains("# adapter = \"probe\"\n# [params]\n"), "{template}");
        assert!(Config::parse(&format!("{PREFIX}{template}"), FILE).is_ok());
    }
}

/// Each adapter feature registers its factory in `with_defaults`, and nothing else does.
#[test]
fn adapter_features_register_their_factories() {
    use commerce::ports::factory::PortKind;
    assert!(commerce::Registry::new().is_empty());
    let registry = commerce::Registry::with_defaults();
    let expect = |port: PortKind, name: &str, enabled: bool| {
        assert_eq!(registry.get(port, name).is_some(), enabled, "{port} / {name} registered: expected {enabled}");
    };
    expect(PortKind::Store, "sqlite", cfg!(feature = "sqlite"));
    expect(PortKind::Store, "postgres", cfg!(feature = "postgres"));
    expect(PortKind::WebhookVerifier, "stripe", cfg!(feature = "stripe"));
    expect(PortKind::PaymentGateway, "stripe", cfg!(feature = "stripe"));
    expect(PortKind::WebhookVerifier, "adyen", cfg!(feature = "adyen"));
    expect(PortKind::PaymentGateway, "adyen", cfg!(feature = "adyen"));
    expect(PortKind::PaymentTerminal, "adyen", cfg!(feature = "adyen"));
    // stripe registers two factories (gateway and webhook verifier), adyen three (and a terminal).
    let enabled = [
        cfg!(feature = "sqlite"),
        cfg!(feature = "postgres"),
        cfg!(feature = "stripe"),
        cfg!(feature = "stripe"),
        cfg!(feature = "adyen"),
        cfg!(feature = "adyen"),
        cfg!(feature = "adyen"),
    ];
    assert_eq!(registry.len(), enabled.iter().filter(|e| **e).count());
}
