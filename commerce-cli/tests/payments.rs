//! `commerce payments ...`, run as separate processes against a SQLite store file and the Stripe adapter
//! pointed at the loopback Stripe simulator, which a tokio runtime of the test hosts meanwhile.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use commerce_testkit::simulators::stripe::{Fault, StripeSimulator};
use serde_json::Value;

/// A running simulator and the runtime serving it (worker threads), while the test thread runs the binary.
struct Provider {
    simulator: Option<StripeSimulator>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Provider {
    fn start() -> Provider {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let simulator = runtime.block_on(StripeSimulator::start()).expect("the simulator starts");
        Provider { simulator: Some(simulator), runtime: Some(runtime) }
    }

    fn simulator(&self) -> &StripeSimulator {
        self.simulator.as_ref().expect("running")
    }

    fn processed_calls(&self) -> usize {
        self.simulator().processed_calls()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // The server task first, inside its runtime; then the runtime.
        if let (Some(simulator), Some(runtime)) = (self.simulator.take(), self.runtime.as_ref()) {
            let _guard = runtime.enter();
            simulator.shutdown();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A temp directory with a configuration, its secrets directory and a SQLite file.
struct Setup {
    dir: PathBuf,
    config: PathBuf,
    secrets: PathBuf,
    api_key: String,
}

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("commerce-cli-payments-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn toml_string(path: &Path) -> String {
    // Paths of the temp dir are plain; Debug quoting escapes `\` and `"` as TOML basic strings do.
    format!("{:?}", path.to_str().expect("utf-8 temp path"))
}

impl Setup {
    /// SQLite store, tenant `acme`, channel `web` binding `card` to Stripe at the simulator. The API key is
    /// a secret reference resolved from `--secrets-dir`, never in the file.
    fn stripe(name: &str, provider: &Provider) -> Setup {
        let dir = temp_dir(name);
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        let api_key = provider.simulator().api_key().to_owned();
        std::fs::write(secrets.join("acme_stripe_key"), &api_key).expect("write secret");
        let text = format!(
            r#"
[store]
adapter = "sqlite"
params = {{ path = {db} }}

[[tenant]]
id = "acme"

[[tenant.channel]]
id = "web"
kind = "online"
currency = "USD"

[[tenant.channel.payment]]
tender = "card"
adapter = "stripe"
params = {{ api_key = {{ secret = "acme_stripe_key" }}, base_url = "{url}", max_retries = 0 }}
"#,
            db = toml_string(&dir.join("state.db")),
            url = provider.simulator().base_url(),
        );
        let config = dir.join("commerce.toml");
        std::fs::write(&config, &text).expect("write config");
        assert!(!text.contains(&api_key), "the key is not in the file");
        Setup { dir, config, secrets, api_key }
    }

    /// Runs `commerce payments <op> --config .. --secrets-dir .. --tenant acme --channel web <rest>`.
    fn run(&self, op: &str, rest: &[&str]) -> Run {
        let mut args = vec!["payments", op, "--config", self.config.to_str().expect("utf-8"), "--secrets-dir"];
        args.push(self.secrets.to_str().expect("utf-8"));
        args.extend(["--tenant", "acme", "--channel", "web"]);
        args.extend(rest);
        let run = Run::of(commerce(&args));
        assert!(
            !run.stdout.contains(&self.api_key) && !run.stderr.contains(&self.api_key),
            "the API key is never printed: {run:?}"
        );
        run
    }

    fn authorize(&self, key: &str, amount: &str, pm: &str) -> Run {
        self.run(
            "authorize",
            &["--tender", "card", "--amount", amount, "--idempotency-key", key, "--payment-method", pm],
        )
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn commerce(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args(args)
        .env_remove("COMMERCE_SECRET_ACME_STRIPE_KEY")
        .output()
        .expect("the commerce binary runs")
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The one JSON object on stdout.
    fn json(&self) -> Value {
        assert_eq!(self.stdout.trim().lines().count(), 1, "one line of JSON: {self:?}");
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("JSON on stdout ({e}): {self:?}"))
    }

    /// Exit 0 and the intent.
    fn ok(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        self.json()
    }

    /// Exit 1 and the error object.
    fn error(&self) -> Value {
        assert_eq!(self.code, Some(1), "{self:?}");
        let value = self.json();
        let error = value["error"].clone();
        assert!(error["kind"].is_string() && error["message"].is_string(), "{self:?}");
        error
    }
}

#[test]
fn authorize_capture_refund_and_show_run_across_invocations() {
    let provider = Provider::start();
    let setup = Setup::stripe("lifecycle", &provider);

    let authorized = setup.authorize("order-1:authorize", "10.00 USD", "pm_card_visa").ok();
    let id = authorized["intent_id"].as_str().expect("intent_id").to_owned();
    assert_eq!(authorized["status"], "authorized");
    assert_eq!(authorized["tenant"], "acme");
    assert_eq!(authorized["channel"], "web");
    assert_eq!(authorized["tender"], "card");
    assert_eq!(authorized["provider"], "stripe");
    assert_eq!(authorized["amount"], "10.00 USD");
    assert_eq!(authorized["authorized"], "10.00 USD");
    assert_eq!(authorized["captured"], "0.00 USD");
    assert_eq!(authorized["refunded"], "0.00 USD");
    assert_eq!(authorized["minor_units"]["authorized"], 1_000);
    assert_eq!(authorized["currency"], "USD");
    assert_eq!(authorized["reference"], "order-1:authorize");
    assert!(authorized["provider_reference"].as_str().is_some_and(|r| r.starts_with("pi_")), "{authorized}");
    assert!(authorized["version"].as_u64().is_some(), "{authorized}");
    assert_eq!(provider.processed_calls(), 1);

    // A partial, final capture (the default): the rest of the authorization is released.
    let captured =
        setup.run("capture", &["--intent", &id, "--amount", "4.00 USD", "--idempotency-key", "order-1:capture"]).ok();
    assert_eq!(captured["intent_id"], id.as_str());
    assert_eq!(captured["status"], "captured");
    assert_eq!(captured["captured"], "4.00 USD");
    assert_eq!(captured["authorized"], "10.00 USD");
    assert_eq!(captured["refundable"], "4.00 USD");
    assert!(captured["version"].as_u64() > authorized["version"].as_u64(), "{captured}");

    let refunded =
        setup.run("refund", &["--intent", &id, "--amount", "1.50 USD", "--idempotency-key", "order-1:refund-1"]).ok();
    assert_eq!(refunded["status"], "partially_refunded");
    assert_eq!(refunded["refunded"], "1.50 USD");
    assert_eq!(refunded["minor_units"]["refunded"], 150);
    assert_eq!(refunded["captured"], "4.00 USD");

    let shown = setup.run("show", &["--intent", &id]).ok();
    assert_eq!(shown, refunded, "show prints the stored intent");
    assert_eq!(provider.processed_calls(), 3);

    // Without --amount: everything still refundable; a retry of it replays instead of conflicting.
    let rest = setup.run("refund", &["--intent", &id, "--idempotency-key", "order-1:refund-2"]).ok();
    assert_eq!(rest["status"], "refunded");
    assert_eq!(rest["refunded"], "4.00 USD");
    assert_eq!(provider.processed_calls(), 4);
    let replay = setup.run("refund", &["--intent", &id, "--idempotency-key", "order-1:refund-2"]).ok();
    assert_eq!(replay, rest);
    assert_eq!(provider.processed_calls(), 4, "a replay makes no provider call");

    // The intent is in another channel's or tenant's view only by its own channel.
    let other = setup.run("show", &["--intent", "pi-nope"]).error();
    assert_eq!(other["kind"], "not_found", "{other}");
}

#[test]
fn a_replayed_authorization_returns_the_same_intent_without_a_second_call() {
    let provider = Provider::start();
    let setup = Setup::stripe("replay", &provider);

    let first = setup.authorize("order-2", "10.00 USD", "pm_card_visa").ok();
    let again = setup.authorize("order-2", "10.00 USD", "pm_card_visa").ok();
    assert_eq!(first, again);
    assert_eq!(provider.processed_calls(), 1, "the provider was called once");

    let conflict = setup.authorize("order-2", "12.00 USD", "pm_card_visa").error();
    assert_eq!(conflict["kind"], "idempotency_conflict", "{conflict}");
    assert!(conflict["message"].as_str().is_some_and(|m| m.contains("authorize")), "{conflict}");
    assert_eq!(provider.processed_calls(), 1);

    // Capture without --amount takes all that remains.
    let id = first["intent_id"].as_str().expect("intent_id");
    let captured = setup.run("capture", &["--intent", id, "--idempotency-key", "order-2:capture"]).ok();
    assert_eq!((captured["status"].as_str(), captured["captured"].as_str()), (Some("captured"), Some("10.00 USD")));
}

#[test]
fn a_declined_card_fails_the_intent() {
    let provider = Provider::start();
    let setup = Setup::stripe("declined", &provider);

    let declined = setup.authorize("order-3", "10.00 USD", "pm_card_chargeDeclined").error();
    assert_eq!(declined["kind"], "declined", "{declined}");
    let id = declined["intent_id"].as_str().expect("the declined intent is named").to_owned();

    let shown = setup.run("show", &["--intent", &id]).ok();
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["authorized"], "0.00 USD");

    // The decline is the key's stored outcome: a retry gets it again without calling the provider.
    let calls = provider.processed_calls();
    let again = setup.authorize("order-3", "10.00 USD", "pm_card_chargeDeclined").error();
    assert_eq!(again["kind"], "declined");
    assert_eq!(provider.processed_calls(), calls);
}

#[test]
fn void_after_a_capture_is_refused_and_says_refund() {
    let provider = Provider::start();
    let setup = Setup::stripe("void", &provider);

    let intent = setup.authorize("order-4", "10.00 USD", "pm_card_visa").ok();
    let id = intent["intent_id"].as_str().expect("intent_id");
    setup.run("capture", &["--intent", id, "--amount", "4.00 USD", "--idempotency-key", "order-4:capture"]).ok();
    let calls = provider.processed_calls();
    let refused = setup.run("void", &["--intent", id, "--idempotency-key", "order-4:void"]).error();
    assert_eq!(refused["kind"], "invalid_state", "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("refund")), "{refused}");
    assert_eq!(provider.processed_calls(), calls, "refused before the provider");

    // Before a capture, a void cancels the authorization.
    let other = setup.authorize("order-5", "3.00 USD", "pm_card_visa").ok();
    let other_id = other["intent_id"].as_str().expect("intent_id");
    let voided = setup.run("void", &["--intent", other_id, "--idempotency-key", "order-5:void"]).ok();
    assert_eq!(voided["status"], "voided");
    assert_eq!(voided["captured"], "0.00 USD");
}

#[test]
fn a_tender_the_channel_does_not_bind_is_refused_before_any_call() {
    let provider = Provider::start();
    let setup = Setup::stripe("unbound", &provider);

    let refused = setup
        .run(
            "authorize",
            &[
                "--tender",
                "wallet",
                "--amount",
                "10.00 USD",
                "--idempotency-key",
                "order-6",
                "--payment-method",
                "pm_card_visa",
            ],
        )
        .error();
    assert_eq!(refused["kind"], "invalid_request", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("tender `wallet` is not bound in channel `web`") && message.contains("card"), "{message}");
    assert!(refused.get("intent_id").is_none(), "no intent was created: {refused}");
    assert_eq!(provider.processed_calls(), 0);

    // An unknown channel is named with the known ones.
    let out = Run::of(commerce(&[
        "payments",
        "show",
        "--config",
        setup.config.to_str().expect("utf-8"),
        "--secrets-dir",
        setup.secrets.to_str().expect("utf-8"),
        "--tenant",
        "acme",
        "--channel",
        "pos",
        "--intent",
        "x",
    ]));
    let error = out.error();
    assert!(error["message"].as_str().is_some_and(|m| m.contains("unknown channel `pos`") && m.contains("web")));
}

#[test]
fn usage_errors_exit_2_naming_the_flag() {
    let provider = Provider::start();
    let setup = Setup::stripe("usage", &provider);

    let bad_amount = setup.authorize("order-7", "10,00 USD", "pm_card_visa");
    assert_eq!(bad_amount.code, Some(2), "{bad_amount:?}");
    assert!(bad_amount.stderr.contains("--amount") && bad_amount.stderr.contains("10,00 USD"), "{bad_amount:?}");
    assert!(bad_amount.stdout.is_empty(), "{bad_amount:?}");

    let unknown_tender = setup.run(
        "authorize",
        &["--tender", "cheque", "--amount", "1.00 USD", "--idempotency-key", "k-1", "--payment-method", "pm_card_visa"],
    );
    assert_eq!(unknown_tender.code, Some(2), "{unknown_tender:?}");
    assert!(unknown_tender.stderr.contains("--tender") && unknown_tender.stderr.contains("card-present"));

    let no_method = setup.run("authorize", &["--tender", "card", "--amount", "1.00 USD", "--idempotency-key", "k-2"]);
    assert_eq!(no_method.code, Some(2), "{no_method:?}");
    assert!(no_method.stderr.contains("--payment-method is required for tender `card`"), "{no_method:?}");

    let no_key = setup.run("void", &["--intent", "x"]);
    assert_eq!(no_key.code, Some(2), "{no_key:?}");
    assert!(no_key.stderr.contains("--idempotency-key"), "{no_key:?}");

    let too_precise = setup.run("refund", &["--intent", "x", "--amount", "1.001 USD", "--idempotency-key", "k-3"]);
    assert_eq!(too_precise.code, Some(2), "{too_precise:?}");
    assert_eq!(provider.processed_calls(), 0);
}

#[test]
fn a_configuration_that_does_not_build_is_a_configuration_error() {
    let provider = Provider::start();
    let setup = Setup::stripe("config", &provider);
    std::fs::remove_file(setup.secrets.join("acme_stripe_key")).expect("remove the secret");
    let error = setup.authorize("order-8", "1.00 USD", "pm_card_visa").error();
    assert_eq!(error["kind"], "configuration", "{error}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("acme_stripe_key")), "{error}");
    assert_eq!(provider.processed_calls(), 0);
}

#[cfg(feature = "fakes")]
#[test]
fn a_memory_store_warns_that_nothing_persists() {
    let dir = temp_dir("memory");
    let config = dir.join("commerce.toml");
    let text = r#"
[store]
adapter = "memory"

[[tenant]]
id = "acme"

[[tenant.channel]]
id = "web"
kind = "online"

[[tenant.channel.payment]]
tender = "gift-card"
adapter = "memory"
"#;
    std::fs::write(&config, text).expect("write config");
    let path = config.to_str().expect("utf-8");
    let base = ["payments", "authorize", "--config", path, "--tenant", "acme", "--channel", "web"];
    let mut args = base.to_vec();
    args.extend([
        "--tender",
        "gift-card",
        "--amount",
        "5.00 EUR",
        "--idempotency-key",
        "till-1",
        "--payment-method",
        "gc-1",
    ]);
    let run = Run::of(commerce(&args));
    let intent = run.ok();
    assert_eq!(intent["status"], "authorized");
    assert!(intent["provider_reference"].is_string(), "{intent}");
    assert!(run.stderr.contains("warning: the [store] adapter is `memory`"), "{run:?}");

    let id = intent["intent_id"].as_str().expect("intent_id");
    let show = Run::of(commerce(&[
        "payments",
        "show",
        "--config",
        path,
        "--tenant",
        "acme",
        "--channel",
        "web",
        "--intent",
        id,
    ]));
    assert_eq!(show.error()["kind"], "not_found", "a new process starts with an empty memory store");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_capture_whose_answer_was_lost_is_unknown_and_reconcile_settles_it() {
    let provider = Provider::start();
    let setup = Setup::stripe("reconcile", &provider);
    let id = setup.authorize("order-9:authorize", "25.00 USD", "pm_card_visa").ok()["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_owned();
    // Nothing pending: reconcile prints the intent as stored, without asking the provider.
    let calls = provider.processed_calls();
    let settled = setup.run("reconcile", &["--intent", &id]).ok();
    assert_eq!(settled["status"], "authorized");
    assert_eq!(provider.processed_calls(), calls, "nothing pending, no provider call");

    // The provider captures, but the connection drops before the answer arrives.
    provider.simulator().inject_on("/capture", Fault::DropAfterProcessing);
    let lost = setup.run("capture", &["--intent", &id, "--idempotency-key", "order-9:capture"]);
    assert_eq!(lost.code, Some(1), "{lost:?}");
    assert_eq!(lost.error()["kind"], "outcome_unknown", "{lost:?}");
    assert_eq!(setup.run("show", &["--intent", &id]).ok()["status"], "outcome_unknown");

    let reconciled = setup.run("reconcile", &["--intent", &id]).ok();
    assert_eq!(reconciled["status"], "captured", "{reconciled}");
    assert_eq!(reconciled["captured"], "25.00 USD");
    assert_eq!(setup.run("show", &["--intent", &id]).ok(), reconciled, "the settlement is stored");
    // The caller's retry with the same key now returns the settled intent and captures nothing more.
    let retried = setup.run("capture", &["--intent", &id, "--idempotency-key", "order-9:capture"]).ok();
    assert_eq!(retried["captured"], "25.00 USD");
    assert_eq!(retried["status"], "captured");
}

#[test]
fn reconcile_unknown_settles_every_unknown_outcome_of_the_tenant_in_one_pass() {
    let provider = Provider::start();
    let setup = Setup::stripe("sweep", &provider);
    let sweep = |limit: &str, after: &[&str]| {
        let args = ["payments", "reconcile-unknown", "--config", setup.config.to_str().expect("utf-8")];
        let mut args = args.to_vec();
        args.extend(["--secrets-dir", setup.secrets.to_str().expect("utf-8"), "--tenant", "acme", "--limit", limit]);
        args.extend(after);
        let run = Run::of(commerce(&args));
        assert!(!run.stdout.contains(&setup.api_key) && !run.stderr.contains(&setup.api_key), "{run:?}");
        run
    };
    // Two captures whose answers were lost, and an authorized intent with nothing pending.
    let mut lost = Vec::new();
    for n in 1..=2 {
        let id = setup.authorize(&format!("order-2{n}:authorize"), "12.00 USD", "pm_card_visa").ok()["intent_id"]
            .as_str()
            .expect("intent_id")
            .to_owned();
        provider.simulator().inject_on("/capture", Fault::DropAfterProcessing);
        let capture = setup.run("capture", &["--intent", &id, "--idempotency-key", &format!("order-2{n}:capture")]);
        assert_eq!(capture.error()["kind"], "outcome_unknown", "{capture:?}");
        lost.push(id);
    }
    setup.authorize("order-23:authorize", "5.00 USD", "pm_card_visa").ok();

    // A limit of one settles the oldest and says where the next pass continues.
    let first = sweep("1", &[]).ok();
    assert_eq!(first["examined"].as_u64(), Some(1), "{first}");
    assert_eq!(first["settled"][0]["intent_id"], lost[0].as_str(), "{first}");
    assert_eq!(first["settled"][0]["status"], "captured", "{first}");
    let next = &first["next"];
    let (at, after) = (next["updated_at"].as_str().expect("updated_at"), next["intent_id"].as_str().expect("id"));
    let rest = sweep("100", &["--after-updated-at", at, "--after-intent", after]).ok();
    assert_eq!((rest["examined"].as_u64(), rest["next"].is_null()), (Some(1), true), "{rest}");
    assert_eq!(rest["settled"][0]["intent_id"], lost[1].as_str(), "{rest}");
    assert_eq!(rest["retry_later"], serde_json::json!([]));
    assert_eq!(rest["needs_operator"], serde_json::json!([]));
    for id in &lost {
        let shown = setup.run("show", &["--intent", id]).ok();
        assert_eq!((shown["status"].as_str(), shown["captured"].as_str()), (Some("captured"), Some("12.00 USD")));
    }
    // Half a position is a usage error.
    let half = sweep("1", &["--after-intent", after]);
    assert_eq!(half.code, Some(2), "{half:?}");
    assert!(half.stderr.contains("--after-updated-at"), "{half:?}");
    // An unknown tenant is named.
    let (config, secrets) = (setup.config.to_str().expect("utf-8"), setup.secrets.to_str().expect("utf-8"));
    let args = ["payments", "reconcile-unknown", "--config", config, "--secrets-dir", secrets, "--tenant", "nobody"];
    let unknown = Run::of(commerce(&args));
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(unknown.error()["message"].as_str().is_some_and(|m| m.contains("nobody")), "{unknown:?}");
}

#[test]
fn settle_applies_an_operators_view_of_the_provider_payment() {
    let provider = Provider::start();
    let setup = Setup::stripe("settle", &provider);
    let authorized = setup.authorize("order-10:authorize", "25.00 USD", "pm_card_visa").ok();
    let id = authorized["intent_id"].as_str().expect("intent_id").to_owned();
    let reference = authorized["provider_reference"].as_str().expect("provider_reference").to_owned();
    provider.simulator().inject_on("/capture", Fault::DropAfterProcessing);
    let lost = setup.run("capture", &["--intent", &id, "--idempotency-key", "order-10:capture"]);
    assert_eq!(lost.error()["kind"], "outcome_unknown", "{lost:?}");
    let calls = provider.processed_calls();

    // A view of another payment is refused and changes nothing.
    let other = setup.run(
        "settle",
        &[
            "--intent",
            &id,
            "--provider-reference",
            "pi_other",
            "--provider-status",
            "captured",
            "--authorized",
            "25.00 USD",
        ],
    );
    assert_eq!(other.error()["kind"], "unexpected", "{other:?}");
    assert_eq!(setup.run("show", &["--intent", &id]).ok()["status"], "outcome_unknown");

    // The operator read the provider's dashboard: captured in full.
    let settled = setup
        .run(
            "settle",
            &["--intent", &id, "--provider-status", "captured", "--authorized", "25.00 USD", "--captured", "25.00 USD"],
        )
        .ok();
    assert_eq!((settled["status"].as_str(), settled["captured"].as_str()), (Some("captured"), Some("25.00 USD")));
    assert_eq!(settled["provider_reference"], reference.as_str());
    assert_eq!(provider.processed_calls(), calls, "settling asks no provider");
    // The caller's retry of the capture is recognised as applied.
    let retried = setup.run("capture", &["--intent", &id, "--idempotency-key", "order-10:capture"]).ok();
    assert_eq!(retried["captured"], "25.00 USD");
    assert_eq!(provider.processed_calls(), calls);
    // A status outside the vocabulary is a usage error naming the choices.
    let bad = setup.run("settle", &["--intent", &id, "--provider-status", "settled", "--authorized", "25.00 USD"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("requires-action"), "{bad:?}");
}
