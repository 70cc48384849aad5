//! The shipping carrier port: rates, labels (bought at most once), tracking, address verification.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ShippingError;
use crate::forward::forward_port;
use crate::ids::{Address, IdempotencyKey};
use crate::money::Money;

/// What the carrier supports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CarrierCapabilities {
    /// Labels can be voided (refunded) after purchase.
    pub void_label: bool,
    /// Shipments can be tracked.
    pub tracking: bool,
    /// Addresses can be verified.
    pub address_verification: bool,
}

/// A parcel in metric units (adapters convert: EasyPost wants ounces and inches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Parcel {
    /// Weight in grams.
    pub weight_grams: u32,
    /// Length in millimetres.
    pub length_mm: u32,
    /// Width in millimetres.
    pub width_mm: u32,
    /// Height in millimetres.
    pub height_mm: u32,
}

impl Parcel {
    /// A parcel.
    pub fn new(weight_grams: u32, length_mm: u32, width_mm: u32, height_mm: u32) -> Parcel {
        Parcel { weight_grams, length_mm, width_mm, height_mm }
    }
}

/// A shipment to rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShipmentRequest {
    /// Origin.
    pub from: Address,
    /// Destination.
    pub to: Address,
    /// The parcel.
    pub parcel: Parcel,
    /// The merchant's reference (order number).
    pub reference: String,
}

/// A rate offered for a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rate {
    /// The provider's shipment id (rates belong to a shipment).
    pub shipment_id: String,
    /// The provider's rate id.
    pub rate_id: String,
    /// Carrier name (`USPS`, `UPS`).
    pub carrier: String,
    /// Service level (`Priority`, `Ground`).
    pub service: String,
    /// Price.
    pub price: Money,
    /// Estimated transit days, when known.
    pub delivery_days: Option<u32>,
}

impl ShipmentRequest {
    /// A request.
    pub fn new(from: Address, to: Address, parcel: Parcel, reference: impl Into<String>) -> ShipmentRequest {
        ShipmentRequest { from, to, parcel, reference: reference.into() }
    }
}

impl Rate {
    /// A rate without a transit estimate.
    pub fn new(
        shipment_id: impl Into<String>,
        rate_id: impl Into<String>,
        carrier: impl Into<String>,
        service: impl Into<String>,
        price: Money,
    ) -> Rate {
        Rate {
            shipment_id: shipment_id.into(),
            rate_id: rate_id.into(),
            carrier: carrier.into(),
            service: service.into(),
            price,
            delivery_days: None,
        }
    }
}

/// Request to buy a label for a rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BuyLabelRequest {
    /// The shipment.
    pub shipment_id: String,
    /// The chosen rate.
    pub rate_id: String,
    /// Makes the purchase safe to retry; a label is never bought twice.
    pub idempotency_key: IdempotencyKey,
}

impl BuyLabelRequest {
    /// A request.
    pub fn new(
        shipment_id: impl Into<String>,
        rate_id: impl Into<String>,
        idempotency_key: IdempotencyKey,
    ) -> BuyLabelRequest {
        BuyLabelRequest { shipment_id: shipment_id.into(), rate_id: rate_id.into(), idempotency_key }
    }
}

/// A purchased label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Label {
    /// The shipment.
    pub shipment_id: String,
    /// Tracking code.
    pub tracking_code: String,
    /// Where to download the label.
    pub label_url: String,
    /// File type (`PDF`, `ZPL`, `PNG`).
    pub file_type: String,
    /// What was charged.
    pub price: Money,
}

impl Label {
    /// A label.
    pub fn new(
        shipment_id: impl Into<String>,
        tracking_code: impl Into<String>,
        label_url: impl Into<String>,
        file_type: impl Into<String>,
        price: Money,
    ) -> Label {
        Label {
            shipment_id: shipment_id.into(),
            tracking_code: tracking_code.into(),
            label_url: label_url.into(),
            file_type: file_type.into(),
            price,
        }
    }
}

