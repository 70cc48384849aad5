//! Loopback simulators of provider APIs, for testing real HTTP adapters without the network.
//!
//! Behind the `simulators` feature, so crates that only need the in-memory fakes do not build an HTTP server.
//! Each simulator listens on `127.0.0.1:0`, speaks the provider's wire format, keeps state like the provider
//! does, and can inject faults (latency, timeouts after processing, 5xx, resets, malformed bodies).

pub mod stripe;
