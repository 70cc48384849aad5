//! The certificate issuer port (ACME directly, or cert-manager resources).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::CertificateError;
use crate::forward::forward_port;
use crate::ids::IdempotencyKey;

/// What the issuer supports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IssuerCapabilities {
    /// Wildcard names (DNS-01 only).
    pub wildcard: bool,
    /// ACME Renewal Information (renewals exempt from rate limits).
    pub renewal_info: bool,
    /// Revocation.
    pub revoke: bool,
}

/// Request for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateRequest {
    /// DNS names (the first is the common name).
    pub hostnames: Vec<String>,
    /// Where the issued key pair goes (a Kubernetes Secret name, a file stem).
    pub secret_name: String,
    /// Makes the call safe to retry (one order per key).
    pub idempotency_key: IdempotencyKey,
}

/// Status of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertificateStatus {
    /// Challenges are being validated.
    Pending,
    /// Issued and stored.
    Issued,
    /// Failed; see the message and `retry_after`.
    Failed,
}

/// A certificate order and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertificateOrder {
    /// The issuer's order id.
    pub order_id: String,
    /// Status.
    pub status: CertificateStatus,
    /// Names covered.
    pub hostnames: Vec<String>,
    /// Expiry, once issued.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When to ask again after a failure (backoff or a CA rate limit).
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_after: Option<OffsetDateTime>,
    /// Why it failed, if it did.
    pub message: Option<String>,
}

impl CertificateRequest {
    /// A request.
    pub fn new(
        hostnames: Vec<String>,
        secret_name: impl Into<String>,
        idempotency_key: IdempotencyKey,
    ) -> CertificateRequest {
        CertificateRequest { hostnames, secret_name: secret_name.into(), idempotency_key }
    }
}

impl CertificateOrder {
    /// An order.
    pub fn new(order_id: impl Into<String>, status: CertificateStatus, hostnames: Vec<String>) -> CertificateOrder {
        CertificateOrder {
            order_id: order_id.into(),
            status,
            hostnames,
            not_after: None,
            retry_after: None,
            message: None,
        }
    }
}

/// Obtains TLS certificates.
///
/// # Contract
/// - `request` starts (or, for the same idempotency key, returns) one order; it never polls in a loop.
/// - A CA rate limit is `RateLimited` with `retry_after`; a failed validation is reported on the order.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CertificateIssuer: Send + Sync + Debug + 'static {
    /// What this issuer supports.
    fn capabilities(&self) -> IssuerCapabilities;

    /// Starts an order.
    ///
    /// # Errors
    /// `InvalidRequest` (a name the CA will not issue for), `RateLimited`, `Unavailable`.
    async fn request(&self, request: CertificateRequest) -> Result<CertificateOrder, CertificateError>;

    /// The current state of an order.
    ///
    /// # Errors
    /// `NotFound`; transport kinds.
    async fn status(&self, order_id: &str) -> Result<CertificateOrder, CertificateError>;
}

forward_port!(CertificateIssuer {
    fn capabilities(&self) -> IssuerCapabilities;
    async fn request(&self, request: CertificateRequest) -> Result<CertificateOrder, CertificateError>;
    async fn status(&self, order_id: &str) -> Result<CertificateOrder, CertificateError>;
});
