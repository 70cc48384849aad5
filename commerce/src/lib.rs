#![doc = include_str!("../README.md")]

pub mod config;
pub mod error;
pub mod integrations;
mod params;
pub mod registry;
pub mod secrets;
mod wiring;

pub use commerce_ports as ports;

pub use config::Config;
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, WiringError};
pub use integrations::{
    BindingReport, ChannelKind, GatewayBinding, Integrations, NamedCarrier, NamedVerifier, ReplicationBinding, paths,
};
pub use registry::{Registry, RegistryError, param_template};
pub use secrets::{ChainSecrets, EnvSecrets, FileSecrets, MapSecrets, SecretError, SecretSource, validate_secret_name};
pub use wiring::DEFAULT_REPLICATION_INTERVAL;
