#![doc = include_str!("../docs.md")]

mod factory;
mod mapping;
mod signature;
mod webhook;

pub use factory::AdyenWebhookFactory;
pub use signature::{SignedFields, signature};
pub use webhook::{AdyenWebhookVerifier, DEFAULT_MAX_BODY_BYTES, PROVIDER, psp_reference};
