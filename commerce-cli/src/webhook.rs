//! `commerce webhook verify`: check a webhook delivery as the service would, from the command line.
//!
//! Output contract (scripts and other checks depend on it):
//! - accepted: exit 0, one JSON object per event on its own line on stdout (`provider`, `event_id`,
//!   `event_type`, `kind`, `success`, `provider_reference`, `amount`, `occurred_at`; Adyen adds
//!   `psp_reference`);
//! - rejected: exit 1, `{"error":{"kind":K,"message":M}}` on stdout, `K` a `WebhookErrorKind` name;
//! - usage or I/O problems: exit 2, message on stderr.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use commerce_ports::Secret;
use commerce_ports::webhook::{WebhookError, WebhookEvent, WebhookRequest, WebhookVerifier};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Provider {
    Stripe,
    Adyen,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("secret_source").required(true).multiple(false).args(["secret", "secret_env", "secret_file"])))]
pub(crate) struct VerifyArgs {
    /// Whose scheme to verify with.
    #[arg(long, value_enum)]
    provider: Provider,
    /// Stripe: the endpoint's signing secret (`whsec_...`); Adyen: the HMAC key in hex. Command-line
    /// arguments are visible to other local users (process list, shell history): use test secrets here and
    /// prefer `--secret-env` or `--secret-file` for real ones. Exactly one of the three is required.
    #[arg(long, value_parser = parse_secret, allow_hyphen_values = true)]
    secret: Option<Secret>,
    /// Read the secret from this environment variable (the safer way: it stays out of the process list).
    #[arg(long, value_name = "NAME")]
    secret_env: Option<String>,
    /// Read the secret from this file (the safer way; one trailing line break is ignored).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// The current time as unix seconds (default: the system clock).
    #[arg(long, value_name = "UNIX_SECONDS", value_parser = parse_unix_time, allow_hyphen_values = true)]
    now: Option<OffsetDateTime>,
    /// Stripe: largest accepted distance between the signed timestamp and now (default 300).
    #[arg(long, value_name = "SECONDS")]
    tolerance: Option<u64>,
    /// A request header as `Name: value`; repeat for several.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The raw body (default: standard input), read byte for byte.
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

fn parse_unix_time(value: &str) -> Result<OffsetDateTime, String> {
    let seconds: i64 = value.parse().map_err(|_| format!("`{value}` is not whole unix seconds"))?;
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| format!("{seconds} is outside the supported range"))
}

fn parse_header(value: &str) -> Result<(String, String), String> {
    let Some((name, val)) = value.split_once(':') else {
        return Err(format!("`{value}` is not `Name: value` (no `:`)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{value}` has an empty header name"));
    }
    Ok((name.to_owned(), val.trim().to_owned()))
}

/// The secret from whichever of `--secret`, `--secret-env`, `--secret-file` was given (clap ensures exactly
/// one). Messages name the variable or file, never the secret.
fn resolve_secret(args: &VerifyArgs) -> Result<Secret, String> {
    if let Some(secret) = &args.secret {
        return Ok(secret.clone());
    }
    if let Some(name) = &args.secret_env {
        return match std::env::var(name) {
            Ok(value) => Ok(Secret::new(value)),
            Err(std::env::VarError::NotPresent) => Err(format!("environment variable `{name}` is not set")),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("environment variable `{name}` is not UTF-8")),
        };
    }
    if let Some(path) = &args.secret_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret from {}: {}", path.display(), e.kind()))?;
        let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        return Ok(Secret::new(text.to_owned()));
    }
    Err("give the secret with --secret, --secret-env or --secret-file".to_owned())
}

pub(crate) fn verify(args: VerifyArgs) -> ExitCode {
    let secret = match resolve_secret(&args) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    // The verifier first: a bad key is reported without waiting for a body on stdin.
    let verifier: Box<dyn WebhookVerifier> = match args.provider {
        Provider::Stripe => {
            let mut verifier = commerce_stripe::StripeWebhookVerifier::new(secret);
            if let Some(seconds) = args.tolerance {
                verifier = verifier.with_tolerance(Duration::from_secs(seconds));
            }
            Box::new(verifier)
        }
        Provider::Adyen => {
            if args.tolerance.is_some() {
                eprintln!("warning: --tolerance is ignored for adyen (Adyen signs no timestamp)");
            }
            match commerce_adyen::AdyenWebhookVerifier::new(secret) {
                Ok(verifier) => Box::new(verifier),
                Err(e) => return rejected(&e),
            }
        }
    };
    let body = match read_body(args.body.as_ref()) {
        Ok(body) => body,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let request = WebhookRequest::new(args.headers, body);
    let now = args.now.unwrap_or_else(OffsetDateTime::now_utc);
    match verifier.verify(&request, now) {
        Ok(events) => {
            for event in &events {
                println!("{}", event_json(args.provider, event));
            }
            ExitCode::SUCCESS
        }
        Err(e) => rejected(&e),
    }
}

fn read_body(path: Option<&PathBuf>) -> Result<Vec<u8>, String> {
    match path {
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read the body from {}: {e}", path.display())),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
            Ok(body)
        }
    }
}

fn rejected(error: &WebhookError) -> ExitCode {
    println!("{}", serde_json::json!({ "error": { "kind": error.kind.as_str(), "message": error.message } }));
    ExitCode::from(1)
}

fn event_json(provider: Provider, event: &WebhookEvent) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_else(|e| {
        // Serializing plain data cannot fail; keep the contract's fields if it ever does.
        serde_json::json!({ "provider": event.provider, "event_id": event.event_id, "event_type": event.event_type,
                            "serialization_error": e.to_string() })
    });
    if provider == Provider::Adyen
        && let (Some(object), Some(psp)) = (value.as_object_mut(), commerce_adyen::psp_reference(event))
    {
        object.insert("psp_reference".to_owned(), serde_json::Value::from(psp));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_need_a_colon_and_a_name() {
        assert_eq!(
            parse_header("Stripe-Signature: t=1,v1=ab"),
            Ok(("Stripe-Signature".to_owned(), "t=1,v1=ab".to_owned()))
        );
        assert_eq!(parse_header("X:"), Ok(("X".to_owned(), String::new())));
        assert!(parse_header("Stripe-Signature t=1").is_err());
        assert!(parse_header(": v").is_err());
    }

    #[test]
    fn now_is_unix_seconds() {
        assert_eq!(parse_unix_time("1533204620").map(OffsetDateTime::unix_timestamp), Ok(1_533_204_620));
        assert!(parse_unix_time("soon").is_err());
        assert!(parse_unix_time("99999999999999").is_err());
    }
}
