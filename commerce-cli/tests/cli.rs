//! The `commerce` binary, run as an operator would.

use std::path::PathBuf;
use std::process::{Command, Output};

fn commerce(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_commerce")).args(args).output().expect("the commerce binary runs")
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("commerce-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

const GOOD: &str = r#"
[store]
adapter = "memory"

[[tenant]]
id = "acme"

[[tenant.channel]]
id = "web"
kind = "online"
currency = "EUR"

[[tenant.channel.payment]]
tender = "card"
adapter = "memory"

[tenant.channel.tax]
adapter = "fixed-rate"
params = { rate = "0.20" }

[[tenant.channel]]
id = "store-1"
kind = "store"
store = "berlin-1"

[[tenant.channel.register]]
id = "till-1"
printer = { adapter = "virtual" }
drawer = { adapter = "virtual" }
"#;

#[test]
fn check_prints_every_binding_ready() {
    let path = write_config("good.toml", GOOD);
    let out = commerce(&["config", "check", path.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("valid, 5 binding(s)"), "{stdout}");
    assert!(stdout.contains("payment `card`  [payment-gateway / memory]"), "{stdout}");
    assert!(stdout.contains("printer"), "{stdout}");
    assert_eq!(stdout.matches("Ready=True reason=AdapterBuilt").count(), 5, "{stdout}");
}

#[test]
fn check_json_lists_conditions() {
    let path = write_config("good-json.toml", GOOD);
    let out = commerce(&["config", "check", "--format", "json", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(value["valid"], true);
    let bindings = value["bindings"].as_array().expect("bindings");
    assert_eq!(bindings.len(), 5);
    let ready = &bindings[1]["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "AdapterBuilt");
    // The Kubernetes field name; the snake-case Rust name is not part of the output.
    assert!(ready["lastTransitionTime"].is_string(), "{ready}");
    assert!(ready.get("last_transition_time").is_none(), "{ready}");
}

#[test]
fn check_refuses_an_empty_secret_prefix() {
    let path = write_config("prefix.toml", GOOD);
    let out = commerce(&["config", "check", "--secret-prefix", "", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--secret-prefix") && stderr.contains("must not be empty"), "{stderr}");
    assert!(stderr.contains("any environment variable"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is checked: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn check_refuses_a_bad_file_with_one_precise_error() {
    let path = write_config("bad.toml", &GOOD.replace("tender = \"card\"", "tender = \"cheque\""));
    let out = commerce(&["config", "check", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{stderr}");
    assert!(stderr.contains("bad.toml:14"), "names file and line: {stderr}");
    assert!(stderr.contains("cheque"), "{stderr}");
    assert!(stderr.contains("card-present"), "lists the known tenders: {stderr}");
    assert!(stderr.contains("nothing was built"), "{stderr}");
}

#[test]
fn check_refuses_a_secret_reference_for_a_plain_parameter() {
    let text = GOOD.replace("params = { rate = \"0.20\" }", "params = { rate = { secret = \"tax_rate\" } }");
    let path = write_config("secret.toml", &text);
    let out = commerce(&["config", "check", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret.toml:19") && stderr.contains("parameter `rate`"), "{stderr}");
}

#[test]
fn a_missing_file_is_an_error() {
    let out = commerce(&["config", "check", "/nonexistent/commerce.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/commerce.toml"));
}

#[test]
fn params_prints_a_template() {
    let out = commerce(&["params", "flat-rate"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[[tenant.channel.carrier]]\nname = \"flat-rate\"\nadapter = \"flat-rate\"\n"), "{stdout}");
    assert!(stdout.contains("price"), "{stdout}");
    assert!(stdout.to_lowercase().contains("required"), "{stdout}");
}

#[test]
fn params_of_a_shared_name_prints_every_port_unless_narrowed() {
    let all = String::from_utf8_lossy(&commerce(&["params", "memory"]).stdout).into_owned();
    assert!(all.contains("(payment-gateway)") && all.contains("(store)"), "{all}");
    let one = commerce(&["params", "memory", "--port", "store"]);
    let one = String::from_utf8_lossy(&one.stdout).into_owned();
    assert!(one.contains("(store)") && !one.contains("(payment-gateway)"), "{one}");
}

#[test]
fn params_of_an_unknown_adapter_lists_the_known_ones() {
    let out = commerce(&["params", "strpe"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown adapter `strpe`") && stderr.contains("flat-rate (shipping-carrier)"), "{stderr}");
    let out = commerce(&["params", "memory", "--port", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn adapters_lists_ports() {
    let out = commerce(&["adapters"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("payment-gateway"));
}
