//! `commerce`: the operator command of the commerce integration crates.
//!
//! - `commerce config check FILE`: validate a configuration, build every binding, print the bindings and
//!   their conditions (exit 1 and one line per mistake when it is wrong).
//! - `commerce params ADAPTER [--port PORT]`: print the parameter template of an adapter.
//! - `commerce adapters`: list the adapters this build knows.
//! - `commerce webhook verify --provider stripe|adyen (--secret S | --secret-env NAME | --secret-file PATH)
//!   [--now UNIX_SECONDS] [--tolerance SECONDS] [--header 'Name: value']... [--body FILE]`: verify a webhook
//!   delivery (body from stdin without `--body`); exit 0 with one JSON event per line, 1 with
//!   `{"error":{"kind","message"}}`, 2 on usage errors. `--secret-env` / `--secret-file` keep a real secret
//!   out of the process list and shell history; `--secret` is for test secrets.
//! - `commerce payments authorize|capture|refund|void|show --config FILE --tenant T --channel C ...`: payment
//!   intent operations against the configuration's `[store]` and gateways; exit 0 with the intent as one JSON
//!   object, 1 with `{"error":{"kind","message"}}`, 2 on usage errors (see `payments.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use commerce::{ChainSecrets, Config, EnvSecrets, FileSecrets, Integrations, Registry, param_template};
use commerce_ports::factory::PortKind;
use commerce_ports::{ConditionStatus, SystemClock};
use time::format_description::well_known::Rfc3339;

mod payments;
mod webhook;

#[derive(Debug, Parser)]
#[command(
    name = "commerce",
    version,
    about = "Operate commerce integrations: check configuration, inspect adapters, verify webhooks, operate payments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the parameter template of an adapter (what a host must supply).
    Params {
        /// The adapter's name, e.g. `memory` or `stripe`.
        adapter: String,
        /// Only the adapter of this port (a name like `memory` exists for several ports).
        #[arg(long)]
        port: Option<String>,
    },
    /// List the adapters this build registers, by port.
    Adapters,
    /// Webhook deliveries.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Payment intents: authorize, capture, refund, void, show. Each prints the intent as one JSON object
    /// (exit 0) or `{"error":{"kind":...,"message":...}}` (exit 1). State lives in the configuration's
    /// `[store]`; a `memory` store does not survive the command.
    Payments {
        #[command(subcommand)]
        command: payments::PaymentsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Verify a delivery's signature(s) and print its events, one JSON object per line (exit 0); print
    /// `{"error":{"kind":...,"message":...}}` and exit 1 when it is rejected.
    Verify(webhook::VerifyArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file, build its bindings and print them with their conditions.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
        /// Resolve `{ secret = "name" }` from files in this directory (after the environment).
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// Prefix of environment variables holding secrets (`name` -> `<PREFIX>NAME`); must not be empty.
        #[arg(long, default_value = EnvSecrets::DEFAULT_PREFIX, value_parser = secret_prefix)]
        secret_prefix: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Parses `--secret-prefix`: an empty prefix would let a configuration read any environment variable of the
/// process (`{ secret = "database_url" }` -> `DATABASE_URL`), so it is refused.
fn secret_prefix(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("the prefix must not be empty: with an empty prefix, a configuration could read any \
                    environment variable of this process as a secret (`{ secret = \"home\" }` would read HOME)"
            .to_owned());
    }
    Ok(value.to_owned())
}

fn registry() -> Registry {
    #[allow(unused_mut, reason = "only the `fakes` feature registers more")]
    let mut registry = Registry::with_defaults();
    #[cfg(feature = "fakes")]
    if let Err(e) = registry.register_all(commerce_testkit::factories::all()) {
        eprintln!("warning: {e}");
    }
    registry
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { command: ConfigCommand::Check { file, secrets_dir, secret_prefix, format } } => {
            check(file, secrets_dir, secret_prefix, format).await
        }
        Command::Params { adapter, port } => params(&adapter, port.as_deref()),
        Command::Adapters => adapters(),
        Command::Webhook { command: WebhookCommand::Verify(args) } => webhook::verify(args),
        Command::Payments { command } => payments::run(command).await,
    }
}

