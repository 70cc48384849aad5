#![doc = include_str!("../README.md")]

pub mod clock;
pub mod condition;
pub mod error;
mod forward;
pub mod ids;
pub mod money;
pub mod payment;
pub mod retry;
pub mod rfc3339;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use condition::{Condition, ConditionStatus, ConditionType, Conditions};
pub use error::{
    BoxError, CertificateError, DeclineDetails, DnsError, ErrorKind, PaymentError, PeripheralError, ReplicationError,
    RetryClass, RouteError, ShippingError, StoreError, TaxError, TerminalError,
};
pub use ids::{
    Address, ChannelId, DatasetId, DeviceId, IdError, IdempotencyKey, IntentId, LineItem, RegisterId, StoreId, TenantId,
};
pub use money::{Currency, Money, MoneyError};
pub use retry::RetryPolicy;
pub use secret::{Secret, constant_time_eq};

pub mod certificate;
pub mod dns;
pub mod factory;
pub mod offline_queue;
pub mod peripherals;
pub mod replication;
pub mod route;
pub mod shipping;
pub mod stores;
pub mod tax;
pub mod terminal;
pub mod webhook;

pub use certificate::CertificateIssuer;
pub use dns::DnsResolver;
pub use offline_queue::OfflineQueueStore;
pub use payment::{PaymentGateway, TenderKind};
pub use peripherals::{CashDrawer, LineDisplay, ReceiptPrinter, Scale, Scanner};
pub use replication::ReplicationTransport;
pub use route::RoutePublisher;
pub use shipping::ShippingCarrier;
pub use stores::{
    DomainClaimStore, IdempotencyStore, PairingStore, PaymentIntentStore, PaymentLedger, PrintJobStore,
    ReplicationStore, StoreSet, WebhookEventStore,
};
pub use tax::TaxCalculator;
pub use terminal::PaymentTerminal;
pub use webhook::WebhookVerifier;
