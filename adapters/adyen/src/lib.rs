#![doc = include_str!("../docs.md")]

mod adapter;
mod client;
mod config;
mod error;
mod factory;
mod mapping;
mod nexo;
mod notification;
mod signature;
mod terminal;
mod webhook;

pub use adapter::AdyenGateway;
pub use config::{
    API_VERSION, AdyenConfig, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SALE_ID,
    DEFAULT_TERMINAL_BASE_URL, DEFAULT_TERMINAL_TIMEOUT, RetryPolicy,
};
pub use factory::{AdyenGatewayFactory, AdyenTerminalFactory, AdyenWebhookFactory};
pub use mapping::MAX_IDEMPOTENCY_KEY_LEN;
pub use signature::{SignedFields, signature};
pub use terminal::{AdyenTerminal, payment_service_id, refund_service_id};
pub use webhook::{AdyenWebhookVerifier, DEFAULT_MAX_BODY_BYTES, PROVIDER, psp_reference};
