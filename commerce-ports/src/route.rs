//! The route publisher port: expose a storefront hostname (Gateway API HTTPRoute, listener, TLS reference).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::condition::Conditions;
use crate::error::RouteError;
use crate::forward::forward_port;
use crate::ids::TenantId;

/// A route to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RouteSpec {
    /// The hostname.
    pub hostname: String,
    /// Whose storefront it is.
    pub tenant: TenantId,
    /// Backend service name.
    pub backend: String,
    /// Backend port.
    pub backend_port: u16,
    /// Name of the Secret holding the TLS certificate.
    pub tls_secret: String,
}

/// What the route's consumer (a Gateway controller) reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RouteStatus {
    /// The hostname.
    pub hostname: String,
    /// Accepted / programmed conditions, in this crate's condition vocabulary.
    pub conditions: Conditions,
}

impl RouteSpec {
    /// A spec.
    pub fn new(
        hostname: impl Into<String>,
        tenant: TenantId,
        backend: impl Into<String>,
        backend_port: u16,
        tls_secret: impl Into<String>,
    ) -> RouteSpec {
        RouteSpec {
            hostname: hostname.into(),
            tenant,
            backend: backend.into(),
            backend_port,
            tls_secret: tls_secret.into(),
        }
    }
}

impl RouteStatus {
    /// A status.
    pub fn new(hostname: impl Into<String>, conditions: Conditions) -> RouteStatus {
        RouteStatus { hostname: hostname.into(), conditions }
    }
}

/// Publishes routes for custom hostnames.
///
/// # Contract
/// - `publish` is idempotent: publishing the same spec twice changes nothing; publishing a changed spec
///   updates it in place.
/// - `unpublish` of an unknown hostname succeeds (it is already gone).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RoutePublisher: Send + Sync + Debug + 'static {
    /// Creates or updates the route.
    ///
    /// # Errors
    /// `InvalidRequest` (bad hostname), `AlreadyExists` (hostname owned by another tenant),
    /// `Unavailable`.
    async fn publish(&self, spec: RouteSpec) -> Result<RouteStatus, RouteError>;

    /// Removes the route.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn unpublish(&self, hostname: &str) -> Result<(), RouteError>;

    /// The route's status.
    ///
    /// # Errors
    /// `NotFound`.
    async fn status(&self, hostname: &str) -> Result<RouteStatus, RouteError>;
}

forward_port!(RoutePublisher {
    async fn publish(&self, spec: RouteSpec) -> Result<RouteStatus, RouteError>;
    async fn unpublish(&self, hostname: &str) -> Result<(), RouteError>;
    async fn status(&self, hostname: &str) -> Result<RouteStatus, RouteError>;
});
