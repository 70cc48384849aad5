//! `commerce webhook verify`, run as an operator or a script would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use commerce_adyen::SignedFields;
use commerce_ports::Secret;
use serde_json::{Value, json};

/// Stripe's published vector: secret `secret`, t = 1533204620.
const STRIPE_PAYLOAD: &str = r#"{"account":"acct_123","api_version":"2017-05-25","created":1533204620,"data":{"object":{"amount":1000,"currency":"usd","customer":"cus_123","date":1533204620,"description":"Test Invoice Item","discountable":false,"id":"ii_123","invoice":"in_123","livemode":false,"metadata":{},"object":"invoiceitem","period":{"end":1533204620,"start":1533204620},"proration":false,"quantity":3,"quantity_decimal":"0"}},"id":"evt_123","livemode":false,"object":"event","pending_webhooks":1,"request":{"id":"req_123","idempotency_key":"idempotency-key-123"},"type":"invoiceitem.created"}"#;
const STRIPE_HEADER: &str =
    "Stripe-Signature: t=1533204620,v1=d7373bc68f4bd320b253cd7461f87af6e1cdf1b4d7db1614d8d1d746972d2d0a";

/// Adyen's published key and the signature of its REPORT_AVAILABLE item.
const ADYEN_KEY: &str = "9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915D6";
const ADYEN_REPORT_SIGNATURE: &str = "NuEkADFmlCC6VgX+wcoPAegIWxVPNBPCuKlM4Hzo5qc=";

