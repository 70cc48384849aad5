#![doc = include_str!("../README.md")]

pub mod conformance;
pub mod factories;
pub mod memory;
#[cfg(feature = "simulators")]
pub mod simulators;
