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
    assert_eq!(env.variable("stripe_key").as_deref(), Ok("COMMERCE_SECRET_STRIPE_KEY"));
    // `set_var` is unsafe in edition 2024 and unsafe code is forbidden: read a variable that exists. An empty
    // prefix reads any variable: a host may choose it deliberately (see `EnvSecrets::with_prefix`).
    let home = EnvSecrets::with_prefix("");
    assert_eq!(home.prefix(), "");
    assert_eq!(home.variable("home").as_deref(), Ok("HOME"));
    assert_eq!(exposed(&home, "home"), std::env::var("HOME").ok());
    assert_eq!(exposed(&env, "surely_not_set_7f3a9c"), None);
    assert!(matches!(env.resolve("a/b"), Err(SecretError::InvalidName { .. })));
}

#[test]
fn env_secret_names_are_lower_snake_so_no_two_share_a_variable() {
    let env = EnvSecrets::with_prefix("");
    // All three would read `ACME_KEY` (or `HOME`) were they folded onto one variable.
    for name in ["acme.key", "acme-key", "ACME_KEY", "Home", "ho.me"] {
        match env.resolve(name) {
            Err(SecretError::InvalidName { name: n, reason }) => {
                assert_eq!(n, name);
                assert!(reason.contains("lower-case snake") && reason.contains("its own variable"), "{reason}");
            }
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
        assert!(env.variable(name).is_err(), "{name:?}");
    }
}

#[test]
fn a_chain_asks_the_next_source_for_a_name_the_environment_refuses() {
    let files = MapSecrets::new().with("acme.key", "from-files");
    let chain = ChainSecrets::new().with(EnvSecrets::new()).with(files);
    assert_eq!(exposed(&chain, "acme.key").as_deref(), Some("from-files"));
    // Another source could hold it but does not: missing, not invalid.
    assert_eq!(exposed(&chain, "other.key"), None);
    // Only the environment, which cannot hold it: the reason is kept.
    let env_only = ChainSecrets::new().with(EnvSecrets::new());
    assert!(matches!(env_only.resolve("acme.key"), Err(SecretError::InvalidName { .. })));
    // A name that is no secret name at all is refused by the chain itself.
    assert!(matches!(ChainSecrets::new().with(EnvSecrets::new()).resolve("a/b"), Err(SecretError::InvalidName { .. })));
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
