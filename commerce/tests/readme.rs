//! The README's configuration example stays valid against the schema.

use commerce::Config;

#[test]
fn the_readme_example_parses() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("closed");
    let config = Config::parse(&readme[start..end], "README.md").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.tenant_ids(), ["acme"]);
}