async fn check(file: PathBuf, secrets_dir: Option<PathBuf>, prefix: String, format: Format) -> ExitCode {
    let mut secrets = ChainSecrets::new().with(EnvSecrets::with_prefix(prefix));
    if let Some(dir) = secrets_dir {
        secrets.push(FileSecrets::new(dir));
    }
    let registry = registry();
    let built = match Config::from_file(&file) {
        Ok(config) => Integrations::build(&config, &registry, &secrets, Arc::new(SystemClock)).await,
        Err(errors) => Err(errors),
    };
    match built {
        Err(errors) => {
            match format {
                Format::Text => {
                    for e in errors.iter() {
                        eprintln!("error: {e}");
                    }
                    eprintln!("{} error(s); nothing was built", errors.len());
                }
                Format::Json => {
                    let list: Vec<_> = errors.iter().map(|e| serde_json::json!({ "error": e.to_string() })).collect();
                    println!("{}", serde_json::json!({ "valid": false, "errors": list }));
                }
            }
            ExitCode::from(1)
        }
        Ok(integrations) => {
            let bindings = integrations.bindings();
            match format {
                Format::Text => {
                    println!("{}: valid, {} binding(s)", file.display(), bindings.len());
                    for b in &bindings {
                        println!("{}  [{} / {}]", b.path, b.port, b.adapter);
                        for c in b.conditions.iter() {
                            let status = match c.status {
                                ConditionStatus::True => "True",
                                ConditionStatus::False => "False",
                                _ => "Unknown",
                            };
                            let since = c
                                .last_transition_time
                                .format(&Rfc3339)
                                .unwrap_or_else(|_| c.last_transition_time.to_string());
                            println!(
                                "    {:?}={status} reason={} since={since} message={:?}",
                                c.kind, c.reason, c.message
                            );
                        }
                    }
                }
                Format::Json => {
                    let list: Vec<_> = bindings
                        .iter()
                        .map(|b| {
                            serde_json::json!({
                                "path": b.path,
                                "port": b.port.as_str(),
                                "adapter": b.adapter,
                                "conditions": b.conditions,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::json!({ "valid": true, "bindings": list }));
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn params(adapter: &str, port: Option<&str>) -> ExitCode {
    let registry = registry();
    let port = match port.map(|p| PortKind::parse(p).ok_or(p)) {
        None => None,
        Some(Ok(kind)) => Some(kind),
        Some(Err(p)) => {
            let known: Vec<&str> = PortKind::ALL.iter().map(|k| k.as_str()).collect();
            eprintln!("error: unknown port `{p}`; known: {}", known.join(", "));
            return ExitCode::from(2);
        }
    };
    let factories: Vec<_> =
        registry.by_name(adapter).into_iter().filter(|f| port.is_none_or(|p| f.port() == p)).collect();
    if factories.is_empty() {
        let mut known: Vec<String> = registry.factories().map(|f| format!("{} ({})", f.name(), f.port())).collect();
        known.sort();
        let known = if known.is_empty() { "none registered".to_owned() } else { known.join(", ") };
        eprintln!("error: unknown adapter `{adapter}`; known: {known}");
        return ExitCode::from(2);
    }
    for (i, factory) in factories.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", param_template(factory.as_ref()));
    }
    ExitCode::SUCCESS
}

fn adapters() -> ExitCode {
    let registry = registry();
    for port in PortKind::ALL {
        let names = registry.names(port);
        if !names.is_empty() {
            println!("{:<22} {}", port.as_str(), names.join(", "));
        }
    }
    ExitCode::SUCCESS
}
