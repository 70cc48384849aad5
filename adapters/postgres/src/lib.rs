#![doc = include_str!("../docs.md")]

mod client;
mod config;
mod domains;
mod error;
mod hardware;
mod mapping;
mod offline_queue;
mod payments;
mod replication;
mod schema;

pub use client::PostgresStores;
pub use config::{
    DEFAULT_POOL_SIZE, DEFAULT_SCHEMA, MAX_POOL_SIZE, PostgresOptions, PostgresStoreFactory, PostgresUrl,
};
pub use schema::SCHEMA_VERSION;
