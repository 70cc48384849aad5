#![doc = include_str!("../README.md")]

mod error;
mod in_flight;
mod ingest;
pub mod offline;
mod reconciler;
mod service;
pub mod state;
mod tenders;
mod terminal;

pub use error::PaymentsError;
pub use ingest::{
    DEFAULT_MAX_WEBHOOK_BODY, DEFAULT_UNKNOWN_HOLD, IngestError, IngestReport, RECOMMENDED_FRESH_HOLD, WebhookIngestor,
};
pub use offline::{OfflineAcceptance, OfflineError, StoreAndForward};
pub use reconciler::ReconcileReport;
pub use service::{MIN_DERIVED_KEY_LEN, NewPayment, Payments, decode_outcome, intent_id_for, provider_key};
pub use state::Operation;
pub use tenders::{TenderBinding, TenderRouting};
pub use terminal::{DEFAULT_CANCELLED_HOLD, DEFAULT_RECORD_WINDOW, TERMINAL_MAX_KEY_LEN, TerminalGateway};