/// Tracking status, in EasyPost's vocabulary (which most carriers map onto).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrackingStatus {
    /// Not known yet.
    Unknown,
    /// Label created, not yet with the carrier.
    PreTransit,
    /// Moving.
    InTransit,
    /// Out for delivery.
    OutForDelivery,
    /// Delivered.
    Delivered,
    /// Waiting at a pickup point.
    AvailableForPickup,
    /// Returning to the sender.
    ReturnToSender,
    /// Delivery failed.
    Failure,
    /// Cancelled.
    Cancelled,
    /// The carrier reported an error.
    Error,
}

/// One tracking event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrackingEvent {
    /// Status after the event.
    pub status: TrackingStatus,
    /// Carrier's message.
    pub message: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Tracking of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrackingInfo {
    /// The tracking code.
    pub tracking_code: String,
    /// Current status.
    pub status: TrackingStatus,
    /// History, oldest first.
    pub events: Vec<TrackingEvent>,
}

impl TrackingEvent {
    /// An event.
    pub fn new(status: TrackingStatus, message: impl Into<String>, at: OffsetDateTime) -> TrackingEvent {
        TrackingEvent { status, message: message.into(), at }
    }
}

impl TrackingInfo {
    /// Tracking information.
    pub fn new(tracking_code: impl Into<String>, status: TrackingStatus, events: Vec<TrackingEvent>) -> TrackingInfo {
        TrackingInfo { tracking_code: tracking_code.into(), status, events }
    }
}

/// Result of verifying an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AddressVerification {
    /// Deliverable as given or as corrected.
    Verified(Address),
    /// Not deliverable; the provider's reasons (`E.ADDRESS.NOT_FOUND`, ...).
    Undeliverable(Vec<String>),
}

/// A shipping carrier or aggregator (EasyPost, a flat-rate table).
///
/// # Contract
/// - `buy_label` never buys twice: the same idempotency key returns the first label; a shipment that already
///   has a label fails with `AlreadyExists` carrying the existing tracking code in the message; an unknown
///   outcome is `OutcomeUnknown` and is resolved by retrying with the same key.
/// - Rates are in the currency the carrier charges; no conversion happens in the adapter.
/// - Operations outside the capabilities fail with `Unsupported`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ShippingCarrier: Send + Sync + Debug + 'static {
    /// What this carrier supports.
    fn capabilities(&self) -> CarrierCapabilities;

    /// Rates for a shipment.
    ///
    /// # Errors
    /// `InvalidRequest` naming the bad address field or parcel dimension; transport kinds.
    async fn rates(&self, request: ShipmentRequest) -> Result<Vec<Rate>, ShippingError>;

    /// Buys a label.
    ///
    /// # Errors
    /// `AlreadyExists`, `InProgress`, `NotFound` (rate or shipment), `OutcomeUnknown`, transport kinds.
    async fn buy_label(&self, request: BuyLabelRequest) -> Result<Label, ShippingError>;

    /// Voids a label.
    ///
    /// # Errors
    /// `Unsupported`, `NotFound`, `InvalidState` (already used).
    async fn void_label(&self, shipment_id: &str) -> Result<(), ShippingError>;

    /// Tracks a shipment.
    ///
    /// # Errors
    /// `Unsupported`, `NotFound`.
    async fn track(&self, tracking_code: &str) -> Result<TrackingInfo, ShippingError>;

    /// Verifies an address.
    ///
    /// # Errors
    /// `Unsupported`; transport kinds. An undeliverable address is a result, not an error.
    async fn verify_address(&self, address: Address) -> Result<AddressVerification, ShippingError>;
}

forward_port!(ShippingCarrier {
    fn capabilities(&self) -> CarrierCapabilities;
    async fn rates(&self, request: ShipmentRequest) -> Result<Vec<Rate>, ShippingError>;
    async fn buy_label(&self, request: BuyLabelRequest) -> Result<Label, ShippingError>;
    async fn void_label(&self, shipment_id: &str) -> Result<(), ShippingError>;
    async fn track(&self, tracking_code: &str) -> Result<TrackingInfo, ShippingError>;
    async fn verify_address(&self, address: Address) -> Result<AddressVerification, ShippingError>;
});
