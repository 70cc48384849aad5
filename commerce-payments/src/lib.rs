#![doc = include_str!("../README.md")]

mod error;
mod service;
pub mod state;

pub use error::PaymentsError;
pub use service::{MIN_DERIVED_KEY_LEN, NewPayment, Payments, intent_id_for, provider_key};
pub use state::Operation;
