//! Secret sources: environment mapping, files without path traversal, in-memory maps, chains.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use commerce::{ChainSecrets, EnvSecrets, FileSecrets, MapSecrets, SecretError, SecretSource};

/// A fresh directory under the system temp dir, unique to this test run.
fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("commerce-secrets-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn exposed(source: &dyn SecretSource, name: &str) -> Option<String> {
    source.resolve(name).expect("resolves").map(|s| s.expose().to_owned())
}

#[test]
fn env_secrets_map_names_to_variables() {
    let env = EnvSecrets::new();
    assert_eq!(env.variable("stripe_key"), "COMMERCE_SECRET_STRIPE_KEY");
    assert_eq!(env.variable("adyen.hmac-key"), "COMMERCE_SECRET_ADYEN_HMAC_KEY");
    // `set_var` is unsafe in edition 2024 and unsafe code is forbidden: read a variable that exists.
    let home = EnvSecrets::with_prefix("");
    assert_eq!(home.variable("home"), "HOME");
    assert_eq!(exposed(&home, "home"), std::env::var("HOME").ok());
    assert_eq!(exposed(&env, "surely_not_set_7f3a9c"), None);
    assert!(matches!(env.resolve("a/b"), Err(SecretError::InvalidName { .. })));
}

#[test]
fn file_secrets_read_one_file_per_secret_and_trim_the_line_break() {
    let dir = temp_dir("files");
    std::fs::write(dir.join("stripe_key"), "sk_test_123\n").expect("write");
    std::fs::write(dir.join("crlf.key"), "value\r\n").expect("write");
    std::fs::write(dir.join("inner-space"), " keep me \n").expect("write");
    let files = FileSecrets::new(&dir);
    assert_eq!(files.dir(), dir.as_path());
    assert_eq!(exposed(&files, "stripe_key").as_deref(), Some("sk_test_123"));
    assert_eq!(exposed(&files, "crlf.key").as_deref(), Some("value"));
    assert_eq!(exposed(&files, "inner-space").as_deref(), Some(" keep me "));
    assert_eq!(exposed(&files, "absent"), None);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn file_secrets_refuse_names_that_leave_the_directory() {
    let dir = temp_dir("traversal");
    let inner = dir.join("inner");
    std::fs::create_dir_all(&inner).expect("inner");
    std::fs::write(dir.join("outside"), "must not be read").expect("write");
    let files = FileSecrets::new(&inner);
    for name in ["../outside", "..", ".hidden", "/etc/passwd", "a/../../outside", "a\\b", ""] {
        match files.resolve(name) {
            Err(SecretError::InvalidName { name: n, reason }) => {
                assert_eq!(n, name);
                let msg = SecretError::InvalidName { name: n, reason }.to_string();
                assert!(msg.contains(&format!("`{name}`")), "{msg}");
                assert!(!msg.contains("must not be read"));
            }
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn file_secrets_report_unreadable_entries_without_values() {
    let dir = temp_dir("unreadable");
    std::fs::create_dir_all(dir.join("a_directory")).expect("dir");
    let files = FileSecrets::new(&dir);
    assert!(matches!(files.resolve("a_directory"), Err(SecretError::Unreadable { name, .. }) if name == "a_directory"));
    // A chain stops at an error instead of falling through to a weaker source.
    let chain =
        ChainSecrets::new().with(FileSecrets::new(&dir)).with(MapSecrets::new().with("a_directory", "fallback"));
    assert!(chain.resolve("a_directory").is_err());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn chain_secrets_take_the_first_source_that_has_the_secret() {
    let first = MapSecrets::new().with("a", "from-first");
    let second = MapSecrets::new().with("a", "from-second").with("b", "only-second");
    let chain = ChainSecrets::new().with(first).with(second);
    assert_eq!(exposed(&chain, "a").as_deref(), Some("from-first"));
    assert_eq!(exposed(&chain, "b").as_deref(), Some("only-second"));
    assert_eq!(exposed(&chain, "c"), None);
    assert_eq!(exposed(&ChainSecrets::new(), "a"), None);
    let debug = format!("{chain:?}");
    assert!(!debug.contains("from-first") && !debug.contains("only-second"), "{debug}");
}

#[test]
fn secret_sources_compose_through_pointers() {
    let boxed: Box<dyn SecretSource> = Box::new(MapSecrets::new().with("k", "v"));
    let shared: std::sync::Arc<dyn SecretSource> = std::sync::Arc::new(MapSecrets::new().with("k", "w"));
    assert_eq!(exposed(&boxed, "k").as_deref(), Some("v"));
    assert_eq!(exposed(&shared, "k").as_deref(), Some("w"));
    assert_eq!(exposed(&&MapSecrets::new(), "k"), None);
}
