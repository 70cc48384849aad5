#![doc = include_str!("../docs.md")]

mod adapter;
mod client;
mod config;
mod error;
mod factory;
mod mapping;
mod webhook;

pub use adapter::{MAX_IDEMPOTENCY_KEY_LEN, StripeGateway};
pub use config::{
    API_VERSION, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, RetryPolicy, StripeConfig,
};
pub use factory::{StripeGatewayFactory, StripeWebhookFactory};
pub use webhook::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE, PROVIDER, SIGNATURE_HEADER, StripeWebhookVerifier, sign};