/// Runs `commerce webhook verify ARGS`, feeding `stdin`.
fn verify(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args(["webhook", "verify"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the commerce binary runs");
    // The command may exit before reading stdin (usage errors): a broken pipe is fine then.
    let _ = child.stdin.take().expect("piped stdin").write_all(stdin);
    child.wait_with_output().expect("the commerce binary finishes")
}

fn body_file(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("commerce-cli-webhook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write body");
    path
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// Asserts exit 1 and the `{"error":{"kind","message"}}` line.
fn assert_rejected(out: &Output, kind: &str) {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    let lines = stdout_lines(out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["error"]["kind"], kind, "{}", lines[0]);
    assert!(lines[0]["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", lines[0]);
}

fn stripe(extra: &[&str], body: &[u8]) -> Output {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = body_file(&format!("stripe-{}.json", NEXT.fetch_add(1, Ordering::Relaxed)), body);
    let mut args = vec!["--provider", "stripe", "--secret", "secret", "--body", path.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    verify(&args, b"")
}

#[test]
fn stripe_published_vector_is_accepted() {
    let out = stripe(&["--now", "1533204620", "--header", STRIPE_HEADER], STRIPE_PAYLOAD.as_bytes());
    assert!(
        out.status.success(),
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["provider"], "stripe");
    assert_eq!(lines[0]["event_id"], "evt_123");
    assert_eq!(lines[0]["event_type"], "invoiceitem.created");
}

#[test]
fn stripe_body_from_stdin_is_accepted() {
    let args = ["--provider", "stripe", "--secret", "secret", "--now", "1533204620", "--header", STRIPE_HEADER];
    let out = verify(&args, STRIPE_PAYLOAD.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(stdout_lines(&out)[0]["event_id"], "evt_123");
}

#[test]
fn stripe_header_names_and_spacing_are_lenient() {
    let header = STRIPE_HEADER.replace("Stripe-Signature: ", "stripe-signature:");
    let out = stripe(&["--now", "1533204620", "--header", &header], STRIPE_PAYLOAD.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn stripe_tampered_body_is_no_valid_signature() {
    let tampered = STRIPE_PAYLOAD.replace("\"amount\":1000", "\"amount\":1001");
    let out = stripe(&["--now", "1533204620", "--header", STRIPE_HEADER], tampered.as_bytes());
    assert_rejected(&out, "no_valid_signature");
}

#[test]
fn stripe_stale_timestamp_is_outside_tolerance() {
    let out = stripe(&["--now", "1533205000", "--header", STRIPE_HEADER], STRIPE_PAYLOAD.as_bytes());
    assert_rejected(&out, "timestamp_outside_tolerance");
    // The same delivery passes with a wider tolerance; the system clock (years later) rejects it.
    let wide =
        stripe(&["--now", "1533205000", "--tolerance", "600", "--header", STRIPE_HEADER], STRIPE_PAYLOAD.as_bytes());
    assert!(wide.status.success(), "{}", String::from_utf8_lossy(&wide.stdout));
    assert_rejected(&stripe(&["--header", STRIPE_HEADER], STRIPE_PAYLOAD.as_bytes()), "timestamp_outside_tolerance");
}

#[test]
fn stripe_missing_header_is_missing_signature() {
    let out = stripe(&["--now", "1533204620", "--header", "Content-Type: application/json"], STRIPE_PAYLOAD.as_bytes());
    assert_rejected(&out, "missing_signature");
    assert_rejected(&stripe(&["--now", "1533204620"], STRIPE_PAYLOAD.as_bytes()), "missing_signature");
}

#[test]
fn stripe_malformed_header_is_malformed_signature_header() {
    let out = stripe(&["--now", "1533204620", "--header", "Stripe-Signature: v1=abc"], STRIPE_PAYLOAD.as_bytes());
    assert_rejected(&out, "malformed_signature_header");
}

#[test]
fn a_header_without_colon_is_a_usage_error() {
    let out = stripe(&["--now", "1533204620", "--header", "Stripe-Signature t=1"], STRIPE_PAYLOAD.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--header"), "{}", String::from_utf8_lossy(&out.stderr));
}

fn adyen_item(psp: &str, original: &str, event_code: &str, success: &str, value: i64) -> Value {
    let value_text = value.to_string();
    let fields = SignedFields {
        psp_reference: psp,
        original_reference: original,
        merchant_account_code: "ShopCOM",
        merchant_reference: "order-7",
        amount_value: &value_text,
        amount_currency: "EUR",
        event_code,
        success,
    };
    let signature = commerce_adyen::signature(&Secret::new(ADYEN_KEY), &fields).expect("signs");
    json!({ "NotificationRequestItem": {
        "pspReference": psp, "originalReference": original, "merchantAccountCode": "ShopCOM",
        "merchantReference": "order-7", "amount": { "value": value, "currency": "EUR" }, "eventCode": event_code,
        "success": success, "additionalData": { "hmacSignature": signature } } })
}

fn adyen_batch(items: Vec<Value>) -> Vec<u8> {
    json!({ "live": "false", "notificationItems": items }).to_string().into_bytes()
}

fn report_item() -> Value {
    json!({ "NotificationRequestItem": {
        "additionalData": { "hmacSignature": ADYEN_REPORT_SIGNATURE }, "amount": { "currency": "EUR", "value": 0 },
        "eventCode": "REPORT_AVAILABLE", "merchantAccountCode": "Magento2Rik", "merchantReference": "testMerchantRef1",
        "pspReference": "test_REPORT_AVAILABLE", "success": "true" } })
}

fn adyen(secret: &str, body: &[u8]) -> Output {
    verify(&["--provider", "adyen", "--secret", secret], body)
}

#[test]
fn adyen_published_vector_batch_is_accepted() {
    let body = adyen_batch(vec![report_item(), adyen_item("PSP1", "", "AUTHORISATION", "false", 995)]);
    let out = adyen(ADYEN_KEY, &body);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["provider"], "adyen");
    assert_eq!(lines[0]["event_id"], "test_REPORT_AVAILABLE:REPORT_AVAILABLE:true");
    assert_eq!(lines[0]["event_type"], "REPORT_AVAILABLE");
    assert_eq!(lines[0]["psp_reference"], "test_REPORT_AVAILABLE");
    assert_eq!(lines[0]["success"], true);
    assert_eq!(lines[1]["psp_reference"], "PSP1");
    assert_eq!(lines[1]["success"], false);
    assert_eq!(lines[1]["kind"], "authorization_failed");
}

#[test]
fn adyen_modification_keeps_both_references() {
    let out = adyen(ADYEN_KEY, &adyen_batch(vec![adyen_item("MOD1", "PSP1", "CAPTURE", "true", 995)]));
    let lines = stdout_lines(&out);
    assert_eq!(
        (lines[0]["psp_reference"].as_str(), lines[0]["provider_reference"].as_str()),
        (Some("MOD1"), Some("PSP1"))
    );
}

#[test]
fn adyen_one_bad_item_rejects_the_batch() {
    let mut bad = adyen_item("MOD2", "PSP1", "REFUND", "true", 500);
    bad["NotificationRequestItem"]["amount"]["value"] = json!(50_000);
    let body = adyen_batch(vec![report_item(), bad, adyen_item("PSP3", "", "AUTHORISATION", "true", 1)]);
    let out = adyen(ADYEN_KEY, &body);
    assert_rejected(&out, "no_valid_signature");
    let message = stdout_lines(&out)[0]["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("notificationItems[1]") && message.contains("MOD2"), "{message}");
}

#[test]
fn adyen_missing_signature_is_missing_signature() {
    let mut item = report_item();
    item["NotificationRequestItem"]["additionalData"] = json!({});
    assert_rejected(&adyen(ADYEN_KEY, &adyen_batch(vec![item])), "missing_signature");
}

#[test]
fn adyen_non_hex_secret_is_invalid_secret() {
    let out = adyen("not-a-hex-key", &adyen_batch(vec![report_item()]));
    assert_rejected(&out, "invalid_secret");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not-a-hex-key"));
}

#[test]
fn adyen_malformed_json_is_malformed_payload() {
    assert_rejected(&adyen(ADYEN_KEY, b"{\"notificationItems\": ["), "malformed_payload");
}

/// Runs `commerce webhook verify ARGS` for the Stripe vector (body on stdin) with `env` set.
fn stripe_with_secret_source(source: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_commerce"));
    command
        .args(["webhook", "verify", "--provider", "stripe", "--now", "1533204620", "--header", STRIPE_HEADER])
        .args(source)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the commerce binary runs");
    let _ = child.stdin.take().expect("piped stdin").write_all(STRIPE_PAYLOAD.as_bytes());
    child.wait_with_output().expect("the commerce binary finishes")
}

#[test]
fn the_secret_can_come_from_an_environment_variable() {
    let out = stripe_with_secret_source(&["--secret-env", "COMMERCE_TEST_WHSEC"], &[("COMMERCE_TEST_WHSEC", "secret")]);
    assert!(out.status.success(), "{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_lines(&out)[0]["event_id"], "evt_123");

    let wrong = stripe_with_secret_source(&["--secret-env", "COMMERCE_TEST_WHSEC"], &[("COMMERCE_TEST_WHSEC", "nope")]);
    assert_rejected(&wrong, "no_valid_signature");

    let unset = stripe_with_secret_source(&["--secret-env", "COMMERCE_TEST_UNSET_VARIABLE"], &[]);
    assert_eq!(unset.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unset.stderr).contains("COMMERCE_TEST_UNSET_VARIABLE"));
}

#[test]
fn the_secret_can_come_from_a_file_with_a_trailing_line_break() {
    for (name, contents) in [("secret-plain", "secret"), ("secret-lf", "secret\n"), ("secret-crlf", "secret\r\n")] {
        let path = body_file(name, contents.as_bytes());
        let out = stripe_with_secret_source(&["--secret-file", path.to_str().expect("utf-8 path")], &[]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stdout));
    }
    let missing = body_file("unused", b"").with_file_name("no-such-secret-file");
    let out = stripe_with_secret_source(&["--secret-file", missing.to_str().expect("utf-8 path")], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exactly_one_secret_source_is_required() {
    let none = stripe_with_secret_source(&[], &[]);
    assert_eq!(none.status.code(), Some(2));
    let path = body_file("secret-two", b"secret");
    let two =
        stripe_with_secret_source(&["--secret", "secret", "--secret-file", path.to_str().expect("utf-8 path")], &[]);
    assert_eq!(two.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&two.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
}
