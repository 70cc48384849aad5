//! Bad configuration files: each gives exactly one precise error naming the file, line, binding and key.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use commerce::ports::TenderKind;
use commerce::ports::factory::PortKind;
use commerce::{Config, ConfigErrorKind, Integrations, Registry};
use common::{ACME_WEB, CountingFactory, FILE, build, clock, one_error, registry, secrets};

fn web(rest: &str) -> String {
    format!("{ACME_WEB}{rest}")
}

const PAYMENT_BINDING: &str = "tenant `acme` / channel `web` / payment `card`";

#[tokio::test]
async fn unknown_key_names_the_key_and_the_expected_ones() {
    let e = one_error(&web("[[tenant.channel.payment]]\ntender = \"card\"\nadapterr = \"memory\"\n")).await;
    assert_eq!(e.line, Some(11));
    assert_eq!(e.key.as_deref(), Some("adapterr"));
    match &e.kind {
        ConfigErrorKind::UnknownKey { key, expected } => {
            assert_eq!(key, "adapterr");
            assert_eq!(expected, &["tender", "adapter", "params"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with("commerce.toml:11:1: unknown key `adapterr`; expected one of: tender, adapter, params"),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_adapter_lists_the_known_ones_for_the_port() {
    let e = one_error(&web("[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"strpe\"\n")).await;
    assert!(matches!(
        &e.kind,
        ConfigErrorKind::UnknownAdapter { port: PortKind::PaymentGateway, name, known }
            if name == "strpe" && known == &["fakepsp", "memory"]
    ));
    assert_eq!(e.binding.as_deref(), Some(PAYMENT_BINDING));
    assert_eq!(e.key.as_deref(), Some("adapter"));
    assert_eq!(
        e.to_string(),
        "commerce.toml:11:11: tenant `acme` / channel `web` / payment `card`: unknown adapter `strpe` for \
         payment-gateway; known: fakepsp, memory"
    );
}

#[tokio::test]
async fn unknown_adapter_for_a_port_without_adapters_says_none_registered() {
    let text = r#"
[[tenant]]
id = "acme"
[[tenant.channel]]
id = "shop-1"
kind = "store"
store = "s1"
[[tenant.channel.register]]
id = "till-1"
scale = { adapter = "memory" }
"#;
    let e = one_error(text).await;
    assert_eq!(e.line, Some(10));
    assert_eq!(e.binding.as_deref(), Some("tenant `acme` / channel `shop-1` / register `till-1` / scale"));
    assert!(e.to_string().ends_with("unknown adapter `memory` for scale; known: none registered"), "{e}");
}

#[tokio::test]
async fn missing_param_names_the_param_and_its_description() {
    let e = one_error(&web("[tenant.channel.tax]\nadapter = \"fixed-rate\"\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::MissingParam { param, .. } if param == "rate"));
    assert_eq!(e.key.as_deref(), Some("params.rate"));
    assert_eq!(e.binding.as_deref(), Some("tenant `acme` / channel `web` / tax"));
    assert_eq!(
        e.to_string(),
        "commerce.toml:10:11: tenant `acme` / channel `web` / tax: adapter `fixed-rate` requires parameter `rate` \
         (Tax rate as a decimal, e.g. 0.2)"
    );
}

#[tokio::test]
async fn missing_sensitive_param_shows_how_to_reference_a_secret() {
    let e = one_error(&web("[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\n")).await;
    assert!(e.to_string().contains("requires parameter `api_key`"), "{e}");
    assert!(e.to_string().contains("api_key = { secret = \"<name>\" }"), "{e}");
}

#[tokio::test]
async fn unknown_param_lists_the_known_ones() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\n[tenant.channel.payment.params]\napi_key = { secret = \"psp_key\" }\ncolour = \"red\"\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::UnknownParam { param, .. } if param == "colour"));
    assert_eq!(e.line, Some(14));
    assert_eq!(e.key.as_deref(), Some("params.colour"));
    assert!(
        e.to_string().ends_with(
            "unknown parameter `colour` for adapter `fakepsp`; known: api_key, base_url, timeout_ms, descriptor"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_param_type_names_expected_and_found() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { secret = \"psp_key\" }, timeout_ms = \"fast\" }\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::WrongParamType { param, .. } if param == "timeout_ms"));
    assert_eq!(e.key.as_deref(), Some("params.timeout_ms"));
    assert!(e.to_string().ends_with("parameter `timeout_ms` must be an integer, found a string"), "{e}");
}

#[tokio::test]
async fn secret_reference_for_a_plain_param_is_a_wrong_type() {
    let e = one_error(&web(
        "[tenant.channel.tax]\nadapter = \"fixed-rate\"\nparams = { rate = { secret = \"psp_key\" } }\n",
    ))
    .await;
    assert!(e.to_string().ends_with("parameter `rate` must be a string, found a secret reference"), "{e}");
}

#[tokio::test]
async fn a_literal_secret_is_refused_without_repeating_it() {
    let literal = "sk_live_TOPSECRET_4242";
    let text = web(&format!(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = {{ api_key = \"{literal}\" }}\n"
    ));
    let config = Config::parse(&text, FILE).expect("parses");
    assert!(!format!("{config:?}").contains(literal));
    let errors = Integrations::build(&config, &registry(), &secrets(), clock()).await.expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert!(matches!(&e.kind, ConfigErrorKind::SecretLiteral { param } if param == "api_key"));
    assert_eq!(e.line, Some(12));
    assert_eq!(e.key.as_deref(), Some("params.api_key"));
    assert_eq!(e.binding.as_deref(), Some(PAYMENT_BINDING));
    let msg = errors.to_string();
    assert!(msg.contains("parameter `api_key` is sensitive and must reference a secret"), "{msg}");
    assert!(!msg.contains(literal) && !msg.contains("TOPSECRET"), "{msg}");
    let debug = format!("{errors:?}");
    assert!(!debug.contains("TOPSECRET"), "{debug}");
}

#[tokio::test]
async fn a_missing_secret_is_named() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { secret = \"absent_key\" } }\n",
    ))
    .await;
    assert!(
        matches!(&e.kind, ConfigErrorKind::MissingSecret { name, param } if name == "absent_key" && param == "api_key")
    );
    assert_eq!(
        e.to_string(),
        "commerce.toml:12:22: tenant `acme` / channel `web` / payment `card`: secret `absent_key` (parameter \
         `api_key`) was not found in the secret source"
    );
}

#[tokio::test]
async fn a_secret_name_that_could_escape_a_directory_is_refused() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { secret = \"../etc/passwd\" } }\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::InvalidSecretName { name, .. } if name == "../etc/passwd"));
    assert!(e.to_string().contains("invalid secret name `../etc/passwd`"), "{e}");
}

#[tokio::test]
async fn another_inline_table_is_not_a_secret_reference() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { vault = \"sk_live_x\" } }\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::InvalidSecretRef { param, .. } if param == "api_key"));
    assert!(e.to_string().contains("found keys: vault"), "{e}");
    assert!(!e.to_string().contains("sk_live_x"), "{e}");
}

#[tokio::test]
async fn a_tender_bound_twice_names_the_first_line() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"memory\"\n[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { secret = \"psp_key\" } }\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::TenderBoundTwice { tender: TenderKind::Card, first: Some(10) }));
    assert_eq!(e.line, Some(13));
    assert_eq!(
        e.to_string(),
        "commerce.toml:13:10: tenant `acme` / channel `web` / payment `card`: tender `card` is bound twice in this \
         channel (first at line 10)"
    );
}

#[tokio::test]
async fn an_unknown_tender_lists_the_tender_names() {
    let e = one_error(&web("[[tenant.channel.payment]]\ntender = \"cheque\"\nadapter = \"memory\"\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::UnknownTender { value, .. } if value == "cheque"));
    assert!(
        e.to_string()
            .ends_with("unknown tender `cheque`; known: card, card-present, wallet, gift-card, cash, bank-transfer"),
        "{e}"
    );
}

#[tokio::test]
async fn a_duplicate_channel_is_refused() {
    let e = one_error(&web("[[tenant.channel]]\nid = \"web\"\nkind = \"online\"\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::DuplicateChannel { id, first: Some(6) } if id == "web"));
    assert_eq!(e.line, Some(10));
    assert!(e.to_string().contains("channel `web` is declared twice in this tenant (first at line 6)"), "{e}");
}

#[tokio::test]
async fn a_duplicate_tenant_is_refused() {
    let e = one_error(&web("[[tenant]]\nid = \"acme\"\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::DuplicateTenant { id, first: Some(3) } if id == "acme"));
}

#[tokio::test]
async fn a_register_in_an_online_channel_is_not_allowed() {
    let e =
        one_error(&web("[[tenant.channel.register]]\nid = \"till-1\"\nprinter = { adapter = \"virtual\" }\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::NotAllowed { .. }));
    assert_eq!(e.line, Some(9));
    assert_eq!(e.binding.as_deref(), Some("tenant `acme` / channel `web`"));
    assert!(
        e.to_string().contains("registers are only allowed in a channel of kind \"store\"; channel `web` is online"),
        "{e}"
    );
}

#[tokio::test]
async fn replication_in_an_online_channel_is_not_allowed() {
    let e = one_error(&web(
        "[[tenant.channel.replication]]\ndataset = \"catalog\"\ndirection = \"down\"\nadapter = \"memory\"\n",
    ))
    .await;
    assert!(e.to_string().contains("replication is only allowed in a channel of kind \"store\""), "{e}");
}

#[tokio::test]
async fn a_store_channel_must_name_its_store_and_an_online_one_must_not() {
    let text = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"shop\"\nkind = \"store\"\n";
    let e = one_error(text).await;
    assert!(matches!(&e.kind, ConfigErrorKind::MissingKey { key } if key == "store"), "{e:?}");
    assert_eq!(e.key.as_deref(), Some("store"));
    assert_eq!(e.line, Some(3), "at the channel's table");
    assert_eq!(e.to_string(), "commerce.toml:3:1: tenant `acme` / channel `shop`: missing key `store`");

    let text = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"web\"\nkind = \"online\"\nstore = \"s1\"\n";
    let e = one_error(text).await;
    assert_eq!(e.line, Some(6));
    assert!(e.to_string().contains("`store` is only allowed in a channel of kind \"store\""), "{e}");
}

#[tokio::test]
async fn a_bad_currency_is_named() {
    let text = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"web\"\nkind = \"online\"\ncurrency = \"EURO\"\n";
    let e = one_error(text).await;
    assert!(
        matches!(&e.kind, ConfigErrorKind::InvalidValue { what, value, .. } if what == "currency" && value.as_deref() == Some("EURO"))
    );
    assert_eq!(e.key.as_deref(), Some("currency"));
    assert!(
        e.to_string().starts_with("commerce.toml:6:12: tenant `acme` / channel `web`: invalid currency `EURO`"),
        "{e}"
    );
}

#[tokio::test]
async fn a_bad_channel_kind_is_named() {
    let text = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"web\"\nkind = \"marketplace\"\n";
    let e = one_error(text).await;
    assert!(e.to_string().ends_with("invalid channel kind `marketplace`: expected `online` or `store`"), "{e}");
}

#[tokio::test]
async fn a_toml_syntax_error_has_a_line_number() {
    let e = one_error(&web("[[tenant.channel.payment]\ntender = \"card\"\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::Syntax { .. }));
    assert_eq!(e.line, Some(9));
    assert!(e.to_string().starts_with("commerce.toml:9:"), "{e}");
}

#[tokio::test]
async fn a_wrong_toml_type_for_a_schema_key_is_located() {
    let e = one_error("[[tenant]]\nid = 5\n").await;
    assert!(matches!(&e.kind, ConfigErrorKind::Syntax { .. }));
    assert_eq!((e.line, e.column), (Some(2), Some(6)));
    assert!(e.to_string().contains("invalid type: integer `5`, expected a string"), "{e}");
}

#[tokio::test]
async fn a_missing_schema_key_is_named() {
    let e = one_error("[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"web\"\n").await;
    assert!(matches!(&e.kind, ConfigErrorKind::MissingKey { key } if key == "kind"));
    assert_eq!(e.line, Some(3));
}

#[tokio::test]
async fn a_config_without_tenants_is_refused() {
    let e = one_error("[store]\nadapter = \"memory\"\n").await;
    assert_eq!(e.kind, ConfigErrorKind::NoTenants);
    assert!(e.to_string().starts_with("commerce.toml: no tenant is configured"), "{e}");
    assert!(matches!(one_error("").await.kind, ConfigErrorKind::NoTenants));
}

#[tokio::test]
async fn bad_id_characters_are_located() {
    let e = one_error("[[tenant]]\nid = \"ac me\"\n").await;
    assert!(matches!(&e.kind, ConfigErrorKind::InvalidId(_)));
    assert_eq!(e.key.as_deref(), Some("id"));
    assert_eq!(
        e.to_string(),
        "commerce.toml:2:6: tenant `ac me`: tenant id `ac me` has a character that is not allowed at position 2; \
         allowed: A-Z a-z 0-9 - _ . :"
    );
}

#[tokio::test]
async fn a_bad_url_param_is_refused() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { secret = \"psp_key\" }, base_url = \"ftp://x\" }\n",
    ))
    .await;
    assert!(
        e.to_string().ends_with("invalid parameter `base_url` `ftp://x`: expected an http:// or https:// URL"),
        "{e}"
    );
}

#[tokio::test]
async fn a_bad_money_param_is_refused() {
    let e = one_error(&web("[[tenant.channel.carrier]]\nname = \"standard\"\nadapter = \"flat-rate\"\nparams = { amount = \"4.999 EUR\" }\n")).await;
    assert!(matches!(&e.kind, ConfigErrorKind::InvalidValue { value, .. } if value.as_deref() == Some("4.999 EUR")));
    assert_eq!(e.binding.as_deref(), Some("tenant `acme` / channel `web` / carrier `standard`"));
}

#[tokio::test]
async fn replication_checks_interval_direction_and_duplicates() {
    let store = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"shop\"\nkind = \"store\"\nstore = \"s1\"\n";
    let e = one_error(&format!(
        "{store}[[tenant.channel.replication]]\ndataset = \"catalog\"\ndirection = \"down\"\ninterval_secs = 0\nadapter = \"memory\"\n"
    ))
    .await;
    assert!(e.to_string().ends_with("invalid interval_secs `0`: it must be at least 1 (seconds)"), "{e}");
    assert_eq!(e.line, Some(10));

    let e = one_error(&format!(
        "{store}[[tenant.channel.replication]]\ndataset = \"catalog\"\ndirection = \"sideways\"\nadapter = \"memory\"\n"
    ))
    .await;
    assert!(e.to_string().ends_with("invalid direction `sideways`: expected `down`, `up` or `both`"), "{e}");

    let e = one_error(&format!(
        "{store}[[tenant.channel.replication]]\ndataset = \"catalog\"\ndirection = \"down\"\nadapter = \"memory\"\n\
         [[tenant.channel.replication]]\ndataset = \"catalog\"\ndirection = \"up\"\nadapter = \"memory\"\n"
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::DuplicateDataset { dataset, first: Some(8) } if dataset == "catalog"));
}

#[tokio::test]
async fn duplicate_registers_carriers_and_webhooks_are_refused() {
    let store = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"shop\"\nkind = \"store\"\nstore = \"s1\"\n";
    let e = one_error(&format!(
        "{store}[[tenant.channel.register]]\nid = \"till-1\"\n[[tenant.channel.register]]\nid = \"till-1\"\n"
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::DuplicateRegister { id, first: Some(8) } if id == "till-1"));

    let e = one_error(&web(
        "[[tenant.channel.carrier]]\nname = \"standard\"\nadapter = \"flat-rate\"\n[[tenant.channel.carrier]]\nname = \"standard\"\nadapter = \"flat-rate\"\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::DuplicateCarrier { name, first: Some(10) } if name == "standard"));

    let e = one_error(
        "[[tenant]]\nid = \"acme\"\n[[tenant.webhook]]\nadapter = \"fakepsp\"\nparams = { signing_secret = { secret = \"psp_whsec\" } }\n\
         [[tenant.webhook]]\nadapter = \"fakepsp\"\nparams = { signing_secret = { secret = \"psp_whsec\" } }\n",
    )
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::DuplicateWebhook { adapter, first: Some(4) } if adapter == "fakepsp"));
    assert_eq!(e.binding.as_deref(), Some("tenant `acme` / webhook `fakepsp`"));
}

#[tokio::test]
async fn a_factory_failure_names_the_param_without_its_value() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = { secret = \"bad_key\" } }\n",
    ))
    .await;
    assert!(
        matches!(&e.kind, ConfigErrorKind::BuildFailed { adapter, error } if adapter == "fakepsp" && error.param.as_deref() == Some("api_key"))
    );
    assert_eq!(e.key.as_deref(), Some("params.api_key"));
    assert_eq!(e.line, Some(12));
    let msg = e.to_string();
    assert!(
        msg.ends_with(
            "adapter `fakepsp` could not be built: parameter `api_key`: must be a FakePSP secret key (sk_...)"
        ),
        "{msg}"
    );
    assert!(!msg.contains("pk_wrong_kind"), "{msg}");
}

#[tokio::test]
async fn a_factory_returning_the_wrong_port_fails_the_build() {
    let e = one_error(&web("[tenant.channel.tax]\nadapter = \"liar\"\n")).await;
    assert!(
        e.to_string()
            .ends_with("the factory returned a receipt-printer adapter where a tax-calculator adapter was expected"),
        "{e}"
    );
}

#[tokio::test]
async fn every_mistake_is_reported_at_once_in_file_order() {
    let text = web("[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"strpe\"\n\
         [[tenant.channel.payment]]\ntender = \"wallet\"\nadapter = \"fakepsp\"\nparams = { api_key = \"sk_live_zzz\", timeout_ms = true }\n\
         [tenant.channel.tax]\nadapter = \"fixed-rate\"\n\
         [[tenant.channel.register]]\nid = \"t 1\"\n");
    let errors = build(&text).await.expect_err("invalid");
    let lines: Vec<Option<u32>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(11), Some(15), Some(15), Some(17), Some(18), Some(19)], "{errors}");
    assert_eq!(errors.to_string().lines().count(), 6, "{errors}");
    assert!(!errors.to_string().contains("sk_live_zzz"));
}

#[tokio::test]
async fn nothing_is_built_when_validation_fails() {
    let counting = CountingFactory::default();
    let builds = Arc::clone(&counting.builds);
    let mut registry = Registry::new();
    registry.register(Arc::new(counting)).expect("registered");
    let text = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"web\"\nkind = \"online\"\n\
                [[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"counting\"\n\
                [[tenant.channel.payment]]\ntender = \"wallet\"\nadapter = \"missing\"\n";
    let config = Config::parse(text, FILE).expect("parses");
    let errors = Integrations::build(&config, &registry, &secrets(), clock()).await.expect_err("invalid");
    assert_eq!(errors.len(), 1);
    assert_eq!(builds.load(Ordering::SeqCst), 0);
    assert!(Integrations::validate(&config, &registry, &secrets()).is_err());
}

#[tokio::test]
async fn from_file_reports_an_unreadable_file() {
    let errors = Config::from_file("/nonexistent/commerce.toml").expect_err("missing");
    assert!(matches!(errors.0[0].kind, ConfigErrorKind::Io { .. }));
    assert!(errors.to_string().starts_with("/nonexistent/commerce.toml: cannot read the configuration"), "{errors}");
}

#[tokio::test]
async fn a_single_table_where_a_list_is_expected_gets_a_hint() {
    let e = one_error(&web("[tenant.channel.payment]\ntender = \"card\"\nadapter = \"memory\"\n")).await;
    assert_eq!(e.line, Some(9));
    assert!(e.to_string().ends_with("write `[[tenant.channel.payment]]`"), "{e}");
}

#[tokio::test]
async fn a_string_in_place_of_a_params_table_is_not_repeated() {
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = \"sk_live_oops\"\n",
    ))
    .await;
    assert_eq!(e.line, Some(12));
    assert!(!e.to_string().contains("sk_live_oops"), "{e}");
    assert!(!format!("{e:?}").contains("sk_live_oops"));
}

#[tokio::test]
async fn a_typo_of_a_required_param_is_one_error_with_a_suggestion() {
    let e = one_error(&web("[tenant.channel.tax]\nadapter = \"fixed-rate\"\nparams = { rat = \"0.2\" }\n")).await;
    assert!(
        matches!(&e.kind, ConfigErrorKind::UnknownParam { param, suggestion: Some(s), .. } if param == "rat" && s == "rate"),
        "{e:?}"
    );
    assert_eq!(e.key.as_deref(), Some("params.rat"));
    assert_eq!(e.line, Some(11));
    assert_eq!(
        e.to_string(),
        "commerce.toml:11:18: tenant `acme` / channel `web` / tax: unknown parameter `rat` for adapter `fixed-rate`; \
         did you mean `rate`?"
    );

    // Another case is a typo too.
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { API_KEY = { secret = \"psp_key\" } }\n",
    ))
    .await;
    assert!(
        e.to_string().ends_with("unknown parameter `API_KEY` for adapter `fakepsp`; did you mean `api_key`?"),
        "{e}"
    );

    // A name far from every missing one stays two mistakes.
    let errors = build(&web("[tenant.channel.tax]\nadapter = \"fixed-rate\"\nparams = { percentage = \"0.2\" }\n"))
        .await
        .expect_err("invalid");
    let kinds: Vec<_> = errors.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(
            kinds[..],
            [ConfigErrorKind::MissingParam { .. }, ConfigErrorKind::UnknownParam { suggestion: None, .. }]
        ),
        "{errors}"
    );

    // A typo of a parameter that is present, or optional, gets no suggestion.
    let e = one_error(&web(
        "[tenant.channel.tax]\nadapter = \"fixed-rate\"\nparams = { rate = \"0.2\", treshold = \"1.00 EUR\" }\n",
    ))
    .await;
    assert!(matches!(&e.kind, ConfigErrorKind::UnknownParam { suggestion: None, .. }), "{e:?}");
    assert!(e.to_string().ends_with("known: rate, threshold, inclusive"), "{e}");
}

#[tokio::test]
async fn a_url_with_credentials_is_refused_without_repeating_it() {
    for url in ["https://user:sk_live_HUSH@api.fakepsp.test/v1", "https://sk_live_HUSH@api.fakepsp.test"] {
        let e = one_error(&web(&format!(
            "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = {{ api_key = {{ secret = \"psp_key\" }}, base_url = \"{url}\" }}\n"
        )))
        .await;
        assert!(
            matches!(&e.kind, ConfigErrorKind::InvalidValue { what, value: None, .. } if what == "parameter `base_url`"),
            "{e:?}"
        );
        assert_eq!(e.key.as_deref(), Some("params.base_url"));
        assert_eq!(
            e.to_string(),
            "commerce.toml:12:57: tenant `acme` / channel `web` / payment `card`: invalid parameter `base_url`: the URL \
             contains credentials (user:password@); pass them as a sensitive parameter instead"
        );
        assert!(!format!("{e:?}").contains("HUSH"), "{e:?}");
    }
}

#[tokio::test]
async fn a_sensitive_url_param_is_never_repeated() {
    use commerce::ports::factory::{ParamSpec, ParamType};
    let factory = common::TestFactory {
        name: "hooked",
        port: PortKind::TaxCalculator,
        params: || vec![ParamSpec::required("endpoint", ParamType::Url, "Endpoint with its token").sensitive()],
        build: |_| Err(commerce::ports::factory::BuildError::other("unused")),
    };
    let registry = Registry::new().with(Arc::new(factory)).expect("registered");
    for value in ["https://user:pw_HUSH@tax.test", "ftp://HUSH", "not a url HUSH"] {
        let text = web(&format!("[tenant.channel.tax]\nadapter = \"hooked\"\nparams = {{ endpoint = \"{value}\" }}\n"));
        let config = Config::parse(&text, FILE).expect("parses");
        let errors = Integrations::validate(&config, &registry, &secrets()).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(matches!(&errors.0[0].kind, ConfigErrorKind::SecretLiteral { .. }), "{errors:?}");
        assert!(!errors.to_string().contains("HUSH") && !format!("{errors:?}").contains("HUSH"), "{errors}");
    }
}

#[tokio::test]
async fn an_invalid_id_declared_twice_is_one_error_per_occurrence() {
    let errors = build("[[tenant]]\nid = \"ac me\"\n[[tenant]]\nid = \"ac me\"\n").await.expect_err("invalid");
    let kinds: Vec<_> = errors.iter().map(|e| (&e.kind, e.line)).collect();
    assert!(
        matches!(kinds[..], [(ConfigErrorKind::InvalidId(_), Some(2)), (ConfigErrorKind::InvalidId(_), Some(4))]),
        "{errors}"
    );

    let store = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"sh op\"\nkind = \"store\"\nstore = \"s1\"\n\
                 [[tenant.channel]]\nid = \"sh op\"\nkind = \"store\"\nstore = \"s1\"\n\
                 [[tenant.channel.register]]\nid = \"t 1\"\n[[tenant.channel.register]]\nid = \"t 1\"\n\
                 [[tenant.channel.replication]]\ndataset = \"a b\"\ndirection = \"down\"\nadapter = \"memory\"\n\
                 [[tenant.channel.replication]]\ndataset = \"a b\"\ndirection = \"down\"\nadapter = \"memory\"\n";
    let errors = build(store).await.expect_err("invalid");
    assert_eq!(errors.len(), 6, "{errors}");
    assert!(errors.iter().all(|e| matches!(e.kind, ConfigErrorKind::InvalidId(_))), "{errors}");
}

#[tokio::test]
async fn the_key_is_shown_when_the_message_does_not_name_it() {
    let store = "[[tenant]]\nid = \"acme\"\n[[tenant.channel]]\nid = \"shop\"\nkind = \"store\"\nstore = \"s1\"\n";
    let e = one_error(&format!(
        "{store}[[tenant.channel.register]]\nid = \"till-1\"\n[[tenant.channel.register]]\nid = \"till-1\"\n"
    ))
    .await;
    assert_eq!(
        e.to_string(),
        "commerce.toml:10:6: tenant `acme` / channel `shop` / register `till-1`: id: register `till-1` is declared \
         twice in this channel (first at line 8)"
    );
    // A message that names its key does not repeat it.
    let e = one_error(&web(
        "[[tenant.channel.payment]]\ntender = \"card\"\nadapter = \"fakepsp\"\nparams = { api_key = \"x\" }\n",
    ))
    .await;
    assert_eq!(e.key.as_deref(), Some("params.api_key"));
    assert!(!e.to_string().contains("params.api_key"), "{e}");
}
