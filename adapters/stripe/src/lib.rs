#![doc = include_str!("../docs.md")]

mod factory;
mod mapping;
mod webhook;

pub use factory::StripeWebhookFactory;
pub use webhook::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE, PROVIDER, SIGNATURE_HEADER, StripeWebhookVerifier, sign};
